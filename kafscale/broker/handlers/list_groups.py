"""ListGroups (key 16), versions 0-5.

v1 throttle time; v3 flexible; v4 states_filter (case-insensitive state names) and
each group's state; v5 types_filter and each group's type (always "classic" here).
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import ListGroupsRequest, ListGroupsResponse

R = ListGroupsResponse


@handles(ApiKey.LIST_GROUPS, versions=(0, 5))
async def list_groups(ctx, req: ListGroupsRequest) -> ListGroupsResponse:
    states = req.states_filter if ctx.version >= 4 else []
    types = req.types_filter if ctx.version >= 5 else []
    authz = ctx.broker.authorizer
    everything = not authz.enabled or authz.allowed_cluster(ctx, Operation.DESCRIBE)
    return R(error_code=0, groups=[
        R.ListedGroup(group_id=g, protocol_type=pt, group_state=state, group_type="classic")
        for g, pt, state in ctx.broker.groups.list_groups(states, types)
        if everything or authz.group(ctx, Operation.DESCRIBE, g)])
