"""SyncGroup (key 14), versions 0-5.

v1 throttle time; v3 group_instance_id; v4 flexible; v5 protocol type and name in
request and response (checked against the group's: INCONSISTENT_GROUP_PROTOCOL). The
leader's assignments are what every member receives; a member's SyncGroup parks
until the leader's has been stored.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import SyncGroupRequest, SyncGroupResponse


@handles(ApiKey.SYNC_GROUP, versions=(0, 5))
async def sync_group(ctx, req: SyncGroupRequest) -> SyncGroupResponse:
    ctx.broker.authorizer.check_group(ctx, Operation.READ, req.group_id)
    v = ctx.version
    res = await ctx.broker.groups.sync(
        req.group_id, req.member_id, req.group_instance_id if v >= 3 else None, req.generation_id,
        req.protocol_type if v >= 5 else None, req.protocol_name if v >= 5 else None,
        {a.member_id: bytes(a.assignment) for a in req.assignments})
    return SyncGroupResponse(error_code=res.error, protocol_type=res.protocol_type,
                             protocol_name=res.protocol_name, assignment=res.assignment)
