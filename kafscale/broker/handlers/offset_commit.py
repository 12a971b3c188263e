"""OffsetCommit (key 8), versions 0-9.

v1 adds generation and member id (and a per-partition commit timestamp, ignored); v2-4
retention_time_ms (-1: the broker's offsets retention); v3 throttle time; v6 the
committed leader epoch; v7 group_instance_id; v8 flexible; v9 names the member epoch
(only the classic protocol here: it is the generation). A commit with generation -1
and no member id is a "simple" commit, allowed while the group has no members.
Answered once the offsets are in etcd.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.groups.service import CommitPartition
from kafscale.protocol.messages import OffsetCommitRequest, OffsetCommitResponse

R = OffsetCommitResponse


@handles(ApiKey.OFFSET_COMMIT, versions=(0, 9))
async def offset_commit(ctx, req: OffsetCommitRequest) -> OffsetCommitResponse:
    v = ctx.version
    parts = [CommitPartition(t.name, p.partition_index, p.committed_offset,
                             p.committed_leader_epoch if v >= 6 else -1, p.committed_metadata)
             for t in req.topics for p in t.partitions]
    codes = iter(await ctx.broker.groups.commit_offsets(
        req.group_id, req.generation_id_or_member_epoch if v >= 1 else -1,
        req.member_id if v >= 1 else "", req.group_instance_id if v >= 7 else None,
        req.retention_time_ms if 2 <= v <= 4 else -1, parts))
    return R(topics=[R.OffsetCommitResponseTopic(name=t.name, partitions=[
        R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=next(codes))
        for p in t.partitions]) for t in req.topics])
