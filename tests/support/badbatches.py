"""Record batches whose outer framing and CRC are right but whose content is not: what
a broker must refuse before it stores anything (issue: "nothing invalid is ever stored").

``BAD_BATCHES`` maps a name to ``(batch bytes, Kafka error code, topic is compacted)``.
Each batch is built here byte by byte, so a test does not depend on the code under test
to make it."""

from __future__ import annotations

import gzip
import struct
import zlib

import lz4.frame
import snappy
import zstandard
from crc32c import crc32c

CORRUPT_MESSAGE, INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE = 2, 87, 76
TS = 1_700_000_000_000
GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
CONTROL = 0x20


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def record(offset_delta: int, ts_delta: int = 0, key: bytes | None = b"k", value: bytes | None = b"v") -> bytes:
    body = b"\x00" + _varint(ts_delta) + _varint(offset_delta)
    for field in (key, value):
        body += _varint(-1) if field is None else _varint(len(field)) + field
    body += _varint(0)  # no headers
    return _varint(len(body)) + body


def records(n: int, **kw) -> bytes:
    return b"".join(record(i, i, **kw) for i in range(n))


def raw_batch(payload: bytes, count: int, *, attributes: int = 0, last_delta: int | None = None,
              base_ts: int = TS, max_ts: int | None = None, producer_id: int = -1,
              base_sequence: int = -1) -> bytes:
    """A magic-2 batch around ``payload`` (records, compressed or not) with a right CRC."""
    last_delta = count - 1 if last_delta is None else last_delta
    max_ts = base_ts + max(count - 1, 0) if max_ts is None else max_ts
    after_crc = struct.pack(">hiqqqhii", attributes, last_delta, base_ts, max_ts, producer_id, 0,
                            base_sequence, count) + payload
    return struct.pack(">qiibI", 0, 49 + len(payload), -1, 2, crc32c(after_crc)) + after_crc


def compress(codec: int, data: bytes) -> bytes:
    if codec == GZIP:
        return gzip.compress(data)
    if codec == SNAPPY:
        return snappy.compress(data)
    if codec == LZ4:
        return lz4.frame.compress(data)
    return zstandard.ZstdCompressor().compress(data)


def good_batch(n: int = 3, codec: int = 0) -> bytes:
    payload = records(n)
    return raw_batch(compress(codec, payload) if codec else payload, n, attributes=codec)


def _bad() -> dict[str, tuple[bytes, int, bool]]:
    out: dict[str, tuple[bytes, int, bool]] = {}
    for codec, name in ((GZIP, "gzip"), (SNAPPY, "snappy"), (LZ4, "lz4"), (ZSTD, "zstd")):
        out[f"{name}: garbage payload"] = (raw_batch(b"\x13\x37garbage-not-compressed" * 3, 3, attributes=codec),
                                           CORRUPT_MESSAGE, False)
        out[f"{name}: empty payload"] = (raw_batch(b"", 3, attributes=codec), CORRUPT_MESSAGE, False)
        out[f"{name}: valid compression of garbage records"] = (
            raw_batch(compress(codec, b"\xff\xfe\x00garbage records" * 4), 3, attributes=codec),
            CORRUPT_MESSAGE, False)
        out[f"{name}: 5 records declared, 3 inside"] = (
            raw_batch(compress(codec, records(3)), 5, attributes=codec), CORRUPT_MESSAGE, False)
        out[f"{name}: offset deltas 0, 5, 9"] = (
            raw_batch(compress(codec, record(0) + record(5, 1) + record(9, 2)), 3, attributes=codec),
            INVALID_RECORD, False)
    full = gzip.compress(records(3))
    out["gzip: header then a truncated stream"] = (raw_batch(full[: len(full) // 2], 3, attributes=GZIP),
                                                   CORRUPT_MESSAGE, False)
    raw_deflate = zlib.compress(records(3))
    out["gzip: deflate stream cut before its end"] = (raw_batch(raw_deflate[:-6], 3, attributes=GZIP),
                                                      CORRUPT_MESSAGE, False)
    out["codec id 5"] = (raw_batch(records(3), 3, attributes=5), UNSUPPORTED_COMPRESSION_TYPE, False)
    out["codec id 7"] = (raw_batch(records(3), 3, attributes=7), UNSUPPORTED_COMPRESSION_TYPE, False)
    out["control batch outside a transaction"] = (raw_batch(records(1), 1, attributes=CONTROL),
                                                  INVALID_RECORD, False)
    out["offset deltas 0, 5, 9 in a batch of 3"] = (
        raw_batch(record(0) + record(5, 1) + record(9, 2), 3), INVALID_RECORD, False)
    out["3 records declared, 2 inside"] = (raw_batch(records(2), 3), CORRUPT_MESSAGE, False)
    out["maxTimestamp not the largest record timestamp"] = (raw_batch(records(3), 3, max_ts=TS + 99),
                                                            INVALID_RECORD, False)
    out["producer id without a base sequence"] = (raw_batch(records(3), 3, producer_id=7, base_sequence=-1),
                                                  INVALID_RECORD, False)
    out["null key on a compacted topic"] = (raw_batch(record(0) + record(1, 1, key=None) + record(2, 2), 3),
                                            INVALID_RECORD, True)
    out["lz4: null key on a compacted topic"] = (
        raw_batch(compress(LZ4, record(0, key=None)), 1, attributes=LZ4, max_ts=TS), INVALID_RECORD, True)
    return out


BAD_BATCHES = _bad()
