"""Kafka v2 record batches (magic 2): build, iterate, decode. Sans-IO.

Batch (all integers big-endian)::

    @0  baseOffset           i64    @27 baseTimestamp   i64
    @8  batchLength          i32    @35 maxTimestamp    i64
    @12 partitionLeaderEpoch i32    @43 producerId      i64
    @16 magic = 2            i8     @51 producerEpoch   i16
    @17 crc                  u32    @53 baseSequence    i32
    @21 attributes           i16    @57 recordsCount    i32
    @23 lastOffsetDelta      i32    @61 records (compressed as a whole if bits 0-2 != 0)

``batchLength`` counts the bytes after itself (a batch is ``12 + batchLength`` bytes).
The CRC-32C covers @21 to the end. attributes: bits 0-2 compression (0 none, 1 gzip,
2 snappy, 3 lz4, 4 zstd), bit 3 timestampType (1 = LogAppendTime), bit 4 transactional,
bit 5 control.

Record (zig-zag varints)::

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value |
    headerCount varint | headers: keyLength varint | key (utf-8) |
                                   valueLength varint (-1 = null) | value

The hot paths (validating and re-offsetting produced batches, slicing fetch responses)
live in ``kafscale._fast``; this module is for building batches and for reading records
back (tests, tools, control records).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Optional

from kafscale import _fast
from kafscale._fast import codecs
from kafscale.errors import ErrorCode, KafkaError

__all__ = [
    "CorruptBatch",
    "InvalidBatch",
    "validate_produced",
    "Record",
    "BatchHeader",
    "BATCH_HEADER_SIZE",
    "build_batch",
    "iter_batches",
    "decode_batch_records",
    "decode_records",
    "batch_producer",
]

BATCH_HEADER_SIZE = 61
_LOG_OVERHEAD = 12
_MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - _LOG_OVERHEAD

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordsCount
_HEADER = struct.Struct(">qiibIhiqqqhii")
# the part after the crc: attributes .. recordsCount
_AFTER_CRC = struct.Struct(">hiqqqhii")
_PREFIX = struct.Struct(">qiib")
_PRODUCER = struct.Struct(">qhi")
assert _HEADER.size == BATCH_HEADER_SIZE

Header = tuple[str, Optional[bytes]]


class CorruptBatch(ValueError):
    """A record batch that cannot be parsed or fails its checks."""


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]
    attributes: int = 0


class BatchHeader(NamedTuple):
    """One batch found by ``iter_batches``: ``buf[position:position + length]`` is it."""

    base_offset: int
    length: int  # whole batch in bytes (12 + batchLength)
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    attributes: int
    records_count: int
    position: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def end(self) -> int:
        return self.position + self.length

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)


# ----------------------------------------------------------------------------- building

_varint = _fast.write_varint


def _encode_bytes(b) -> bytes:
    if b is None:
        return b"\x01"  # zig-zag(-1)
    b = bytes(b)
    return _varint(len(b)) + b


def _encode_record(offset_delta: int, timestamp_delta: int, key, value, headers) -> bytes:
    parts = [b"\x00", _varint(timestamp_delta), _varint(offset_delta), _encode_bytes(key), _encode_bytes(value)]
    headers = headers or ()
    parts.append(_varint(len(headers)))
    for hkey, hvalue in headers:
        if isinstance(hkey, str):
            hkey = hkey.encode("utf-8")
        parts.append(_encode_bytes(hkey))
        parts.append(_encode_bytes(hvalue))
    body = b"".join(parts)
    return _varint(len(body)) + body


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None, Iterable[tuple[str | bytes, bytes | None]] | None, int]],
    base_offset: int = 0,
    compression: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    *,
    log_append_time: bool = False,
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """A magic-2 batch of ``records`` = [(key, value, headers, timestamp_ms), ...].

    ``baseTimestamp`` is the first record's timestamp, ``maxTimestamp`` the largest;
    offset deltas are 0..n-1. ``compression`` is the Kafka codec id (0-4).
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    if not 0 <= compression <= 4:
        raise ValueError(f"unknown compression codec {compression!r}")
    records = list(records)
    base_ts = records[0][3]
    max_ts = max(r[3] for r in records)
    body = b"".join(
        _encode_record(i, ts - base_ts, key, value, [tuple(h) for h in headers or ()])
        for i, (key, value, headers, ts) in enumerate(records)
    )
    if compression:
        body = codecs.compress(compression, body)
    attributes = compression
    if log_append_time:
        attributes |= TIMESTAMP_TYPE_MASK
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    after_crc = _AFTER_CRC.pack(
        attributes,
        len(records) - 1,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    crc = _fast.crc32c(body, _fast.crc32c(after_crc))
    batch_length = BATCH_HEADER_SIZE - _LOG_OVERHEAD + len(body)
    prefix = struct.pack(">qiibI", base_offset, batch_length, partition_leader_epoch, 2, crc)
    return b"".join((prefix, after_crc, body))


# ----------------------------------------------------------------------------- reading


def iter_batches(buf, *, allow_partial: bool = False) -> Iterator[BatchHeader]:
    """Headers of the consecutive batches in ``buf`` (no CRC check, no decompression).

    A batch running past the end raises CorruptBatch, or ends the iteration quietly when
    ``allow_partial`` (fetch responses may end in a partial batch).
    """
    mv = memoryview(buf).cast("B") if not isinstance(buf, (bytes, bytearray)) else buf
    n = len(mv)
    pos = 0
    while pos < n:
        if n - pos < BATCH_HEADER_SIZE:
            if allow_partial:
                return
            raise CorruptBatch(f"truncated batch header at byte {pos}")
        (base_offset, batch_length, _epoch, magic, _crc, attributes, last_delta,
         base_ts, max_ts, _pid, _pepoch, _seq, count) = _HEADER.unpack_from(mv, pos)
        if magic != 2:
            raise CorruptBatch(f"unsupported magic {magic} at byte {pos}")
        if batch_length < _MIN_BATCH_LENGTH:
            raise CorruptBatch(f"batchLength {batch_length} too small at byte {pos}")
        size = _LOG_OVERHEAD + batch_length
        if size > n - pos:
            if allow_partial:
                return
            raise CorruptBatch(f"batch at byte {pos} runs past the end")
        yield BatchHeader(base_offset, size, last_delta, base_ts, max_ts, attributes, count, pos)
        pos += size


def is_transactional(buf, position: int = 0) -> bool:
    """Whether the batch at ``position`` has the transactional attribute bit set."""
    if len(buf) - position < BATCH_HEADER_SIZE:
        raise CorruptBatch("truncated batch header")
    return bool(buf[position + 22] & TRANSACTIONAL_MASK)


def batch_producer(buf, position: int = 0) -> tuple[int, int, int]:
    """(producerId, producerEpoch, baseSequence) of the batch at ``position``."""
    if len(buf) - position < BATCH_HEADER_SIZE:
        raise CorruptBatch("truncated batch header")
    return _PRODUCER.unpack_from(buf, position + 43)


def _decode_records(data, count: int, base_offset: int, base_ts: int, max_ts: int,
                    log_append_time: bool) -> list[Record]:
    read_varint = _fast.read_varint
    read_varlong = _fast.read_varlong
    n = len(data)
    out: list[Record] = []
    p = 0
    try:
        for _ in range(count):
            length, p = read_varint(data, p)
            if length < 1 or length > n - p:
                raise CorruptBatch(f"record length {length} out of bounds")
            end = p + length
            view = data[:end]  # varints of one record may not run into the next
            attributes = data[p]
            ts_delta, p = read_varlong(view, p + 1)
            offset_delta, p = read_varint(view, p)
            key_len, p = read_varint(view, p)
            if key_len < -1 or key_len > end - p:
                raise CorruptBatch("record key out of bounds")
            key = None if key_len < 0 else bytes(data[p : p + key_len])
            p += max(key_len, 0)
            value_len, p = read_varint(view, p)
            if value_len < -1 or value_len > end - p:
                raise CorruptBatch("record value out of bounds")
            value = None if value_len < 0 else bytes(data[p : p + value_len])
            p += max(value_len, 0)
            n_headers, p = read_varint(view, p)
            if n_headers < 0 or n_headers > end - p:
                raise CorruptBatch("bad header count")
            headers: list[Header] = []
            for _h in range(n_headers):
                hk_len, p = read_varint(view, p)
                if hk_len < 0 or hk_len > end - p:
                    raise CorruptBatch("header key out of bounds")
                hkey = bytes(data[p : p + hk_len]).decode("utf-8")
                p += hk_len
                hv_len, p = read_varint(view, p)
                if hv_len < -1 or hv_len > end - p:
                    raise CorruptBatch("header value out of bounds")
                hvalue = None if hv_len < 0 else bytes(data[p : p + hv_len])
                p += max(hv_len, 0)
                headers.append((hkey, hvalue))
            if p != end:
                raise CorruptBatch("record length does not match its fields")
            ts = max_ts if log_append_time else base_ts + ts_delta
            out.append(Record(base_offset + offset_delta, ts, key, value, headers, attributes))
    except CorruptBatch:
        raise
    except (ValueError, IndexError) as exc:  # truncated varints, bad utf-8
        raise CorruptBatch(f"malformed record: {exc}") from None
    if p != n:
        raise CorruptBatch(f"{n - p} bytes left after {count} records")
    return out


def decode_batch_records(batch_bytes, max_size: int = codecs.DEFAULT_MAX_SIZE, *,
                         verify_crc: bool = True) -> list[Record]:
    """The records of the one batch ``batch_bytes`` holds, decompressed, with absolute
    offsets and timestamps. Raises CorruptBatch on malformed data, a bad CRC, or a
    compressed payload inflating past ``max_size``."""
    mv = memoryview(batch_bytes).cast("B")
    n = len(mv)
    if n < BATCH_HEADER_SIZE:
        raise CorruptBatch("truncated batch header")
    (base_offset, batch_length, _epoch, magic, crc, attributes, last_delta,
     base_ts, max_ts, _pid, _pepoch, _seq, count) = _HEADER.unpack_from(mv, 0)
    if magic != 2:
        raise CorruptBatch(f"unsupported magic {magic}")
    if batch_length < _MIN_BATCH_LENGTH or _LOG_OVERHEAD + batch_length != n:
        raise CorruptBatch(f"batchLength {batch_length} does not match {n} bytes")
    if verify_crc and _fast.crc32c(mv[21:]) != crc:
        raise CorruptBatch("CRC-32C mismatch")
    if count < 0:
        raise CorruptBatch(f"negative record count {count}")
    payload = mv[BATCH_HEADER_SIZE:]
    codec = attributes & COMPRESSION_MASK
    if codec:
        try:
            payload = memoryview(codecs.decompress(codec, payload, max_size))
        except ValueError as exc:
            raise CorruptBatch(f"cannot decompress ({codecs.CODEC_NAMES.get(codec, codec)}): {exc}") from None
    return _decode_records(payload, count, base_offset, base_ts, max_ts,
                           bool(attributes & TIMESTAMP_TYPE_MASK))


def decode_records(buf, max_size: int = codecs.DEFAULT_MAX_SIZE) -> list[Record]:
    """All records of all batches in ``buf`` (whole batches only)."""
    mv = memoryview(buf).cast("B")
    out: list[Record] = []
    for h in iter_batches(mv):
        out.extend(decode_batch_records(mv[h.position : h.end], max_size))
    return out


# ----------------------------------------------------------------------------- validation


class InvalidBatch(KafkaError):
    """Produced records that Kafka's broker would refuse: the code to answer with, the
    reason, and the index of the record at fault (-1 when it is the batch as a whole)."""

    def __init__(self, message: str, code: ErrorCode, record: int = -1) -> None:
        super().__init__(message, code)
        self.record = record


# walk_batches / check_records status -> (code, what was wrong)
_REFUSALS = {
    _fast.TRUNCATED: (ErrorCode.CORRUPT_MESSAGE, "truncated record batch"),
    _fast.BAD_MAGIC: (ErrorCode.CORRUPT_MESSAGE, "record batch magic is not 2"),
    _fast.BAD_CRC: (ErrorCode.CORRUPT_MESSAGE, "record batch CRC mismatch"),
    _fast.BAD_COUNT: (ErrorCode.CORRUPT_MESSAGE, "the records do not match the batch's record count"),
    _fast.BAD_OFFSETS: (ErrorCode.INVALID_RECORD, "record offset deltas are not 0..count-1"),
    _fast.BAD_TIMESTAMP: (ErrorCode.INVALID_RECORD,
                          "the batch's maxTimestamp is not the largest record timestamp"),
    _fast.NULL_KEY: (ErrorCode.INVALID_RECORD, "a compacted topic cannot accept a record without a key"),
    _fast.BAD_CODEC: (ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "unknown compression codec"),
    _fast.CONTROL: (ErrorCode.INVALID_RECORD, "clients may not write control batches"),
    _fast.BAD_SEQUENCE: (ErrorCode.INVALID_RECORD, "a batch with a producer id needs a base sequence >= 0"),
}


def _refuse(status: int, record: int = -1, detail: str = "") -> InvalidBatch:
    code, what = _REFUSALS.get(status, (ErrorCode.CORRUPT_MESSAGE, "corrupt record batch"))
    where = f" (record {record})" if record >= 0 else ""
    return InvalidBatch(f"{what}{where}{detail}", code, record)


def validate_produced(records, *, require_keys: bool = False,
                      max_size: int = codecs.DEFAULT_MAX_SIZE) -> tuple[int, int, int, int]:
    """Check a produced records blob as Kafka's broker does before it appends one.

    Every batch: framing, magic 2, CRC, record count against lastOffsetDelta, a known
    codec, no control batch, a base sequence with a producer id; the records (a
    compressed batch is decompressed, at most ``max_size`` bytes, and walked): exactly
    recordsCount well-formed records, offset deltas 0..count-1, maxTimestamp the largest
    record timestamp (CreateTime batches), and with ``require_keys`` (compacted topics)
    a key on every record. Returns ``(n_batches, n_offsets, max_timestamp,
    largest_batch_bytes)``; raises InvalidBatch on the first fault.
    """
    flags = _fast.FROM_CLIENT | _fast.CHECK_TIMESTAMPS | (_fast.REQUIRE_KEYS if require_keys else 0)
    status, n_batches, n_offsets, max_ts, largest = _fast.walk_batches(records, flags)
    if status != _fast.OK:
        if status in (_fast.BAD_OFFSETS, _fast.NULL_KEY) and n_batches == 0:
            raise _refuse(status, _record_at_fault(records, flags))
        raise _refuse(status)
    mv = None
    for h in iter_batches(records):
        if not h.compression:
            continue  # walk_batches checked its records
        if mv is None:
            mv = memoryview(records).cast("B") if not isinstance(records, (bytes, bytearray)) else memoryview(records)
        try:
            payload = codecs.decompress(h.compression, mv[h.position + BATCH_HEADER_SIZE:h.end], max_size)
        except ValueError as exc:
            raise InvalidBatch(f"cannot decompress the {codecs.CODEC_NAMES[h.compression]} batch: {exc}",
                               ErrorCode.CORRUPT_MESSAGE) from None
        record_flags = flags & ~_fast.CHECK_TIMESTAMPS if h.log_append_time else flags
        status, at = _fast.check_records(payload, h.records_count, h.base_timestamp, h.max_timestamp,
                                         record_flags)
        if status != _fast.OK:
            raise _refuse(status, at if status in (_fast.BAD_OFFSETS, _fast.NULL_KEY) else -1,
                          f" in the {codecs.CODEC_NAMES[h.compression]} batch")
    return n_batches, n_offsets, max_ts, largest


def _record_at_fault(records, flags: int) -> int:
    """The index of the record an uncompressed first batch failed on (walk_batches does
    not say; only asked once it failed)."""
    h = next(iter_batches(records, allow_partial=True), None)
    if h is None:
        return -1
    mv = memoryview(records).cast("B") if not isinstance(records, (bytes, bytearray)) else memoryview(records)
    _status, at = _fast.check_records(mv[h.position + BATCH_HEADER_SIZE:h.end], h.records_count,
                                      h.base_timestamp, h.max_timestamp, flags)
    return at
