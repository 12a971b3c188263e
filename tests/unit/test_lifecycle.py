"""Retention, the log start, and garbage collection, against the in-memory twins."""

from __future__ import annotations

import time

import curio

from kafscale.metadata.cluster import SegmentRef
from kafscale.storage.lifecycle import retained_start
from tests.unit.test_compactor import log_with
from tests.unit.test_partition_log import _append, _manager, env, read_all  # noqa: F401 - fixture

NOW = 10_000_000


def seg(base, n=10, size=100, ts=NOW):
    return SegmentRef(f"k{base}", base, base + n - 1, n, size, ts, 1, 0, 0)


SEGS = [seg(0, ts=NOW - 5000), seg(10, ts=NOW - 4000), seg(20, ts=NOW - 3000), seg(30, ts=NOW - 10)]


def start(retention_ms=-1, retention_bytes=-1, log_start=0, hw=40, segments=SEGS):
    return retained_start(segments, now_ms=NOW, retention_ms=retention_ms, retention_bytes=retention_bytes,
                          log_start=log_start, hw=hw)


def test_time_retention_deletes_whole_expired_segments_from_the_oldest():
    assert start() == 0
    assert start(retention_ms=3500) == 20  # 0-9 and 10-19 are older than 3.5 s
    assert start(retention_ms=0) == 40  # everything expired: the log start reaches the hw
    assert start(retention_ms=3500, hw=15) == 15  # never past the high watermark
    # Kafka stops at the first segment that is not expired
    mixed = [seg(0, ts=NOW - 5000), seg(10, ts=NOW), seg(20, ts=NOW - 5000)]
    assert start(retention_ms=1000, segments=mixed, hw=30) == 10


def test_size_retention_keeps_at_least_retention_bytes():
    assert start(retention_bytes=400) == 0
    assert start(retention_bytes=250) == 10  # 400 - 100 = 300 stays above 250; 200 would not
    assert start(retention_bytes=0) == 40
    assert start(retention_bytes=150, retention_ms=4500) == 20  # time takes 0-9, size 10-19


def test_the_log_start_only_moves_forward():
    assert start(retention_ms=3500, log_start=25) == 25
    assert start(retention_bytes=100, log_start=35) == 35


def test_advance_log_start_drops_entries_and_reads_follow(env):
    store, objects, cluster, cfg = env

    async def main():
        mgr, plog = await log_with(env, 5, 2)
        assert await plog.advance_log_start(5) == 5  # inside the third segment (4-5)
        assert [s.base for s in plog.segments] == [4, 6, 8]
        assert len(store.get_prefix("/t/segments/t/0/")) == 3
        assert [r.offset for r in await read_all(plog, 5)][0] == 5
        # another broker sees the same log start and manifest
        view = await (await _manager(env)).partition_log("t", 0)
        assert view.log_start == 5 and [s.base for s in view.segments] == [4, 6, 8]
        assert await plog.advance_log_start(3) == 5  # backwards: nothing changes
        assert await plog.advance_log_start(10) == 10 and plog.segments == []
        await _append(plog, 1, "after-")
        assert [r.offset for r in await read_all(plog, 10)] == [10]
        return True

    assert curio.run(main)


def test_garbage_collection_deletes_only_old_unreferenced_objects(env):
    store, objects, cluster, cfg = env
    cfg.orphan_grace_ms = 1000

    async def main():
        mgr, plog = await log_with(env, 3)
        live = {s.key for s in plog.segments}
        objects.put("kafscale/t/objects/orphan-old.kfo", b"x")
        objects.put("kafscale/t/objects/orphan-young.kfo", b"y")
        old = int(time.time() * 1000) - 5000
        for key in list(live) + ["kafscale/t/objects/orphan-old.kfo"]:
            objects.modified_ms[key] = old
        deleted, kept = await mgr.lifecycle.collect_garbage()
        assert deleted == 1 and "kafscale/t/objects/orphan-old.kfo" not in objects.objects
        assert live <= set(objects.objects) and "kafscale/t/objects/orphan-young.kfo" in objects.objects
        # once retention drops the entries, their objects go too
        await plog.advance_log_start(plog.hw)
        deleted, _ = await mgr.lifecycle.collect_garbage()
        assert deleted == len(live) and not live & set(objects.objects)
        return True

    assert curio.run(main)
