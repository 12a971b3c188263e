"""Partition admin logic on in-memory twins: growing a topic in etcd, Kafka's checks of
manual assignments, placement of new partitions, and ElectLeaders / reassignment
answers of the membership."""

from __future__ import annotations

import curio
import pytest

from kafscale.broker.membership import Membership, assign
from kafscale.config import Config
from kafscale.errors import ErrorCode, KafkaError
from kafscale.metadata.cluster import Cluster, Leader, TopicRecord
from kafscale.metadata.memory import MemoryStore
from kafscale.server.runtime import CurioRuntime
from kafscale.storage.engine import LogManager, check_manual_assignment
from kafscale.storage.memobjects import MemoryObjectStore


def code_of(fn, *args) -> tuple[int, str]:
    with pytest.raises(KafkaError) as err:
        fn(*args)
    return err.value.code, str(err.value)


def test_add_partitions_grows_the_record_in_one_compare_and_swap():
    store = MemoryStore()
    cluster = Cluster(store, "/t")
    rec = cluster.create_topic("t", 3, {"retention.ms": "1000"})
    old, new = cluster.add_partitions("t", 5)
    assert (old.partitions, new.partitions) == (3, 5)
    assert cluster.get_topic("t") == TopicRecord("t", rec.id, 5, {"retention.ms": "1000"}, rec.created_ms)
    assert code_of(cluster.add_partitions, "t", 4) == (
        ErrorCode.INVALID_PARTITIONS, "Topic currently has 5 partitions, which is higher than the requested 4.")
    assert code_of(cluster.add_partitions, "t", 5) == (ErrorCode.INVALID_PARTITIONS,
                                                       "Topic already has 5 partition(s).")
    assert code_of(cluster.add_partitions, "nope", 5)[0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_add_partitions_rereads_a_record_changed_under_it():
    store = MemoryStore()
    cluster = Cluster(store, "/t")
    rec = cluster.create_topic("t", 2)
    txn, changed = store.txn, []

    def racing_txn(compare, success, failure=()):
        if not changed:  # another writer changes the config just before our transaction
            changed.append(1)
            store.put(cluster.keys.topic("t"), TopicRecord("t", rec.id, 2, {"a": "b"}, rec.created_ms).encode())
        return txn(compare, success, failure)

    store.txn = racing_txn
    cluster.add_partitions("t", 4)
    assert cluster.get_topic("t").partitions == 4 and cluster.get_topic("t").config == {"a": "b"}


def test_manual_assignment_checks_are_kafkas():
    check_manual_assignment(2, [[0], [1, 2]], {0, 1, 2})
    for assignments, needle in (([[0]], "but only 1 assignment"), ([[0], []], "empty replica list"),
                                ([[0], [7]], "broker 7"), ([[0], [1, 1]], "more than once")):
        code, message = code_of(check_manual_assignment, 2, assignments, {0, 1, 2})
        assert code == ErrorCode.INVALID_REPLICA_ASSIGNMENT and needle in message, message


def test_new_partitions_keep_the_old_owners_and_spread_over_every_broker():
    brokers = [(0, None), (1, None), (2, None)]
    before = assign({"t": TopicRecord("t", "0" * 32, 3)}, brokers)
    after = assign({"t": TopicRecord("t", "0" * 32, 6)}, brokers)
    assert {k: v for k, v in after.items() if k[1] < 3} == before
    assert {after[("t", p)] for p in range(3, 6)} == {0, 1, 2}


async def _membership(live: list[int]) -> tuple[Membership, LogManager]:
    rt, store = CurioRuntime(), MemoryStore()
    cluster = Cluster(store, "/t")
    cfg = Config(etcd_endpoints="x", s3_endpoint="x")
    logs = LogManager(rt, cfg, cluster, MemoryObjectStore())
    m = Membership(rt, cluster, logs, 0, {"host": "h", "port": 1}, 10)
    m.live = {b: {"host": "h", "port": 1} for b in live}
    logs.lease_id = store.grant_lease(10)
    await logs.create_topic("t", 4)
    return m, logs


def test_elect_claims_ours_waits_for_others_and_knows_when_none_is_needed():
    async def main():
        m, logs = await _membership([0, 1])
        ours = next(p for p in range(4) if m.desired_owner("t", p) == 0)
        theirs = next(p for p in range(4) if m.desired_owner("t", p) == 1)
        soon = lambda: m.rt.monotonic() + 0.2  # noqa: E731
        # No owner, and the assignment names us: claimed, and as the preferred leader
        # leads, no election was needed.
        with pytest.raises(KafkaError) as err:
            await m.elect("t", ours, soon())
        assert err.value.code == ErrorCode.ELECTION_NOT_NEEDED and "assignment names" in str(err.value)
        assert logs.owners[("t", ours)].broker == 0
        for p, code, needle in ((ours, ErrorCode.ELECTION_NOT_NEEDED, "live broker 0"),
                                (theirs, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, "broker 1"),
                                (9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "t-9")):
            with pytest.raises(KafkaError) as err:
                await m.elect("t", p, soon())
            assert err.value.code == code and needle in str(err.value), err.value

        async def broker_1_claims():  # as its reconcile loop would, a moment later
            await curio.sleep(0.1)
            logs.owners[("t", theirs)] = Leader(1, 1, logs.topics["t"].id)

        task = await curio.spawn(broker_1_claims)
        with pytest.raises(KafkaError) as err:  # answered once it has a live owner: the named one
            await m.elect("t", theirs, m.rt.monotonic() + 5)
        assert err.value.code == ErrorCode.ELECTION_NOT_NEEDED
        await task.join()
        # A live owner other than the one the assignment names took it: an election
        # happened (NONE).
        other = next(p for p in range(4) if m.desired_owner("t", p) == 1 and p != theirs)

        async def broker_0_takes_it():
            await curio.sleep(0.1)
            logs.owners[("t", other)] = Leader(0, 1, logs.topics["t"].id)
        task = await curio.spawn(broker_0_takes_it)
        await m.elect("t", other, m.rt.monotonic() + 5)
        await task.join()

    curio.run(main)


def test_reassignment_accepts_only_what_is():
    async def main():
        m, logs = await _membership([0, 1])
        theirs = next(p for p in range(4) if m.desired_owner("t", p) == 1)
        await m.check_reassignment("t", theirs, [1])  # the owner it has: nothing to do
        for replicas, code in (([0], ErrorCode.INVALID_REQUEST), ([5], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
                               ([1, 1], ErrorCode.INVALID_REPLICA_ASSIGNMENT),
                               (None, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS)):
            with pytest.raises(KafkaError) as err:
                await m.check_reassignment("t", theirs, replicas)
            assert err.value.code == code, (replicas, err.value)
        with pytest.raises(KafkaError) as err:
            await m.check_reassignment("t", 0, [0, 1])
        assert "nothing to move" in str(err.value)

    curio.run(main)
