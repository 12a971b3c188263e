"""One partition's log: offset assignment, the flush pipeline, and committed reads.

Write path (DESIGN.md section 2)::

    stage(batches) ──▶ rewrite base offsets ──▶ pending buffer ──▶ the topic's flusher
                                                                   (storage/flush.py)

The topic flusher takes the pending appends of all the topic's partitions into one
object and one etcd commit (per 64 partitions), through this class's flush interface
(``take``, ``flush_started``, ``flush_committed`` or ``fail``, ``flush_ended``).
Whatever arrives while a flush flies waits for the next one (group commit); the
flush.interval.ms timer is a safety net behind that.

On any failure of a flush the appends it covers AND everything pending behind it are
failed with a retriable error, and the partition *recovers* before it takes another
append: it waits for the flushes still under way (they land, or fail their compare),
then sets the next offset and the idempotent-producer table to what etcd holds, so
the log never has a gap (nothing uncommitted was ever acknowledged or served) and a
retried batch is told apart from a new one. A commit whose outcome is unknown (etcd
went away mid-call) is answered REQUEST_TIMED_OUT ("possibly persisted") and makes the
recovery re-read the partition from etcd.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafscale import _fast
from kafscale.errors import ErrorCode, Fenced, KafkaError, NotLeader, OffsetOutOfRange, StorageError
from kafscale.metadata.cluster import (CommitConflict, Leader, PartitionState, SegmentRef, TopicRecord,
                                      decode_log_start)
from kafscale.metadata.store import StoreUnavailable
from kafscale.storage import segment as fmt
from kafscale.storage.pending import Append, PendingAppends
from kafscale.storage.producers import ProducerTable

if TYPE_CHECKING:
    from kafscale.storage.engine import LogManager

log = logging.getLogger(__name__)

# A read fetches this much beyond what it returns ahead into the cache, for the next
# reads of a sequential consumer (bounded in all by SegmentReader.read_ahead).
READ_AHEAD_BYTES = 4 * 1024 * 1024
MAX_PREFETCH_SEGMENTS = 128


# For this long after a broker takes a partition over from another owner, an idempotent
# batch that skips sequence numbers is answered with a retriable error (ProducerTable.check).
SEQUENCE_GAP_GRACE_S = 15.0
# Manifest entries one log-start transaction drops (two compares more than that; etcd
# allows 128 per transaction).
MAX_DROP = 100


@dataclass
class ReadResult:
    records: memoryview | bytes | None
    hw: int
    log_start: int


class PartitionLog:
    def __init__(self, mgr: "LogManager", topic: TopicRecord, partition: int) -> None:
        self.mgr = mgr
        self.rt = mgr.rt
        self.topic = topic
        self.name = topic.name
        self.partition = partition
        self.log_context = {"topic": self.name, "partition": partition}  # extra= of its log lines
        self.leader: Leader | None = None
        self.leader_raw: bytes | None = None
        self.state = PartitionState()
        self.state_raw: bytes | None = None
        self.start_raw: bytes | None = None  # the log start key (retention, DeleteRecords)
        self._start = 0
        self.segments: list[SegmentRef] = []
        self._bases: list[int] = []
        self.owned = False
        self.was_owner = False  # an ex-owner never turns into a follower view (see engine)
        self.next_offset = 0
        self.pending = PendingAppends()  # staged, not yet taken by a flush
        self.producers = ProducerTable()  # the committed table plus the batches staged since
        self._producer_waiters: dict[tuple[int, int], Append] = {}
        self._in_flight = 0  # flushes under way that carry appends of this partition
        # A flush failed: appends are refused until the flushes under way have settled
        # and the next offset and producer table are re-derived (see recover).
        self._recovering = False
        self._reload = False  # ... from etcd, since a commit's outcome is not known
        self.took_over_at = -1e9  # when this broker took the partition over from another owner
        self._reloading = False
        # The state the last flush under way will commit (None when none is): the next
        # flush of this partition commits against it, since it lands right after.
        self._tail: tuple[PartitionState, bytes] | None = None
        self.flusher = mgr.flusher(topic)

    @property
    def recovering(self) -> bool:
        """A flush failed and appends are refused until the partition has recovered."""
        return self._recovering

    @property
    def flushing(self) -> bool:
        """A flush carrying appends of this partition is under way."""
        return self._in_flight > 0

    @property
    def frozen(self) -> bool:
        """An ex-owner's view: frozen at its last commit (it takes no more etcd events)."""
        return self.was_owner and not self.owned and not self.flushing

    def __repr__(self) -> str:
        return f"PartitionLog({self.name}-{self.partition}, hw={self.hw}, epoch={self.epoch})"

    # -- state ------------------------------------------------------------------------

    @property
    def hw(self) -> int:
        return self.state.hw

    @property
    def log_start(self) -> int:
        return max(self.state.log_start, self._start)

    @property
    def epoch(self) -> int:
        return self.leader.epoch if self.leader else 0

    def _install(self, snap) -> None:
        self.leader, self.leader_raw = snap.leader, snap.leader_raw
        self.state, self.state_raw = snap.state, snap.state_raw
        self.start_raw, self._start = snap.start_raw, decode_log_start(snap.start_raw)
        self.segments = sorted(snap.segments, key=lambda s: s.base)
        self._bases = [s.base for s in self.segments]
        self.producers = ProducerTable(self.state.producers)

    async def load(self) -> None:
        snap = await self.rt.run_in_thread(self.mgr.cluster.load_partition, self.name, self.partition)
        self._install(snap)

    async def claim(self, lease: int | None) -> None:
        """Become the owner with the next epoch, then load the partition.

        Loading after the claim matters: once the owner record is ours, no earlier
        owner's commit can land (each compares the owner record), so the state read
        now is final.
        """
        leader, raw = await self.rt.run_in_thread(
            self.mgr.cluster.claim_partition, self.topic, self.partition, self.mgr.broker_id, lease)
        await self.load()
        self.leader, self.leader_raw = leader, raw
        self.next_offset = self.state.hw
        self.owned = self.was_owner = True
        # (epoch 1: the partition never had another owner, so nothing is in flight elsewhere)
        self.took_over_at = self.rt.monotonic() if leader.epoch > 1 else -1e9
        log.info("%s-%d: owner at epoch %d, hw %d", self.name, self.partition, leader.epoch, self.hw,
                 extra=self.log_context)

    async def release(self) -> None:
        """Hand the partition over: stop taking appends, finish the flushes, drop the owner record."""
        if not self.owned:
            return
        self.owned = False  # new appends get NOT_LEADER_OR_FOLLOWER from here on
        while self.flushing:
            await self.rt.sleep(0.005)
        await self.fail_pending(Fenced("partition handed over"))
        if self.leader_raw is not None:
            try:
                await self.rt.run_in_thread(self.mgr.cluster.release_partition, self.name,
                                            self.partition, self.leader_raw)
            except KafkaError as exc:
                log.info("%s-%d: release failed (the lease will expire): %s", self.name, self.partition, exc,
                         extra=self.log_context)
        log.info("%s-%d: handed over at hw %d", self.name, self.partition, self.hw, extra=self.log_context)

    async def readopt(self) -> bool:
        """Take up ownership again after a failure made us unsure of it (e.g. etcd was
        unreachable mid-commit), if etcd still holds exactly our owner record."""
        mine = self.leader_raw
        if self.owned or mine is None or self.flushing or self._recovering:
            return self.owned
        await self.load()
        leader = self.leader
        if self.leader_raw != mine or leader is None or leader.broker != self.mgr.broker_id \
                or leader.tid != self.topic.id:
            return False
        self.next_offset = self.state.hw
        self.owned = self.was_owner = True
        log.info("%s-%d: owner again at epoch %d, hw %d", self.name, self.partition, self.epoch, self.hw,
                 extra=self.log_context)
        return True

    def lose_ownership(self, why: str) -> None:
        """Our owner record is gone (lease expired, deleted, taken): stop committing."""
        if self.owned:
            log.warning("%s-%d: lost ownership: %s", self.name, self.partition, why, extra=self.log_context)
        self.owned = False

    # -- follower updates (from the etcd watch) ---------------------------------------

    def apply_state(self, raw: bytes | None) -> bool:
        """A committed state seen in etcd; True if it moved the high watermark."""
        if self.was_owner or raw is None:
            return False
        state = PartitionState.decode(raw)
        if state.hw < self.state.hw:
            return False  # an older event than what we loaded
        moved = state.hw != self.state.hw
        self.state, self.state_raw = state, raw
        return moved

    def apply_start(self, raw: bytes | None) -> bool:
        """A log start seen in etcd (followers); True if it moved."""
        if self.was_owner or raw is None:
            return False
        start = decode_log_start(raw)
        if start <= self._start:
            return False
        self.start_raw, self._start = raw, start
        return True

    async def advance_log_start(self, offset: int) -> int:
        """Move the log start to ``offset`` (at most the high watermark) and drop the
        manifest entries wholly below it, persisted in etcd before this returns (in
        transactions of at most MAX_DROP entries); the log start now."""
        if not self.owned or self.leader_raw is None:
            raise NotLeader(f"{self.name}-{self.partition} is not owned by this broker")
        offset = min(offset, self.hw)
        while True:
            below = [s for s in self.segments if s.last < offset]
            drop = below[:MAX_DROP]
            target = offset if len(below) <= MAX_DROP else self.segments[MAX_DROP].base
            if target <= self.log_start and not drop:
                return self.log_start
            target = max(target, self.log_start)
            try:
                raw = await self.rt.run_in_thread(self.mgr.cluster.advance_log_start, self.name, self.partition,
                                                  self.leader_raw, self.start_raw, target, drop)
            except CommitConflict:
                await self._reload_segments()  # (the compactor replaced an entry: read them again)
                continue
            self.start_raw, self._start = raw, target
            gone = {s.base for s in drop}
            self.segments = [s for s in self.segments if s.base not in gone]
            self._bases = [s.base for s in self.segments]
            if target >= offset:
                return self.log_start

    async def _reload_segments(self) -> None:
        snap = await self.rt.run_in_thread(self.mgr.cluster.load_partition, self.name, self.partition)
        if snap.leader_raw != self.leader_raw:
            self.lose_ownership("owner record changed")
            raise NotLeader(f"{self.name}-{self.partition} is not owned by this broker")
        self.start_raw, self._start = snap.start_raw, decode_log_start(snap.start_raw)
        read = sorted(snap.segments, key=lambda s: s.base)
        after = read[-1].last + 1 if read else 0  # (flushes that committed since the read)
        self.segments = read + [s for s in self.segments if s.base >= after]
        self._bases = [s.base for s in self.segments]

    def replace_segments(self, old: list[SegmentRef], new: SegmentRef) -> None:
        """The compactor swapped the consecutive entries ``old`` for ``new`` (the same
        batches) in etcd. New lists: a read iterating the old ones carries on."""
        gone = {s.base for s in old} | {new.base}  # (idempotent: a reload may have brought ``new``)
        segments = [s for s in self.segments if s.base not in gone]
        i = bisect.bisect_left([s.base for s in segments], new.base)
        segments.insert(i, new)
        self.segments = segments
        self._bases = [s.base for s in segments]

    def apply_segment(self, ref: SegmentRef | None, base: int) -> None:
        if self.was_owner:
            return
        i = bisect.bisect_left(self._bases, base)
        present = i < len(self._bases) and self._bases[i] == base
        if ref is None:
            if present:
                del self._bases[i]
                del self.segments[i]
        elif present:
            self.segments[i] = ref
        else:
            self._bases.insert(i, base)
            self.segments.insert(i, ref)

    # -- write path -------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self.pending.bytes

    async def append(self, batches: bytearray, n_offsets: int, max_ts: int, timeout: float,
                     producer: tuple[int, int, int] | None = None) -> int:
        """Assign offsets to validated ``batches``; return the base offset once committed.

        ``producer`` (id, epoch, base sequence) marks an idempotent batch: a retry of a
        batch already appended gets the original offset, a gap in sequences is refused.
        """
        await self.mgr.wait_for_room(len(batches), timeout)
        staged = self.stage(batches, n_offsets, max_ts, producer)
        await self.kick()
        return await self.committed(staged, timeout)

    def stage(self, batches: bytearray, n_offsets: int, max_ts: int,
              producer: tuple[int, int, int] | None = None) -> "Append | int":
        """The synchronous half of an append: check, assign offsets, buffer. Returns what
        ``committed`` waits on. Callers stage the partitions of a request in request order
        without awaiting in between, which keeps appends in arrival order."""
        if not self.owned:
            raise NotLeader(f"{self.name}-{self.partition} is not owned by this broker")
        if self._recovering:
            # Until the flushes under way settle, neither the next offset nor which
            # idempotent batches landed is known: an OUT_OF_ORDER_SEQUENCE answer now
            # would make the client renumber (and so duplicate) batches that did land.
            raise StorageError(f"{self.name}-{self.partition}: recovering from a failed flush; retry")
        if producer is not None:
            duplicate = self._check_sequence(producer, n_offsets)
            if duplicate is not None:
                return self._duplicate_of(duplicate)
        base = self.next_offset
        _fast.rewrite_base_offsets(batches, base, self.epoch)
        self.next_offset = base + n_offsets
        append = Append(self.rt.event(), base, base + n_offsets, producer, max_ts)
        if producer is not None:
            self.producers.remember(producer, n_offsets, base, max_ts)
            self._producer_waiters[(producer[0], producer[2])] = append
        self.pending.add(batches, append, max_ts, self.rt.monotonic())
        self.mgr.backpressure.hold(len(batches))
        self.flusher.mark_dirty(self)
        return append

    async def committed(self, staged: "Append | int", timeout: float) -> int:
        """The base offset of a staged append, once it is committed."""
        if isinstance(staged, int):
            return staged
        if not await self.rt.wait(staged.event, timeout):
            raise KafkaError("produce not committed within its timeout", ErrorCode.REQUEST_TIMED_OUT)
        if staged.error is not None:
            raise staged.error
        return staged.base

    def _check_sequence(self, producer: tuple[int, int, int], count: int) -> int | None:
        """Validate an idempotent batch; return the base offset of a duplicate, else None."""
        after_takeover = self.rt.monotonic() - self.took_over_at < SEQUENCE_GAP_GRACE_S
        return self.producers.check(producer, count, after_takeover=after_takeover)

    def _duplicate_of(self, base: int) -> "Append | int":
        """What a retried batch waits on: its committed offset, or its pending append."""
        if base < self.state.hw:
            return base
        for waiter in self._producer_waiters.values():
            if waiter.base == base:
                return waiter
        raise StorageError("duplicate of a batch that was not committed; retry")

    async def kick(self) -> None:
        """Make sure a flush of this topic will take what is pending here."""
        if self.pending:
            await self.flusher.kick(self)

    # -- the flush interface (storage/flush.py) ----------------------------------------

    def take(self, limit: int, at_least_one: bool) -> tuple[list[bytearray], list[Append], int, int]:
        """Pending appends up to ``limit`` bytes, for a flush: (chunks, their appends,
        bytes, max timestamp). With ``at_least_one`` the first append is taken whatever
        its size. Their bytes stay held (Backpressure) until the flush ends."""
        return self.pending.take(limit, at_least_one, self.rt.monotonic())

    def flush_started(self, commits: tuple[PartitionState, bytes] | None) -> None:
        """A flush took appends of this partition; ``commits`` is the state it will commit
        (the next flush of this partition commits against it, since it lands right after)."""
        self._in_flight += 1
        if commits is not None:
            self._tail = commits

    def flush_ended(self) -> None:
        """A flush that carried appends of this partition is over (committed or failed);
        the flusher calls ``recover`` next."""
        self._in_flight -= 1

    def base_state(self) -> tuple[PartitionState, bytes | None]:
        """What the next flush of this partition commits against."""
        return self._tail if self._tail is not None else (self.state, self.state_raw)

    async def flush_committed(self, waiters: list[Append], ref: SegmentRef, state: PartitionState,
                              state_raw: bytes, segment: memoryview) -> None:
        """A flush committed ``ref``: move the high watermark and answer its appends."""
        self.state, self.state_raw = state, state_raw
        if self._tail is not None and self._tail[1] is state_raw:
            self._tail = None  # (the last flush under way landed)
        self.segments.append(ref)
        self._bases.append(ref.base)
        self.mgr.reader.cache.put(ref.cache_key, segment)
        for w in waiters:
            if w.producer is not None:
                self._producer_waiters.pop((w.producer[0], w.producer[2]), None)
            await w.event.set()

    async def fail_pending(self, exc: Exception) -> None:
        """Fail whatever is pending here (ownership is gone) and recover as after a
        failed flush."""
        if self.pending:
            await self.fail([], exc)

    async def fail(self, waiters: list[Append], exc: Exception) -> None:
        """A flush carrying ``waiters`` failed with ``exc``: fail them and everything
        pending behind them, and recover once no flush of this partition is under way."""
        first = not self._recovering
        if isinstance(exc, Fenced):
            error: KafkaError = NotLeader(str(exc))
            self.owned = False
            log.warning("%s-%d: fenced: %s", self.name, self.partition, exc, extra=self.log_context)
        elif isinstance(exc, StoreUnavailable):
            # The commit may have landed: say so ("possibly persisted"), so that clients
            # retry the same batch and idempotent ones get the offset it landed at.
            error = KafkaError(f"metadata store did not answer; the append may be committed: {exc}",
                               ErrorCode.REQUEST_TIMED_OUT)
            self._reload = True
            log.warning("%s-%d: commit outcome unknown: %s", self.name, self.partition, exc, extra=self.log_context)
        elif isinstance(exc, KafkaError):
            error = exc if exc.retriable else StorageError(str(exc))
            # A compare that failed first (not behind another failure) means the state
            # moved under us, e.g. an earlier commit whose answer was lost did land.
            self._reload |= first and isinstance(exc, CommitConflict)
            if first:
                log.warning("%s-%d: flush failed: %s", self.name, self.partition, exc, extra=self.log_context)
        else:
            error = StorageError(f"flush failed: {type(exc).__name__}: {exc}")
            log.exception("%s-%d: unexpected flush failure", self.name, self.partition, extra=self.log_context)
        self._recovering = True
        # Everything behind the failed flush had offsets assigned after it: fail it too.
        behind, size = self.pending.drain()
        waiters = waiters + behind
        self._tail = None  # flushes still under way behind this one fail their compare
        for w in waiters:
            if w.producer is not None:
                self._producer_waiters.pop((w.producer[0], w.producer[2]), None)
            w.error = error
            await w.event.set()
        await self.mgr.backpressure.release(size)
        if not self.flushing:
            await self.recover()

    async def recover(self) -> None:
        """After a failed flush, once no flush of this partition is under way any more
        (a no-op before that, or when nothing failed): take the next offset and the
        producer table from the committed state (re-read from etcd if a commit's outcome
        was unknown), then accept appends again."""
        if not self._recovering or self.flushing or self._reloading:
            return
        if self._reload:
            self._reloading = True
            try:
                await self.load()
                if self.leader is None or self.leader.broker != self.mgr.broker_id or \
                        self.leader.tid != self.topic.id:
                    self.owned = False
            except Exception as exc:  # noqa: BLE001 - cannot prove ownership; the manager re-adopts
                log.info("%s-%d: reload after a failed commit failed: %s", self.name, self.partition, exc,
                         extra=self.log_context)
                self.owned = False
            finally:
                self._reloading = False
        self.producers = ProducerTable(self.state.producers)
        self.next_offset = self.state.hw
        self._recovering = self._reload = False
        log.info("%s-%d: recovered at hw %d", self.name, self.partition, self.hw, extra=self.log_context)

    # -- read path --------------------------------------------------------------------

    def segment_for(self, offset: int) -> SegmentRef | None:
        i = bisect.bisect_right(self._bases, offset) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg if seg.base <= offset <= seg.last else None

    async def read(self, offset: int, max_bytes: int) -> ReadResult:
        """Committed batches from ``offset`` (whole batches, at least one), up to ``max_bytes``."""
        hw, start = self.state.hw, self.log_start
        if offset < start or offset > hw:
            raise OffsetOutOfRange(f"offset {offset} outside [{start}, {hw}]")
        if offset == hw:
            return ReadResult(None, hw, start)
        seg = self.segment_for(offset)
        if seg is None:
            # Offsets below the first manifest entry (retention moved log start) or a
            # manifest hole can only mean our view is stale: re-read it.
            await self.load()
            seg = self.segment_for(offset)
            if seg is None:
                raise OffsetOutOfRange(f"offset {offset} is in no committed segment")
        # Segments are as small as one flush, so a read continues into the following
        # segments up to max_bytes, but once it has data only through segments that are
        # cached or already being fetched. What it will need, and READ_AHEAD_BYTES
        # more for the next reads of a sequential consumer, is fetched first, side by
        # side (prefetch).
        await self.prefetch(offset, max_bytes + READ_AHEAD_BYTES)
        records, whole = await self.mgr.reader.read_segment_range(seg, offset, max_bytes)
        chunks, size = [records], len(records)
        # Only a read that took the rest of a segment may go on into the next one, found
        # by offset: the compactor may have merged the segments meanwhile.
        expected = seg.last + 1
        while whole and size < max_bytes and expected < hw:
            nxt = self.segment_for(expected)
            if nxt is None or not (self.mgr.reader.is_cached(nxt) or self.mgr.reader.is_loading(nxt)):
                break
            more, whole = await self.mgr.reader.read_segment_range(nxt, expected, max_bytes - size,
                                                                   allow_oversize=False)
            if not len(more):
                break
            chunks.append(more)
            size += len(more)
            expected = nxt.last + 1
        return ReadResult(chunks[0] if len(chunks) == 1 else b"".join(chunks), hw, start)

    async def prefetch(self, offset: int, want: int) -> None:
        """Start fetching the uncached segments that hold the ``want`` bytes from
        ``offset`` on (a sequential consumer's next reads), side by side."""
        self.mgr.reader.note_read(self.topic, self.partition)
        i = bisect.bisect_right(self._bases, offset) - 1
        if i < 0 or offset >= self.state.hw:
            return
        size = 0
        whole_objects = self.mgr.reader.reads_whole_topic(self.topic)
        for seg in self.segments[i:i + MAX_PREFETCH_SEGMENTS]:
            if size >= want or seg.base >= self.state.hw:
                break
            if not await self.mgr.reader.read_ahead(seg, whole_objects):
                break
            size += seg.size

    async def offset_for_timestamp(self, ts: int) -> tuple[int, int]:
        """(offset, timestamp) of the first record with timestamp >= ts, or (-1, -1)."""
        from kafscale.protocol.records import decode_batch_records

        for seg in self.segments:
            if seg.max_ts < ts or seg.last < self.log_start:
                continue
            data = await self.mgr.reader.segment_bytes(seg)
            body_end = len(data) - fmt.FOOTER_SIZE
            view = memoryview(data)[:body_end]
            pos = _fast.find_timestamp(view, fmt.HEADER_SIZE, ts)
            while pos >= 0:
                begin, end = _fast.scan_batches(view, pos, 0, 1)
                for rec in decode_batch_records(view[begin:end]):
                    if rec.timestamp >= ts and rec.offset >= self.log_start:
                        return rec.offset, rec.timestamp
                pos = _fast.find_timestamp(view, end, ts) if end < body_end else -1
        return -1, -1

    def max_timestamp(self) -> tuple[int, int]:
        """(offset, timestamp) of the segment holding the largest timestamp (ListOffsets -3)."""
        best: SegmentRef | None = None
        for seg in self.segments:
            if best is None or seg.max_ts > best.max_ts:
                best = seg
        if best is None:
            return -1, -1
        return best.last, best.max_ts

    async def flush_timer_tick(self) -> None:
        """Called by the manager's timer: flush data that waited flush.interval.ms."""
        interval = self.mgr.config.flush_interval_ms / 1000.0
        if self.pending and not self.flushing and \
                self.rt.monotonic() - self.pending.since >= interval:
            await self.kick()


def nonce() -> str:
    return os.urandom(4).hex()
