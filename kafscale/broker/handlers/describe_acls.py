"""DescribeAcls (key 29), versions 0-3.

The ACL bindings a filter matches (kafscale/security/acls.py), grouped by resource
pattern. Needs DESCRIBE on the cluster; without the ACL authorizer SECURITY_DISABLED.
A filter with an UNKNOWN field gets INVALID_REQUEST. v1 pattern types (v0 matches
LITERAL only, as Kafka); v2 flexible.
"""

from __future__ import annotations

from itertools import groupby

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import DescribeAclsRequest, DescribeAclsResponse
from kafscale.security.acls import AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType

R = DescribeAclsResponse


def acl_filter(f) -> AclFilter:
    """An AclFilter from a DescribeAcls request or a DeleteAcls filter (Kafka's field names)."""
    try:
        return AclFilter(ResourceType(f.resource_type_filter), f.resource_name_filter,
                         PatternType(f.pattern_type_filter), f.principal_filter, f.host_filter,
                         Operation(f.operation), Permission(f.permission_type)).check()
    except ValueError as exc:  # (InvalidAcl included, and values outside the enums)
        raise InvalidAcl(str(exc)) from None


def security_error(ctx, operation: Operation) -> tuple[int, str] | None:
    """The error of an ACL API call that may not proceed: no authorizer, or not allowed."""
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled:
        return ErrorCode.SECURITY_DISABLED, "No authorizer is configured (--authorizer acls)"
    if not authorizer.allowed_cluster(ctx, operation):
        return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."
    return None


@handles(ApiKey.DESCRIBE_ACLS, versions=(0, 3))
async def describe_acls(ctx, req: DescribeAclsRequest) -> DescribeAclsResponse:
    refused = security_error(ctx, Operation.DESCRIBE)
    if refused:
        return R(error_code=refused[0], error_message=refused[1], resources=[])
    try:
        flt = acl_filter(req)
    except InvalidAcl as exc:
        return R(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc), resources=[])
    acls = ctx.broker.authorizer.describe(flt)
    resources = [R.DescribeAclsResource(resource_type=rt, resource_name=name, pattern_type=pt, acls=[
        R.AclDescription(principal=a.principal, host=a.host, operation=a.operation, permission_type=a.permission)
        for a in group]) for (rt, name, pt), group in groupby(acls, key=lambda a: (a.resource_type, a.name,
                                                                                   a.pattern))]
    return R(error_code=0, resources=resources)
