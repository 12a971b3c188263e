"""The async group service over an in-memory metadata store, on the real curio runtime.

Covers what the state machine cannot: batched etcd writes (chunked under etcd's
128-ops limit, coalesced across concurrent requests, never a key twice in one
transaction), reloading groups and offsets after a restart, the timer task, and the
offsets rules that need the topic table.
"""

from __future__ import annotations

import threading
import time

import curio
import pytest

from kafscale.config import Config
from kafscale.errors import ErrorCode as E
from kafscale.groups.coordinator import GroupConfig, GroupState
from kafscale.groups.service import MAX_TXN_OPS, CommitPartition, GroupService, _chunks, _Write
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.memory import MemoryStore
from kafscale.metadata.store import Delete, Put
from kafscale.server.runtime import CurioRuntime

CFG = GroupConfig(initial_rebalance_delay_ms=50)
PROTOS = [("range", b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff")]


class CountingStore(MemoryStore):
    """Records every transaction; refuses one with a key twice, as etcd does."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.txns: list[list] = []
        self.delay = delay
        self.lock = threading.Lock()

    def txn(self, compare, success, failure=()):
        success = list(success)
        keys = [op.key for op in success]
        assert len(keys) == len(set(keys)), "duplicate key in one transaction"
        assert len(success) <= MAX_TXN_OPS
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.txns.append(success)
        return super().txn(compare, success, failure)


def make(store=None, config=CFG):
    store = store or CountingStore()
    cluster = Cluster(store, "/t")
    svc = GroupService(CurioRuntime(), cluster, config, 0, topics=cluster.list_topics)
    return store, cluster, svc


def run(coro_fn, *args):
    return curio.run(coro_fn, *args)


def group_txns(store):
    return [t for t in store.txns if any("/groups/" in op.key for op in t)]


async def join_and_sync(svc, group="g", client="c"):
    first = await svc.join(group, "", None, client, "", 10_000, 30_000, "consumer", PROTOS, True)
    assert first.error == E.MEMBER_ID_REQUIRED
    res = await svc.join(group, first.member_id, None, client, "", 10_000, 30_000, "consumer", PROTOS, True)
    assert res.error == E.NONE and res.generation_id == 1
    sync = await svc.sync(group, res.member_id, None, 1, None, None, {res.member_id: b"assignment"})
    assert sync.error == E.NONE and sync.assignment == b"assignment"
    return res.member_id


def test_chunks_merge_split_and_isolate_prefix_deletes():
    def w(*ops):
        return _Write(list(ops), None)
    big = w(*[Put(f"k{i}", b"x") for i in range(300)])
    a, b = w(Put("x", b"1"), Put("y", b"1")), w(Put("x", b"2"))
    d = w(Delete("/g/", prefix=True))
    chunks = _chunks([a, b, d, big])
    sizes = [len(ops) for ops, _ in chunks]
    assert sizes == [2, 1, 128, 128, 44]
    assert [op.value for op in chunks[0][0] if op.key == "x"] == [b"2"]  # the later put wins
    assert chunks[0][1] == [a, b] and chunks[1][1] == [d]


def test_commit_of_many_partitions_is_a_few_transactions():
    store, cluster, svc = make()
    cluster.create_topic("t", 300)

    async def main():
        await svc.load()
        codes = await svc.commit_offsets("g", -1, "", None, -1,
                                         [CommitPartition("t", p, p * 10, 3, f"m{p}") for p in range(300)])
        assert codes == [E.NONE] * 300
        return await svc.fetch_offsets("g", [("t", 5), ("t", 299)])

    code, rows = run(main)
    assert code == E.NONE
    assert [(t, p, e.offset, e.leader_epoch, e.metadata) for t, p, e in rows] == [
        ("t", 5, 50, 3, "m5"), ("t", 299, 2990, 3, "m299")]
    assert [len(t) for t in group_txns(store)] == [128, 128, 44]


def test_concurrent_commits_coalesce_and_answer_after_they_are_stored():
    store, cluster, svc = make(CountingStore(delay=0.05))
    cluster.create_topic("t", 4)

    async def commit(i):
        return await svc.commit_offsets("g", -1, "", None, -1,
                                        [CommitPartition("t", p, 100 * i + p, -1, "") for p in range(4)])

    async def main():
        await svc.load()
        tasks = [await curio.spawn(commit, i) for i in range(20)]
        return [await t.join() for t in tasks]

    results = run(main)
    assert all(codes == [E.NONE] * 4 for codes in results)
    txns = group_txns(store)
    assert len(txns) <= 3, [len(t) for t in txns]  # 20 requests, 80 partitions
    assert sum(len(t) for t in txns) < 80  # repeated partitions were merged
    stored = cluster.load_groups()["g"][1]
    assert sorted(stored) == [("t", p) for p in range(4)]
    assert svc.groups["g"].offsets[("t", 0)].offset == 1900  # the last commit wins


def test_commit_rules_that_need_the_topic_table():
    store, cluster, svc = make()
    cluster.create_topic("t", 2)

    async def main():
        await svc.load()
        codes = await svc.commit_offsets("g", -1, "", None, -1, [
            CommitPartition("t", 0, 1), CommitPartition("t", 2, 1), CommitPartition("nope", 0, 1),
            CommitPartition("t", 1, 1, -1, "x" * 5000)])
        assert codes == [E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION, E.UNKNOWN_TOPIC_OR_PARTITION,
                         E.OFFSET_METADATA_TOO_LARGE]
        # no group and a generation: that is a stale member, not a simple commit
        assert await svc.commit_offsets("other", 3, "m", None, -1, [CommitPartition("t", 0, 1)]) == [
            E.ILLEGAL_GENERATION]
        code, rows = await svc.fetch_offsets("g", [("t", 1), ("missing", 0)])
        assert [e for _, _, e in rows] == [None, None]
        code, rows = await svc.fetch_offsets("never", [("t", 0)])
        assert code == E.NONE and rows == [("t", 0, None)]
        # a deleted topic's offsets read as never committed and are dropped by the sweep
        cluster.delete_topic("t")
        code, rows = await svc.fetch_offsets("g", None)
        assert rows == []
        assert await svc.expire_offsets() == 1
        assert "g" not in svc.groups  # empty, no offsets left: gone

    run(main)
    assert "g" not in cluster.load_groups()


def test_group_and_offsets_survive_a_restart():
    store, cluster, svc = make()
    cluster.create_topic("t", 1)

    async def before():
        await svc.start()
        mid = await join_and_sync(svc)
        assert await svc.commit_offsets("g", 1, mid, None, -1, [CommitPartition("t", 0, 42, 7, "meta")]) == [E.NONE]
        await svc.stop()
        return mid

    mid = run(before)
    _, _, svc2 = make(store)

    async def after():
        await svc2.start()
        g = svc2.groups["g"]
        assert g.state is GroupState.STABLE and list(g.members) == [mid]
        assert await svc2.heartbeat("g", mid, None, 1) == E.NONE
        res = await svc2.sync("g", mid, None, 1, None, None, {})
        assert res.assignment == b"assignment"
        code, rows = await svc2.fetch_offsets("g", [("t", 0)])
        e = rows[0][2]
        assert (e.offset, e.leader_epoch, e.metadata) == (42, 7, "meta")
        await svc2.stop()

    run(after)


def test_the_timer_completes_delayed_joins_and_expires_sessions():
    store, cluster, svc = make()

    async def main():
        await svc.start()
        t0 = time.monotonic()
        mid = await join_and_sync(svc)
        assert time.monotonic() - t0 < 2.0  # the 50 ms initial delay, driven by the timer
        g = svc.groups["g"]
        g.members[mid].session_timeout_ms = 200  # make it quick
        assert await svc.heartbeat("g", mid, None, 1) == E.NONE
        await curio.sleep(0.5)
        assert g.state is GroupState.EMPTY and not g.members  # expired; stored as empty
        await svc.stop()

    run(main)
    meta = cluster.load_groups()["g"][0]
    assert meta is not None and b'"m":[]' in meta


def test_describe_list_and_delete_groups():
    store, cluster, svc = make()
    cluster.create_topic("t", 1)

    async def main():
        await svc.start()
        mid = await join_and_sync(svc, "busy")
        await svc.commit_offsets("idle", -1, "", None, -1, [CommitPartition("t", 0, 1)])
        code, d = svc.describe("busy")
        assert (code, d.state, d.protocol, [m.member_id for m in d.members]) == (E.NONE, "Stable", "range", [mid])
        assert svc.describe("nobody")[1].state == "Dead"
        assert sorted(svc.list_groups()) == [("busy", "consumer", "Stable"), ("idle", "", "Empty")]
        assert svc.list_groups(["EMPTY"]) == [("idle", "", "Empty")]
        assert svc.list_groups([], ["consumer"]) == []  # KIP-848 groups: none here
        assert await svc.delete_groups(["busy", "idle", "nobody", ""]) == [
            E.NON_EMPTY_GROUP, E.NONE, E.GROUP_ID_NOT_FOUND, E.GROUP_ID_NOT_FOUND]
        assert await svc.delete_offsets("busy", [("t", 0)]) == (E.NONE, {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC})
        assert (await svc.leave("busy", [(mid, None)])) == (E.NONE, [E.NONE])
        assert svc.groups["busy"].state is GroupState.EMPTY
        await svc.stop()

    run(main)
    assert sorted(cluster.load_groups()) == ["busy"]


@pytest.mark.parametrize("group_id", ["a/b", "with space", "offsets/x/1", "é"])
def test_group_ids_with_odd_characters_round_trip(group_id):
    store, cluster, svc = make()
    cluster.create_topic("t", 1)

    async def main():
        await svc.load()
        assert await svc.commit_offsets(group_id, -1, "", None, -1, [CommitPartition("t", 0, 9)]) == [E.NONE]

    run(main)
    assert cluster.load_groups() == {group_id: (None, {("t", 0): cluster.store.get(
        cluster.keys.group_offset(group_id, "t", 0))})}


# -- offsets retention and the cleanup pass (issue #16) ----------------------------------------

def test_expiry_pass_follows_the_live_retention_and_removes_emptied_groups_from_etcd():
    config = Config(group_initial_rebalance_delay_ms=50)
    store, cluster, svc = make(config=GroupConfig.from_config(config))
    cluster.create_topic("t", 2)
    clock = [0.0]
    real_now = svc.now
    svc.now = lambda: real_now() + clock[0]  # a fake clock over the service's own

    async def main():
        await svc.start()
        # a commits-only group, and a consumer group that has emptied
        assert await svc.commit_offsets("simple", -1, "", None, -1, [CommitPartition("t", 0, 5)]) == [E.NONE]
        mid = await join_and_sync(svc, "consumers")
        assert await svc.commit_offsets("consumers", 1, mid, None, -1, [CommitPartition("t", 1, 7)]) == [E.NONE]
        clock[0] = 30.0
        assert await svc.leave("consumers", [(mid, None)]) == (E.NONE, [E.NONE])
        assert svc.groups["consumers"].state is GroupState.EMPTY
        clock[0] = 61.0  # a minute after the simple commit, 31 s after the group emptied
        assert await svc.expire_offsets() == 0  # 7 days by default
        config.offsets_retention_minutes = 1  # AlterConfigs: no restart
        assert await svc.expire_offsets() == 1
        assert "simple" not in svc.groups and "consumers" in svc.groups
        clock[0] = 91.0
        assert await svc.expire_offsets() == 1
        assert svc.groups == {}
        await svc.stop()

    run(main)
    assert cluster.load_groups() == {}  # the meta and offset keys are gone from etcd too


def test_a_group_with_a_commit_in_flight_is_not_removed():
    store, cluster, svc = make(CountingStore(delay=0.2))
    cluster.create_topic("t", 1)

    async def main():
        await svc.start()
        # an empty group with no offsets (its only member left before committing)
        mid = await join_and_sync(svc, "g")
        await svc.leave("g", [(mid, None)])
        commit = await curio.spawn(svc.commit_offsets, "g", -1, "", None, -1, [CommitPartition("t", 0, 3)])
        await curio.sleep(0.05)
        assert svc.groups["g"].pending_commits == 1
        assert await svc.expire_offsets() == 0
        assert await commit.join() == [E.NONE]
        await svc.stop()
        return await svc.fetch_offsets("g", [("t", 0)])

    code, rows = run(main)
    assert rows[0][2].offset == 3
    assert ("t", 0) in cluster.load_groups()["g"][1]


def test_the_cleanup_runs_every_offsets_retention_check_interval():
    config = Config(group_initial_rebalance_delay_ms=50, offsets_retention_check_interval_ms=100)
    store, cluster, svc = make(config=GroupConfig.from_config(config))
    cluster.create_topic("t", 1)

    async def main():
        await svc.start()
        # an explicit retention (OffsetCommit v2-4) of 200 ms
        assert await svc.commit_offsets("g", -1, "", None, 200, [CommitPartition("t", 0, 1)]) == [E.NONE]
        assert "g" in cluster.load_groups()
        await curio.sleep(0.6)
        gone = "g" not in cluster.load_groups() and "g" not in svc.groups
        await svc.stop()
        return gone

    assert run(main)
