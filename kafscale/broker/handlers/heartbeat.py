"""Heartbeat (key 12), versions 0-4.

v1 throttle time; v3 adds group_instance_id (static membership); v4 is flexible.
During a rebalance the answer is REBALANCE_IN_PROGRESS: the member rejoins.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import HeartbeatRequest, HeartbeatResponse


@handles(ApiKey.HEARTBEAT, versions=(0, 4))
async def heartbeat(ctx, req: HeartbeatRequest) -> HeartbeatResponse:
    ctx.broker.authorizer.check_group(ctx, Operation.READ, req.group_id)
    code = await ctx.broker.groups.heartbeat(req.group_id, req.member_id,
                                             req.group_instance_id if ctx.version >= 3 else None,
                                             req.generation_id)
    return HeartbeatResponse(error_code=code)
