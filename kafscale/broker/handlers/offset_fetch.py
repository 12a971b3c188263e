"""OffsetFetch (key 9), versions 0-9.

v1 same as v0 (offsets in Kafka rather than ZooKeeper); v2 null topics mean "every
committed partition" and a top-level error code; v3 throttle time; v5 leader epochs;
v6 flexible; v7 require_stable (ignored: there are no transactions, so nothing is
ever pending); v8 several groups per request; v9 member id/epoch (new consumer
protocol; not used by classic groups). A partition never committed to answers offset
-1, leader epoch -1 and metadata "".
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import OffsetFetchRequest, OffsetFetchResponse

R = OffsetFetchResponse


@handles(ApiKey.OFFSET_FETCH, versions=(0, 9))
async def offset_fetch(ctx, req: OffsetFetchRequest) -> OffsetFetchResponse:
    if ctx.version >= 8:
        groups = []
        for g in req.groups:
            code, rows = await _fetch(ctx, g.group_id, g.topics)
            groups.append(R.OffsetFetchResponseGroup(group_id=g.group_id, error_code=code, topics=[
                R.OffsetFetchResponseTopics(name=name, partitions=[
                    R.OffsetFetchResponsePartitions(partition_index=p, committed_offset=o, committed_leader_epoch=e,
                                                    metadata=m, error_code=c) for p, o, e, m, c in parts])
                for name, parts in rows]))
        return R(groups=groups)
    topics = req.topics if ctx.version >= 2 else (req.topics or [])
    code, rows = await _fetch(ctx, req.group_id, topics)
    # v0/v1 have no top-level error: a group error goes on every partition
    part_code = code if ctx.version < 2 else 0
    return R(error_code=code, topics=[R.OffsetFetchResponseTopic(name=name, partitions=[
        R.OffsetFetchResponsePartition(partition_index=p, committed_offset=o if not part_code else -1,
                                       committed_leader_epoch=e, metadata=m, error_code=part_code or c)
        for p, o, e, m, c in parts]) for name, parts in rows])


async def _fetch(ctx, group_id: str, topics) -> tuple[int, list[tuple[str, list[tuple[int, int, int, str, int]]]]]:
    """(group error, [(topic, [(partition, offset, leader epoch, metadata, error)])]): a
    group the client may not DESCRIBE gets GROUP_AUTHORIZATION_FAILED; a topic it may not
    DESCRIBE is left out of "all" and answered TOPIC_AUTHORIZATION_FAILED when named."""
    authz = ctx.broker.authorizer
    wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes]
    if not authz.group(ctx, Operation.DESCRIBE, group_id):
        code, found = ErrorCode.GROUP_AUTHORIZATION_FAILED, []
    else:
        code, found = await ctx.broker.groups.fetch_offsets(group_id, wanted)
    if code != ErrorCode.NONE and wanted is not None:
        found = [(t, p, None) for t, p in wanted]
    rows: dict[str, list[tuple[int, int, int, str, int]]] = {}
    for t, p, e in found:
        if not authz.topic(ctx, Operation.DESCRIBE, t):
            if wanted is not None:
                rows.setdefault(t, []).append((p, -1, -1, "", ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        rows.setdefault(t, []).append((p, -1, -1, "", 0) if e is None else (p, e.offset, e.leader_epoch, e.metadata, 0))
    return code, list(rows.items())
