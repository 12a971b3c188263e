"""An independent reader of Kafscale segment (.kfs) and index (.index) objects.

Integration tests use it to check what the broker wrote to the bucket. It deliberately
shares no code with ``kafscale``: only ``struct`` and the PyPI ``crc32c`` package, and the
layout written out again below from DESIGN.md §3 and the Kafka protocol.

Segment: header ">4sHHqiqI" (KAFS, version 1, flags, base offset, record count,
created ms, reserved), body of Kafka v2 batches, footer ">Iq4s" (CRC-32C of the body,
last offset, END!). Index: header ">4sHiiH" (IDX\\0, version 1, entry count, interval,
reserved), then ">qi" entries (offset, position in the segment file). Topic object
(.kfo): segments end to end, then ">iqi" directory entries (partition, position, size)
and a ">iI4s" trailer (entry count, CRC-32C of the entries, KFO1).
"""

from __future__ import annotations

import struct

import crc32c as _crc32c

SEG_HEADER = struct.Struct(">4sHHqiqI")
SEG_FOOTER = struct.Struct(">Iq4s")
IDX_HEADER = struct.Struct(">4sHiiH")
IDX_ENTRY = struct.Struct(">qi")
DIR_ENTRY = struct.Struct(">iqi")
DIR_TRAILER = struct.Struct(">iI4s")
BATCH_HEADER = 61


def _crc(data: bytes) -> int:
    return _crc32c.crc32c(data)


def read_segment(data: bytes) -> dict:
    """Parse and check a .kfs object; returns base_offset, record_count, last_offset,
    created_ms and batches = [(base_offset, last_offset, position, size)] with positions
    in the segment file."""
    data = bytes(data)
    n = len(data)
    assert n >= SEG_HEADER.size + SEG_FOOTER.size, f"segment too short: {n} bytes"
    magic, version, flags, base_offset, record_count, created_ms, reserved = SEG_HEADER.unpack_from(data, 0)
    assert magic == b"KAFS", f"bad segment magic {magic!r}"
    assert version == 1, f"bad segment version {version}"
    assert flags == 0, f"unexpected segment flags {flags:#x}"
    assert reserved == 0, f"reserved header field is {reserved:#x}"
    body_crc, footer_last, end_magic = SEG_FOOTER.unpack_from(data, n - SEG_FOOTER.size)
    assert end_magic == b"END!", f"bad footer magic {end_magic!r}"
    body = data[SEG_HEADER.size : n - SEG_FOOTER.size]
    actual = _crc(body)
    assert actual == body_crc, f"body CRC-32C {actual:#010x} != footer {body_crc:#010x}"

    batches = []
    total_records = 0
    pos = 0
    expected_next = base_offset
    while pos < len(body):
        file_pos = SEG_HEADER.size + pos
        assert len(body) - pos >= BATCH_HEADER, f"truncated batch header at file byte {file_pos}"
        b_base, b_len = struct.unpack_from(">qi", body, pos)
        magic_byte = body[pos + 16]
        assert magic_byte == 2, f"batch at file byte {file_pos}: magic {magic_byte} != 2"
        size = 12 + b_len
        assert b_len >= BATCH_HEADER - 12 and pos + size <= len(body), (
            f"batch at file byte {file_pos}: length {b_len} runs past the body"
        )
        (stored_crc,) = struct.unpack_from(">I", body, pos + 17)
        actual = _crc(body[pos + 21 : pos + size])
        assert actual == stored_crc, (
            f"batch at file byte {file_pos}: CRC-32C {actual:#010x} != stored {stored_crc:#010x}"
        )
        (last_delta,) = struct.unpack_from(">i", body, pos + 23)
        (count,) = struct.unpack_from(">i", body, pos + 57)
        assert count > 0, f"batch at file byte {file_pos}: records count {count}"
        assert b_base == expected_next, (
            f"batch at file byte {file_pos}: base offset {b_base}, expected {expected_next}"
        )
        batches.append((b_base, b_base + last_delta, file_pos, size))
        expected_next = b_base + last_delta + 1
        total_records += count
        pos += size

    assert batches, "segment has no batches"
    assert footer_last == batches[-1][1], (
        f"footer last offset {footer_last} != last batch's last offset {batches[-1][1]}"
    )
    assert record_count == total_records, (
        f"header record count {record_count} != sum of batch counts {total_records}"
    )
    return {
        "base_offset": base_offset,
        "record_count": record_count,
        "last_offset": footer_last,
        "created_ms": created_ms,
        "batches": batches,
    }


def read_index(data: bytes) -> dict:
    """Parse and check an .index object; returns interval and entries = [(offset, position)]."""
    data = bytes(data)
    assert len(data) >= IDX_HEADER.size, f"index too short: {len(data)} bytes"
    magic, version, count, interval, reserved = IDX_HEADER.unpack_from(data, 0)
    assert magic == b"IDX\x00", f"bad index magic {magic!r}"
    assert version == 1, f"bad index version {version}"
    assert reserved == 0, f"reserved index field is {reserved:#x}"
    assert interval > 0, f"index interval {interval}"
    expected = IDX_HEADER.size + count * IDX_ENTRY.size
    assert count >= 0 and len(data) == expected, (
        f"index of {len(data)} bytes, header says {count} entries ({expected} bytes)"
    )
    entries = [IDX_ENTRY.unpack_from(data, IDX_HEADER.size + i * IDX_ENTRY.size) for i in range(count)]
    for (o1, p1), (o2, p2) in zip(entries, entries[1:]):
        assert o2 > o1 and p2 > p1, f"index entries not ascending: ({o1}, {p1}) then ({o2}, {p2})"
    return {"interval": interval, "entries": entries}


def check_index_against_segment(index: dict, segment: dict) -> None:
    """Every entry lands on a batch boundary with that batch's base offset; the first
    batch has an entry; no two entries are closer than the interval allows."""
    by_position = {pos: (base, last) for base, last, pos, _size in segment["batches"]}
    assert index["entries"], "index has no entries"
    first = segment["batches"][0]
    assert index["entries"][0] == (first[0], first[2]), (
        f"first index entry {index['entries'][0]} is not the first batch ({first[0]}, {first[2]})"
    )
    for offset, position in index["entries"]:
        assert position in by_position, f"index entry ({offset}, {position}) is not on a batch boundary"
        base, _last = by_position[position]
        assert base == offset, (
            f"index entry ({offset}, {position}) but the batch there has base offset {base}"
        )
    for (o1, _p1), (o2, _p2) in zip(index["entries"], index["entries"][1:]):
        assert o2 - o1 >= index["interval"], (
            f"index entries {o1} and {o2} closer than the interval {index['interval']}"
        )


def read_topic_object(data: bytes) -> list[tuple[int, dict]]:
    """Parse and check a .kfo object: [(partition, read_segment(...)), ...] in object order.
    The segments must tile the object up to its directory exactly."""
    data = bytes(data)
    n = len(data)
    assert n >= DIR_TRAILER.size, f"object too short: {n} bytes"
    count, crc, magic = DIR_TRAILER.unpack_from(data, n - DIR_TRAILER.size)
    assert magic == b"KFO1", f"bad object magic {magic!r}"
    start = n - DIR_TRAILER.size - count * DIR_ENTRY.size
    assert count > 0 and start > 0, f"directory of {count} entries in {n} bytes"
    directory = data[start:n - DIR_TRAILER.size]
    assert _crc(directory) == crc, "directory CRC-32C mismatch"
    out = []
    expected_pos = 0
    for i in range(count):
        partition, pos, size = DIR_ENTRY.unpack_from(directory, i * DIR_ENTRY.size)
        assert pos == expected_pos, f"segment {i} at {pos}, expected {expected_pos}"
        out.append((partition, read_segment(data[pos:pos + size])))
        expected_pos = pos + size
    assert expected_pos == start, f"segments end at {expected_pos}, directory starts at {start}"
    assert len({p for p, _ in out}) == count, "a partition appears twice in one object"
    return out
