"""The log manager: topics, partition logs, ownership and background work.

It owns one ``PartitionLog`` per partition this broker has touched, the topic table
(kept fresh by an etcd watch), the owner records, the segment reader (cache and S3
reads, storage/reader.py), the backpressure count (storage/pending.py), the commit
notification that wakes long-polling fetches, the flush timer, and the worker that
deletes a deleted topic's objects in the background.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from kafscale import broker_configs, topic_configs
from kafscale.broker_configs import DynamicState
from kafscale.config import Config
from kafscale.metrics import Metrics
from kafscale.errors import (ErrorCode, InvalidPartitions, InvalidTopic, KafkaError, NotLeader, TopicExists,
                             UnknownTopicOrPartition)
from kafscale.metadata.cluster import Cluster, Leader, PartitionState, SegmentRef, TopicRecord, check_partition_increase
from kafscale.runtime import Runtime
from kafscale.storage.cache import SegmentCache
from kafscale.storage.compactor import Compactor
from kafscale.storage.flush import TopicFlusher
from kafscale.storage.lifecycle import Lifecycle
from kafscale.storage.log import PartitionLog, nonce
from kafscale.storage.objects import ObjectStore, ObjectStoreError
from kafscale.storage.pending import Backpressure
from kafscale.storage.reader import SegmentReader

log = logging.getLogger(__name__)

_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

MAX_PARTITIONS = 100_000  # per topic


def validate_topic_name(name: str) -> None:
    if not name or name in (".", "..") or not _TOPIC_RE.match(name):
        raise InvalidTopic(f"invalid topic name {name!r}")


def check_manual_assignment(added: int, assignments: list[list[int]], live_brokers: set[int]) -> None:
    """Kafka's checks of a CreatePartitions manual assignment: one non-empty list of
    distinct, registered brokers per new partition."""
    if len(assignments) != added:
        raise KafkaError(f"Attempted to add {added} additional partition(s), but only {len(assignments)} "
                         "assignment(s) were specified.", ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    for brokers in assignments:
        if not brokers:
            raise KafkaError("The manual partition assignment includes an empty replica list.",
                             ErrorCode.INVALID_REPLICA_ASSIGNMENT)
        for broker in brokers:
            if broker not in live_brokers:
                raise KafkaError(f"The manual partition assignment includes broker {broker}, but no such "
                                 "broker is registered.", ErrorCode.INVALID_REPLICA_ASSIGNMENT)
        if len(set(brokers)) != len(brokers):
            raise KafkaError("The manual partition assignment includes the same broker more than once.",
                             ErrorCode.INVALID_REPLICA_ASSIGNMENT)


class LogManager:
    def __init__(self, rt: Runtime, config: Config, cluster: Cluster, objects: ObjectStore,
                 metrics: Metrics | None = None) -> None:
        self.rt = rt
        self.metrics = metrics or Metrics()
        # The committed high watermark of every partition (not only those with a log
        # here), from the partition watch: consumer lag and the console read it.
        self._hws: dict[tuple[str, int], int] = {}
        self.config = config
        self.cluster = cluster
        self.objects = objects
        self.broker_id = config.broker_id
        self.topics: dict[str, TopicRecord] = {}
        self._topics_generation = 0
        self._refreshing: Any = None  # the event of the topic-table read under way
        self._refresh_again = False
        self._lookups: dict[str, list] = {}  # name -> [done event, record, error] of a read under way
        self.topics_by_id: dict[bytes, TopicRecord] = {}
        self.logs: dict[tuple[str, int], PartitionLog] = {}
        self.flushers: dict[str, TopicFlusher] = {}  # by topic id
        self.stats: Counter[str] = Counter()
        self.reader = SegmentReader(rt, config, objects, self.stats)
        self.compactor = Compactor(self)
        self.lifecycle = Lifecycle(self)
        self._commit_event = rt.event()
        self.backpressure = Backpressure(rt, config.max_pending_bytes)
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
        # The default of each topic config for topics that do not set it; the broker's
        # dynamic configs (broker/dynconfig.py) replace this with one that follows them.
        self.topic_default = lambda name: broker_configs.topic_default(name, config, DynamicState(), self.broker_id)
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
        self._tasks.append(await self.rt.spawn(self.compactor.run))
        self._tasks.append(await self.rt.spawn(self.lifecycle.run))

    async def stop(self, timeout: float | None = None) -> None:
        """Flush what is pending (for at most ``timeout`` seconds, by default the shutdown
        timeout), then stop background work."""
        for plog in list(self.logs.values()):
            if plog.pending and plog.owned:
                await plog.kick()
        deadline = self.rt.monotonic() + (self.config.shutdown_timeout_s if timeout is None else timeout)
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
        """Re-read the topic table (the watch calls this on every change). Callers that
        come while a read is under way wait for one more read after it, which they all
        share: however many callers, at most two reads are under way or queued."""
        if self._refreshing is not None:
            self._refresh_again = True
            await self._refreshing.wait()
            return
        self._refreshing = done = self.rt.event()
        try:
            while True:
                self._refresh_again = False
                # A read that started before a local create/delete may return the table
                # from before it: applying that would undo the change here. Read again.
                generation = self._topics_generation
                topics = await self.rt.run_in_thread(self.cluster.list_topics)
                if generation == self._topics_generation:
                    self._set_topics(topics)
                else:
                    self._refresh_again = True
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = None
            await done.set()

    def _set_topics(self, topics: dict[str, TopicRecord]) -> None:
        self._topics_generation += 1
        for (name, p), plog in list(self.logs.items()):
            rec = topics.get(name)
            if rec is None or rec.id != plog.topic.id or p >= rec.partitions:
                plog.lose_ownership("topic deleted")
                del self.logs[(name, p)]
            else:
                plog.topic = rec  # (partitions added, or its config changed)
        for name in self.topics.keys() - topics.keys():  # (deleted here or on another broker)
            self.metrics.forget_topic(name)
        self.topics = topics
        self.topics_by_id = {t.id_bytes: t for t in topics.values()}
        live = {t.id for t in topics.values()}
        for tid in [t for t, f in self.flushers.items() if t not in live and not f.running]:
            del self.flushers[tid]
        self.reader.forget_topics(live)

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

    def topic_value(self, topic: TopicRecord, name: str) -> Any:
        """The typed value of topic config ``name`` for ``topic``: its own, else the
        broker's default for topics (which an operator may change at run time)."""
        return topic_configs.value(topic.config, name, self.topic_default(name))

    def max_message_bytes(self, topic: TopicRecord) -> int:
        return self.topic_value(topic, "max.message.bytes")

    def cleanup_policies(self, topic: TopicRecord) -> set[str]:
        return {policy.lower() for policy in self.topic_value(topic, "cleanup.policy")}

    def is_compacted(self, topic: TopicRecord) -> bool:
        """cleanup.policy includes compact: every record needs a key (as in Kafka)."""
        return "compact" in self.cleanup_policies(topic)

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's committed high watermark, wherever it is owned (None: unknown
        here yet); kept current by the partition watch."""
        plog = self.logs.get((topic, partition))
        if plog is not None and not plog.frozen:
            return plog.hw
        return self._hws.get((topic, partition), 0 if topic in self.topics else None)

    def topic_changed(self, rec: TopicRecord) -> None:
        """``rec`` was just written to etcd here: use it now (the watch brings it too)."""
        if rec.name in self.topics:
            self._set_topics({**self.topics, rec.name: rec})

    async def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None,
                           validate_only: bool = False) -> TopicRecord:
        validate_topic_name(name)
        if partitions == -1:
            partitions = self.config.default_partitions
        if partitions <= 0 or partitions > MAX_PARTITIONS:
            raise InvalidPartitions(f"invalid partition count {partitions}")
        config = topic_configs.validate(config or {})
        if validate_only:
            if name in self.topics:
                raise TopicExists(f"topic {name!r} already exists")
            return TopicRecord(name, "0" * 32, partitions, config)
        rec = await self.rt.run_in_thread(self.cluster.create_topic, name, partitions, config)
        self._set_topics({**self.topics, name: rec})
        log.info("created topic %s: %d partitions", name, rec.partitions, extra={"topic": name})
        return rec

    async def create_partitions(self, name: str, count: int, assignments: list[list[int]] | None,
                                live_brokers: set[int], validate_only: bool = False) -> TopicRecord:
        """Grow a topic to ``count`` partitions, stored in etcd before this returns; checks
        as Kafka's CreatePartitions does. Manual ``assignments`` (one broker list per new
        partition) are validated and then ignored: ownership follows the assignment over
        the live brokers (broker/membership.py), and every broker owns some of the new
        partitions as soon as its topic watch (or, here, the call below) sees them."""
        rec = await self.lookup_topic(name)
        if rec is None:
            raise UnknownTopicOrPartition(f"The topic '{name}' does not exist.")
        check_partition_increase(rec.partitions, count)
        if count > MAX_PARTITIONS:
            raise InvalidPartitions(f"Topic would have {count} partitions, more than the broker's limit "
                                    f"of {MAX_PARTITIONS}.")
        if assignments is not None:
            check_manual_assignment(count - rec.partitions, assignments, live_brokers)
            log.info("topic %s: ignoring the manual assignment of its new partitions: ownership "
                     "follows Kafscale's broker assignment (the data is in S3)", name, extra={"topic": name})
        if validate_only:
            return TopicRecord(name, rec.id, count, rec.config, rec.created_ms)
        old, new = await self.rt.run_in_thread(self.cluster.add_partitions, name, count)
        if name in self.topics:
            self._set_topics({**self.topics, name: new})
        log.info("topic %s: %d partitions, was %d", name, new.partitions, old.partitions, extra={"topic": name})
        if self.on_owners_changed:  # claim ours now rather than when the watch comes round
            await self.on_owners_changed()
        return new

    async def delete_topic(self, name: str) -> TopicRecord:
        rec = await self.rt.run_in_thread(self.cluster.delete_topic, name)
        topics = dict(self.topics)
        topics.pop(name, None)
        self._set_topics(topics)
        self.cache.discard_prefix(f"{self.config.s3_namespace}/{name}/")
        await self._deletions_wake.set()
        log.info("deleted topic %s", name, extra={"topic": name})
        return rec

    async def lookup_topic(self, name: str) -> TopicRecord | None:
        """The topic, from the table the watch keeps; on a miss, its one key is read from
        etcd (concurrent misses for a name share one read), so a topic another broker
        just created is never reported unknown. Nothing here re-reads the whole table."""
        rec = self.topics.get(name)
        if rec is not None:
            return rec
        lookup = self._lookups.get(name)
        if lookup is not None:
            await lookup[0].wait()
        else:
            lookup = self._lookups[name] = [self.rt.event(), None, None]  # done, record, error
            try:
                generation = self._topics_generation
                lookup[1] = rec = await self.rt.run_in_thread(self.cluster.get_topic, name)
                if rec is not None and generation == self._topics_generation and name not in self.topics:
                    self._set_topics({**self.topics, name: rec})
            except Exception as exc:  # noqa: BLE001 - every waiter gets it
                lookup[2] = exc
            finally:
                del self._lookups[name]
                await lookup[0].set()
        if lookup[2] is not None:
            raise lookup[2]
        return lookup[1]

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
        log.info("deleted %d objects of topic %s (%s)", len(keys), name, topic_id, extra={"topic": name})

    # -- partitions ---------------------------------------------------------------------

    def object_key(self, topic: TopicRecord) -> str:
        # Write-once keys: the time, this broker and a nonce make every upload's key
        # unique, so no writer (fenced or retrying) can ever replace a committed object;
        # the topic id lets a background delete tell a deleted topic's objects from a
        # new one's. Keys of one broker sort by time.
        return (f"{self.config.s3_namespace}/{topic.name}/objects/"
                f"{int(time.time() * 1000):013d}-{topic.id[:12]}-b{self.broker_id}-{nonce()}.kfo")

    def segment_key(self, topic: TopicRecord, partition: int, base: int, epoch: int) -> str:
        """The stem of a compacted segment's ``.kfs`` and ``.index`` objects; unique (a
        nonce), so no writer can replace another's object."""
        return (f"{self.config.s3_namespace}/{topic.name}/{partition}/"
                f"segment-{base:020d}-{topic.id[:12]}-{epoch}-{nonce()}")

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
        if plog is None or plog.frozen:  # (read through a fresh view)
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
            await plog.fail_pending(NotLeader(why))

    @property
    def log_dir(self) -> str:
        """What admin tools call this broker's log directory: where its data lives."""
        return f"s3://{self.config.s3_bucket}/{self.config.s3_namespace}"

    def owned_sizes(self, wanted: dict[str, set[int]] | None = None) -> dict[str, dict[int, int]]:
        """Bytes of committed segments per partition this broker owns, from the manifests
        it holds in memory (no etcd read), by topic: of the ``wanted`` partitions, or of all."""
        out: dict[str, dict[int, int]] = {}
        for plog in self.owned_partitions():
            if wanted is not None and plog.partition not in wanted.get(plog.name, ()):
                continue
            out.setdefault(plog.name, {})[plog.partition] = sum(s.size for s in plog.segments)
        return out

    async def describe_producers(self, name: str, partition: int) -> list[tuple[int, int, int, int]]:
        """The idempotent producers of a partition this broker owns, from its producer
        table: (id, epoch, last sequence, last timestamp). NOT_LEADER_OR_FOLLOWER elsewhere."""
        plog = await self.owned_log(name, partition)
        return plog.producers.describe()

    # -- the partitions watch -----------------------------------------------------------

    async def _load_owners(self) -> None:
        hws: dict[tuple[str, int], int] = {}
        owners = await self.rt.run_in_thread(self.cluster.owners, hws)
        self.owners = {k: v[0] for k, v in owners.items()}
        self._hws = hws
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
                hws: dict[tuple[str, int], int] = {}
                owners = await self.rt.run_in_thread(self.cluster.owners, hws)
                self._hws = hws
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
                        elif what == "state":
                            if plog is not None and not plog.frozen:
                                moved |= plog.apply_state(ev.value)
                            elif ev.value:  # (high_watermark's answer where no live view is)
                                self._hws[key] = PartitionState.decode(ev.value).hw
                        elif what == "start" and plog is not None:
                            moved |= plog.apply_start(ev.value)
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

    # -- reads (storage/reader.py) -------------------------------------------------------

    @property
    def cache(self) -> SegmentCache:
        return self.reader.cache

    # -- backpressure -------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Produced bytes held until they are in S3 (the backpressure count)."""
        return self.backpressure.held

    async def wait_for_room(self, size: int, timeout: float) -> None:
        """Wait until ``size`` more bytes fit under max.pending.bytes (one append always fits
        when nothing is pending), or fail retriably with REQUEST_TIMED_OUT."""
        if await self.backpressure.wait_for_room(size, timeout):
            self.stats["backpressure_waits"] += 1

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


__all__ = ["MAX_PARTITIONS", "LogManager", "ObjectStoreError", "check_manual_assignment", "validate_topic_name"]
