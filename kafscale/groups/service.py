"""The async layer over the group state machines: loading, timers, and etcd writes.

It owns one ``Group`` per group id (all loaded from etcd at start), drives them with
one clock (``now()``: the runtime's monotonic clock, shifted to read as wall-clock
seconds so persisted timestamps mean something), delivers parked JoinGroup/SyncGroup
answers, and runs one timer task that ticks each group at its next deadline.

Writes go through a small write-behind queue per group: whatever arrives while a
transaction is in flight is merged into the next one (so a commit storm becomes a few
etcd round trips, not one per partition), chunked under etcd's 128-ops-per-txn
limit, and every request is answered only after its data is committed. Group
metadata goes through the same queue, so it is ordered with the offsets.

Uses only the injected Runtime; never imports curio.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson

from kafscale.errors import ErrorCode
from kafscale.groups.coordinator import (Group, GroupConfig, GroupDescription, GroupState, JoinResult,
                                         OffsetEntry, SyncResult, Waiter)
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.store import MAX_TXN_OPS, Delete, Put
from kafscale.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class CommitPartition:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""


@dataclass
class _Write:
    ops: list[Put | Delete]
    event: Any
    on_done: Callable[[bool], None] | None = None
    ok: bool = True
    done: bool = False


@dataclass
class _Queue:
    items: list[_Write] = field(default_factory=list)
    running: bool = False


def encode_snapshot(snap: dict) -> bytes:
    def b64(b: bytes) -> str:
        return base64.b64encode(bytes(b)).decode()
    members = [{**m, "pr": [[n, b64(meta)] for n, meta in m["pr"]], "a": b64(m["a"])} for m in snap["m"]]
    return orjson.dumps({**snap, "m": members})


def decode_snapshot(raw: bytes) -> dict:
    snap = orjson.loads(raw)
    snap["m"] = [{**m, "pr": [[n, base64.b64decode(meta)] for n, meta in m["pr"]],
                  "a": base64.b64decode(m.get("a", ""))} for m in snap.get("m") or []]
    return snap


class GroupService:
    def __init__(self, rt: Runtime, cluster: Cluster, config: GroupConfig, node_id: int = 0,
                 topics: Callable[[], dict[str, Any]] | None = None) -> None:
        self.rt = rt
        self.cluster = cluster
        self.config = config
        self.node_id = node_id
        self.topics = topics or (lambda: {})
        self.groups: dict[str, Group] = {}
        self.placement: Callable[[str], int] = lambda key: self.node_id
        self._queues: dict[str, _Queue] = {}
        self._wake = rt.event()
        self._tasks: list[Any] = []
        self._clock_offset = time.time() - rt.monotonic()
        self.stats = {"offset_txns": 0, "offsets_committed": 0, "meta_writes": 0}

    def now(self) -> float:
        return self.rt.monotonic() + self._clock_offset

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.load()
        self._tasks.append(await self.rt.spawn(self._timer))
        self._tasks.append(await self.rt.spawn(self._expiry))

    async def stop(self) -> None:
        for task in self._tasks:
            await task.cancel()
        self._tasks.clear()
        # answer whatever is parked so nothing waits on a broker that is going away
        for g in self.groups.values():
            await self._release(g)

    async def _release(self, g: Group) -> None:
        """Answer a group's parked requests with NOT_COORDINATOR (we stop coordinating it)."""
        for m in g.members.values():
            for w in (m.join_waiter, m.sync_waiter):
                if w is not None and w.result is None:
                    w.result = (JoinResult(ErrorCode.NOT_COORDINATOR, member_id=m.member_id)
                                if w.kind == "join" else SyncResult(ErrorCode.NOT_COORDINATOR))
                    if w.token is not None:
                        await w.token.set()

    async def load(self) -> None:
        stored = await self.rt.run_in_thread(self.cluster.load_groups)
        now = self.now()
        for group_id, (meta, offsets) in stored.items():
            if group_id in self.groups or not self.owns(group_id):
                continue
            entries = {}
            for tp, raw in offsets.items():
                try:
                    entries[tp] = OffsetEntry.decode(orjson.loads(raw))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("group %s: unreadable offset %s: %s", group_id, tp, exc, extra={"group": group_id})
            snap = None
            if meta is not None:
                try:
                    snap = decode_snapshot(meta)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("group %s: unreadable metadata, loading it empty: %s", group_id, exc,
                                extra={"group": group_id})
            self.groups[group_id] = Group.restore(group_id, self.config, now, snap, entries)
        if stored:
            log.info("loaded %d consumer groups from etcd", len(stored))

    # -- coordinator placement ----------------------------------------------------------

    def coordinator_for(self, key: str) -> int:
        """The broker that coordinates ``key``: the cluster's placement (see membership)."""
        return self.placement(key)

    async def placement_changed(self) -> None:
        """The live brokers changed: let go of groups that moved away (their parked
        requests get NOT_COORDINATOR and rejoin at the new coordinator), and load the
        ones that moved here from etcd, where their last coordinator left them."""
        gone = [g for g in self.groups if not self.owns(g)]
        for group_id in gone:
            await self._release(self.groups.pop(group_id))
        if gone:
            log.info("%d consumer groups moved to other brokers", len(gone))
        await self.load()

    def owns(self, group_id: str) -> bool:
        return self.coordinator_for(group_id) == self.node_id

    def _check_group(self, group_id: str, allow_empty: bool = False) -> int | None:
        if group_id is None or (group_id == "" and not allow_empty):
            return ErrorCode.INVALID_GROUP_ID
        if not self.owns(group_id):
            return ErrorCode.NOT_COORDINATOR
        return None

    # -- settling: stores first, then answers ------------------------------------------

    async def _settle(self, group: Group) -> None:
        while True:
            stores = group.take_stores()
            if not stores:
                break
            for req in stores:
                ok = await self._write(group.group_id, [
                    self.cluster.group_meta_put(group.group_id, encode_snapshot(req.snapshot))])
                self.stats["meta_writes"] += 1
                if not ok:
                    log.warning("group %s: storing metadata failed", group.group_id, extra={"group": group.group_id})
                group.store_done(self.now(), req, ok)
        for w in group.drain():
            if w.token is not None:
                await w.token.set()
        await self._wake.set()  # deadlines may have moved

    async def _await(self, group: Group, waiter: Waiter) -> Any:
        if waiter.result is None:
            waiter.token = self.rt.event()
        await self._settle(group)
        if waiter.result is None:
            await self.rt.wait(waiter.token, None)
        return waiter.result

    # -- group membership ---------------------------------------------------------------

    async def join(self, group_id: str, member_id: str, group_instance_id: str | None, client_id: str,
                   client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int,
                   protocol_type: str, protocols: Iterable[tuple[str, bytes]],
                   require_known_member_id: bool) -> JoinResult:
        err = self._check_group(group_id)
        if err is not None:
            return JoinResult(err, member_id=member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id != "":
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id)
            group = self.groups[group_id] = Group(group_id, self.config, self.now())
        w = group.join(self.now(), member_id, group_instance_id, client_id or "", client_host,
                       session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols,
                       require_known_member_id)
        return await self._await(group, w)

    async def sync(self, group_id: str, member_id: str, group_instance_id: str | None, generation: int,
                   protocol_type: str | None, protocol_name: str | None,
                   assignments: dict[str, bytes]) -> SyncResult:
        err = self._check_group(group_id)
        if err is not None:
            return SyncResult(err)
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        w = group.sync(self.now(), member_id, group_instance_id, generation, protocol_type, protocol_name,
                       assignments)
        return await self._await(group, w)

    async def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                        generation: int) -> int:
        err = self._check_group(group_id)
        if err is not None:
            return err
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        code = group.heartbeat(self.now(), member_id, group_instance_id, generation)
        await self._settle(group)
        return code

    async def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> tuple[int, list[int]]:
        err = self._check_group(group_id)
        if err is not None:
            return err, [err] * len(members)
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
        top, codes = group.leave(self.now(), members)
        await self._settle(group)
        return top, codes

    # -- offsets ------------------------------------------------------------------------

    async def commit_offsets(self, group_id: str, generation: int, member_id: str,
                             group_instance_id: str | None, retention_ms: int,
                             partitions: list[CommitPartition]) -> list[int]:
        """One code per partition, in order. Answers after the offsets are in etcd."""
        err = self._check_group(group_id, allow_empty=True)
        if err is not None:
            return [err] * len(partitions)
        group = self.groups.get(group_id)
        if group is None:
            if generation >= 0:
                return [ErrorCode.ILLEGAL_GENERATION] * len(partitions)
            group = self.groups[group_id] = Group(group_id, self.config, self.now())
        now = self.now()
        code = group.validate_commit(now, member_id, group_instance_id, generation)
        if code != ErrorCode.NONE:
            return [code] * len(partitions)
        topics = self.topics()
        now_ms = int(now * 1000)
        codes: list[int] = []
        ops: list[Put | Delete] = []
        entries: dict[tuple[str, int], OffsetEntry] = {}
        for p in partitions:
            topic = topics.get(p.topic)
            if topic is None or not 0 <= p.partition < topic.partitions:
                codes.append(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                continue
            c = group.check_metadata(p.metadata)
            if c != ErrorCode.NONE:
                codes.append(c)
                continue
            e = OffsetEntry(p.offset, p.leader_epoch, p.metadata or "", now_ms,
                            now_ms + retention_ms if retention_ms > 0 else None, getattr(topic, "id", ""))
            entries[(p.topic, p.partition)] = e
            ops.append(self.cluster.group_offset_put(group_id, p.topic, p.partition, orjson.dumps(e.encode())))
            codes.append(ErrorCode.NONE)
        if not ops:
            return codes

        def applied(ok: bool) -> None:
            if ok:
                group.offsets.update(entries)

        group.pending_commits += 1
        try:
            ok = await self._write(group_id, ops, applied)
        finally:
            group.pending_commits -= 1
        await self._settle(group)
        if not ok:
            return [ErrorCode.COORDINATOR_NOT_AVAILABLE if c == ErrorCode.NONE else c for c in codes]
        self.stats["offsets_committed"] += len(ops)
        return codes

    def _offset(self, group: Group, topic: str, partition: int) -> OffsetEntry | None:
        e = group.offsets.get((topic, partition))
        if e is None:
            return None
        rec = self.topics().get(topic)
        if rec is None or (e.topic_id and getattr(rec, "id", e.topic_id) != e.topic_id):
            return None  # committed for a topic that has since been deleted
        return e

    async def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None
                            ) -> tuple[int, list[tuple[str, int, OffsetEntry | None]]]:
        """The committed offsets (None: never committed); partitions None means all."""
        err = self._check_group(group_id, allow_empty=True)
        if err is not None:
            return err, []
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.NONE, [(t, p, None) for t, p in partitions or []]
        if partitions is None:
            found = [(t, p, self._offset(group, t, p)) for t, p in sorted(group.offsets)]
            return ErrorCode.NONE, [x for x in found if x[2] is not None]
        return ErrorCode.NONE, [(t, p, self._offset(group, t, p)) for t, p in partitions]

    async def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]
                             ) -> tuple[int, dict[tuple[str, int], int]]:
        err = self._check_group(group_id)
        if err is not None:
            return err, {}
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        top, codes = group.deletable_offsets(partitions)
        if top != ErrorCode.NONE:
            return top, {}
        gone = [tp for tp, c in codes.items() if c == ErrorCode.NONE and tp in group.offsets]
        if gone:
            ok = await self._write(group_id, [self.cluster.group_offset_delete(group_id, t, p) for t, p in gone],
                                   lambda ok: [group.offsets.pop(tp, None) for tp in gone] if ok else None)
            if not ok:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        return ErrorCode.NONE, codes

    # -- admin --------------------------------------------------------------------------

    def describe(self, group_id: str) -> tuple[int, GroupDescription]:
        err = self._check_group(group_id, allow_empty=True)
        group = self.groups.get(group_id)
        if err is not None or group is None:
            return err or ErrorCode.NONE, GroupDescription(group_id, GroupState.DEAD.value, "", "", [])
        return ErrorCode.NONE, group.describe()

    def list_groups(self, states: Iterable[str] = (), types: Iterable[str] = ()) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every live group, optionally filtered."""
        want_states = {s.lower() for s in states}
        want_types = {t.lower() for t in types}
        if want_types and "classic" not in want_types:
            return []
        return [(g.group_id, g.protocol_type or "", g.state.value) for g in self.groups.values()
                if g.state is not GroupState.DEAD
                and (not want_states or g.state.value.lower() in want_states)]

    async def delete_groups(self, group_ids: list[str]) -> list[int]:
        out = []
        for group_id in group_ids:
            err = self._check_group(group_id, allow_empty=True)
            group = self.groups.get(group_id)
            if err is not None:
                out.append(err)
            elif group is None or group.state is GroupState.DEAD:
                out.append(ErrorCode.GROUP_ID_NOT_FOUND)
            elif group.state is not GroupState.EMPTY:
                out.append(ErrorCode.NON_EMPTY_GROUP)
            else:
                # Dead first, so nobody joins while the delete is in flight.
                group.mark_dead(self.now())
                if await self._write(group_id, [self.cluster.group_delete(group_id)]):
                    if self.groups.get(group_id) is group:
                        del self.groups[group_id]
                    out.append(ErrorCode.NONE)
                else:
                    group.state = GroupState.EMPTY
                    out.append(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        return out

    # -- the write-behind queue ---------------------------------------------------------

    async def _write(self, group_id: str, ops: list[Put | Delete],
                     on_done: Callable[[bool], None] | None = None) -> bool:
        w = _Write(list(ops), self.rt.event(), on_done)
        q = self._queues.setdefault(group_id, _Queue())
        q.items.append(w)
        if not q.running:
            q.running = True
            await self.rt.spawn(self._writer, group_id, q)
        await self.rt.wait(w.event, None)
        return w.ok

    async def _writer(self, group_id: str, q: _Queue) -> None:
        try:
            while q.items:
                batch, q.items = q.items, []
                for ops, writes in _chunks(batch):
                    try:
                        await self.rt.run_in_thread(self.cluster.write_group, ops)
                        self.stats["offset_txns"] += 1
                    except Exception as exc:  # noqa: BLE001 - the requests get a retriable error
                        log.warning("group %s: etcd write of %d ops failed: %s", group_id, len(ops), exc,
                                    extra={"group": group_id})
                        for w in writes:
                            w.ok = False
                for w in batch:
                    if w.on_done is not None:
                        w.on_done(w.ok)
                    w.done = True
                    await w.event.set()
        finally:
            q.running = False
            if self._queues.get(group_id) is q and not q.items:
                del self._queues[group_id]

    # -- background ---------------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            # a fresh wake event before looking: a change made while we look still wakes us
            self._wake = wake = self.rt.event()
            now = self.now()
            nearest: float | None = None
            for group in list(self.groups.values()):
                deadline = group.next_deadline()
                if deadline is not None and deadline <= now:
                    try:
                        group.tick(now)
                        await self._settle(group)
                    except Exception:  # noqa: BLE001 - one group's bug must not stop the clock
                        log.exception("group %s: timer tick failed", group.group_id, extra={"group": group.group_id})
                    deadline = group.next_deadline()
                if deadline is not None and (nearest is None or deadline < nearest):
                    nearest = deadline
            timeout = None if nearest is None else max(nearest - self.now(), 0.001)
            await self.rt.wait(wake, timeout)

    async def _expiry(self) -> None:
        while True:
            # read at every pass: the setting may change at run time
            await self.rt.sleep(self.config.offsets_retention_check_interval_ms / 1000.0)
            try:
                await self.expire_offsets()
            except Exception as exc:  # noqa: BLE001 - retried on the next pass
                log.warning("offsets expiry pass failed: %s", exc)

    async def expire_offsets(self) -> int:
        """Drop offsets past retention and offsets of deleted topics; drop empty groups
        left with no offsets. Returns how many offsets were removed."""
        now = self.now()
        now_ms = int(now * 1000)
        topics = self.topics()
        removed = deleted = 0
        gone_topics: dict[str, bool] = {}
        for group in list(self.groups.values()):
            if group.pending_commits:
                continue  # a commit in flight may renew what would expire: next pass
            drop = set(group.expired_offsets(now_ms))
            for (topic, p), e in group.offsets.items():
                rec = topics.get(topic)
                if rec is not None and (not e.topic_id or getattr(rec, "id", e.topic_id) == e.topic_id):
                    continue
                if topic not in gone_topics:  # our topic table may lag: ask etcd itself
                    now_rec = await self.rt.run_in_thread(self.cluster.get_topic, topic)
                    gone_topics[topic] = now_rec is None or (bool(e.topic_id) and now_rec.id != e.topic_id)
                if gone_topics[topic]:
                    drop.add((topic, p))
            if drop:
                ops = [self.cluster.group_offset_delete(group.group_id, t, p) for t, p in sorted(drop)]
                if await self._write(group.group_id, ops,
                                     lambda ok, g=group, d=drop: [g.offsets.pop(tp, None) for tp in d] if ok else None):
                    removed += len(drop)
            if group.removable and self.groups.get(group.group_id) is group:
                # Dead first (no await in between), so nobody joins or commits while the
                # delete is in flight; back to Empty if it fails.
                group.mark_dead(now)
                if await self._write(group.group_id, [self.cluster.group_delete(group.group_id)]):
                    if self.groups.get(group.group_id) is group:
                        del self.groups[group.group_id]
                    deleted += 1
                else:
                    group.state = GroupState.EMPTY
        if removed or deleted:
            log.info("expired %d committed offsets, removed %d empty groups", removed, deleted)
        return removed


def _chunks(batch: list[_Write]) -> list[tuple[list[Put | Delete], list[_Write]]]:
    """Merge queued writes into transactions: at most MAX_TXN_OPS ops, no key twice (a
    later put of a key replaces an earlier one), prefix deletes alone in their own."""
    out: list[tuple[list[Put | Delete], list[_Write]]] = []
    ops: dict[str, Put | Delete] = {}
    writes: list[_Write] = []

    def close() -> None:
        nonlocal ops, writes
        if ops:
            out.append((list(ops.values()), writes))
        ops, writes = {}, []

    for w in batch:
        if any(isinstance(op, Delete) and op.prefix for op in w.ops):
            close()
            out.append((list(w.ops), [w]))
            continue
        new_keys = {op.key for op in w.ops} - ops.keys()
        if ops and len(ops) + len(new_keys) > MAX_TXN_OPS:
            close()
        for op in w.ops:
            if op.key not in ops and len(ops) >= MAX_TXN_OPS:
                close()  # one request bigger than a transaction: split it
            ops.pop(op.key, None)
            ops[op.key] = op
            if not writes or writes[-1] is not w:
                writes.append(w)
    close()
    return out
