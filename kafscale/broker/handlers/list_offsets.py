"""ListOffsets (key 2), versions 0-8.

Timestamps: -1 latest (the committed high watermark), -2 earliest (log start offset),
-3 the record with the largest timestamp (v7), -4 earliest local (v8, same as -2 here:
everything is in S3); a timestamp >= 0 finds the first record with a timestamp at or
after it. v0 answers with old_style_offsets; v4+ reports the leader epoch.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ListOffsetsRequest, ListOffsetsResponse

R = ListOffsetsResponse

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -1, -2, -3, -4


@handles(ApiKey.LIST_OFFSETS, versions=(0, 8))
async def list_offsets(ctx, req: ListOffsetsRequest) -> ListOffsetsResponse:
    return R(topics=[R.ListOffsetsTopicResponse(name=t.name, partitions=[
        await _partition(ctx, t.name, p) for p in t.partitions]) for t in req.topics])


async def _partition(ctx, name: str, p) -> "R.ListOffsetsPartitionResponse":
    idx = p.partition_index
    if not ctx.broker.authorizer.topic(ctx, Operation.DESCRIBE, name):
        return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    try:
        plog = await ctx.logs.partition_log(name, idx)
    except KafkaError as exc:
        return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=exc.code)
    if ctx.version >= 4 and p.current_leader_epoch >= 0 and p.current_leader_epoch != plog.epoch:
        code = ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < plog.epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
        return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=code)
    ts = p.timestamp
    found_ts = -1
    if ts == LATEST:
        offset = plog.hw
    elif ts in (EARLIEST, EARLIEST_LOCAL):
        offset = plog.log_start
    elif ts == MAX_TIMESTAMP and ctx.version >= 7:
        offset, found_ts = plog.max_timestamp()
    elif ts >= 0:
        try:
            offset, found_ts = await plog.offset_for_timestamp(ts)
        except KafkaError as exc:
            return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=exc.code)
    else:
        return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=ErrorCode.INVALID_REQUEST)
    if ctx.version == 0:
        return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=0,
                                              old_style_offsets=[offset] if offset >= 0 else [])
    return R.ListOffsetsPartitionResponse(partition_index=idx, error_code=0, timestamp=found_ts,
                                          offset=offset, leader_epoch=plog.epoch)
