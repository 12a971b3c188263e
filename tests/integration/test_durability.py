"""Nothing acknowledged is lost: broker kill -9, S3 outage, etcd outage; and the objects
in the bucket parse with a reader that shares no code with the broker."""

from __future__ import annotations

import threading
import time
import urllib.request
import uuid

from minio import Minio

from tests.integration.test_clients import confluent_consume, create_topic
from tests.support.kfs_reader import read_topic_object
from tests.support.procs import wait_for


class AckedProducer:
    """A confluent-kafka producer in a thread that records what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: float = 0, **conf) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.partitions = partitions
        self.acked: dict[int, dict[int, bytes]] = {p: {} for p in range(partitions)}  # partition -> offset -> value
        self.failed: list[str] = []
        self.sent = 0
        self.rate = rate  # messages per second, 0: as fast as the broker takes them
        self._stop = threading.Event()
        base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2, "enable.idempotence": False,
                "message.timeout.ms": 60000, "retries": 1000000, "retry.backoff.ms": 100,
                "reconnect.backoff.max.ms": 500}
        base.update(conf)
        self.producer = Producer(base)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked[msg.partition()][msg.offset()] = msg.value()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                self.producer.produce(self.topic, value=f"m-{i}".encode(), partition=i % self.partitions,
                                      on_delivery=self._on_delivery)
                i += 1
                self.sent = i
            except BufferError:
                self.producer.poll(0.05)  # the queue is full: wait for deliveries
            self.producer.poll(0)
            if self.rate and i % 100 == 0:
                time.sleep(100 / self.rate)

    def start(self) -> "AckedProducer":
        self.thread.start()
        return self

    def stop(self, flush_timeout: float = 60) -> None:
        self._stop.set()
        self.thread.join()
        self.producer.flush(flush_timeout)

    def acked_count(self) -> int:
        return sum(len(v) for v in self.acked.values())


def assert_log_has_acked(bootstrap: str, prod: AckedProducer) -> None:
    """Every acknowledged message is at its offset; offsets run 0..n-1 with no gap or duplicate."""
    total_acked = prod.acked_count()
    got, offsets = confluent_consume(bootstrap, prod.topic, n=10**9, partitions=prod.partitions, timeout=15)
    for p in range(prod.partitions):
        offs = offsets.get(p, [])
        assert offs == list(range(len(offs))), f"partition {p}: offsets have a gap or duplicate"
        values = {o: m.value for o, m in zip(offs, got.get(p, []))}
        for off, value in prod.acked[p].items():
            assert values.get(off) == value, f"partition {p} offset {off}: acked {value!r}, log has {values.get(off)!r}"
    assert total_acked > 0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except Exception:
        return False


def test_kill_9_mid_stream_loses_nothing_acknowledged(broker_factory):
    b = broker_factory()
    topic = f"kill-{uuid.uuid4().hex[:6]}"
    create_topic(b.bootstrap, topic, partitions=3)
    prod = AckedProducer(b.bootstrap, topic, 3).start()
    wait_for(lambda: prod.acked_count() > 2000, timeout=60, message="first acks")
    b.kill()
    acked_at_kill = prod.acked_count()
    time.sleep(1)
    b.start()
    wait_for(lambda: prod.acked_count() > acked_at_kill + 2000, timeout=60, message="acks after restart")
    prod.stop()
    assert not prod.failed, prod.failed[:3]
    assert_log_has_acked(b.bootstrap, prod)


def _s3_or_etcd_outage(stack, broker, stop, start, what: str) -> None:
    from confluent_kafka import Producer

    topic = f"{what}-down-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=2)
    prod = AckedProducer(broker.bootstrap, topic, 2).start()
    wait_for(lambda: prod.acked_count() > 500, timeout=60, message="acks before outage")
    stop()
    try:
        wait_for(lambda: not _ready(broker.readyz_url), timeout=20, message=f"not ready without {what}")
        # A separate producer with a short timeout sees a retriable failure, not a hang.
        errors = []
        short = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 8000,
                          "request.timeout.ms": 5000})
        short.produce(topic, value=b"during-outage", partition=0,
                      on_delivery=lambda err, msg: errors.append(err))
        started = time.monotonic()
        short.flush(30)
        assert errors and errors[0] is not None, f"a produce succeeded with {what} down"
        assert time.monotonic() - started < 20, "produce did not fail within its timeout"
        assert broker.running, "broker died"
        acked_during = prod.acked_count()
        time.sleep(2)
    finally:
        start()
    wait_for(lambda: _ready(broker.readyz_url), timeout=60, message=f"ready again after {what} returns")
    wait_for(lambda: prod.acked_count() > acked_during + 500, timeout=90, message="producing resumes")
    prod.stop()
    assert broker.running
    assert_log_has_acked(broker.bootstrap, prod)


def test_s3_outage_fails_produces_retriably_and_recovers(stack, broker):
    _s3_or_etcd_outage(stack, broker, stack.stop_s3, stack.start_s3, "s3")


def test_etcd_outage_fails_produces_retriably_and_recovers(stack, broker):
    _s3_or_etcd_outage(stack, broker, stack.stop_etcd, stack.start_etcd, "etcd")


def test_bucket_objects_parse_with_an_independent_reader(stack, broker):
    from tests.integration.test_clients import confluent_produce
    from tests.integration.clientdata import messages

    topic = f"objs-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=2)
    confluent_produce(broker.bootstrap, topic, messages(3000, partitions=2), "lz4")
    client = Minio(stack.s3_endpoint.split("://", 1)[1], access_key=stack.access_key,
                   secret_key=stack.secret_key, secure=False, region="us-east-1")
    prefix = f"{broker.s3_namespace}/{topic}/"
    names = sorted(o.object_name for o in client.list_objects(stack.bucket, prefix=prefix, recursive=True))
    assert names and all(n.endswith(".kfo") for n in names), names
    per_partition: dict[int, list[dict]] = {}
    for name in names:
        for partition, seg in read_topic_object(client.get_object(stack.bucket, name).read()):
            per_partition.setdefault(partition, []).append(seg)
    assert sorted(per_partition) == [0, 1]
    total = 0
    for part, segs in per_partition.items():
        segs.sort(key=lambda s: s["base_offset"])
        expected = 0
        for s in segs:
            assert s["base_offset"] == expected, f"partition {part}: segments not contiguous"
            expected = s["last_offset"] + 1
        total += expected
    assert total == 3000
