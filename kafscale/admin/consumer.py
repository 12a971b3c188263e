"""Reading partitions: a fetch loop over positions, and a classic consumer-group member.

``Fetcher`` fetches from each partition's leader (one Fetch per leader for all its
partitions) and decodes the record batches. ``GroupConsumer`` adds a group member on
top: JoinGroup and SyncGroup with the "consumer" protocol (the assignment computed here
when this member is the leader), heartbeats between fetches, rejoining on a rebalance,
and committing what was consumed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from kafscale.errors import ErrorCode, is_retriable
from kafscale.protocol import messages as m
from kafscale.protocol.records import CorruptBatch, decode_batch_records, iter_batches

from . import groupproto
from .client import EARLIEST, LATEST, Client, KafkaCallError, TopicInfo, check
from .connection import ClientError, error_name

TopicPartition = tuple[str, int]


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class Fetcher:
    """Positions (next offset per partition) and a ``poll()`` that fetches from them.

    A position out of range moves to the log start (``reset=EARLIEST``) or end
    (``reset=LATEST``), as ``auto.offset.reset`` does.
    """

    def __init__(self, client: Client, positions: dict[TopicPartition, int], *, reset: int = LATEST,
                 max_wait_ms: int = 500, partition_max_bytes: int = 1 << 20) -> None:
        self.client = client
        self.positions = dict(positions)
        self.reset = reset
        self.max_wait_ms = max_wait_ms
        self.max_bytes: dict[TopicPartition, int] = defaultdict(lambda: partition_max_bytes)
        self._topics: dict[str, TopicInfo] = {}  # leaders, until a fetch says they moved

    def poll(self) -> list[Message]:
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, p in self.positions:
            by_topic[topic].append(p)
        leaders: dict[int, list[TopicPartition]] = defaultdict(list)
        for topic, parts in by_topic.items():
            info = self._topics.get(topic) or self._topics.setdefault(topic, self.client.topic(topic))
            for leader, ps in self.client.by_leader(info, parts).items():
                leaders[leader] += [(topic, p) for p in ps]
        out: list[Message] = []
        wait = self.max_wait_ms // max(1, len(leaders))
        for leader, tps in sorted(leaders.items()):
            out += self._fetch(leader, tps, 0 if out else wait)
        return out

    def _fetch(self, leader: int, tps: list[TopicPartition], wait_ms: int) -> list[Message]:
        R = m.FetchRequest
        topics: dict[str, list[m.FetchRequest.FetchPartition]] = defaultdict(list)
        for topic, p in tps:
            topics[topic].append(R.FetchPartition(partition=p, fetch_offset=self.positions[(topic, p)],
                                                  partition_max_bytes=self.max_bytes[(topic, p)]))
        req = R(replica_id=-1, max_wait_ms=wait_ms, min_bytes=1, max_bytes=64 << 20, isolation_level=0,
                topics=[R.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()])
        resp = self.client.node(leader).request(req)
        check(resp.error_code, "Fetch")
        out: list[Message] = []
        for t in resp.responses:
            for p in t.partitions:
                tp = (t.topic, p.partition_index)
                if tp not in self.positions:
                    continue
                if p.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    self.positions[tp] = self.client.list_offsets(t.topic, self.reset, [tp[1]])[tp[1]]
                elif is_retriable(p.error_code):
                    self._topics.clear()  # a leader moved: the next poll routes anew
                elif p.error_code:
                    check(p.error_code, f"topic {t.topic!r} partition {p.partition_index}")
                elif p.records:
                    out += self._decode(tp, p.records)
        return out

    def _decode(self, tp: TopicPartition, records: bytes) -> list[Message]:
        out = []
        position = self.positions[tp]
        mv = memoryview(records)
        whole = False
        try:
            for batch in iter_batches(mv, allow_partial=True):
                whole = True
                if batch.is_control:
                    position = max(position, batch.last_offset + 1)
                    continue
                for r in decode_batch_records(mv[batch.position:batch.end]):
                    if r.offset >= position:
                        out.append(Message(tp[0], tp[1], r.offset, r.timestamp, r.key, r.value))
                        position = r.offset + 1
                position = max(position, batch.last_offset + 1)
        except CorruptBatch as exc:
            raise ClientError(f"topic {tp[0]!r} partition {tp[1]} offset {position}: corrupt record batch: {exc}")
        if not whole:  # one batch is larger than what was asked for
            self.max_bytes[tp] *= 2
        self.positions[tp] = position
        return out


def start_positions(client: Client, topic: str, partitions: Iterable[int], from_beginning: bool) -> dict[TopicPartition, int]:
    offsets = client.list_offsets(topic, EARLIEST if from_beginning else LATEST, partitions)
    return {(topic, p): o for p, o in offsets.items()}


class GroupConsumer:
    """A member of ``group`` consuming ``topics``; ``poll()`` also heartbeats and rejoins."""

    def __init__(self, client: Client, group: str, topics: list[str], *, assignor: str = "range",
                 from_beginning: bool = False, session_timeout_ms: int = 10_000,
                 rebalance_timeout_ms: int = 20_000) -> None:
        if assignor not in groupproto.ASSIGNORS:
            raise ClientError(f"unknown assignor {assignor!r} (choose from {', '.join(groupproto.ASSIGNORS)})")
        self.client = client
        self.group = group
        self.topics = topics
        self.assignors = [assignor] + [a for a in groupproto.ASSIGNORS if a != assignor]
        self.reset = EARLIEST if from_beginning else LATEST
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.member_id = ""
        self.generation = -1
        self.assignment: dict[str, list[int]] = {}
        self.consumed: dict[TopicPartition, int] = {}
        self.fetcher: Fetcher | None = None
        self._next_heartbeat = 0.0

    # -------------------------------------------------------------- membership

    def join(self) -> None:
        for topic in self.topics:
            self.client.topic(topic)  # a clear error for a mistyped topic, before joining
        metadata = groupproto.encode_subscription(self.topics)
        J = m.JoinGroupRequest
        while True:
            req = J(group_id=self.group, session_timeout_ms=self.session_timeout_ms,
                    rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                    protocol_type="consumer",
                    protocols=[J.JoinGroupRequestProtocol(name=a, metadata=metadata) for a in self.assignors])
            resp = self.client.group_call(self.group, lambda conn: conn.request(req))
            if resp.error_code == ErrorCode.MEMBER_ID_REQUIRED:
                self.member_id = resp.member_id
                continue
            if resp.error_code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
                continue
            check(resp.error_code, f"group {self.group!r}: JoinGroup")
            break
        self.member_id = resp.member_id
        self.generation = resp.generation_id
        assignments = []
        if resp.leader == resp.member_id:
            subscriptions = {mem.member_id: groupproto.decode_subscription(mem.metadata) for mem in resp.members}
            wanted = sorted({t for ts in subscriptions.values() for t in ts})
            counts = {name: len(info.partitions) for name, info in self.client.metadata(wanted).items()
                      if not info.error_code}
            plan = groupproto.assign(resp.protocol_name or self.assignors[0], subscriptions, counts)
            assignments = [m.SyncGroupRequest.SyncGroupRequestAssignment(
                member_id=member, assignment=groupproto.encode_assignment(a)) for member, a in plan.items()]
        sync = m.SyncGroupRequest(group_id=self.group, generation_id=self.generation, member_id=self.member_id,
                                  protocol_type="consumer", protocol_name=resp.protocol_name,
                                  assignments=assignments)
        sresp = self.client.group_call(self.group, lambda conn: conn.request(sync))
        if sresp.error_code in (ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION):
            return self.join()
        check(sresp.error_code, f"group {self.group!r}: SyncGroup")
        self.assignment = groupproto.decode_assignment(sresp.assignment)
        self._start_fetching()
        self._next_heartbeat = time.monotonic() + self.session_timeout_ms / 3000

    def _start_fetching(self) -> None:
        tps = {t: ps for t, ps in self.assignment.items() if ps}
        committed = self.client.committed(self.group, tps) if tps else {}
        positions: dict[TopicPartition, int] = {}
        for topic, parts in tps.items():
            missing = [p for p in parts if (topic, p) not in committed]
            if missing:
                positions.update(start_positions(self.client, topic, missing, self.reset == EARLIEST))
            positions.update({(topic, p): committed[(topic, p)] for p in parts if (topic, p) in committed})
        self.consumed = {}
        self.fetcher = Fetcher(self.client, positions, reset=self.reset)

    def heartbeat(self) -> None:
        if time.monotonic() < self._next_heartbeat:
            return
        req = m.HeartbeatRequest(group_id=self.group, generation_id=self.generation, member_id=self.member_id)
        code = self.client.group_call(self.group, lambda conn: conn.request(req)).error_code
        self._next_heartbeat = time.monotonic() + self.session_timeout_ms / 3000
        if code == ErrorCode.REBALANCE_IN_PROGRESS:
            self.commit()
            self.join()
        elif code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.FENCED_INSTANCE_ID):
            if code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.join()
        else:
            check(code, f"group {self.group!r}: Heartbeat")

    # -------------------------------------------------------------- consuming

    def poll(self) -> list[Message]:
        if self.fetcher is None:
            self.join()
        self.heartbeat()
        assert self.fetcher is not None
        if not self.fetcher.positions:
            time.sleep(0.2)  # nothing assigned to this member
            return []
        return self.fetcher.poll()

    def mark(self, msg: Message) -> None:
        """``msg`` was handed to the user: commit past it."""
        self.consumed[(msg.topic, msg.partition)] = msg.offset + 1

    def commit(self) -> None:
        if not self.consumed:
            return
        try:
            self.client.commit(self.group, self.consumed, self.generation, self.member_id)
        except KafkaCallError as exc:
            if exc.code not in (ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION,
                                ErrorCode.UNKNOWN_MEMBER_ID):
                raise
            raise ClientError(f"group {self.group!r}: the group rebalanced before the offsets could be "
                              f"committed ({error_name(exc.code)}); they will be consumed again") from None
        self.consumed = {}

    def close(self) -> None:
        """Commit what was consumed and leave the group."""
        try:
            self.commit()
        finally:
            if self.member_id:
                L = m.LeaveGroupRequest
                req = L(group_id=self.group, member_id=self.member_id,
                        members=[L.MemberIdentity(member_id=self.member_id)])
                self.client.group_call(self.group, lambda conn: conn.request(req))
                self.member_id = ""
