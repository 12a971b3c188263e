"""OffsetForLeaderEpoch (key 23), versions 0-4.

Consumers (KIP-320) ask, after a leader change, where the epoch of the last batch they
fetched ended, to detect log truncation. The answer comes from the partition's
leader-epoch history in etcd, as Kafka's leader epoch cache gives it (storage/epochs.py).
v1 returns the epoch found; v2 checks the current leader epoch; v3 replica id; v4 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse
from kafscale.storage import epochs

R = OffsetForLeaderEpochResponse


def end_of_epoch(plog, requested: int) -> tuple[int, int]:
    """(epoch, end offset) of ``requested`` in ``plog``'s history; (-1, -1) if none."""
    state = plog.state
    entries = epochs.effective(state.epochs, plog.epoch, state.hw, plog.log_start)
    return epochs.end_offset_for(entries, requested, state.hw)


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH, versions=(0, 4))
async def offset_for_leader_epoch(ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    topics = []
    for t in req.topics:
        parts = []
        allowed = ctx.broker.authorizer.topic(ctx, Operation.DESCRIBE, t.topic)
        for p in t.partitions:
            if not allowed:
                parts.append(R.EpochEndOffset(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, partition=p.partition))
                continue
            try:
                plog = await ctx.logs.partition_log(t.topic, p.partition)
            except KafkaError as exc:
                parts.append(R.EpochEndOffset(error_code=exc.code, partition=p.partition))
                continue
            current = plog.epoch
            if ctx.version >= 2 and p.current_leader_epoch >= 0 and p.current_leader_epoch != current:
                code = (ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < current
                        else ErrorCode.UNKNOWN_LEADER_EPOCH)
                parts.append(R.EpochEndOffset(error_code=code, partition=p.partition))
                continue
            epoch, end = end_of_epoch(plog, p.leader_epoch)
            parts.append(R.EpochEndOffset(error_code=0, partition=p.partition, leader_epoch=epoch, end_offset=end))
        topics.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=parts))
    return R(topics=topics)
