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
from kafscale.errors import ErrorCode
from kafscale.security.acls import Operation
from kafscale.groups.service import CommitPartition
from kafscale.protocol.messages import OffsetCommitRequest, OffsetCommitResponse

R = OffsetCommitResponse


@handles(ApiKey.OFFSET_COMMIT, versions=(0, 9))
async def offset_commit(ctx, req: OffsetCommitRequest) -> OffsetCommitResponse:
    v = ctx.version
    authz = ctx.broker.authorizer
    # READ on the group (else every partition gets GROUP_AUTHORIZATION_FAILED, as in
    # Kafka), and READ on each topic (else its partitions get TOPIC_AUTHORIZATION_FAILED).
    group_ok = authz.group(ctx, Operation.READ, req.group_id)
    refused = {t.name: ErrorCode.TOPIC_AUTHORIZATION_FAILED for t in req.topics
               if not authz.topic(ctx, Operation.READ, t.name)}
    parts = [CommitPartition(t.name, p.partition_index, p.committed_offset,
                             p.committed_leader_epoch if v >= 6 else -1, p.committed_metadata)
             for t in req.topics if t.name not in refused for p in t.partitions] if group_ok else []
    codes = iter(await ctx.broker.groups.commit_offsets(
        req.group_id, req.generation_id_or_member_epoch if v >= 1 else -1,
        req.member_id if v >= 1 else "", req.group_instance_id if v >= 7 else None,
        req.retention_time_ms if 2 <= v <= 4 else -1, parts) if parts else ())

    def code(topic: str) -> int:
        if not group_ok:
            return ErrorCode.GROUP_AUTHORIZATION_FAILED
        return refused[topic] if topic in refused else next(codes)
    return R(topics=[R.OffsetCommitResponseTopic(name=t.name, partitions=[
        R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code(t.name))
        for p in t.partitions]) for t in req.topics])
