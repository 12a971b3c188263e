"""One consumer group's coordinator: Kafka's classic group protocol as a sans-IO state machine.

States (Kafka's GroupMetadata), and what moves a group between them::

    Empty ──JoinGroup──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
      ▲                   ▲   │                                           │
      │  last member left │   └──(nobody left at join completion)──▶ Empty│
      │                   │                                               │ leader's SyncGroup
      │                   │                                               ▼ (stored)
      │                   └─── member joins/leaves/expires, leader ─── Stable
      │                        rejoins, metadata changes
    Dead: deleted (DeleteGroups, or an empty group whose offsets all expired).

- **PreparingRebalance** waits for every known member to send JoinGroup, up to the
  group's rebalance timeout (the largest of its members'). A rebalance that starts from
  Empty is an *initial delayed join*: it always waits ``initial_rebalance_delay_ms`` and,
  in generation 0, waits again (up to the rebalance timeout) while new members keep
  arriving. Members that did not rejoin in time are removed (static members stay).
- **CompletingRebalance**: the join responses went out (the leader's carries every
  member's metadata for the selected protocol); members answer with SyncGroup. The
  leader's SyncGroup carries the assignment: it is stored, then every waiting SyncGroup
  is answered with its member's share and the group is Stable. Members that never
  send SyncGroup within the rebalance timeout are removed and a rebalance starts.
- **Stable**: heartbeats and offset commits; followers may still sync late.

Every method takes ``now`` (float seconds, one monotonic clock) and never sleeps or
does I/O. JoinGroup and SyncGroup answers are ``Waiter``s: completed at once, or later
by another call or by ``tick(now)``; ``drain()`` returns the ones completed since the
last drain, for the async layer to deliver. Anything that must be durable before
clients hear of it is a ``StoreRequest`` (``take_stores()``): the caller writes the
snapshot and reports back with ``store_done`` - as Kafka's storeGroup callback.
"""

from __future__ import annotations

import enum
import logging
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from kafscale.config import Config
from kafscale.errors import ErrorCode

log = logging.getLogger(__name__)

NEW_MEMBER_JOIN_TIMEOUT = 300.0  # Kafka's NewMemberJoinTimeoutMs: 5 minutes
CONSUMER_PROTOCOL = "consumer"


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# GroupConfig attribute -> (the broker Config attribute it reads, multiplier)
_SETTINGS: dict[str, tuple[str, int]] = {
    "initial_rebalance_delay_ms": ("group_initial_rebalance_delay_ms", 1),
    "min_session_timeout_ms": ("group_min_session_timeout_ms", 1),
    "max_session_timeout_ms": ("group_max_session_timeout_ms", 1),
    "max_size": ("group_max_size", 1),
    "offsets_retention_ms": ("offsets_retention_minutes", 60_000),
    "offset_metadata_max_bytes": ("offset_metadata_max_bytes", 1),
    "offsets_retention_check_interval_ms": ("offsets_retention_check_interval_ms", 1),
}


def _setting(name: str) -> property:
    attr, scale = _SETTINGS[name]

    def get(self: "GroupConfig") -> int:
        fixed = self._fixed.get(name)
        return fixed if fixed is not None else int(getattr(self.source, attr)) * scale

    def put(self: "GroupConfig", value: int) -> None:
        self._fixed[name] = int(value)

    return property(get, put, doc=f"``{attr}`` of the broker config" + (f" x {scale}" if scale != 1 else ""))


class GroupConfig:
    """The coordinator's settings, read from the broker's ``Config`` at every use.

    A view, not a copy: the dynamic broker config (AlterConfigs on a BROKER resource)
    changes the Config object's attributes in place, and the next JoinGroup, commit or
    expiry pass sees the new value without a restart. Keyword values fix a setting
    regardless of the source (tests, embedding); a setting assigned here is fixed too.
    """

    def __init__(self, source: Any = None, **fixed: int) -> None:
        self.source = source if source is not None else Config()
        self._fixed: dict[str, int] = {}
        for name, value in fixed.items():
            if name not in _SETTINGS:
                raise TypeError(f"GroupConfig has no setting {name!r}")
            self._fixed[name] = int(value)

    @classmethod
    def from_config(cls, config: Any) -> "GroupConfig":
        return cls(config)

    initial_rebalance_delay_ms = _setting("initial_rebalance_delay_ms")
    min_session_timeout_ms = _setting("min_session_timeout_ms")
    max_session_timeout_ms = _setting("max_session_timeout_ms")
    max_size = _setting("max_size")
    offsets_retention_ms = _setting("offsets_retention_ms")
    offset_metadata_max_bytes = _setting("offset_metadata_max_bytes")
    offsets_retention_check_interval_ms = _setting("offsets_retention_check_interval_ms")

    def __repr__(self) -> str:
        return "GroupConfig(" + ", ".join(f"{n}={getattr(self, n)}" for n in _SETTINGS) + ")"


# -- results -------------------------------------------------------------------------------

@dataclass
class JoinResult:
    error: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    # (member id, group instance id, metadata of the selected protocol); the leader's only
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    legacy_leader: str | None = None  # what versions < 9 report as leader (static rejoin)


@dataclass
class SyncResult:
    error: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


class Waiter:
    """A JoinGroup or SyncGroup answer that may come later. ``token`` is the caller's."""

    __slots__ = ("kind", "member_id", "result", "token")

    def __init__(self, kind: str, member_id: str) -> None:
        self.kind = kind
        self.member_id = member_id
        self.result: JoinResult | SyncResult | None = None
        self.token: Any = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def __repr__(self) -> str:
        return f"Waiter({self.kind}, {self.member_id!r}, {self.result!r})"


@dataclass
class StoreRequest:
    """Group metadata to make durable; ``callback(now, ok)`` runs when it is (or failed)."""

    snapshot: dict
    callback: Callable[[float, bool], None] | None = None


@dataclass
class OffsetEntry:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_ms: int = 0
    expire_ms: int | None = None  # explicit retention (OffsetCommit v2-4)
    topic_id: str = ""

    def encode(self) -> dict:
        d = {"o": self.offset, "e": self.leader_epoch, "m": self.metadata, "t": self.commit_ms,
             "i": self.topic_id}
        if self.expire_ms is not None:
            d["x"] = self.expire_ms
        return d

    @classmethod
    def decode(cls, d: dict) -> "OffsetEntry":
        return cls(int(d["o"]), int(d.get("e", -1)), d.get("m") or "", int(d.get("t", 0)),
                   d.get("x"), d.get("i", ""))


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_waiter: Waiter | None = None
    sync_waiter: Waiter | None = None
    deadline: float = 0.0  # session expiry
    is_new: bool = False

    def metadata(self, protocol: str | None) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return [(n, bytes(m)) for n, m in protocols] == [(n, bytes(m)) for n, m in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        return next(name for name, _ in self.protocols if name in candidates)


@dataclass
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberDescription]


def parse_subscription(metadata: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocol subscription (any version), or None if unparsable."""
    try:
        buf = bytes(metadata)
        (_version, count), pos = struct.unpack_from(">hi", buf, 0), 6
        topics = []
        for _ in range(max(count, 0)):
            (n,) = struct.unpack_from(">h", buf, pos)
            pos += 2
            if n < 0 or pos + n > len(buf):
                return None
            topics.append(buf[pos:pos + n].decode())
            pos += n
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


def _ms(now: float) -> int:
    return int(now * 1000)


class Group:
    def __init__(self, group_id: str, config: GroupConfig, now: float,
                 new_member_id: Callable[[str], str] | None = None) -> None:
        self.group_id = group_id
        self.config = config
        self.state = GroupState.EMPTY
        self.state_ms = _ms(now)
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.static: dict[str, str] = {}  # group instance id -> member id
        self.pending_members: dict[str, float] = {}  # MEMBER_ID_REQUIRED ids -> expiry
        self.pending_sync: set[str] = set()
        self.subscribed: set[str] | None = None
        self.offsets: dict[tuple[str, int], OffsetEntry] = {}
        self.pending_commits = 0  # offset commits being written (the group must not be removed)
        self.new_member_added = False
        # the delayed join (PreparingRebalance) and the pending-sync expiry
        self.join_deadline: float | None = None
        self.join_initial = False
        self.join_remaining_ms = 0
        self.sync_deadline: float | None = None
        self._completed: list[Waiter] = []
        self._stores: list[StoreRequest] = []
        self._new_member_id = new_member_id or (lambda client_id: f"{client_id}-{uuid.uuid4()}")

    # -- plumbing -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"Group({self.group_id!r}, {self.state.value}, gen {self.generation}, "
                f"members {list(self.members)})")

    def drain(self) -> list[Waiter]:
        """Waiters completed since the last drain, in completion order."""
        out, self._completed = self._completed, []
        return out

    def take_stores(self) -> list[StoreRequest]:
        out, self._stores = self._stores, []
        return out

    def store_done(self, now: float, req: StoreRequest, ok: bool) -> None:
        if req.callback is not None:
            req.callback(now, ok)

    def _complete(self, waiter: Waiter | None, result: JoinResult | SyncResult) -> None:
        if waiter is not None and waiter.result is None:
            waiter.result = result
            self._completed.append(waiter)

    def _answer(self, kind: str, member_id: str, result: JoinResult | SyncResult) -> Waiter:
        w = Waiter(kind, member_id)
        self._complete(w, result)
        return w

    def _transition(self, now: float, state: GroupState) -> None:
        self.state = state
        self.state_ms = _ms(now)

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    @property
    def is_empty(self) -> bool:
        return self.state is GroupState.EMPTY

    def _join_error(self, member_id: str, code: int) -> Waiter:
        return self._answer("join", member_id, JoinResult(int(code), member_id=member_id))

    # -- membership -----------------------------------------------------------------------

    def _supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        return bool(self._candidates() & {n for n, _ in protocols})

    def _candidates(self) -> set[str]:
        sets = [{n for n, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str | None:
        """The protocol every member supports that most members prefer (Kafka's vote)."""
        candidates = self._candidates()
        if not candidates:
            return None
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        # ties go to the first-voted protocol: deterministic, and the leader's choice
        return max(votes, key=lambda name: votes[name])

    def _add_member(self, now: float, m: Member, waiter: Waiter) -> None:
        if not self.members:
            self.protocol_type = m.protocol_type
        self.members[m.member_id] = m
        if self.leader is None:
            self.leader = m.member_id
        if m.group_instance_id is not None:
            self.static[m.group_instance_id] = m.member_id
        self.pending_members.pop(m.member_id, None)
        m.join_waiter = waiter

    def _remove(self, member_id: str) -> Member | None:
        m = self.members.pop(member_id, None)
        if m is None:
            return None
        if m.group_instance_id is not None and self.static.get(m.group_instance_id) == member_id:
            del self.static[m.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        return m

    def _validate_member(self, member_id: str, instance_id: str | None) -> int | None:
        if instance_id is not None:
            current = self.static.get(instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    def _heartbeat(self, now: float, m: Member) -> None:
        m.deadline = now + m.session_timeout_ms / 1000.0

    # -- JoinGroup ------------------------------------------------------------------------

    def join(self, now: float, member_id: str, group_instance_id: str | None, client_id: str,
             client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int,
             protocol_type: str, protocols: Iterable[tuple[str, bytes]],
             require_known_member_id: bool = True) -> Waiter:
        protocols = [(n, bytes(meta)) for n, meta in protocols]
        if not (self.config.min_session_timeout_ms <= session_timeout_ms <= self.config.max_session_timeout_ms):
            return self._join_error(member_id, ErrorCode.INVALID_SESSION_TIMEOUT)
        if rebalance_timeout_ms <= 0:
            rebalance_timeout_ms = session_timeout_ms
        args = (client_id, client_host, session_timeout_ms, rebalance_timeout_ms, protocol_type, protocols)
        if member_id == "":
            w = self._join_new(now, group_instance_id, require_known_member_id, *args)
        else:
            w = self._join_current(now, member_id, group_instance_id, *args)
        if self.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(now)
        return w

    def _join_new(self, now: float, instance_id: str | None, require_known: bool, client_id: str,
                  client_host: str, session_ms: int, rebalance_ms: int, protocol_type: str,
                  protocols: list[tuple[str, bytes]]) -> Waiter:
        if self.state is GroupState.DEAD:
            return self._join_error("", ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not self._supports(protocol_type, protocols):
            return self._join_error("", ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        refused = self._refuse_if_full(now, "", instance_id)
        if refused is not None:
            return refused
        new_id = self._new_member_id(client_id)
        if instance_id is not None:
            old_id = self.static.get(instance_id)
            if old_id is not None:
                return self._replace_static(now, instance_id, old_id, new_id, client_id, client_host,
                                            session_ms, rebalance_ms, protocols)
        elif require_known:
            # KIP-394: hand out the id first; the member joins again with it.
            self.pending_members[new_id] = now + session_ms / 1000.0
            return self._answer("join", new_id, JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id))
        m = Member(new_id, instance_id, client_id, client_host, session_ms, rebalance_ms,
                   protocol_type, protocols)
        return self._add_and_rebalance(now, m)

    def _accepts(self, m: Member | None) -> bool:
        """Kafka's acceptJoiningMember: is there room for this member (None: a new one)
        under group.max.size?

        While preparing a rebalance only the members that already rejoined count, so a
        group over the limit (the limit was lowered) keeps the first ones to rejoin and
        turns the last ones away; otherwise every member counts and only new ones wait."""
        if self.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        limit = self.config.max_size
        if self.state is GroupState.PREPARING_REBALANCE:
            awaiting = sum(1 for x in self.members.values() if x.join_waiter is not None)
            return (m is not None and m.join_waiter is not None) or awaiting < limit
        return m is not None or len(self.members) < limit

    def _refuse_if_full(self, now: float, member_id: str, instance_id: str | None) -> Waiter | None:
        """GROUP_MAX_SIZE_REACHED for a member there is no room for (it leaves the group)."""
        if member_id == "" and instance_id is not None:
            member_id = self.static.get(instance_id, "")  # a static member coming back
        m = self.members.get(member_id)
        if self._accepts(m):
            return None
        if m is not None:
            self._remove_and_update(now, m)
        elif self.pending_members.pop(member_id, None) is not None:
            self._try_complete_join(now)
        return self._join_error("", ErrorCode.GROUP_MAX_SIZE_REACHED)

    @property
    def over_capacity(self) -> bool:
        return len(self.members) > self.config.max_size

    def _add_and_rebalance(self, now: float, m: Member) -> Waiter:
        w = Waiter("join", m.member_id)
        m.is_new = True
        if self.state is GroupState.PREPARING_REBALANCE and self.generation == 0:
            self.new_member_added = True
        self._add_member(now, m, w)
        # A new member cannot heartbeat before its first join answer; a client that went
        # away meanwhile is dropped after this long instead of its session timeout.
        m.deadline = now + NEW_MEMBER_JOIN_TIMEOUT
        self._maybe_prepare_rebalance(now)
        return w

    def _join_current(self, now: float, member_id: str, instance_id: str | None, client_id: str,
                      client_host: str, session_ms: int, rebalance_ms: int, protocol_type: str,
                      protocols: list[tuple[str, bytes]]) -> Waiter:
        if self.state is GroupState.DEAD:
            return self._join_error(member_id, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not self._supports(protocol_type, protocols):
            return self._join_error(member_id, ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        refused = self._refuse_if_full(now, member_id, instance_id)
        if refused is not None:
            return refused
        if member_id in self.pending_members:
            m = Member(member_id, None, client_id, client_host, session_ms, rebalance_ms,
                       protocol_type, protocols)
            return self._add_and_rebalance(now, m)
        if instance_id is not None and self.static.get(instance_id, member_id) != member_id:
            return self._join_error(member_id, ErrorCode.FENCED_INSTANCE_ID)
        if member_id not in self.members or (instance_id is not None and instance_id not in self.static):
            return self._join_error(member_id, ErrorCode.UNKNOWN_MEMBER_ID)
        m = self.members[member_id]
        state = self.state
        if state is GroupState.PREPARING_REBALANCE:
            return self._update_and_rebalance(now, m, session_ms, rebalance_ms, protocols)
        if state is GroupState.COMPLETING_REBALANCE:
            if m.matches(protocols):
                # Probably lost the first answer: send the current generation again.
                return self._answer("join", member_id, self._join_result(m))
            return self._update_and_rebalance(now, m, session_ms, rebalance_ms, protocols)
        if state is GroupState.STABLE:
            if member_id == self.leader or not m.matches(protocols):
                return self._update_and_rebalance(now, m, session_ms, rebalance_ms, protocols)
            return self._answer("join", member_id, self._join_result(m, with_members=False))
        return self._join_error(member_id, ErrorCode.UNKNOWN_MEMBER_ID)  # Empty

    def _update_member(self, m: Member, session_ms: int, rebalance_ms: int,
                       protocols: list[tuple[str, bytes]], waiter: Waiter | None) -> None:
        m.protocols = protocols
        m.session_timeout_ms = session_ms
        m.rebalance_timeout_ms = rebalance_ms
        if waiter is not None and m.join_waiter is not None:
            # An earlier JoinGroup of this member is still parked (its connection is
            # likely gone): answer it so nothing waits forever.
            self._complete(m.join_waiter, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=m.member_id))
        m.join_waiter = waiter

    def _update_and_rebalance(self, now: float, m: Member, session_ms: int, rebalance_ms: int,
                              protocols: list[tuple[str, bytes]]) -> Waiter:
        w = Waiter("join", m.member_id)
        self._update_member(m, session_ms, rebalance_ms, protocols, w)
        self._maybe_prepare_rebalance(now)
        return w

    def _replace_static(self, now: float, instance_id: str, old_id: str, new_id: str, client_id: str,
                        client_host: str, session_ms: int, rebalance_ms: int,
                        protocols: list[tuple[str, bytes]]) -> Waiter:
        """A static member came back under a new member id: it takes the old one's place."""
        m = self.members[old_id]
        old = (m.protocols, m.session_timeout_ms, m.rebalance_timeout_ms, m.client_id, m.client_host)
        old_leader = self.leader
        self._swap_member_id(instance_id, old_id, new_id)
        m.client_id, m.client_host = client_id, client_host
        self._heartbeat(now, m)
        w = Waiter("join", new_id)
        self._update_member(m, session_ms, rebalance_ms, protocols, w)
        if self.state is GroupState.STABLE:
            if self.select_protocol() != self.protocol:
                self._maybe_prepare_rebalance(now)
                return w
            # Same protocol: no rebalance. Persist the new member id, then answer with
            # the current generation (it syncs and gets its old assignment).
            m.join_waiter = None
            generation = self.generation

            def done(now: float, ok: bool) -> None:
                if not ok:
                    if self.members.get(new_id) is m:
                        self._update_member(m, old[1], old[2], old[0], None)
                        m.client_id, m.client_host = old[3], old[4]
                        self._swap_member_id(instance_id, new_id, old_id)
                        self._heartbeat(now, m)
                    self._complete(w, JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id="",
                                                 generation_id=generation))
                    return
                if self.members.get(new_id) is not m or self.generation != generation:
                    self._complete(w, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=new_id))
                    return
                res = self._join_result(m, with_members=False)
                # Before JoinGroup v9 the answer names the leader as it was (the old
                # member id when that was this member), so a rejoining static leader
                # does not run the assignor for a group that will not rebalance; v9+
                # says so with skip_assignment and gives it the members.
                res.legacy_leader = old_leader or ""
                if self.leader == new_id:
                    res.skip_assignment = True
                    res.members = self._member_list()
                self._complete(w, res)

            self._stores.append(StoreRequest(self.snapshot(now), done))
            return w
        if self.state is GroupState.COMPLETING_REBALANCE:
            self._maybe_prepare_rebalance(now)
        return w  # PreparingRebalance: answered when the join completes

    def _swap_member_id(self, instance_id: str, old_id: str, new_id: str) -> None:
        m = self.members.pop(old_id)
        # fence whatever the old incarnation still has parked
        self._complete(m.join_waiter, JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old_id))
        self._complete(m.sync_waiter, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        m.join_waiter = m.sync_waiter = None
        m.member_id = new_id
        self.members[new_id] = m
        if self.leader == old_id:
            self.leader = new_id
        self.static[instance_id] = new_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(new_id)

    def _member_list(self) -> list[tuple[str, str | None, bytes]]:
        return [(m.member_id, m.group_instance_id, m.metadata(self.protocol)) for m in self.members.values()]

    def _join_result(self, m: Member, with_members: bool = True) -> JoinResult:
        leader = self.leader or ""
        return JoinResult(ErrorCode.NONE, member_id=m.member_id, generation_id=self.generation,
                          protocol_type=self.protocol_type, protocol_name=self.protocol, leader=leader,
                          members=self._member_list() if with_members and m.member_id == leader else [])

    # -- rebalancing ----------------------------------------------------------------------

    def _maybe_prepare_rebalance(self, now: float) -> None:
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(now)

    def _prepare_rebalance(self, now: float) -> None:
        if self.state is GroupState.COMPLETING_REBALANCE:
            self._reset_assignment(ErrorCode.REBALANCE_IN_PROGRESS)
        self.sync_deadline = None
        delay = self.config.initial_rebalance_delay_ms
        if self.state is GroupState.EMPTY:
            self.join_initial = True
            self.join_remaining_ms = max(self.rebalance_timeout_ms - delay, 0)
            self.join_deadline = now + delay / 1000.0
        else:
            self.join_initial = False
            self.join_deadline = now + self.rebalance_timeout_ms / 1000.0
        log.info("group %s: preparing to rebalance in state %s with old generation %d (%d members)", self.group_id,
                 self.state.value, self.generation, len(self.members), extra={"group": self.group_id})
        self._transition(now, GroupState.PREPARING_REBALANCE)
        self._try_complete_join(now)

    def _reset_assignment(self, code: int) -> None:
        for m in self.members.values():
            m.assignment = b""
            self._complete(m.sync_waiter, SyncResult(int(code)))
            m.sync_waiter = None

    def _all_joined(self) -> bool:
        return not self.pending_members and all(m.join_waiter is not None for m in self.members.values())

    def _try_complete_join(self, now: float) -> None:
        if (self.state is GroupState.PREPARING_REBALANCE and not self.join_initial
                and self._all_joined()):
            self._complete_join(now)

    def _elect_joined_leader(self) -> bool:
        leader = self.members.get(self.leader) if self.leader is not None else None
        if leader is not None and leader.join_waiter is not None:
            return True
        for m in self.members.values():
            if m.join_waiter is not None:
                self.leader = m.member_id
                return True
        return False

    def _complete_join(self, now: float) -> None:
        self.join_deadline = None
        self.join_initial = False
        for m in list(self.members.values()):
            if m.join_waiter is None and m.group_instance_id is None:
                self._remove(m.member_id)
        if self.members and not self._elect_joined_leader():
            # Nobody rejoined (only absent static members left): wait another round;
            # their session timeouts will remove them.
            self.join_deadline = now + self.rebalance_timeout_ms / 1000.0
            return
        self._next_generation(now)
        if self.state is GroupState.EMPTY:
            self._stores.append(StoreRequest(self.snapshot(now)))
            return
        for m in self.members.values():
            self._complete(m.join_waiter, self._join_result(m))
            m.join_waiter = None
            self._heartbeat(now, m)
            m.is_new = False
            self.pending_sync.add(m.member_id)
        self.sync_deadline = now + self.rebalance_timeout_ms / 1000.0

    def _next_generation(self, now: float) -> None:
        self.generation += 1
        self.pending_sync.clear()
        self.new_member_added = False
        if self.members:
            self.protocol = self.select_protocol()
            self.subscribed = self._subscriptions()
            self._transition(now, GroupState.COMPLETING_REBALANCE)
        else:
            self.protocol = None
            self.subscribed = None
            self.leader = None
            self._transition(now, GroupState.EMPTY)
        if self.members:
            log.info("group %s: generation %d with %d members (protocol %s)", self.group_id, self.generation,
                     len(self.members), self.protocol, extra={"group": self.group_id})
        else:
            log.info("group %s: empty at generation %d", self.group_id, self.generation,
                     extra={"group": self.group_id})

    def _subscriptions(self) -> set[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            parsed = parse_subscription(m.metadata(self.protocol))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics

    # -- SyncGroup ------------------------------------------------------------------------

    def sync(self, now: float, member_id: str, group_instance_id: str | None, generation: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: dict[str, bytes]) -> Waiter:
        def fail(code: int) -> Waiter:
            return self._answer("sync", member_id, SyncResult(int(code)))

        if self.state is GroupState.DEAD:
            return fail(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        err = self._validate_member(member_id, group_instance_id)
        if err is not None:
            return fail(err)
        if generation != self.generation:
            return fail(ErrorCode.ILLEGAL_GENERATION)
        if protocol_type is not None and protocol_type != self.protocol_type:
            return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if protocol_name is not None and protocol_name != self.protocol:
            return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if self.state is GroupState.EMPTY:
            return fail(ErrorCode.UNKNOWN_MEMBER_ID)
        if self.state is GroupState.PREPARING_REBALANCE:
            return fail(ErrorCode.REBALANCE_IN_PROGRESS)
        m = self.members[member_id]
        self._synced(member_id)
        if self.state is GroupState.STABLE:
            self._heartbeat(now, m)
            return self._answer("sync", member_id, SyncResult(
                ErrorCode.NONE, self.protocol_type, self.protocol, m.assignment))
        # CompletingRebalance
        w = Waiter("sync", member_id)
        if m.sync_waiter is not None:
            self._complete(m.sync_waiter, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        m.sync_waiter = w
        if member_id == self.leader:
            assignment = {mid: bytes(assignments.get(mid, b"")) for mid in self.members}
            gen = self.generation

            def done(now: float, ok: bool) -> None:
                # A member may have joined or left while this was being stored.
                if self.state is not GroupState.COMPLETING_REBALANCE or self.generation != gen:
                    return
                if not ok:
                    self._reset_assignment(ErrorCode.COORDINATOR_NOT_AVAILABLE)
                    self._maybe_prepare_rebalance(now)
                    return
                for mem in self.members.values():
                    mem.assignment = assignment.get(mem.member_id, b"")
                    self._complete(mem.sync_waiter, SyncResult(
                        ErrorCode.NONE, self.protocol_type, self.protocol, mem.assignment))
                    mem.sync_waiter = None
                self._transition(now, GroupState.STABLE)

            self._stores.append(StoreRequest(self.snapshot(now, assignment), done))
        return w

    def _synced(self, member_id: str) -> None:
        self.pending_sync.discard(member_id)
        if not self.pending_sync:
            self.sync_deadline = None

    # -- Heartbeat, LeaveGroup --------------------------------------------------------------

    def heartbeat(self, now: float, member_id: str, group_instance_id: str | None, generation: int) -> int:
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        err = self._validate_member(member_id, group_instance_id)
        if err is not None:
            return err
        if self.state is GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        m = self.members[member_id]
        if self.state is GroupState.PREPARING_REBALANCE:
            self._heartbeat(now, m)
            return ErrorCode.REBALANCE_IN_PROGRESS
        if generation != self.generation:
            return ErrorCode.ILLEGAL_GENERATION
        self._heartbeat(now, m)
        if self.state is GroupState.STABLE and self.over_capacity:
            # group.max.size was lowered under this group (Kafka checks when it loads a
            # group; here the limit changes at run time): rebalance, and the members that
            # rejoin last are turned away with GROUP_MAX_SIZE_REACHED.
            self._prepare_rebalance(now)
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, now: float, members: Iterable[tuple[str, str | None]]) -> tuple[int, list[int]]:
        """Remove members (by member id, or by instance id with an empty member id)."""
        members = list(members)
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        codes: list[int] = []
        for member_id, instance_id in members:
            if member_id == "":
                current = self.static.get(instance_id) if instance_id is not None else None
                if current is None:
                    codes.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                self._remove_and_update(now, self.members[current])
                codes.append(ErrorCode.NONE)
            elif member_id in self.pending_members:
                del self.pending_members[member_id]
                self._try_complete_join(now)
                codes.append(ErrorCode.NONE)
            else:
                err = self._validate_member(member_id, instance_id)
                if err is not None:
                    codes.append(err)
                    continue
                self._remove_and_update(now, self.members[member_id])
                codes.append(ErrorCode.NONE)
        return ErrorCode.NONE, codes

    def _remove_and_update(self, now: float, m: Member) -> None:
        self._complete(m.join_waiter, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=m.member_id))
        self._complete(m.sync_waiter, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        m.join_waiter = m.sync_waiter = None
        self._remove(m.member_id)
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(now)
        elif self.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(now)

    # -- time ------------------------------------------------------------------------------

    def _expirable(self, m: Member) -> bool:
        # Members parked in JoinGroup/SyncGroup are waiting on us, not the other way
        # round; only brand-new members can expire while waiting to join.
        return m.is_new or (m.join_waiter is None and m.sync_waiter is None)

    def next_deadline(self) -> float | None:
        times = [m.deadline for m in self.members.values() if self._expirable(m)]
        times += self.pending_members.values()
        if self.join_deadline is not None:
            times.append(self.join_deadline)
        if self.sync_deadline is not None:
            times.append(self.sync_deadline)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Fire every deadline that has passed: sessions, pending members, joins, syncs."""
        for m in list(self.members.values()):
            if self.members.get(m.member_id) is m and self._expirable(m) and m.deadline <= now:
                self._remove_and_update(now, m)
        for mid, deadline in list(self.pending_members.items()):
            if deadline <= now:
                del self.pending_members[mid]
                self._try_complete_join(now)
        if (self.state is GroupState.PREPARING_REBALANCE and self.join_deadline is not None
                and self.join_deadline <= now):
            if self.join_initial and self.new_member_added and self.join_remaining_ms > 0:
                self.new_member_added = False
                delay = min(self.config.initial_rebalance_delay_ms, self.join_remaining_ms)
                self.join_remaining_ms = max(self.join_remaining_ms - delay, 0)
                self.join_deadline = now + delay / 1000.0
            else:
                self._complete_join(now)
        if self.sync_deadline is not None and self.sync_deadline <= now:
            self.sync_deadline = None
            if self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and self.pending_sync:
                for mid in list(self.pending_sync):
                    m = self.members.get(mid)
                    if m is not None:
                        self._complete(m.sync_waiter, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
                        m.sync_waiter = None
                        self._remove(mid)
                self._prepare_rebalance(now)

    # -- offsets ---------------------------------------------------------------------------

    def validate_commit(self, now: float, member_id: str, group_instance_id: str | None,
                        generation: int) -> int:
        """The group-level answer to an OffsetCommit (NONE: go ahead and store)."""
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation >= 0 or member_id != "" or group_instance_id is not None:
            err = self._validate_member(member_id, group_instance_id)
            if err is not None:
                return err
            if generation != self.generation:
                return ErrorCode.ILLEGAL_GENERATION
        elif self.state is not GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID  # only members commit to a non-empty group
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        m = self.members.get(member_id)
        if m is not None:
            self._heartbeat(now, m)
        return ErrorCode.NONE

    def check_metadata(self, metadata: str | None) -> int:
        if metadata is not None and len(metadata.encode()) > self.config.offset_metadata_max_bytes:
            return ErrorCode.OFFSET_METADATA_TOO_LARGE
        return ErrorCode.NONE

    def is_subscribed(self, topic: str) -> bool:
        return self.subscribed is None or topic in self.subscribed

    def deletable_offsets(self, partitions: Iterable[tuple[str, int]]) -> tuple[int, dict[tuple[str, int], int]]:
        """OffsetDelete's rule: never for topics a consumer group is subscribed to."""
        parts = list(partitions)
        if self.state is GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        if self.state is GroupState.EMPTY:
            return ErrorCode.NONE, {tp: ErrorCode.NONE for tp in parts}
        if self.protocol_type == CONSUMER_PROTOCOL:
            return ErrorCode.NONE, {tp: (ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC if self.is_subscribed(tp[0])
                                         else ErrorCode.NONE) for tp in parts}
        return ErrorCode.NON_EMPTY_GROUP, {}

    def expired_offsets(self, now_ms: int) -> list[tuple[str, int]]:
        """Offsets past retention, by Kafka's rules (KIP-211, KIP-496):

        - a group that never had a protocol (commits only): each offset
          ``offsets.retention`` after its commit;
        - an Empty group: all its offsets, ``offsets.retention`` after it became empty;
        - a Stable consumer group: offsets of topics it no longer subscribes to, after
          their commit;
        - any other group: none.
        An offset committed with an explicit retention (OffsetCommit v2-4) expires at
        its own time instead, under the same rules of which offsets may go."""
        subscribed: set[str] = set()
        if self.protocol_type is None:
            def base(e: OffsetEntry) -> int:
                return e.commit_ms
        elif self.state is GroupState.EMPTY:
            def base(e: OffsetEntry) -> int:
                return self.state_ms
        elif (self.state is GroupState.STABLE and self.protocol_type == CONSUMER_PROTOCOL
              and self.subscribed is not None):
            subscribed = self.subscribed

            def base(e: OffsetEntry) -> int:
                return e.commit_ms
        else:
            return []
        retention = self.config.offsets_retention_ms
        return [tp for tp, e in self.offsets.items() if tp[0] not in subscribed and (
            now_ms >= e.expire_ms if e.expire_ms is not None else now_ms - base(e) >= retention)]

    @property
    def removable(self) -> bool:
        """Kafka's rule for the cleanup pass: an Empty group with no offsets (none
        committed, none being committed) is deleted."""
        return (self.state is GroupState.EMPTY and not self.offsets and not self.pending_members
                and self.pending_commits == 0)

    # -- describe, persist -----------------------------------------------------------------

    def describe(self) -> GroupDescription:
        stable = self.state is GroupState.STABLE
        members = [MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                     m.metadata(self.protocol) if stable else b"",
                                     m.assignment if stable else b"")
                   for m in self.members.values()]
        return GroupDescription(self.group_id, self.state.value, self.protocol_type or "",
                                (self.protocol or "") if stable else "", members)

    def snapshot(self, now: float, assignment: dict[str, bytes] | None = None) -> dict:
        """What etcd keeps of the group (offsets are stored separately)."""
        members = [] if self.state is GroupState.EMPTY and not self.members else [
            {"id": m.member_id, "gi": m.group_instance_id, "ci": m.client_id, "ch": m.client_host,
             "st": m.session_timeout_ms, "rt": m.rebalance_timeout_ms,
             "pr": [[n, meta] for n, meta in m.protocols],
             "a": assignment.get(m.member_id, b"") if assignment is not None else m.assignment}
            for m in self.members.values()]
        return {"v": 1, "pt": self.protocol_type, "g": self.generation, "p": self.protocol,
                "l": self.leader, "ts": _ms(now), "m": members}

    @classmethod
    def restore(cls, group_id: str, config: GroupConfig, now: float, snap: dict | None,
                offsets: dict[tuple[str, int], OffsetEntry],
                new_member_id: Callable[[str], str] | None = None) -> "Group":
        """A group loaded from its snapshot: Stable if it had members (who get a full
        session timeout to heartbeat again), else Empty."""
        g = cls(group_id, config, now, new_member_id)
        g.offsets = dict(offsets)
        if not snap:
            return g
        g.protocol_type = snap.get("pt")
        g.generation = int(snap.get("g", 0))
        g.state_ms = int(snap.get("ts", _ms(now)))
        for d in snap.get("m") or []:
            m = Member(d["id"], d.get("gi"), d.get("ci", ""), d.get("ch", ""), int(d["st"]), int(d["rt"]),
                       g.protocol_type or "", [(n, bytes(meta)) for n, meta in d["pr"]], bytes(d.get("a", b"")))
            g._heartbeat(now, m)
            g.members[m.member_id] = m
            if m.group_instance_id is not None:
                g.static[m.group_instance_id] = m.member_id
        if g.members:
            g.protocol = snap.get("p")
            leader = snap.get("l")
            g.leader = leader if leader in g.members else next(iter(g.members))
            g.subscribed = g._subscriptions()
            g.state = GroupState.STABLE
        return g

    def mark_dead(self, now: float) -> None:
        self._transition(now, GroupState.DEAD)
        self.join_deadline = self.sync_deadline = None
