"""Pure-Python twins of the Cython kernels in ``_kernels.pyx``.

Same names, same signatures, same results and same exceptions as the compiled module;
``kafscale._fast`` picks one of the two at import. Keep both in step: the unit tests run
every kernel test against both.

Kafka v2 record batch header (61 bytes, big-endian)::

    @0  baseOffset           i64    @27 baseTimestamp   i64
    @8  batchLength          i32    @35 maxTimestamp    i64
    @12 partitionLeaderEpoch i32    @43 producerId      i64
    @16 magic                i8     @51 producerEpoch   i16
    @17 crc (CRC-32C, u32)   u32    @53 baseSequence    i32
    @21 attributes           i16    @57 recordsCount    i32
    @23 lastOffsetDelta      i32    @61 records...

``batchLength`` counts the bytes after itself, so a batch is ``12 + batchLength`` bytes;
the CRC covers attributes (@21) to the end of the batch, not baseOffset, so offsets can
be rewritten without recomputing it.
"""

from __future__ import annotations

import struct

__all__ = [
    "OK",
    "count_records",
    "TRUNCATED",
    "BAD_MAGIC",
    "BAD_CRC",
    "BAD_COUNT",
    "BAD_OFFSETS",
    "BAD_TIMESTAMP",
    "NULL_KEY",
    "BAD_CODEC",
    "CONTROL",
    "BAD_SEQUENCE",
    "CHECK_TIMESTAMPS",
    "REQUIRE_KEYS",
    "FROM_CLIENT",
    "BATCH_HEADER_SIZE",
    "crc32c",
    "read_varint",
    "read_varlong",
    "read_uvarint",
    "write_varint",
    "write_uvarint",
    "walk_batches",
    "check_records",
    "rewrite_base_offsets",
    "scan_batches",
    "find_timestamp",
    "build_index",
    "index_floor",
]

# walk_batches / check_records statuses
OK = 0
TRUNCATED = 1
BAD_MAGIC = 2
BAD_CRC = 3
BAD_COUNT = 4
BAD_OFFSETS = 5
BAD_TIMESTAMP = 6
NULL_KEY = 7
BAD_CODEC = 8
CONTROL = 9
BAD_SEQUENCE = 10

# check flags
CHECK_TIMESTAMPS = 1
REQUIRE_KEYS = 2
FROM_CLIENT = 4

BATCH_HEADER_SIZE = 61
_LOG_OVERHEAD = 12  # baseOffset + batchLength
_MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - _LOG_OVERHEAD  # 49
_INDEX_ENTRY = 12

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_ENTRY = struct.Struct(">qi")
# baseOffset, batchLength, partitionLeaderEpoch, magic
_PREFIX = struct.Struct(">qiib")
# crc, attributes, lastOffsetDelta, baseTimestamp, maxTimestamp
_MIDDLE = struct.Struct(">Ihiqq")
_RECORDS_COUNT = struct.Struct(">i")
# producerId, producerEpoch, baseSequence
_PRODUCER = struct.Struct(">qhi")

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_table()


def _bytes_view(buf) -> memoryview:
    # the same acceptance rules (and exception types) as a Cython ``unsigned char[::1]``
    mv = memoryview(buf)
    if mv.ndim != 1:
        raise ValueError(f"Buffer has wrong number of dimensions (expected 1, got {mv.ndim})")
    if mv.format != "B":
        raise ValueError(f"Buffer dtype mismatch, expected 'unsigned char' but got {mv.format!r}")
    if not mv.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return mv


def crc32c(buf, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``buf``; ``crc`` continues a previous result."""
    mv = _bytes_view(buf)
    if not 0 <= crc <= 0xFFFFFFFF:
        raise OverflowError("crc must be an unsigned 32-bit value")
    table = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in mv:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _read_raw(mv: memoryview, pos: int, max_bytes: int, limit: int) -> tuple[int, int]:
    """Base-128 decode of at most ``max_bytes`` (5 or 10) bytes in ``mv[pos:limit]``."""
    if _i64(pos) < 0:
        raise ValueError("negative position")
    result = 0
    shift = 0
    for i in range(max_bytes):
        if pos >= limit:
            raise ValueError("truncated varint")
        b = mv[pos]
        pos += 1
        if i == max_bytes - 1:
            # the last byte may only carry the bits left of the 32/64-bit width
            if b > (0x0F if max_bytes == 5 else 0x01):
                raise ValueError("varint too long")
            return result | (b << shift), pos
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise AssertionError("unreachable")


def read_varint(buf, pos: int) -> tuple[int, int]:
    """Zig-zag signed varint (at most 5 bytes, int32) at ``pos`` -> (value, new_pos)."""
    mv = _bytes_view(buf)
    raw, pos = _read_raw(mv, pos, 5, len(mv))
    return (raw >> 1) ^ -(raw & 1), pos


def read_varlong(buf, pos: int) -> tuple[int, int]:
    """Zig-zag signed varlong (at most 10 bytes, int64) at ``pos`` -> (value, new_pos)."""
    mv = _bytes_view(buf)
    raw, pos = _read_raw(mv, pos, 10, len(mv))
    return (raw >> 1) ^ -(raw & 1), pos


def read_uvarint(buf, pos: int) -> tuple[int, int]:
    """Unsigned varint (at most 5 bytes, uint32) at ``pos`` -> (value, new_pos)."""
    mv = _bytes_view(buf)
    return _read_raw(mv, pos, 5, len(mv))


def _write_raw(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def write_varint(n: int) -> bytes:
    """Zig-zag encode a signed int64 (a varint for int32 values, a varlong beyond)."""
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise OverflowError("value out of int64 range")
    return _write_raw(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def write_uvarint(n: int) -> bytes:
    """Encode an unsigned 32-bit value as an unsigned varint."""
    if not 0 <= n <= 0xFFFFFFFF:
        raise OverflowError("value out of uint32 range")
    return _write_raw(n)


def _zz(raw: int) -> int:
    return (raw >> 1) ^ -(raw & 1)


def _check_records(mv: memoryview, p: int, end: int, count: int, base_ts: int, max_ts: int,
                   flags: int) -> tuple[int, int]:
    """(status, index of the record at fault) of the records in ``mv[p:end]`` (see
    ``check_records``)."""
    largest = None
    i = 0
    try:
        for i in range(count):
            raw, p = _read_raw(mv, p, 5, end)
            length = _zz(raw)
            if length < 1 or length > end - p:
                return BAD_COUNT, i
            rend = p + length
            p += 1  # attributes
            raw, p = _read_raw(mv, p, 10, rend)  # timestampDelta
            ts = base_ts + _zz(raw)
            if largest is None or ts > largest:
                largest = ts
            raw, p = _read_raw(mv, p, 5, rend)  # offsetDelta
            if _zz(raw) != i:
                return BAD_OFFSETS, i
            for field in range(2):  # key, value
                raw, p = _read_raw(mv, p, 5, rend)
                flen = _zz(raw)
                if flen < -1 or flen > rend - p:
                    return BAD_COUNT, i
                if flen > 0:
                    p += flen
                elif flen < 0 and field == 0 and flags & REQUIRE_KEYS:
                    return NULL_KEY, i
            raw, p = _read_raw(mv, p, 5, rend)
            nheaders = _zz(raw)
            if nheaders < 0:
                return BAD_COUNT, i
            for _h in range(nheaders):
                raw, p = _read_raw(mv, p, 5, rend)
                klen = _zz(raw)
                if klen < 0 or klen > rend - p:
                    return BAD_COUNT, i
                p += klen
                raw, p = _read_raw(mv, p, 5, rend)
                vlen = _zz(raw)
                if vlen < -1 or vlen > rend - p:
                    return BAD_COUNT, i
                if vlen > 0:
                    p += vlen
            if p != rend:
                return BAD_COUNT, i
    except ValueError:  # truncated or over-long varint
        return BAD_COUNT, i
    if p != end:
        return BAD_COUNT, count
    if flags & CHECK_TIMESTAMPS and largest is not None and largest != max_ts:
        return BAD_TIMESTAMP, count
    return OK, count


def check_records(buf, count: int, base_timestamp: int, max_timestamp: int, flags: int = 0) -> tuple[int, int]:
    """Check the (decompressed) records of one batch against its header fields.

    Returns ``(status, record_index)``: OK, or BAD_COUNT (not exactly ``count``
    well-formed records), BAD_OFFSETS (offset deltas not 0..count-1), BAD_TIMESTAMP
    (with CHECK_TIMESTAMPS: the largest record timestamp is not ``max_timestamp``) or
    NULL_KEY (with REQUIRE_KEYS), and the index of the record at fault.
    """
    mv = _bytes_view(buf)
    if not _INT32_MIN <= count <= _INT32_MAX:
        raise OverflowError("value too large to convert to int32_t")
    _i64(base_timestamp)
    _i64(max_timestamp)
    if count < 0:
        return BAD_COUNT, 0
    if len(mv) == 0:
        return (OK if count == 0 else BAD_COUNT), 0
    return _check_records(mv, 0, len(mv), count, base_timestamp, max_timestamp, flags)


def walk_batches(buf, flags: int = 0) -> tuple[int, int, int, int, int]:
    """Validate every batch of a records blob.

    Returns ``(status, n_batches, n_offsets, max_timestamp, largest_batch_bytes)``; on a
    bad batch the counters cover the good batches before it. Checks per batch, in order:
    magic (as soon as its byte is present, so a short v0/v1 message set is BAD_MAGIC),
    framing (TRUNCATED), CRC, counts (BAD_COUNT), the codec id (BAD_CODEC); with
    FROM_CLIENT no control batch (CONTROL) and no producer id without a sequence
    (BAD_SEQUENCE); and for uncompressed batches the records as ``check_records`` does
    (CHECK_TIMESTAMPS applies to CreateTime batches only). Never decompresses: the
    records of a compressed batch are for the caller to check.
    """
    mv = _bytes_view(buf)
    if not _INT32_MIN <= flags <= _INT32_MAX:
        raise OverflowError("value too large to convert to int")
    n = len(mv)
    pos = 0
    n_batches = 0
    n_offsets = 0
    max_ts = -1
    largest = 0
    if n == 0:
        return TRUNCATED, 0, 0, -1, 0
    while pos < n:
        remaining = n - pos
        if remaining < 17:
            return TRUNCATED, n_batches, n_offsets, max_ts, largest
        _, batch_length, _, magic = _PREFIX.unpack_from(mv, pos)
        if magic != 2:
            return BAD_MAGIC, n_batches, n_offsets, max_ts, largest
        if remaining < BATCH_HEADER_SIZE or batch_length < _MIN_BATCH_LENGTH:
            return TRUNCATED, n_batches, n_offsets, max_ts, largest
        size = _LOG_OVERHEAD + batch_length
        if size > remaining:
            return TRUNCATED, n_batches, n_offsets, max_ts, largest
        end = pos + size
        stored_crc, attributes, last_delta, _, batch_max_ts = _MIDDLE.unpack_from(mv, pos + 17)
        if crc32c(mv[pos + 21 : end]) != stored_crc:
            return BAD_CRC, n_batches, n_offsets, max_ts, largest
        (count,) = _RECORDS_COUNT.unpack_from(mv, pos + 57)
        if count <= 0 or last_delta != count - 1:
            return BAD_COUNT, n_batches, n_offsets, max_ts, largest
        if attributes & 0x07 > 4:
            return BAD_CODEC, n_batches, n_offsets, max_ts, largest
        if flags & FROM_CLIENT:
            if attributes & 0x20:
                return CONTROL, n_batches, n_offsets, max_ts, largest
            pid, _epoch, seq = _PRODUCER.unpack_from(mv, pos + 43)
            if pid >= 0 and seq < 0:
                return BAD_SEQUENCE, n_batches, n_offsets, max_ts, largest
        if attributes & 0x07 == 0:
            (base_ts,) = _I64.unpack_from(mv, pos + 27)
            record_flags = flags & ~CHECK_TIMESTAMPS if attributes & 0x08 else flags
            status, _at = _check_records(mv, pos + BATCH_HEADER_SIZE, end, count, base_ts, batch_max_ts,
                                         record_flags)
            if status != OK:
                return status, n_batches, n_offsets, max_ts, largest
        n_batches += 1
        n_offsets += last_delta + 1
        if batch_max_ts > max_ts:
            max_ts = batch_max_ts
        if size > largest:
            largest = size
        pos = end
    return OK, n_batches, n_offsets, max_ts, largest


def _batch_size(mv: memoryview, pos: int, n: int) -> int:
    """Size of the batch at ``pos`` if it is whole inside ``mv[:n]``, else -1."""
    if n - pos < BATCH_HEADER_SIZE:
        return -1
    (batch_length,) = _I32.unpack_from(mv, pos + 8)
    if batch_length < _MIN_BATCH_LENGTH or _LOG_OVERHEAD + batch_length > n - pos:
        return -1
    return _LOG_OVERHEAD + batch_length


def _i64(value: int) -> int:
    # mirrors the OverflowError of a Cython int64_t / Py_ssize_t argument
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise OverflowError("Python int too large to convert to C long")
    return value


def _check_start(start: int, n: int) -> None:
    _i64(start)
    if start < 0 or start > n:
        raise ValueError(f"start {start} outside buffer of {n} bytes")


def count_records(buf) -> int:
    """The records of the whole batches at the start of ``buf`` (their headers' record
    counts; a partial batch at the end, as a fetch may return, is not counted)."""
    mv = _bytes_view(buf)
    n, pos, total = len(mv), 0, 0
    while True:
        size = _batch_size(mv, pos, n)
        if size < 0:
            return total
        total += _I32.unpack_from(mv, pos + 57)[0]
        pos += size


def rewrite_base_offsets(buf, base_offset: int, leader_epoch: int = -1) -> int:
    """Give each batch consecutive offsets from ``base_offset``; return the next offset.

    A ``leader_epoch`` >= 0 is stamped into each batch's partitionLeaderEpoch (like the
    base offset, outside the CRC). ``buf`` must be writable and consist of whole batches
    (ValueError otherwise, before anything is written).
    """
    mv = _bytes_view(buf)
    if mv.readonly:
        raise BufferError("Object is not writable.")
    if not _INT64_MIN <= base_offset <= _INT64_MAX:
        raise OverflowError("base_offset out of int64 range")
    if not _INT32_MIN <= leader_epoch <= _INT32_MAX:
        raise OverflowError("value too large to convert to int32_t")
    n = len(mv)
    pos = 0
    while pos < n:
        size = _batch_size(mv, pos, n)
        if size < 0:
            raise ValueError(f"truncated batch at byte {pos}")
        pos += size
    pos = 0
    nxt = base_offset
    while pos < n:
        _I64.pack_into(mv, pos, nxt)
        if leader_epoch >= 0:
            _I32.pack_into(mv, pos + 12, leader_epoch)
        (batch_length,) = _I32.unpack_from(mv, pos + 8)
        (last_delta,) = _I32.unpack_from(mv, pos + 23)
        nxt += last_delta + 1
        pos += _LOG_OVERHEAD + batch_length
    return nxt


def scan_batches(buf, start: int, target_offset: int, max_bytes: int) -> tuple[int, int]:
    """Byte range of whole batches to serve a fetch at ``target_offset``.

    Skips batches that end before ``target_offset``, then takes batches while the range
    stays within ``max_bytes``, but always at least one (KIP-74). Stops at a truncated batch.
    """
    mv = _bytes_view(buf)
    n = len(mv)
    _check_start(start, n)
    _i64(target_offset)
    _i64(max_bytes)
    pos = start
    while True:
        size = _batch_size(mv, pos, n)
        if size < 0:
            return pos, pos
        (base,) = _I64.unpack_from(mv, pos)
        (last_delta,) = _I32.unpack_from(mv, pos + 23)
        if base + last_delta >= target_offset:
            break
        pos += size
    begin = pos
    end = pos + size
    while True:
        size = _batch_size(mv, end, n)
        if size < 0 or end + size - begin > max_bytes:
            return begin, end
        end += size


def find_timestamp(buf, start: int, timestamp: int) -> int:
    """Byte position of the first batch with maxTimestamp >= ``timestamp``, or -1."""
    mv = _bytes_view(buf)
    n = len(mv)
    _check_start(start, n)
    _i64(timestamp)
    pos = start
    while True:
        size = _batch_size(mv, pos, n)
        if size < 0:
            return -1
        (max_ts,) = _I64.unpack_from(mv, pos + 35)
        if max_ts >= timestamp:
            return pos
        pos += size


def build_index(buf, position_base: int, interval: int) -> bytes:
    """Sparse index entries (i64 base offset, i32 position_base + byte position).

    The first batch always gets an entry; later a batch gets one once ``interval``
    records (recordsCount) were passed since the last entry. ``interval <= 0`` acts as 1.
    Raises ValueError on a truncated batch.
    """
    mv = _bytes_view(buf)
    n = len(mv)
    _i64(position_base)
    if _i64(interval) <= 0:
        interval = 1
    out = bytearray()
    pos = 0
    since = 0
    first = True
    while pos < n:
        size = _batch_size(mv, pos, n)
        if size < 0:
            raise ValueError(f"truncated batch at byte {pos}")
        if first or since >= interval:
            position = position_base + pos
            if not _INT32_MIN <= position <= _INT32_MAX:
                raise OverflowError("index position out of int32 range")
            (base,) = _I64.unpack_from(mv, pos)
            out += _ENTRY.pack(base, position)
            since = 0
            first = False
        (count,) = _RECORDS_COUNT.unpack_from(mv, pos + 57)
        since += count
        pos += size
    return bytes(out)


def index_floor(entries, offset: int) -> int:
    """Position of the greatest entry whose offset <= ``offset``, or -1 if none."""
    mv = _bytes_view(entries)
    n = len(mv)
    _i64(offset)
    if n % _INDEX_ENTRY:
        raise ValueError("index entries must be a multiple of 12 bytes")
    lo = 0
    hi = n // _INDEX_ENTRY
    # invariant: entries[:lo] <= offset < entries[hi:]
    while lo < hi:
        mid = (lo + hi) >> 1
        (entry_offset,) = _I64.unpack_from(mv, mid * _INDEX_ENTRY)
        if entry_offset <= offset:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return -1
    (position,) = _I32.unpack_from(mv, (lo - 1) * _INDEX_ENTRY + 8)
    return position
