"""Partition admin APIs against real clients: CreatePartitions, DescribeLogDirs,
ElectLeaders, Alter/ListPartitionReassignments and DescribeProducers (issue #16)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from kafscale.protocol import messages
from tests.integration.test_clients import create_topic
from tests.integration.test_cluster import agree, leaders
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient

pytestmark = pytest.mark.timeout(120)  # each takes seconds; a hang should not hold CI for the default 300

OPTS = {"lease_ttl_s": 3}
UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER, INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT = 3, 6, 37, 39
INVALID_REQUEST, ELECTION_NOT_NEEDED, NO_REASSIGNMENT_IN_PROGRESS = 42, 84, 85


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _kafka_admin(bootstrap: str):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def _create_partitions_raw(bootstrap: str, topics: list[tuple[str, int]], version: int = 3):
    R = messages.CreatePartitionsRequest
    with RawClient(bootstrap) as c:
        resp = c.request(37, version, R(topics=[R.CreatePartitionsTopic(name=n, count=k, assignments=None)
                                                for n, k in topics], timeout_ms=10000))
    return [(r.name, r.error_code, r.error_message) for r in resp.results]


class GroupConsumer:
    """A confluent-kafka group member (subscribe) polled in a thread; records what it read
    and the partitions it was assigned."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"grow-{uuid.uuid4().hex[:6]}",
                                  "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000})
        self.assigned: set[int] = set()
        self.got: dict[int, list[bytes]] = {}
        self._stop = threading.Event()
        self.consumer.subscribe([topic], on_assign=lambda _c, tps: self.assigned.update(tp.partition for tp in tps),
                                on_revoke=lambda _c, tps: self.assigned.difference_update(tp.partition for tp in tps))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self.consumer.consume(100, 0.2):
                if m.error() is None:
                    self.got.setdefault(m.partition(), []).append(m.value())
        self.consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


def test_create_partitions_on_a_cluster_reaches_every_broker_producers_and_groups(broker_factory):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewPartitions

    brokers = broker_factory.cluster(3, options=OPTS)
    topic = _topic("grow")
    create_topic(brokers[0].bootstrap, topic, partitions=3)
    wait_for(lambda: agree(brokers, topic, 3), timeout=15, message="leaders settled")
    bootstrap = ",".join(b.bootstrap for b in brokers)
    group = GroupConsumer(bootstrap, topic)
    try:
        wait_for(lambda: group.assigned == {0, 1, 2}, timeout=30, message="the group's first assignment")
        admin = AdminClient({"bootstrap.servers": brokers[1].bootstrap})
        admin.create_partitions([NewPartitions(topic, 6)], operation_timeout=30)[topic].result(30)
        # Every broker reports the new count, each new partition with a live owner (and
        # they agree on which), and the owners are spread over the brokers.
        wait_for(lambda: agree(brokers, topic, 6), timeout=15, message="every broker sees 6 partitions")
        assert set(leaders(brokers[2].bootstrap, topic).values()) == {0, 1, 2}
        wait_for(lambda: group.assigned == set(range(6)), timeout=30, message="the group rebalanced onto 6")
        producer = Producer({"bootstrap.servers": bootstrap, "topic.metadata.refresh.interval.ms": 1000})
        for p in range(6):
            for i in range(5):
                producer.produce(topic, value=f"p{p}-{i}".encode(), partition=p)
        assert producer.flush(30) == 0
        wait_for(lambda: all(len(group.got.get(p, ())) == 5 for p in range(6)), timeout=30,
                 message="the group read every partition, the new ones too")
        assert group.got[4] == [f"p4-{i}".encode() for i in range(5)]
    finally:
        group.stop()

    # DescribeLogDirs: every broker lists the partitions it owns; the union is all six,
    # each once, sized by its committed segments.
    ka = _kafka_admin(bootstrap)
    try:
        seen: dict[int, int] = {}
        for broker_dirs in ka.describe_log_dirs(topic_partitions=[topic]):
            (log_dir,) = broker_dirs["log_dirs"]
            assert log_dir["error_code"] == 0 and log_dir["log_dir"].startswith("s3://")
            for t in log_dir["topics"]:
                for p in t["partitions"]:
                    assert p["partition_index"] not in seen and p["offset_lag"] == 0 and not p["is_future_key"]
                    seen[p["partition_index"]] = p["partition_size"]
        assert set(seen) == set(range(6)) and all(size > 5 * 5 for size in seen.values()), seen
    finally:
        ka.close()

    # Moving a partition to another live broker is refused, saying why; DescribeProducers
    # on a broker that does not own the partition gets NOT_LEADER_OR_FOLLOWER.
    owner = leaders(brokers[0].bootstrap, topic)[0]
    other = next(b for b in brokers if b.broker_id != owner)
    A = messages.AlterPartitionReassignmentsRequest
    with RawClient(other.bootstrap) as c:
        resp = c.request(45, 0, A(topics=[A.ReassignableTopic(name=topic, partitions=[
            A.ReassignablePartition(partition_index=0, replicas=[other.broker_id])])]))
    (part,) = resp.responses[0].partitions
    assert part.error_code == INVALID_REQUEST and "nothing to move" in part.error_message
    assert leaders(other.bootstrap, topic)[0] == owner
    R = messages.DescribeProducersRequest
    with RawClient(other.bootstrap) as c:
        resp = c.request(61, 0, R(topics=[R.TopicRequest(name=topic, partition_indexes=[0])]))
    assert resp.topics[0].partitions[0].error_code == NOT_LEADER


def test_create_partitions_refusals_and_validate_only(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions

    topic = _topic("cp")
    create_topic(broker.bootstrap, topic, partitions=3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def create(count: int, validate_only: bool = False):
        fut = admin.create_partitions([NewPartitions(topic, count)], validate_only=validate_only)[topic]
        try:
            fut.result(30)
            return None
        except KafkaException as exc:
            return exc.args[0]

    assert create(5, validate_only=True) is None
    assert len(leaders(broker.bootstrap, topic)) == 3  # validate_only changed nothing
    err = create(2)
    assert err.code() == INVALID_PARTITIONS
    assert err.str() == "Topic currently has 3 partitions, which is higher than the requested 2."
    assert create(3).code() == INVALID_PARTITIONS
    assert create(4) is None
    assert len(leaders(broker.bootstrap, topic)) == 4

    # kafka-python: manual assignments are checked, then placement stays Kafscale's
    from kafka.errors import InvalidReplicationAssignmentError

    ka = _kafka_admin(broker.bootstrap)
    try:
        ka.create_partitions({topic: {"count": 6, "assignments": [[broker.broker_id], [broker.broker_id]]}})
        assert len(leaders(broker.bootstrap, topic)) == 6
        for assignments in ([[broker.broker_id]], [[broker.broker_id + 7]]):  # one too few; no such broker
            try:
                ka.create_partitions({topic: {"count": 8, "assignments": assignments}})
                raise AssertionError(f"{assignments} accepted")
            except InvalidReplicationAssignmentError:
                pass
    finally:
        ka.close()

    results = _create_partitions_raw(broker.bootstrap, [(topic, 7), (topic, 8), ("no-such-topic", 2),
                                                        (_topic("cp"), 2)], version=0)
    assert [code for _, code, _ in results] == [INVALID_REQUEST, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION,
                                               UNKNOWN_TOPIC_OR_PARTITION]
    (name, code, message), = _create_partitions_raw(broker.bootstrap, [(topic, 1_000_000)])
    assert code == INVALID_PARTITIONS and "limit" in message
    assert len(leaders(broker.bootstrap, topic)) == 6  # still up, still 6


def test_elect_leaders_and_reassignments_say_what_kafscale_does(broker):
    from kafka import TopicPartition
    from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError

    topic = _topic("el")
    create_topic(broker.bootstrap, topic, partitions=2)
    me = broker.broker_id
    ka = _kafka_admin(broker.bootstrap)
    try:
        resp = ka.elect_leaders(0, {topic: [0, 1]})  # kafka-python ignores ELECTION_NOT_NEEDED
        codes = [(p.partition_id, p.error_code) for r in resp.replica_election_results for p in r.partition_result]
        assert sorted(codes) == [(0, ELECTION_NOT_NEEDED), (1, ELECTION_NOT_NEEDED)]
        assert ka.list_partition_reassignments() == {}
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        got = ka.alter_partition_reassignments({tp0: [me], tp1: [me, me + 1]})  # what is; no such broker
        assert got == {tp0: None, tp1: InvalidReplicationAssignmentError}, got
        assert ka.alter_partition_reassignments({tp0: None})[tp0] is NoReassignmentInProgressError
    finally:
        ka.close()

    E = messages.ElectLeadersRequest
    A = messages.AlterPartitionReassignmentsRequest
    with RawClient(broker.bootstrap) as c:
        for version in (0, 1, 2):
            resp = c.request(43, version, E(election_type=1, timeout_ms=1000, topic_partitions=[
                E.TopicPartitions(topic=topic, partitions=[1, 9]), E.TopicPartitions(topic="nope", partitions=[0])]))
            assert [(r.topic, [(p.partition_id, p.error_code) for p in r.partition_result])
                    for r in resp.replica_election_results] == [
                (topic, [(1, ELECTION_NOT_NEEDED), (9, UNKNOWN_TOPIC_OR_PARTITION)]),
                ("nope", [(0, UNKNOWN_TOPIC_OR_PARTITION)])]
        resp = c.request(43, 2, E(election_type=5, topic_partitions=[E.TopicPartitions(topic=topic, partitions=[0])]))
        assert resp.error_code == INVALID_REQUEST
        assert resp.replica_election_results[0].partition_result[0].error_code == INVALID_REQUEST
        resp = c.request(43, 2, E(election_type=0, topic_partitions=None))  # all: nothing needed one
        assert resp.error_code == 0 and topic not in {r.topic for r in resp.replica_election_results}
        resp = c.request(45, 0, A(topics=[A.ReassignableTopic(name=topic, partitions=[
            A.ReassignablePartition(partition_index=1, replicas=[me + 40]),
            A.ReassignablePartition(partition_index=1, replicas=[me, me]),
            A.ReassignablePartition(partition_index=5, replicas=[me])])]))
        parts = resp.responses[0].partitions
        assert [p.error_code for p in parts] == [INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICA_ASSIGNMENT,
                                                 UNKNOWN_TOPIC_OR_PARTITION]


def test_describe_producers_reports_the_idempotent_producer(broker):
    from confluent_kafka import Producer
    from kafka import TopicPartition

    topic = _topic("dp")
    create_topic(broker.bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    before = int(time.time() * 1000)
    for i in range(3):
        p.produce(topic, value=b"x", partition=0)
        p.flush(30)
    ka = _kafka_admin(broker.bootstrap)
    try:
        state = ka.describe_producers([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        ka.close()
    (producer,) = state.active_producers
    assert producer.producer_epoch == 0 and producer.last_sequence == 2
    assert producer.last_timestamp >= before and producer.coordinator_epoch == -1
    assert producer.current_transaction_start_offset == -1
    R = messages.DescribeProducersRequest
    with RawClient(broker.bootstrap) as c:
        resp = c.request(61, 0, R(topics=[R.TopicRequest(name="nope", partition_indexes=[0]),
                                          R.TopicRequest(name=topic, partition_indexes=[0, 3])]))
    assert [[p.error_code for p in t.partitions] for t in resp.topics] == [
        [UNKNOWN_TOPIC_OR_PARTITION], [0, UNKNOWN_TOPIC_OR_PARTITION]]


def test_alter_replica_log_dirs_to_the_one_log_dir_is_a_no_op(broker):
    from kafka import TopicPartitionReplica
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import NoError

    topic = f"ard-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
        [log_dirs] = admin.describe_log_dirs()
        target = log_dirs["log_dirs"][0]["log_dir"]
        tpr = TopicPartitionReplica(topic, 0, log_dirs["broker"])
        assert admin.alter_replica_log_dirs({tpr: target})[tpr] is NoError
        elsewhere = admin.alter_replica_log_dirs({tpr: "/var/lib/kafka/data"})[tpr]
        assert getattr(elsewhere, "errno", None) == 57, elsewhere  # LOG_DIR_NOT_FOUND
        missing = TopicPartitionReplica(topic, 9, log_dirs["broker"])
        assert getattr(admin.alter_replica_log_dirs({missing: target})[missing], "errno", None) == 3
    finally:
        admin.close()
