"""DeleteAcls (key 31), versions 0-3.

Deletes every stored binding any filter matches and answers, per filter, the bindings
it matched. Needs ALTER on the cluster; without the ACL authorizer SECURITY_DISABLED; a
filter with an UNKNOWN field gets INVALID_REQUEST. v1 pattern types; v2 flexible.
"""

from __future__ import annotations

from kafscale.broker.handlers.describe_acls import acl_filter, security_error
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import DeleteAclsRequest, DeleteAclsResponse
from kafscale.security.acls import InvalidAcl, Operation

R = DeleteAclsResponse


@handles(ApiKey.DELETE_ACLS, versions=(0, 3))
async def delete_acls(ctx, req: DeleteAclsRequest) -> DeleteAclsResponse:
    refused = security_error(ctx, Operation.ALTER)
    if refused:
        return R(filter_results=[R.DeleteAclsFilterResult(error_code=refused[0], error_message=refused[1],
                                                          matching_acls=[]) for _ in req.filters])
    filters, bad = [], {}
    for i, f in enumerate(req.filters):
        try:
            filters.append(acl_filter(f))
        except InvalidAcl as exc:
            bad[i] = str(exc)
    matched = iter(await ctx.broker.authorizer.delete(filters))
    results = []
    for i in range(len(req.filters)):
        if i in bad:
            results.append(R.DeleteAclsFilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=bad[i],
                                                    matching_acls=[]))
            continue
        results.append(R.DeleteAclsFilterResult(error_code=0, matching_acls=[R.DeleteAclsMatchingAcl(
            error_code=0, resource_type=a.resource_type, resource_name=a.name, pattern_type=a.pattern,
            principal=a.principal, host=a.host, operation=a.operation, permission_type=a.permission)
            for a in next(matched)]))
    return R(filter_results=results)
