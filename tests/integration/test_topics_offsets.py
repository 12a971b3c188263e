"""ListOffsets, topic admin, long polling and graceful shutdown, against real clients."""

from __future__ import annotations

import signal
import time
import uuid

from kafscale.protocol import messages
from tests.integration.clientdata import BASE_TS, messages as make_messages
from tests.integration.test_clients import confluent_consume, confluent_produce, create_topic
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient


def _topic(p: str) -> str:
    return f"{p}-{uuid.uuid4().hex[:6]}"


def test_list_offsets_earliest_latest_and_by_timestamp(broker):
    from confluent_kafka import Consumer, TopicPartition

    topic = _topic("lo")
    create_topic(broker.bootstrap, topic, partitions=1)
    msgs = make_messages(1000, partitions=1, tag="lo")  # timestamps BASE_TS + i
    for chunk in range(0, 1000, 100):  # several segments
        confluent_produce(broker.bootstrap, topic, msgs[chunk:chunk + 100], "zstd")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lo"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 1000)
        for ts, want in [(BASE_TS, 0), (BASE_TS + 1, 1), (BASE_TS + 555, 555), (BASE_TS + 999, 999),
                         (BASE_TS + 1000, -1), (0, 0)]:
            got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
            assert got.error is None
            assert got.offset == want, f"timestamp {ts - BASE_TS:+d}: offset {got.offset}, expected {want}"
    finally:
        c.close()

    from kafka import KafkaConsumer, TopicPartition as KTP

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        tp = KTP(topic, 0)
        assert kc.beginning_offsets([tp]) == {tp: 0}
        assert kc.end_offsets([tp]) == {tp: 1000}
        found = kc.offsets_for_times({tp: BASE_TS + 700})[tp]
        assert (found.offset, found.timestamp) == (700, BASE_TS + 700)
    finally:
        kc.close()

    with RawClient(broker.bootstrap) as raw:
        R = messages.ListOffsetsRequest
        for version in (0, 1, 7):
            req = R(replica_id=-1, topics=[R.ListOffsetsTopic(name=topic, partitions=[
                R.ListOffsetsPartition(partition_index=0, timestamp=-1, max_num_offsets=1)])])
            part = raw.request(2, version, req).topics[0].partitions[0]
            assert part.error_code == 0
            assert (part.old_style_offsets if version == 0 else [part.offset]) == [1000]
        req = R(replica_id=-1, topics=[R.ListOffsetsTopic(name=topic, partitions=[
            R.ListOffsetsPartition(partition_index=0, timestamp=-3)])])
        part = raw.request(2, 7, req).topics[0].partitions[0]
        assert (part.offset, part.timestamp) == (999, BASE_TS + 999)


def test_empty_topic_offsets(broker):
    from confluent_kafka import Consumer, TopicPartition

    topic = _topic("empty")
    create_topic(broker.bootstrap, topic, partitions=2)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "e"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 0)
        got = c.offsets_for_times([TopicPartition(topic, 0, 12345)], timeout=10)[0]
        assert got.offset == -1
    finally:
        c.close()


def test_create_describe_delete_topics(broker, stack):
    from confluent_kafka.admin import AdminClient, NewTopic
    from minio import Minio

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    name = _topic("adm")
    admin.create_topics([NewTopic(name, 4, 1)])[name].result(30)
    dup = admin.create_topics([NewTopic(name, 4, 1)])[name]
    try:
        dup.result(30)
        raise AssertionError("creating an existing topic succeeded")
    except Exception as exc:  # noqa: BLE001 - KafkaException carries the code
        assert "TOPIC_ALREADY_EXISTS" in str(exc) or "already exists" in str(exc)
    md = admin.list_topics(timeout=10)
    assert len(md.topics[name].partitions) == 4
    confluent_produce(broker.bootstrap, name, make_messages(400, partitions=4), "none")
    client = Minio(stack.s3_endpoint.split("://", 1)[1], access_key=stack.access_key,
                   secret_key=stack.secret_key, secure=False, region="us-east-1")
    prefix = f"{broker.s3_namespace}/{name}/"
    assert list(client.list_objects(stack.bucket, prefix=prefix, recursive=True))
    admin.delete_topics([name])[name].result(30)
    assert name not in admin.list_topics(timeout=10).topics or \
        admin.list_topics(name, timeout=10).topics[name].error is not None
    wait_for(lambda: not list(client.list_objects(stack.bucket, prefix=prefix, recursive=True)),
             timeout=60, message="objects of the deleted topic removed in the background")
    # Re-creating the name gives an empty topic.
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    got, offsets = confluent_consume(broker.bootstrap, name, 1, partitions=1, timeout=5)
    assert offsets == {}


def test_invalid_topic_names_and_partition_counts(broker):
    with RawClient(broker.bootstrap) as raw:
        R = messages.CreateTopicsRequest
        req = R(timeout_ms=5000, topics=[
            R.CreatableTopic(name="bad/name", num_partitions=1, replication_factor=1),
            R.CreatableTopic(name=_topic("zero"), num_partitions=0, replication_factor=1),
            R.CreatableTopic(name=_topic("cfg"), num_partitions=1, replication_factor=1,
                             configs=[R.CreatableTopicConfig(name="no.such.config", value="1")]),
        ])
        codes = [t.error_code for t in raw.request(19, 5, req).topics]
        assert codes == [17, 37, 40]  # INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_CONFIG


def test_metadata_auto_creates_topics(broker):
    name = _topic("auto")
    with RawClient(broker.bootstrap) as raw:
        R = messages.MetadataRequest
        resp = raw.request(3, 12, R(topics=[R.MetadataRequestTopic(name=name)], allow_auto_topic_creation=True))
        t = resp.topics[0]
        assert t.error_code == 0 and len(t.partitions) == 1 and t.topic_id != b"\0" * 16
        assert resp.brokers[0].port == int(broker.bootstrap.rsplit(":", 1)[1])
        resp = raw.request(3, 12, R(topics=[R.MetadataRequestTopic(name=_topic("noauto"))],
                                    allow_auto_topic_creation=False))
        assert resp.topics[0].error_code == 3


def test_long_poll_waits_for_data_and_wakes_on_commit(broker):
    import threading

    topic = _topic("poll")
    create_topic(broker.bootstrap, topic, partitions=1)
    with RawClient(broker.bootstrap) as raw:
        F = messages.FetchRequest
        req = F(replica_id=-1, max_wait_ms=5000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                session_id=0, session_epoch=-1,
                topics=[F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
                    partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])])
        started = time.monotonic()
        empty = raw.request(1, 11, F(replica_id=-1, max_wait_ms=300, min_bytes=1, max_bytes=1 << 20,
                                     session_id=0, session_epoch=-1, topics=req.topics))
        waited = time.monotonic() - started
        assert empty.responses[0].partitions[0].records in (None, b"")
        assert 0.25 <= waited < 3, f"max_wait_ms=300 waited {waited:.2f}s"
        timer = threading.Timer(1.0, confluent_produce, (broker.bootstrap, topic,
                                                         make_messages(5, partitions=1), "none"))
        timer.start()
        started = time.monotonic()
        resp = raw.request(1, 11, req)
        waited = time.monotonic() - started
        timer.join()
        part = resp.responses[0].partitions[0]
        assert part.error_code == 0 and part.records, "long poll returned without data"
        assert 0.9 <= waited < 4.5, f"woke after {waited:.2f}s, expected about 1s (on commit)"


def test_fetch_out_of_range(broker):
    topic = _topic("oor")
    create_topic(broker.bootstrap, topic, partitions=1)
    confluent_produce(broker.bootstrap, topic, make_messages(10, partitions=1), "none")
    with RawClient(broker.bootstrap) as raw:
        F = messages.FetchRequest
        req = F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, session_id=0, session_epoch=-1,
                topics=[F.FetchTopic(topic=topic, partitions=[F.FetchPartition(
                    partition=0, fetch_offset=50, partition_max_bytes=1 << 20)])])
        part = raw.request(1, 11, req).responses[0].partitions[0]
        assert part.error_code == 1 and part.high_watermark == 10


def test_sigterm_finishes_in_flight_work_and_exits_zero(broker_factory):
    b = broker_factory()
    topic = _topic("term")
    create_topic(b.bootstrap, topic, partitions=1)
    confluent_produce(b.bootstrap, topic, make_messages(100, partitions=1), "none")
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(30) == 0
    b.start()
    got, offsets = confluent_consume(b.bootstrap, topic, 100, partitions=1, timeout=20)
    assert offsets == {0: list(range(100))}


# -- topic configs are checked as Kafka checks them (kafscale/topic_configs.py) ------------

BAD_CONFIG = {"cleanup.policy": "banana"}
GOOD_CONFIG = {"cleanup.policy": "compact", "retention.ms": "60000"}


def _confluent_create(admin, name: str, config: dict, validate_only: bool = False):
    """The KafkaError of creating ``name`` with confluent-kafka's AdminClient (None: created)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    future = admin.create_topics([NewTopic(name, 1, 1, config=config)], validate_only=validate_only)[name]
    try:
        future.result(30)
    except KafkaException as exc:
        return exc.args[0]
    return None


def _kafka_python_create(admin, name: str, config: dict, validate_only: bool = False) -> dict:
    """The CreateTopics result of ``name`` with kafka-python's KafkaAdminClient."""
    result = admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1, "configs": config}},
                                 validate_only=validate_only, raise_errors=False)
    [topic] = result["topics"]
    return topic


def test_create_topics_with_a_bad_config_is_invalid_config_for_confluent_kafka(broker):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for validate_only in (False, True):
        name = _topic("badcfg")
        err = _confluent_create(admin, name, BAD_CONFIG, validate_only)
        assert err is not None and err.code() == KafkaError.INVALID_CONFIG == 40, err
        assert "Invalid value banana for configuration cleanup.policy" in err.str(), err.str()
        assert name not in admin.list_topics(timeout=10).topics
    name = _topic("goodcfg")
    assert _confluent_create(admin, name, GOOD_CONFIG, validate_only=True) is None
    assert name not in admin.list_topics(timeout=10).topics
    assert _confluent_create(admin, name, GOOD_CONFIG) is None
    assert name in admin.list_topics(timeout=10).topics


def test_create_topics_with_a_bad_config_is_invalid_config_for_kafka_python(broker):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        for validate_only in (False, True):
            name = _topic("badcfg")
            topic = _kafka_python_create(admin, name, BAD_CONFIG, validate_only)
            assert topic["error_code"] == 40, topic
            assert "String must be one of: compact, delete" in topic["error_message"], topic
            assert name not in admin.list_topics()
        topic = _kafka_python_create(admin, _topic("goodcfg"), {**GOOD_CONFIG, "preallocate": "TRUE"})
        assert topic["error_code"] == 0, topic
        # Every config is reported back (as DescribeConfigs would), the topic's own as stored.
        stored = {k: c["value"] for k, c in topic["configs"].items()
                  if c["config_source"] in (1, "DYNAMIC_TOPIC_CONFIG")}
        assert stored == {**GOOD_CONFIG, "preallocate": "true"}
        assert topic["configs"]["segment.bytes"]["value"] == str(16 << 20)
    finally:
        admin.close()
