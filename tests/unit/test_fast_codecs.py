"""Compression codecs by Kafka codec id: round trips, interop, framing, bomb guard."""

from __future__ import annotations

import gzip
import os
import struct

import lz4.frame
import pytest
import snappy
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from kafscale import _fast
from kafscale._fast import codecs
from kafscale._fast.codecs import compress, decompress

CODECS = [1, 2, 3, 4]
MIXED = os.urandom(40_000) + b"abc" * 50_000 + bytes(range(256)) * 100


def test_reexported():
    assert _fast.compress is compress and _fast.decompress is decompress


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("data", [b"", b"x", MIXED], ids=["empty", "one", "mixed"])
def test_round_trip(codec, data):
    assert decompress(codec, compress(codec, data)) == data
    assert decompress(codec, bytearray(compress(codec, data))) == data
    assert decompress(codec, memoryview(compress(codec, data))) == data


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000))
def test_round_trip_property(codec, data):
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize("codec", [0, 5, 7, -1])
def test_unknown_codec(codec):
    with pytest.raises(ValueError):
        compress(codec, b"x")
    with pytest.raises(ValueError):
        decompress(codec, b"x")


# ------------------------------------------------------------------------------ snappy framing


def test_snappy_writes_xerial_framing():
    data = b"hello " * 20_000  # > one 32 KiB xerial block
    out = compress(2, data)
    assert out[:8] == b"\x82SNAPPY\x00"
    assert struct.unpack_from(">ii", out, 8) == (1, 1)
    pos, blocks, got = 16, 0, b""
    while pos < len(out):
        (n,) = struct.unpack_from(">i", out, pos)
        got += snappy.uncompress(out[pos + 4 : pos + 4 + n])
        pos += 4 + n
        blocks += 1
    assert pos == len(out) and got == data and blocks == 4


def test_snappy_reads_raw_blocks():
    """librdkafka writes one raw snappy block without xerial framing."""
    assert decompress(2, snappy.compress(MIXED)) == MIXED
    assert decompress(2, snappy.compress(b"")) == b""


def test_snappy_reads_xerial_with_empty_body():
    assert decompress(2, b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)) == b""


@pytest.mark.parametrize("bad", [
    b"\x82SNAPPY\x00\x00\x00",                                  # truncated header
    b"\x82SNAPPY\x00" + struct.pack(">iii", 1, 1, 100) + b"xx",  # block past the end
    b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + b"\x00\x00",  # truncated length
    b"\xff\xff\xff\xff\xff\xff",                                 # bad raw preamble
    b"\x05abc",                                                  # raw block too short
])
def test_snappy_corrupt(bad):
    with pytest.raises(ValueError):
        decompress(2, bad)


# ------------------------------------------------------------------------------ other framings


def test_gzip_is_a_gzip_stream_and_members_concatenate():
    out = compress(1, b"abc")
    assert out[:2] == b"\x1f\x8b" and gzip.decompress(out) == b"abc"
    assert decompress(1, gzip.compress(b"one") + gzip.compress(b"two")) == b"onetwo"


def test_lz4_is_a_standard_frame():
    assert lz4.frame.decompress(compress(3, MIXED)) == MIXED
    assert decompress(3, lz4.frame.compress(MIXED, content_checksum=True)) == MIXED


def test_zstd_without_content_size():
    """The Java client streams zstd: frames carry no content size."""
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    obj = cctx.compressobj()
    frame = obj.compress(MIXED) + obj.flush()
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decompress(4, frame) == MIXED
    assert decompress(4, frame + frame) == MIXED + MIXED  # consecutive frames


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_and_garbage_input(codec):
    good = compress(codec, MIXED)
    for bad in (good[: len(good) // 2], good[:-3], b"\x00" * 50, good[:5]):
        with pytest.raises(ValueError):
            decompress(codec, bad)


@pytest.mark.parametrize("codec", [1, 3, 4])
def test_empty_input_is_an_error(codec):
    with pytest.raises(ValueError):
        decompress(codec, b"")


# ------------------------------------------------------------------------------ bomb guard


@pytest.mark.parametrize("codec", CODECS)
def test_bomb_guard(codec):
    bomb = compress(codec, b"\x00" * (8 << 20))
    assert len(bomb) < (1 << 20)
    with pytest.raises(ValueError, match="exceeds"):
        decompress(codec, bomb, max_size=1 << 20)
    assert len(decompress(codec, bomb, max_size=8 << 20)) == 8 << 20
    with pytest.raises(ValueError, match="exceeds"):
        decompress(codec, bomb, max_size=(8 << 20) - 1)


def test_zstd_bomb_without_content_size():
    obj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = obj.compress(b"\x00" * (32 << 20)) + obj.flush()
    with pytest.raises(ValueError, match="exceeds"):
        decompress(4, bomb, max_size=1 << 20)


def test_default_max_size():
    assert codecs.DEFAULT_MAX_SIZE == 64 * 1024 * 1024


# ------------------------------------------------------------------------------ interop


kafka_codec = pytest.importorskip("kafka.codec")

INTEROP = {
    1: (kafka_codec.gzip_encode, kafka_codec.gzip_decode),
    2: (lambda d: kafka_codec.snappy_encode(d, xerial_compatible=True), kafka_codec.snappy_decode),
    3: (kafka_codec.lz4_encode, kafka_codec.lz4_decode),
    4: (kafka_codec.zstd_encode, kafka_codec.zstd_decode),
}


@pytest.mark.parametrize("codec", CODECS)
def test_interop_with_kafka_python(codec):
    encode, decode = INTEROP[codec]
    assert decompress(codec, encode(MIXED)) == MIXED
    assert decode(compress(codec, MIXED)) == MIXED
