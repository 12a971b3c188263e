"""Building, iterating and decoding Kafka v2 record batches (kafscale.protocol.records)."""

from __future__ import annotations

import struct

import crc32c as reference_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafscale import _fast
from kafscale.protocol.records import (
    BATCH_HEADER_SIZE,
    BatchHeader,
    CorruptBatch,
    Record,
    batch_producer,
    build_batch,
    decode_batch_records,
    decode_records,
    iter_batches,
)

CODECS = [0, 1, 2, 3, 4]

RECORDS = [
    (b"key-0", b"value-0", [("trace", b"abc"), ("empty", None)], 1_700_000_000_000),
    (None, b"no key", [], 1_700_000_000_005),
    (b"tombstone", None, None, 1_699_999_999_990),  # earlier than base: negative delta
    (b"", b"", [("", b"")], 1_700_000_000_001),
]


def recrc(b: bytearray) -> bytearray:
    struct.pack_into(">I", b, 17, reference_crc32c.crc32c(bytes(b[21:])))
    return b


@pytest.mark.parametrize("codec", CODECS)
def test_build_and_decode(codec):
    b = build_batch(RECORDS, base_offset=42, compression=codec, producer_id=7, producer_epoch=3,
                    base_sequence=11, partition_leader_epoch=5)
    assert _fast.walk_batches(b) == (0, 1, 4, 1_700_000_000_005, len(b))
    (h,) = iter_batches(b)
    assert h == BatchHeader(42, len(b), 3, 1_700_000_000_000, 1_700_000_000_005, codec, 4, 0)
    assert (h.last_offset, h.end, h.compression) == (45, len(b), codec)
    assert not (h.is_control or h.is_transactional or h.log_append_time)
    assert batch_producer(b) == (7, 3, 11)
    assert struct.unpack_from(">ib", b, 12) == (5, 2)
    recs = decode_batch_records(b)
    assert recs == [
        Record(42, 1_700_000_000_000, b"key-0", b"value-0", [("trace", b"abc"), ("empty", None)], 0),
        Record(43, 1_700_000_000_005, None, b"no key", [], 0),
        Record(44, 1_699_999_999_990, b"tombstone", None, [], 0),
        Record(45, 1_700_000_000_001, b"", b"", [("", b"")], 0),
    ]


def test_header_layout_is_kafkas():
    b = build_batch([(b"k", b"v", [], 1000)], base_offset=9)
    (base, length, epoch, magic, crc, attrs, lod, base_ts, max_ts, pid, pe, seq, count) = \
        struct.unpack_from(">qiibIhiqqqhii", b)
    assert (base, length + 12, epoch, magic, attrs, lod, base_ts, max_ts, pid, pe, seq, count) == \
        (9, len(b), -1, 2, 0, 0, 1000, 1000, -1, -1, -1, 1)
    assert crc == reference_crc32c.crc32c(b[21:])
    # record: length 8 | attrs 0 | tsDelta 0 | offsetDelta 0 | key len 1 "k" | value len 1 "v" | 0 headers
    assert b[61:] == bytes([0x10, 0, 0, 0, 0x02]) + b"k" + b"\x02v" + b"\x00"


def test_flags():
    b = build_batch([(b"k", b"v", [], 5), (b"k", b"v", [], 9)], log_append_time=True,
                    transactional=True, control=True)
    (h,) = iter_batches(b)
    assert h.log_append_time and h.is_transactional and h.is_control
    # LogAppendTime: every record carries the batch's maxTimestamp
    assert [r.timestamp for r in decode_batch_records(b)] == [9, 9]


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError):
        build_batch([])
    with pytest.raises(ValueError):
        build_batch([(b"k", b"v", [], 1)], compression=5)


@settings(max_examples=50, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    base=st.integers(0, 2**40),
    recs=st.lists(
        st.tuples(
            st.one_of(st.none(), st.binary(max_size=50)),
            st.one_of(st.none(), st.binary(max_size=300)),
            st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=10))), max_size=3),
            st.integers(0, 2**50),
        ),
        min_size=1, max_size=30),
)
def test_round_trip_property(codec, base, recs):
    b = build_batch(recs, base_offset=base, compression=codec)
    assert _fast.walk_batches(b)[:3] == (0, 1, len(recs))
    decoded = decode_batch_records(b)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in decoded] == [
        (base + i, k, v, list(h), ts) for i, (k, v, h, ts) in enumerate(recs)
    ]


def test_iter_batches_positions_and_partial():
    bs = [build_batch([(b"k", b"v" * i, [], 1)], base_offset=i) for i in range(1, 4)]
    blob = b"".join(bs)
    hs = list(iter_batches(blob))
    assert [h.position for h in hs] == [0, len(bs[0]), len(bs[0]) + len(bs[1])]
    assert [h.base_offset for h in hs] == [1, 2, 3]
    assert list(iter_batches(memoryview(blob))) == hs
    with pytest.raises(CorruptBatch):
        list(iter_batches(blob[:-1]))
    with pytest.raises(CorruptBatch):
        list(iter_batches(blob + b"\x00" * 10))
    assert list(iter_batches(blob[:-1], allow_partial=True)) == hs[:2]
    bad = bytearray(blob)
    bad[16] = 1
    with pytest.raises(CorruptBatch, match="magic"):
        list(iter_batches(bad))


def test_decode_records_across_batches():
    blob = build_batch(RECORDS[:2], base_offset=0) + build_batch(RECORDS[2:], base_offset=2, compression=3)
    assert [r.offset for r in decode_records(blob)] == [0, 1, 2, 3]


@pytest.mark.parametrize("codec", CODECS)
def test_decode_detects_corruption(codec):
    good = build_batch(RECORDS, compression=codec)
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(CorruptBatch, match="CRC"):
        decode_batch_records(bad)
    with pytest.raises(CorruptBatch):
        decode_batch_records(good[:-1])
    with pytest.raises(CorruptBatch):
        decode_batch_records(good + b"\x00")
    with pytest.raises(CorruptBatch):
        decode_batch_records(good[:40])
    wrong_count = bytearray(good)
    struct.pack_into(">i", wrong_count, 57, 5)
    with pytest.raises(CorruptBatch):
        decode_batch_records(recrc(wrong_count))
    assert isinstance(CorruptBatch("x"), ValueError)


def test_decode_garbage_compressed_payload():
    b = bytearray(build_batch(RECORDS, compression=4))
    b[BATCH_HEADER_SIZE:] = b"\x00" * (len(b) - BATCH_HEADER_SIZE)
    with pytest.raises(CorruptBatch, match="decompress"):
        decode_batch_records(recrc(b))


def test_decode_bomb_guard():
    b = build_batch([(None, b"\x00" * (2 << 20), [], 0)], compression=4)
    with pytest.raises(CorruptBatch, match="exceeds"):
        decode_batch_records(b, max_size=1 << 20)
    assert decode_batch_records(b)[0].value == b"\x00" * (2 << 20)


def test_decode_bad_header_utf8():
    b = bytearray(build_batch([(b"k", b"v", [("hé", b"x")], 0)]))
    pos = bytes(b).index("hé".encode())
    b[pos + 1] = 0xFF
    with pytest.raises(CorruptBatch):
        decode_batch_records(recrc(b))


# ------------------------------------------------------------------------------ interop

default_records = pytest.importorskip("kafka.record.default_records")


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec):
    b = build_batch(RECORDS, base_offset=100, compression=codec)
    theirs = default_records.DefaultRecordBatch(bytes(b))
    assert theirs.validate_crc()
    got = [(r.offset, r.timestamp, r.key, r.value, [(k, v) for k, v in r.headers]) for r in theirs]
    assert got == [
        (100 + i, ts, k, v, [(hk, hv) for hk, hv in (h or [])]) for i, (k, v, h, ts) in enumerate(RECORDS)
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_python_batches(codec):
    builder = default_records.DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(20):
        builder.append(i, timestamp=5000 + i, key=b"k%d" % i, value=b"v" * (i * 10), headers=[("h", b"%d" % i)])
    b = bytes(builder.build())
    assert _fast.walk_batches(b) == (0, 1, 20, 5019, len(b))
    recs = decode_batch_records(b)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in recs] == [
        (i, 5000 + i, b"k%d" % i, b"v" * (i * 10), [("h", b"%d" % i)]) for i in range(20)
    ]
