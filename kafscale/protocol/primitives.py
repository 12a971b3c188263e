"""Kafka wire primitives: bounds-checked readers and appending writers.

Every multi-byte integer is big-endian two's complement. Variable-length types:

    type             classic (non-flexible) version       flexible version ("compact")
    string           int16 length, then UTF-8 bytes       uvarint(length + 1), then bytes
    nullable string  int16 -1 for null                    uvarint 0 for null
    bytes            int32 length, then bytes             uvarint(length + 1), then bytes
    nullable bytes   int32 -1 for null                    uvarint 0 for null
    records          like nullable bytes                  like compact nullable bytes
    array            int32 count, then elements           uvarint(count + 1), then elements
    nullable array   int32 -1 for null                    uvarint 0 for null
    nullable struct  int8 -1 for null, 1 then the struct  (same)
    uuid             16 raw bytes                         (same)

A flexible struct ends with a tagged-field section:

    uvarint count, then count x (uvarint tag, uvarint size, size bytes)

The generated codecs in messages.py work on a (buf, pos) pair where ``buf`` is a
one-dimensional byte memoryview and ``pos`` an int; each ``read_*`` function here
returns ``(value, new_pos)``. ``struct.error``/``IndexError``/``UnicodeDecodeError``
raised by the straight-line generated code are turned into DecodeError by
:func:`decode_message`, the single entry point for whole-message decoding.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

__all__ = [
    "DecodeError", "UnknownApiKey", "UnsupportedVersion", "ZERO_UUID", "DEFAULT",
    "Message", "Reader", "Writer", "decode_message", "as_memoryview", "Gather",
]


class DecodeError(ValueError):
    """Malformed bytes on the wire. ``header`` is set when the request header was read."""

    def __init__(self, message: str, header: Any = None) -> None:
        super().__init__(message)
        self.header = header


class UnknownApiKey(ValueError):
    """The request's api key is not one we decode; ``header`` holds what was readable."""

    def __init__(self, message: str, header: Any = None) -> None:
        super().__init__(message)
        self.header = header


class UnsupportedVersion(ValueError):
    """The api key is known but the version is outside VALID_VERSIONS."""

    def __init__(self, message: str, header: Any = None) -> None:
        super().__init__(message)
        self.header = header


ZERO_UUID = b"\0" * 16


class _DefaultSentinel:
    """Keyword default for list- and struct-valued fields: "a fresh default value"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _DefaultSentinel()

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
UINT16 = struct.Struct(">H")
UINT32 = struct.Struct(">I")
FLOAT64 = struct.Struct(">d")
BOOL = struct.Struct(">?")
UUID = struct.Struct(">16s")

_i16_unpack = INT16.unpack_from
_i32_unpack = INT32.unpack_from
_i16_pack = INT16.pack
_i32_pack = INT32.pack
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"


# ---------------------------------------------------------------------------------
# Message base


class Message:
    """Base of every generated struct: slot-wise ``__eq__`` and a readable ``__repr__``."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        for name in self.__slots__:
            if getattr(self, name) != getattr(other, name):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        parts = []
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, memoryview):
                text = f"<{value.nbytes} bytes>"
            else:
                text = repr(value)
            parts.append(f"{name}={text}")
        return f"{self.__class__.__qualname__}({', '.join(parts)})"


def as_memoryview(buf: Any) -> memoryview:
    """A 1-D unsigned-byte view of ``buf`` without copying."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def decode_message(cls: Any, read: Callable[[memoryview, int, int], tuple[Any, int]],
                   buf: Any, version: int, pos: int = 0, whole: bool = True) -> tuple[Any, int]:
    """Run a generated struct reader, mapping every failure to DecodeError.

    Returns ``(obj, end_pos)``; with ``whole`` bytes left after the message are an error.
    """
    lo, hi = cls.VALID_VERSIONS
    if not lo <= version <= hi:
        raise UnsupportedVersion(f"{cls.__name__} v{version} is outside {lo}-{hi}")
    mv = as_memoryview(buf)
    try:
        obj, end = read(mv, pos, version)
    except DecodeError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise DecodeError(f"malformed {cls.__name__} v{version}: {exc}") from None
    if whole and end != len(mv):
        raise DecodeError(f"{len(mv) - end} trailing bytes after {cls.__name__} v{version}")
    return obj, end


def _short(what: str, pos: int, need: int, buf: memoryview) -> DecodeError:
    return DecodeError(f"{what} of {need} bytes at offset {pos} overruns buffer of {len(buf)}")


# ---------------------------------------------------------------------------------
# Readers over (buf, pos); all return (value, new_pos)


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    try:
        b = buf[pos]
    except IndexError:
        raise DecodeError(f"varint at offset {pos} overruns buffer") from None
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    end = len(buf)
    while True:
        if pos >= end:
            raise DecodeError("varint overruns buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes")


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    raw, pos = read_uvarint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def _utf8(buf: memoryview, pos: int, n: int) -> str:
    try:
        return str(buf[pos:pos + n], "utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in string at offset {pos}: {exc.reason}") from None


def read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    n = _i16_unpack(buf, pos)[0]
    pos += 2
    if n < 0:
        raise DecodeError(f"negative length {n} for non-nullable string at offset {pos - 2}")
    if pos + n > len(buf):
        raise _short("string", pos, n, buf)
    return _utf8(buf, pos, n), pos + n


def read_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n = _i16_unpack(buf, pos)[0]
    pos += 2
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative length {n} for string at offset {pos - 2}")
    if pos + n > len(buf):
        raise _short("string", pos, n, buf)
    return _utf8(buf, pos, n), pos + n


def read_compact_string(buf: memoryview, pos: int) -> tuple[str, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        raise DecodeError(f"null for non-nullable compact string at offset {pos}")
    if pos + n > len(buf):
        raise _short("string", pos, n, buf)
    return _utf8(buf, pos, n), pos + n


def read_compact_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise _short("string", pos, n, buf)
    return _utf8(buf, pos, n), pos + n


def read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        raise DecodeError(f"negative length {n} for non-nullable bytes at offset {pos - 4}")
    if pos + n > len(buf):
        raise _short("bytes", pos, n, buf)
    return bytes(buf[pos:pos + n]), pos + n


def read_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative length {n} for bytes at offset {pos - 4}")
    if pos + n > len(buf):
        raise _short("bytes", pos, n, buf)
    return bytes(buf[pos:pos + n]), pos + n


def read_compact_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        raise DecodeError(f"null for non-nullable compact bytes at offset {pos}")
    if pos + n > len(buf):
        raise _short("bytes", pos, n, buf)
    return bytes(buf[pos:pos + n]), pos + n


def read_compact_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise _short("bytes", pos, n, buf)
    return bytes(buf[pos:pos + n]), pos + n


# Records are handed on untouched: a zero-copy slice of the input.

def read_records(buf: memoryview, pos: int) -> tuple[memoryview, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        raise DecodeError(f"negative length {n} for non-nullable records at offset {pos - 4}")
    if pos + n > len(buf):
        raise _short("records", pos, n, buf)
    return buf[pos:pos + n], pos + n


def read_nullable_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative length {n} for records at offset {pos - 4}")
    if pos + n > len(buf):
        raise _short("records", pos, n, buf)
    return buf[pos:pos + n], pos + n


def read_compact_records(buf: memoryview, pos: int) -> tuple[memoryview, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        raise DecodeError(f"null for non-nullable compact records at offset {pos}")
    if pos + n > len(buf):
        raise _short("records", pos, n, buf)
    return buf[pos:pos + n], pos + n


def read_compact_nullable_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise _short("records", pos, n, buf)
    return buf[pos:pos + n], pos + n


# Array counts. Every element takes at least one byte on the wire (Kafka makes the
# same check), so a count above the bytes left is rejected before anything is built.
# Nullable variants return -1 for null.

def read_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        raise DecodeError(f"negative count {n} for non-nullable array at offset {pos - 4}")
    if n > len(buf) - pos:
        raise DecodeError(f"array count {n} at offset {pos - 4} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def read_nullable_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n = _i32_unpack(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return -1, pos
        raise DecodeError(f"negative count {n} for array at offset {pos - 4}")
    if n > len(buf) - pos:
        raise DecodeError(f"array count {n} at offset {pos - 4} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def read_compact_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        raise DecodeError(f"null for non-nullable compact array at offset {pos}")
    if n > len(buf) - pos:
        raise DecodeError(f"array count {n} at offset {pos} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def read_compact_nullable_count(buf: memoryview, pos: int) -> tuple[int, int]:
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = read_uvarint(buf, pos)
    n -= 1
    if n < 0:
        return -1, pos
    if n > len(buf) - pos:
        raise DecodeError(f"array count {n} at offset {pos} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def read_fixed_array(buf: memoryview, pos: int, n: int, code: str, size: int) -> tuple[list, int]:
    """``n`` fixed-width elements of struct format ``code`` (e.g. "i", "q", "16s")."""
    end = pos + n * size
    if end > len(buf):
        raise _short("array", pos, n * size, buf)
    return list(struct.unpack_from(">" + code * n if len(code) > 1 else f">{n}{code}", buf, pos)), end


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    n, pos = read_uvarint(buf, pos)
    for _ in range(n):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise DecodeError("tagged field overruns buffer")
    return pos


def read_tag_header(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """``(tag, start, end)`` of one tagged field; the value lies in buf[start:end]."""
    tag, pos = read_uvarint(buf, pos)
    size, pos = read_uvarint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise DecodeError(f"tagged field {tag} of {size} bytes overruns buffer")
    return tag, pos, end


# ---------------------------------------------------------------------------------
# Writers appending to a bytearray


def write_uvarint(out: bytearray, n: int) -> None:
    if n < 0:
        raise ValueError(f"negative unsigned varint {n}")
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_varint(out: bytearray, n: int) -> None:
    write_uvarint(out, (n << 1) ^ (n >> 63))


def write_string(out: bytearray, s: str) -> None:
    b = s.encode()
    if len(b) > 0x7FFF:
        raise ValueError(f"string of {len(b)} bytes is too long")
    out += _i16_pack(len(b))
    out += b


def write_nullable_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out += _NULL16
    else:
        write_string(out, s)


def write_compact_string(out: bytearray, s: str) -> None:
    b = s.encode()
    n = len(b) + 1
    if n < 0x80:
        out.append(n)
    else:
        write_uvarint(out, n)
    out += b


def write_compact_nullable_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out.append(0)
    else:
        write_compact_string(out, s)


def write_bytes(out: bytearray, b: Any) -> None:
    out += _i32_pack(len(b) if not isinstance(b, memoryview) else b.nbytes)
    out += b


def write_nullable_bytes(out: bytearray, b: Any) -> None:
    if b is None:
        out += _NULL32
    else:
        write_bytes(out, b)


def write_compact_bytes(out: bytearray, b: Any) -> None:
    write_uvarint(out, (len(b) if not isinstance(b, memoryview) else b.nbytes) + 1)
    out += b


def write_compact_nullable_bytes(out: bytearray, b: Any) -> None:
    if b is None:
        out.append(0)
    else:
        write_compact_bytes(out, b)


def write_count(out: bytearray, n: int) -> None:
    out += _i32_pack(n)


def write_compact_count(out: bytearray, n: int) -> None:
    if n < 0x7F:
        out.append(n + 1)
    else:
        write_uvarint(out, n + 1)


def write_fixed_array(out: bytearray, items: Any, code: str) -> None:
    n = len(items)
    out += struct.pack(">" + code * n if len(code) > 1 else f">{n}{code}", *items)


def write_tagged_fields(out: bytearray, tagged: list[tuple[int, bytearray]]) -> None:
    """Tagged fields in ascending tag order (the generator emits them sorted)."""
    n = len(tagged)
    out.append(n) if n < 0x80 else write_uvarint(out, n)
    for tag, data in tagged:
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data


# ---------------------------------------------------------------------------------
# Object-style Reader/Writer (headers and hand-written codecs)


class Reader:
    """A cursor over a byte buffer; every read is bounds-checked and raises DecodeError."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: Any, pos: int = 0) -> None:
        self.buf = as_memoryview(buf)
        self.pos = pos

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def _fixed(self, s: struct.Struct) -> Any:
        pos = self.pos
        if pos + s.size > len(self.buf):
            raise _short("value", pos, s.size, self.buf)
        self.pos = pos + s.size
        return s.unpack_from(self.buf, pos)[0]

    def int8(self) -> int:
        return self._fixed(INT8)

    def int16(self) -> int:
        return self._fixed(INT16)

    def int32(self) -> int:
        return self._fixed(INT32)

    def int64(self) -> int:
        return self._fixed(INT64)

    def uint16(self) -> int:
        return self._fixed(UINT16)

    def uint32(self) -> int:
        return self._fixed(UINT32)

    def float64(self) -> float:
        return self._fixed(FLOAT64)

    def bool(self) -> bool:
        return self._fixed(BOOL)

    def uuid(self) -> bytes:
        return self._fixed(UUID)

    def _call(self, fn: Callable[[memoryview, int], tuple[Any, int]]) -> Any:
        try:
            value, self.pos = fn(self.buf, self.pos)
        except (struct.error, IndexError) as exc:
            raise DecodeError(str(exc)) from None
        return value

    def uvarint(self) -> int:
        return self._call(read_uvarint)

    def varint(self) -> int:
        return self._call(read_varint)

    def string(self) -> str:
        return self._call(read_string)

    def nullable_string(self) -> str | None:
        return self._call(read_nullable_string)

    def compact_string(self) -> str:
        return self._call(read_compact_string)

    def compact_nullable_string(self) -> str | None:
        return self._call(read_compact_nullable_string)

    def bytes(self) -> bytes:
        return self._call(read_bytes)

    def nullable_bytes(self) -> bytes | None:
        return self._call(read_nullable_bytes)

    def compact_bytes(self) -> bytes:
        return self._call(read_compact_bytes)

    def compact_nullable_bytes(self) -> bytes | None:
        return self._call(read_compact_nullable_bytes)

    def skip_tagged_fields(self) -> None:
        self.pos = skip_tagged_fields(self.buf, self.pos)


class Writer:
    """Appends encoded primitives to a bytearray (``out``)."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.out)

    def int8(self, v: int) -> None:
        self.out += INT8.pack(v)

    def int16(self, v: int) -> None:
        self.out += INT16.pack(v)

    def int32(self, v: int) -> None:
        self.out += INT32.pack(v)

    def int64(self, v: int) -> None:
        self.out += INT64.pack(v)

    def uint16(self, v: int) -> None:
        self.out += UINT16.pack(v)

    def uint32(self, v: int) -> None:
        self.out += UINT32.pack(v)

    def float64(self, v: float) -> None:
        self.out += FLOAT64.pack(v)

    def bool(self, v: bool) -> None:
        self.out.append(1 if v else 0)

    def uuid(self, v: bytes) -> None:
        if len(v) != 16:
            raise ValueError("uuid must be 16 bytes")
        self.out += v

    def uvarint(self, v: int) -> None:
        write_uvarint(self.out, v)

    def varint(self, v: int) -> None:
        write_varint(self.out, v)

    def string(self, v: str) -> None:
        write_string(self.out, v)

    def nullable_string(self, v: str | None) -> None:
        write_nullable_string(self.out, v)

    def compact_string(self, v: str) -> None:
        write_compact_string(self.out, v)

    def compact_nullable_string(self, v: str | None) -> None:
        write_compact_nullable_string(self.out, v)

    def bytes(self, v: Any) -> None:
        write_bytes(self.out, v)

    def nullable_bytes(self, v: Any) -> None:
        write_nullable_bytes(self.out, v)

    def compact_bytes(self, v: Any) -> None:
        write_compact_bytes(self.out, v)

    def compact_nullable_bytes(self, v: Any) -> None:
        write_compact_nullable_bytes(self.out, v)

    def empty_tagged_fields(self) -> None:
        self.out.append(0)


class Gather(bytearray):
    """An encoding buffer that keeps large appended buffers (a fetch response's record
    batches, slices of cached segments) by reference instead of copying them in.
    ``parts()`` gives the encoding as buffers to send one after another; ``size`` is
    its whole length. Encoders only ever append, so nothing else changes for them."""

    BY_REFERENCE = 64 * 1024

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._refs: list[tuple[int, Any]] = []  # (position in the bytearray, buffer)
        self._ref_bytes = 0

    def __iadd__(self, b):
        if isinstance(b, (bytes, memoryview)):
            n = b.nbytes if isinstance(b, memoryview) else len(b)
            if n >= self.BY_REFERENCE:
                self._refs.append((len(self), b))
                self._ref_bytes += n
                return self
        return super().__iadd__(b)

    @property
    def size(self) -> int:
        return len(self) + self._ref_bytes

    def parts(self) -> list:
        if not self._refs:
            return [self]
        view = memoryview(self)
        out: list = []
        start = 0
        for pos, ref in self._refs:
            if pos > start:
                out.append(view[start:pos])
            out.append(ref)
            start = pos
        if start < len(self):
            out.append(view[start:])
        return out
