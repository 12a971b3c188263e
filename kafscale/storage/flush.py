"""The topic flusher: one S3 object and one etcd commit for many partitions at once.

Each topic has one flusher per broker. Whatever its partitions have pending when a
flush starts goes into ONE object (``{ns}/{topic}/objects/….kfo``): for every partition,
a complete segment (header, batches, footer), laid end to end, and a directory of them
(segment.py has the layout). Then one
etcd transaction per 64 partitions (etcd's default --max-txn-ops) compares each
partition's owner record and last state and puts its manifest entry (object key and
byte position) and new high watermark. Appends are answered after that commit.

    stage() ─▶ partition pending ─▶ flusher.kick()
                                        │ take pending of every dirty partition, up to
                                        │ segment.bytes per object (round robin)
                                        │ PUT one object
                                        │ commit (per partition: compare owner + state)
                                        └▶ answer / fail each partition's appends

While a flush is under way, what arrives waits for the next one (group commit), so
under load objects grow instead of multiplying: S3 PUTs and etcd transactions per MB
stay flat however many partitions the load is spread over. Only when a whole object's
worth is waiting do more flushes start side by side (flush.concurrency), their
commits still landing in order.

Failures stay per partition: a failed PUT fails every partition in the object, a
failed compare (fenced, or the state moved) fails only that partition. Failing a
partition also fails what is pending behind it and resets its next offset to the
committed high watermark (PartitionLog.fail), so the log never has a gap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafscale.errors import NotLeader
from kafscale.metadata.cluster import CommitConflict, Leader, PartitionState, SegmentRef, TopicRecord
from kafscale.metadata.store import MAX_TXN_OPS
from kafscale.storage import epochs
from kafscale.storage import segment as fmt
from kafscale.storage.log import PartitionLog
from kafscale.storage.pending import Append
from kafscale.storage.producers import ProducerTable

if TYPE_CHECKING:
    from kafscale.storage.engine import LogManager

log = logging.getLogger(__name__)

PARTITIONS_PER_TXN = MAX_TXN_OPS // 2  # two compares and two puts per partition
TXN_BYTES = 512 * 1024  # and well under etcd's default 1.5 MiB request limit
SLOW_S = 0.1  # a PUT or commit slower than this is logged


@dataclass
class _Part:
    """One partition's share of a flush, and what its commit compares against (fixed
    when it is taken: nothing that happens while the flush flies changes it)."""

    plog: PartitionLog
    chunks: list
    waiters: list[Append]
    size: int
    max_ts: int
    leader: Leader | None
    leader_raw: bytes | None
    state: PartitionState
    state_raw: bytes | None
    ref: SegmentRef | None = None
    new_state: PartitionState | None = None
    new_raw: bytes = b""
    outcome: object = field(default=None)


class TopicFlusher:
    """Flushes of one topic's partitions. One flush starts as soon as there is pending
    data and none is under way; more start side by side (up to flush.concurrency) only
    while a whole object's worth (segment.bytes) is pending, i.e. when S3 round trips,
    not arrivals, limit the rate. Flushes commit strictly in the order they were taken,
    each partition's commit comparing the state the flush before it will leave."""

    def __init__(self, mgr: "LogManager", topic: TopicRecord) -> None:
        self.mgr = mgr
        self.rt = mgr.rt
        self.topic = topic
        self.dirty: dict[int, PartitionLog] = {}  # partitions with pending data, in turn order
        self.in_flight = 0
        self._last_commit = None  # event set when the newest flush under way has committed

    @property
    def running(self) -> bool:
        """A flush is under way, or one will take pending data of an owned partition."""
        return self.in_flight > 0 or any(p.pending and p.owned for p in self.dirty.values())

    def pending_bytes(self) -> int:
        """Bytes the dirty partitions have pending, not yet taken by a flush."""
        return sum(p.pending.bytes for p in self.dirty.values())

    def mark_dirty(self, plog: PartitionLog) -> None:
        """``plog`` has pending data: a flush of this topic is to take it (in turn)."""
        self.dirty.setdefault(plog.partition, plog)

    async def kick(self, plog: PartitionLog) -> None:
        """``plog`` has pending data (staging made it dirty): make sure a flush will
        take it. A request stages all its partitions before it kicks, so the first
        flush already carries every one of them."""
        self.dirty.setdefault(plog.partition, plog)
        await self._pump()

    async def _pump(self) -> None:
        config = self.mgr.config
        while self.dirty and (self.in_flight == 0 or self.in_flight < config.flush_concurrency
                              and self.pending_bytes() >= config.segment_bytes):
            parts, orphans = self._take()
            for plog in orphans:
                await plog.fail_pending(NotLeader(f"{plog.name}-{plog.partition}: ownership lost"))
            if not parts:
                continue
            self.in_flight += 1
            before, self._last_commit = self._last_commit, self.rt.event()
            await self.rt.spawn(self._flush, parts, before, self._last_commit)

    def _take(self) -> tuple[list[_Part], list[PartitionLog]]:
        """Pending data of the dirty partitions, up to segment.bytes in all (at least one
        append). Partitions left with data go to the back of the turn order."""
        limit = self.mgr.config.segment_bytes
        parts: list[_Part] = []
        orphans = []
        size = 0
        for p, plog in list(self.dirty.items()):
            if not plog.pending or not plog.owned or plog.mgr.logs.get((plog.name, p)) is not plog:
                del self.dirty[p]
                if plog.pending:
                    orphans.append(plog)
                continue
            chunks, waiters, taken, max_ts = plog.take(limit - size, at_least_one=not parts)
            if not chunks:
                break
            state, state_raw = plog.base_state()
            part = _Part(plog, chunks, waiters, taken, max_ts, plog.leader, plog.leader_raw, state, state_raw)
            base, last = waiters[0].base, waiters[-1].end - 1
            commits = None
            if base == state.hw:
                producers = state.producers
                if any(w.producer for w in waiters):
                    producers = ProducerTable.committed_with(producers, (
                        (w.producer, w.end - w.base, w.base, w.max_ts) for w in waiters if w.producer is not None))
                history = epochs.trimmed(epochs.with_epoch(state.epochs, plog.epoch, base), plog.log_start)
                part.new_state = PartitionState(last + 1, state.log_start, producers, history)
                part.new_raw = part.new_state.encode()
                commits = (part.new_state, part.new_raw)
            plog.flush_started(commits)
            parts.append(part)
            size += taken
            del self.dirty[p]
            if plog.pending:
                self.dirty[p] = plog  # back of the line
        return parts, orphans

    async def _flush(self, parts: list[_Part], before, committed) -> None:
        t0 = self.rt.monotonic()
        try:
            await self._flush_parts(parts, before)
            self.mgr.metrics.flush_seconds.observe(self.rt.monotonic() - t0)
        finally:
            for part in parts:
                part.plog.flush_ended()
            self.in_flight -= 1
            await committed.set()
            for part in parts:
                await part.plog.recover()  # (after a failure, once its last flush has ended)
            await self._pump()

    async def _flush_parts(self, parts: list[_Part], before) -> None:
        mgr = self.mgr
        key = mgr.object_key(self.topic)
        now_ms = int(time.time() * 1000)
        pieces: list = []
        pos = 0
        ready: list[_Part] = []
        for part in parts:
            base, last = part.waiters[0].base, part.waiters[-1].end - 1
            if part.new_state is None or part.leader_raw is None or part.leader is None:
                part.outcome = CommitConflict(f"{part.plog.name}-{part.plog.partition}: "
                                              f"flush at {base} but hw is {part.state.hw}")
                continue
            header, footer = fmt.segment_frame(base, last - base + 1, last, now_ms, part.chunks)
            seg_size = len(header) + part.size + len(footer)
            part.ref = SegmentRef(key, base, last, last - base + 1, seg_size, part.max_ts, part.leader.epoch,
                                  now_ms, pos)
            pieces.append(header)
            pieces += part.chunks
            pieces.append(footer)
            pos += seg_size
            ready.append(part)
        data = b""
        if ready:
            pieces.append(fmt.encode_directory([(p.plog.partition, p.ref.pos, p.ref.size) for p in ready]))
            data = b"".join(pieces)
            try:
                t0 = self.rt.monotonic()
                await self.rt.run_in_thread(mgr.objects.put, key, data)
                took = self.rt.monotonic() - t0
                mgr.metrics.flush_bytes.observe(len(data))
                if took > SLOW_S:
                    log.info("slow S3 PUT: %.0f ms for %d bytes (%s)", took * 1000, len(data), key,
                             extra={"topic": self.topic.name})
                mgr.stats["s3_puts"] += 1
                mgr.stats["objects_flushed"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure fails the appends, never the broker
                for part in ready:
                    part.outcome = exc
                ready = []
        if before is not None:
            await before.wait()  # commits land in the order the flushes were taken
        if ready:
            try:
                t0 = self.rt.monotonic()
                await self._commit(ready)
                took = self.rt.monotonic() - t0
                if took > SLOW_S:
                    log.info("slow etcd commit: %.0f ms for %d partitions of %s", took * 1000, len(ready),
                             self.topic.name, extra={"topic": self.topic.name})
            except Exception as exc:  # noqa: BLE001
                for part in ready:
                    part.outcome = exc
        view = memoryview(data)
        for part in parts:
            if isinstance(part.outcome, BaseException):
                await part.plog.fail(part.waiters, part.outcome)
            else:
                ref = part.ref
                await part.plog.flush_committed(part.waiters, ref, part.new_state, part.new_raw,
                                                view[ref.pos:ref.pos + ref.size])
                mgr.stats["segments_flushed"] += 1
                mgr.stats["flushed_bytes"] += part.size
        await mgr.notify_commit()
        await mgr.backpressure.release(sum(part.size for part in parts))

    async def _commit(self, parts: list[_Part]) -> None:
        """Commit in transactions of PARTITIONS_PER_TXN (run side by side); each part's
        outcome is its new state bytes or the exception that failed it."""
        cluster, name = self.mgr.cluster, self.topic.name
        groups: list[list[_Part]] = [[]]
        size = 0
        for part in parts:
            cost = len(part.new_raw) + len(part.ref.key) + 200
            if groups[-1] and (len(groups[-1]) >= PARTITIONS_PER_TXN or size + cost > TXN_BYTES):
                groups.append([])
                size = 0
            groups[-1].append(part)
            size += cost

        def items(group):
            return [(p.plog.partition, p.leader_raw, p.state_raw, p.ref, p.new_raw) for p in group]

        tasks = [await self.rt.spawn(self.rt.run_in_thread, cluster.commit_segments, name, items(g))
                 for g in groups[1:]]
        results = [await self.rt.run_in_thread(cluster.commit_segments, name, items(groups[0]))]
        results += [await t.join() for t in tasks]
        self.mgr.stats["etcd_commits"] += len(groups)
        for group, outcomes in zip(groups, results):
            for part, outcome in zip(group, outcomes):
                part.outcome = outcome
