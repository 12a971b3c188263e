"""DeleteGroups (key 42), versions 0-2.

v1 same as v0; v2 flexible. Only an Empty group can be deleted (NON_EMPTY_GROUP
otherwise; GROUP_ID_NOT_FOUND for an unknown one); its metadata and offsets go in
one etcd transaction.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.security.acls import Operation
from kafscale.protocol.messages import DeleteGroupsRequest, DeleteGroupsResponse

R = DeleteGroupsResponse


@handles(ApiKey.DELETE_GROUPS, versions=(0, 2))
async def delete_groups(ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse:
    authz = ctx.broker.authorizer
    allowed = [g for g in req.groups_names if authz.group(ctx, Operation.DELETE, g)]
    codes = dict(zip(allowed, await ctx.broker.groups.delete_groups(allowed))) if allowed else {}
    return R(results=[R.DeletableGroupResult(group_id=g,
                                             error_code=codes.get(g, ErrorCode.GROUP_AUTHORIZATION_FAILED))
                      for g in req.groups_names])
