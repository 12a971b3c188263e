"""OffsetForLeaderEpoch (key 23), versions 0-4.

Consumers (KIP-320) ask, after a leader change, where the epoch they last fetched under
ended, to detect log truncation. Every committed segment records the leader epoch that
wrote it, so the answer comes from the manifest: the end of epoch E is where the first
segment of a later epoch begins, or the high watermark when no later epoch wrote yet.
v1 returns the epoch found; v2 checks the current leader epoch; v3 replica id; v4 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse

R = OffsetForLeaderEpochResponse


def end_of_epoch(segments, current_epoch: int, hw: int, epoch: int) -> tuple[int, int]:
    """(largest epoch <= ``epoch`` that wrote, offset where ``epoch`` ended); (-1, -1) if unknown."""
    if epoch > current_epoch:
        return -1, -1
    if epoch == current_epoch or not segments:
        return epoch, hw
    floor = -1
    for seg in segments:
        if seg.epoch > epoch:
            return (floor, seg.base) if floor >= 0 else (-1, -1)
        floor = seg.epoch
    return floor, hw


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH, versions=(0, 4))
async def offset_for_leader_epoch(ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
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
            epoch, end = end_of_epoch(plog.segments, current, plog.hw, p.leader_epoch)
            parts.append(R.EpochEndOffset(error_code=0, partition=p.partition, leader_epoch=epoch, end_offset=end))
        topics.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=parts))
    return R(topics=topics)
