"""Cluster membership: the broker's registration, the live-broker view, and partition ownership.

Each broker registers ``P/brokers/{id}`` under an etcd lease it keeps alive. The live
brokers are whatever registrations exist; every broker watches them. From the live set
and the topic table every broker computes the same assignment (``assign``): partitions
spread evenly, each topic starting at a different broker, brokers interleaved by rack.
A reconcile loop then makes reality follow it:

- a partition assigned to us with no owner is claimed (a transaction that needs the
  owner record absent, attached to our lease, with the next epoch);
- a partition we own that is assigned to another live broker is handed over (flush,
  then delete our owner record), and that broker claims it when it sees the delete.

A broker that dies stops refreshing its lease; etcd deletes its registration and its
owner records when the lease expires, and the others claim its partitions. A broker
that cannot refresh its lease for a whole TTL stops taking writes: it can no longer
prove it owns anything. No data moves in any of this: the log is in S3.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from typing import Any

from kafscale.errors import ErrorCode, KafkaError, UnknownTopicOrPartition
from kafscale.metadata.cluster import Cluster, TopicRecord
from kafscale.runtime import Runtime
from kafscale.storage.engine import LogManager

log = logging.getLogger(__name__)

HANDOVER_CONCURRENCY = 16  # partitions handed over at once on shutdown

CLAIMS_AT_ONCE = 32


def broker_order(brokers: list[tuple[int, str | None]]) -> list[int]:
    """Live brokers (id, rack) in placement order: sorted, racks interleaved
    (r1b1, r2b1, r3b1, r1b2, ...) so neighbours sit on different racks."""
    by_rack: dict[str | None, list[int]] = {}
    for broker_id, rack in sorted(brokers, key=lambda b: (b[1] or "", b[0])):
        by_rack.setdefault(rack, []).append(broker_id)
    order: list[int] = []
    racks = [by_rack[r] for r in sorted(by_rack, key=lambda r: r or "")]
    for i in range(max((len(r) for r in racks), default=0)):
        order += [r[i] for r in racks if i < len(r)]
    return order


def assign(topics: dict[str, TopicRecord], brokers: list[tuple[int, str | None]]) -> dict[tuple[str, int], int]:
    """The owner of every partition, given live brokers as (id, rack). Deterministic."""
    order = broker_order(brokers)
    if not order:
        return {}
    n = len(order)
    out = {}
    for name in sorted(topics):
        start = zlib.crc32(name.encode()) % n
        for p in range(topics[name].partitions):
            out[(name, p)] = order[(start + p) % n]
    return out


class Membership:
    def __init__(self, rt: Runtime, cluster: Cluster, logs: LogManager, broker_id: int, info: dict[str, Any],
                 lease_ttl: int) -> None:
        self.rt = rt
        self.cluster = cluster
        self.logs = logs
        self.broker_id = broker_id
        self.info = dict(info, instance=uuid.uuid4().hex)
        self.ttl = lease_ttl
        self.lease_id: int | None = None
        self.live: dict[int, dict[str, Any]] = {}
        self.assignment: dict[tuple[str, int], int] = {}
        self._assigned_for: tuple[Any, ...] = ()
        self._wake = rt.event()
        self._tasks: list[Any] = []
        self._cancel_watch = None
        self.lease_ok = False
        self._last_refresh = 0.0
        self.on_live_changed = None  # async callback: the groups' placement moved
        logs.leases_required = True
        logs.desired_owner = self.desired_owner
        logs.on_owners_changed = self.wake
        logs.lifecycle.collects_garbage = self.collects_garbage

    def collects_garbage(self) -> bool:
        """One broker collects garbage: the live one with the lowest id."""
        return self.lease_ok and self.broker_id == min(self.live, default=self.broker_id)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._register()
        queue = self.rt.thread_queue()
        self._cancel_watch = await self.rt.run_in_thread(
            self.cluster.store.watch_prefix, self.cluster.keys.brokers(), queue.put)
        await self.refresh_live()
        self._tasks.append(await self.rt.spawn(self._watch_brokers, queue))
        self._tasks.append(await self.rt.spawn(self._keepalive))
        self._tasks.append(await self.rt.spawn(self._reconcile_loop))

    async def _register(self) -> None:
        lease = await self.rt.run_in_thread(self.cluster.store.grant_lease, self.ttl)
        old = await self.rt.run_in_thread(self.cluster.register_broker, self.broker_id, self.info, lease)
        if old:
            log.warning("broker id %d was still registered (lease %x); took it over", self.broker_id, old)
        self.lease_id = lease
        self.logs.lease_id = lease
        self.lease_ok = True
        self._last_refresh = self.rt.monotonic()
        log.info("registered broker %d under lease %x (ttl %ds)", self.broker_id, lease, self.ttl)

    async def drain(self, timeout: float | None = None) -> None:
        """Hand every partition over (HANDOVER_CONCURRENCY at a time) and leave the
        cluster (graceful shutdown). Past ``timeout`` the rest is left to the lease,
        revoked below: their owner records go with it at once, and what was pending
        there was never acknowledged."""
        self.logs.draining = True
        owned = self.logs.owned_partitions()
        if owned:
            done, left = self.rt.event(), [HANDOVER_CONCURRENCY]

            async def hand_over(plogs) -> None:
                try:
                    for plog in plogs:
                        await plog.release()
                finally:
                    left[0] -= 1
                    if not left[0]:
                        await done.set()

            workers = [await self.rt.spawn(hand_over, owned[i::HANDOVER_CONCURRENCY])
                       for i in range(HANDOVER_CONCURRENCY)]
            if not await self.rt.wait(done, timeout):
                log.warning("shutdown: %d partitions not handed over in %.0f s; leaving them to the lease",
                            sum(1 for p in owned if p.owned), timeout or 0)
                for w in workers:
                    await w.cancel()
        for task in self._tasks:
            await task.cancel()
        if self._cancel_watch:
            await self.rt.run_in_thread(self._cancel_watch)
        if self.lease_id is not None:
            try:
                # Revoking deletes the registration and any owner record left at once.
                await self.rt.run_in_thread(self.cluster.store.revoke_lease, self.lease_id)
            except KafkaError as exc:
                log.info("lease revoke failed (it will expire): %s", exc)

    # -- the live brokers ---------------------------------------------------------------

    async def refresh_live(self) -> None:
        live = await self.rt.run_in_thread(self.cluster.brokers)
        changed = set(live) != set(self.live)
        self.live = live
        await self.wake()
        if changed and self.on_live_changed is not None:
            await self.on_live_changed()

    def coordinator_for(self, key: str) -> int:
        """The broker that coordinates group (or other coordinator) ``key``."""
        order = broker_order(sorted((b, i.get("rack")) for b, i in self.live.items()))
        if not order:
            return self.broker_id
        return order[zlib.crc32(key.encode()) % len(order)]

    async def _watch_brokers(self, queue) -> None:
        while True:
            await queue.get()
            try:
                await self.refresh_live()
            except KafkaError as exc:
                log.warning("broker list refresh failed: %s", exc)

    async def wake(self) -> None:
        await self._wake.set()

    def desired_owner(self, topic: str, partition: int) -> int:
        key = (tuple(sorted((b, i.get("rack")) for b, i in self.live.items())),
               tuple(sorted((t.name, t.id, t.partitions) for t in self.logs.topics.values())))
        if key != self._assigned_for:
            self.assignment = assign(self.logs.topics, list(key[0]))
            self._assigned_for = key
        return self.assignment.get((topic, partition), -1)

    # -- admin: elections and reassignments --------------------------------------------

    async def _partition(self, topic: str, partition: int) -> TopicRecord:
        rec = await self.logs.lookup_topic(topic)
        if rec is None or not 0 <= partition < rec.partitions:
            raise UnknownTopicOrPartition(f"This server does not host {topic}-{partition}.")
        return rec

    def live_owner(self, topic: str, partition: int) -> int | None:
        owner = self.logs.owners.get((topic, partition))
        return owner.broker if owner is not None and owner.broker in self.live else None

    async def elect(self, topic: str, partition: int, deadline: float) -> None:
        """ElectLeaders for one partition: returns once it has a live owner. A partition
        that has one needs no election (ELECTION_NOT_NEEDED); one the assignment gives to
        us is claimed here; otherwise we wait (until ``deadline``, monotonic) for the
        broker the assignment names to claim it, or for a dead owner's lease to expire.

        Kafscale claims partitions lazily, so a new topic's partitions may have no owner
        for a moment: once the broker the assignment names (Kafka's preferred leader)
        holds it, no election was needed, as in Kafka, where a new topic's preferred
        leaders lead from its creation. Returning (NONE) means another broker took it."""
        await self._partition(topic, partition)
        owner = self.live_owner(topic, partition)
        if owner is not None:
            raise KafkaError(f"{topic}-{partition} is owned by live broker {owner}: no election needed.",
                             ErrorCode.ELECTION_NOT_NEEDED)
        desired = self.desired_owner(topic, partition)
        if desired == self.broker_id and (topic, partition) not in self.logs.owners:
            try:
                await self.logs.owned_log(topic, partition)  # claims it
            except KafkaError as exc:
                log.info("elect %s-%d: claim failed (%s); waiting for an owner", topic, partition, exc,
                         extra={"topic": topic, "partition": partition})
        await self.wake()
        while (owner := self.live_owner(topic, partition)) is None:
            if self.rt.monotonic() >= deadline:
                break
            await self.rt.sleep(0.05)
        else:
            if owner == desired:
                raise KafkaError(f"{topic}-{partition} is owned by broker {owner}, the broker the assignment "
                                 "names: no election needed.", ErrorCode.ELECTION_NOT_NEEDED)
            return
        dead = self.logs.owners.get((topic, partition))
        why = (f"the owner record of broker {dead.broker}, which is not live, stays until its lease expires "
               f"(within {self.ttl} s)" if dead is not None else f"broker {desired}, which the assignment "
               "names, has not claimed it")
        raise KafkaError(f"{topic}-{partition} has no live owner yet: {why}.",
                         ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)

    async def check_reassignment(self, topic: str, partition: int, replicas: list[int] | None) -> None:
        """AlterPartitionReassignments for one partition: accepted only when it asks for
        what already is (the partition's owner alone). Kafscale does not move ownership
        on request: every broker computes the same assignment from the live brokers, an
        override would have to outlive brokers and topics in etcd and be honoured by all
        of them, and there is no data to move: every broker reads the partition from S3."""
        await self._partition(topic, partition)
        if replicas is None:
            raise KafkaError(f"No reassignment of {topic}-{partition} is in progress.",
                             ErrorCode.NO_REASSIGNMENT_IN_PROGRESS)
        owner = self.live_owner(topic, partition)
        if owner is None:
            owner = self.desired_owner(topic, partition)
        if replicas == [owner]:
            return
        unknown = sorted(set(replicas) - set(self.live))
        if unknown or not replicas or len(set(replicas)) != len(replicas):
            raise KafkaError(f"Replicas {replicas} are empty, repeat a broker or name brokers that are not "
                             f"registered ({unknown}).", ErrorCode.INVALID_REPLICA_ASSIGNMENT)
        raise KafkaError(f"Kafscale does not reassign partitions: ownership of {topic}-{partition} follows "
                         f"Kafscale's assignment over the live brokers (now broker {owner}) and the data "
                         "is in S3, readable by every broker, so there is nothing to move.",
                         ErrorCode.INVALID_REQUEST)

    # -- the lease ----------------------------------------------------------------------

    async def _keepalive(self) -> None:
        interval = max(self.ttl / 3.0, 0.5)
        while True:
            await self.rt.sleep(interval)
            try:
                if self.lease_id is None or await self.rt.run_in_thread(
                        self.cluster.store.refresh_lease, self.lease_id) <= 0:
                    # Our lease is gone (expired while we were away): our owner records
                    # went with it. Start over under a new one.
                    await self.logs.lose_all_ownership("broker lease expired")
                    await self._register()
                    await self.wake()
                else:
                    self._last_refresh = self.rt.monotonic()
                    self.lease_ok = True
            except KafkaError as exc:
                if self.rt.monotonic() - self._last_refresh > self.ttl:
                    if self.lease_ok:
                        log.error("cannot reach etcd for %ds: no longer taking writes (%s)", self.ttl, exc)
                    self.lease_ok = False
                    self.logs.lease_id = None
                    self.lease_id = None
                    await self.logs.lose_all_ownership("etcd unreachable for a whole lease TTL")

    # -- reconcile ----------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            self._wake = self.rt.event()
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - the next round retries
                log.exception("partition reconcile failed")
            await self.rt.wait(self._wake, 1.0)

    async def reconcile(self) -> None:
        if self.lease_id is None or self.logs.draining:
            return
        to_claim = []
        for (topic, p), owner in list(self.assignment_now().items()):
            current = self.logs.owners.get((topic, p))
            if owner == self.broker_id:
                if current is None and (rec := self.logs.topics.get(topic)) is not None:
                    to_claim.append((rec, p))
            elif current is not None and current.broker == self.broker_id and owner in self.live:
                await self.logs.release(topic, p)
        # Claims are etcd round trips: a new topic's partitions are claimed side by side.
        for i in range(0, len(to_claim), CLAIMS_AT_ONCE):
            tasks = [await self.rt.spawn(self._claim, rec, p) for rec, p in to_claim[i:i + CLAIMS_AT_ONCE]]
            for task in tasks:
                await task.join()

    async def _claim(self, rec, p: int) -> None:
        try:
            await self.logs.claim(rec, p)
        except KafkaError as exc:
            log.debug("claim of %s-%d failed: %s", rec.name, p, exc, extra={"topic": rec.name, "partition": p})

    def assignment_now(self) -> dict[tuple[str, int], int]:
        self.desired_owner("", 0)
        return self.assignment
