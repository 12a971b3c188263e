"""The admin client's sans-IO parts: the consumer protocol, the assignors, the key
partitioner, version choice; and the CLI's table output and option errors."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafscale import config as cfgmod
from kafscale.admin import groupproto
from kafscale.admin.connection import CLIENT_VERSIONS, Connection
from kafscale.cli import build_parser
from kafscale.cli.output import Table, format_table


@given(st.binary(max_size=64))
def test_murmur2_matches_kafka_python(data):
    from kafka.partitioner.default import murmur2 as reference

    assert groupproto.murmur2(data) & 0xFFFFFFFF == reference(data) & 0xFFFFFFFF


def test_partition_for_key_matches_javas_known_values():
    # Kafka's Utils.murmur2 test vectors (UtilsTest.testMurmur2).
    assert groupproto.murmur2(b"21") == -973932308
    assert groupproto.murmur2(b"foobar") == -790332482
    assert groupproto.murmur2(b"a-little-bit-long-string") == -985981536
    assert groupproto.partition_for_key(b"21", 10) == (-973932308 & 0x7FFFFFFF) % 10


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.lists(st.integers(0, 1000), max_size=5), max_size=4))
def test_assignment_round_trip(assignment):
    got = groupproto.decode_assignment(groupproto.encode_assignment(assignment))
    assert got == {t: sorted(ps) for t, ps in assignment.items()}


def test_subscription_round_trip_and_later_versions():
    assert groupproto.decode_subscription(groupproto.encode_subscription(["a", "bé"])) == ["a", "bé"]
    # A v1 subscription (owned partitions appended) reads the same.
    v1 = b"\x00\x01" + groupproto.encode_subscription(["t"])[2:] + b"\x00\x00\x00\x00"
    assert groupproto.decode_subscription(v1) == ["t"]
    assert groupproto.decode_assignment(b"") == {}
    with pytest.raises(ValueError):
        groupproto.decode_assignment(b"\x00\x00\x00\x00\x00\x05ab")


def test_range_assignor_as_kafkas():
    plan = groupproto.assign("range", {"m1": ["t"], "m2": ["t"], "m3": ["t", "u"]}, {"t": 7, "u": 2})
    assert plan == {"m1": {"t": [0, 1, 2]}, "m2": {"t": [3, 4]}, "m3": {"t": [5, 6], "u": [0, 1]}}


def test_roundrobin_assignor_skips_members_not_subscribed():
    plan = groupproto.assign("roundrobin", {"a": ["t", "u"], "b": ["t"]}, {"t": 3, "u": 2})
    assert plan == {"a": {"t": [0, 2], "u": [0, 1]}, "b": {"t": [1]}}
    assert sorted(p for m in plan.values() for p in m.get("t", [])) == [0, 1, 2]


def test_version_choice_is_the_highest_both_speak():
    conn = Connection.__new__(Connection)
    conn.versions = {1: (4, 17), 3: (0, 5), 0: (0, 2)}
    assert conn.version_for(1) == CLIENT_VERSIONS[1][1]  # our ceiling: Fetch by topic name
    assert conn.version_for(3) == 5
    assert conn.version_for(0) is None  # Produce v3 (record batches) is our floor
    assert conn.version_for(37) is None  # not advertised


def test_table_is_aligned_and_shows_missing_values():
    text = format_table(Table(["A", "LONGER"], [["xxxx", None], ["y", 12]]))
    assert text.splitlines() == ["A     LONGER", "xxxx  -", "y     12"]
    assert format_table(Table(["A"])).splitlines() == ["A", "(none)"]


def test_common_options_go_before_or_after_the_subcommand():
    parser = build_parser()
    for argv in (["-o", "json", "topics", "list"], ["topics", "list", "-o", "json"],
                 ["topics", "-o", "json", "list"]):
        assert parser.parse_args(argv).output == "json", argv


@pytest.mark.parametrize("flags, env, message", [
    ({"auto_create_topics": "maybe"}, {}, "--auto-create-topics (KAFSCALE_AUTO_CREATE_TOPICS): not a boolean: 'maybe'"),
    ({}, {"KAFSCALE_LOG_LEVEL": "verbose"}, "--log-level (KAFSCALE_LOG_LEVEL): not a log level: 'verbose'"),
    ({"segment_bytes": "0"}, {}, "--segment-bytes (KAFSCALE_SEGMENT_BYTES): must be positive, not 0"),
    ({"shutdown_timeout_s": "soon"}, {}, "--shutdown-timeout-s (KAFSCALE_SHUTDOWN_TIMEOUT_S): not a number: 'soon'"),
    ({"metrics_port": "70000"}, {}, "--metrics-port (KAFSCALE_METRICS_PORT): not a port number"),
])
def test_config_errors_name_the_flag_and_the_variable(flags, env, message):
    with pytest.raises(cfgmod.ConfigError) as exc:
        cfgmod.from_sources(flags, env)
    assert str(exc.value).startswith(message)


def test_config_takes_text_and_parsed_values():
    cfg = cfgmod.from_sources({"segment_bytes": "4096", "auto_create_topics": False}, {"KAFSCALE_LOG_LEVEL": "debug"})
    assert (cfg.segment_bytes, cfg.auto_create_topics, cfg.log_level) == (4096, False, "debug")
    assert cfg.explicit >= {"segment_bytes", "auto_create_topics", "log_level"}
    assert "KAFSCALE_BOOTSTRAP_SERVER" not in {o.env for o in cfgmod.OPTIONS}
    assert os.environ.get("KAFSCALE_SEGMENT_BYTES") is None
