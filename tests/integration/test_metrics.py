"""/metrics of a real broker, read with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_clients import create_topic
from tests.support.procs import wait_for

# What a kafscale family name may end with: a unit (Prometheus' base units), or for
# counts the plural noun counted (the _total of counters is the parser's to strip).
UNITS = ("_seconds", "_bytes", "_info", "_offset", "_records")
COUNTED = ("_requests", "_errors", "_connections", "_connections_accepted", "_connections_idle_closed",
           "_partitions_owned", "_brokers", "_topics", "_hits", "_misses", "_puts", "_gets", "_commits",
           "_loads", "_compactions", "_compacted", "_flushed", "_deleted", "_collected", "_waits", "_writes",
           "_committed", "_txns", "_ahead", "_along", "_up", "_ready", "_successes", "_failures")


def scrape(broker) -> dict:
    """family name -> family, and every sample by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    for s in families[family].samples:
        if s.name == (sample or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_metrics_count_topic_bytes_and_records_and_time_requests(broker):
    from confluent_kafka import Consumer, Producer

    topic = f"m-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    before = scrape(broker)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "compression.type": "none"})
    n, size = 200, 1000
    for i in range(n):
        p.produce(topic, b"v" * size, key=b"k%03d" % i)
    assert p.flush(30) == 0
    after = scrape(broker)
    payload = n * (size + 4)
    bytes_in = value(after, "kafscale_topic_produced_bytes", "kafscale_topic_produced_bytes_total", topic=topic)
    # Record batch bytes: the payload, plus per record its framing (~8 bytes here) and per
    # batch a 61-byte header; at most 100 bytes over per record.
    assert payload < bytes_in < payload + 100 * n, (bytes_in, payload)
    assert value(after, "kafscale_topic_produced_records", "kafscale_topic_produced_records_total", topic=topic) == n
    produces = value(after, "kafscale_request_duration_seconds", "kafscale_request_duration_seconds_count",
                     api="Produce") - value(before, "kafscale_request_duration_seconds",
                                            "kafscale_request_duration_seconds_count", api="Produce")
    assert produces >= 1
    assert value(after, "kafscale_requests", "kafscale_requests_total", api="Produce") >= produces
    for family in ("kafscale_produce_ack_seconds", "kafscale_s3_request_duration_seconds",
                   "kafscale_etcd_txn_duration_seconds", "kafscale_flush_size_bytes", "kafscale_flush_duration_seconds"):
        assert sum(s.value for s in after[family].samples if s.name.endswith("_count")) > 0, family
    assert value(after, "kafscale_s3_bytes", "kafscale_s3_bytes_total", op="put") >= payload

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    while got < n:
        msg = c.poll(10)
        assert msg is not None and msg.error() is None
        got += 1
    c.close()
    out = scrape(broker)
    assert value(out, "kafscale_topic_fetched_records", "kafscale_topic_fetched_records_total", topic=topic) >= n
    assert value(out, "kafscale_topic_fetched_bytes", "kafscale_topic_fetched_bytes_total", topic=topic) >= bytes_in
    assert value(out, "kafscale_fetch_wait_seconds", "kafscale_fetch_wait_seconds_count") > 0
    assert value(out, "kafscale_partitions_owned") >= 1
    assert value(out, "kafscale_broker_info", broker_id=str(broker.broker_id)) == 1


def test_group_lag_is_the_high_watermark_minus_the_committed_offset(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"lag-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(topic, b"x", partition=i % 2)
    assert p.flush(30) == 0
    group = f"lag-{topic}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 40), TopicPartition(topic, 1, 50)], asynchronous=False)
    c.close()

    def lags() -> dict:
        m = scrape(broker)
        return {(s.labels["partition"], s.name): s.value for f in ("kafscale_group_lag_records",
                                                                   "kafscale_group_committed_offset")
                for s in m[f].samples if s.labels.get("group") == group}

    wait_for(lambda: len(lags()) == 4, timeout=10, message="the group's offsets in /metrics")
    assert lags() == {("0", "kafscale_group_lag_records"): 10, ("1", "kafscale_group_lag_records"): 0,
                      ("0", "kafscale_group_committed_offset"): 40, ("1", "kafscale_group_committed_offset"): 50}


def test_every_family_has_help_and_a_unit_and_errors_are_counted_by_api_and_name(broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    bad = admin.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"]
    try:
        bad.result(20)
    except Exception:  # noqa: BLE001 - the error is what we want counted
        pass
    families = scrape(broker)
    assert value(families, "kafscale_request_errors", "kafscale_request_errors_total", api="CreateTopics",
                 error="INVALID_TOPIC_EXCEPTION") == 1
    for name, family in families.items():
        assert family.documentation, f"{name} has no HELP"
        if name.startswith("kafscale_"):
            assert name.endswith(UNITS + COUNTED), f"{name} ({family.type}) has no unit suffix"
        if family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name
    # process and Python runtime metrics come with prometheus_client
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
                 "python_gc_collections", "python_info"):
        assert name in families, name
    assert not any("api_key" in s.labels for f in families.values() for s in f.samples)


def test_a_topic_deleted_through_another_broker_leaves_no_series_behind(broker_factory):
    """Per-topic series are forgotten by every broker when the topic goes (else they would
    pile up with topic churn)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    a, b = broker_factory(), broker_factory()
    topic = f"gone-{uuid.uuid4().hex[:6]}"
    create_topic(a.bootstrap, topic, partitions=2)
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all"})
    for i in range(20):
        p.produce(topic, b"x", partition=i % 2)
    assert p.flush(30) == 0

    def series(broker) -> int:
        samples = scrape(broker)["kafscale_topic_produced_bytes"].samples
        return sum(1 for s in samples if s.labels.get("topic") == topic)

    wait_for(lambda: series(a) + series(b) == 2, timeout=10, message="a series per owner")
    assert series(a) == 1 and series(b) == 1  # each owns one partition
    admin = AdminClient({"bootstrap.servers": b.bootstrap})  # (kept until the answer)
    admin.delete_topics([topic])[topic].result(20)
    wait_for(lambda: series(a) == 0 and series(b) == 0, timeout=10, message="the series gone on both brokers")
