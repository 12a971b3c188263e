"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs with real admin clients.

Topic configs and dynamic broker configs are stored in etcd before the answer and are in
effect on every broker without a restart: a limit altered through one broker refuses a
produce on another.
"""

from __future__ import annotations

import time
import uuid

import pytest

from kafscale.protocol import messages
from tests.integration.test_clients import create_topic
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient

DYNAMIC_TOPIC, DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 1, 2, 3, 4, 5


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def _describe(bootstrap: str, kind: str, name: str) -> dict:
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(kind, name)
    admin = _admin(bootstrap)  # (kept until the answer: a destroyed handle fails its futures)
    return admin.describe_configs([res], request_timeout=20)[res].result(20)


def _incremental(bootstrap: str, kind: str, name: str, ops: list[tuple[str, str | None, str]],
                 validate_only: bool = False):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    entries = [ConfigEntry(n, v, incremental_operation=getattr(AlterConfigOpType, op)) for n, v, op in ops]
    res = ConfigResource(kind, name, incremental_configs=entries)
    admin = _admin(bootstrap)
    return admin.incremental_alter_configs([res], validate_only=validate_only, request_timeout=20)[res].result(20)


def _raw_describe(bootstrap: str, resource_type: int, name: str, keys=None, version: int = 4):
    R = messages.DescribeConfigsRequest
    with RawClient(bootstrap, timeout=10) as raw:
        resp = raw.request(32, version, R(resources=[R.DescribeConfigsResource(
            resource_type=resource_type, resource_name=name, configuration_keys=keys)],
            include_synonyms=True, include_documentation=True))
    return resp.results[0]


def _raw_incremental(bootstrap: str, resource_type: int, name: str, ops: list[tuple[str, str | None, int]],
                     validate_only: bool = False):
    """(error code, message) of IncrementalAlterConfigs on one resource, over the wire
    (confluent-kafka refuses the broker resource "", the cluster-wide default)."""
    R = messages.IncrementalAlterConfigsRequest
    with RawClient(bootstrap, timeout=10) as raw:
        resp = raw.request(44, 1, R(resources=[R.AlterConfigsResource(
            resource_type=resource_type, resource_name=name, configs=[
                R.AlterableConfig(name=n, config_operation=op, value=v) for n, v, op in ops])],
            validate_only=validate_only))
    return resp.responses[0].error_code, resp.responses[0].error_message


def _set_cluster_default(bootstrap: str, name: str, value: str | None) -> None:
    code, message = _raw_incremental(bootstrap, 4, "", [(name, value, 0 if value is not None else 1)])
    assert code == 0, message


def _error_code(exc_info) -> int:
    return exc_info.value.args[0].code()


def _produce_one(bootstrap: str, topic: str, size: int, partition: int | None = None) -> str | None:
    """The error name a produce of one ``size``-byte record gets (None: acknowledged)."""
    from confluent_kafka import Producer

    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.max.bytes": 10_000_000,
                  "retries": 0, "enable.idempotence": False})
    kwargs = {} if partition is None else {"partition": partition}
    p.produce(topic, b"x" * size, on_delivery=lambda err, msg: errors.append(err), **kwargs)
    p.flush(30)
    assert len(errors) == 1
    return None if errors[0] is None else errors[0].name()


def test_describe_configs_reports_values_sources_synonyms_types_and_hides_secrets(broker_factory):
    from confluent_kafka.admin import ConfigSource

    b = broker_factory(options={"log_retention_bytes": 12345})
    topic = _topic("dc")
    create_topic(b.bootstrap, topic, partitions=2, config={"retention.ms": "3600000", "cleanup.policy": "compact"})

    configs = _describe(b.bootstrap, "topic", topic)  # librdkafka asks for synonyms
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert [(s.name, s.source) for s in configs["retention.ms"].synonyms.values()][:2] == [
        ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), ("log.retention.ms", ConfigSource.DEFAULT_CONFIG.value)]
    assert configs["cleanup.policy"].value == "compact"
    # Kafscale's own defaults for topics, not Kafka's: 16 MiB segments.
    assert configs["segment.bytes"].value == "16777216"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    # Set by a flag: the broker's static config is the topic's default.
    assert configs["retention.bytes"].value == "12345"
    assert configs["retention.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["max.message.bytes"].value == "1048588"
    assert len(configs) >= 30 and not any(c.is_read_only for c in configs.values())

    broker = _describe(b.bootstrap, "broker", str(b.broker_id))
    assert broker["broker.id"].value == str(b.broker_id) and broker["broker.id"].is_read_only
    assert broker["message.max.bytes"].value == "1048588" and not broker["message.max.bytes"].is_read_only
    assert broker["log.retention.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert broker["log.segment.bytes"].value == "16777216"
    secret = broker["kafscale.s3.secret.key"]
    assert secret.is_sensitive and secret.value is None

    # Types and documentation (v3+), only the keys asked for, and on the wire the secret
    # is null even in its synonyms.
    result = _raw_describe(b.bootstrap, 4, str(b.broker_id), keys=["kafscale.s3.secret.key", "message.max.bytes",
                                                                     "no.such.config"])
    assert result.error_code == 0
    by_name = {c.name: c for c in result.configs}
    assert set(by_name) == {"kafscale.s3.secret.key", "message.max.bytes"}
    assert by_name["kafscale.s3.secret.key"].config_type == 9  # PASSWORD
    assert all(s.value is None for s in by_name["kafscale.s3.secret.key"].synonyms)
    assert by_name["message.max.bytes"].config_type == 3 and by_name["message.max.bytes"].documentation
    for version in (0, 1, 2, 3):
        result = _raw_describe(b.bootstrap, 2, topic, keys=["retention.ms"], version=version)
        assert [(c.name, c.value) for c in result.configs] == [("retention.ms", "3600000")]

    # Errors per resource; the broker stays up.
    assert _raw_describe(b.bootstrap, 2, "no-such-topic").error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert _raw_describe(b.bootstrap, 2, "bad/name").error_code == 17  # INVALID_TOPIC_EXCEPTION
    assert _raw_describe(b.bootstrap, 4, str(b.broker_id + 7)).error_code == 42  # another broker's: INVALID_REQUEST
    assert _raw_describe(b.bootstrap, 99, "x").error_code == 42
    assert _describe(b.bootstrap, "topic", topic)["retention.ms"].value == "3600000"


def test_incremental_alter_configs_each_operation_and_validate_only(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigSource

    topic = _topic("iac")
    create_topic(broker.bootstrap, topic, partitions=1, config={"retention.ms": "3600000"})

    _incremental(broker.bootstrap, "topic", topic, [("retention.ms", "7200000", "SET"),
                                                    ("max.message.bytes", "2000", "SET")])
    configs = _describe(broker.bootstrap, "topic", topic)
    assert (configs["retention.ms"].value, configs["max.message.bytes"].value) == ("7200000", "2000")

    _incremental(broker.bootstrap, "topic", topic, [("retention.ms", None, "DELETE")])
    configs = _describe(broker.bootstrap, "topic", topic)
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "2000"

    # APPEND and SUBTRACT on a LIST, starting from the default ("delete").
    _incremental(broker.bootstrap, "topic", topic, [("cleanup.policy", "compact", "APPEND")])
    assert _describe(broker.bootstrap, "topic", topic)["cleanup.policy"].value == "delete,compact"
    _incremental(broker.bootstrap, "topic", topic, [("cleanup.policy", "compact", "APPEND")])
    assert _describe(broker.bootstrap, "topic", topic)["cleanup.policy"].value == "delete,compact"
    _incremental(broker.bootstrap, "topic", topic, [("cleanup.policy", "delete", "SUBTRACT")])
    assert _describe(broker.bootstrap, "topic", topic)["cleanup.policy"].value == "compact"

    # validate_only checks, and changes nothing.
    _incremental(broker.bootstrap, "topic", topic, [("retention.ms", "1000", "SET")], validate_only=True)
    assert _describe(broker.bootstrap, "topic", topic)["retention.ms"].value == "604800000"
    with pytest.raises(KafkaException) as bad:
        _incremental(broker.bootstrap, "topic", topic, [("retention.ms", "-5", "SET")], validate_only=True)
    assert _error_code(bad) == 40  # INVALID_CONFIG

    # Bad values, unknown names, APPEND on a non-list: refused, nothing changes.
    for ops, code in [([("retention.ms", "banana", "SET")], 40),
                      ([("cleanup.policy", "shred", "SET")], 40),
                      ([("no.such.config", "1", "SET")], 40),
                      ([("retention.ms", "5", "APPEND")], 42)]:
        with pytest.raises(KafkaException) as bad:
            _incremental(broker.bootstrap, "topic", topic, ops)
        assert _error_code(bad) == code, ops
        assert "banana" not in str(bad.value) or "retention.ms" in str(bad.value)
    with pytest.raises(KafkaException) as bad:
        _incremental(broker.bootstrap, "topic", "no-such-topic", [("retention.ms", "1000", "SET")])
    assert _error_code(bad) == 3
    configs = _describe(broker.bootstrap, "topic", topic)
    assert (configs["retention.ms"].value, configs["cleanup.policy"].value) == ("604800000", "compact")

    # Broker configs: dynamic ones change (per broker and for every broker), static ones don't.
    _set_cluster_default(broker.bootstrap, "log.retention.ms", "86400000")
    _incremental(broker.bootstrap, "broker", str(broker.broker_id), [("group.max.size", "50", "SET")])
    configs = _describe(broker.bootstrap, "broker", str(broker.broker_id))
    assert (configs["log.retention.ms"].value, configs["log.retention.ms"].source) == ("86400000", DYNAMIC_DEFAULT)
    assert (configs["group.max.size"].value, configs["group.max.size"].source) == ("50", DYNAMIC_BROKER)
    assert _describe(broker.bootstrap, "topic", topic)["retention.ms"].value == "86400000"
    cluster = _raw_describe(broker.bootstrap, 4, "")
    assert [(c.name, c.value, c.config_source) for c in cluster.configs] == \
        [("log.retention.ms", "86400000", DYNAMIC_DEFAULT)]
    code, message = _raw_incremental(broker.bootstrap, 4, "", [("broker.id", "5", 0)])
    assert (code, message) == (42, "Cannot update these configs dynamically: broker.id")
    with pytest.raises(KafkaException) as bad:
        _incremental(broker.bootstrap, "broker", str(broker.broker_id), [("message.max.bytes", "-1", "SET")])
    assert _error_code(bad) == 40
    assert _raw_incremental(broker.bootstrap, 4, "", [("message.max.bytes", "x", 0)], validate_only=True)[0] == 40
    assert _raw_incremental(broker.bootstrap, 4, "x1", [("message.max.bytes", "5", 0)])[0] == 42
    _set_cluster_default(broker.bootstrap, "log.retention.ms", None)
    assert _describe(broker.bootstrap, "topic", topic)["retention.ms"].value == "604800000"


def test_kafka_python_describe_and_alter_configs(broker):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topic = _topic("kpc")
    create_topic(broker.bootstrap, topic, partitions=1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)

    def described(kind=ConfigResourceType.TOPIC, name=topic, config_filter="modified"):
        answer = admin.describe_configs([ConfigResource(kind, name)], config_filter=config_filter)
        [(_, by_name)] = answer.items()
        return {k: v["value"] if isinstance(v, dict) else v for k, v in by_name[name].items()}

    def altered(configs, **kwargs):
        answer = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)], **kwargs)
        [(_, by_name)] = answer.items()
        return by_name[topic]

    try:
        # AlterConfigs (forced) replaces the whole set; kafka-python sends the other
        # modified keys along to keep them.
        altered({"retention.ms": "5000", "cleanup.policy": "compact,delete"}, incremental=False)
        assert described() == {"retention.ms": "5000", "cleanup.policy": "compact,delete"}
        altered({"retention.ms": "6000"}, incremental=False)
        assert described() == {"retention.ms": "6000", "cleanup.policy": "compact,delete"}
        # On the wire, what AlterConfigs does not name goes back to its default.
        R = messages.AlterConfigsRequest
        with RawClient(broker.bootstrap, timeout=10) as raw:
            resp = raw.request(33, 2, R(resources=[R.AlterConfigsResource(
                resource_type=2, resource_name=topic, configs=[R.AlterableConfig(name="retention.ms", value="6000")])]))
            assert resp.responses[0].error_code == 0
            assert described() == {"retention.ms": "6000"}
            # A resource named twice: INVALID_REQUEST for each, nothing changes.
            twice = R.AlterConfigsResource(resource_type=2, resource_name=topic,
                                           configs=[R.AlterableConfig(name="retention.ms", value="1")])
            resp = raw.request(33, 0, R(resources=[twice, twice]))
            assert [r.error_code for r in resp.responses] == [42, 42]
            assert described() == {"retention.ms": "6000"}
        # IncrementalAlterConfigs (kafka-python's default with a broker that has it).
        altered({"max.message.bytes": "7000"})
        assert described() == {"retention.ms": "6000", "max.message.bytes": "7000"}
        assert described(config_filter="all")["segment.bytes"] == str(16 << 20)
        bad = altered({"retention.ms": "soon"})
        assert str(bad).startswith("[Error 40] InvalidConfigurationError: Invalid value soon for "
                                   "configuration retention.ms"), bad
        assert described()["retention.ms"] == "6000"
        assert described(ConfigResourceType.BROKER, str(broker.broker_id), "all")["message.max.bytes"] == "1048588"
    finally:
        admin.close()


def test_a_config_altered_through_one_broker_is_in_effect_on_every_broker(broker_factory):
    options = {"log_retention_check_interval_ms": 500, "compaction_interval_ms": 60_000}
    brokers = [broker_factory(options=options) for _ in range(3)]
    first, last = brokers[0], brokers[-1]
    topic = _topic("live")
    create_topic(first.bootstrap, topic, partitions=6)
    wait_for(lambda: _owners(last.bootstrap, topic) >= {b.broker_id for b in brokers}, timeout=30,
             message="every broker owns a partition")
    for p in range(6):
        assert _produce_one(last.bootstrap, topic, 50_000, partition=p) is None

    # A topic config altered through the first broker refuses produces on the others.
    _incremental(first.bootstrap, "topic", topic, [("max.message.bytes", "20000", "SET")])
    for p in range(6):  # every owner, the first broker's included
        assert _produce_one(last.bootstrap, topic, 50_000, partition=p) == "MSG_SIZE_TOO_LARGE", p
    for b in brokers:
        assert _value(_raw_describe(b.bootstrap, 2, topic, ["max.message.bytes"])) == "20000"
    _incremental(first.bootstrap, "topic", topic, [("max.message.bytes", None, "DELETE")])
    wait_for(lambda: _produce_one(last.bootstrap, topic, 50_000, partition=5) is None, timeout=10,
             message="the default limit back")

    # The cluster-wide default of a broker config, set through the last broker, is every
    # broker's default for topics that don't set it.
    _set_cluster_default(last.bootstrap, "message.max.bytes", "30000")
    for b in brokers:
        wait_for(lambda b=b: _value(_raw_describe(b.bootstrap, 4, str(b.broker_id), ["message.max.bytes"]))
                 == "30000", timeout=10, message=f"broker {b.broker_id} sees message.max.bytes")
    for p in range(6):
        assert _produce_one(first.bootstrap, topic, 50_000, partition=p) == "MSG_SIZE_TOO_LARGE", p

    # retention.ms altered live: the owners apply it at their next retention check.
    _incremental(first.bootstrap, "topic", topic, [("retention.ms", "1000", "SET")])
    time.sleep(1.2)
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": last.bootstrap, "group.id": "live"})
    try:
        def emptied(p: int) -> bool:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            return low == high >= 1
        wait_for(lambda: all(emptied(p) for p in range(6)), timeout=20, message="retention moved every log start")
    finally:
        c.close()


def _value(result) -> str | None:
    assert result.error_code == 0, result.error_message
    return result.configs[0].value


def _owners(bootstrap: str, topic: str) -> set[int]:
    R = messages.MetadataRequest
    with RawClient(bootstrap, timeout=10) as raw:
        resp = raw.request(3, 9, R(topics=[R.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False))
    return {p.leader_id for t in resp.topics for p in t.partitions}
