"""The record-batch kernels, run against both implementations (Cython and pure Python)."""

from __future__ import annotations

import importlib
import os
import struct

import crc32c as reference_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafscale import _fast
from kafscale._fast import _pure
from kafscale.protocol.records import build_batch

try:
    from kafscale._fast import _kernels
except ImportError:  # reported by test_compiled_kernels_loaded
    _kernels = None

IMPLS = [
    pytest.param(_kernels, id="cython",
                 marks=pytest.mark.skipif(_kernels is None, reason="compiled kernels not built")),
    pytest.param(_pure, id="python"),
]
BOTH = pytest.mark.parametrize("k", IMPLS)
BOTH_MODULES = [m for m in (_kernels, _pure) if m is not None]

OK, TRUNCATED, BAD_MAGIC, BAD_CRC, BAD_COUNT = 0, 1, 2, 3, 4


def test_compiled_kernels_loaded():
    if os.environ.get("KAFSCALE_PURE_PYTHON") == "1":
        assert _fast.IMPLEMENTATION == "python"
    else:
        assert _fast.IMPLEMENTATION == "cython", _fast.FALLBACK_REASON


def test_pure_python_switch(monkeypatch):
    """KAFSCALE_PURE_PYTHON=1 selects the twins; the choice is made once, at import."""
    import sys

    import kafscale

    saved = sys.modules.pop("kafscale._fast")
    try:
        monkeypatch.setenv("KAFSCALE_PURE_PYTHON", "1")
        forced = importlib.import_module("kafscale._fast")
        assert forced.IMPLEMENTATION == "python"
        assert forced.walk_batches is _pure.walk_batches
    finally:
        sys.modules["kafscale._fast"] = saved
        kafscale._fast = saved


def test_same_public_names():
    names = {n for n in dir(_pure) if not n.startswith("_")} - {"annotations", "struct"}
    if _kernels is not None:
        assert names <= set(dir(_kernels))
    assert set(_pure.__all__) == names


# ------------------------------------------------------------------------------ helpers


def batch(n=3, base_offset=0, ts=1_000, compression=0, value=b"value", **kw):
    return build_batch(
        [(b"k%d" % i, value, [("h", b"x")], ts + i) for i in range(n)],
        base_offset=base_offset, compression=compression, **kw)


def recrc(b: bytearray) -> bytearray:
    """Recompute a batch's CRC after editing it (to reach the checks behind the CRC)."""
    struct.pack_into(">I", b, 17, reference_crc32c.crc32c(bytes(b[21:])))
    return b


def set_i32(b: bytes, pos: int, value: int) -> bytearray:
    out = bytearray(b)
    struct.pack_into(">i", out, pos, value)
    return out


# ------------------------------------------------------------------------------ crc32c


@BOTH
@pytest.mark.parametrize("data, expected", [
    (b"", 0),
    (b"123456789", 0xE3069283),
    (b"\x00" * 32, 0x8A9136AA),   # RFC 3720 B.4
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_crc32c_golden(k, data, expected):
    assert k.crc32c(data) == expected


@BOTH
def test_crc32c_buffer_types_and_continuation(k):
    data = os.urandom(1000)
    want = reference_crc32c.crc32c(data)
    assert k.crc32c(bytearray(data)) == want
    assert k.crc32c(memoryview(data)) == want
    assert k.crc32c(data[500:], k.crc32c(data[:500])) == want
    # unaligned starts exercise the byte-wise head of slicing-by-8
    for shift in range(9):
        assert k.crc32c(memoryview(data)[shift:]) == reference_crc32c.crc32c(data[shift:])


def test_crc32c_large_matches_reference():
    data = os.urandom(3 * 1024 * 1024 + 5)  # above the no-GIL threshold
    if _kernels is not None:
        assert _kernels.crc32c(data) == reference_crc32c.crc32c(data)


@pytest.mark.skipif(_kernels is None, reason="compiled kernels not built")
@given(data=st.binary(max_size=2000), shift=st.integers(0, 7), seed=st.integers(0, 2**32 - 1))
def test_crc32c_instruction_and_tables_agree(data, shift, seed):
    """On x86-64 the kernels use the CPU's crc32 instruction; the table path stays for
    other CPUs. Both must give the reference value at every alignment."""
    view = memoryview(data)[min(shift, len(data)):]
    expected = reference_crc32c.crc32c(bytes(view), seed)
    assert _kernels.crc32c(view, seed) == _kernels.crc32c_table(view, seed) == expected


def test_crc32c_uses_the_instruction_where_the_cpu_has_it():
    if _kernels is None:
        pytest.skip("compiled kernels not built")
    has_sse42 = "sse4_2" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False
    assert _kernels.crc32c_implementation() == ("sse4.2" if has_sse42 and os.uname().machine == "x86_64" else "table")


@BOTH
@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_crc32c_properties(k, a, b):
    assert k.crc32c(a + b) == k.crc32c(b, k.crc32c(a)) == reference_crc32c.crc32c(a + b)


@BOTH
def test_crc32c_rejects_bad_arguments(k):
    with pytest.raises(OverflowError):
        k.crc32c(b"x", -1)
    with pytest.raises(OverflowError):
        k.crc32c(b"x", 1 << 32)
    with pytest.raises(ValueError):
        k.crc32c(memoryview(b"\x00" * 8).cast("I"))
    with pytest.raises(BufferError):
        k.crc32c(memoryview(b"abcdef")[::2])


# ------------------------------------------------------------------------------ varints


@BOTH
@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (63, b"\x7e"), (-64, b"\x7f"),
    (64, b"\x80\x01"), (2**31 - 1, b"\xfe\xff\xff\xff\x0f"), (-(2**31), b"\xff\xff\xff\xff\x0f"),
])
def test_varint_golden(k, value, encoded):
    assert k.write_varint(value) == encoded
    assert k.read_varint(encoded, 0) == (value, len(encoded))
    assert k.read_varlong(encoded, 0) == (value, len(encoded))


@BOTH
def test_varlong_and_uvarint_golden(k):
    assert k.write_varint(2**63 - 1) == b"\xfe" + b"\xff" * 8 + b"\x01"
    assert k.read_varlong(b"\xff" * 9 + b"\x01", 0) == (-(2**63), 10)
    assert k.write_uvarint(300) == b"\xac\x02"
    assert k.read_uvarint(b"\xac\x02", 0) == (300, 2)
    assert k.read_uvarint(b"\xff\xff\xff\xff\x0f", 0) == (2**32 - 1, 5)


@BOTH
@given(n=st.integers(-(2**31), 2**31 - 1), prefix=st.binary(max_size=5), suffix=st.binary(max_size=5))
def test_varint_round_trip(k, n, prefix, suffix):
    enc = k.write_varint(n)
    assert k.read_varint(prefix + enc + suffix, len(prefix)) == (n, len(prefix) + len(enc))


@BOTH
@given(n=st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trip(k, n):
    enc = k.write_varint(n)
    assert len(enc) <= 10
    assert k.read_varlong(enc, 0) == (n, len(enc))


@BOTH
@given(n=st.integers(0, 2**32 - 1))
def test_uvarint_round_trip(k, n):
    enc = k.write_uvarint(n)
    assert k.read_uvarint(bytearray(enc), 0) == (n, len(enc))


@BOTH
@pytest.mark.parametrize("fn, data", [
    ("read_varint", b""),
    ("read_varint", b"\x80"),
    ("read_varint", b"\xff\xff"),
    ("read_varint", b"\x80\x80\x80\x80\x80\x01"),   # over-long
    ("read_varint", b"\xff\xff\xff\xff\x1f"),       # wider than 32 bits
    ("read_uvarint", b"\xff\xff\xff\xff\x10"),
    ("read_varlong", b"\xff" * 10),
    ("read_varlong", b"\xff" * 9 + b"\x02"),        # wider than 64 bits
    ("read_varlong", b"\xff" * 5),
])
def test_varint_truncated_or_overlong(k, fn, data):
    with pytest.raises(ValueError):
        getattr(k, fn)(data, 0)


@BOTH
def test_varint_bad_positions_and_ranges(k):
    with pytest.raises(ValueError):
        k.read_varint(b"\x00", -1)
    with pytest.raises(ValueError):
        k.read_varint(b"\x00", 1)
    with pytest.raises(OverflowError):
        k.write_varint(2**63)
    with pytest.raises(OverflowError):
        k.write_uvarint(-1)
    with pytest.raises(OverflowError):
        k.write_uvarint(2**32)


# ------------------------------------------------------------------------------ walk_batches


@BOTH
@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_walk_valid_batches_every_codec(k, codec):
    blob = batch(5, compression=codec, ts=100) + batch(2, base_offset=5, compression=codec, ts=50)
    first = len(batch(5, compression=codec, ts=100))
    status, n_batches, n_offsets, max_ts, largest = k.walk_batches(blob)
    assert (status, n_batches, n_offsets, max_ts) == (OK, 2, 7, 104)
    assert largest == max(first, len(blob) - first)


@BOTH
def test_walk_empty_blob(k):
    assert k.walk_batches(b"") == (TRUNCATED, 0, 0, -1, 0)


@BOTH
def test_walk_every_truncation(k):
    b = batch(2)
    for cut in range(1, len(b)):
        assert k.walk_batches(b[:cut])[0] == TRUNCATED, cut


@BOTH
def test_walk_trailing_partial_batch(k):
    b = batch(2)
    assert k.walk_batches(b + b[:30]) == (TRUNCATED, 1, 2, 1001, len(b))
    assert k.walk_batches(b + b"\x00" * 5) [0] == TRUNCATED


@BOTH
def test_walk_batch_length_too_small(k):
    assert k.walk_batches(set_i32(batch(1), 8, 48))[0] == TRUNCATED


@BOTH
@pytest.mark.parametrize("magic", [0, 1, 3, -1])
def test_walk_bad_magic(k, magic):
    b = bytearray(batch(2))
    b[16] = magic & 0xFF
    assert k.walk_batches(b)[0] == BAD_MAGIC
    assert k.walk_batches(batch(2) + b)[:3] == (BAD_MAGIC, 1, 2)


@BOTH
def test_walk_bad_crc(k):
    good = batch(2)
    for pos in (17, 21, 30, 57, 61, len(good) - 1):  # the crc itself and covered bytes
        b = bytearray(good)
        b[pos] ^= 0x40
        assert k.walk_batches(b)[0] == BAD_CRC, pos
    b = bytearray(good)
    b[3] ^= 0xFF  # baseOffset is not covered
    assert k.walk_batches(b)[0] == OK


@BOTH
def test_walk_bad_counts(k):
    good = batch(3)
    assert k.walk_batches(recrc(set_i32(good, 57, 0)))[0] == BAD_COUNT     # recordsCount 0
    assert k.walk_batches(recrc(set_i32(good, 57, -1)))[0] == BAD_COUNT
    assert k.walk_batches(recrc(set_i32(good, 23, 5)))[0] == BAD_COUNT     # lastOffsetDelta
    # count and delta agree with each other, but not with the 3 records present
    b = recrc(set_i32(set_i32(good, 57, 4), 23, 3))
    assert k.walk_batches(b)[0] == BAD_COUNT
    b = recrc(set_i32(set_i32(good, 57, 2), 23, 1))
    assert k.walk_batches(b)[0] == BAD_COUNT


@BOTH
def test_walk_malformed_records(k):
    good = batch(1, value=b"abc")
    # one extra byte after the last record
    extra = bytearray(good + b"\x00")
    struct.pack_into(">i", extra, 8, len(extra) - 12)
    assert k.walk_batches(recrc(extra))[0] == BAD_COUNT
    # record length varint pointing past the end
    b = bytearray(good)
    b[61] = 0x7E
    assert k.walk_batches(recrc(b))[0] == BAD_COUNT
    # an unterminated varint as the record length
    b = bytearray(good)
    b[61:] = b"\xff" * (len(good) - 61)
    assert k.walk_batches(recrc(b))[0] == BAD_COUNT
    # key length below -1
    rec_body_start = 62  # record length is one byte here
    b = bytearray(good)
    b[rec_body_start + 3] = 0x03  # keyLength = -2 (attributes, tsDelta, offsetDelta before it)
    assert k.walk_batches(recrc(b))[0] == BAD_COUNT


@BOTH
def test_walk_does_not_decompress(k):
    """A compressed batch with a garbage payload but a correct CRC and count passes."""
    b = bytearray(batch(3, compression=4))
    b[61:] = b"\x00" * (len(b) - 61)
    assert k.walk_batches(recrc(b))[0] == OK


@pytest.mark.parametrize("codec", [0, 4])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_walk_implementations_agree_on_mutations(codec, data):
    recs = data.draw(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), min_size=1, max_size=5))
    b = bytearray(build_batch([(kk, v, [], 5) for kk, v in recs], compression=codec))
    pos = data.draw(st.integers(0, len(b) - 1))
    b[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        recrc(b)
    cut = data.draw(st.integers(0, len(b)))
    results = {m.__name__: m.walk_batches(bytes(b[:cut])) for m in BOTH_MODULES}
    assert len(set(results.values())) == 1, results


@BOTH
@given(recs=st.lists(
    st.tuples(st.one_of(st.none(), st.binary(max_size=40)), st.one_of(st.none(), st.binary(max_size=200)),
              st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))), max_size=3),
              st.integers(0, 2**45)),
    min_size=1, max_size=20))
def test_walk_accepts_any_built_batch(k, recs):
    b = build_batch(recs)
    assert k.walk_batches(b) == (OK, 1, len(recs), max(r[3] for r in recs), len(b))


# ------------------------------------------------------------------------------ rewrite_base_offsets


@BOTH
def test_rewrite_base_offsets(k):
    blob = bytearray(batch(3, base_offset=0) + batch(2, base_offset=0, compression=3) + batch(1))
    before = bytes(blob)
    assert k.rewrite_base_offsets(blob, 100) == 106
    bases = [struct.unpack_from(">q", blob, p)[0] for p in (0, len(batch(3)), len(blob) - len(batch(1)))]
    assert bases == [100, 103, 105]
    assert k.walk_batches(blob) == k.walk_batches(before)   # CRCs still valid
    assert k.walk_batches(blob)[0] == OK
    # only the baseOffset fields changed
    starts = (0, len(batch(3)), len(blob) - len(batch(1)))
    assert all(any(p <= i < p + 8 for p in starts) for i in range(len(blob)) if blob[i] != before[i])
    assert k.rewrite_base_offsets(memoryview(blob), 0) == 6
    assert k.rewrite_base_offsets(bytearray(), 7) == 7


@BOTH
def test_count_records_counts_whole_batches_only(k):
    blob = batch(3) + batch(2, compression=3) + batch(1)
    assert k.count_records(blob) == 6
    assert k.count_records(memoryview(blob)[:-1]) == 5  # a fetch's partial last batch
    assert k.count_records(blob[:10]) == 0
    assert k.count_records(b"") == 0


@BOTH
def test_rewrite_base_offsets_rejects_bad_input(k):
    with pytest.raises(BufferError):
        k.rewrite_base_offsets(batch(1), 0)
    blob = bytearray(batch(1) + batch(1)[:-1])
    before = bytes(blob)
    with pytest.raises(ValueError):
        k.rewrite_base_offsets(blob, 42)
    assert blob == before  # nothing written


# ------------------------------------------------------------------------------ scan_batches


@pytest.fixture
def three():
    """Batches with offsets 10-12, 13-15, 16-18 and max timestamps 102, 202, 302."""
    bs = [batch(3, base_offset=10 + 3 * i, ts=100 * (i + 1)) for i in range(3)]
    return b"".join(bs), len(bs[0])


@BOTH
def test_scan_batches(k, three):
    blob, s = three
    assert k.scan_batches(blob, 0, 0, 1 << 20) == (0, 3 * s)
    assert k.scan_batches(blob, 0, 12, 1 << 20) == (0, 3 * s)
    assert k.scan_batches(blob, 0, 13, 1 << 20) == (s, 3 * s)
    assert k.scan_batches(blob, 0, 18, 1 << 20) == (2 * s, 3 * s)
    assert k.scan_batches(blob, 0, 19, 1 << 20) == (3 * s, 3 * s)   # nothing left
    assert k.scan_batches(blob, 0, 14, 2 * s) == (s, 3 * s)
    assert k.scan_batches(blob, 0, 10, 2 * s - 1) == (0, s)
    assert k.scan_batches(blob, s, 0, 1 << 20) == (s, 3 * s)        # start is a position


@BOTH
def test_scan_batches_always_one_batch(k, three):
    blob, s = three
    assert k.scan_batches(blob, 0, 13, 1) == (s, 2 * s)
    assert k.scan_batches(blob, 0, 13, 0) == (s, 2 * s)
    assert k.scan_batches(blob, 0, 13, -5) == (s, 2 * s)


@BOTH
def test_scan_batches_stops_at_truncation(k, three):
    blob, s = three
    assert k.scan_batches(blob[:-1], 0, 0, 1 << 20) == (0, 2 * s)
    assert k.scan_batches(blob[: 2 * s + 20], 0, 17, 1 << 20) == (2 * s, 2 * s)
    assert k.scan_batches(b"", 0, 0, 100) == (0, 0)
    assert k.scan_batches(blob, 3 * s, 0, 100) == (3 * s, 3 * s)
    with pytest.raises(ValueError):
        k.scan_batches(blob, 3 * s + 1, 0, 100)
    with pytest.raises(ValueError):
        k.scan_batches(blob, -1, 0, 100)


# ------------------------------------------------------------------------------ find_timestamp


@BOTH
def test_find_timestamp(k, three):
    blob, s = three
    assert k.find_timestamp(blob, 0, -1) == 0
    assert k.find_timestamp(blob, 0, 102) == 0
    assert k.find_timestamp(blob, 0, 103) == s
    assert k.find_timestamp(blob, 0, 302) == 2 * s
    assert k.find_timestamp(blob, 0, 303) == -1
    assert k.find_timestamp(blob, s, 0) == s
    assert k.find_timestamp(blob[:-1], 0, 250) == -1
    assert k.find_timestamp(b"", 0, 0) == -1
    with pytest.raises(ValueError):
        k.find_timestamp(blob, len(blob) + 1, 0)


# ------------------------------------------------------------------------------ build_index / index_floor


def entries_of(raw: bytes) -> list[tuple[int, int]]:
    return list(struct.iter_unpack(">qi", raw))


@BOTH
def test_build_index(k):
    bs = [batch(2, base_offset=2 * i) for i in range(5)]
    s = len(bs[0])
    body = b"".join(bs)
    assert entries_of(k.build_index(body, 32, 4)) == [(0, 32), (4, 32 + 2 * s), (8, 32 + 4 * s)]
    assert entries_of(k.build_index(body, 0, 3)) == [(0, 0), (4, 2 * s), (8, 4 * s)]
    assert entries_of(k.build_index(body, 32, 1)) == [(2 * i, 32 + i * s) for i in range(5)]
    assert k.build_index(body, 32, 0) == k.build_index(body, 32, 1)
    assert entries_of(k.build_index(body, 32, 1000)) == [(0, 32)]
    assert k.build_index(b"", 32, 10) == b""


@BOTH
def test_build_index_rejects_bad_input(k):
    with pytest.raises(ValueError):
        k.build_index(batch(1) + b"\x00" * 10, 32, 1)
    with pytest.raises(OverflowError):
        k.build_index(batch(1), 2**31, 1)


@BOTH
def test_index_floor(k):
    raw = b"".join(struct.pack(">qi", off, pos) for off, pos in [(10, 32), (20, 500), (30, 900)])
    assert k.index_floor(raw, 9) == -1
    assert k.index_floor(raw, 10) == 32
    assert k.index_floor(raw, 19) == 32
    assert k.index_floor(raw, 20) == 500
    assert k.index_floor(raw, 29) == 500
    assert k.index_floor(raw, 30) == 900
    assert k.index_floor(raw, 2**63 - 1) == 900
    assert k.index_floor(raw, -(2**63)) == -1
    assert k.index_floor(b"", 5) == -1
    assert k.index_floor(raw[:12], 10) == 32
    with pytest.raises(ValueError):
        k.index_floor(raw[:-1], 10)


@BOTH
@given(offsets=st.lists(st.integers(-1000, 1000), unique=True, max_size=40), probe=st.integers(-1100, 1100))
def test_index_floor_matches_linear_search(k, offsets, probe):
    offsets.sort()
    raw = b"".join(struct.pack(">qi", off, i) for i, off in enumerate(offsets))
    expected = max((i for i, off in enumerate(offsets) if off <= probe), default=-1)
    assert k.index_floor(raw, probe) == expected


# ------------------------------------------------------------------------------ record checks

from support import badbatches as bb  # noqa: E402

BAD_OFFSETS, BAD_TIMESTAMP, NULL_KEY, BAD_CODEC, CONTROL, BAD_SEQUENCE = 5, 6, 7, 8, 9, 10
CHECK_TIMESTAMPS, REQUIRE_KEYS, FROM_CLIENT = 1, 2, 4
ALL = CHECK_TIMESTAMPS | REQUIRE_KEYS | FROM_CLIENT


@BOTH
def test_check_records_accepts_what_clients_write(k):
    for n in (1, 3, 200):
        assert k.check_records(bb.records(n), n, bb.TS, bb.TS + n - 1, ALL) == (OK, n)
    assert k.check_records(b"", 0, 0, 0) == (OK, 0)


@BOTH
def test_check_records_faults_name_the_record(k):
    recs = bb.record(0) + bb.record(5, 1) + bb.record(9, 2)
    assert k.check_records(recs, 3, bb.TS, bb.TS + 2) == (BAD_OFFSETS, 1)
    assert k.check_records(bb.records(3), 5, bb.TS, bb.TS + 2) == (BAD_COUNT, 3)  # 5 declared, 3 inside
    assert k.check_records(bb.records(3), 2, bb.TS, bb.TS + 1)[0] == BAD_COUNT  # bytes left over
    assert k.check_records(b"", 3, 0, 0) == (BAD_COUNT, 0)
    assert k.check_records(b"\xff\xfe\x00garbage", 3, 0, 0)[0] == BAD_COUNT
    # maxTimestamp: checked only when asked
    assert k.check_records(bb.records(3), 3, bb.TS, bb.TS + 99) == (OK, 3)
    assert k.check_records(bb.records(3), 3, bb.TS, bb.TS + 99, CHECK_TIMESTAMPS) == (BAD_TIMESTAMP, 3)
    # keys: required only when asked
    nokey = bb.record(0) + bb.record(1, 1, key=None)
    assert k.check_records(nokey, 2, bb.TS, bb.TS + 1) == (OK, 2)
    assert k.check_records(nokey, 2, bb.TS, bb.TS + 1, REQUIRE_KEYS) == (NULL_KEY, 1)
    # an empty key is a key
    assert k.check_records(bb.record(0, key=b""), 1, bb.TS, bb.TS, REQUIRE_KEYS) == (OK, 1)


@BOTH
def test_walk_refuses_what_a_client_may_not_write(k):
    assert k.walk_batches(bb.raw_batch(bb.records(3), 3, attributes=5))[0] == BAD_CODEC
    assert k.walk_batches(bb.raw_batch(bb.records(3), 3, attributes=7))[0] == BAD_CODEC
    control = bb.raw_batch(bb.records(1), 1, attributes=bb.CONTROL)
    assert k.walk_batches(control)[0] == OK  # a stored control batch is fine
    assert k.walk_batches(control, FROM_CLIENT)[0] == CONTROL
    noseq = bb.raw_batch(bb.records(3), 3, producer_id=7, base_sequence=-1)
    assert k.walk_batches(noseq, FROM_CLIENT)[0] == BAD_SEQUENCE
    assert k.walk_batches(bb.raw_batch(bb.records(3), 3, producer_id=7, base_sequence=0), FROM_CLIENT)[0] == OK
    recs = bb.record(0) + bb.record(5, 1) + bb.record(9, 2)
    assert k.walk_batches(bb.raw_batch(recs, 3))[0] == BAD_OFFSETS
    late = bb.raw_batch(bb.records(3), 3, max_ts=bb.TS + 99)
    assert k.walk_batches(late)[0] == OK
    assert k.walk_batches(late, CHECK_TIMESTAMPS)[0] == BAD_TIMESTAMP
    # LogAppendTime batches: the broker's clock, not the records', sets the time
    assert k.walk_batches(bb.raw_batch(bb.records(3), 3, attributes=0x08, max_ts=-1), CHECK_TIMESTAMPS)[0] == OK
    nokey = bb.raw_batch(bb.record(0, key=None), 1, max_ts=bb.TS)
    assert k.walk_batches(nokey, REQUIRE_KEYS)[0] == NULL_KEY
    # the counters cover the good batches before the bad one
    good = bb.good_batch(2)
    assert k.walk_batches(good + nokey, REQUIRE_KEYS)[:3] == (NULL_KEY, 1, 2)


@BOTH
def test_rewrite_stamps_the_leader_epoch(k):
    blob = bytearray(batch(2) + batch(3))
    crcs = [blob[17:21], blob[len(batch(2)) + 17:len(batch(2)) + 21]]
    assert k.rewrite_base_offsets(blob, 10, 7) == 15
    second = len(batch(2))
    assert struct.unpack_from(">qii", blob, 0) == (10, len(batch(2)) - 12, 7)
    assert struct.unpack_from(">qii", blob, second) == (12, len(batch(3)) - 12, 7)
    assert [blob[17:21], blob[second + 17:second + 21]] == crcs  # outside the CRC
    assert k.walk_batches(blob)[0] == OK
    # -1 (the default) leaves the epoch the producer wrote
    fresh = bytearray(batch(1, partition_leader_epoch=3))
    k.rewrite_base_offsets(fresh, 0)
    assert struct.unpack_from(">i", fresh, 12) == (3,)
