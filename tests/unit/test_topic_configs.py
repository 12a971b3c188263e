"""Topic configs are checked as Kafka checks them: names, types, ranges, allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafscale import topic_configs as tc
from kafscale.errors import ErrorCode, InvalidConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def refused(config: dict) -> str:
    """The message of the InvalidConfig that validating ``config`` raises."""
    with pytest.raises(InvalidConfig) as err:
        tc.validate(config)
    assert err.value.code == ErrorCode.INVALID_CONFIG
    return str(err.value)


@pytest.mark.parametrize("name", sorted(tc.CONFIGS))
def test_every_default_passes_its_own_check(name):
    entry = tc.lookup(name)
    assert entry is not None and entry.name == name
    assert tc.validate({name: entry.default}) == {name: entry.default}


def test_the_table_holds_kafkas_topic_configs_with_their_type_ids():
    assert len(tc.CONFIGS) == 36
    assert {n for n, e in tc.CONFIGS.items() if e.acted_on} == {"max.message.bytes", "cleanup.policy", "retention.ms",
                                                                         "retention.bytes", "segment.bytes"}
    assert tc.lookup("no.such.config") is None
    assert (tc.lookup("cleanup.policy").type, tc.lookup("retention.ms").type) == (tc.LIST, tc.LONG)
    assert [t.value for t in tc.ConfigType] == list(range(10))  # DescribeConfigs v3+ ids
    assert (tc.ConfigType.BOOLEAN, tc.ConfigType.LONG, tc.ConfigType.PASSWORD) == (1, 5, 9)


@pytest.mark.parametrize("name, text, problem", [
    # not of the type
    ("retention.ms", "banana", "Not a number of type LONG"),
    ("retention.ms", "1.5", "Not a number of type LONG"),
    ("retention.ms", "", "Not a number of type LONG"),
    ("max.message.bytes", "1_000", "Not a number of type INT"),
    ("segment.bytes", "2147483648", "Not a number of type INT"),  # past a 32-bit int
    ("flush.ms", "9223372036854775808", "Not a number of type LONG"),
    ("min.cleanable.dirty.ratio", "half", "Not a number of type DOUBLE"),
    ("min.cleanable.dirty.ratio", "nan", "Not a number of type DOUBLE"),
    ("preallocate", "yes", "Expected value to be either true or false"),
    ("remote.storage.enable", "1", "Expected value to be either true or false"),
    # out of range
    ("retention.ms", "-2", "Value must be at least -1"),
    ("segment.bytes", "13", "Value must be at least 14"),
    ("max.message.bytes", "-1", "Value must be at least 0"),
    ("min.insync.replicas", "0", "Value must be at least 1"),
    ("local.retention.ms", "-3", "Value must be at least -2"),
    ("min.cleanable.dirty.ratio", "1.01", "Value must be no more than 1"),
    ("compression.lz4.level", "18", "Value must be no more than 17"),
    ("compression.gzip.level", "0", "Value must be between 1 and 9 or equal to -1"),
    # not among the allowed values
    ("cleanup.policy", "banana", "String must be one of: compact, delete"),
    ("cleanup.policy", "compact,banana", "String must be one of: compact, delete"),
    ("cleanup.policy", "compact,,delete", "String must be one of: compact, delete"),
    ("compression.type", "brotli", "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
    ("compression.type", "GZIP", "String must be one of"),  # case-sensitive, as Kafka's
    ("message.timestamp.type", "createtime", "String must be one of: CreateTime, LogAppendTime"),
    ("leader.replication.throttled.replicas", "0:1,x", "must be the literal '*' or a list of replicas"),
    ("message.format.version", "9.9", "Version 9.9 is not a valid version"),
])
def test_a_bad_value_is_refused_naming_key_value_and_what_is_allowed(name, text, problem):
    message = refused({name: text})
    assert message.startswith(f"Invalid value {text.strip()} for configuration {name}: "), message
    assert problem in message


def test_cleanup_policy_banana_reads_as_kafkas_message():
    assert refused({"cleanup.policy": "banana"}) == \
        "Invalid value banana for configuration cleanup.policy: String must be one of: compact, delete"


def test_unknown_key_and_null_value_are_refused_by_name():
    assert refused({"retention.ms": "1", "no.such.config": "1"}) == "Unknown topic config name: no.such.config"
    assert "retention.ms" in refused({"retention.ms": None})


def test_compaction_lags_must_be_in_order():
    message = refused({"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "99"})
    assert "min.compaction.lag.ms (100) > max.compaction.lag.ms (99)" in message
    tc.validate({"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "100"})


@pytest.mark.parametrize("text, stored", [
    ("delete", "delete"), ("compact", "compact"), ("delete,compact", "delete,compact"),
    ("compact,delete", "compact,delete"), (" compact , delete ", "compact,delete"),
    ("compact,\tdelete", "compact,delete"), ("", ""),  # Kafka 3.x takes an empty list
])
def test_cleanup_policy_lists_are_trimmed(text, stored):
    assert tc.validate({"cleanup.policy": text}) == {"cleanup.policy": stored}


def test_values_are_normalized():
    got = tc.validate({"retention.ms": " 60000 ", "preallocate": "TRUE", "remote.storage.enable": " False",
                       "compression.type": "zstd ", "leader.replication.throttled.replicas": "0:1, 1:2",
                       "follower.replication.throttled.replicas": "*", "message.format.version": "2.8.1",
                       "min.cleanable.dirty.ratio": "1e-1", "compression.zstd.level": "-5"})
    assert got == {"retention.ms": "60000", "preallocate": "true", "remote.storage.enable": "false",
                   "compression.type": "zstd", "leader.replication.throttled.replicas": "0:1,1:2",
                   "follower.replication.throttled.replicas": "*", "message.format.version": "2.8.1",
                   "min.cleanable.dirty.ratio": "1e-1", "compression.zstd.level": "-5"}
    assert tc.validate({}) == {}


def test_typed_values_fall_back_to_the_broker_default_then_kafkas():
    config = {"retention.ms": "60000", "preallocate": "true", "cleanup.policy": "compact,delete"}
    assert tc.value(config, "retention.ms") == 60000
    assert tc.value(config, "preallocate") is True
    assert tc.value(config, "cleanup.policy") == ["compact", "delete"]
    assert tc.value(config, "max.message.bytes", 2000) == 2000
    assert tc.value(config, "max.message.bytes") == 1048588
    assert tc.value(config, "min.cleanable.dirty.ratio") == 0.5
    assert tc.value({}, "leader.replication.throttled.replicas") == []


@pytest.mark.parametrize("policy, compacted", [
    (None, False), ("delete", False), ("compact", True), ("delete,compact", True),
    ("compact, delete", True), ("Compact", True), ("", False),
])
def test_is_compacted(policy, compacted):
    config = {} if policy is None else {"cleanup.policy": policy}
    assert tc.is_compacted(config) is compacted


def test_every_topic_config_is_in_configuration_md():
    missing = [name for name in tc.CONFIGS if f"| `{name}` |" not in DOC]
    assert not missing, f"topic configs missing from docs/configuration.md: {missing}"
