"""DeleteRecords (key 21), versions 0-2.

Moves each partition's log start offset (``-1``: to the high watermark), persisted in
etcd before the answer, and answers the new low watermark; the segments wholly below
it leave the manifest in the same transaction and their objects go with garbage
collection (storage/lifecycle.py). Only the partition's owner does it
(NOT_LEADER_OR_FOLLOWER elsewhere); an offset beyond the high watermark gets
OFFSET_OUT_OF_RANGE. An offset below the log start changes nothing. v1 same as v0;
v2 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import DeleteRecordsRequest, DeleteRecordsResponse

R = DeleteRecordsResponse


@handles(ApiKey.DELETE_RECORDS, versions=(0, 2))
async def delete_records(ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse:
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            try:
                ctx.broker.authorizer.check_topic(ctx, Operation.DELETE, t.name)
                low = await _delete_before(ctx, t.name, p.partition_index, p.offset)
                parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=low))
            except KafkaError as exc:
                parts.append(R.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1,
                                                            error_code=exc.code))
        topics.append(R.DeleteRecordsTopicResult(name=t.name, partitions=parts))
    return R(topics=topics)


async def _delete_before(ctx, topic: str, partition: int, offset: int) -> int:
    plog = await ctx.logs.owned_log(topic, partition)
    if offset == -1:
        offset = plog.hw
    if offset < 0 or offset > plog.hw:
        raise KafkaError(f"offset {offset} outside [0, {plog.hw}]", ErrorCode.OFFSET_OUT_OF_RANGE)
    return await plog.advance_log_start(offset)
