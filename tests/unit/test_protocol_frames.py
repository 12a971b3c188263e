"""FrameDecoder: whole, byte at a time, several frames per chunk, hostile sizes."""

from __future__ import annotations

import struct

import pytest

from kafscale.protocol import DecodeError, FrameDecoder, FrameTooLarge, decode_request, encode_request
from kafscale.protocol.messages import ApiVersionsRequest, MetadataRequest


def frames_of(*bodies: bytes) -> bytes:
    return b"".join(struct.pack(">i", len(b)) + b for b in bodies)


def test_whole_chunk_yields_zero_copy_slices():
    data = frames_of(b"abc", b"", b"defg")
    dec = FrameDecoder(100)
    dec.feed(data)
    got = list(dec)
    assert [bytes(f) for f in got] == [b"abc", b"", b"defg"]
    assert all(f.obj is data for f in got)  # slices of the fed bytes, no copy
    assert dec.next_frame() is None and dec.buffered == 0


def test_byte_at_a_time():
    req = encode_request(3, 1, 42, "client", MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="t")]))
    req2 = encode_request(18, 3, 43, "client", ApiVersionsRequest(client_software_name="x", client_software_version="1"))
    dec = FrameDecoder(1 << 20)
    out = []
    for i in range(len(req + req2)):
        dec.feed((req + req2)[i:i + 1])
        frame = dec.next_frame()
        if frame is not None:
            out.append(frame)
    assert [bytes(f) for f in out] == [req[4:], req2[4:]]
    header, body = decode_request(out[0])
    assert header.correlation_id == 42 and body.topics[0].name == "t"
    assert decode_request(out[1])[0].correlation_id == 43


def test_frames_spanning_chunks_and_mutable_input():
    data = frames_of(b"x" * 10, b"y" * 3)
    dec = FrameDecoder(100)
    buf = bytearray(data[:7])
    dec.feed(buf)
    buf[:] = b"\0" * 7  # caller reuses its receive buffer
    assert dec.next_frame() is None
    dec.feed(memoryview(data)[7:16])
    assert bytes(dec.next_frame()) == b"x" * 10
    assert dec.next_frame() is None
    dec.feed(data[16:])
    assert bytes(dec.next_frame()) == b"yyy"
    assert dec.next_frame() is None


def test_size_limits():
    dec = FrameDecoder(10)
    dec.feed(struct.pack(">i", 10) + b"0123456789")
    assert bytes(dec.next_frame()) == b"0123456789"
    dec.feed(struct.pack(">i", 11))
    with pytest.raises(FrameTooLarge):
        dec.next_frame()
    dec = FrameDecoder(10)
    dec.feed(struct.pack(">i", -1))
    with pytest.raises(DecodeError, match="negative"):
        dec.next_frame()
    assert issubclass(FrameTooLarge, DecodeError)
