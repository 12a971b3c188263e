"""CreateAcls (key 30), versions 0-3.

Stores ACL bindings in etcd before the answer; every broker applies them at once
(broker/authorizer.py). Needs ALTER on the cluster; without the ACL authorizer
SECURITY_DISABLED. A binding Kafka would refuse (ANY/UNKNOWN fields, a PREFIXED "*",
a principal not of the form Type:name, ...) gets INVALID_REQUEST, the others are stored.
v1 pattern types; v2 flexible.
"""

from __future__ import annotations

from kafscale.broker.handlers.describe_acls import security_error
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import CreateAclsRequest, CreateAclsResponse
from kafscale.security.acls import Acl, Operation, PatternType, Permission, ResourceType

R = CreateAclsResponse


@handles(ApiKey.CREATE_ACLS, versions=(0, 3))
async def create_acls(ctx, req: CreateAclsRequest) -> CreateAclsResponse:
    refused = security_error(ctx, Operation.ALTER)
    if refused:
        return R(results=[R.AclCreationResult(error_code=refused[0], error_message=refused[1])
                          for _ in req.creations])
    results, valid = [], []
    for c in req.creations:
        try:
            acl = Acl(ResourceType(c.resource_type), c.resource_name, PatternType(c.resource_pattern_type),
                      c.principal, c.host, Operation(c.operation), Permission(c.permission_type)).check()
            valid.append(acl)
            results.append(R.AclCreationResult(error_code=0))
        except ValueError as exc:  # (InvalidAcl included, and values outside the enums)
            results.append(R.AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc)))
    await ctx.broker.authorizer.create(valid)
    return R(results=results)


