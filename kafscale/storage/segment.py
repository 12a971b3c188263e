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

Topic object (``….kfo``): the segments of several partitions of one topic, written by
one flush, end to end, then a directory that makes the object readable without etcd::

    segment, segment, ...       each a whole segment as above (no index objects)
    directory                   one entry per segment, 16 bytes each:
                                i32 partition, i64 byte position, i32 segment size
    trailer (12 bytes)
      @0  entry count  i32
      @4  CRC-32C      u32   of the directory
      @8  magic        b"KFO1"

The manifest in etcd names each segment by object key, position and size, so a read
is one ranged GET of exactly that segment.
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
    "segment_frame",
    "encode_segment",
    "encode_index",
    "parse_segment_header",
    "parse_segment",
    "parse_index",
    "OBJECT_MAGIC",
    "encode_directory",
    "parse_directory",
    "index_lookup",
]

SEGMENT_MAGIC = b"KAFS"
FOOTER_MAGIC = b"END!"
INDEX_MAGIC = b"IDX\x00"
VERSION = 1

_HEADER = struct.Struct(">4sHHqiqI")
_FOOTER = struct.Struct(">Iq4s")
_INDEX_HEADER = struct.Struct(">4sHiiH")
_DIR_ENTRY = struct.Struct(">iqi")
_DIR_TRAILER = struct.Struct(">iI4s")
OBJECT_MAGIC = b"KFO1"

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


def segment_frame(base_offset: int, record_count: int, last_offset: int, created_ms: int,
                  chunks: Sequence) -> tuple[bytes, bytes]:
    """The header and footer that make a segment of a body that is the concatenation
    of ``chunks`` (the body itself is never copied here)."""
    crc = 0
    for chunk in chunks:
        crc = _fast.crc32c(chunk, crc)
    header = _HEADER.pack(SEGMENT_MAGIC, VERSION, 0, base_offset, record_count, created_ms, 0)
    return header, _FOOTER.pack(crc, last_offset, FOOTER_MAGIC)


def encode_segment(base_offset: int, record_count: int, last_offset: int, created_ms: int,
                   chunks: Sequence) -> bytes:
    """The segment object for a body that is the concatenation of ``chunks``."""
    header, footer = segment_frame(base_offset, record_count, last_offset, created_ms, chunks)
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


def encode_directory(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """The directory and trailer that end a topic object: (partition, position, size)
    of each segment in it."""
    body = b"".join(_DIR_ENTRY.pack(*e) for e in entries)
    return body + _DIR_TRAILER.pack(len(entries), _fast.crc32c(body), OBJECT_MAGIC)


def parse_directory(data) -> list[tuple[int, int, int]]:
    """(partition, position, size) of each segment of a whole topic object; checks that
    the directory is intact and the segments lie inside the object without overlap."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n < _DIR_TRAILER.size:
        raise CorruptSegment(f"topic object of {n} bytes is shorter than its trailer")
    count, crc, magic = _DIR_TRAILER.unpack_from(mv, n - _DIR_TRAILER.size)
    if magic != OBJECT_MAGIC:
        raise CorruptSegment(f"bad topic object magic {magic!r}")
    start = n - _DIR_TRAILER.size - count * _DIR_ENTRY.size
    if count < 0 or start < 0:
        raise CorruptSegment(f"directory of {count} entries does not fit {n} bytes")
    directory = mv[start:n - _DIR_TRAILER.size]
    if _fast.crc32c(directory) != crc:
        raise CorruptSegment("topic object directory CRC-32C mismatch")
    entries = [tuple(e) for e in _DIR_ENTRY.iter_unpack(directory)]
    end = 0
    for partition, pos, size in sorted(entries, key=lambda e: e[1]):
        if pos < end or size < HEADER_SIZE + FOOTER_SIZE or pos + size > start:
            raise CorruptSegment(f"segment of partition {partition} at {pos}+{size} is out of place")
        end = pos + size
    return entries
