"""Produce (key 0), versions 3-11 (magic v2 record batches only).

v3 adds transactional_id; v5 log_start_offset; v8 per-batch record errors; v9 flexible;
v10 current-leader hints. Idempotent batches (producer id >= 0) are de-duplicated
and sequence-checked per partition; transactional batches are refused. Partitions of one request are appended concurrently; each is
answered only once its data is in S3 and its high watermark committed in etcd.
acks=0 gets no response at all.
"""

from __future__ import annotations

import logging
import time

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ProduceRequest, ProduceResponse
from kafscale.security.acls import Operation
from kafscale.protocol.records import InvalidBatch, batch_producer, is_transactional, validate_produced

R = ProduceResponse
log = logging.getLogger(__name__)


@handles(ApiKey.PRODUCE, versions=(3, 11))
async def produce(ctx, req: ProduceRequest) -> ProduceResponse | None:
    if req.acks not in (0, 1, -1):
        return _all(req, ErrorCode.INVALID_REQUIRED_ACKS)
    timeout = max(req.timeout_ms, 0) / 1000.0
    results: dict[tuple[str, int], Result] = {}
    try:
        staged = await _validate_and_stage(ctx, req, timeout, results)
    finally:
        await ctx.pass_turn()
    # 3. Flush, and answer once committed (the partitions' flushes run side by side).
    for _key, plog, _s, _n in staged:
        await plog.kick()
    metrics = ctx.broker.metrics
    for key, plog, item, (size, records) in staged:
        try:
            results[key] = (0, await plog.committed(item, timeout), plog.log_start, None, [])
            bytes_in, records_in, _, _ = metrics.topic(key[0])
            bytes_in.inc(size)
            records_in.inc(records)
        except KafkaError as exc:
            results[key] = _refused(ctx, key, exc)
    if req.acks == 0:
        return None
    if ctx.arrived:
        metrics.produce_ack_seconds.observe(time.monotonic() - ctx.arrived)
    return R(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
        _partition(p.index, *results[(t.name, p.index)]) for p in t.partition_data])
        for t in req.topic_data])


async def _validate_and_stage(ctx, req: ProduceRequest, timeout: float, results: dict) -> list:
    logs = ctx.logs
    # 1. Validate every partition and find its log (claiming it if it is ours to claim).
    ready = []
    for t in req.topic_data:
        for p in t.partition_data:
            key = (t.name, p.index)
            try:
                ready.append((key, *await _prepare(ctx, t.name, p.index, p.records)))
            except KafkaError as exc:
                results[key] = _refused(ctx, key, exc)
    # 2. Stage them all in this connection's arrival order (requests of one connection
    #    are handled concurrently) and without awaiting in between.
    await ctx.in_turn()
    try:
        await logs.wait_for_room(sum(len(r[2]) for r in ready), timeout)
    except KafkaError as exc:
        for key, *_ in ready:
            results[key] = _refused(ctx, key, exc)
        ready = []
    staged = []
    for key, plog, buf, n_offsets, max_ts, producer in ready:
        try:
            staged.append((key, plog, plog.stage(buf, n_offsets, max_ts, producer), (len(buf), n_offsets)))
        except KafkaError as exc:
            results[key] = _refused(ctx, key, exc)
    return staged


Result = tuple[int, int, int, "str | None", list]


def _partition(index: int, code: int, base: int, log_start: int, message: str | None, record_errors: list):
    return R.PartitionProduceResponse(index=index, error_code=code, base_offset=base, log_start_offset=log_start,
                                      error_message=message, record_errors=record_errors)


def _refused(ctx, key: tuple[str, int], exc: KafkaError) -> Result:
    if exc.code not in _QUIET:
        log.info("produce to %s-%d refused: %s (%s)", key[0], key[1], getattr(exc.code, "name", exc.code), exc,
                 extra={"topic": key[0], "partition": key[1], **ctx.log_context})
    return exc.code, -1, -1, str(exc), _record_errors(exc)


def _record_errors(exc: KafkaError) -> list:
    """Per-record errors (v8+) for a batch refused because of one of its records."""
    if isinstance(exc, InvalidBatch) and exc.record >= 0:
        return [R.BatchIndexAndErrorMessage(batch_index=exc.record, batch_index_error_message=str(exc))]
    return []


class _Refuse(KafkaError):
    pass


# Expected per-request outcomes of bad input, answered without a log line.
_QUIET = {ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD, ErrorCode.MESSAGE_TOO_LARGE,
          ErrorCode.TOPIC_AUTHORIZATION_FAILED,
          ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}


async def _prepare(ctx, name: str, index: int, records):
    """Validate one partition's records; (log, writable batch, offsets, max timestamp, producer)."""
    logs = ctx.logs
    authz = ctx.broker.authorizer
    if not authz.topic(ctx, Operation.WRITE, name):
        raise _Refuse(f"not authorized to write to {name}", ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    rec = logs.topic(name) or (await logs.ensure_topic(name) if authz.may_create_topic(ctx, name)
                               else await logs.lookup_topic(name))
    if rec is None or not 0 <= index < rec.partitions:
        raise _Refuse("unknown topic or partition", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if records is None or len(records) == 0:
        raise _Refuse("no record batches", ErrorCode.CORRUPT_MESSAGE)
    # Everything Kafka's broker checks before an append, compressed records included:
    # nothing invalid is ever stored (protocol/records.py).
    n_batches, n_offsets, max_ts, largest = validate_produced(
        records, require_keys=logs.is_compacted(rec))
    if n_batches != 1:
        # As Kafka: a v3+ produce carries exactly one batch per partition.
        raise _Refuse(f"{n_batches} record batches; exactly one is allowed", ErrorCode.INVALID_RECORD)
    if is_transactional(records):
        raise _Refuse("transactions are not supported", ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    limit = logs.max_message_bytes(rec)
    if largest > limit:
        raise _Refuse(f"batch of {largest} bytes exceeds max.message.bytes {limit}", ErrorCode.MESSAGE_TOO_LARGE)
    pid, epoch, seq = batch_producer(records)
    plog = await logs.owned_log(name, index)
    return plog, bytearray(records), n_offsets, max_ts, ((pid, epoch, seq) if pid >= 0 else None)


def _all(req: ProduceRequest, code: int) -> ProduceResponse:
    return R(responses=[R.TopicProduceResponse(name=t.name, partition_responses=[
        _partition(p.index, code, -1, -1, None, []) for p in t.partition_data]) for t in req.topic_data])
