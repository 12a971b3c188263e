"""The log manager: topics, partition logs, the segment cache and background work.

It owns one ``PartitionLog`` per partition this broker has touched, the topic table
(kept fresh by an etcd watch), the byte-bounded segment cache with de-duplicated
S3 reads, the commit notification that wakes long-polling fetches, the flush timer,
and the worker that deletes a deleted topic's objects in the background.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from kafscale import _fast, topic_configs
from kafscale.config import Config
from kafscale.errors import (ErrorCode, InvalidPartitions, InvalidTopic, KafkaError, NotLeader, StorageError,
                             TopicExists, UnknownTopicOrPartition)
from kafscale.metadata.cluster import Cluster, Leader, SegmentRef, TopicRecord
from kafscale.runtime import Runtime
from kafscale.storage import segment as fmt
from kafscale.storage.cache import SegmentCache
from kafscale.storage.flush import TopicFlusher
from kafscale.storage.log import WHOLE_READ_LIMIT, PartitionLog, nonce
from kafscale.storage.objectstore import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

class _Load:
    """A GET of one segment under way; readers of the segment wait on ``event``."""

    __slots__ = ("seg", "event", "data", "error", "ahead")

    def __init__(self, seg: SegmentRef, event) -> None:
        self.seg = seg
        self.event = event
        self.data: memoryview | None = None
        self.error: Exception | None = None
        self.ahead = False  # counted in LogManager._ahead_bytes


# Segments of one object wanted together are read with one GET when no more than this
# lies between them (it is read and dropped).
COALESCE_GAP = 256 * 1024

# A topic whose partitions are read at the same time (at least half of them, and two,
# within ACTIVE_READ_S: one consumer reading it all, or a group spread over it) has its
# objects read whole and every segment in them cached: its other partitions' readers
# are about to want them. One GET of a whole object costs the S3 server about half the
# CPU of ranged GETs of its pieces at unaligned offsets (SeaweedFS, measured: 1.0 vs
# 1.5-3.0 CPU s per GB), and it halves or better the number of GETs.
ACTIVE_READ_S = 5.0


def _verified(view: memoryview, lo: int, segs: list[SegmentRef]) -> list[tuple[memoryview | None, ValueError | None]]:
    """Each segment's bytes out of ``view`` (which starts at object position ``lo``),
    its CRC checked: (bytes, None), or (None, the problem)."""
    out: list[tuple[memoryview | None, ValueError | None]] = []
    for seg in segs:
        piece = view[seg.pos - lo:seg.pos - lo + seg.size] if seg.pos >= 0 else view
        try:
            if len(piece) != seg.size and seg.pos >= 0:
                raise fmt.CorruptSegment(f"object ends before the segment's {seg.size} bytes")
            fmt.parse_segment(piece, verify=True)
            out.append((piece, None))
        except ValueError as exc:
            out.append((None, exc))
    return out


def _read_whole(seg: SegmentRef) -> bool:
    """Whether a segment is read (and cached) whole rather than through its index: a
    segment inside a topic object always (it has no index object), an older
    one-object segment up to WHOLE_READ_LIMIT."""
    return seg.pos >= 0 or seg.size <= WHOLE_READ_LIMIT


def validate_topic_name(name: str) -> None:
    if not name or name in (".", "..") or not _TOPIC_RE.match(name):
        raise InvalidTopic(f"invalid topic name {name!r}")


class LogManager:
    def __init__(self, rt: Runtime, config: Config, cluster: Cluster, objects: ObjectStore) -> None:
        self.rt = rt
        self.config = config
        self.cluster = cluster
        self.objects = objects
        self.broker_id = config.broker_id
        self.cache = SegmentCache(config.cache_bytes)
        self.topics: dict[str, TopicRecord] = {}
        self._topics_generation = 0
        self._topics_read_at = -1.0
        self.topics_by_id: dict[bytes, TopicRecord] = {}
        self.logs: dict[tuple[str, int], PartitionLog] = {}
        self.flushers: dict[str, TopicFlusher] = {}  # by topic id
        self.pending_bytes = 0
        self.stats: Counter[str] = Counter()
        self._inflight_reads: dict[str, Any] = {}
        self._ahead_bytes = 0  # read-ahead GETs under way (bounded: see read_ahead)
        self._object_queue: dict[str, list[_Load]] = {}  # segments waiting for their object's GET
        self._whole_objects: set[str] = set()  # objects in _object_queue to be read whole
        self._reads: dict[str, dict[int, float]] = {}  # topic id -> partition -> when last read
        self._reads_whole: dict[str, tuple[float, bool, int]] = {}  # reads_whole_topic's last count
        self._commit_event = rt.event()
        self._room = rt.event()
        self._deletions_wake = rt.event()
        self._tasks: list[Any] = []
        self._cancels: list[Any] = []
        # Ownership: the owner records seen in etcd, the lease our claims hang on, and
        # who the assignment says should own a partition (set by the broker's membership;
        # a lone broker owns everything).
        self.owners: dict[tuple[str, int], Leader] = {}
        self._claiming: dict[tuple[str, int], Any] = {}
        self.lease_id: int | None = None
        self.leases_required = False
        self.draining = False
        self.desired_owner = lambda topic, partition: self.broker_id
        self.on_owners_changed = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        # Watches first, then the reads they keep current: nothing changed in between is missed.
        queue = self.rt.thread_queue()
        store = self.cluster.store
        self._cancels.append(await self.rt.run_in_thread(store.watch_prefix, self.cluster.keys.topics(), queue.put))
        await self.refresh_topics()
        self._tasks.append(await self.rt.spawn(self._watch_topics, queue))
        self._tasks.append(await self.rt.spawn(self._resync_loop))
        pqueue = self.rt.thread_queue()
        for prefix in (f"{self.cluster.keys.p}/partitions/", f"{self.cluster.keys.p}/segments/"):
            self._cancels.append(await self.rt.run_in_thread(store.watch_prefix, prefix, pqueue.put))
        await self._load_owners()
        self._tasks.append(await self.rt.spawn(self._watch_partitions, pqueue))
        self._tasks.append(await self.rt.spawn(self._flush_timer))
        self._tasks.append(await self.rt.spawn(self._deletion_worker))

    async def stop(self) -> None:
        """Flush what is pending (bounded by the caller's timeout), then stop background work."""
        for plog in list(self.logs.values()):
            if plog._pending and plog.owned:
                await plog.kick()
        deadline = self.rt.monotonic() + self.config.shutdown_timeout_s
        while any(f.running for f in self.flushers.values()) and self.rt.monotonic() < deadline:
            await self.rt.sleep(0.01)
        for task in self._tasks:
            await task.cancel()
        for cancel in self._cancels:
            await self.rt.run_in_thread(cancel)

    async def _watch_topics(self, queue) -> None:
        while True:
            await queue.get()
            try:
                await self.refresh_topics()
                if self.on_owners_changed:  # new partitions to claim, or gone ones
                    await self.on_owners_changed()
            except Exception as exc:  # noqa: BLE001 - keep watching; the next event retries
                log.warning("topic refresh failed: %s", exc)

    async def refresh_topics(self) -> None:
        while True:
            # A read that started before a local create/delete may return the table
            # from before it: applying that would undo the change here. Read again.
            generation = self._topics_generation
            self._topics_read_at = self.rt.monotonic()
            topics = await self.rt.run_in_thread(self.cluster.list_topics)
            if generation == self._topics_generation:
                break
        self._set_topics(topics)

    def _set_topics(self, topics: dict[str, TopicRecord]) -> None:
        self._topics_generation += 1
        for (name, p), plog in list(self.logs.items()):
            rec = topics.get(name)
            if rec is None or rec.id != plog.topic.id or p >= rec.partitions:
                plog.lose_ownership("topic deleted")
                del self.logs[(name, p)]
        self.topics = topics
        self.topics_by_id = {t.id_bytes: t for t in topics.values()}
        live = {t.id for t in topics.values()}
        for tid in [t for t, f in self.flushers.items() if t not in live and not f.running]:
            del self.flushers[tid]
        for tid in [t for t in self._reads if t not in live]:
            del self._reads[tid]
            self._reads_whole.pop(tid, None)

    async def _flush_timer(self) -> None:
        interval = max(self.config.flush_interval_ms, 5) / 1000.0
        while True:
            await self.rt.sleep(interval)
            for plog in list(self.logs.values()):
                if plog.pending_bytes:
                    await plog.flush_timer_tick()

    # -- topics -------------------------------------------------------------------------

    def topic(self, name: str) -> TopicRecord | None:
        return self.topics.get(name)

    def topic_config(self, topic: TopicRecord, key: str, default: Any) -> Any:
        value = topic.config.get(key)
        if value is None:
            return default
        return type(default)(value)

    def max_message_bytes(self, topic: TopicRecord) -> int:
        return self.topic_config(topic, "max.message.bytes", self.config.max_message_bytes)

    @staticmethod
    def is_compacted(topic: TopicRecord) -> bool:
        """cleanup.policy includes compact: every record needs a key (as in Kafka)."""
        return topic_configs.is_compacted(topic.config)

    async def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None,
                           validate_only: bool = False) -> TopicRecord:
        validate_topic_name(name)
        if partitions == -1:
            partitions = self.config.default_partitions
        if partitions <= 0 or partitions > 100_000:
            raise InvalidPartitions(f"invalid partition count {partitions}")
        config = topic_configs.validate(config or {})
        if validate_only:
            if name in self.topics:
                raise TopicExists(f"topic {name!r} already exists")
            return TopicRecord(name, "0" * 32, partitions, config)
        rec = await self.rt.run_in_thread(self.cluster.create_topic, name, partitions, config)
        self._set_topics({**self.topics, name: rec})
        return rec

    async def delete_topic(self, name: str) -> TopicRecord:
        rec = await self.rt.run_in_thread(self.cluster.delete_topic, name)
        topics = dict(self.topics)
        topics.pop(name, None)
        self._set_topics(topics)
        self.cache.discard_prefix(f"{self.config.s3_namespace}/{name}/")
        await self._deletions_wake.set()
        return rec

    async def lookup_topic(self, name: str) -> TopicRecord | None:
        """The topic; on a miss the table is re-read from etcd first (at most every
        100 ms), so a topic another broker just created is never reported unknown."""
        rec = self.topics.get(name)
        if rec is None and self.rt.monotonic() - self._topics_read_at > 0.1:
            await self.refresh_topics()
            rec = self.topics.get(name)
        return rec

    async def ensure_topic(self, name: str) -> TopicRecord | None:
        """The topic, auto-created when allowed; None if unknown and not creatable."""
        rec = await self.lookup_topic(name)
        if rec is not None or not self.config.auto_create_topics:
            return rec
        try:
            return await self.create_topic(name, self.config.default_partitions)
        except TopicExists:
            await self.refresh_topics()
            return self.topics.get(name)

    async def _deletion_worker(self) -> None:
        while True:
            try:
                for topic_id, name in await self.rt.run_in_thread(self.cluster.pending_deletions):
                    await self._delete_objects(topic_id, name)
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                log.warning("background topic deletion: %s", exc)
            self._deletions_wake = self.rt.event()
            await self.rt.wait(self._deletions_wake, 30.0)

    async def _delete_objects(self, topic_id: str, name: str) -> None:
        marker = f"-{topic_id[:12]}-"
        keys = [k for k in await self.rt.run_in_thread(
            lambda: list(self.objects.list(f"{self.config.s3_namespace}/{name}/"))) if marker in k]
        for i in range(0, len(keys), 1000):
            await self.rt.run_in_thread(self.objects.delete_many, keys[i:i + 1000])
        await self.rt.run_in_thread(self.cluster.finish_deletion, topic_id)
        log.info("deleted %d objects of topic %s (%s)", len(keys), name, topic_id)

    # -- partitions ---------------------------------------------------------------------

    def object_key(self, topic: TopicRecord) -> str:
        # Write-once keys: the time, this broker and a nonce make every upload's key
        # unique, so no writer (fenced or retrying) can ever replace a committed object;
        # the topic id lets a background delete tell a deleted topic's objects from a
        # new one's. Keys of one broker sort by time.
        return (f"{self.config.s3_namespace}/{topic.name}/objects/"
                f"{int(time.time() * 1000):013d}-{topic.id[:12]}-b{self.broker_id}-{nonce()}.kfo")

    def flusher(self, topic: TopicRecord) -> TopicFlusher:
        f = self.flushers.get(topic.id)
        if f is None:
            f = self.flushers[topic.id] = TopicFlusher(self, topic)
        return f

    def _topic_partition(self, name: str, partition: int) -> TopicRecord:
        topic = self.topics.get(name)
        if topic is None or not 0 <= partition < topic.partitions:
            raise UnknownTopicOrPartition(f"unknown partition {name}-{partition}")
        return topic

    async def partition_log(self, name: str, partition: int) -> PartitionLog:
        """The partition's log for reading: ours if we own it, else a follower view of
        the committed manifest that the etcd watch keeps current."""
        topic = self._topic_partition(name, partition)
        key = (name, partition)
        plog = self.logs.get(key)
        if plog is None or (plog.was_owner and not plog.owned and not plog._flushing):
            # (an ex-owner's view is frozen at its last commit: read through a fresh one)
            fresh = PartitionLog(self, topic, partition)
            await fresh.load()
            current = self.logs.get(key)
            if current is plog or current is None:
                self.logs[key] = current = fresh
            plog = current
        return plog

    async def owned_log(self, name: str, partition: int) -> PartitionLog:
        """The partition's log if this broker owns it, claiming it first when it has no
        owner and the assignment gives it to us; NOT_LEADER_OR_FOLLOWER otherwise."""
        topic = self._topic_partition(name, partition)
        key = (name, partition)
        plog = self.logs.get(key)
        if plog is not None and plog.owned:
            return plog
        if key in self._claiming:
            # A claim is under way (its own watch event may already name us the owner).
            return await self.claim(topic, partition)
        if self.draining or self.lease_id is None and self.leases_required:
            raise NotLeader(f"{name}-{partition}: this broker is not taking writes")
        owner = self.owners.get(key)
        if owner is not None and owner.broker == self.broker_id and plog is not None and await plog.readopt():
            return plog
        if owner is not None or self.desired_owner(name, partition) != self.broker_id:
            raise NotLeader(f"{name}-{partition} is owned by broker "
                            f"{owner.broker if owner else self.desired_owner(name, partition)}")
        return await self.claim(topic, partition)

    async def claim(self, topic: TopicRecord, partition: int) -> PartitionLog:
        key = (topic.name, partition)
        lock = self._claiming.get(key)
        if lock is not None:  # somebody is claiming it right now: wait for them
            await lock.wait()
            plog = self.logs.get(key)
            if plog is not None and plog.owned:
                return plog
            raise NotLeader(f"{topic.name}-{partition}: claim by another request failed")
        done = self._claiming[key] = self.rt.event()
        try:
            old = self.logs.get(key)
            plog = PartitionLog(self, topic, partition)
            await plog.claim(self.lease_id)
            if old is not None and old is not plog:
                old.lose_ownership("replaced by a new claim")
            self.logs[key] = plog
            self.owners[key] = plog.leader
            return plog
        finally:
            del self._claiming[key]
            await done.set()

    async def release(self, name: str, partition: int) -> None:
        plog = self.logs.get((name, partition))
        if plog is not None and plog.owned:
            await plog.release()

    def owned_partitions(self) -> list[PartitionLog]:
        return [p for p in self.logs.values() if p.owned]

    async def lose_all_ownership(self, why: str) -> None:
        for plog in self.owned_partitions():
            plog.lose_ownership(why)
            if plog._pending_waiters:
                await plog._fail([], NotLeader(why))

    # -- the partitions watch -----------------------------------------------------------

    async def _load_owners(self) -> None:
        owners = await self.rt.run_in_thread(self.cluster.owners)
        self.owners = {k: v[0] for k, v in owners.items()}
        for key, plog in self.logs.items():
            current = owners.get(key)
            if plog.owned and (current is None or current[1] != plog.leader_raw):
                plog.lose_ownership("owner record changed while the watch was down")

    async def _resync_loop(self, interval: float = 5.0) -> None:
        """Re-read the topic table and the owner records now and then: a safety net under
        the watches (an event lost to a broken stream would otherwise stick). Our own
        ownership is not touched here; commits and the lease keep it honest."""
        while True:
            await self.rt.sleep(interval)
            try:
                await self.refresh_topics()
                owners = await self.rt.run_in_thread(self.cluster.owners)
                changed = False
                for key in set(self.owners) | set(owners):
                    plog = self.logs.get(key)
                    if (plog is not None and plog.owned) or key in self._claiming:
                        continue
                    seen = owners.get(key)
                    new = seen[0] if seen else None
                    if self.owners.get(key) != new:
                        changed = True
                        if new is None:
                            self.owners.pop(key, None)
                        else:
                            self.owners[key] = new
                if changed:
                    log.info("resync found owner records the watch had not delivered")
                    if self.on_owners_changed:
                        await self.on_owners_changed()
            except KafkaError as exc:
                log.debug("resync: %s", exc)

    async def _watch_partitions(self, queue) -> None:
        parts_prefix = f"{self.cluster.keys.p}/partitions/"
        segs_prefix = f"{self.cluster.keys.p}/segments/"
        while True:
            events = await queue.get()
            try:
                if events is None:  # the watch was re-established: re-read what we cache
                    await self._load_owners()
                    for plog in list(self.logs.values()):
                        if not plog.owned:
                            await plog.load()
                    await self.notify_commit()
                    if self.on_owners_changed:
                        await self.on_owners_changed()
                    continue
                moved = owners_changed = False
                for ev in events:
                    if ev.key.startswith(parts_prefix):
                        topic_part, _, what = ev.key[len(parts_prefix):].rpartition("/")
                        topic, _, part = topic_part.rpartition("/")
                        key = (topic, int(part))
                        plog = self.logs.get(key)
                        if what == "leader":
                            owners_changed = True
                            leader = Leader.decode(ev.value)
                            if plog is not None and plog.owned:
                                # Events queued before our own claim arrive after it: only a
                                # record with a newer epoch than ours means we were replaced.
                                # (Our own record's deletion comes with our lease's loss, which
                                # the keepalive handles; commits compare the record anyway.)
                                if leader is None or leader.epoch <= plog.epoch:
                                    continue
                                plog.lose_ownership(f"broker {leader.broker} took over at epoch {leader.epoch}")
                            if leader is None:
                                self.owners.pop(key, None)
                            else:
                                self.owners[key] = leader
                            if plog is not None and not plog.was_owner:
                                plog.leader, plog.leader_raw = leader, ev.value
                        elif what == "state" and plog is not None:
                            moved |= plog.apply_state(ev.value)
                    elif ev.key.startswith(segs_prefix):
                        topic, part, base = ev.key[len(segs_prefix):].rsplit("/", 2)
                        plog = self.logs.get((topic, int(part)))
                        if plog is not None:
                            plog.apply_segment(SegmentRef.decode(ev.value) if ev.value else None, int(base))
                if moved:
                    await self.notify_commit()
                if owners_changed and self.on_owners_changed:
                    await self.on_owners_changed()
            except Exception:  # noqa: BLE001 - one bad event must not stop the watch
                log.exception("partition watch event failed")

    # -- reads --------------------------------------------------------------------------

    async def segment_bytes(self, seg: SegmentRef) -> bytes | memoryview:
        """A whole segment, from the cache or S3 (one GET per segment at a time, and
        segments of one object wanted at the same time in one GET)."""
        data = self.cache.get(seg.cache_key)
        if data is not None:
            return data
        load = self._inflight_reads.get(seg.cache_key) or await self._start_load(seg)
        await load.event.wait()
        if load.error is not None:
            raise load.error
        return load.data

    def is_cached(self, seg: SegmentRef) -> bool:
        return seg.cache_key in self.cache

    def is_loading(self, seg: SegmentRef) -> bool:
        return seg.cache_key in self._inflight_reads

    def note_read(self, topic: TopicRecord, partition: int) -> None:
        self._reads.setdefault(topic.id, {})[partition] = self.rt.monotonic()

    def reads_whole_topic(self, topic: TopicRecord) -> bool:
        """Whether at least half of ``topic``'s partitions (and two) were read within
        ACTIVE_READ_S: then its objects are read whole (see ACTIVE_READ_S)."""
        reads = self._reads.get(topic.id)
        if not reads or len(reads) < 2:
            return False
        now = self.rt.monotonic()
        known = self._reads_whole.get(topic.id)
        if known is not None and known[0] > now - 0.5 and (known[1] or len(reads) < known[2]):
            return known[1]  # (counted at most twice a second: a fetch asks for every partition)
        active = sum(1 for t in reads.values() if t >= now - ACTIVE_READ_S)
        whole = active >= 2 and 2 * active >= topic.partitions
        self._reads_whole[topic.id] = (now, whole, len(reads))
        return whole

    async def read_ahead(self, seg: SegmentRef, whole_object: bool = False) -> bool:
        """Start loading ``seg`` into the cache in the background (once); False if it is
        not read whole or the read-ahead under way is at its bound (a quarter of the
        cache, so what is read ahead is not evicted before it is read).
        ``whole_object``: GET all of the topic object that holds it and cache every
        segment in it."""
        key = seg.cache_key
        if not _read_whole(seg) or key in self.cache or key in self._inflight_reads:
            return True
        if self._ahead_bytes + seg.size > self.config.cache_bytes // 4:
            return False
        load = await self._start_load(seg, whole_object)
        load.ahead = True
        self._ahead_bytes += seg.size
        self.stats["read_ahead"] += 1
        return True

    async def _start_load(self, seg: SegmentRef, whole_object: bool = False) -> "_Load":
        """Register a GET of ``seg``. Segments of one topic object asked for before its
        loader task runs (a fetch asks for all its partitions first) share one GET."""
        load = _Load(seg, self.rt.event())
        self._inflight_reads[seg.cache_key] = load
        if whole_object and seg.pos >= 0:
            self._whole_objects.add(seg.key)
        queue = self._object_queue.get(seg.key)
        if queue is not None:
            queue.append(load)
        else:
            self._object_queue[seg.key] = [load]
            await self.rt.spawn(self._load_object, seg.key)
        return load

    async def _load_object(self, key: str) -> None:
        loads = sorted(self._object_queue.pop(key), key=lambda ld: ld.seg.pos)
        if key in self._whole_objects:
            self._whole_objects.discard(key)
            await self._load_group(key, loads, whole=True)
            return
        groups = [[loads[0]]]
        for ld in loads[1:]:
            prev = groups[-1][-1].seg
            if ld.seg.pos >= 0 and ld.seg.pos - (prev.pos + prev.size) <= COALESCE_GAP:
                groups[-1].append(ld)
            else:
                groups.append([ld])
        tasks = [await self.rt.spawn(self._load_group, key, g) for g in groups[1:]]
        await self._load_group(key, groups[0])
        for t in tasks:
            await t.join()

    async def _load_group(self, key: str, group: list["_Load"], whole: bool = False) -> None:
        try:
            if whole:
                results, others = await self.rt.run_in_thread(self._get_object, [ld.seg for ld in group])
                for cache_key, data in others:
                    if cache_key not in self.cache and cache_key not in self._inflight_reads:
                        self.cache.put(cache_key, data)
                        self.stats["segments_read_along"] += 1
                self.stats["whole_object_gets"] += 1
            else:
                results = await self.rt.run_in_thread(self._get_segments, [ld.seg for ld in group])
            self.stats["s3_gets"] += 1
            for ld, (data, problem) in zip(group, results):
                if problem is not None:
                    log.error("corrupt segment %s: %s", ld.seg.cache_key, problem)
                    ld.error = KafkaError(f"corrupt segment {ld.seg.cache_key}: {problem}",
                                          code=ErrorCode.CORRUPT_MESSAGE)
                else:
                    ld.data = data
                    self.cache.put(ld.seg.cache_key, data)
        except Exception as exc:  # noqa: BLE001 - every reader of the group gets the error
            error = exc if isinstance(exc, KafkaError) else StorageError(f"GET {key}: {exc}")
            for ld in group:
                ld.error = error
        finally:
            for ld in group:
                del self._inflight_reads[ld.seg.cache_key]
                if ld.ahead:
                    self._ahead_bytes -= ld.seg.size
                await ld.event.set()

    def _get_segments(self, segs: list[SegmentRef]) -> list[tuple[memoryview | None, ValueError | None]]:
        """GET segments lying close together in one object with one ranged read, on a
        worker thread, and check each one's CRC (neither blocks the event loop)."""
        if segs[0].pos < 0:  # (a one-object segment of the older layout)
            data, lo = self.objects.get(segs[0].object_key), 0
        else:
            lo = segs[0].pos
            hi = max(s.pos + s.size for s in segs)
            data = self.objects.get(segs[0].key, lo, hi - lo)
        return _verified(memoryview(data), lo, segs)

    def _get_object(self, segs: list[SegmentRef]) -> tuple[
            list[tuple[memoryview | None, ValueError | None]], list[tuple[str, memoryview]]]:
        """GET a whole topic object on a worker thread: ``segs`` as _get_segments gives
        them, and every other intact segment its directory lists, as (cache key, bytes)."""
        key = segs[0].key
        view = memoryview(self.objects.get(key))
        out = _verified(view, 0, segs)
        wanted = {seg.pos for seg in segs}
        others: list[tuple[str, memoryview]] = []
        try:
            entries = fmt.parse_directory(view)
        except ValueError as exc:  # (the segments asked for were checked on their own)
            log.warning("topic object %s: %s; only the segments asked for are cached", key, exc)
            entries = []
        for _partition, pos, size in entries:
            cache_key = f"{key}@{pos}"
            if pos in wanted:
                continue
            piece = view[pos:pos + size]
            try:
                fmt.parse_segment(piece, verify=True)
            except ValueError as exc:
                log.warning("corrupt segment %s (read along, not cached): %s", cache_key, exc)
                continue
            others.append((cache_key, piece))
        return out, others

    async def read_segment_range(self, seg: SegmentRef, offset: int, max_bytes: int,
                                 allow_oversize: bool = True) -> tuple[memoryview, bool]:
        """Whole batches of ``seg`` from the one holding ``offset``, within ``max_bytes``
        (but at least one batch when ``allow_oversize``, as Kafka's KIP-74), and whether
        they run to the end of the segment."""
        if _read_whole(seg) or self.cache.get(seg.cache_key) is not None:
            data = await self.segment_bytes(seg)
            view = memoryview(data)[:len(data) - fmt.FOOTER_SIZE]
            begin, end = _fast.scan_batches(view, fmt.HEADER_SIZE, offset, max_bytes)
            if not allow_oversize and end - begin > max_bytes:
                return view[begin:begin], False
            return view[begin:end], end == len(view)
        # A large segment: find the batch through the index, then read a byte range.
        index = fmt.parse_index(await self.rt.run_in_thread(self.objects.get, seg.key + ".index"))
        pos = fmt.index_lookup(index, offset)
        body_end = seg.size - fmt.FOOTER_SIZE
        want = max_bytes
        while True:
            length = min(body_end - pos, want + 64 * 1024)
            chunk = await self.rt.run_in_thread(self.objects.get, seg.key + ".kfs", pos, length)
            self.stats["s3_range_gets"] += 1
            begin, end = _fast.scan_batches(chunk, 0, offset, max_bytes)
            if end > begin or pos + length >= body_end:
                return memoryview(chunk)[begin:end], pos + end >= body_end
            # A single batch larger than what we read: read again, wide enough for it.
            want = max(want * 2, 1 << 20)

    # -- backpressure -------------------------------------------------------------------

    async def wait_for_room(self, size: int, timeout: float) -> None:
        """Wait until ``size`` more bytes fit under max.pending.bytes (one append always fits
        when nothing is pending), or fail retriably with REQUEST_TIMED_OUT."""
        if not self.pending_bytes or self.pending_bytes + size <= self.config.max_pending_bytes:
            return
        deadline = self.rt.monotonic() + timeout
        self.stats["backpressure_waits"] += 1
        while self.pending_bytes and self.pending_bytes + size > self.config.max_pending_bytes:
            remaining = deadline - self.rt.monotonic()
            if remaining <= 0 or not await self.rt.wait(self._room, remaining):
                raise KafkaError("broker buffer full: S3 is not keeping up", ErrorCode.REQUEST_TIMED_OUT)

    async def flushed(self) -> None:
        """Pending bytes went down (a flush took them, or failed them): wake the waiters."""
        ev, self._room = self._room, self.rt.event()
        await ev.set()

    # -- notifications ------------------------------------------------------------------

    async def notify_commit(self) -> None:
        ev, self._commit_event = self._commit_event, self.rt.event()
        await ev.set()

    async def wait_commit(self, timeout: float) -> bool:
        return await self.rt.wait(self._commit_event, timeout)

    # -- health -------------------------------------------------------------------------

    def check_s3(self) -> None:
        self.objects.ping()

    def check_etcd(self) -> None:
        self.cluster.store.ping()


__all__ = ["LogManager", "ObjectStoreError", "validate_topic_name"]
