"""Fetch (key 1), versions 4-17.

v4 isolation level + last stable offset; v5 log start offset; v7 fetch sessions (we
never create one: session id 0 tells clients to send full requests); v9 current leader
epoch checks; v11 rack id; v12 flexible; v13 topic ids instead of names.
Only committed data is served. The request long-polls: it waits for a commit
notification until min_bytes are available or max_wait_ms has passed.
"""

from __future__ import annotations

from kafscale._fast import count_records
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import FetchRequest, FetchResponse
from kafscale.security.acls import Operation
from kafscale.storage.log import READ_AHEAD_BYTES

R = FetchResponse


@handles(ApiKey.FETCH, versions=(4, 17))
async def fetch(ctx, req: FetchRequest) -> FetchResponse:
    if ctx.version >= 7 and req.session_id != 0:
        return R(error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND, session_id=0, responses=[])
    rt = ctx.rt
    deadline = rt.monotonic() + max(req.max_wait_ms, 0) / 1000.0
    min_bytes = max(req.min_bytes, 0)
    max_bytes = req.max_bytes if req.max_bytes > 0 else 0x7FFFFFFF
    waited = 0.0
    while True:
        responses, total, errors = await _read_all(ctx, req, max_bytes)
        remaining = deadline - rt.monotonic()
        if total >= min_bytes or errors or remaining <= 0 or total >= max_bytes:
            _count_out(ctx, responses, waited)
            return R(error_code=0, session_id=0, responses=responses)
        t0 = rt.monotonic()
        await ctx.logs.wait_commit(remaining)
        waited += rt.monotonic() - t0


def _count_out(ctx, responses, waited: float) -> None:
    """Bytes and records out per topic (the answer's record batches), and the wait."""
    metrics = ctx.broker.metrics
    metrics.fetch_wait_seconds.observe(waited)
    for t in responses:
        size = records = 0
        for p in t.partitions:
            if p.records:
                size += len(p.records)
                records += count_records(p.records)
        if size:
            rec = ctx.logs.topics_by_id.get(t.topic_id) if not t.topic else None
            _, _, bytes_out, records_out = metrics.topic(t.topic or (rec.name if rec else "?"))
            bytes_out.inc(size)
            records_out.inc(records)


def _topic(logs, t, v: int):
    if v >= 13:
        return logs.topics_by_id.get(t.topic_id), ErrorCode.UNKNOWN_TOPIC_ID
    return logs.topic(t.topic), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


async def _prefetch(ctx, req: FetchRequest) -> None:
    """Start the S3 reads of every partition of the request side by side; the reads
    below, one partition after the other, then mostly wait on GETs already under way."""
    logs = ctx.logs
    for t in req.topics:
        rec, _ = _topic(logs, t, ctx.version)
        if rec is not None and not ctx.broker.authorizer.topic(ctx, Operation.READ, rec.name):
            continue
        for p in t.partitions if rec is not None else ():
            plog = logs.logs.get((rec.name, p.partition))
            if plog is not None:
                await plog.prefetch(p.fetch_offset, p.partition_max_bytes + READ_AHEAD_BYTES)


async def _read_all(ctx, req: FetchRequest, max_bytes: int):
    logs = ctx.logs
    v = ctx.version
    total, errors = 0, 0
    responses = []
    await _prefetch(ctx, req)
    for t in req.topics:
        rec, unknown = _topic(logs, t, v)
        if rec is not None and not ctx.broker.authorizer.topic(ctx, Operation.READ, rec.name):
            rec, unknown = None, ErrorCode.TOPIC_AUTHORIZATION_FAILED
        parts = []
        for p in t.partitions:
            if rec is None or not 0 <= p.partition < rec.partitions:
                parts.append(_error(p.partition, unknown))
                errors += 1
                continue
            try:
                plog = await logs.partition_log(rec.name, p.partition)
                epoch = plog.epoch
                if v >= 9 and p.current_leader_epoch >= 0 and p.current_leader_epoch != epoch:
                    code = (ErrorCode.FENCED_LEADER_EPOCH if p.current_leader_epoch < epoch
                            else ErrorCode.UNKNOWN_LEADER_EPOCH)
                    parts.append(_error(p.partition, code))
                    errors += 1
                    continue
                limit = min(p.partition_max_bytes, max_bytes - total)
                if limit <= 0:
                    result_records, hw, start = None, plog.hw, plog.log_start
                else:
                    result = await plog.read(p.fetch_offset, limit)
                    result_records, hw, start = result.records, result.hw, result.log_start
                size = len(result_records) if result_records is not None else 0
                total += size
                parts.append(R.PartitionData(
                    partition_index=p.partition, error_code=0, high_watermark=hw,
                    last_stable_offset=hw, log_start_offset=start, aborted_transactions=None
                    if v >= 4 else [], preferred_read_replica=-1,
                    records=result_records if size else b""))
            except KafkaError as exc:
                errors += 1
                parts.append(_error(p.partition, exc.code, getattr(plog, "hw", -1) if exc.code ==
                                    ErrorCode.OFFSET_OUT_OF_RANGE else -1,
                                    getattr(plog, "log_start", -1) if exc.code ==
                                    ErrorCode.OFFSET_OUT_OF_RANGE else -1))
        responses.append(R.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=parts))
    return responses, total, errors


def _error(partition: int, code: int, hw: int = -1, log_start: int = -1):
    return R.PartitionData(partition_index=partition, error_code=code, high_watermark=hw,
                           last_stable_offset=hw, log_start_offset=log_start, records=b"")
