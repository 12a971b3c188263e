"""Retention and garbage collection: what keeps a cluster's data from growing forever.

**Retention** (each partition's owner, every ``log.retention.check.interval.ms``), as
Kafka applies it, to whole segments from the oldest on, for topics whose
``cleanup.policy`` includes ``delete``:

- ``retention.ms``: a segment whose largest timestamp is older than that goes, and so
  does every older one (Kafka stops at the first segment that is not expired);
- ``retention.bytes``: the oldest segments go while what is left is still at least
  that big.

The log start then moves past them (ListOffsets earliest follows; a fetch below it gets
OFFSET_OUT_OF_RANGE) and their manifest entries are deleted with it, in one etcd
transaction (PartitionLog.advance_log_start). DeleteRecords moves the log start the same
way.

**Garbage collection** (one broker: the live broker with the lowest id), on the same
interval: an object under the namespace that no manifest entry refers to and that is
older than ``orphan.grace.ms`` is deleted. That covers the segments retention dropped,
the objects the compactor replaced, and the uploads of failed or fenced flushes. A
topic object holds segments of many partitions: it goes only when none of them is
referred to. The grace period is what keeps an upload whose commit is still on its way,
and a reader still holding an old manifest entry, safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kafscale.errors import Fenced, KafkaError
from kafscale.metadata.cluster import SegmentRef

if TYPE_CHECKING:
    from kafscale.storage.engine import LogManager
    from kafscale.storage.log import PartitionLog

log = logging.getLogger(__name__)

__all__ = ["retained_start", "Lifecycle"]

DELETE_BATCH = 1000  # keys per S3 multi-object delete


def retained_start(segments: Sequence[SegmentRef], *, now_ms: int, retention_ms: int, retention_bytes: int,
                   log_start: int, hw: int) -> int:
    """The log start retention asks for: past every segment (in offset order) it expires;
    ``log_start`` when nothing expires. -1 turns either bound off."""
    live = [s for s in segments if s.last >= log_start]
    start = log_start
    if retention_ms >= 0:
        for s in live:
            newest = s.max_ts if s.max_ts >= 0 else s.created_ms
            if newest >= now_ms - retention_ms:
                break
            start = s.last + 1
    if retention_bytes >= 0:
        kept = [s for s in live if s.last >= start]
        total = sum(s.size for s in kept)
        for s in kept:
            if total - s.size < retention_bytes:
                break
            total -= s.size
            start = s.last + 1
    return min(start, hw)


class Lifecycle:
    """The retention and garbage-collection loop of one broker."""

    def __init__(self, mgr: "LogManager") -> None:
        self.mgr = mgr
        self.rt = mgr.rt
        self.config = mgr.config
        # Whether this broker collects garbage (set by the membership: the lowest live id).
        self.collects_garbage: Callable[[], bool] = lambda: True

    async def run(self) -> None:
        while True:
            await self.rt.sleep(self.config.log_retention_check_interval_ms / 1000.0)
            await self.round()

    async def round(self) -> None:
        for plog in self.mgr.owned_partitions():
            try:
                await self.apply_retention(plog)
            except Fenced as exc:
                plog.lose_ownership(str(exc))
            except KafkaError as exc:  # retried next round
                log.warning("%s-%d: retention failed: %s", plog.name, plog.partition, exc, extra=plog.log_context)
            except Exception:  # noqa: BLE001 - one partition's failure must not stop the loop
                log.exception("%s-%d: retention failed", plog.name, plog.partition, extra=plog.log_context)
        if self.collects_garbage():
            try:
                await self.collect_garbage()
            except KafkaError as exc:
                log.warning("garbage collection failed: %s", exc)
            except Exception:  # noqa: BLE001
                log.exception("garbage collection failed")

    async def apply_retention(self, plog: "PartitionLog") -> int:
        """Move ``plog``'s log start past its expired segments; the log start now."""
        topic = plog.topic
        if "delete" not in self.mgr.cleanup_policies(topic):
            return plog.log_start
        start = retained_start(
            plog.segments, now_ms=int(time.time() * 1000), log_start=plog.log_start, hw=plog.hw,
            retention_ms=self.mgr.topic_value(topic, "retention.ms"),
            retention_bytes=self.mgr.topic_value(topic, "retention.bytes"))
        if start <= plog.log_start and not any(s.last < plog.log_start for s in plog.segments):
            return plog.log_start
        before = plog.log_start
        now = await plog.advance_log_start(start)
        if now > before:
            self.mgr.stats["retention_offsets_deleted"] += now - before
            log.info("%s-%d: retention moved the log start %d -> %d", plog.name, plog.partition, before, now,
                     extra=plog.log_context)
        return now

    async def collect_garbage(self) -> tuple[int, int]:
        """Delete the objects no manifest entry refers to that are older than the grace
        period; (deleted, kept). The listing comes first: an object written after it is
        not looked at, and one referred to by then is kept."""
        mgr = self.mgr
        listed = await self.rt.run_in_thread(lambda: list(mgr.objects.list_info(f"{self.config.s3_namespace}/")))
        old_before = int(time.time() * 1000) - self.config.orphan_grace_ms
        candidates = [o.key for o in listed if o.modified_ms < old_before]
        if not candidates:
            return 0, len(listed)
        referenced = await self.rt.run_in_thread(mgr.cluster.referenced_objects)
        orphans = [k for k in candidates if k not in referenced]
        for i in range(0, len(orphans), DELETE_BATCH):
            await self.rt.run_in_thread(mgr.objects.delete_many, orphans[i:i + DELETE_BATCH])
        if orphans:
            mgr.stats["objects_collected"] += len(orphans)
            log.info("garbage collection: deleted %d objects no manifest entry refers to", len(orphans))
        return len(orphans), len(listed) - len(orphans)
