"""kafscale/broker_configs.py: which value a config has, its synonyms, and config changes."""

from __future__ import annotations

import pytest

from kafscale import broker_configs as bc, topic_configs
from kafscale.broker_configs import ConfigSource as S, DynamicState
from kafscale.config import OPTIONS, Config
from kafscale.errors import ErrorCode, InvalidConfig, KafkaError
from kafscale.topic_configs import ConfigType


def _by_name(described) -> dict:
    return {d.name: d for d in described}


def test_every_topic_config_with_a_broker_synonym_names_a_broker_config():
    assert set(bc.TOPIC_SYNONYMS) <= set(topic_configs.CONFIGS)
    assert set(bc.TOPIC_SYNONYMS.values()) <= set(bc.CONFIGS)
    # Every option is reported, under Kafka's name where it has one.
    assert {o.config_name for o in OPTIONS} <= set(bc.CONFIGS)
    assert bc.CONFIGS["message.max.bytes"].option.name == "max_message_bytes"
    assert bc.CONFIGS["message.max.bytes"].topic.name == "max.message.bytes"


def test_a_topic_config_comes_from_the_topic_then_broker_dynamic_then_static_then_default():
    static = Config(log_retention_ms=1000, explicit=frozenset({"log_retention_ms"}))
    state = DynamicState(cluster={"log.retention.ms": "2000", "log.cleanup.policy": "compact"},
                         brokers={1: {"log.retention.ms": "3000"}, 2: {"log.retention.ms": "4000"}})
    topic = _by_name(bc.describe_topic({"retention.ms": "5000"}, static, state, broker_id=1))
    assert topic["retention.ms"].value == "5000"
    assert topic["retention.ms"].synonyms == (
        ("retention.ms", "5000", S.DYNAMIC_TOPIC_CONFIG), ("log.retention.ms", "3000", S.DYNAMIC_BROKER_CONFIG),
        ("log.retention.ms", "2000", S.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("log.retention.ms", "1000", S.STATIC_BROKER_CONFIG), ("log.retention.ms", "604800000", S.DEFAULT_CONFIG))
    topic = _by_name(bc.describe_topic({}, static, state, broker_id=1))
    assert (topic["retention.ms"].value, topic["retention.ms"].source) == ("3000", S.DYNAMIC_BROKER_CONFIG)
    assert (topic["cleanup.policy"].value, topic["cleanup.policy"].source) == \
        ("compact", S.DYNAMIC_DEFAULT_BROKER_CONFIG)
    assert (topic["segment.bytes"].value, topic["segment.bytes"].source) == (str(16 << 20), S.DEFAULT_CONFIG)
    # A topic config with no broker synonym has Kafka's default.
    assert topic["remote.storage.enable"].synonyms == (("remote.storage.enable", "false", S.DEFAULT_CONFIG),)
    topic = _by_name(bc.describe_topic({}, static, DynamicState(), broker_id=1))
    assert (topic["retention.ms"].value, topic["retention.ms"].source) == ("1000", S.STATIC_BROKER_CONFIG)
    assert all(not d.read_only and not d.sensitive for d in topic.values())
    assert len(topic) == len(topic_configs.CONFIGS)


def test_broker_description_hides_secrets_and_marks_static_configs_read_only():
    static = Config(s3_secret_key="hunter2", explicit=frozenset({"s3_secret_key"}))
    broker = _by_name(bc.describe_broker(static, DynamicState(), 0))
    secret = broker["kafscale.s3.secret.key"]
    assert secret.sensitive and secret.value is None and secret.type is ConfigType.PASSWORD
    assert all(v is None for _, v, _ in secret.synonyms)
    assert broker["broker.id"].read_only and not broker["message.max.bytes"].read_only
    assert broker["auto.create.topics.enable"].value == "true"
    assert broker["auto.create.topics.enable"].type is ConfigType.BOOLEAN
    assert broker["log.cleanup.policy"].type is ConfigType.LIST and not broker["log.cleanup.policy"].read_only


def test_cluster_default_resource_lists_only_what_was_set_for_every_broker():
    state = DynamicState(cluster={"message.max.bytes": "5000"}, brokers={0: {"group.max.size": "3"}})
    described = bc.describe_cluster_default(state)
    assert [(d.name, d.value, d.source) for d in described] == [
        ("message.max.bytes", "5000", S.DYNAMIC_DEFAULT_BROKER_CONFIG)]


def test_topic_default_follows_the_live_option_and_the_dynamic_synonyms():
    config = Config(max_message_bytes=777)
    state = DynamicState(cluster={"log.cleanup.policy": "compact,delete"})
    assert bc.topic_default("max.message.bytes", config, state, 0) == 777
    assert bc.topic_default("cleanup.policy", config, state, 0) == ["compact", "delete"]
    assert bc.topic_default("cleanup.policy", config, DynamicState(), 0) == ["delete"]
    assert bc.topic_default("min.insync.replicas", config, state, 0) == 1


def test_incremental_operations():
    effective = {"cleanup.policy": (ConfigType.LIST, "delete"), "retention.ms": (ConfigType.LONG, "1")}.get
    assert bc.incremental({}, [("retention.ms", bc.SET, "5")], effective) == {"retention.ms": "5"}
    assert bc.incremental({"retention.ms": "5"}, [("retention.ms", bc.DELETE, None)], effective) == \
        {"retention.ms": None}
    assert bc.incremental({}, [("cleanup.policy", bc.APPEND, "compact")], effective) == \
        {"cleanup.policy": "delete,compact"}
    assert bc.incremental({"cleanup.policy": "compact,delete"}, [("cleanup.policy", bc.APPEND, "delete")],
                          effective) == {"cleanup.policy": "compact,delete"}
    assert bc.incremental({"cleanup.policy": "compact,delete"}, [("cleanup.policy", bc.SUBTRACT, "compact")],
                          effective) == {"cleanup.policy": "delete"}
    for ops in ([("retention.ms", bc.APPEND, "5")], [("retention.ms", 9, "5")], [("retention.ms", bc.SET, None)],
                [("retention.ms", bc.SET, "5"), ("retention.ms", bc.DELETE, None)]):
        with pytest.raises(KafkaError) as err:
            bc.incremental({}, ops, effective)
        assert err.value.code == ErrorCode.INVALID_REQUEST, ops
    with pytest.raises(InvalidConfig):
        bc.incremental({}, [("no.such", bc.APPEND, "x")], effective)
    assert bc.apply_changes({"a": "1", "b": "2"}, {"a": None, "c": "3"}) == {"b": "2", "c": "3"}


def test_broker_changes_are_checked_by_name_dynamism_and_value():
    assert bc.validate_broker_changes({"log.cleanup.policy": " compact , delete ", "message.max.bytes": "2000",
                                       "group.max.size": "10", "log.retention.ms": "-1"}) == \
        {"log.cleanup.policy": "compact,delete", "message.max.bytes": "2000", "group.max.size": "10",
         "log.retention.ms": "-1"}
    with pytest.raises(KafkaError) as err:
        bc.validate_broker_changes({"broker.id": "3", "num.partitions": "2", "listeners": "PLAINTEXT://:1"})
    assert err.value.code == ErrorCode.INVALID_REQUEST
    assert "broker.id, listeners, num.partitions" in str(err.value)
    for bad in ({"message.max.bytes": "-1"}, {"message.max.bytes": "many"}, {"log.cleanup.policy": "shred"},
                {"no.such.config": "1"}, {"group.max.size": "-3"}, {"group.max.size": "0"},
                {"offsets.retention.minutes": "0"}):
        with pytest.raises(InvalidConfig):
            bc.validate_broker_changes(bad)


def test_listeners_are_reported_from_the_host_and_port_options():
    static = Config(broker_host="kafscale-0.kafscale", broker_port=9092, listen_host="0.0.0.0",
                    explicit=frozenset({"broker_host", "listen_host"}))
    broker = _by_name(bc.describe_broker(static, DynamicState(), 0))
    assert broker["advertised.listeners"].value == "PLAINTEXT://kafscale-0.kafscale:9092"
    assert broker["listeners"].value == "PLAINTEXT://0.0.0.0:9092"
    assert broker["listeners"].read_only and broker["listeners"].source is S.STATIC_BROKER_CONFIG
    assert _by_name(bc.describe_broker(Config(), DynamicState(), 0))["listeners"].source is S.DEFAULT_CONFIG


def test_effective_text_is_the_top_of_the_chain():
    entry = bc.CONFIGS["log.cleanup.policy"]
    assert bc.effective_text(entry, Config(), DynamicState(), 0) == "delete"
    state = DynamicState(cluster={"log.cleanup.policy": "compact"}, brokers={1: {"log.cleanup.policy": "delete,compact"}})
    assert bc.effective_text(entry, Config(), state, 0) == "compact"
    assert bc.effective_text(entry, Config(), state, 1) == "delete,compact"
    static = Config(log_retention_ms=5, explicit=frozenset({"log_retention_ms"}))
    assert bc.effective_text(bc.CONFIGS["log.retention.ms"], static, DynamicState(), 0) == "5"
