"""Request and response headers, and whole-frame request/response codecs.

A request frame (after its 4-byte size prefix)::

    int16  request_api_key
    int16  request_api_version
    int32  correlation_id
    nullable string client_id      header v1+; int16 length even in v2 (never compact)
    tagged fields                  header v2 (flexible request versions)
    request body

A response frame::

    int32  size                    of everything below
    int32  correlation_id
    tagged fields                  header v1 (flexible response versions, not ApiVersions)
    response body

Header v0 (no client_id) is used by no API we serve, so requests are read as v1 or v2.
"""

from __future__ import annotations

import struct
from typing import Union

from .messages import REQUESTS, RESPONSES, request_header_version, response_header_version
from .primitives import (
    DecodeError,
    Gather,
    Message,
    UnknownApiKey,
    UnsupportedVersion,
    Reader,
    as_memoryview,
    read_nullable_string,
    skip_tagged_fields,
    write_nullable_string,
)

__all__ = [
    "RequestHeader", "decode_request_header", "decode_request", "encode_response",
    "encode_request", "decode_response", "encode_request_header",
]

_HEAD = struct.Struct(">hhi")
_SIZE_CORR = struct.Struct(">ii")
_INT32 = struct.Struct(">i")

Buffer = Union[bytes, bytearray, memoryview]


class RequestHeader:
    """A decoded request header; ``header_size`` is the offset of the body in the frame."""

    __slots__ = ("request_api_key", "request_api_version", "correlation_id", "client_id",
                 "header_version", "header_size")

    def __init__(self, request_api_key: int, request_api_version: int, correlation_id: int,
                 client_id: str | None = None, header_version: int = 1, header_size: int = 0) -> None:
        self.request_api_key = request_api_key
        self.request_api_version = request_api_version
        self.correlation_id = correlation_id
        self.client_id = client_id
        self.header_version = header_version
        self.header_size = header_size

    def __repr__(self) -> str:
        return (f"RequestHeader(api_key={self.request_api_key}, api_version={self.request_api_version}, "
                f"correlation_id={self.correlation_id}, client_id={self.client_id!r}, "
                f"header_version={self.header_version}, header_size={self.header_size})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestHeader):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


def decode_request_header(buf: Buffer) -> RequestHeader:
    """Read the header at the start of a request frame (without the size prefix).

    The header version follows from the api key and version in the first 4 bytes; for
    an unknown api key it is read as v1 (v2 only appends tagged fields). Raises
    DecodeError when even api key, version and correlation id cannot be read, or when
    the rest of the header is malformed (``exc.header`` then holds the first three).
    """
    mv = as_memoryview(buf)
    if len(mv) < 8:
        raise DecodeError(f"request frame of {len(mv)} bytes is shorter than a header")
    api_key, api_version, correlation_id = _HEAD.unpack_from(mv, 0)
    known = api_key in REQUESTS
    version = request_header_version(api_key, api_version) if known else 1
    header = RequestHeader(api_key, api_version, correlation_id, None, version, 8)
    try:
        header.client_id, pos = read_nullable_string(mv, 8)
        if version >= 2:
            pos = skip_tagged_fields(mv, pos)
    except (DecodeError, struct.error) as exc:
        raise DecodeError(f"malformed request header: {exc}", header) from None
    header.header_size = pos
    return header


def decode_request(frame: Buffer) -> tuple[RequestHeader, Message]:
    """Decode a whole request frame (without its size prefix) into (header, request).

    Like Kafka, bytes after the request body are ignored (see below).

    Raises UnknownApiKey or UnsupportedVersion (``exc.header`` set, so the caller can
    answer or close) and DecodeError for malformed bytes (``exc.header`` set if the
    header itself was readable). The request's records fields are memoryview slices
    of ``frame``.
    """
    mv = as_memoryview(frame)
    try:
        header = decode_request_header(mv)
    except DecodeError as exc:
        if exc.header is None:
            raise
        hdr = exc.header
        if hdr.request_api_key not in REQUESTS:
            raise UnknownApiKey(f"unknown api key {hdr.request_api_key}", hdr) from None
        lo, hi = REQUESTS[hdr.request_api_key].VALID_VERSIONS
        if not lo <= hdr.request_api_version <= hi:
            raise UnsupportedVersion(
                f"api key {hdr.request_api_key} v{hdr.request_api_version} is outside {lo}-{hi}", hdr) from None
        raise
    cls = REQUESTS.get(header.request_api_key)
    if cls is None:
        raise UnknownApiKey(f"unknown api key {header.request_api_key}", header)
    lo, hi = cls.VALID_VERSIONS
    version = header.request_api_version
    if not lo <= version <= hi:
        raise UnsupportedVersion(f"{cls.__name__} v{version} is outside {lo}-{hi}", header)
    # Bytes after the body are ignored, as Kafka does: librdkafka (up to at least 2.16,
    # librdkafka#5049) writes a null Metadata v9+ topics array as a 4-byte placeholder,
    # which parses as varint 0 (null) followed by three stray bytes.
    try:
        request = cls.decode_from(Reader(mv, header.header_size), version)  # type: ignore[attr-defined]
    except DecodeError as exc:
        exc.header = header
        raise
    return header, request


def encode_response(header: RequestHeader | tuple[int, int, int], response: Message) -> bytes:
    """The full response frame, size prefix included.

    ``header`` is the request's RequestHeader or ``(api_key, api_version, correlation_id)``.
    """
    return b"".join(encode_response_parts(header, response))


def encode_response_parts(header: RequestHeader | tuple[int, int, int], response: Message) -> list:
    """The full response frame as buffers to send in order: large record sets (64 KiB
    and up) are not copied into the encoding but sent from where they are (the
    segment cache)."""
    if isinstance(header, RequestHeader):
        api_key, api_version, correlation_id = (header.request_api_key, header.request_api_version,
                                                header.correlation_id)
    else:
        api_key, api_version, correlation_id = header
    out = Gather(8)
    if response_header_version(api_key, api_version) >= 1:
        out.append(0)  # no tagged fields in the header
    response.encode_into(out, api_version)  # type: ignore[attr-defined]
    _SIZE_CORR.pack_into(out, 0, out.size - 4, correlation_id)
    return out.parts()


def encode_request_header(out: bytearray, api_key: int, api_version: int, correlation_id: int,
                          client_id: str | None) -> None:
    out += _HEAD.pack(api_key, api_version, correlation_id)
    write_nullable_string(out, client_id)
    if request_header_version(api_key, api_version) >= 2:
        out.append(0)


def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   request: Message) -> bytes:
    """A full request frame, size prefix included (client side; used by tests and tools)."""
    out = bytearray(4)
    encode_request_header(out, api_key, api_version, correlation_id, client_id)
    request.encode_into(out, api_version)  # type: ignore[attr-defined]
    _INT32.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def decode_response(api_key: int, api_version: int, frame: Buffer) -> tuple[int, Message]:
    """Decode a response frame (without its size prefix) into (correlation_id, response)."""
    cls = RESPONSES.get(api_key)
    if cls is None:
        raise UnknownApiKey(f"unknown api key {api_key}")
    mv = as_memoryview(frame)
    if len(mv) < 4:
        raise DecodeError("response frame shorter than its header")
    correlation_id = _INT32.unpack_from(mv, 0)[0]
    pos = 4
    if response_header_version(api_key, api_version) >= 1:
        pos = skip_tagged_fields(mv, pos)
    reader = Reader(mv, pos)
    response = cls.decode_from(reader, api_version)  # type: ignore[attr-defined]
    if reader.pos != len(mv):
        raise DecodeError(f"{len(mv) - reader.pos} trailing bytes after {cls.__name__} v{api_version}")
    return correlation_id, response


def api_name(api_key: int) -> str:
    """Kafka's name of an API ("Produce", "DescribeConfigs"), or its number if unknown."""
    cls = REQUESTS.get(api_key)
    return cls.__name__[:-len("Request")] if cls is not None else str(api_key)


API_NAMES = {key: api_name(key) for key in REQUESTS}
