"""The partition log's flush pipeline, with its collaborators replaced by in-memory twins.

The metadata store is MemoryStore (etcd's semantics in-process) and the object store
MemoryObjectStore; the integration tests run the same code against real etcd and S3.
"""

from __future__ import annotations

import threading

import curio
import pytest

from kafscale import _fast
from kafscale.config import Config
from kafscale.errors import ErrorCode, KafkaError
from kafscale.metadata.cluster import Cluster, Leader, PartitionState, SegmentRef
from kafscale.metadata.memory import MemoryStore
from kafscale.metadata.store import Delete, StoreUnavailable
from kafscale.protocol.records import build_batch, decode_records
from kafscale.server.runtime import CurioRuntime
from kafscale.storage import log as log_mod
from kafscale.storage import segment as fmt
from kafscale.storage.engine import LogManager
from kafscale.storage.memobjects import MemoryObjectStore
from kafscale.storage.objects import ObjectStoreError


def batch(n: int, tag: str = "v", pid: int = -1, seq: int = -1) -> bytearray:
    return bytearray(build_batch([(b"k", f"{tag}{i}".encode(), [], 1_700_000_000_000 + i) for i in range(n)],
                                 producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq))


async def read_all(plog, offset: int = 0) -> list:
    """Records from ``offset`` to the high watermark (a read returns at most one segment, as Kafka's)."""
    out = []
    while offset < plog.hw:
        res = await plog.read(offset, 1 << 20)
        recs = [r for r in decode_records(res.records) if r.offset >= offset]
        out += recs
        offset = recs[-1].offset + 1
    return out


def run(coro_fn):
    return curio.run(coro_fn)


@pytest.fixture
def env():
    store, objects = MemoryStore(), MemoryObjectStore()
    cluster = Cluster(store, "/t")
    cfg = Config(etcd_endpoints="x", s3_endpoint="x", segment_bytes=1 << 20, flush_interval_ms=10)
    return store, objects, cluster, cfg


async def _manager(env) -> LogManager:
    store, objects, cluster, cfg = env
    mgr = LogManager(CurioRuntime(), cfg, cluster, objects)
    await mgr.refresh_topics()
    return mgr


async def _owned(env, partitions: int = 1, partition: int = 0):
    """A manager with topic "t" created and the log of one of its partitions owned."""
    mgr = await _manager(env)
    await mgr.create_topic("t", partitions)
    return mgr, await mgr.owned_log("t", partition)


def _append(plog, n, tag="v", **kw):
    buf = batch(n, tag, **kw)
    _status, _n, offsets, max_ts, _big = _fast.walk_batches(buf)
    producer = None
    if kw.get("pid", -1) >= 0:
        producer = (kw["pid"], 0, kw["seq"])
    return plog.append(buf, offsets, max_ts, 5.0, producer)


async def _settled(plog) -> None:
    """Wait until ``plog`` has recovered from a failed flush (see PartitionLog._recover)."""
    for _ in range(500):
        if not plog.recovering and not plog.flushing:
            return
        await curio.sleep(0.01)
    raise AssertionError(f"{plog} did not recover")


def test_appends_get_consecutive_offsets_and_are_readable(env):
    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 3) == 0
        assert await _append(plog, 2) == 3
        assert plog.hw == 5
        assert [r.offset for r in await read_all(plog)] == [0, 1, 2, 3, 4]
        res = await plog.read(4, 1 << 20)
        assert [r.offset for r in decode_records(res.records)][-1] == 4
        with pytest.raises(KafkaError) as err:
            await plog.read(6, 100)
        assert err.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
        await mgr.stop()
    run(main)


def test_concurrent_appends_are_group_committed(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        tasks = [await curio.spawn(_append, plog, 1, f"m{i}") for i in range(50)]
        bases = sorted([await t.join() for t in tasks])
        assert bases == list(range(50))
        # 50 appends in far fewer segments: everything that waited went in one upload.
        assert len(plog.segments) < 10
        assert objects.puts == len(plog.segments)  # one object per flush
        await mgr.stop()
    run(main)


def test_s3_failure_fails_appends_retriably_and_leaves_no_gap(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 2) == 0
        objects.fail = True
        with pytest.raises(KafkaError) as err:
            await _append(plog, 2)
        assert err.value.retriable and err.value.code == ErrorCode.KAFKA_STORAGE_ERROR
        assert plog.hw == 2 and plog.next_offset == 2
        objects.fail = False
        assert await _append(plog, 1) == 2  # no gap where the failed append was
        await mgr.stop()
    run(main)


def test_etcd_failure_fails_appends_and_recovers(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 2) == 0
        store.available = False
        with pytest.raises(KafkaError) as err:
            await _append(plog, 2)
        assert err.value.retriable and err.value.code == ErrorCode.REQUEST_TIMED_OUT  # may have landed
        await _settled(plog)  # its reload failed too: it could not prove ownership
        assert not plog.owned
        store.available = True
        plog = await mgr.owned_log("t", 0)  # re-claimed
        assert await _append(plog, 1) == 2
        await mgr.stop()
    run(main)


def test_a_fenced_owner_cannot_commit(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 2) == 0
        # Another broker takes the partition over (a new epoch in etcd).
        # (its lease expired: etcd deleted our owner record)
        store.delete(cluster.keys.leader("t", 0))
        cluster.claim_partition(mgr.topic("t"), 0, broker_id=7)
        with pytest.raises(KafkaError) as err:
            await _append(plog, 2)
        assert err.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert not plog.owned
        snap = cluster.load_partition("t", 0)
        assert snap.state.hw == 2 and len(snap.segments) == 1
        assert Leader.decode(snap.leader_raw).broker == 7
        await mgr.stop()
    run(main)


def test_state_survives_a_new_manager(env):
    store, objects, cluster, cfg = env

    async def first():
        mgr, plog = await _owned(env, partitions=2, partition=1)
        await _append(plog, 4)
        await mgr.release("t", 1)  # graceful hand-over: the owner record goes
        await mgr.stop()

    async def second():
        mgr = await _manager(env)
        plog = await mgr.owned_log("t", 1)
        assert plog.hw == 4 and plog.epoch == 2
        assert await _append(plog, 1) == 4
        assert len(await read_all(plog)) == 5
        await mgr.stop()
    run(first)
    run(second)


def test_segment_objects_match_the_manifest(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        for i in range(3):
            await _append(plog, 5, f"s{i}")
        for ref in plog.segments:
            assert ref.pos == 0 and ref.key.endswith(".kfo")
            seg = fmt.parse_segment(objects.objects[ref.key][ref.pos:ref.pos + ref.size])
            assert (seg.base_offset, seg.last_offset) == (ref.base, ref.last)
        await mgr.stop()
    run(main)


def test_corrupt_segment_object_is_an_error_not_data(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        await _append(plog, 3)
        key = plog.segments[0].key
        data = bytearray(objects.objects[key])
        data[40] ^= 0xFF
        objects.objects[key] = bytes(data)
        mgr.cache.discard_prefix("")
        with pytest.raises(KafkaError) as err:
            await plog.read(0, 1 << 20)
        assert err.value.code == ErrorCode.CORRUPT_MESSAGE
        await mgr.stop()
    run(main)


def test_a_sequence_gap_just_after_a_takeover_is_retriable_and_the_retry_fits(env):
    """The batches before the gap are on their way back from the previous owner: the
    gapped batch is told to retry (REQUEST_TIMED_OUT), not OUT_OF_ORDER_SEQUENCE_NUMBER,
    which makes librdkafka renumber, and so duplicate, what the old owner wrote."""
    async def first():
        mgr, plog = await _owned(env)
        assert await _append(plog, 2, pid=5, seq=0) == 0
        await mgr.release("t", 0)
        await mgr.stop()

    async def second():
        mgr = await _manager(env)
        plog = await mgr.owned_log("t", 0)
        assert plog.epoch == 2
        with pytest.raises(KafkaError) as err:
            await _append(plog, 2, pid=5, seq=4)  # seq 2-3 went to the old owner, refused
        assert err.value.code == ErrorCode.REQUEST_TIMED_OUT and err.value.retriable
        assert await _append(plog, 2, pid=5, seq=2) == 2  # their retry
        assert await _append(plog, 2, pid=5, seq=4) == 4  # and then the gapped batch's
        plog.took_over_at -= log_mod.SEQUENCE_GAP_GRACE_S  # long after the takeover: a real gap
        with pytest.raises(KafkaError) as err:
            await _append(plog, 1, pid=5, seq=9)
        assert err.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert plog.hw == 6
        await mgr.stop()
    run(first)
    run(second)


def test_idempotent_duplicate_and_gap(env):
    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 2, pid=5, seq=0) == 0
        assert await _append(plog, 2, pid=5, seq=0) == 0
        assert await _append(plog, 3, pid=5, seq=2) == 2
        with pytest.raises(KafkaError) as err:
            await _append(plog, 1, pid=5, seq=9)
        assert err.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert plog.hw == 5
        await mgr.stop()
    run(main)


def test_a_stalled_s3_makes_producers_wait_then_time_out_retriably(env):
    store, objects, cluster, cfg = env
    cfg.max_pending_bytes = 300

    async def main():
        mgr, plog = await _owned(env)
        objects.gate.clear()  # S3 stalls: the first flush hangs in its PUT
        first = await curio.spawn(_append, plog, 3)
        await curio.sleep(0.1)
        assert mgr.pending_bytes > 0
        buf = batch(20, "big")
        _s, _n, offsets, max_ts, _b = _fast.walk_batches(buf)
        with pytest.raises(KafkaError) as err:
            await plog.append(buf, offsets, max_ts, 0.3)
        assert err.value.code == ErrorCode.REQUEST_TIMED_OUT and err.value.retriable
        assert mgr.pending_bytes < 300, "the refused append was buffered anyway"
        objects.gate.set()
        assert await first.join() == 0
        assert await _append(plog, 2) == 3  # room again; no gap
        assert mgr.pending_bytes == 0
        await mgr.stop()
    run(main)


async def _owned_topic(env, partitions: int):
    """A manager with topic "t" created and every partition of it claimed."""
    mgr = await _manager(env)
    await mgr.create_topic("t", partitions)
    for p in range(partitions):
        await mgr.owned_log("t", p)
    return mgr


async def _stage_all(mgr, topic: str, parts, n: int = 2, tag: str = "x"):
    """Stage one append on each of ``parts`` without awaiting in between (as one produce
    request does), then kick the flush; the waiters."""
    staged = []
    for p in parts:
        plog = await mgr.owned_log(topic, p)
        buf = batch(n, f"{tag}{p}-")
        _s, _n, offsets, max_ts, _b = _fast.walk_batches(buf)
        staged.append((plog, plog.stage(buf, offsets, max_ts)))
    for plog, _ in staged:
        await plog.kick()
    return staged


def test_partitions_of_a_topic_share_one_object_and_few_commits(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _owned_topic(env, 150)  # all claimed first: the flush below covers every one
        staged = await _stage_all(mgr, "t", range(150))
        assert [await plog.committed(w, 5.0) for plog, w in staged] == [0] * 150
        assert objects.puts == 1
        assert mgr.stats["etcd_commits"] == 3  # 64 + 64 + 22 partitions
        (key,) = objects.objects
        data = objects.objects[key]
        refs = [plog.segments[0] for plog, _ in staged]
        assert {r.key for r in refs} == {key}
        # The segments tile the object, each a whole segment of its partition's batch.
        assert sorted((r.pos, r.size) for r in refs)[0][0] == 0
        assert fmt.parse_directory(data) == [(p, r.pos, r.size) for p, r in enumerate(refs)]
        for p, ref in enumerate(refs):
            seg = fmt.parse_segment(data[ref.pos:ref.pos + ref.size])
            assert (seg.base_offset, seg.last_offset) == (0, 1)
        # A fresh manager (empty cache) reads each partition's own records from S3.
        fresh = await _manager(env)
        for p in (0, 77, 149):
            plog = await fresh.partition_log("t", p)
            assert [r.value for r in await read_all(plog)] == [f"x{p}-{i}".encode() for i in range(2)]
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_an_object_holds_at_most_segment_bytes_and_every_partition_gets_its_turn(env):
    store, objects, cluster, cfg = env
    cfg.segment_bytes = 300

    async def main():
        mgr = await _owned_topic(env, 6)
        objects.gate.clear()  # hold the first PUT so the rest piles up behind it
        first = await _stage_all(mgr, "t", [0], n=1, tag="a")
        await curio.sleep(0.05)
        rest = await _stage_all(mgr, "t", range(6), n=3, tag="b")
        objects.gate.set()
        for plog, w in first + rest:
            await plog.committed(w, 5.0)
        batch_size = len(batch(3, "b0-"))
        assert len(objects.objects) >= 3
        for data in objects.objects.values():
            # the batches in an object stay within segment.bytes (one append may exceed it)
            payload = sum(size - fmt.HEADER_SIZE - fmt.FOOTER_SIZE for _, _, size in fmt.parse_directory(data))
            assert payload <= max(300, batch_size)
        for p in range(6):
            plog = await mgr.partition_log("t", p)
            assert [r.value for r in await read_all(plog)][-3:] == [f"b{p}-{i}".encode() for i in range(3)]
        await mgr.stop()
    run(main)


def test_a_fenced_partition_fails_alone_in_a_shared_flush(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _owned_topic(env, 3)
        # Another broker takes partition 1 over (a newer epoch in its owner record).
        rec = mgr.topic("t")
        store.txn([], [Delete(cluster.keys.leader("t", 1))])  # (as if our lease expired)
        cluster.claim_partition(rec, 1, 7, None)
        staged = await _stage_all(mgr, "t", range(3))
        outcomes = []
        for plog, w in staged:
            try:
                outcomes.append(await plog.committed(w, 5.0))
            except KafkaError as exc:
                outcomes.append(exc.code)
        assert outcomes == [0, ErrorCode.NOT_LEADER_OR_FOLLOWER, 0]
        assert objects.puts == 1
        assert cluster.load_partition("t", 1).state.hw == 0
        assert cluster.load_partition("t", 2).state.hw == 2
        await mgr.stop()
    run(main)


def test_segments_of_the_one_object_per_segment_layout_stay_readable(env):
    """Manifests written before topic objects name a .kfs/.index pair per segment."""
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _manager(env)
        rec = await mgr.create_topic("t", 1)
        leader, leader_raw = cluster.claim_partition(rec, 0, 0, None)
        body = batch(4, "old")
        _fast.rewrite_base_offsets(body, 0)
        seg = fmt.encode_segment(0, 4, 3, 1, [body])
        stem = "kafscale/t/0/segment-00000000000000000000-legacy"
        objects.objects[stem + ".kfs"] = seg
        objects.objects[stem + ".index"] = fmt.encode_index(memoryview(seg)[fmt.HEADER_SIZE:-fmt.FOOTER_SIZE], 1)
        ref = SegmentRef(stem, 0, 3, 4, len(seg), 1_700_000_000_003, leader.epoch, 1)
        assert ref.pos == -1 and SegmentRef.decode(ref.encode()) == ref
        new_raw = PartitionState(4, 0).encode()
        assert cluster.commit_segments("t", [(0, leader_raw, None, ref, new_raw)]) == [new_raw]
        plog = await mgr.partition_log("t", 0)
        assert [r.value for r in await read_all(plog)] == [f"old{i}".encode() for i in range(4)]
        await mgr.stop()
    run(main)


def test_flushes_run_side_by_side_when_an_object_is_waiting_and_commit_in_order(env):
    store, objects, cluster, cfg = env
    cfg.segment_bytes = 200
    cfg.flush_concurrency = 3

    async def main():
        mgr = await _owned_topic(env, 2)
        flusher = mgr.flushers[mgr.topic("t").id]
        objects.gate.clear()
        staged = []
        for i in range(12):
            staged += await _stage_all(mgr, "t", [0, 1], n=1, tag=f"r{i}-")
        assert flusher.in_flight == 3  # the most allowed, each with a full object
        seen = flusher.in_flight
        objects.gate.set()
        bases = [await plog.committed(w, 5.0) for plog, w in staged]
        assert bases == [i // 2 for i in range(24)]
        assert seen == 3 and flusher.in_flight == 0 and not flusher.dirty
        fresh = await _manager(env)
        for p in range(2):
            plog = await fresh.partition_log("t", p)
            assert [r.value for r in await read_all(plog)] == [f"r{i}-{p}-0".encode() for i in range(12)]
            assert [s.base for s in plog.segments] == sorted(s.base for s in plog.segments)
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_a_failed_flush_fails_the_flushes_behind_it_and_leaves_no_gap(env):
    store, objects, cluster, cfg = env
    cfg.segment_bytes = 200
    cfg.flush_concurrency = 3

    async def main():
        mgr, plog = await _owned(env)
        objects.gate.clear()
        # The first flush's PUT (the one carrying the first record) fails; later ones were
        # taken behind it. (Not fail_next: three PUT threads race to be called first.)
        objects.fail_containing = b"f0-0-0"
        staged = []
        for i in range(8):
            staged += await _stage_all(mgr, "t", [0], n=1, tag=f"f{i}-")
        objects.gate.set()
        codes = []
        for p, w in staged:
            try:
                await p.committed(w, 5.0)
                codes.append(0)
            except KafkaError as exc:
                codes.append(exc.code)
        assert codes[0] == ErrorCode.KAFKA_STORAGE_ERROR
        # whatever was acknowledged is contiguous from 0, and the log goes on from there
        assert codes == sorted(codes, key=lambda c: c == 0)  # no success after a failure
        assert await _append(plog, 1, "next") == plog.hw - 1
        assert [r.value for r in await read_all(plog)] == [b"next0"]
        await mgr.stop()
    run(main)


def test_a_read_cut_short_inside_a_segment_never_skips_to_the_next_one(env):
    """A fetch whose byte limit ends inside a segment must not go on with the next
    (cached) segment: that would serve a gap."""
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        for s, size in ((0, 10), (1, 1)):  # two segments of four batches, both in the cache
            staged = []
            for b in range(4):
                buf = batch(size, f"s{s}b{b}-")
                _st, _n, offsets, max_ts, _big = _fast.walk_batches(buf)
                staged.append(plog.stage(buf, offsets, max_ts))
            await plog.kick()
            for w in staged:
                await plog.committed(w, 5.0)
        assert [(s.base, s.last) for s in plog.segments] == [(0, 39), (40, 43)]
        big, small = len(batch(10, "s0b0-")), len(batch(1, "s1b0-"))
        for limit in (big, big + small, 2 * big + 2 * small, 3 * big + small):
            offsets = [r.offset for r in decode_records((await plog.read(0, limit)).records)]
            assert offsets == list(range(len(offsets))), (limit, offsets)
        # a read that takes the whole first segment does continue into the next
        offsets = [r.offset for r in decode_records((await plog.read(0, 1 << 20)).records)]
        assert offsets == list(range(44))
        await mgr.stop()
    run(main)


class LandThenLose:
    """Wraps a MemoryStore's txn: the next ``n`` segment commits land, but the caller
    hears StoreUnavailable (etcd applied it and the answer was lost)."""

    def __init__(self, store: MemoryStore, n: int = 1) -> None:
        self.store, self.n, self.txn = store, n, store.txn
        store.txn = self

    def __call__(self, compare, success, failure=()):
        ok = self.txn(compare, success, failure)
        if self.n > 0 and any("/segments/" in op.key for op in success):
            self.n -= 1
            raise StoreUnavailable("etcd applied the commit, but its answer was lost")
        return ok


def _stage_idem(plog, seq: int, tag: str):
    buf = batch(1, tag, pid=5, seq=seq)
    _s, _n, offsets, max_ts, _b = _fast.walk_batches(buf)
    return plog.stage(buf, offsets, max_ts, (5, 0, seq))


async def _outcome(plog, staged) -> int:
    try:
        return await plog.committed(staged, 5.0)
    except KafkaError as exc:
        return -exc.code


def test_a_lost_commit_answer_is_possibly_persisted_and_its_retry_is_not_a_new_batch(env):
    """The commit of seq 1 lands in etcd but the broker never hears so. The client is
    told REQUEST_TIMED_OUT (possibly persisted); the next batch, sent while the broker
    is still finding out, gets a retriable error and NOT out-of-order-sequence (which
    makes librdkafka renumber its unacknowledged batches: seq 1 would land twice).
    The retry of seq 1 then gets the offset it landed at."""
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 1, "a", pid=5, seq=0) == 0
        loads = threading.Event()
        real_load = cluster.load_partition

        def slow_load(*args):
            loads.wait(10)  # the recovery's re-read takes a while
            return real_load(*args)
        cluster.load_partition = slow_load
        LandThenLose(store)
        first = _stage_idem(plog, 1, "b")
        await plog.kick()
        assert await _outcome(plog, first) == -ErrorCode.REQUEST_TIMED_OUT
        with pytest.raises(KafkaError) as err:  # sent while the broker re-reads the partition
            _stage_idem(plog, 2, "c")
        assert err.value.retriable and err.value.code != ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        loads.set()
        await _settled(plog)
        assert await plog.committed(_stage_idem(plog, 1, "b"), 5.0) == 1  # the retry: where it landed
        second = _stage_idem(plog, 2, "c")
        await plog.kick()
        assert await plog.committed(second, 5.0) == 2
        assert [r.value for r in await read_all(plog)] == [b"a0", b"b0", b"c0"]
        await mgr.stop()
    run(main)


def test_flushes_landing_behind_a_lost_commit_answer_stay_in_the_producer_table(env):
    """Pipelined flushes: the first one's commit answer is lost (it landed), the one
    behind it lands normally. Nothing is accepted until both have settled; then the
    producer table holds both, so the next sequence is accepted (not refused as out of
    order) and a retry of either is recognised."""
    store, objects, cluster, cfg = env
    cfg.segment_bytes = 50  # (less than one batch: a second flush starts at once)
    cfg.flush_concurrency = 2

    async def main():
        mgr, plog = await _owned(env)
        assert await _append(plog, 1, "a", pid=5, seq=0) == 0
        flusher = plog.flusher
        objects.gate.clear()
        LandThenLose(store)
        s1 = _stage_idem(plog, 1, "b")
        await plog.kick()
        s2 = _stage_idem(plog, 2, "c")
        await plog.kick()
        assert flusher.in_flight == 2
        objects.gate.set()
        assert await _outcome(plog, s1) == -ErrorCode.REQUEST_TIMED_OUT
        assert await _outcome(plog, s2) == 2  # it compared against seq 1's state, which did land
        await _settled(plog)
        assert plog.hw == 3 and plog.next_offset == 3
        assert await plog.committed(_stage_idem(plog, 1, "b"), 5.0) == 1
        assert await plog.committed(_stage_idem(plog, 2, "c"), 5.0) == 2
        s3 = _stage_idem(plog, 3, "d")
        await plog.kick()
        assert await plog.committed(s3, 5.0) == 3
        assert [r.value for r in await read_all(plog)] == [b"a0", b"b0", b"c0", b"d0"]
        await mgr.stop()
    run(main)


async def _read_alone(mgr, topic: str, partition: int) -> list:
    """One partition's values read on their own, or the exception the read raised."""
    try:
        return [r.value for r in await read_all(await mgr.partition_log(topic, partition))]
    except KafkaError as exc:
        return exc


async def _committed_topic(env, partitions: int):
    """A manager owning topic "t", with one committed object holding two records of
    every partition ("x{p}-0", "x{p}-1")."""
    mgr = await _owned_topic(env, partitions)
    for plog, w in await _stage_all(mgr, "t", range(partitions)):
        await plog.committed(w, 5.0)
    return mgr


async def _corrupt_segment(mgr, objects, partition: int) -> None:
    """Flip a byte inside the body of ``partition``'s first segment in its object."""
    ref = (await mgr.owned_log("t", partition)).segments[0]
    data = bytearray(objects.objects[ref.key])
    data[ref.pos + fmt.HEADER_SIZE + 10] ^= 0xFF
    objects.objects[ref.key] = bytes(data)


async def _read_together(mgr, topic: str, parts) -> list:
    """Read offset 0 of ``parts`` as one fetch does: every partition's reads are started
    (prefetch) before the first one is awaited. Each result: values, or the exception."""
    plogs = [await mgr.partition_log(topic, p) for p in parts]
    for plog in plogs:
        await plog.prefetch(0, 1 << 20)
    out = []
    for plog in plogs:
        try:
            out.append([r.value for r in decode_records((await plog.read(0, 1 << 20)).records)])
        except KafkaError as exc:
            out.append(exc)
    return out


def test_segments_of_one_object_read_together_share_one_get(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _committed_topic(env, 12)
        fresh = await _manager(env)  # (empty cache)
        got = await _read_together(fresh, "t", range(12))
        assert got == [[f"x{p}-0".encode(), f"x{p}-1".encode()] for p in range(12)]
        assert objects.gets == 1 and fresh.stats["s3_gets"] == 1
        # One partition read alone GETs only its own segment's byte range.
        other = await _manager(env)
        plog = await other.partition_log("t", 5)
        assert [r.value for r in await read_all(plog)] == [b"x5-0", b"x5-1"]
        assert objects.gets == 2 and len(other.cache) == 1
        await mgr.stop()
        await fresh.stop()
        await other.stop()
    run(main)


def test_a_corrupt_segment_in_a_shared_get_fails_only_its_own_partition(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _committed_topic(env, 3)
        await _corrupt_segment(mgr, objects, 1)
        fresh = await _manager(env)
        p0, p1, p2 = await _read_together(fresh, "t", range(3))
        assert objects.gets == 2  # the shared GET, then partition 1's read tries its own
        assert p0 == [b"x0-0", b"x0-1"] and p2 == [b"x2-0", b"x2-1"]
        assert isinstance(p1, KafkaError) and p1.code == ErrorCode.CORRUPT_MESSAGE
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_a_topic_read_across_its_partitions_has_its_objects_read_whole(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _committed_topic(env, 12)
        fresh = await _manager(env)
        # One partition at a time: five readers of 12 partitions each GET their own range.
        for p in range(5):
            assert await _read_alone(fresh, "t", p) == [f"x{p}-0".encode(), f"x{p}-1".encode()]
        assert objects.gets == 5 and fresh.stats["whole_object_gets"] == 0
        # The sixth makes half the topic read at once: its object is read whole, and the
        # segments of the partitions not read yet come along into the cache.
        for p in range(5, 12):
            assert await _read_alone(fresh, "t", p) == [f"x{p}-0".encode(), f"x{p}-1".encode()]
        assert objects.gets == 6 and fresh.stats["whole_object_gets"] == 1
        assert fresh.stats["segments_read_along"] == 6 and len(fresh.cache) == 12
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_a_corrupt_segment_in_an_object_read_whole_is_not_cached_and_fails_only_its_reads(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _committed_topic(env, 4)
        await _corrupt_segment(mgr, objects, 3)
        fresh = await _manager(env)
        got = [await _read_alone(fresh, "t", p) for p in range(4)]
        assert got[:3] == [[f"x{p}-0".encode(), f"x{p}-1".encode()] for p in range(3)]
        assert isinstance(got[3], KafkaError) and got[3].code == ErrorCode.CORRUPT_MESSAGE
        # p0 ranged; p1 whole (2 of 4 read) with p2 along, not p3; p3 then GETs it again.
        assert fresh.stats["whole_object_gets"] == 2 and fresh.stats["segments_read_along"] == 1
        assert objects.gets == 3 and len(fresh.cache) == 3
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_a_failed_get_fails_its_readers_retriably_and_the_next_read_gets_again(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr = await _committed_topic(env, 2)
        fresh = await _manager(env)
        objects.fail = True
        got = await _read_together(fresh, "t", range(2))
        assert all(isinstance(e, KafkaError) and e.retriable and e.code == ErrorCode.KAFKA_STORAGE_ERROR
                   for e in got), got
        assert fresh.reader.idle
        objects.fail = False
        assert await _read_together(fresh, "t", range(2)) == [[b"x0-0", b"x0-1"], [b"x1-0", b"x1-1"]]
        await mgr.stop()
        await fresh.stop()
    run(main)


def test_read_ahead_stays_within_a_quarter_of_the_cache(env):
    store, objects, cluster, cfg = env
    cfg.segment_bytes = 200  # one append per object

    async def main():
        mgr, plog = await _owned(env)
        for i in range(20):
            await _append(plog, 2, f"r{i}-")
        fresh = await _manager(env)
        fresh.config.cache_bytes = 4 * plog.segments[0].size * 4  # room for 4 segments ahead
        reader = await fresh.partition_log("t", 0)
        await reader.prefetch(0, 1 << 30)  # (the GETs start only when this task yields)
        assert fresh.reader.reads_under_way == 4 and fresh.reader.ahead_bytes <= fresh.config.cache_bytes // 4
        assert [r.value for r in await read_all(reader)] == [f"r{i}-{j}".encode() for i in range(20) for j in range(2)]
        assert fresh.reader.ahead_bytes == 0
        await mgr.stop()
        await fresh.stop()
    run(main)
