"""Compaction: the plan (pure), and rounds against the in-memory store twins (etcd's
semantics in MemoryStore, S3's in MemoryObjectStore). The integration tests run the
compactor against real etcd and S3 with real clients."""

from __future__ import annotations

import curio
import pytest

from kafscale.errors import Fenced
from kafscale.metadata.cluster import SegmentRef
from kafscale.storage.compactor import MAX_MERGE, STRAGGLER_AGES, plan
from support import kfs_reader
from tests.unit.test_partition_log import _append, _manager, _owned, env, read_all  # noqa: F401 - fixture

NOW = 10_000_000
MIN_AGE = 1000


def seg(base, n=10, size=100, age=5000, level=0, pos=0):
    return SegmentRef(f"k{base}", base, base + n - 1, n, size, 0, 1, NOW - age, pos, level)


def run(segments, target=10_000, log_start=0):
    return plan(segments, now_ms=NOW, min_age_ms=MIN_AGE, target_bytes=target, log_start=log_start)


def test_a_full_run_of_old_small_segments_is_merged():
    segs = [seg(i * 10) for i in range(MAX_MERGE + 5)]
    got = run(segs, target=1 << 30)
    assert got == segs[:MAX_MERGE]  # at most MAX_MERGE per swap (one etcd transaction)
    # a run that reaches the target size is full too
    assert run(segs, target=1000) == segs[:10]


def test_young_segments_are_left_alone():
    segs = [seg(i * 10, age=10) for i in range(50)]
    assert run(segs) is None
    # old ones before the young are merged once they have waited (stragglers)
    old = [seg(i * 10, age=MIN_AGE * STRAGGLER_AGES + 1) for i in range(3)]
    assert run(old + [seg(30, age=10)]) == old
    assert run([seg(i * 10, age=MIN_AGE + 1) for i in range(3)] + [seg(30, age=10)]) is None


def test_runs_are_one_level_contiguous_and_above_the_log_start():
    l1 = [seg(i * 10, level=1, age=MIN_AGE * STRAGGLER_AGES + 1) for i in range(3)]
    l0 = [seg(30 + i * 10, age=MIN_AGE * STRAGGLER_AGES + 1) for i in range(4)]
    assert run(l1 + l0) == l1
    assert run(l1[:1] + l0) == l0  # a single segment of its level is no run
    gap = [seg(base, age=MIN_AGE * STRAGGLER_AGES + 1) for base in (0, 10, 25, 35)]  # a hole: 20-24
    assert run(gap) == gap[:2]
    assert run(gap, log_start=25) == gap[2:]  # segments wholly below the log start are retention's
    # a segment of at least half the target is final
    assert run([seg(0, size=600), seg(10, size=100), seg(20, size=100)], target=1000) is None


async def log_with(env, batches: int, records: int = 1):
    """A manager owning topic "t" (one partition) with ``batches`` committed appends of
    ``records`` records ("r{i}-{j}"), each its own flush and segment; then a pause, so
    that every segment is older than the compactor's straggler age."""
    mgr, plog = await _owned(env)
    for i in range(batches):
        await _append(plog, records, f"r{i}-")
    await curio.sleep(0.05)
    return mgr, plog


def _count_keys(store, prefix):
    return len(store.get_prefix(prefix))


def test_compaction_rewrites_many_flushes_into_one_kafscale_segment(env):
    store, objects, cluster, cfg = env
    cfg.compaction_min_age_ms = 0
    cfg.log_segment_bytes = 1 << 20

    async def main():
        mgr, plog = await log_with(env, 30, 3)
        before = await read_all(plog)
        raw_before = [bytes((await mgr.reader.segment_bytes(s))) for s in plog.segments]
        assert len(plog.segments) == 30 and _count_keys(store, "/t/segments/") == 30
        # stragglers: with min age 0 a run of every segment is ready at once
        assert await mgr.compactor.round() == 30
        assert len(plog.segments) == 1 and _count_keys(store, "/t/segments/") == 1
        new = plog.segments[0]
        assert (new.base, new.last, new.pos, new.level) == (0, 89, -1, 1)
        assert [(r.offset, r.value) for r in await read_all(plog)] == [(r.offset, r.value) for r in before]
        # a fresh view (another broker) reads it from etcd and S3 alike
        other = await _manager(env)
        view = await other.partition_log("t", 0)
        assert [(r.offset, r.value) for r in await read_all(view)] == [(r.offset, r.value) for r in before]
        # the objects parse with the independent reader, and hold the same batches byte for byte
        segment = kfs_reader.read_segment(objects.objects[new.key + ".kfs"])
        index = kfs_reader.read_index(objects.objects[new.key + ".index"])
        kfs_reader.check_index_against_segment(index, segment)
        body = b"".join(b[32:-16] for b in raw_before)
        assert objects.objects[new.key + ".kfs"][32:-16] == body
        assert segment["base_offset"] == 0 and segment["last_offset"] == 89
        # appends go on after it
        await _append(plog, 2, "after-")
        assert [r.value for r in (await read_all(plog))[-2:]] == [b"after-0", b"after-1"]
        return True

    assert curio.run(main)


def test_a_fenced_compactor_changes_nothing(env):
    store, objects, cluster, cfg = env
    cfg.compaction_min_age_ms = 0

    async def main():
        mgr, plog = await log_with(env, 5)
        keys = dict(store.get_prefix("/t/segments/"))
        plog.leader_raw = b'{"broker":9,"epoch":99,"tid":"x"}'  # as if another owner took over
        with pytest.raises(Fenced):
            await mgr.compactor.compact_once(plog)
        assert dict(store.get_prefix("/t/segments/")) == keys
        assert len(plog.segments) == 5
        return True

    assert curio.run(main)


def test_a_read_that_spans_a_swap_has_no_gap_and_no_duplicate(env):
    """A read takes the rest of one segment, then goes on into the next ones. When the
    compactor swaps the segments in between, the read goes on by offset in the new one."""
    store, objects, cluster, cfg = env
    cfg.compaction_min_age_ms = 0

    async def main():
        mgr, plog = await log_with(env, 10, 2)
        cfg.log_segment_bytes = sum(s.size for s in plog.segments[:5])  # merge the first five only
        reader = mgr.reader
        original = reader.read_segment_range
        swapped = []

        async def read_then_swap(seg, offset, max_bytes, allow_oversize=True):
            out = await original(seg, offset, max_bytes, allow_oversize)
            if not swapped:
                swapped.append(await mgr.compactor.compact_once(plog))
            return out

        reader.read_segment_range = read_then_swap
        res = await plog.read(5, 1 << 20)
        reader.read_segment_range = original
        assert swapped == [5] and [(s.base, s.last) for s in plog.segments[:2]] == [(0, 9), (10, 11)]
        from kafscale.protocol.records import decode_records
        offsets = [r.offset for r in decode_records(res.records) if r.offset >= 5]
        assert offsets == list(range(5, 20))
        return True

    assert curio.run(main)
