"""Segment and index object formats (compatible with Kafscale's Go broker). No I/O.

Segment object (``….kfs``), all integers big-endian::

    header (32 bytes)
      @0  magic        b"KAFS"
      @4  version      u16 = 1
      @6  flags        u16 = 0
      @8  base offset  i64
      @16 record count i32   number of offsets in the segment
      @20 created ms   i64
      @28 reserved     u32 = 0
    body               Kafka v2 record batches as produced, base offsets rewritten
    footer (16 bytes)
      @0  body CRC     u32   CRC-32C of the body
      @4  last offset  i64
      @12 magic        b"END!"

Index object (``….index``)::

    header (16 bytes)
      @0  magic        b"IDX\\0"
      @4  version      u16 = 1
      @6  entry count  i32
      @10 interval     i32   records between entries (at most one entry per interval)
      @14 reserved     u16 = 0
    entries (12 bytes each, ascending)
      i64 batch base offset, i32 byte position of that batch in the SEGMENT FILE
      (header included, so the first batch is at 32)

A lookup is a floor search: the greatest entry whose offset <= the target gives the
position to start scanning batches from.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from kafscale import _fast

__all__ = [
    "SEGMENT_MAGIC",
    "FOOTER_MAGIC",
    "INDEX_MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "FOOTER_SIZE",
    "INDEX_HEADER_SIZE",
    "INDEX_ENTRY_SIZE",
    "CorruptSegment",
    "SegmentHeader",
    "Segment",
    "Index",
    "encode_segment",
    "encode_index",
    "parse_segment_header",
    "parse_segment",
    "parse_index",
    "index_lookup",
]

SEGMENT_MAGIC = b"KAFS"
FOOTER_MAGIC = b"END!"
INDEX_MAGIC = b"IDX\x00"
VERSION = 1

_HEADER = struct.Struct(">4sHHqiqI")
_FOOTER = struct.Struct(">Iq4s")
_INDEX_HEADER = struct.Struct(">4sHiiH")

HEADER_SIZE = _HEADER.size  # 32
FOOTER_SIZE = _FOOTER.size  # 16
INDEX_HEADER_SIZE = _INDEX_HEADER.size  # 16
INDEX_ENTRY_SIZE = 12


class CorruptSegment(ValueError):
    """A segment or index object that does not parse or fails its checks."""


class SegmentHeader(NamedTuple):
    version: int
    flags: int
    base_offset: int
    record_count: int
    created_ms: int


class Segment(NamedTuple):
    base_offset: int
    record_count: int
    created_ms: int
    last_offset: int
    body: memoryview  # the record batches; body[0] is at file position HEADER_SIZE


class Index(NamedTuple):
    interval: int
    entries: memoryview  # count * 12 bytes
    count: int


def encode_segment(base_offset: int, record_count: int, last_offset: int, created_ms: int,
                   chunks: Sequence) -> bytes:
    """The segment object for a body that is the concatenation of ``chunks``."""
    crc = 0
    for chunk in chunks:
        crc = _fast.crc32c(chunk, crc)
    header = _HEADER.pack(SEGMENT_MAGIC, VERSION, 0, base_offset, record_count, created_ms, 0)
    footer = _FOOTER.pack(crc, last_offset, FOOTER_MAGIC)
    return b"".join([header, *chunks, footer])


def encode_index(segment_body, interval: int) -> bytes:
    """The index object for ``segment_body`` (the batches, without header or footer)."""
    if interval <= 0:
        interval = 1  # as the Go broker does
    entries = _fast.build_index(segment_body, HEADER_SIZE, interval)
    count = len(entries) // INDEX_ENTRY_SIZE
    return _INDEX_HEADER.pack(INDEX_MAGIC, VERSION, count, interval, 0) + entries


def parse_segment_header(data) -> SegmentHeader:
    """Parse the 32-byte header at the start of ``data`` (e.g. a ranged read)."""
    if len(data) < HEADER_SIZE:
        raise CorruptSegment(f"segment header needs {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, flags, base_offset, record_count, created_ms, _ = _HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise CorruptSegment(f"bad segment magic {magic!r}")
    if version != VERSION:
        raise CorruptSegment(f"unsupported segment version {version}")
    if record_count < 0:
        raise CorruptSegment(f"negative record count {record_count}")
    return SegmentHeader(version, flags, base_offset, record_count, created_ms)


def parse_segment(data, verify: bool = True) -> Segment:
    """Parse a whole segment object; with ``verify`` check the body CRC-32C."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n < HEADER_SIZE + FOOTER_SIZE:
        raise CorruptSegment(f"segment of {n} bytes is shorter than header + footer")
    header = parse_segment_header(mv)
    crc, last_offset, magic = _FOOTER.unpack_from(mv, n - FOOTER_SIZE)
    if magic != FOOTER_MAGIC:
        raise CorruptSegment(f"bad segment footer magic {magic!r}")
    body = mv[HEADER_SIZE : n - FOOTER_SIZE]
    if verify and _fast.crc32c(body) != crc:
        raise CorruptSegment("segment body CRC-32C mismatch")
    if last_offset < header.base_offset - 1:
        raise CorruptSegment(f"last offset {last_offset} before base offset {header.base_offset}")
    return Segment(header.base_offset, header.record_count, header.created_ms, last_offset, body)


def parse_index(data) -> Index:
    """Parse an index object; entries must fill it exactly and ascend."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n < INDEX_HEADER_SIZE:
        raise CorruptSegment(f"index of {n} bytes is shorter than its header")
    magic, version, count, interval, _ = _INDEX_HEADER.unpack_from(mv, 0)
    if magic != INDEX_MAGIC:
        raise CorruptSegment(f"bad index magic {magic!r}")
    if version != VERSION:
        raise CorruptSegment(f"unsupported index version {version}")
    if count < 0 or n != INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE:
        raise CorruptSegment(f"index entry count {count} does not match {n} bytes")
    entries = mv[INDEX_HEADER_SIZE:]
    prev_offset = prev_position = None
    for offset, position in struct.iter_unpack(">qi", entries):
        if position < HEADER_SIZE:
            raise CorruptSegment(f"index position {position} inside the segment header")
        if prev_offset is not None and (offset <= prev_offset or position <= prev_position):
            raise CorruptSegment("index entries do not ascend")
        prev_offset, prev_position = offset, position
    return Index(interval, entries, count)


def index_lookup(index: Index, offset: int) -> int:
    """File position to start scanning at for ``offset`` (HEADER_SIZE if before all)."""
    position = _fast.index_floor(index.entries, offset)
    return HEADER_SIZE if position < 0 else position
