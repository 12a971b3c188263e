"""Compaction: a partition's small committed segments rewritten into Kafscale segments.

A flush writes, per partition, one small segment inside a multi-partition topic object
and one manifest key in etcd. Left alone, keys and small objects pile up with uptime.
Each partition's owner therefore merges runs of consecutive committed segments into
one segment object of Kafscale's own layout (``….kfs`` with its ``….index``,
storage/segment.py), and swaps the manifest entries in one etcd transaction that
compares the owner record and every entry it replaces (Cluster.swap_segments). The
batches are copied byte for byte: same offsets, epochs, timestamps and CRCs.

Merges are levelled, so that every byte is rewritten only a few times::

    level 0: segments as flushed
    level n: a merge of up to MAX_MERGE consecutive segments of level n-1

A run is consecutive, contiguous segments of one level, each older than
``compaction.min.age.ms``, together at most the topic's ``segment.bytes``. It is merged
when it is full (MAX_MERGE segments, or the next one would not fit) and has two
segments at least; or, at a low rate, once its oldest segment has waited STRAGGLER_AGES
times the minimum age. A segment of at least half of ``segment.bytes`` is final. The
manifest then holds about one key per ``segment.bytes`` of retained data, plus a
bounded tail of recent segments.

Old objects are not deleted here: a topic object holds other partitions' segments, and
readers may still hold an old manifest entry. Garbage collection deletes objects no
entry refers to once they are older than the orphan grace period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kafscale.errors import Fenced, KafkaError
from kafscale.metadata.cluster import CommitConflict, SegmentRef
from kafscale.storage import segment as fmt
from kafscale.storage.pending import Backpressure

if TYPE_CHECKING:
    from kafscale.storage.engine import LogManager
    from kafscale.storage.log import PartitionLog

log = logging.getLogger(__name__)

__all__ = ["MAX_MERGE", "STRAGGLER_AGES", "plan", "Compactor"]

MAX_MERGE = 100  # segments one swap replaces (a compare each; etcd allows 128 per transaction)
STRAGGLER_AGES = 10  # a run not yet full is merged once its oldest segment is this many min ages old
CONCURRENCY = 4  # partitions compacted at the same time
MEMORY_BYTES = 128 * 1024 * 1024  # bound of the segment bytes merges under way hold (one always runs)
CACHE_LIMIT = 4 * 1024 * 1024  # a merged segment up to this size goes into the cache (readers near the tail)


def plan(segments: Sequence[SegmentRef], *, now_ms: int, min_age_ms: int, target_bytes: int,
         log_start: int = 0) -> list[SegmentRef] | None:
    """The first run of ``segments`` (in offset order) to merge now, or None."""
    final = max(target_bytes // 2, 1)
    young = now_ms - min_age_ms
    straggler = now_ms - STRAGGLER_AGES * max(min_age_ms, 1)
    run: list[SegmentRef] = []
    size = 0

    def ready(full: bool) -> bool:
        return len(run) >= 2 and (full or min(s.created_ms for s in run) <= straggler)

    for seg in segments:
        fits = (run and seg.level == run[0].level and seg.base == run[-1].last + 1
                and size + seg.size <= target_bytes and len(run) < MAX_MERGE)
        if run and not fits:
            full = len(run) >= MAX_MERGE or (seg.level == run[0].level and seg.base == run[-1].last + 1
                                             and size + seg.size > target_bytes)
            if ready(full):
                return run
            run, size = [], 0
        if seg.last < log_start or seg.size >= final or seg.created_ms > young:
            if ready(False):
                return run
            run, size = [], 0
            continue
        run.append(seg)
        size += seg.size
    return run if ready(len(run) >= MAX_MERGE) else None


class Compactor:
    """The compaction loop of one broker, over the partitions it owns."""

    def __init__(self, mgr: "LogManager") -> None:
        self.mgr = mgr
        self.rt = mgr.rt
        self.config = mgr.config
        self.memory = Backpressure(mgr.rt, MEMORY_BYTES)

    async def run(self) -> None:
        while True:
            await self.rt.sleep(self.config.compaction_interval_ms / 1000.0)
            await self.round()

    async def round(self) -> int:
        """Compact every owned partition as far as its plan goes, CONCURRENCY partitions
        at a time (each swap waits on two PUTs and a transaction); segments replaced."""
        owned = self.mgr.owned_partitions()
        workers = [await self.rt.spawn(self._compact_all, owned[i::CONCURRENCY]) for i in range(CONCURRENCY)]
        return sum([await w.join() for w in workers])

    async def _compact_all(self, plogs: list["PartitionLog"]) -> int:
        replaced = 0
        for plog in plogs:
            try:
                while plog.owned:
                    n = await self.compact_once(plog)
                    if not n:
                        break
                    replaced += n
            except Fenced as exc:
                plog.lose_ownership(str(exc))
            except (KafkaError, ValueError) as exc:  # retried next round; the uploads become orphans
                log.warning("%s-%d: compaction failed: %s", plog.name, plog.partition, exc, extra=plog.log_context)
            except Exception:  # noqa: BLE001 - one partition's failure must not stop the loop
                log.exception("%s-%d: compaction failed", plog.name, plog.partition, extra=plog.log_context)
        return replaced

    def target_bytes(self, plog: "PartitionLog") -> int:
        return self.mgr.topic_value(plog.topic, "segment.bytes")

    async def compact_once(self, plog: "PartitionLog") -> int:
        """Merge the next planned run of ``plog``; the number of segments it replaced."""
        run = plan(plog.segments, now_ms=int(time.time() * 1000), min_age_ms=self.config.compaction_min_age_ms,
                   target_bytes=self.target_bytes(plog), log_start=plog.log_start)
        if not run or plog.leader_raw is None:
            return 0
        mgr, leader_raw = self.mgr, plog.leader_raw
        held = 2 * sum(s.size for s in run)  # (the segments read, and the one written)
        await self.memory.wait_for_room(held, 3600.0)
        self.memory.hold(held)
        try:
            await mgr.reader.load_all(run)  # (one GET per object for what left the cache, side by side)
            bodies = []
            for seg in run:
                data = await mgr.reader.segment_bytes(seg)  # (CRC checked when it was read)
                bodies.append(memoryview(data)[fmt.HEADER_SIZE:len(data) - fmt.FOOTER_SIZE])
            base, last = run[0].base, run[-1].last
            now_ms = int(time.time() * 1000)
            segment, index = await self.rt.run_in_thread(self._encode, base, last, now_ms, bodies)
            del bodies
            stem = mgr.segment_key(plog.topic, plog.partition, base, plog.epoch)
            await self.rt.run_in_thread(mgr.objects.put, stem + ".kfs", segment)
            await self.rt.run_in_thread(mgr.objects.put, stem + ".index", index)
        finally:
            await self.memory.release(held)
        new = SegmentRef(stem, base, last, last - base + 1, len(segment), max(s.max_ts for s in run),
                         max(s.epoch for s in run), now_ms, -1, run[0].level + 1)
        try:
            await self.rt.run_in_thread(mgr.cluster.swap_segments, plog.name, plog.partition, leader_raw, run, new)
        except CommitConflict as exc:
            log.info("%s-%d: compaction lost a race (%s); next round", plog.name, plog.partition, exc,
                     extra=plog.log_context)
            return 0
        plog.replace_segments(run, new)
        if len(segment) <= CACHE_LIMIT:
            mgr.reader.cache.put(new.cache_key, memoryview(segment))  # (readers near the tail go on in it)
        mgr.stats["segments_compacted"] += len(run)
        mgr.stats["compactions"] += 1
        mgr.stats["compacted_bytes"] += len(segment)
        log.debug("%s-%d: %d segments [%d, %d] compacted into %s", plog.name, plog.partition, len(run),
                  base, last, stem, extra=plog.log_context)
        return len(run)

    def _encode(self, base: int, last: int, now_ms: int, bodies: list) -> tuple[bytes, bytes]:
        """The segment and index objects of the concatenated ``bodies`` (on a worker
        thread: CRC and index building are a pass over every byte)."""
        segment = fmt.encode_segment(base, last - base + 1, last, now_ms, bodies)
        body = memoryview(segment)[fmt.HEADER_SIZE:len(segment) - fmt.FOOTER_SIZE]
        return segment, fmt.encode_index(body, self.config.index_interval)
