"""Record-batch compression codecs, by Kafka attribute value (bits 0-2 of attributes).

    1 gzip    RFC 1952 stream (concatenated members accepted; zlib streams too)
    2 snappy  xerial framing, as the Java client writes it:
                  b"\\x82SNAPPY\\x00" | i32 version=1 | i32 min compatible=1 |
                  repeated (i32 big-endian length | raw snappy block)
              decompress also accepts one raw snappy block (librdkafka writes those)
    3 lz4     standard LZ4 frame (KIP-57; Kafka's own "broken" pre-v1 checksum is not
              used by magic-2 batches)
    4 zstd    standard zstd frames; frames without a content size are streamed

``decompress`` never returns more than ``max_size`` bytes: a batch that would inflate
past it raises ValueError (decompression-bomb guard), as does corrupt input or an
unknown codec. It returns a bytes-like object (the buffer it decompressed into, not a
copy of it).
"""

from __future__ import annotations

import struct
import zlib

import lz4.frame
import snappy
import zstandard

__all__ = [
    "NONE",
    "GZIP",
    "SNAPPY",
    "LZ4",
    "ZSTD",
    "CODEC_NAMES",
    "DEFAULT_MAX_SIZE",
    "compress",
    "decompress",
]

NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

DEFAULT_MAX_SIZE = 64 * 1024 * 1024

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024  # snappy-java's default block size
_I32 = struct.Struct(">i")
_CHUNK = 256 * 1024


def _too_big(max_size: int) -> ValueError:
    return ValueError(f"decompressed data exceeds {max_size} bytes")


# ------------------------------------------------------------------------------ gzip


def _gzip_compress(data) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _gzip_decompress(data, max_size: int) -> bytes:
    out = bytearray()
    rest = bytes(data)
    try:
        while True:
            d = zlib.decompressobj(47)  # gzip or zlib header, auto-detected
            chunk = rest
            while True:
                # max_length is >= 1 here (0 would mean unlimited)
                piece = d.decompress(chunk, max_size + 1 - len(out))
                out += piece
                if len(out) > max_size:
                    raise _too_big(max_size)
                if d.eof:
                    break
                chunk = d.unconsumed_tail
                if not chunk and not piece:
                    raise ValueError("gzip: truncated stream")
            rest = d.unused_data
            if not rest.strip(b"\x00"):  # trailing zero padding is tolerated, like gunzip
                return out
    except zlib.error as exc:
        raise ValueError(f"gzip: {exc}") from None


# ------------------------------------------------------------------------------ snappy


def _raw_length(block) -> int:
    """Uncompressed length from a raw snappy block's uvarint preamble."""
    result = 0
    for i in range(5):
        if i >= len(block):
            break
        b = block[i]
        result |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return result
    raise ValueError("snappy: bad length preamble")


def _snappy_block(block, budget: int, max_size: int) -> bytes:
    if _raw_length(block) > budget:
        raise _too_big(max_size)
    try:
        out = snappy.uncompress(bytes(block))
    except Exception as exc:  # snappy.UncompressError and cramjam's own errors
        raise ValueError(f"snappy: {exc}") from None
    if len(out) > budget:
        raise _too_big(max_size)
    return bytes(out)


def _snappy_compress(data) -> bytes:
    mv = memoryview(data).cast("B")
    parts = [_XERIAL_HEADER]
    for start in range(0, len(mv), _XERIAL_BLOCK):
        block = bytes(snappy.compress(mv[start : start + _XERIAL_BLOCK].tobytes()))
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data, max_size: int) -> bytes:
    mv = memoryview(data).cast("B")
    if mv[:8] != XERIAL_MAGIC:
        return _snappy_block(mv, max_size, max_size)
    if len(mv) < 16:
        raise ValueError("snappy: truncated xerial header")
    out = bytearray()
    pos = 16
    n = len(mv)
    while pos < n:
        if n - pos < 4:
            raise ValueError("snappy: truncated xerial block length")
        (length,) = _I32.unpack_from(mv, pos)
        pos += 4
        if length < 0 or length > n - pos:
            raise ValueError("snappy: truncated xerial block")
        out += _snappy_block(mv[pos : pos + length], max_size - len(out), max_size)
        pos += length
    return out


# ------------------------------------------------------------------------------ lz4


def _lz4_compress(data) -> bytes:
    return lz4.frame.compress(
        bytes(data),
        block_size=lz4.frame.BLOCKSIZE_MAX64KB,
        content_checksum=False,
        block_linked=False,
    )


def _lz4_decompress(data, max_size: int) -> bytes:
    out = bytearray()
    rest = bytes(data)
    if not rest:
        raise ValueError("lz4: empty input")
    try:
        while rest:
            d = lz4.frame.LZ4FrameDecompressor()
            chunk = rest
            # python-lz4 allocates max_length bytes up front: ask for a little at a time
            # (the whole budget made a 1 KiB batch cost 30 us instead of 2).
            step = max(4096, 4 * len(rest))
            while True:
                out += d.decompress(chunk, max_length=min(step, max_size + 1 - len(out)))
                step *= 2
                if len(out) > max_size:
                    raise _too_big(max_size)
                if d.eof or d.needs_input:
                    break
                chunk = b""
            if not d.eof:
                raise ValueError("lz4: truncated frame")
            rest = d.unused_data or b""
    except RuntimeError as exc:  # lz4.frame reports corrupt input as RuntimeError
        raise ValueError(f"lz4: {exc}") from None
    return out


# ------------------------------------------------------------------------------ zstd

_ZSTD_C = zstandard.ZstdCompressor(level=3)
_ZSTD_D = zstandard.ZstdDecompressor()


def _zstd_compress(data) -> bytes:
    return _ZSTD_C.compress(data)


def _zstd_decompress(data, max_size: int) -> bytes:
    # zstandard's bounded readers treat a truncated frame as a clean end, so feed a
    # decompressobj (which reports eof) with slices small enough that one slice cannot
    # inflate past the remaining budget: a zstd block is >= 4 bytes for <= 128 KiB out.
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n == 0:
        raise ValueError("zstd: empty input")
    out = bytearray()
    pos = 0
    try:
        while pos < n:
            obj = _ZSTD_D.decompressobj()
            while True:
                if pos >= n:
                    raise ValueError("zstd: truncated frame")
                feed = max(16, (max_size - len(out)) >> 15)
                piece = mv[pos : pos + feed]
                pos += len(piece)
                out += obj.decompress(piece)
                if len(out) > max_size:
                    raise _too_big(max_size)
                if obj.eof:
                    pos -= len(obj.unused_data)
                    break
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd: {exc}") from None
    return out


# ------------------------------------------------------------------------------ API

_COMPRESS = {GZIP: _gzip_compress, SNAPPY: _snappy_compress, LZ4: _lz4_compress, ZSTD: _zstd_compress}
_DECOMPRESS = {
    GZIP: _gzip_decompress,
    SNAPPY: _snappy_decompress,
    LZ4: _lz4_decompress,
    ZSTD: _zstd_decompress,
}


def compress(codec: int, data) -> bytes:
    """Compress ``data`` with the codec whose Kafka attribute value is ``codec`` (1-4)."""
    fn = _COMPRESS.get(codec)
    if fn is None:
        raise ValueError(f"unknown compression codec {codec!r}")
    return fn(data)


def decompress(codec: int, data, max_size: int = DEFAULT_MAX_SIZE) -> bytes | bytearray:
    """Decompress ``data``; ValueError if corrupt, unknown codec, or over ``max_size``."""
    fn = _DECOMPRESS.get(codec)
    if fn is None:
        raise ValueError(f"unknown compression codec {codec!r}")
    if max_size < 0:
        raise ValueError("max_size must be >= 0")
    return fn(data, max_size)
