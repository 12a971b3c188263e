"""Consumers never skip data after a leader change (KIP-320 validation).

The skip: stored batches kept the partitionLeaderEpoch the producer wrote (0), every
recorded epoch was higher, OffsetForLeaderEpoch answered (-1, -1) for epoch 0, and
librdkafka took the log for truncated and reset to the end. Now the owner stamps its
epoch into every batch it appends, and the answer is Kafka's.

Each test below reads part of a partition, lets the leader change (a restart gives the
partition a new owner epoch), and checks that the consumer reads on from exactly where
it was: no offset skipped, none read twice.
"""

from __future__ import annotations

import time
import uuid

from kafscale.protocol import messages
from tests.integration.test_clients import create_topic
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        p.produce(topic, v, partition=0, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors[:3]


def leader_epoch(bootstrap: str, topic: str) -> int:
    with RawClient(bootstrap, timeout=10) as c:
        R = messages.MetadataRequest
        resp = c.request(3, 12, R(topics=[R.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False))
        return resp.topics[0].partitions[0].leader_epoch


def offset_for_leader_epoch(bootstrap: str, topic: str, epoch: int) -> tuple[int, int, int]:
    R = messages.OffsetForLeaderEpochRequest
    req = R(replica_id=-1, topics=[R.OffsetForLeaderTopic(topic=topic, partitions=[
        R.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=epoch)])])
    with RawClient(bootstrap, timeout=10) as c:
        p = c.request(23, 4, req).topics[0].partitions[0]
        return p.error_code, p.leader_epoch, p.end_offset


def change_leader(broker, topic: str) -> int:
    """Restart the only broker: the partition gets a new owner epoch. Returns it."""
    before = leader_epoch(broker.bootstrap, topic)
    broker.restart()
    wait_for(lambda: leader_epoch(broker.bootstrap, topic) > before, timeout=20, message="a new leader epoch")
    return leader_epoch(broker.bootstrap, topic)


def test_stored_batches_carry_the_owners_leader_epoch(broker):
    from confluent_kafka import Consumer, TopicPartition

    topic = f"epochs-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [b"a%d" % i for i in range(10)])
    first = leader_epoch(broker.bootstrap, topic)
    second = change_leader(broker, topic)
    produce(broker.bootstrap, topic, [b"b%d" % i for i in range(10)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    epochs = {}
    deadline = time.monotonic() + 30
    while len(epochs) < 20 and time.monotonic() < deadline:
        for m in c.consume(100, 1.0):
            assert m.error() is None, m.error()
            epochs[m.offset()] = m.leader_epoch()
    c.close()
    assert [epochs[o] for o in range(10)] == [first] * 10
    assert [epochs[o] for o in range(10, 20)] == [second] * 10
    # Kafka's answers: each epoch ends where the next begins, the current one at the hw,
    # an epoch older than every recorded one where the first recorded one begins.
    assert offset_for_leader_epoch(broker.bootstrap, topic, first) == (0, first, 10)
    assert offset_for_leader_epoch(broker.bootstrap, topic, second) == (0, second, 20)
    assert offset_for_leader_epoch(broker.bootstrap, topic, first - 1) == (0, first - 1, 0)
    assert offset_for_leader_epoch(broker.bootstrap, topic, second + 1)[1:] == (-1, -1)


def test_confluent_consumer_reads_on_after_a_leader_change(broker):
    """librdkafka validates its position (OffsetForLeaderEpoch with the epoch of the last
    batch it fetched) once it sees the new leader epoch. The old broker's answer made it
    reset to the end and skip the 200 records produced meanwhile."""
    from confluent_kafka import Consumer, TopicPartition

    topic = f"skip-rdk-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [b"first-%d" % i for i in range(100)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "latest",
                  "topic.metadata.refresh.interval.ms": 500, "reconnect.backoff.max.ms": 200})
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[tuple[int, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < 100 and time.monotonic() < deadline:
            got += [(m.offset(), m.value()) for m in c.consume(100, 0.5) if m.error() is None]
        assert [o for o, _ in got] == list(range(100))
        produce(broker.bootstrap, topic, [b"second-%d" % i for i in range(100)])
        change_leader(broker, topic)
        produce(broker.bootstrap, topic, [b"third-%d" % i for i in range(100)])
        deadline = time.monotonic() + 45
        while len(got) < 300 and time.monotonic() < deadline:
            got += [(m.offset(), m.value()) for m in c.consume(100, 0.5) if m.error() is None]
        # a short while more: nothing may come twice either
        end = time.monotonic() + 2
        while time.monotonic() < end:
            got += [(m.offset(), m.value()) for m in c.consume(100, 0.2) if m.error() is None]
    finally:
        c.close()
    offsets = [o for o, _ in got]
    assert offsets == list(range(300)), f"skipped or repeated: {len(offsets)} records, first jump at " \
        f"{next((a for a, b in zip(offsets, offsets[1:]) if b != a + 1), None)}"
    assert got[150][1] == b"second-50" and got[299][1] == b"third-99"


def test_kafka_python_consumer_reads_on_after_a_leader_change(broker):
    """kafka-python (3.x) validates positions too (KIP-320, its Fetcher)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = f"skip-kp-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [b"first-%d" % i for i in range(100)])
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="latest", metadata_max_age_ms=500, reconnect_backoff_max_ms=200)
    c.assign([tp])
    c.seek(tp, 0)
    got: list[int] = []

    def poll_until(n: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(got) < n and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend(r.offset for r in records)

    try:
        poll_until(100, 30)
        assert got == list(range(100))
        produce(broker.bootstrap, topic, [b"second-%d" % i for i in range(100)])
        change_leader(broker, topic)
        produce(broker.bootstrap, topic, [b"third-%d" % i for i in range(100)])
        poll_until(300, 45)
        poll_until(301, 2)  # nothing may come twice
    finally:
        c.close()
    assert got == list(range(300)), f"skipped or repeated: {len(got)} records"
