"""Produce (key 0), versions 3-11 (magic v2 record batches only).

v3 adds transactional_id; v5 log_start_offset; v8 per-batch record errors; v9 flexible;
v10 current-leader hints. Idempotent batches (producer id >= 0) are de-duplicated
and sequence-checked per partition; transactional batches are refused. Partitions of one request are appended concurrently; each is
answered only once its data is in S3 and its high watermark committed in etcd.
acks=0 gets no response at all.
"""

from __future__ import annotations

import logging

from kafscale import _fast
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ProduceRequest, ProduceResponse
from kafscale.protocol.records import batch_producer, is_transactional

R = ProduceResponse
log = logging.getLogger(__name__)

# walk_batches status -> message
_CORRUPT = {1: "truncated record batch", 2: "record batch magic is not 2", 3: "record batch CRC mismatch",
            4: "record count does not match the batch"}


@handles(ApiKey.PRODUCE, versions=(3, 11))
async def produce(ctx, req: ProduceRequest) -> ProduceResponse | None:
    if req.acks not in (0, 1, -1):
        return _all(req, ErrorCode.INVALID_REQUIRED_ACKS)
    timeout = max(req.timeout_ms, 0) / 1000.0
    jobs = []
    for t in req.topic_data:
        for p in t.partition_data:
            jobs.append((t.name, p.index, p.records))
    results: dict[tuple[str, int], tuple[int, int, int, str | None]] = {}
    if len(jobs) == 1:
        name, index, records = jobs[0]
        results[(name, index)] = await _one(ctx, name, index, records, timeout)
    else:
        async def run(name, index, records):
            results[(name, index)] = await _one(ctx, name, index, records, timeout)
        tasks = [await ctx.rt.spawn(run, *job) for job in jobs]
        for task in tasks:
            await task.join()
    if req.acks == 0:
        return None
    return R(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
        _partition(p.index, *results[(t.name, p.index)]) for p in t.partition_data])
        for t in req.topic_data])


def _partition(index: int, code: int, base: int, log_start: int, message: str | None):
    return R.PartitionProduceResponse(index=index, error_code=code, base_offset=base,
                                      log_start_offset=log_start, error_message=message)


async def _one(ctx, name: str, index: int, records, timeout: float) -> tuple[int, int, int, str | None]:
    logs = ctx.logs
    rec = logs.topic(name)
    if rec is None:
        try:
            rec = await logs.ensure_topic(name)
        except KafkaError as exc:
            return exc.code, -1, -1, str(exc)
        if rec is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, None
    if not 0 <= index < rec.partitions:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, None
    if records is None or len(records) == 0:
        return ErrorCode.CORRUPT_MESSAGE, -1, -1, "no record batches"
    status, n_batches, n_offsets, max_ts, largest = _fast.walk_batches(records)
    if status:
        return ErrorCode.CORRUPT_MESSAGE, -1, -1, _CORRUPT.get(status, "corrupt record batch")
    if n_batches != 1:
        # As Kafka: a v3+ produce carries exactly one batch per partition.
        return ErrorCode.INVALID_RECORD, -1, -1, f"{n_batches} record batches; exactly one is allowed"
    pid, epoch, seq = batch_producer(records)
    if is_transactional(records):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1, "transactions are not supported"
    limit = logs.max_message_bytes(rec)
    if largest > limit:
        return ErrorCode.MESSAGE_TOO_LARGE, -1, -1, f"batch of {largest} bytes exceeds max.message.bytes {limit}"
    try:
        plog = await logs.owned_log(name, index)
        base = await plog.append(bytearray(records), n_offsets, max_ts, timeout,
                                 (pid, epoch, seq) if pid >= 0 else None)
        return 0, base, plog.log_start, None
    except KafkaError as exc:
        log.info("produce to %s-%d refused: %s (%s)", name, index, exc.code.name if hasattr(exc.code, "name")
                 else exc.code, exc)
        return exc.code, -1, -1, str(exc)


def _all(req: ProduceRequest, code: int) -> ProduceResponse:
    return R(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
        _partition(p.index, code, -1, -1, None) for p in t.partition_data]) for t in req.topic_data])
