"""Builds message instances with random non-default values from the generated FIELDS."""

from __future__ import annotations

import random

from kafscale.protocol import messages

INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
}
TEXTS = ["", "a", "topic-1", "é日本", "x" * 300, "\u0000nul"]

ALL_MESSAGES = [(k, c) for k, c in sorted(messages.REQUESTS.items())] + \
               [(k, c) for k, c in sorted(messages.RESPONSES.items())]
ALL_PAIRS = [(cls, v) for _, cls in ALL_MESSAGES
             for v in range(cls.VALID_VERSIONS[0], cls.VALID_VERSIONS[1] + 1)]


class RandomSource:
    def __init__(self, seed: int, null_rate: float = 0.2, max_len: int = 3) -> None:
        self.r = random.Random(seed)
        self.null_rate = null_rate
        self.max_len = max_len

    def integer(self, lo: int, hi: int) -> int:
        return self.r.choice([lo, hi, self.r.randint(lo, hi), 1])

    def boolean(self) -> bool:
        return self.r.random() < 0.5

    def null(self) -> bool:
        return self.r.random() < self.null_rate

    def text(self) -> str:
        return self.r.choice(TEXTS)

    def binary(self) -> bytes:
        return self.r.randbytes(self.r.choice([0, 1, 5, 200]))

    def length(self) -> int:
        return self.r.randint(0, self.max_len)


class HypothesisSource:
    def __init__(self, data) -> None:
        from hypothesis import strategies as st
        self.st = st
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def boolean(self) -> bool:
        return self.data.draw(self.st.booleans())

    def null(self) -> bool:
        return self.data.draw(self.st.booleans())

    def text(self) -> str:
        return self.data.draw(self.st.text(max_size=20))

    def binary(self) -> bytes:
        return self.data.draw(self.st.binary(max_size=40))

    def length(self) -> int:
        return self.data.draw(self.st.integers(0, 2))


def _in(rng, version: int) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


def value_for(top: type, ftype: str, version: int, src, nullable: bool):
    if nullable and src.null():
        return None
    if ftype.startswith("[]"):
        elem = ftype[2:]
        return [value_for(top, elem, version, src, False) for _ in range(src.length())]
    if ftype in INT_RANGES:
        return src.integer(*INT_RANGES[ftype])
    if ftype == "float64":
        return src.integer(-(10 ** 6), 10 ** 6) / 4
    if ftype == "bool":
        return src.boolean()
    if ftype == "string":
        return src.text()
    if ftype in ("bytes", "records"):
        return src.binary()
    if ftype == "uuid":
        return bytes(src.integer(0, 255) for _ in range(16))
    return build(getattr(top, ftype), top, version, src)


def build(cls: type, top: type, version: int, src):
    kwargs = {}
    for attr, ftype, versions, nullable, _tag in cls.FIELDS:
        if _in(versions, version):
            kwargs[attr] = value_for(top, ftype, version, src, _in(nullable, version))
    return cls(**kwargs)


# ---------------------------------------------------------------------------------
# Tests

import struct as _struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kafscale.protocol import DecodeError, UnsupportedVersion
from kafscale.protocol.messages import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FetchRequest,
    FetchResponse,
    MetadataRequest,
    ProduceRequest,
    ProduceResponse,
)

PAIR_IDS = [f"{cls.__name__}-v{v}" for cls, v in ALL_PAIRS]


def test_every_api_key_has_request_and_response():
    expected = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 29, 30, 31, 32, 33, 34, 35,
                36, 37, 42, 43, 44, 45, 46, 47, 50, 51, 60, 61}
    assert set(messages.REQUESTS) == expected
    assert set(messages.RESPONSES) == expected
    for key in expected:
        req, resp = messages.REQUESTS[key], messages.RESPONSES[key]
        assert req.API_KEY == resp.API_KEY == key
        assert req.__name__.endswith("Request") and resp.__name__.endswith("Response")
        assert req.__name__[:-7] == resp.__name__[:-8]


@pytest.mark.parametrize("cls,version", ALL_PAIRS, ids=PAIR_IDS)
def test_round_trip_non_default_values(cls, version):
    for seed in range(4):
        obj = build(cls, cls, version, RandomSource(seed * 7919 + version, null_rate=0.0 if seed % 2 else 0.3))
        data = obj.encode(version)
        back = cls.decode(data, version)
        assert back == obj, seed
        assert back.encode(version) == data


@pytest.mark.parametrize("cls,version", ALL_PAIRS, ids=PAIR_IDS)
def test_defaults_round_trip(cls, version):
    obj = cls()
    assert cls.decode(obj.encode(version), version) == obj


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_PAIRS), st.data())
def test_round_trip_hypothesis(pair, data):
    cls, version = pair
    obj = build(cls, cls, version, HypothesisSource(data))
    encoded = obj.encode(version)
    assert cls.decode(encoded, version) == obj
    assert cls.decode(memoryview(bytearray(encoded)), version).encode(version) == encoded


@pytest.mark.parametrize("cls,version", ALL_PAIRS, ids=PAIR_IDS)
def test_truncated_and_trailing_bytes_raise_decode_error(cls, version):
    obj = build(cls, cls, version, RandomSource(version, null_rate=0.0, max_len=2))
    data = obj.encode(version)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            cls.decode(data[:cut], version)
    for garbage in (b"\0", b"\xff" * 7):
        with pytest.raises(DecodeError, match="trailing"):
            cls.decode(data + garbage, version)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(ALL_PAIRS), st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(pair, data):
    cls, version = pair
    try:
        cls.decode(data, version)
    except DecodeError:
        pass


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(ALL_PAIRS), st.data())
def test_mutated_encodings_raise_only_decode_error(pair, data):
    cls, version = pair
    encoded = bytearray(build(cls, cls, version, RandomSource(version, null_rate=0.1)).encode(version))
    if not encoded:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    try:
        cls.decode(bytes(encoded), version)
    except DecodeError:
        pass


def test_decode_rejects_versions_outside_valid_range():
    with pytest.raises(UnsupportedVersion):
        ApiVersionsRequest.decode(b"", 99)
    with pytest.raises(UnsupportedVersion):
        ApiVersionsRequest().encode(-1)


# -- object model ------------------------------------------------------------------

def test_class_model():
    assert ProduceRequest.API_KEY == 0
    assert ProduceRequest.VALID_VERSIONS[0] == 0 and ProduceRequest.FLEXIBLE_VERSION == 9
    assert messages.OffsetDeleteRequest.FLEXIBLE_VERSION is None
    assert ProduceResponse.TopicProduceResponse.__qualname__ == "ProduceResponse.TopicProduceResponse"
    assert ProduceResponse.PartitionProduceResponse
    assert FetchRequest.FetchTopic and FetchRequest.ReplicaState
    assert FetchResponse.LeaderIdAndEpoch and FetchResponse.SnapshotId
    with pytest.raises(TypeError):
        ProduceRequest(None, 1)  # keyword-only
    r = ProduceRequest()
    assert r.transactional_id is None and r.acks == 0 and r.topic_data == []
    assert ProduceRequest().topic_data is not r.topic_data  # fresh mutable defaults
    assert not hasattr(r, "__dict__")
    assert FetchRequest().max_bytes == 0x7FFFFFFF
    assert FetchRequest().replica_id == -1
    assert FetchResponse.PartitionData().current_leader == FetchResponse.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)
    assert FetchRequest.FetchTopic().topic_id == b"\0" * 16
    assert MetadataRequest().allow_auto_topic_creation is True
    assert MetadataRequest().topics == [] and MetadataRequest(topics=None).topics is None
    assert "transactional_id=None" in repr(r)
    assert ProduceRequest(acks=1) != ProduceRequest(acks=-1)
    assert ProduceRequest(acks=1) == ProduceRequest(acks=1)


def test_attribute_names_are_snake_case_of_json_names():
    assert "transactional_id" in ProduceRequest.__slots__
    assert "timeout_ms" in ProduceRequest.__slots__
    assert "partition_index" in FetchResponse.PartitionData.__slots__
    assert "api_keys" in ApiVersionsResponse.__slots__
    assert "is_internal" in messages.MetadataResponse.MetadataResponseTopic.__slots__
    assert "topic_id" in FetchRequest.FetchTopic.__slots__


# -- records -----------------------------------------------------------------------

def test_records_decode_to_zero_copy_slices():
    batch = bytes(range(256)) * 4
    req = ProduceRequest(acks=-1, timeout_ms=1000, topic_data=[
        ProduceRequest.TopicProduceData(name="t", partition_data=[
            ProduceRequest.PartitionProduceData(index=0, records=batch),
            ProduceRequest.PartitionProduceData(index=1, records=None)])])
    for version in (3, 9, 11):
        buf = req.encode(version)
        back = ProduceRequest.decode(buf, version)
        recs = back.topic_data[0].partition_data[0].records
        assert isinstance(recs, memoryview) and recs.obj is buf and recs == batch
        assert back.topic_data[0].partition_data[1].records is None
        # encode accepts memoryview / bytearray records
        assert back.encode(version) == buf
        back.topic_data[0].partition_data[0].records = bytearray(batch)
        assert back.encode(version) == buf


# -- tagged fields -----------------------------------------------------------------

def test_default_tagged_fields_are_not_written():
    resp = ApiVersionsResponse(error_code=0, throttle_time_ms=0, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)])
    data = resp.encode(3)
    #        error   count  key    min    max    tags  throttle     tags
    assert data == bytes.fromhex("0000" "02" "0012" "0000" "0004" "00" "00000000" "00")


def test_non_default_tagged_fields_are_written_in_tag_order():
    resp = ApiVersionsResponse(finalized_features_epoch=5, zk_migration_ready=True)
    data = resp.encode(3)
    assert data.endswith(bytes.fromhex("02" "01" "08" "0000000000000005" "03" "01" "01"))
    assert ApiVersionsResponse.decode(data, 3) == resp
    part = FetchResponse.PartitionData(current_leader=FetchResponse.LeaderIdAndEpoch(leader_id=3, leader_epoch=7))
    data = FetchResponse(responses=[FetchResponse.FetchableTopicResponse(partitions=[part])]).encode(12)
    assert bytes.fromhex("01" "01" "09" "00000003" "00000007" "00") in data  # struct has its own tag section
    assert FetchResponse.decode(data, 12).responses[0].partitions[0].current_leader.leader_id == 3


def test_unknown_tagged_fields_are_skipped():
    body = ApiVersionsRequest(client_software_name="x", client_software_version="1").encode(3)
    assert body.endswith(b"\0")
    with_unknown = body[:-1] + bytes([2, 9, 3, 1, 2, 3, 40, 0])  # tags 9 (3 bytes) and 40 (empty)
    assert ApiVersionsRequest.decode(with_unknown, 3) == ApiVersionsRequest.decode(body, 3)


def test_tagged_field_overrunning_its_size_is_rejected():
    body = ApiVersionsResponse().encode(3)
    bad = body[:-1] + bytes([1, 1, 2]) + b"\0\0\0\0\0\0\0\x05"[:2]  # epoch tag claims 2 bytes
    with pytest.raises(DecodeError):
        ApiVersionsResponse.decode(bad, 3)


# -- hostile input -----------------------------------------------------------------

def test_huge_array_count_is_rejected_before_allocating():
    data = _struct.pack(">hi", -1, 0x7FFFFFFF)  # MetadataRequest v1: topics count
    with pytest.raises(DecodeError, match="exceeds"):
        MetadataRequest.decode(_struct.pack(">i", 0x7FFFFFFF), 1)
    with pytest.raises(DecodeError):
        MetadataRequest.decode(data, 1)
    # compact: uvarint count 2**28 in v9
    with pytest.raises(DecodeError, match="exceeds"):
        MetadataRequest.decode(b"\x80\x80\x80\x80\x01" + b"\0" * 10, 9)


def test_negative_lengths_and_bad_utf8_are_rejected():
    # Metadata v1 topics: one topic whose name has length -2
    with pytest.raises(DecodeError, match="negative"):
        MetadataRequest.decode(_struct.pack(">ih", 1, -2), 1)
    # null name in a non-nullable string
    with pytest.raises(DecodeError, match="negative"):
        MetadataRequest.decode(_struct.pack(">ih", 1, -1), 1)
    # negative array count other than -1
    with pytest.raises(DecodeError, match="negative"):
        MetadataRequest.decode(_struct.pack(">i", -5), 1)
    with pytest.raises(DecodeError, match="UTF-8"):
        MetadataRequest.decode(_struct.pack(">ih", 1, 2) + b"\xff\xfe", 1)
    # a varint longer than 5 bytes
    with pytest.raises(DecodeError, match="varint"):
        MetadataRequest.decode(b"\xff\xff\xff\xff\xff\xff\x01", 9)
    # records with a negative length other than -1
    with pytest.raises(DecodeError):
        ProduceRequest.decode(_struct.pack(">hhii", -1, 1, 0, 1) + _struct.pack(">h", 1) + b"t"
                              + _struct.pack(">iii", 1, 0, -7), 3)


# -- differential check against an independent implementation -----------------------

def _kafka_python_classes():
    try:
        import importlib
        import pkgutil

        from kafka.protocol.api_message import ApiMessage
    except ImportError:
        return None
    found = {}
    for pkg_name in ("kafka.protocol.metadata", "kafka.protocol.admin", "kafka.protocol.consumer",
                     "kafka.protocol.producer"):
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg_name}.{info.name}")
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, ApiMessage) and getattr(value, "_json", None):
                    found[value.__name__] = value
    return found or None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python loads its JSON via legacy APIs
def test_bytes_agree_with_kafka_python_codecs():
    """Our encoding, decoded and re-encoded by kafka-python (JSON-driven too), is unchanged."""
    classes = _kafka_python_classes()
    if classes is None:
        pytest.skip("kafka-python >= 3 (kafka.protocol.api_message) is not installed")
    checked = 0
    for cls, version in ALL_PAIRS:
        theirs = classes.get(cls.__name__)
        if theirs is None or not theirs.min_version <= version <= theirs.max_version:
            continue
        for seed in range(3):
            obj = build(cls, cls, version, RandomSource(seed, null_rate=0.3 if seed % 2 else 0.0))
            if cls is ApiVersionsResponse:
                obj.error_code = 0  # kafka-python reads error responses as v0
            data = obj.encode(version)
            decoded = theirs[version].decode(data, version=version)
            decoded._header = None
            assert bytes(decoded.encode(version=version)) == data, (cls.__name__, version, seed)
            checked += 1
    assert checked > 500
