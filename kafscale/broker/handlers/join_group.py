"""JoinGroup (key 11), versions 0-9.

v1 adds rebalance_timeout_ms (v0: the session timeout); v2 throttle time; v4 asks a
new member to join again with the id it is given (MEMBER_ID_REQUIRED, KIP-394); v5
group_instance_id (static membership, KIP-345); v6 flexible; v7 protocol type and a
nullable protocol name in the response; v8 a reason; v9 skip_assignment, set for a
static leader that rejoins a Stable group (KIP-814) - before v9 it is told the old
leader id instead, so it does not run the assignor. The request parks until the
rebalance completes (see kafscale.groups.coordinator).
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import JoinGroupRequest, JoinGroupResponse

R = JoinGroupResponse


@handles(ApiKey.JOIN_GROUP, versions=(0, 9))
async def join_group(ctx, req: JoinGroupRequest) -> JoinGroupResponse:
    ctx.broker.authorizer.check_group(ctx, Operation.READ, req.group_id)
    v = ctx.version
    res = await ctx.broker.groups.join(
        req.group_id, req.member_id, req.group_instance_id if v >= 5 else None, ctx.client_id or "",
        getattr(ctx, "client_host", ""), req.session_timeout_ms,
        req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
        req.protocol_type, [(p.name, p.metadata) for p in req.protocols], v >= 4)
    leader, members, skip = res.leader, res.members, res.skip_assignment
    if v < 9 and res.legacy_leader is not None:
        leader, members, skip = res.legacy_leader, [], False
    return R(error_code=res.error, generation_id=res.generation_id, protocol_type=res.protocol_type,
             protocol_name=res.protocol_name if v >= 7 else (res.protocol_name or ""),
             leader=leader, skip_assignment=skip, member_id=res.member_id,
             members=[R.JoinGroupResponseMember(member_id=m, group_instance_id=gi, metadata=meta)
                      for m, gi, meta in members])
