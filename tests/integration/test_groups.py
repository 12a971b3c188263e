"""Consumer groups with real clients on a real broker (real etcd, real S3 server).

Consumers run as subprocesses (one small script, ``CONSUMER``, for confluent-kafka,
kafka-python and aiokafka) so one can be closed cleanly (LeaveGroup) and another
SIGKILLed (no LeaveGroup: its session must expire). Each prints JSON lines: its
assignment after every change, and every message it consumed, flushed before it
commits, so "consumed at least once, none skipped" is checked from what they printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from support.procs import wait_for
from support.rawclient import RawClient
from support.roundtrip import kafka_python_metadata

from kafscale.protocol import messages as m
from tests.integration.test_clients import create_topic

OPTIONS = {"group_initial_rebalance_delay_ms": 100}
SESSION_MS = 6000
PARTITIONS = 6

CONSUMER = r'''
import asyncio, json, os, signal, sys, time
lib, bootstrap, topic, group, assignor, instance = sys.argv[1:7]
instance = instance or None
SESSION = int(os.environ.get("SESSION_MS", "6000"))
stop = False
def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

if lib == "confluent":
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": SESSION,
            "heartbeat.interval.ms": 500, "partition.assignment.strategy": assignor,
            "topic.metadata.refresh.interval.ms": 2000}
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    cur = set()
    cooperative = assignor == "cooperative-sticky"
    def on_assign(consumer, parts):
        global cur
        cur = (cur | {p.partition for p in parts}) if cooperative else {p.partition for p in parts}
        out(assigned=sorted(cur), event="assign", n=len(parts))
    def on_revoke(consumer, parts):
        global cur
        cur = (cur - {p.partition for p in parts}) if cooperative else set()
        out(assigned=sorted(cur), event="revoke", n=len(parts))
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    out(started=True)
    while not stop:
        msgs = c.consume(500, 0.2)
        got = []
        for msg in msgs:
            if msg.error():
                continue
            got.append([msg.partition(), msg.offset(), msg.value().decode()])
        if got:
            out(m=got)
            c.commit(asynchronous=False)
    c.close()
    out(closed=True)

elif lib == "kafka-python":
    from kafka import KafkaConsumer, ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    a = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[assignor]
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=SESSION, heartbeat_interval_ms=500,
                      partition_assignment_strategy=[a], group_instance_id=instance,
                      metadata_max_age_ms=2000)
    class L(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            out(assigned=[], event="revoke", n=len(revoked))
        def on_partitions_assigned(self, assigned):
            out(assigned=sorted(p.partition for p in assigned), event="assign", n=len(assigned),
                member=c._coordinator._generation.member_id)
    c.subscribe([topic], listener=L())
    # metadata before the first poll (support.roundtrip.kafka_python_metadata says why)
    while not c.partitions_for_topic(topic):
        time.sleep(0.05)
    out(started=True)
    while not stop:
        got = []
        for tp, recs in c.poll(timeout_ms=200).items():
            got += [[tp.partition, r.offset, r.value.decode()] for r in recs]
        if got:
            out(m=got)
            c.commit()
    c.close()
    out(closed=True)

elif lib == "aiokafka":
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    a = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[assignor]
    async def main():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=SESSION,
                             heartbeat_interval_ms=500, partition_assignment_strategy=[a],
                             group_instance_id=instance, metadata_max_age_ms=2000)
        class L(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                out(assigned=[], event="revoke", n=len(revoked))
            async def on_partitions_assigned(self, assigned):
                out(assigned=sorted(p.partition for p in assigned), event="assign", n=len(assigned),
                    member=c._coordinator.member_id)
        await c.start()
        c.subscribe([topic], listener=L())
        out(started=True)
        while not stop:
            got = []
            for tp, recs in (await c.getmany(timeout_ms=200)).items():
                got += [[tp.partition, r.offset, r.value.decode()] for r in recs]
            if got:
                out(m=got)
                await c.commit()
        await c.stop()
        out(closed=True)
    asyncio.run(main())
'''


class ConsumerProc:
    """One consumer subprocess and what it reported."""

    def __init__(self, lib: str, bootstrap: str, topic: str, group: str, assignor: str,
                 instance: str | None = None, session_ms: int = SESSION_MS) -> None:
        env = {**os.environ, "SESSION_MS": str(session_ms), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, lib, bootstrap, topic, group, assignor, instance or ""],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        self.assigned: set[int] | None = None
        self.events: list[dict] = []
        self.values: list[str] = []
        self.member: str | None = None
        self.closed = False
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                if "assigned" in msg:
                    self.assigned = set(msg["assigned"])
                    self.events.append(msg)
                    self.member = msg.get("member", self.member)
                if "m" in msg:
                    self.values += [v for _p, _o, v in msg["m"]]
                if msg.get("closed"):
                    self.closed = True

    def assignment(self) -> set[int]:
        with self.lock:
            return set(self.assigned or ())

    def n_events(self) -> int:
        with self.lock:
            return len(self.events)

    def close(self, timeout: float = 30) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self.reader.join(5)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.reader.join(5)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Producer:
    """Produces numbered values to every partition, in the background, until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 100.0) -> None:
        from confluent_kafka import Producer as P

        self.p = P({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
        self.topic = topic
        self.rate = rate
        self.sent: list[str] = []
        self.errors: list = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            value = f"v{i}"
            self.p.produce(self.topic, value=value.encode(), partition=i % PARTITIONS,
                           on_delivery=lambda err, msg, v=value: self.errors.append(err) if err else self.sent.append(v))
            self.p.poll(0)
            i += 1
            time.sleep(1.0 / self.rate)

    def stop(self) -> list[str]:
        self.stop_flag.set()
        self.thread.join(10)
        assert self.p.flush(30) == 0
        assert not self.errors, self.errors[:3]
        return list(self.sent)


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_balanced(consumers: list[ConsumerProc], timeout: float = 40.0) -> list[set[int]]:
    """Until the live consumers' assignments are disjoint, non-empty and cover every partition."""
    def check():
        shares = [c.assignment() for c in consumers]
        everything = set().union(*shares)
        if (everything == set(range(PARTITIONS)) and sum(map(len, shares)) == PARTITIONS
                and all(shares)):
            return shares
        return None
    try:
        return wait_for(check, timeout=timeout, interval=0.1, message="a balanced assignment")
    except TimeoutError:
        raise AssertionError(f"not balanced: {[c.assignment() for c in consumers]}") from None


def describe(bootstrap: str, group: str):
    with RawClient(bootstrap) as rc:
        resp = rc.request(15, 5, m.DescribeGroupsRequest(groups=[group]))
    return resp.groups[0]


def decode_assignment(raw: bytes) -> dict[str, list[int]]:
    """ConsumerProtocol Assignment: version, [topic, [partition]], user data."""
    import struct

    pos = 2
    (n,) = struct.unpack_from(">i", raw, pos)
    pos += 4
    out = {}
    for _ in range(n):
        (ln,) = struct.unpack_from(">h", raw, pos)
        pos += 2
        topic = raw[pos:pos + ln].decode()
        pos += ln
        (k,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        out[topic] = list(struct.unpack_from(f">{k}i", raw, pos))
        pos += 4 * k
    return out


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(options=OPTIONS)


# -- three, four, three, two consumers: every message consumed -------------------------

@pytest.mark.parametrize("lib,assignor", [("confluent", "range"), ("kafka-python", "range"),
                                          ("aiokafka", "roundrobin")])
def test_group_rebalances_and_consumes_everything(gbroker, lib, assignor):
    bootstrap = gbroker.bootstrap
    topic, group = _topic("grp"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    producer = Producer(bootstrap, topic)
    consumers = [ConsumerProc(lib, bootstrap, topic, group, assignor) for _ in range(3)]
    try:
        shares = wait_balanced(consumers)
        assert sorted(map(len, shares)) == [2, 2, 2]

        fourth = ConsumerProc(lib, bootstrap, topic, group, assignor)
        consumers.append(fourth)
        shares = wait_balanced(consumers)
        assert sorted(map(len, shares)) == [1, 1, 2, 2]

        leaver = consumers.pop(0)  # clean close: LeaveGroup, immediate rebalance
        leaver.close()
        assert leaver.closed
        wait_balanced(consumers)

        victim = consumers.pop(0)  # SIGKILL: no LeaveGroup, its session expires
        lost = victim.assignment()
        victim.kill()
        shares = wait_balanced(consumers, timeout=SESSION_MS / 1000 + 30)
        assert lost <= set().union(*shares)

        sent = producer.stop()
        everyone = [leaver, victim, *consumers]
        wait_for(lambda: set(sent) <= {v for c in everyone for v in c.values}, timeout=30,
                 message="every produced message to be consumed")
        assert set(sent) <= {v for c in everyone for v in c.values}
    finally:
        producer.stop_flag.set()
        for c in consumers:
            c.cleanup()


# -- assignors ---------------------------------------------------------------------------

def test_confluent_cooperative_sticky_incremental_rebalance(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group = _topic("coop"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    consumers = [ConsumerProc("confluent", bootstrap, topic, group, "cooperative-sticky") for _ in range(2)]
    try:
        first = wait_balanced(consumers)
        consumers.append(ConsumerProc("confluent", bootstrap, topic, group, "cooperative-sticky"))
        shares = wait_balanced(consumers)
        assert sorted(map(len, shares)) == [2, 2, 2]
        # sticky and incremental: the old members kept what they did not give away,
        # and revoked only some partitions (never their whole assignment at once)
        for before, after in zip(first, shares):
            assert after <= before
        for c in consumers[:2]:
            revokes = [e for e in c.events if e["event"] == "revoke"]
            assert all(e["assigned"] for e in revokes), c.events
        assert any(e["event"] == "revoke" for c in consumers[:2] for e in c.events)
        d = describe(bootstrap, group)
        assert d.group_state == "Stable" and d.protocol_data == "cooperative-sticky"
    finally:
        for c in consumers:
            c.cleanup()


@pytest.mark.parametrize("lib", ["kafka-python", "aiokafka"])
@pytest.mark.parametrize("assignor", ["range", "roundrobin"])
def test_python_assignors_get_the_leaders_assignment(gbroker, lib, assignor):
    bootstrap = gbroker.bootstrap
    topic, group = _topic("asg"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    consumers = [ConsumerProc(lib, bootstrap, topic, group, assignor) for _ in range(3)]
    try:
        wait_balanced(consumers)
        wait_for(lambda: all(c.member for c in consumers), timeout=10, message="member ids")
        d = describe(bootstrap, group)
        assert d.group_state == "Stable" and d.protocol_data == assignor
        by_member = {mem.member_id: decode_assignment(mem.member_assignment)[topic] for mem in d.members}
        ids = sorted(by_member)
        if assignor == "range":
            expected = {mid: [2 * i, 2 * i + 1] for i, mid in enumerate(ids)}
        else:
            expected = {mid: [p for p in range(PARTITIONS) if p % 3 == i] for i, mid in enumerate(ids)}
        assert {k: sorted(v) for k, v in by_member.items()} == expected
        for c in consumers:  # what each member got is what the leader computed
            assert c.assignment() == set(expected[c.member])
    finally:
        for c in consumers:
            c.cleanup()


# -- static membership -------------------------------------------------------------------

def test_static_member_restart_gets_its_partitions_back_without_rebalance(gbroker):
    bootstrap = gbroker.bootstrap
    topic, group = _topic("static"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    session = 15000
    consumers = [ConsumerProc("confluent", bootstrap, topic, group, "range", instance=f"inst-{i}",
                              session_ms=session) for i in range(3)]
    try:
        shares = wait_balanced(consumers)
        time.sleep(1.0)
        before = [c.n_events() for c in consumers]
        victim = consumers[1]
        victim.kill()
        replacement = ConsumerProc("confluent", bootstrap, topic, group, "range", instance="inst-1",
                                   session_ms=session)
        consumers[1] = replacement
        wait_for(lambda: replacement.assignment() == shares[1], timeout=session / 1000 - 2,
                 message="the static member's partitions to come back")
        time.sleep(2.0)
        # nobody else was rebalanced: no revoke/assign on the other two
        assert [consumers[0].n_events(), consumers[2].n_events()] == [before[0], before[2]]
        d = describe(bootstrap, group)
        assert d.group_state == "Stable"
        assert sorted(mem.group_instance_id for mem in d.members) == ["inst-0", "inst-1", "inst-2"]
    finally:
        for c in consumers:
            c.cleanup()


# -- offsets -----------------------------------------------------------------------------

def _produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer as P

    p = P({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0


def test_committed_offsets_survive_restart_and_consumers_resume(broker_factory):
    from confluent_kafka import Consumer, TopicPartition
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition as KTP

    broker = broker_factory(options=OPTIONS)
    bootstrap = broker.bootstrap
    topic, group = _topic("off"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 3)
    _produce(bootstrap, topic, 300)  # 100 per partition

    # kafka-python: consume some, commit with metadata strings (manual commit)
    kc = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                       auto_offset_reset="earliest", session_timeout_ms=SESSION_MS)
    kafka_python_metadata(kc, topic)
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        for tp, recs in kc.poll(timeout_ms=500).items():
            seen[tp.partition] = recs[0].offset
    kc.commit({KTP(topic, p): OffsetAndMetadata(10 * (p + 1), f"meta-{p}", -1) for p in range(3)})
    kc.close()

    broker.restart()

    with RawClient(bootstrap) as rc:
        resp = rc.request(9, 8, m.OffsetFetchRequest(groups=[m.OffsetFetchRequest.OffsetFetchRequestGroup(
            group_id=group, topics=None)]))
    parts = {p.partition_index: (p.committed_offset, p.metadata) for t in resp.groups[0].topics for p in t.partitions}
    assert parts == {p: (10 * (p + 1), f"meta-{p}") for p in range(3)}

    # confluent-kafka: a new member of the group resumes exactly after the commit, and
    # auto-commits as it goes
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "auto.commit.interval.ms": 200})
    committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    assert {tp.partition: (tp.offset, tp.metadata) for tp in committed} == parts
    c.subscribe([topic])
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while (len(first) < 3 or any(last.get(p) != 99 for p in range(3))) and time.monotonic() < deadline:
        for msg in c.consume(100, 0.5):
            if not msg.error():
                first.setdefault(msg.partition(), msg.offset())
                last[msg.partition()] = msg.offset()
    assert first == {p: 10 * (p + 1) for p in range(3)}
    c.close()  # auto-commit: the final positions go in on close

    def fetch(group_id: str) -> dict[int, int]:
        with RawClient(bootstrap) as rc:
            resp = rc.request(9, 5, m.OffsetFetchRequest(group_id=group_id, topics=[
                m.OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1, 2])]))
        return {p.partition_index: p.committed_offset for p in resp.topics[0].partitions}

    assert fetch(group) == {0: 100, 1: 100, 2: 100}
    # seek-then-commit (kafka-python, manual assignment): commits the sought position
    kc = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    kc.assign([KTP(topic, 0)])
    kc.seek(KTP(topic, 0), 5)
    kc.commit()
    kc.close()
    assert fetch(group) == {0: 5, 1: 100, 2: 100}

    # a group that never committed starts where auto.offset.reset says
    for reset, expected in (("earliest", 0), ("latest", 100)):
        fresh = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fresh-{reset}-{uuid.uuid4().hex[:6]}",
                          "auto.offset.reset": reset, "enable.auto.commit": False})
        never = fresh.committed([TopicPartition(topic, 2)], timeout=10)
        assert never[0].offset < 0  # OFFSET_INVALID: nothing committed
        fresh.subscribe([topic])
        deadline = time.monotonic() + 20
        pos = None
        produced_more = False
        while pos is None and time.monotonic() < deadline:
            got = [msg.offset() for msg in fresh.consume(10, 0.5) if not msg.error() and msg.partition() == 2]
            if got:
                pos = got[0]  # the first record it was given
            elif reset == "latest" and fresh.assignment() and not produced_more:
                time.sleep(1.0)  # let it resolve "latest" to 100 first
                _produce(bootstrap, topic, 3)
                produced_more = True
        fresh.close()
        assert pos == expected, reset


def test_aiokafka_commit_and_fetch(gbroker):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    bootstrap = gbroker.bootstrap
    topic, group = _topic("aio"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 3)
    _produce(bootstrap, topic, 30)

    async def run():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=SESSION_MS)
        await c.start()
        try:
            await c.getmany(timeout_ms=3000)
            tp = TopicPartition(topic, 1)
            await c.commit({tp: OffsetAndMetadata(7, "aio-meta")})
            return await c.committed(tp), await c.committed(TopicPartition(topic, 2))
        finally:
            await c.stop()

    one, two = asyncio.run(run())
    assert one == 7
    assert two is None or two < 0  # never committed


# -- admin -------------------------------------------------------------------------------

def test_describe_list_delete_groups_and_offset_delete(gbroker):
    from confluent_kafka import ConsumerGroupState, KafkaException
    from confluent_kafka.admin import AdminClient

    bootstrap = gbroker.bootstrap
    topic, other, group = _topic("adm"), _topic("adm2"), f"g-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    create_topic(bootstrap, other, 1)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumers = [ConsumerProc("confluent", bootstrap, topic, group, "range") for _ in range(2)]
    try:
        wait_balanced(consumers)
        desc = admin.describe_consumer_groups([group])[group].result(timeout=20)
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert len(desc.members) == 2
        assigned = sorted(tp.partition for mem in desc.members for tp in mem.assignment.topic_partitions)
        assert assigned == list(range(PARTITIONS))

        listed = admin.list_consumer_groups().result(timeout=20)
        assert group in {g.group_id for g in listed.valid}
        stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(timeout=20)
        assert group in {g.group_id for g in stable.valid}
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert group not in {g.group_id for g in empty.valid}

        # OffsetDelete: a simple commit on another topic can go; the subscribed topic cannot
        with RawClient(bootstrap) as rc:
            member = describe(bootstrap, group).members[0].member_id
            del_req = m.OffsetDeleteRequest(group_id=group, topics=[
                m.OffsetDeleteRequest.OffsetDeleteRequestTopic(name=n, partitions=[
                    m.OffsetDeleteRequest.OffsetDeleteRequestPartition(partition_index=0)])
                for n in (topic, other, "no-such-topic")])
            resp = rc.request(47, 0, del_req)
            codes = {t.name: t.partitions[0].error_code for t in resp.topics}
            assert codes == {topic: 86, other: 0, "no-such-topic": 3}  # GROUP_SUBSCRIBED_TO_TOPIC
            assert member

        with pytest.raises(KafkaException) as err:
            admin.delete_consumer_groups([group])[group].result(timeout=20)
        assert "NON_EMPTY_GROUP" in str(err.value) or "not empty" in str(err.value).lower()

        for c in consumers:
            c.close()
        wait_for(lambda: describe(bootstrap, group).group_state == "Empty", timeout=20, message="empty group")
        with RawClient(bootstrap) as rc:
            resp = rc.request(47, 0, m.OffsetDeleteRequest(group_id=group, topics=[
                m.OffsetDeleteRequest.OffsetDeleteRequestTopic(name=topic, partitions=[
                    m.OffsetDeleteRequest.OffsetDeleteRequestPartition(partition_index=0)])]))
            assert resp.error_code == 0 and resp.topics[0].partitions[0].error_code == 0
            fetched = rc.request(9, 7, m.OffsetFetchRequest(group_id=group, topics=[
                m.OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1])]))
            offs = {p.partition_index: p.committed_offset for p in fetched.topics[0].partitions}
            assert offs[0] == -1

        admin.delete_consumer_groups([group])[group].result(timeout=20)
        d = describe(bootstrap, group)
        assert d.group_state == "Dead" and not d.members
        assert group not in {g.group_id for g in admin.list_consumer_groups().result(timeout=20).valid}
        with RawClient(bootstrap) as rc:
            resp = rc.request(42, 2, m.DeleteGroupsRequest(groups_names=[group]))
            assert resp.results[0].error_code == 69  # GROUP_ID_NOT_FOUND
    finally:
        for c in consumers:
            c.cleanup()


def test_raw_protocol_errors(gbroker):
    """Codes a client sees when it gets the protocol wrong, over several versions."""
    bootstrap = gbroker.bootstrap
    group = f"g-{uuid.uuid4().hex[:8]}"
    J = m.JoinGroupRequest
    protos = [J.JoinGroupRequestProtocol(name="range", metadata=b"\0\0\0\0\0\0\0\0\0\0")]
    with RawClient(bootstrap) as rc:
        fc = rc.request(10, 4, m.FindCoordinatorRequest(key_type=0, coordinator_keys=[group, "x"]))
        assert [c.error_code for c in fc.coordinators] == [0, 0]
        assert fc.coordinators[0].port == gbroker.port
        fc = rc.request(10, 0, m.FindCoordinatorRequest(key=group))
        assert fc.error_code == 0 and fc.port == gbroker.port

        bad = rc.request(11, 5, J(group_id=group, session_timeout_ms=10, rebalance_timeout_ms=1000,
                                   member_id="", protocol_type="consumer", protocols=protos))
        assert bad.error_code == 26  # INVALID_SESSION_TIMEOUT
        first = rc.request(11, 5, J(group_id=group, session_timeout_ms=6000, rebalance_timeout_ms=1000,
                                     member_id="", protocol_type="consumer", protocols=protos))
        assert first.error_code == 79 and first.member_id  # MEMBER_ID_REQUIRED
        joined = rc.request(11, 5, J(group_id=group, session_timeout_ms=6000, rebalance_timeout_ms=1000,
                                      member_id=first.member_id, protocol_type="consumer", protocols=protos))
        assert joined.error_code == 0 and joined.leader == first.member_id and joined.generation_id == 1
        assert [x.member_id for x in joined.members] == [first.member_id]
        hb = rc.request(12, 4, m.HeartbeatRequest(group_id=group, generation_id=1, member_id=first.member_id))
        assert hb.error_code == 0  # CompletingRebalance: heartbeats are fine
        sync = rc.request(14, 5, m.SyncGroupRequest(
            group_id=group, generation_id=1, member_id=first.member_id, protocol_type="consumer",
            protocol_name="range", assignments=[m.SyncGroupRequest.SyncGroupRequestAssignment(
                member_id=first.member_id, assignment=b"abc")]))
        assert sync.error_code == 0 and sync.assignment == b"abc" and sync.protocol_name == "range"
        hb = rc.request(12, 4, m.HeartbeatRequest(group_id=group, generation_id=0, member_id=first.member_id))
        assert hb.error_code == 22  # ILLEGAL_GENERATION
        hb = rc.request(12, 4, m.HeartbeatRequest(group_id=group, generation_id=1, member_id="nobody"))
        assert hb.error_code == 25  # UNKNOWN_MEMBER_ID
        other = rc.request(11, 5, J(group_id=group, session_timeout_ms=6000, rebalance_timeout_ms=1000,
                                     member_id="", protocol_type="consumer",
                                     protocols=[J.JoinGroupRequestProtocol(name="other", metadata=b"")]))
        assert other.error_code == 23  # INCONSISTENT_GROUP_PROTOCOL
        simple = rc.request(8, 8, m.OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1,
                                                         member_id="", topics=[]))
        assert simple.topics == []
        leave = rc.request(13, 4, m.LeaveGroupRequest(group_id=group, members=[
            m.LeaveGroupRequest.MemberIdentity(member_id=first.member_id),
            m.LeaveGroupRequest.MemberIdentity(member_id="ghost")]))
        assert leave.error_code == 0 and [x.error_code for x in leave.members] == [0, 25]
        hb = rc.request(12, 0, m.HeartbeatRequest(group_id=group, generation_id=1, member_id=first.member_id))
        assert hb.error_code == 25
        lg = rc.request(16, 4, m.ListGroupsRequest(states_filter=["empty"]))
        assert (group, "Empty") in {(g.group_id, g.group_state) for g in lg.groups}
