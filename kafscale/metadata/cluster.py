"""Kafscale's etcd layout and the transactions over it (DESIGN.md section 5).

Keys, under the configurable prefix P (default ``/kafscale``)::

    P/topics/{topic}                         {"id", "partitions", "config", "created_ms"}
    P/partitions/{topic}/{p}/leader          {"broker", "epoch", "tid"}  - owner, under its lease
    P/partitions/{topic}/{p}/epoch           the last leader epoch (a counter; never leased)
    P/partitions/{topic}/{p}/state           {"hw", "log_start", "producers", "epochs"} - committed
    P/partitions/{topic}/{p}/start           {"log_start"} - moved by retention and DeleteRecords
    P/segments/{topic}/{p}/{base:020d}       segment manifest entry (see SegmentRef)
    P/deleting/{topic_id}                    {"topic", "partitions"}    - object cleanup to do
    P/brokers/{id}                           {"host", "port", "rack", ...} - under the broker's lease
    P/users/{quoted user}                    {mechanism: {"salt", "stored_key", "server_key",
                                             "iterations"}} - SCRAM credentials, never a password

A partition whose keys are absent is empty: hw 0, log start 0, epoch 0, no owner.
Topics are created with one put (so any partition count fits etcd's txn-op limit).
Every read-modify-write is a transaction comparing the exact bytes last seen; the
leader record carries the topic id, so a writer of a deleted-then-recreated topic can
never match. All values are orjson, small, and carry only what a reader needs.
All calls block; async callers go through the runtime's run_in_thread.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from urllib.parse import quote, unquote
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from kafscale.errors import (ErrorCode, Fenced, InvalidPartitions, KafkaError, TopicExists,
                             UnknownTopicOrPartition)
from kafscale.metadata.store import Delete, MetadataStore, Put, StoreUnavailable, ValueIs


@dataclass
class TopicRecord:
    name: str
    id: str  # 32 hex chars (a UUID)
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0

    @property
    def id_bytes(self) -> bytes:
        return bytes.fromhex(self.id)

    def encode(self) -> bytes:
        return orjson.dumps({"id": self.id, "partitions": self.partitions,
                             "config": self.config, "created_ms": self.created_ms})

    @classmethod
    def decode(cls, name: str, raw: bytes) -> "TopicRecord":
        d = orjson.loads(raw)
        return cls(name, d["id"], int(d["partitions"]), dict(d.get("config") or {}),
                   int(d.get("created_ms", 0)))


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One committed segment and the offsets it covers.

    A flush writes segments inside a topic object that holds one segment per partition
    flushed together (``pos`` >= 0: ``key`` is that object's whole key and the segment
    is the ``size`` bytes at ``pos``). The compactor rewrites runs of them into one
    object per segment (``pos`` = -1: ``key`` is a stem with ``.kfs`` and ``.index``
    objects); ``level`` counts how many merges the data went through (0: as flushed).
    """

    key: str
    base: int
    last: int
    count: int
    size: int  # bytes of the segment (header, batches, footer)
    max_ts: int
    epoch: int
    created_ms: int
    pos: int = -1  # byte position of the segment inside a topic object, or -1
    level: int = 0

    @property
    def object_key(self) -> str:
        return self.key if self.pos >= 0 else self.key + ".kfs"

    @property
    def cache_key(self) -> str:
        return f"{self.key}@{self.pos}" if self.pos >= 0 else self.key + ".kfs"

    def encode(self) -> bytes:
        d = {"k": self.key, "b": self.base, "l": self.last, "n": self.count, "s": self.size,
             "ts": self.max_ts, "e": self.epoch, "c": self.created_ms}
        if self.pos >= 0:
            d["p"] = self.pos
        if self.level:
            d["v"] = self.level
        return orjson.dumps(d)

    @classmethod
    def decode(cls, raw: bytes) -> "SegmentRef":
        d = orjson.loads(raw)
        return cls(d["k"], d["b"], d["l"], d["n"], d["s"], d["ts"], d["e"], d["c"], d.get("p", -1), d.get("v", 0))


@dataclass(frozen=True)
class PartitionState:
    """Committed partition state. ``producers`` is the idempotent-producer table:
    producer id -> [epoch, [[first_seq, last_seq, base_offset], ...up to 5 newest]].
    ``epochs`` is the leader-epoch history, [[epoch, start offset], ...] in order
    (storage/epochs.py)."""

    hw: int = 0
    log_start: int = 0
    producers: dict[str, list] = field(default_factory=dict)
    epochs: list[list[int]] = field(default_factory=list)

    def encode(self) -> bytes:
        d: dict[str, Any] = {"hw": self.hw, "log_start": self.log_start}
        if self.producers:
            d["producers"] = self.producers
        if self.epochs:
            d["epochs"] = self.epochs
        return orjson.dumps(d)

    @classmethod
    def decode(cls, raw: bytes | None) -> "PartitionState":
        if raw is None:
            return cls()
        d = orjson.loads(raw)
        return cls(int(d["hw"]), int(d.get("log_start", 0)), dict(d.get("producers") or {}),
                   [[int(e), int(s)] for e, s in d.get("epochs") or ()])


@dataclass(frozen=True)
class Leader:
    broker: int
    epoch: int
    tid: str

    def encode(self) -> bytes:
        return orjson.dumps({"broker": self.broker, "epoch": self.epoch, "tid": self.tid})

    @classmethod
    def decode(cls, raw: bytes | None) -> "Leader | None":
        if raw is None:
            return None
        d = orjson.loads(raw)
        return cls(int(d["broker"]), int(d["epoch"]), str(d.get("tid", "")))


@dataclass
class PartitionSnapshot:
    """What etcd says about one partition, with the exact bytes to compare against."""

    leader: Leader | None
    leader_raw: bytes | None
    state: PartitionState
    state_raw: bytes | None
    segments: list[SegmentRef]
    start_raw: bytes | None = None

    @property
    def log_start(self) -> int:
        return max(self.state.log_start, decode_log_start(self.start_raw))


def encode_log_start(offset: int) -> bytes:
    return orjson.dumps({"log_start": offset})


def decode_log_start(raw: bytes | None) -> int:
    """The log start kept in its own key (0 when absent). Retention and DeleteRecords
    move it there, apart from the state key, so they never race the flushes' commits."""
    return int(orjson.loads(raw)["log_start"]) if raw else 0


def check_partition_increase(current: int, requested: int) -> None:
    """A topic's partition count only grows (Kafka's wording for the refusals)."""
    if requested < current:
        raise InvalidPartitions(f"Topic currently has {current} partitions, which is higher than "
                                f"the requested {requested}.")
    if requested == current:
        raise InvalidPartitions(f"Topic already has {current} partition(s).")


_RETRIES = 20  # compare-and-swap attempts of a read-modify-write before giving up
_TXN_OPS = 100  # operations per transaction, under etcd's default --max-txn-ops of 128


class CommitConflict(KafkaError):
    """The partition state moved under us (same epoch); reload and retry."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


class Keys:
    def __init__(self, prefix: str) -> None:
        self.p = prefix.rstrip("/")

    def topics(self) -> str:
        return f"{self.p}/topics/"

    def topic(self, name: str) -> str:
        return f"{self.p}/topics/{name}"

    def partitions(self, topic: str) -> str:
        return f"{self.p}/partitions/{topic}/"

    def leader(self, topic: str, p: int) -> str:
        return f"{self.p}/partitions/{topic}/{p}/leader"

    def epoch(self, topic: str, p: int) -> str:
        return f"{self.p}/partitions/{topic}/{p}/epoch"

    def brokers(self) -> str:
        return f"{self.p}/brokers/"

    def broker(self, broker_id: int) -> str:
        return f"{self.p}/brokers/{broker_id}"

    def state(self, topic: str, p: int) -> str:
        return f"{self.p}/partitions/{topic}/{p}/state"

    def log_start(self, topic: str, p: int) -> str:
        return f"{self.p}/partitions/{topic}/{p}/start"

    def all_segments(self) -> str:
        return f"{self.p}/segments/"

    def segments_of_topic(self, topic: str) -> str:
        return f"{self.p}/segments/{topic}/"

    def segments(self, topic: str, p: int) -> str:
        return f"{self.p}/segments/{topic}/{p}/"

    def segment(self, topic: str, p: int, base: int) -> str:
        return f"{self.p}/segments/{topic}/{p}/{base:020d}"

    def producer_ids(self) -> str:
        return f"{self.p}/producer_ids/next"

    def deletions(self) -> str:
        return f"{self.p}/deleting/"

    def deletion(self, topic_id: str) -> str:
        return f"{self.p}/deleting/{topic_id}"

    # ACL bindings: P/acls/{digest of the binding}
    def acls(self) -> str:
        return f"{self.p}/acls/"

    # dynamic broker configs: P/configs/cluster (every broker), P/configs/brokers/{id}
    def configs(self) -> str:
        return f"{self.p}/configs/"

    def broker_configs(self, broker: str) -> str:
        return f"{self.p}/configs/brokers/{broker}" if broker else f"{self.p}/configs/cluster"

    # consumer groups: P/groups/{quoted group}/meta and .../offsets/{topic}/{p}
    def groups(self) -> str:
        return f"{self.p}/groups/"

    def group(self, group_id: str) -> str:
        return f"{self.p}/groups/{quote(group_id, safe='')}/"

    def group_meta(self, group_id: str) -> str:
        return self.group(group_id) + "meta"

    def group_offset(self, group_id: str, topic: str, p: int) -> str:
        return f"{self.group(group_id)}offsets/{topic}/{p}"

    # SASL users (kafscale/security/users.py): P/users/{quoted user name}
    def users(self) -> str:
        return f"{self.p}/users/"

    def user(self, name: str) -> str:
        return f"{self.p}/users/{quote(name, safe='')}"


class Cluster:
    """Domain operations on the metadata store."""

    def __init__(self, store: MetadataStore, prefix: str = "/kafscale") -> None:
        self.store = store
        self.keys = Keys(prefix)
        self.registration: tuple[str, bytes] | None = None  # (key, value) while registered

    # -- topics -------------------------------------------------------------------------

    def list_topics(self) -> dict[str, TopicRecord]:
        prefix = self.keys.topics()
        return {k[len(prefix):]: TopicRecord.decode(k[len(prefix):], v)
                for k, v in self.store.get_prefix(prefix)}

    def get_topic(self, name: str) -> TopicRecord | None:
        raw = self.store.get(self.keys.topic(name))
        return None if raw is None else TopicRecord.decode(name, raw)

    def create_topic(self, name: str, partitions: int, config: dict[str, str] | None = None) -> TopicRecord:
        rec = TopicRecord(name, uuid.uuid4().hex, partitions, dict(config or {}), int(time.time() * 1000))
        key = self.keys.topic(name)
        # Leftover partition keys of an older topic of the same name (a crash between
        # the two steps of a delete) must not leak into this one.
        ok = self.store.txn(
            [ValueIs(key, None)],
            [Delete(self.keys.partitions(name), prefix=True),
             Delete(self.keys.segments_of_topic(name), prefix=True),
             Put(key, rec.encode())],
        )
        if not ok:
            raise TopicExists(f"topic {name!r} already exists")
        return rec

    def add_partitions(self, name: str, count: int) -> tuple[TopicRecord, TopicRecord]:
        """Grow topic ``name`` to ``count`` partitions: one transaction comparing the topic
        record's exact bytes (re-read and re-checked if another writer, say a config
        change, got in between). The new partitions have no keys yet, so they are empty
        and unowned; the topic watch makes every broker's assignment place them.
        Returns (record before, record after)."""
        key = self.keys.topic(name)
        for _ in range(10):
            raw = self.store.get(key)
            if raw is None:
                raise UnknownTopicOrPartition(f"The topic '{name}' does not exist.")
            old = TopicRecord.decode(name, raw)
            check_partition_increase(old.partitions, count)
            new = TopicRecord(name, old.id, count, old.config, old.created_ms)
            if self.store.txn([ValueIs(key, raw)], [Put(key, new.encode())]):
                return old, new
        raise CommitConflict(f"topic {name!r} kept changing while adding partitions; retry")

    def delete_topic(self, name: str) -> TopicRecord:
        key = self.keys.topic(name)
        raw = self.store.get(key)
        if raw is None:
            raise UnknownTopicOrPartition(f"unknown topic {name!r}")
        rec = TopicRecord.decode(name, raw)
        job = orjson.dumps({"topic": name, "partitions": rec.partitions})
        ok = self.store.txn(
            [ValueIs(key, raw)],
            [Delete(key),
             Delete(self.keys.partitions(name), prefix=True),
             Delete(self.keys.segments_of_topic(name), prefix=True),
             Put(self.keys.deletion(rec.id), job)],
        )
        if not ok:
            raise UnknownTopicOrPartition(f"topic {name!r} changed while deleting; retry")
        return rec

    def pending_deletions(self) -> list[tuple[str, str]]:
        """(topic_id, topic name) of topics whose objects still need removing."""
        prefix = self.keys.deletions()
        return [(k[len(prefix):], orjson.loads(v)["topic"]) for k, v in self.store.get_prefix(prefix)]

    def finish_deletion(self, topic_id: str) -> None:
        self.store.delete(self.keys.deletion(topic_id))

    def alter_topic_config(self, name: str, change: Callable[[dict[str, str]], dict[str, str]]) -> TopicRecord:
        """Replace the topic's config with ``change(current config)``, comparing the topic
        record's exact bytes (a concurrent change makes us read again)."""
        key = self.keys.topic(name)
        for _ in range(_RETRIES):
            raw = self.store.get(key)
            if raw is None:
                raise UnknownTopicOrPartition(f"unknown topic {name!r}")
            rec = TopicRecord.decode(name, raw)
            rec.config = change(dict(rec.config))
            if self.store.txn([ValueIs(key, raw)], [Put(key, rec.encode())]):
                return rec
        raise CommitConflict(f"topic {name!r}: its config kept changing; retry")

    # -- ACLs ---------------------------------------------------------------------------

    def list_acls(self) -> dict[str, dict]:
        """Every stored ACL binding, by key."""
        return {k: orjson.loads(v) for k, v in self.store.get_prefix(self.keys.acls())}

    def create_acls(self, bindings: list[dict]) -> None:
        """Store ``bindings`` (one key each, named by a digest of the binding: storing one
        twice changes nothing), in one transaction."""
        ops = []
        for binding in bindings:
            raw = orjson.dumps(binding, option=orjson.OPT_SORT_KEYS)
            ops.append(Put(self.keys.acls() + hashlib.sha256(raw).hexdigest()[:32], raw))
        for i in range(0, len(ops), _TXN_OPS):  # (etcd's limit of operations per transaction)
            self.store.txn([], ops[i:i + _TXN_OPS])

    def delete_acls(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _TXN_OPS):
            self.store.txn([], [Delete(k) for k in keys[i:i + _TXN_OPS]])

    # -- dynamic broker configs ---------------------------------------------------------

    def dynamic_configs(self) -> dict[str, dict[str, str]]:
        """The broker configs set at run time: {"": every broker's, "<id>": one broker's}."""
        out: dict[str, dict[str, str]] = {}
        brokers = self.keys.broker_configs("0")[:-1]
        for key, raw in self.store.get_prefix(self.keys.configs()):
            if key == self.keys.broker_configs(""):
                out[""] = orjson.loads(raw)
            elif key.startswith(brokers):
                out[key[len(brokers):]] = orjson.loads(raw)
        return out

    def alter_broker_configs(self, broker: str, change: Callable[[dict[str, str]], dict[str, str]]
                             ) -> dict[str, str]:
        """Replace the run-time configs of broker ``broker`` ("" for every broker) with
        ``change(current)``, compare-and-swap; an empty result removes the key."""
        return self._swap_json(self.keys.broker_configs(broker), change,
                               f"broker configs {broker or '<default>'}: kept changing; retry")

    def _swap_json(self, key: str, change: Callable[[dict[str, Any]], dict[str, Any]],
                   conflict: str) -> dict[str, Any]:
        """Replace the JSON object at ``key`` with ``change(current)`` ({} when absent),
        compare-and-swap on its exact bytes; an empty result deletes the key."""
        for _ in range(_RETRIES):
            raw = self.store.get(key)
            new = change(orjson.loads(raw) if raw is not None else {})
            op = Put(key, orjson.dumps(new, option=orjson.OPT_SORT_KEYS)) if new else Delete(key)
            if self.store.txn([ValueIs(key, raw)], [op]):
                return new
        raise CommitConflict(conflict)

    # -- SASL users ---------------------------------------------------------------------

    def list_users(self) -> dict[str, dict[str, Any]]:
        """Every user's SCRAM credentials: {user: {mechanism: credential fields}}."""
        prefix = self.keys.users()
        return {unquote(k[len(prefix):]): orjson.loads(v) for k, v in self.store.get_prefix(prefix)}

    def alter_user(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Replace user ``name``'s credentials with ``change(current)`` ({} when it has none),
        compare-and-swap; an empty result removes the user. ``change`` may raise to refuse."""
        return self._swap_json(self.keys.user(name), change, f"user {name!r}: its credentials kept changing; retry")

    # -- partitions ---------------------------------------------------------------------

    def load_partition(self, topic: str, p: int) -> PartitionSnapshot:
        leader_raw = self.store.get(self.keys.leader(topic, p))
        state_raw = self.store.get(self.keys.state(topic, p))
        segments = [SegmentRef.decode(v) for _, v in self.store.get_prefix(self.keys.segments(topic, p))]
        start_raw = self.store.get(self.keys.log_start(topic, p))
        return PartitionSnapshot(Leader.decode(leader_raw), leader_raw,
                                 PartitionState.decode(state_raw), state_raw, segments, start_raw)

    def claim_partition(self, topic: TopicRecord, p: int, broker_id: int,
                        lease: int | None = None) -> tuple[Leader, bytes]:
        """Become the partition's owner with the next leader epoch, if it has none now.

        The owner record is attached to the broker's lease, so it vanishes when the broker
        dies; the epoch counter beside it is not, so epochs only ever grow.
        """
        leader_key, epoch_key = self.keys.leader(topic.name, p), self.keys.epoch(topic.name, p)
        epoch_raw = self.store.get(epoch_key)
        epoch = int(epoch_raw) if epoch_raw is not None else 0
        new = Leader(broker_id, epoch + 1, topic.id)
        raw = new.encode()
        ok = self.store.txn(
            [ValueIs(self.keys.topic(topic.name), topic.encode()), ValueIs(leader_key, None),
             ValueIs(epoch_key, epoch_raw)],
            [Put(leader_key, raw, lease), Put(epoch_key, str(new.epoch).encode())],
        )
        if not ok:
            raise Fenced(f"{topic.name}-{p}: owned by another broker, or changed while claiming")
        return new, raw

    def release_partition(self, topic: str, p: int, leader_raw: bytes) -> bool:
        """Give up ownership (graceful hand-over); False if it was not ours any more."""
        key = self.keys.leader(topic, p)
        return self.store.txn([ValueIs(key, leader_raw)], [Delete(key)])

    def owners(self, hws: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], tuple[Leader, bytes]]:
        """Every partition's current owner record; with ``hws``, also fills it with every
        partition's committed high watermark (from the same read)."""
        out = {}
        prefix = f"{self.keys.p}/partitions/"
        for key, raw in self.store.get_prefix(prefix):
            if key.endswith("/leader"):
                topic, part = key[len(prefix):-len("/leader")].rsplit("/", 1)
                leader = Leader.decode(raw)
                if leader is not None:
                    out[(topic, int(part))] = (leader, raw)
            elif hws is not None and key.endswith("/state"):
                topic, part = key[len(prefix):-len("/state")].rsplit("/", 1)
                hws[(topic, int(part))] = PartitionState.decode(raw).hw
        return out

    # -- brokers ------------------------------------------------------------------------

    def register_broker(self, broker_id: int, info: dict[str, Any], lease: int) -> int | None:
        """Announce a live broker; its key lives exactly as long as its lease.

        If the id is still registered by an earlier incarnation (a broker restarted
        after kill -9 before its lease expired), that lease is revoked: its owner
        records go with it, so this incarnation can claim them at once. Returns the
        revoked lease, if any.
        """
        key = self.keys.broker(broker_id)
        raw = orjson.dumps(dict(info, lease=lease))
        for _ in range(10):
            current = self.store.get(key)
            if self.store.txn([ValueIs(key, current)], [Put(key, raw, lease)]):
                self.registration = (key, raw)
                if current is None:
                    return None
                old = orjson.loads(current).get("lease")
                if old and old != lease:
                    try:
                        self.store.revoke_lease(int(old))
                    except KafkaError:
                        pass  # already gone
                return old
        raise CommitConflict(f"broker {broker_id}: registration kept changing")

    def deregister_broker(self, broker_id: int) -> None:
        self.store.delete(self.keys.broker(broker_id))

    def brokers(self) -> dict[int, dict[str, Any]]:
        prefix = self.keys.brokers()
        return {int(k[len(prefix):]): orjson.loads(v) for k, v in self.store.get_prefix(prefix)}

    def commit_segments(self, topic: str, items: list[tuple]) -> list:
        """Commit segments of several partitions of one topic, each with its new high
        watermark, in one transaction; ``items`` are (partition, leader_raw, state_raw,
        SegmentRef, new state bytes), at most MAX_TXN_OPS // 2 of them (two compares
        and two puts each; etcd bounds each list by its --max-txn-ops).

        Returns, per item, the new state bytes or the exception that failed it: Fenced
        if our epoch is no longer current, CommitConflict if the state moved (e.g. an
        earlier commit whose answer we never got did land), StoreUnavailable if etcd did
        not answer (the outcome is then unknown). When the transaction's compare fails,
        the partitions are committed one by one to tell which of them moved.
        """
        compare, ops, raws = [], [], []
        for p, leader_raw, state_raw, seg, new_raw in items:
            state_key = self.keys.state(topic, p)
            raws.append(new_raw)
            compare += [ValueIs(self.keys.leader(topic, p), leader_raw), ValueIs(state_key, state_raw)]
            ops += [Put(self.keys.segment(topic, p, seg.base), seg.encode()), Put(state_key, raws[-1])]
        try:
            if self.store.txn(compare, ops):
                return raws
            if len(items) > 1:
                return [self.commit_segments(topic, [item])[0] for item in items]
            p, leader_raw = items[0][0], items[0][1]
            if self.store.get(self.keys.leader(topic, p)) != leader_raw:
                return [Fenced(f"{topic}-{p}: epoch is no longer ours")]
            return [CommitConflict(f"{topic}-{p}: state changed under the owner")]
        except StoreUnavailable as exc:
            return [exc] * len(items)

    def swap_segments(self, topic: str, p: int, leader_raw: bytes, old: list[SegmentRef],
                      new: SegmentRef) -> None:
        """Replace the manifest entries ``old`` (consecutive) by ``new``, which holds the
        same batches, in one transaction that compares the owner record and each entry
        replaced: a fenced or racing compactor can never lose or duplicate a record.
        Raises Fenced if the owner record is not ours, CommitConflict if an entry moved."""
        compare = [ValueIs(self.keys.leader(topic, p), leader_raw)]
        compare += [ValueIs(self.keys.segment(topic, p, s.base), s.encode()) for s in old]
        ops: list[Any] = [Delete(self.keys.segment(topic, p, s.base)) for s in old if s.base != new.base]
        ops.append(Put(self.keys.segment(topic, p, new.base), new.encode()))
        if self.store.txn(compare, ops):
            return
        if self.store.get(self.keys.leader(topic, p)) != leader_raw:
            raise Fenced(f"{topic}-{p}: epoch is no longer ours")
        raise CommitConflict(f"{topic}-{p}: the segments to replace changed")

    def advance_log_start(self, topic: str, p: int, leader_raw: bytes, start_raw: bytes | None,
                          log_start: int, drop: list[SegmentRef]) -> bytes:
        """Move the partition's log start to ``log_start`` and delete the manifest entries
        ``drop`` (wholly below it), in one transaction comparing the owner record, the
        log start last seen and each entry dropped. Returns the new log start bytes;
        raises Fenced if the owner record is not ours, CommitConflict if the log start or
        an entry moved (e.g. the compactor replaced it): read again and retry."""
        key = self.keys.log_start(topic, p)
        new_raw = encode_log_start(log_start)
        compare = [ValueIs(self.keys.leader(topic, p), leader_raw), ValueIs(key, start_raw)]
        compare += [ValueIs(self.keys.segment(topic, p, s.base), s.encode()) for s in drop]
        ops: list[Any] = [Put(key, new_raw)]
        ops += [Delete(self.keys.segment(topic, p, s.base)) for s in drop]
        if self.store.txn(compare, ops):
            return new_raw
        if self.store.get(self.keys.leader(topic, p)) != leader_raw:
            raise Fenced(f"{topic}-{p}: epoch is no longer ours")
        raise CommitConflict(f"{topic}-{p}: the log start or the segments changed")

    def referenced_objects(self) -> set[str]:
        """Every object key some manifest entry refers to (garbage collection keeps them)."""
        keys: set[str] = set()
        for _, raw in self.store.get_prefix(self.keys.all_segments()):
            seg = SegmentRef.decode(raw)
            if seg.pos >= 0:
                keys.add(seg.key)
            else:
                keys.update((seg.key + ".kfs", seg.key + ".index"))
        return keys

    # -- cluster ------------------------------------------------------------------------

    def allocate_producer_id(self) -> int:
        """A cluster-wide unique producer id (a counter in etcd, compare-and-swap)."""
        key = self.keys.producer_ids()
        for _ in range(100):
            raw = self.store.get(key)
            nxt = int(raw) if raw is not None else 1000
            if self.store.txn([ValueIs(key, raw)], [Put(key, str(nxt + 1).encode())]):
                return nxt
        raise CommitConflict("producer id allocation kept conflicting")

    def cluster_id(self) -> str:
        """The cluster id (created once, Kafka-style base64 of a UUID)."""
        import base64

        key = f"{self.keys.p}/cluster_id"
        raw = self.store.get(key)
        if raw is None:
            new = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=")
            self.store.txn([ValueIs(key, None)], [Put(key, new)])
            raw = self.store.get(key)
        return raw.decode() if raw else ""

    # -- consumer groups ----------------------------------------------------------------

    def load_groups(self) -> dict[str, tuple[bytes | None, dict[tuple[str, int], bytes]]]:
        """Every stored group: (metadata bytes or None, {(topic, partition): offset bytes})."""
        prefix = self.keys.groups()
        out: dict[str, tuple[bytes | None, dict[tuple[str, int], bytes]]] = {}
        for key, value in self.store.get_prefix(prefix):
            quoted, _, rest = key[len(prefix):].partition("/")
            group_id = unquote(quoted)
            meta, offsets = out.get(group_id, (None, {}))
            if rest == "meta":
                meta = value
            elif rest.startswith("offsets/"):
                topic, _, p = rest[len("offsets/"):].rpartition("/")
                offsets[(topic, int(p))] = value
            out[group_id] = (meta, offsets)
        return out

    def write_group(self, ops: list[Put | Delete]) -> None:
        """Apply group/offset writes in one transaction (the caller keeps it under etcd's
        ops-per-txn limit and free of duplicate keys).

        Once this broker is registered, the write also requires its registration to be
        live: a coordinator whose lease expired (frozen, cut off) cannot write any more.
        """
        guard = [ValueIs(*self.registration)] if self.registration else []
        if not self.store.txn(guard, ops):
            raise Fenced("this broker's registration expired: it no longer coordinates groups")

    def group_meta_put(self, group_id: str, raw: bytes) -> Put:
        return Put(self.keys.group_meta(group_id), raw)

    def group_offset_put(self, group_id: str, topic: str, p: int, raw: bytes) -> Put:
        return Put(self.keys.group_offset(group_id, topic, p), raw)

    def group_offset_delete(self, group_id: str, topic: str, p: int) -> Delete:
        return Delete(self.keys.group_offset(group_id, topic, p))

    def group_delete(self, group_id: str) -> Delete:
        return Delete(self.keys.group(group_id), prefix=True)
