"""Fuzzing the sans-IO decoders with hypothesis: whatever bytes a client sends, the
frame decoder and every registered request decoder answer with frames, requests or a
DecodeError (or the header errors that name an unknown key or version), never any other
exception. Bounded (a few hundred examples each) to stay well under a minute."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kafscale.broker.handlers  # noqa: F401 - registers the handlers
from kafscale.broker.registry import REGISTRY
from kafscale.protocol import DecodeError, FrameDecoder, UnknownApiKey, UnsupportedVersion, decode_request, encode_request
from kafscale.protocol.headers import REQUESTS
from kafscale.protocol.messages import ApiVersionsRequest

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = (DecodeError, UnknownApiKey, UnsupportedVersion)


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


GOOD = encode_request(18, 3, 7, "fuzz", ApiVersionsRequest(client_software_name="f", client_software_version="1"))[4:]


@FAST
@given(bodies=st.lists(st.binary(max_size=64), max_size=8), cuts=st.lists(st.integers(0, 600), max_size=12))
def test_frames_come_out_whole_however_the_bytes_are_split(bodies, cuts):
    """Zero-length frames included, several per read, split at any byte."""
    stream = b"".join(frame(b) for b in bodies)
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    dec = FrameDecoder(1 << 20)
    got = []
    for a, b in zip(points, points[1:]):
        dec.feed(stream[a:b])
        got += [bytes(f) for f in dec]
    assert got == bodies and dec.buffered == 0


@FAST
@given(data=st.binary(max_size=300), cut=st.integers(0, 300))
def test_the_frame_decoder_never_fails_but_with_a_decode_error(data, cut):
    dec = FrameDecoder(1000)
    try:
        dec.feed(data[:cut])
        list(dec)
        dec.feed(data[cut:])
        list(dec)
    except DecodeError:
        pass


REGISTERED = sorted((r.api_key, v) for r in REGISTRY.supported() for v in range(r.min_version, r.max_version + 1)
                    if r.api_key in REQUESTS)


@pytest.mark.parametrize("api_key,version", REGISTERED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tail=st.binary(max_size=200))
def test_every_request_decoder_takes_garbage_with_a_decode_error(api_key, version, tail):
    head = struct.pack(">hhi", api_key, version, 1)
    for body in (head + tail, head + b"\x00\x04fuzz" + tail, head + b"\xff\xff\x00" + tail):
        try:
            decode_request(body)
        except ALLOWED:
            pass


@FAST
@given(cut=st.integers(0, len(GOOD)), junk=st.binary(max_size=40))
def test_a_valid_request_cut_short_or_with_junk_after(cut, junk):
    try:
        decode_request(GOOD[:cut])
    except ALLOWED:
        pass
    _header, req = decode_request(GOOD + junk)  # (bytes after the body are ignored, as Kafka does)
    assert req.client_software_name == "f"
