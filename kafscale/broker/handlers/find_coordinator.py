"""FindCoordinator (key 10), versions 0-6.

v1 adds key_type (0 group, 1 transaction) and error messages; v2 same shape; v3
flexible; v4 batches keys (``coordinator_keys``) and answers one ``Coordinator`` per
key; v5/v6 only widen the errors a client may see. The group service names the
coordinator (``coordinator_for``): this broker for now, any live broker later.
Transactions are not supported: their coordinator is never available.
"""

from __future__ import annotations

from kafscale.broker.core import advertised_brokers
from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import FindCoordinatorRequest, FindCoordinatorResponse

R = FindCoordinatorResponse

GROUP, TRANSACTION = 0, 1


@handles(ApiKey.FIND_COORDINATOR, versions=(0, 6))
async def find_coordinator(ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse:
    key_type = req.key_type if ctx.version >= 1 else GROUP
    if ctx.version >= 4:
        return R(coordinators=[_find(ctx, key, key_type) for key in req.coordinator_keys])
    c = _find(ctx, req.key, key_type)
    return R(error_code=c.error_code, error_message=c.error_message, node_id=c.node_id, host=c.host,
             port=c.port)


def _find(ctx, key: str, key_type: int) -> "R.Coordinator":
    def error(code: int, message: str) -> "R.Coordinator":
        return R.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=code, error_message=message)

    if key_type == TRANSACTION:
        return error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "transactions are not supported")
    if key_type != GROUP:
        return error(ErrorCode.INVALID_REQUEST, f"unsupported key type {key_type}")
    if not key:
        return error(ErrorCode.INVALID_REQUEST, "empty group id")
    if not ctx.broker.authorizer.group(ctx, Operation.DESCRIBE, key):
        return error(ErrorCode.GROUP_AUTHORIZATION_FAILED, f"Not authorized to DESCRIBE group {key}.")
    node = ctx.broker.groups.coordinator_for(key)
    for b in advertised_brokers(ctx):
        if b.node_id == node:
            return R.Coordinator(key=key, node_id=b.node_id, host=b.host, port=b.port, error_code=0,
                                 error_message=None)
    return error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "coordinator is not live")
