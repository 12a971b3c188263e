"""Several stateless brokers on one etcd + S3: ownership, failover, fencing, scaling.

Brokers run with a short lease TTL so a killed broker's partitions move within seconds.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from minio import Minio

from tests.integration.test_clients import create_topic
from tests.integration.test_durability import AckedProducer
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient
from kafscale.protocol import messages

LEASE = 3
OPTS = {"lease_ttl_s": LEASE}


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    with RawClient(bootstrap, timeout=10) as c:
        R = messages.MetadataRequest
        resp = c.request(3, 12, R(topics=[R.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False))
        return {p.partition_index: p.leader_id for p in resp.topics[0].partitions if p.error_code == 0}


def live_brokers(bootstrap: str) -> set[int]:
    with RawClient(bootstrap, timeout=10) as c:
        resp = c.request(3, 12, messages.MetadataRequest(topics=[]))
        return {b.node_id for b in resp.brokers}


def agree(brokers, topic: str, partitions: int) -> bool:
    views = []
    for b in brokers:
        try:
            views.append(leaders(b.bootstrap, topic))
        except OSError:
            return False
    live = {b.broker_id for b in brokers}
    return all(v == views[0] for v in views) and len(views[0]) == partitions and set(views[0].values()) <= live


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    ends = {}
    for p in range(partitions):
        ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and any(len(got[p]) < ends[p] for p in got):
            for m in c.consume(2000, 1.0):
                if m.error() is None:
                    got[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return got, ends


def assert_exactly_acked(prod: AckedProducer, bootstrap: str, no_duplicates: bool = False) -> None:
    got, ends = consume_all(bootstrap, prod.topic, prod.partitions)
    for p in range(prod.partitions):
        offsets = [o for o, _ in got[p]]
        assert offsets == list(range(ends[p])), f"partition {p}: offsets have gaps or repeats"
        if no_duplicates:
            seen: dict = {}
            twice = [(seen[v], o) for o, v in got[p] if seen.setdefault(v, o) != o]
            assert not twice, f"partition {p}: messages written twice, at offsets {twice[:5]}"
        log = dict(got[p])
        for off, value in prod.acked[p].items():
            assert log.get(off) == value, f"partition {p} offset {off}: acked {value!r}, log has {log.get(off)!r}"


def test_partitions_spread_and_metadata_agrees(broker_factory):
    brokers = broker_factory.cluster(3, options=OPTS)
    topic = f"spread-{uuid.uuid4().hex[:6]}"
    create_topic(brokers[0].bootstrap, topic, partitions=12)
    wait_for(lambda: agree(brokers, topic, 12), timeout=15, message="brokers agree on leaders")
    owners = leaders(brokers[1].bootstrap, topic)
    counts = {b: list(owners.values()).count(b) for b in (0, 1, 2)}
    assert counts == {0: 4, 1: 4, 2: 4}, counts
    assert live_brokers(brokers[2].bootstrap) == {0, 1, 2}


class ConsumerThread:
    """A confluent-kafka consumer polled by ``_run`` in a thread until ``stop``."""

    def __init__(self, conf: dict) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(conf)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(60)


class Tail(ConsumerThread):
    """A consumer (no group) reading every partition from offset 0 in a thread,
    recording each record in the order it came. librdkafka validates its positions
    (KIP-320) at every leader change it sees."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        from confluent_kafka import TopicPartition

        super().__init__({"bootstrap.servers": bootstrap, "group.id": f"tail-{uuid.uuid4().hex[:6]}",
                          "enable.auto.commit": False, "auto.offset.reset": "latest",
                          "topic.metadata.refresh.interval.ms": 1000})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self.consumer.consume(1000, 0.5):
                if m.error() is None:
                    self.got[m.partition()].append((m.offset(), m.value()))
                elif not m.error().retriable():
                    self.errors.append(str(m.error()))
        self.consumer.close()

    def count(self) -> int:
        return sum(map(len, self.got.values()))


def assert_read_exactly_once_in_order(tail: Tail, prod: AckedProducer) -> None:
    for p, records in tail.got.items():
        offsets = [o for o, _ in records]
        jump = next(((a, b) for a, b in zip(offsets, offsets[1:]) if b != a + 1), None)
        assert offsets == list(range(len(offsets))), \
            f"partition {p}: the tailing consumer skipped or repeated records (first jump {jump})"
        for off, value in records:
            acked = prod.acked[p].get(off)
            assert acked is None or acked == value, f"partition {p} offset {off}: read {value!r}, acked {acked!r}"


def test_kill_9_brokers_one_at_a_time_loses_nothing_acknowledged(broker_factory):
    brokers = broker_factory.cluster(3, options=OPTS)
    topic = f"failover-{uuid.uuid4().hex[:6]}"
    create_topic(brokers[0].bootstrap, topic, partitions=12)
    wait_for(lambda: agree(brokers, topic, 12), timeout=15, message="leaders settled")
    bootstrap = ",".join(b.bootstrap for b in brokers)
    # Idempotent: the producer tables move with the partitions, so retries across a
    # failover must not duplicate anything either.
    prod = AckedProducer(bootstrap, topic, 12, **{"message.timeout.ms": 120000, "enable.idempotence": True}).start()
    # A consumer reading all along, through every kill and restart: it must read every
    # record exactly once, in order (a leader change once made librdkafka skip data).
    tail = Tail(bootstrap, topic, 12)
    target = 200_000
    wait_for(lambda: prod.acked_count() > 20_000, timeout=60, message="first acks")
    for victim in (brokers[0], brokers[1], brokers[2]):
        victim.kill()
        other = next(b for b in brokers if b is not victim)
        # The victim's lease expires and the survivors take all its partitions over.
        wait_for(lambda: victim.broker_id not in set(leaders(other.bootstrap, topic).values()),
                 timeout=LEASE * 5, message=f"broker {victim.broker_id}'s partitions taken over")
        before = prod.acked_count()
        wait_for(lambda: prod.acked_count() > before + 10_000, timeout=60,
                 message=f"acks continue while broker {victim.broker_id} is down")
        victim.start()
        wait_for(lambda: agree(brokers, topic, 12), timeout=30, message="leaders settle after restart")
    wait_for(lambda: prod.sent >= target, timeout=120, message=f"{target} messages sent")
    prod.stop(120)
    assert not prod.failed, prod.failed[:3]
    assert prod.acked_count() >= target
    assert_exactly_acked(prod, bootstrap, no_duplicates=True)
    total = sum(len(acked) for acked in prod.acked.values())
    wait_for(lambda: tail.count() >= total, timeout=120, message="the tailing consumer read everything")
    tail.stop()
    assert not tail.errors, tail.errors[:3]
    assert_read_exactly_once_in_order(tail, prod)


def test_frozen_owner_is_fenced_and_its_data_never_shows(broker_factory, stack):
    """Broker 0 is frozen (SIGSTOP) with a flush in flight; broker 1 takes its partition;
    when broker 0 wakes, its commit fails, the produce gets NOT_LEADER_OR_FOLLOWER, its
    data is never served, and no committed object was replaced."""
    from kafscale.protocol import headers
    from kafscale.protocol.records import build_batch
    from tests.support.proxy import HoldableProxy
    from tests.support.rawclient import produce_request

    host, port = stack.s3_endpoint.split("://", 1)[1].rsplit(":", 1)
    proxy = HoldableProxy(host, int(port))  # broker 0's road to S3, which the test can hold
    a = broker_factory(options={**OPTS, "s3_endpoint": proxy.endpoint})
    b = broker_factory(options=OPTS)
    topic = f"fence-{uuid.uuid4().hex[:6]}"
    create_topic(a.bootstrap, topic, partitions=4)
    wait_for(lambda: agree([a, b], topic, 4), timeout=15, message="leaders settled")
    p = next(p for p, owner in leaders(b.bootstrap, topic).items() if owner == a.broker_id)
    with RawClient(a.bootstrap) as c:
        r = c.request(0, 9, produce_request(topic, p, build_batch([(b"k", b"before", [], 1)])))
        assert r.responses[0].partition_responses[0].error_code == 0
    client = Minio(stack.s3_endpoint.split("://", 1)[1], access_key=stack.access_key,
                   secret_key=stack.secret_key, secure=False, region="us-east-1")

    def objects():
        return {o.object_name: o.etag for o in client.list_objects(
            stack.bucket, prefix=f"{a.s3_namespace}/{topic}/", recursive=True)}

    committed = objects()
    raw = RawClient(a.bootstrap, timeout=60)
    proxy.hold()
    try:
        raw.correlation += 1
        raw.send_raw(headers.encode_request(0, 9, raw.correlation, "zombie",
                                            produce_request(topic, p, build_batch([(b"k", b"zombie", [], 2)]))))
        wait_for(lambda: any(b"PUT" in h and f"/{topic}/objects/".encode() in h for h in proxy.held),
                 timeout=10, message="broker 0's upload in flight")
        a.pause()
        wait_for(lambda: leaders(b.bootstrap, topic).get(p) == b.broker_id, timeout=LEASE * 5,
                 message="broker 1 owns the frozen broker's partition")
        with RawClient(b.bootstrap) as c:
            r = c.request(0, 9, produce_request(topic, p, build_batch([(b"k", b"after", [], 3)])))
            assert r.responses[0].partition_responses[0].error_code == 0
    finally:
        a.resume()
        proxy.release()
    frame = raw.recv_frame()
    raw.close()
    assert frame is not None
    _, resp = headers.decode_response(0, 9, frame)
    code = resp.responses[0].partition_responses[0].error_code
    assert code == 6, f"the fenced broker answered {code}, not NOT_LEADER_OR_FOLLOWER"
    got, ends = consume_all(b.bootstrap, topic, 4, timeout=20)
    values = [v for _, v in got[p]]
    assert values == [b"before", b"after"], values
    after = objects()
    for name, etag in committed.items():
        assert after.get(name) == etag, f"committed object {name} was overwritten or removed"
    proxy.close()


def test_scale_out_and_in_under_load(broker_factory):
    first = broker_factory(options=OPTS)
    topic = f"scale-{uuid.uuid4().hex[:6]}"
    create_topic(first.bootstrap, topic, partitions=12)
    prod = AckedProducer(first.bootstrap, topic, 12, **{"message.timeout.ms": 120000}).start()
    wait_for(lambda: prod.acked_count() > 5000, timeout=60, message="acks on one broker")
    more = [broker_factory(options=OPTS) for _ in range(2)]
    everyone = [first, *more]
    wait_for(lambda: agree(everyone, topic, 12) and len(set(leaders(first.bootstrap, topic).values())) == 3,
             timeout=30, message="partitions spread over three brokers")
    before = prod.acked_count()
    wait_for(lambda: prod.acked_count() > before + 5000, timeout=60, message="acks on three brokers")
    for b in more:
        b.terminate()
    wait_for(lambda: set(leaders(first.bootstrap, topic).values()) == {first.broker_id}, timeout=30,
             message="one broker owns everything again")
    before = prod.acked_count()
    wait_for(lambda: prod.acked_count() > before + 5000, timeout=60, message="acks on one broker again")
    prod.stop(120)
    assert not prod.failed, prod.failed[:3]
    assert_exactly_acked(prod, first.bootstrap)


class GroupConsumer(ConsumerThread):
    """A confluent-kafka consumer in a group, in a thread, recording what it consumed."""

    def __init__(self, bootstrap: str, group: str, topic: str, seen: dict, lock: threading.Lock) -> None:
        super().__init__({"bootstrap.servers": bootstrap, "group.id": group,
                          "auto.offset.reset": "earliest", "enable.auto.commit": False,
                          "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                          "topic.metadata.refresh.interval.ms": 2000})
        self.consumer.subscribe([topic])
        self.seen, self.lock = seen, lock
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self.consumer.consume(500, 0.5)
            for m in msgs:
                if m.error() is None:
                    with self.lock:
                        self.seen.setdefault(m.partition(), set()).add(m.offset())
            if msgs:
                try:
                    self.consumer.commit(asynchronous=False)
                except Exception as exc:  # noqa: BLE001 - a commit during a rebalance may fail; the next one covers it
                    self.errors.append(str(exc))
        try:
            self.consumer.commit(asynchronous=False)
        except Exception:  # noqa: BLE001 - nothing consumed since the last commit
            pass
        self.consumer.close()


def test_consumer_group_keeps_consuming_through_broker_kills(broker_factory):
    from confluent_kafka import Consumer, TopicPartition

    brokers = broker_factory.cluster(3, options={**OPTS, "group_initial_rebalance_delay_ms": 200})
    topic = f"grp-kill-{uuid.uuid4().hex[:6]}"
    create_topic(brokers[0].bootstrap, topic, partitions=12)
    wait_for(lambda: agree(brokers, topic, 12), timeout=15, message="leaders settled")
    bootstrap = ",".join(b.bootstrap for b in brokers)
    group = f"g-{uuid.uuid4().hex[:6]}"
    seen: dict[int, set[int]] = {}
    lock = threading.Lock()
    consumers = [GroupConsumer(bootstrap, group, topic, seen, lock) for _ in range(3)]
    prod = AckedProducer(bootstrap, topic, 12, rate=5000, **{"message.timeout.ms": 120000}).start()
    try:
        wait_for(lambda: sum(map(len, seen.values())) > 5000, timeout=60, message="the group consumes")
        for victim in brokers:
            victim.kill()
            n = sum(map(len, seen.values()))
            wait_for(lambda: sum(map(len, seen.values())) > n + 5000, timeout=90,
                     message=f"consuming continues with broker {victim.broker_id} down")
            victim.start()
            wait_for(lambda: agree(brokers, topic, 12), timeout=30, message="leaders settle after restart")
    finally:
        prod.stop(120)
    ends = {}
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    for p in range(12):
        ends[p] = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
    probe.close()
    wait_for(lambda: all(len(seen.get(p, ())) >= ends[p] for p in range(12)), timeout=120,
             message="every message consumed")
    for c in consumers:
        c.stop()
    for p in range(12):
        assert seen[p] >= set(range(ends[p])), f"partition {p}: offsets skipped"
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(topic, p) for p in range(12)], timeout=20)
    probe.close()
    assert {tp.partition: tp.offset for tp in committed} == ends, "committed offsets are not at the end"


def test_rolling_restart_gives_clients_only_retriable_errors(broker_factory):
    brokers = broker_factory.cluster(3, options=OPTS)
    topic = f"rolling-{uuid.uuid4().hex[:6]}"
    create_topic(brokers[0].bootstrap, topic, partitions=12)
    wait_for(lambda: agree(brokers, topic, 12), timeout=15, message="leaders settled")
    bootstrap = ",".join(b.bootstrap for b in brokers)
    prod = AckedProducer(bootstrap, topic, 12, rate=5000,
                         **{"message.timeout.ms": 60000, "enable.idempotence": True}).start()
    wait_for(lambda: prod.acked_count() > 2000, timeout=60, message="first acks")
    for b in brokers:
        assert b.terminate() == 0, f"broker {b.broker_id} did not exit cleanly"
        b.start()
        wait_for(lambda: agree(brokers, topic, 12), timeout=30, message="leaders settle")
    before = prod.acked_count()
    wait_for(lambda: prod.acked_count() > before + 2000, timeout=60, message="acks after the restarts")
    prod.stop(60)
    assert not prod.failed, prod.failed[:3]
    assert_exactly_acked(prod, bootstrap, no_duplicates=True)
