"""DeleteGroups (key 42), versions 0-2.

v1 same as v0; v2 flexible. Only an Empty group can be deleted (NON_EMPTY_GROUP
otherwise; GROUP_ID_NOT_FOUND for an unknown one); its metadata and offsets go in
one etcd transaction.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.protocol.messages import DeleteGroupsRequest, DeleteGroupsResponse

R = DeleteGroupsResponse


@handles(ApiKey.DELETE_GROUPS, versions=(0, 2))
async def delete_groups(ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse:
    codes = await ctx.broker.groups.delete_groups(list(req.groups_names))
    return R(results=[R.DeletableGroupResult(group_id=g, error_code=c) for g, c in zip(req.groups_names, codes)])
