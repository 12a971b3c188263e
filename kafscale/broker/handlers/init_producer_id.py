"""InitProducerId (key 22), versions 0-5, for idempotent producers.

v2 flexible; v3 lets a producer re-initialise (same id, epoch + 1); v4-5 only add
error codes. Ids come from a counter in etcd, so they are unique across brokers and
restarts. Transactions are not supported: a transactional id is refused.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import InitProducerIdRequest, InitProducerIdResponse

R = InitProducerIdResponse
MAX_EPOCH = 32767


@handles(ApiKey.INIT_PRODUCER_ID, versions=(0, 5))
async def init_producer_id(ctx, req: InitProducerIdRequest) -> InitProducerIdResponse:
    if req.transactional_id is not None:
        return R(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1)
    if not ctx.broker.authorizer.idempotent_write(ctx):
        return R(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1, producer_epoch=-1)
    if req.producer_id >= 0 and 0 <= req.producer_epoch < MAX_EPOCH - 1:
        return R(error_code=0, producer_id=req.producer_id, producer_epoch=req.producer_epoch + 1)
    pid = await ctx.rt.run_in_thread(ctx.broker.cluster.allocate_producer_id)
    return R(error_code=0, producer_id=pid, producer_epoch=0)
