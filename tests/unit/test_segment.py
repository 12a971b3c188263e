"""Segment and index object formats, checked by round trips, corruption, and an
independent reader (tests/support/kfs_reader.py) that shares no code with kafscale."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.kfs_reader import check_index_against_segment, read_index, read_segment, read_topic_object

from kafscale import _fast
from kafscale.storage import segment as segment_module
from kafscale.protocol.records import build_batch, decode_batch_records, iter_batches
from kafscale.storage.segment import (
    FOOTER_SIZE,
    HEADER_SIZE,
    CorruptSegment,
    Index,
    Segment,
    SegmentHeader,
    encode_index,
    encode_segment,
    index_lookup,
    parse_index,
    parse_segment,
    parse_segment_header,
)

CREATED = 1_700_000_000_123


def make_body(base: int, sizes: list[int], codec: int = 0) -> tuple[bytes, int, int]:
    """Batches of ``sizes`` records from offset ``base``; returns (body, count, last)."""
    chunks = []
    off = base
    for n in sizes:
        chunks.append(build_batch([(b"k", b"v%d" % i, [], 1000 + i) for i in range(n)],
                                  base_offset=off, compression=codec))
        off += n
    return b"".join(chunks), sum(sizes), off - 1


def test_sizes():
    assert (HEADER_SIZE, FOOTER_SIZE) == (32, 16)


def test_segment_layout():
    body, count, last = make_body(100, [3, 2])
    seg = encode_segment(100, count, last, CREATED, [body])
    assert seg[:4] == b"KAFS"
    assert struct.unpack_from(">HHqiqI", seg, 4) == (1, 0, 100, 5, CREATED, 0)
    assert seg[HEADER_SIZE:-FOOTER_SIZE] == body
    crc, last_offset, end = struct.unpack_from(">Iq4s", seg, len(seg) - FOOTER_SIZE)
    assert (crc, last_offset, end) == (_fast.crc32c(body), 104, b"END!")


def test_segment_round_trip_from_chunks():
    body, count, last = make_body(0, [1, 4, 2, 7])
    hs = list(iter_batches(body))
    chunks = [body[h.position : h.end] for h in hs]
    chunks[1] = bytearray(chunks[1])
    chunks[2] = memoryview(chunks[2])
    seg = encode_segment(0, count, last, CREATED, chunks)
    assert seg == encode_segment(0, count, last, CREATED, [body])
    parsed = parse_segment(seg)
    assert parsed == Segment(0, 14, CREATED, 13, parsed.body)
    assert isinstance(parsed.body, memoryview) and parsed.body == body
    assert parse_segment(bytearray(seg)).body == body
    assert parse_segment_header(seg) == SegmentHeader(1, 0, 0, 14, CREATED)
    assert parse_segment_header(seg[:HEADER_SIZE]).record_count == 14


@pytest.mark.parametrize("mutate, match", [
    (lambda s: b"KAFZ" + s[4:], "magic"),
    (lambda s: s[:4] + b"\x00\x02" + s[6:], "version"),
    (lambda s: s[:-4] + b"END?", "footer"),
    (lambda s: s[:40] + bytes([s[40] ^ 1]) + s[41:], "CRC"),
    (lambda s: s[:-FOOTER_SIZE] + struct.pack(">I", 0) + s[-12:], "CRC"),
    (lambda s: s[:47], "shorter"),
    (lambda s: s[:-1], "footer"),
    (lambda s: s[:16] + struct.pack(">i", -1) + s[20:], "negative"),
])
def test_segment_corruption_detected(mutate, match):
    body, count, last = make_body(0, [3, 3])
    seg = encode_segment(0, count, last, CREATED, [body])
    with pytest.raises(CorruptSegment, match=match):
        parse_segment(mutate(seg))
    assert issubclass(CorruptSegment, ValueError)


def test_segment_verify_false_skips_crc():
    body, count, last = make_body(0, [3])
    seg = bytearray(encode_segment(0, count, last, CREATED, [body]))
    seg[HEADER_SIZE + 30] ^= 0xFF
    assert parse_segment(seg, verify=False).record_count == 3
    with pytest.raises(CorruptSegment):
        parse_segment(seg)


def test_segment_header_alone():
    with pytest.raises(CorruptSegment):
        parse_segment_header(b"KAFS" + b"\x00" * 20)


def test_index_layout_and_round_trip():
    body, count, last = make_body(50, [2] * 10)
    size = len(body) // 10
    idx = encode_index(body, 4)
    assert idx[:4] == b"IDX\x00"
    assert struct.unpack_from(">HiiH", idx, 4) == (1, 5, 4, 0)
    parsed = parse_index(idx)
    assert (parsed.interval, parsed.count) == (4, 5)
    assert list(struct.iter_unpack(">qi", parsed.entries)) == [
        (50 + 4 * i, HEADER_SIZE + 2 * i * size) for i in range(5)
    ]
    assert parse_index(encode_index(body, 0)).interval == 1  # as the Go broker normalises


def test_index_lookup():
    body, count, last = make_body(50, [2] * 10)
    size = len(body) // 10
    idx = parse_index(encode_index(body, 4))
    assert index_lookup(idx, 0) == HEADER_SIZE
    assert index_lookup(idx, 49) == HEADER_SIZE
    assert index_lookup(idx, 50) == HEADER_SIZE
    assert index_lookup(idx, 53) == HEADER_SIZE
    assert index_lookup(idx, 54) == HEADER_SIZE + 2 * size
    assert index_lookup(idx, 10**9) == HEADER_SIZE + 8 * size
    empty = Index(1, memoryview(b""), 0)
    assert index_lookup(empty, 5) == HEADER_SIZE


def test_fetch_path_lookup_then_scan():
    """index -> position -> scan_batches: the batch holding the offset comes first."""
    body, count, last = make_body(1000, [5, 1, 9, 3, 3, 8, 2], codec=3)
    seg = encode_segment(1000, count, last, CREATED, [body])
    idx = parse_index(encode_index(body, 6))
    for target in range(1000, last + 1):
        pos = index_lookup(idx, target)
        begin, end = _fast.scan_batches(seg[: len(seg) - FOOTER_SIZE], pos, target, 1)
        first = decode_batch_records(seg[begin:end])
        assert first[0].offset <= target <= first[-1].offset


@pytest.mark.parametrize("mutate, match", [
    (lambda i: b"IDX\x01" + i[4:], "magic"),
    (lambda i: i[:4] + b"\x00\x02" + i[6:], "version"),
    (lambda i: i[:-1], "count"),
    (lambda i: i + b"\x00" * 12, "count"),
    (lambda i: i[:6] + struct.pack(">i", -1) + i[10:], "count"),
    (lambda i: i[:10], "shorter"),
    (lambda i: i[:16] + i[28:40] + i[16:28] + i[40:], "ascend"),
    (lambda i: i[:16] + struct.pack(">qi", 0, 4) + i[28:], "header"),
])
def test_index_corruption_detected(mutate, match):
    body, _, _ = make_body(0, [1] * 3)
    idx = encode_index(body, 1)
    with pytest.raises(CorruptSegment, match=match):
        parse_index(mutate(idx))


# ------------------------------------------------------------------------------ independent reader


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_independent_reader_agrees(codec):
    body, count, last = make_body(7, [3, 1, 4, 1, 5, 9, 2, 6], codec)
    seg = encode_segment(7, count, last, CREATED, [body])
    idx = encode_index(body, 5)
    s = read_segment(seg)
    i = read_index(idx)
    check_index_against_segment(i, s)
    assert (s["base_offset"], s["record_count"], s["last_offset"], s["created_ms"]) == (7, 31, 37, CREATED)
    assert [(b[0], b[2]) for b in s["batches"]] == [(h.base_offset, HEADER_SIZE + h.position)
                                                    for h in iter_batches(body)]
    parsed = parse_index(idx)
    assert i["interval"] == parsed.interval
    assert i["entries"] == list(struct.iter_unpack(">qi", parsed.entries))


@settings(max_examples=40, deadline=None)
@given(base=st.integers(0, 2**40), sizes=st.lists(st.integers(1, 12), min_size=1, max_size=15),
       interval=st.integers(1, 40))
def test_independent_reader_agrees_property(base, sizes, interval):
    body, count, last = make_body(base, sizes)
    s = read_segment(encode_segment(base, count, last, CREATED, [body]))
    check_index_against_segment(read_index(encode_index(body, interval)), s)
    assert (s["record_count"], s["last_offset"]) == (count, last)


def test_independent_reader_catches_mismatches():
    body, count, last = make_body(0, [3, 3])
    with pytest.raises(AssertionError, match="last offset"):
        read_segment(encode_segment(0, count, last + 1, CREATED, [body]))
    with pytest.raises(AssertionError, match="record count"):
        read_segment(encode_segment(0, count + 1, last, CREATED, [body]))
    bad = bytearray(body)
    bad[40] ^= 1  # inside the first batch's CRC-covered range, footer CRC recomputed
    with pytest.raises(AssertionError, match="batch at file byte 32: CRC"):
        read_segment(encode_segment(0, count, last, CREATED, [bytes(bad)]))
    seg = bytearray(encode_segment(0, count, last, CREATED, [body]))
    seg[-16] ^= 1
    with pytest.raises(AssertionError, match="body CRC"):
        read_segment(seg)
    idx = bytearray(encode_index(body, 1))
    struct.pack_into(">i", idx, 16 + 12 + 8, HEADER_SIZE + 5)
    with pytest.raises(AssertionError, match="batch boundary"):
        check_index_against_segment(read_index(idx), read_segment(encode_segment(0, count, last, CREATED, [body])))


def test_topic_object_directory_round_trip_and_independent_reader():
    segs = []
    for part, base in ((3, 0), (0, 100), (7, 5)):
        body = bytearray(build_batch([(b"k", b"v%d" % i, [], 1000 + i) for i in range(4)]))
        _fast.rewrite_base_offsets(body, base)
        segs.append((part, segment_module.encode_segment(base, 4, base + 3, 1, [body])))
    entries, pos = [], 0
    for part, seg in segs:
        entries.append((part, pos, len(seg)))
        pos += len(seg)
    obj = b"".join(seg for _, seg in segs) + segment_module.encode_directory(entries)
    assert segment_module.parse_directory(obj) == entries
    for part, pos, size in entries:
        assert segment_module.parse_segment(obj[pos:pos + size]).record_count == 4
    got = read_topic_object(obj)
    assert [(p, s["base_offset"], s["last_offset"]) for p, s in got] == [(3, 0, 3), (0, 100, 103), (7, 5, 8)]


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b[:-1] + b"X", "magic"),
    (lambda b: b[:-20] + bytes([b[-20] ^ 1]) + b[-19:], "CRC"),
    (lambda b: b[:5], "fit|shorter"),
])
def test_topic_object_directory_corruption_detected(mutate, match):
    body = bytearray(build_batch([(b"k", b"v", [], 1000)]))
    seg = segment_module.encode_segment(0, 1, 0, 1, [body])
    obj = seg + segment_module.encode_directory([(0, 0, len(seg))])
    with pytest.raises(segment_module.CorruptSegment, match=match):
        segment_module.parse_directory(mutate(obj))


def test_topic_object_directory_rejects_overlap():
    body = bytearray(build_batch([(b"k", b"v", [], 1000)]))
    seg = segment_module.encode_segment(0, 1, 0, 1, [body])
    obj = seg + seg + segment_module.encode_directory([(0, 0, len(seg)), (1, 10, len(seg))])
    with pytest.raises(segment_module.CorruptSegment, match="out of place"):
        segment_module.parse_directory(obj)
