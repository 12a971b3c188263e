"""LeaveGroup (key 13), versions 0-5.

v0-2 name one member_id and answer with one error code; v3 batches members (by
member id, or by group_instance_id alone to remove a static member administratively,
KIP-345) and answers per member; v4 flexible; v5 a reason per member.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import LeaveGroupRequest, LeaveGroupResponse

R = LeaveGroupResponse


@handles(ApiKey.LEAVE_GROUP, versions=(0, 5))
async def leave_group(ctx, req: LeaveGroupRequest) -> LeaveGroupResponse:
    ctx.broker.authorizer.check_group(ctx, Operation.READ, req.group_id)
    if ctx.version < 3:
        top, codes = await ctx.broker.groups.leave(req.group_id, [(req.member_id, None)])
        return R(error_code=top if top or not codes else codes[0])
    members = [(m.member_id, m.group_instance_id) for m in req.members]
    top, codes = await ctx.broker.groups.leave(req.group_id, members)
    return R(error_code=top, members=[
        R.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id, error_code=c)
        for m, c in zip(req.members, codes)])
