"""Request/response headers, whole-frame codecs and golden frames from real clients."""

from __future__ import annotations

import struct

import pytest

from kafscale.protocol import (
    DecodeError,
    UnknownApiKey,
    UnsupportedVersion,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_response,
    request_header_version,
    response_header_version,
)
from kafscale.protocol.messages import (
    REQUESTS,
    ApiVersionsRequest,
    ApiVersionsResponse,
    FetchResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def s16(s: str) -> bytes:
    return i16(len(s)) + s.encode()


def compact(s: str) -> bytes:
    return bytes([len(s) + 1]) + s.encode()


# -- golden frames (size prefix stripped) ------------------------------------------

# Captured from confluent-kafka 2.16.1 / librdkafka 2.16.0 (client.id=rdkafka).
LIBRDKAFKA_API_VERSIONS_V3 = bytes.fromhex(
    "0012000300000001000772646b61666b610017636f6e666c75656e742d6b61666b612d707974686f6e"
    "16322e31362e312d72646b61666b612d322e31362e3000")
LIBRDKAFKA_METADATA_V12_BROKERS_ONLY = bytes.fromhex("0003000c00000002000772646b61666b610001000000")
# "all topics": librdkafka#5049 writes the null compact array as int32 0 -> varint 0
# (null) followed by 3 stray bytes, which Kafka ignores.
LIBRDKAFKA_METADATA_V12_ALL_TOPICS = bytes.fromhex("0003000c00000003000772646b61666b610000000000010000")
# Captured from kafka-python 3.0.12 (client_id=kp).
KAFKA_PYTHON_API_VERSIONS_V4 = bytes.fromhex("001200040000000100026b70000d6b61666b612d707974686f6e07332e302e313200")


def test_librdkafka_api_versions_v3_hand_built_matches_capture():
    hand = (i16(18) + i16(3) + i32(1) + s16("rdkafka") + b"\0"
            + compact("confluent-kafka-python") + compact("2.16.1-rdkafka-2.16.0") + b"\0")
    assert hand == LIBRDKAFKA_API_VERSIONS_V3
    header, req = decode_request(hand)
    assert (header.request_api_key, header.request_api_version, header.correlation_id) == (18, 3, 1)
    assert header.client_id == "rdkafka" and header.header_version == 2 and header.header_size == 18
    assert req == ApiVersionsRequest(client_software_name="confluent-kafka-python",
                                     client_software_version="2.16.1-rdkafka-2.16.0")
    assert encode_request(18, 3, 1, "rdkafka", req)[4:] == hand


def test_kafka_python_api_versions_v4():
    header, req = decode_request(KAFKA_PYTHON_API_VERSIONS_V4)
    assert header.client_id == "kp" and header.request_api_version == 4
    assert req.client_software_name == "kafka-python"
    assert encode_request(18, 4, 1, "kp", req)[4:] == KAFKA_PYTHON_API_VERSIONS_V4


def test_librdkafka_metadata_v12():
    _, req = decode_request(LIBRDKAFKA_METADATA_V12_BROKERS_ONLY)
    assert req.topics == [] and req.allow_auto_topic_creation is False
    header, req = decode_request(LIBRDKAFKA_METADATA_V12_ALL_TOPICS)
    assert header.correlation_id == 3
    assert req.topics is None  # all topics, as Kafka reads it
    # The message-level decode stays strict about the stray bytes.
    with pytest.raises(DecodeError, match="trailing"):
        MetadataRequest.decode(LIBRDKAFKA_METADATA_V12_ALL_TOPICS[header.header_size:], 12)


def test_metadata_v1_request_golden():
    frame = i16(3) + i16(1) + i32(7) + s16("kcat") + i32(2) + s16("orders") + s16("payments")
    header, req = decode_request(frame)
    assert header.header_version == 1 and header.header_size == 14
    assert [t.name for t in req.topics] == ["orders", "payments"]
    assert encode_request(3, 1, 7, "kcat", req) == i32(len(frame)) + frame
    all_topics = i16(3) + i16(1) + i32(8) + s16("kcat") + i32(-1)
    assert decode_request(all_topics)[1].topics is None


def test_produce_v3_request_golden():
    batch = bytes(range(61))  # opaque to the codec
    frame = (i16(0) + i16(3) + i32(99) + s16("producer-1")
             + i16(-1)  # transactional_id: null
             + i16(-1) + i32(30000)  # acks=all, timeout
             + i32(1) + s16("events")
             + i32(1) + i32(4) + i32(len(batch)) + batch)
    header, req = decode_request(frame)
    assert header.correlation_id == 99 and header.client_id == "producer-1"
    assert req.transactional_id is None and req.acks == -1 and req.timeout_ms == 30000
    part = req.topic_data[0].partition_data[0]
    assert req.topic_data[0].name == "events" and part.index == 4
    assert part.records == batch and part.records.obj is frame
    assert encode_request(0, 3, 99, "producer-1", req)[4:] == frame


# -- header versions ---------------------------------------------------------------

def test_header_versions():
    assert request_header_version(18, 2) == 1
    assert request_header_version(18, 3) == 2
    assert request_header_version(18, 7) == 2  # above the highest known: still flexible
    assert response_header_version(18, 3) == 0  # ApiVersions always answers with v0
    assert response_header_version(18, 4) == 0
    assert request_header_version(3, 8) == 1 and request_header_version(3, 9) == 2
    assert response_header_version(3, 8) == 0 and response_header_version(3, 9) == 1
    assert request_header_version(47, 0) == 1 and response_header_version(47, 0) == 0
    assert request_header_version(60, 0) == 2 and response_header_version(60, 0) == 1


def test_encode_response_frames():
    resp = ApiVersionsResponse(error_code=0, api_keys=[ApiVersionsResponse.ApiVersion(api_key=18, max_version=4)])
    frame = encode_response((18, 3, 5), resp)
    body = resp.encode(3)
    assert frame == i32(4 + len(body)) + i32(5) + body  # header v0: no tagged byte
    assert decode_response(18, 3, frame[4:]) == (5, resp)
    header, _ = decode_request(encode_request(1, 12, 6, "c", REQUESTS[1]())[4:])
    frame = encode_response(header, FetchResponse(session_id=3))
    assert frame[4:9] == i32(6) + b"\0"  # header v1 carries an empty tagged section
    assert decode_response(1, 12, frame[4:]) == (6, FetchResponse(session_id=3))
    with pytest.raises(DecodeError, match="trailing"):
        decode_response(1, 12, frame[4:] + b"\0")


# -- rejections --------------------------------------------------------------------

def test_unknown_api_key_carries_header():
    frame = i16(1000) + i16(0) + i32(77) + s16("cli") + b"junk"
    with pytest.raises(UnknownApiKey) as exc:
        decode_request(frame)
    h = exc.value.header
    assert (h.request_api_key, h.request_api_version, h.correlation_id, h.client_id) == (1000, 0, 77, "cli")
    # even when the client id is unreadable
    with pytest.raises(UnknownApiKey) as exc:
        decode_request(i16(1000) + i16(0) + i32(78) + b"\x7f")
    assert exc.value.header.correlation_id == 78


def test_unsupported_version_carries_header():
    # An ApiVersions request from a newer client: v3+ header shape, client id readable.
    frame = i16(18) + i16(9) + i32(5) + s16("new") + b"\0" + b"\x01\x01\0"
    with pytest.raises(UnsupportedVersion) as exc:
        decode_request(frame)
    h = exc.value.header
    assert (h.request_api_key, h.request_api_version, h.correlation_id, h.client_id) == (18, 9, 5, "new")
    with pytest.raises(UnsupportedVersion) as exc:
        decode_request(i16(0) + i16(-1) + i32(6))
    assert exc.value.header.correlation_id == 6


def test_malformed_frames():
    for frame in (b"", b"\0\x12\0\x03\0\0\0"):
        with pytest.raises(DecodeError):
            decode_request(frame)
    # truncated client id
    with pytest.raises(DecodeError) as exc:
        decode_request(i16(18) + i16(0) + i32(1) + i16(10) + b"abc")
    assert exc.value.header.correlation_id == 1
    # header fine, body truncated: the error carries the header for logging
    frame = encode_request(3, 1, 12, "c", MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="t")]))
    with pytest.raises(DecodeError) as exc:
        decode_request(frame[4:-1])
    assert exc.value.header.correlation_id == 12
    assert decode_request_header(frame[4:]).header_size == 11


def test_every_request_decodes_through_the_frame_path():
    for key, cls in REQUESTS.items():
        for version in range(cls.VALID_VERSIONS[0], cls.VALID_VERSIONS[1] + 1):
            frame = encode_request(key, version, 1234, "id", cls())
            header, req = decode_request(frame[4:])
            assert header.request_api_key == key and header.correlation_id == 1234
            assert header.header_version == request_header_version(key, version)
            assert req == cls()


def test_metadata_response_round_trip_through_frames():
    resp = MetadataResponse(brokers=[MetadataResponse.MetadataResponseBroker(node_id=1, host="h", port=9092)],
                            cluster_id="c", controller_id=1)
    for version in (0, 1, 9, 12):
        frame = encode_response((3, version, 9), resp)
        cid, back = decode_response(3, version, frame[4:])
        assert cid == 9 and back.brokers == resp.brokers
    assert ProduceRequest.API_KEY == 0


def test_large_record_sets_are_sent_by_reference_and_frame_the_same():
    """A fetch response's big record sets are not copied into the encoding: the parts
    refer to the cached bytes, and joined they are exactly the copied encoding."""
    from kafscale.protocol import headers as h
    from kafscale.protocol.messages import FetchResponse as F
    from kafscale.protocol.primitives import Gather

    cached = bytes(range(256)) * 1024  # 256 KiB "segment"
    small = memoryview(cached)[:100]
    big = memoryview(cached)[1000:1000 + 200 * 1024]
    resp = F(error_code=0, session_id=0, responses=[F.FetchableTopicResponse(topic="t", partitions=[
        F.PartitionData(partition_index=0, high_watermark=5, last_stable_offset=5, log_start_offset=0,
                        records=big),
        F.PartitionData(partition_index=1, high_watermark=1, last_stable_offset=1, log_start_offset=0,
                        records=small)])])
    for version in (4, 12):
        parts = h.encode_response_parts((1, version, 77), resp)
        assert any(p is big for p in parts) and not any(p is small for p in parts)
        plain = Gather.BY_REFERENCE
        try:
            Gather.BY_REFERENCE = 1 << 62  # copy everything: the reference encoding
            copied = b"".join(h.encode_response_parts((1, version, 77), resp))
        finally:
            Gather.BY_REFERENCE = plain
        joined = b"".join(parts)
        assert joined == copied == h.encode_response((1, version, 77), resp)
        size, corr = struct.unpack_from(">ii", joined)
        assert (size, corr) == (len(joined) - 4, 77)
        _, decoded = h.decode_response(1, version, joined[4:])
        got = decoded.responses[0].partitions
        assert bytes(got[0].records) == bytes(big) and bytes(got[1].records) == bytes(small)
