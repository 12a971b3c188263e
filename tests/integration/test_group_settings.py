"""The group coordinator's Kafka settings as broker options, with real clients (issue #16).

group.min.session.timeout.ms, group.max.size and the offsets cleanup
(offsets.retention.check.interval.ms; retention itself is a minute at the least, so
the integration test uses an explicit OffsetCommit v2 retention and the unit tests
cover offsets.retention.minutes with a fake clock).
"""

from __future__ import annotations

import threading
import time
import uuid

import kafka.errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from support.procs import wait_for
from support.rawclient import RawClient
from support.roundtrip import kafka_python_metadata

from kafscale.metadata.etcd import EtcdStore
from kafscale.protocol import messages as m
from tests.integration.test_clients import create_topic

FAST = {"group_initial_rebalance_delay_ms": 0}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _consumer(bootstrap: str, topic: str, group: str, **kw) -> KafkaConsumer:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, heartbeat_interval_ms=500, **kw)
    kafka_python_metadata(consumer, topic)  # (a kafka-python 3.0.12 rebalance bug: see there)
    return consumer


def _assigned(consumer: KafkaConsumer, timeout: float = 20.0) -> set:
    def poll():
        consumer.poll(timeout_ms=200)
        return consumer.assignment()
    return wait_for(poll, timeout, message="an assignment")


def _refused(consumer: KafkaConsumer) -> None:
    with pytest.raises(kafka.errors.InvalidSessionTimeoutError):
        for _ in range(50):
            consumer.poll(timeout_ms=200)


def test_a_3s_session_needs_a_lower_group_min_session_timeout(broker_factory):
    low = broker_factory(options={**FAST, "group_min_session_timeout_ms": 1000})
    topic = _name("sess")
    create_topic(low.bootstrap, topic, 2)
    c = _consumer(low.bootstrap, topic, _name("g"), session_timeout_ms=3000)
    try:
        assert {tp.partition for tp in _assigned(c)} == {0, 1}
    finally:
        c.close()
    low.terminate()

    default = broker_factory(options=FAST)  # Kafka's 6000 ms minimum
    c = _consumer(default.bootstrap, topic, _name("g"), session_timeout_ms=3000)
    try:
        _refused(c)
    finally:
        c.close()
    # an operator lowers it at run time (AlterConfigs on the broker): no restart needed
    admin = KafkaAdminClient(bootstrap_servers=default.bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(default.broker_id),
                                            configs={"group.min.session.timeout.ms": "1000"})])
    finally:
        admin.close()
    c = _consumer(default.bootstrap, topic, _name("g"), session_timeout_ms=3000)
    try:
        wait_for(lambda: _joins(c), 20, message="the new minimum to apply")
    finally:
        c.close()


def _joins(consumer: KafkaConsumer) -> bool:
    try:
        consumer.poll(timeout_ms=200)
    except kafka.errors.InvalidSessionTimeoutError:
        return False  # the watch has not brought the change yet
    return bool(consumer.assignment())


class _Polling(threading.Thread):
    """A consumer polling on its own thread (as kafka-python's own suite runs group
    members), until stopped or turned away with GROUP_MAX_SIZE_REACHED."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        super().__init__(daemon=True)
        self.consumer = consumer
        self.refused = False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.consumer.poll(timeout_ms=200)
            except kafka.errors.GroupMaxSizeReachedError:
                self.refused = True
                return

    def assigned(self) -> int:
        return len(self.consumer.assignment())


def _stop(*members: _Polling) -> None:
    for t in members:
        t.stop.set()
    for t in members:
        if t.is_alive():
            t.join(5)
        t.consumer.close()


def test_group_max_size_turns_away_the_third_member(broker_factory):
    b = broker_factory(options={**FAST, "group_max_size": 2})
    topic, group = _name("size"), _name("g")
    create_topic(b.bootstrap, topic, 4)
    first, second = (_Polling(_consumer(b.bootstrap, topic, group)) for _ in range(2))
    third = _Polling(_consumer(b.bootstrap, topic, group))
    try:
        for t in (first, second):
            t.start()

        def two_share_all() -> bool:
            a, b_ = first.consumer.assignment(), second.consumer.assignment()
            return len(a) + len(b_) == 4 and a.isdisjoint(b_) and bool(a) and bool(b_)
        wait_for(two_share_all, 30, message="two members sharing the partitions")
        third.start()
        wait_for(lambda: third.refused, 20, message="GROUP_MAX_SIZE_REACHED for the third")
        # the two members carry on, and stay two
        wait_for(two_share_all, 30, message="the two members after the refusal")
        assert not first.refused and not second.refused
        with RawClient(b.bootstrap) as rc:
            (described,) = rc.request(15, 5, m.DescribeGroupsRequest(groups=[group])).groups
        assert described.group_state == "Stable" and len(described.members) == 2
    finally:
        _stop(first, second, third)


def test_expired_offsets_and_their_emptied_group_leave_etcd(broker_factory, stack):
    b = broker_factory(options={**FAST, "offsets_retention_check_interval_ms": 300})
    topic, group, kept = _name("exp"), _name("g"), _name("kept")
    create_topic(b.bootstrap, topic, 2)
    C = m.OffsetCommitRequest
    with RawClient(b.bootstrap) as rc:
        def commit(group_id: str, retention_ms: int) -> list[int]:
            # OffsetCommit v2-4 carries an explicit retention; a group with no members
            # commits with generation -1 and no member id
            res = rc.request(8, 2, C(group_id=group_id, generation_id_or_member_epoch=-1, member_id="",
                                     retention_time_ms=retention_ms, topics=[C.OffsetCommitRequestTopic(
                                         name=topic, partitions=[C.OffsetCommitRequestPartition(
                                             partition_index=p, committed_offset=10 + p) for p in (0, 1)])]))
            return [p.error_code for t in res.topics for p in t.partitions]

        assert commit(group, 1500) == [0, 0]
        assert commit(kept, -1) == [0, 0]  # offsets.retention.minutes: a week
        store = EtcdStore(stack.etcd_endpoints)
        try:
            assert store.get_prefix(f"{b.etcd_prefix}/groups/{group}/")

            def listed() -> set[str]:
                return {g.group_id for g in rc.request(16, 4, m.ListGroupsRequest(states_filter=[])).groups}
            assert {group, kept} <= listed()
            started = time.monotonic()
            wait_for(lambda: not store.get_prefix(f"{b.etcd_prefix}/groups/{group}/"), 15,
                     message="the expired group's keys to leave etcd")
            assert time.monotonic() - started > 0.5  # not before its retention ran out
            assert group not in listed() and kept in listed()
            fetched = rc.request(9, 2, m.OffsetFetchRequest(group_id=group, topics=None))
            assert fetched.topics == []
            assert len(store.get_prefix(f"{b.etcd_prefix}/groups/{kept}/offsets/")) == 2
        finally:
            store.close()


def test_lowering_group_max_size_at_run_time_turns_away_the_last_to_rejoin(broker_factory):
    b = broker_factory(options=FAST)
    topic, group = _name("lower"), _name("g")
    create_topic(b.bootstrap, topic, 3)
    members = [_Polling(_consumer(b.bootstrap, topic, group)) for _ in range(3)]
    for t in members:
        t.start()

    def shared_by(n: int) -> bool:
        live = [t for t in members if not t.refused]
        return len(live) == n and all(t.assigned() for t in live) and sum(t.assigned() for t in live) == 3
    try:
        wait_for(lambda: shared_by(3), 30, message="three members")
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(b.broker_id),
                                                configs={"group.max.size": "2"})])
        finally:
            admin.close()
        # the next heartbeat starts a rebalance; the last member to rejoin is turned away
        wait_for(lambda: shared_by(2), 30, message="two members left")
        assert sum(t.refused for t in members) == 1
    finally:
        _stop(*members)
