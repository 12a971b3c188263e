"""The group state machine (kafscale.groups.coordinator) driven with a fake clock.

No sleeping and no I/O: every call gets ``now``; parked JoinGroup/SyncGroup answers are
Waiters that later calls or ``tick`` complete; stores are completed by hand.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from kafscale.config import Config
from kafscale.errors import ErrorCode as E
from kafscale.groups.coordinator import (Group, GroupConfig, GroupState as S, JoinResult, OffsetEntry,
                                         SyncResult, parse_subscription)

SETTINGS = dict(initial_rebalance_delay_ms=3000, min_session_timeout_ms=6000, max_session_timeout_ms=300_000,
                offsets_retention_ms=7 * 86_400_000, offset_metadata_max_bytes=100)
CFG = GroupConfig(**SETTINGS)
SESSION = 10_000
REBALANCE = 30_000


def subscription(*topics: str) -> bytes:
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


RANGE = [("range", subscription("t"))]


def new_group(config: GroupConfig = CFG) -> Group:
    n = itertools.count(1)
    return Group("g", config, 0.0, new_member_id=lambda client: f"{client}-{next(n)}")


def join(g: Group, now: float, member_id: str = "", client: str = "c", instance: str | None = None,
         session: int = SESSION, rebalance: int = REBALANCE, protocols=RANGE, ptype: str = "consumer",
         require: bool = True):
    return g.join(now, member_id, instance, client, "/127.0.0.1", session, rebalance, ptype, protocols, require)


def join_new(g: Group, now: float, client: str = "c", **kw):
    """KIP-394 dance: MEMBER_ID_REQUIRED, then join again with the id."""
    first = join(g, now, client=client, **kw)
    assert first.result.error == E.MEMBER_ID_REQUIRED
    return join(g, now, member_id=first.result.member_id, client=client, **kw)


def settle(g: Group) -> float:
    """Tick through the (initial) delayed join until it completes; the time it did."""
    now = 0.0
    while g.state is S.PREPARING_REBALANCE:
        now = g.next_deadline()
        g.tick(now)
    return now


def store_all(g: Group, now: float, ok: bool = True) -> int:
    stores = g.take_stores()
    for req in stores:
        g.store_done(now, req, ok)
    return len(stores)


def stable_group(n: int = 2, now: float = 0.0, config: GroupConfig | None = None,
                 **kw) -> tuple[Group, list[str], float]:
    """A Stable group of n dynamic members (generation 1); returns it, member ids, time.
    Its settings are its own copy of CFG's, so a test may change them."""
    g = new_group(config or GroupConfig(**SETTINGS))
    waiters = [join_new(g, now, client=f"c{i}", **kw) for i in range(n)]
    now = settle(g)
    if n > 1:
        assert now == 6.0  # the initial delay ran twice: members kept arriving
    ids = [w.result.member_id for w in waiters]
    assert all(w.result.error == E.NONE for w in waiters)
    leader = g.leader
    syncs = [g.sync(now, mid, None, 1, None, None,
                    {m: f"a-{m}".encode() for m in ids} if mid == leader else {}) for mid in ids]
    store_all(g, now)
    assert all(s.result.error == E.NONE for s in syncs)
    assert g.state is S.STABLE
    g.drain()
    return g, ids, now


# -- joining ---------------------------------------------------------------------------------

def test_new_member_gets_member_id_required_then_joins_after_initial_delay():
    g = new_group()
    first = join(g, 0.0, client="app")
    assert first.done and first.result.error == E.MEMBER_ID_REQUIRED
    mid = first.result.member_id
    assert mid == "app-1" and g.state is S.EMPTY and mid in g.pending_members

    w = join(g, 0.1, member_id=mid)
    assert not w.done and g.state is S.PREPARING_REBALANCE
    assert g.next_deadline() == pytest.approx(3.1)  # group.initial.rebalance.delay.ms
    g.tick(3.0)
    assert not w.done
    g.tick(3.1)
    r = w.result
    assert r.error == E.NONE and r.generation_id == 1 and r.leader == mid and r.member_id == mid
    assert r.protocol_name == "range" and r.protocol_type == "consumer"
    assert r.members == [(mid, None, RANGE[0][1])]
    assert g.state is S.COMPLETING_REBALANCE
    assert g.drain() == [first, w]


def test_old_versions_join_without_the_member_id_round_trip():
    g = new_group()
    w = join(g, 0.0, require=False)
    assert not w.done and g.state is S.PREPARING_REBALANCE and len(g.members) == 1


def test_initial_delay_extends_while_new_members_arrive_in_generation_zero():
    g = new_group()
    a = join_new(g, 0.0, client="a", rebalance=10_000)
    b = join_new(g, 2.0, client="b", rebalance=10_000)
    g.tick(3.0)  # b arrived during the delay: wait another delay
    assert not a.done and not b.done and g.next_deadline() == pytest.approx(6.0)
    g.tick(6.0)
    assert a.result.error == b.result.error == E.NONE
    assert a.result.leader == a.result.member_id
    assert len(a.result.members) == 2 and b.result.members == []  # only the leader gets them


def test_initial_delay_never_exceeds_the_rebalance_timeout():
    g = new_group()
    a = join_new(g, 0.0, client="a", rebalance=4000)
    join_new(g, 1.0, client="b", rebalance=4000)
    g.tick(3.0)
    assert g.next_deadline() == pytest.approx(4.0)  # only 1 s of the timeout was left
    join_new(g, 3.5, client="c", rebalance=4000)
    g.tick(4.0)
    assert a.done and len(a.result.members) == 3


def test_invalid_session_timeout():
    g = new_group()
    assert join(g, 0, session=5999).result.error == E.INVALID_SESSION_TIMEOUT
    assert join(g, 0, session=300_001).result.error == E.INVALID_SESSION_TIMEOUT


def test_rejoin_of_unknown_member_and_inconsistent_protocols():
    g, ids, now = stable_group()
    assert join(g, now, member_id="ghost").result.error == E.UNKNOWN_MEMBER_ID
    assert join(g, now, ptype="connect").result.error == E.INCONSISTENT_GROUP_PROTOCOL
    other = [("roundrobin", subscription("t"))]
    assert join(g, now, protocols=other).result.error == E.INCONSISTENT_GROUP_PROTOCOL
    empty = new_group()
    assert join(empty, 0, protocols=[]).result.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(empty, 0, ptype="").result.error == E.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_selection_is_by_vote_among_common_protocols():
    g = new_group()
    meta = subscription("t")
    rr, rg, st = ("roundrobin", meta), ("range", meta), ("sticky", meta)
    ws = [join_new(g, 0, client="a", protocols=[rr, rg, st]),
          join_new(g, 0, client="b", protocols=[rr, rg]),
          join_new(g, 0, client="c", protocols=[rg, rr])]
    settle(g)
    assert {w.result.protocol_name for w in ws} == {"roundrobin"}  # 2 votes to 1; sticky not common
    # a joiner sharing no protocol with everyone is refused
    assert join(g, 3.0, protocols=[st]).result.error == E.INCONSISTENT_GROUP_PROTOCOL

    g2 = new_group()
    for client, protos in (("a", [rr, rg]), ("b", [rg, rr]), ("c", [rg])):
        join_new(g2, 0, client=client, protocols=protos)
    settle(g2)
    assert g2.protocol == "range"  # the only one all three support


# -- syncing ---------------------------------------------------------------------------------

def test_leaders_assignment_is_what_every_member_receives_once_stored():
    g = new_group()
    a, b = join_new(g, 0, client="a"), join_new(g, 0, client="b")
    t = settle(g)
    la, lb = a.result.member_id, b.result.member_id
    assert g.leader == la
    fb = g.sync(t, lb, None, 1, "consumer", "range", {la: b"ignored"})  # follower first: parks
    assert not fb.done
    fa = g.sync(t, la, None, 1, "consumer", "range", {la: b"A", lb: b"B", "stranger": b"X"})
    assert not fa.done and g.state is S.COMPLETING_REBALANCE  # not before it is stored
    stores = g.take_stores()
    assert len(stores) == 1
    snap = stores[0].snapshot
    assert {m["id"]: m["a"] for m in snap["m"]} == {la: b"A", lb: b"B"} and snap["g"] == 1
    g.store_done(t, stores[0], True)
    assert fa.result == SyncResult(E.NONE, "consumer", "range", b"A")
    assert fb.result == SyncResult(E.NONE, "consumer", "range", b"B")
    assert g.state is S.STABLE and g.sync_deadline is None
    # a late follower in Stable gets its share at once
    assert g.sync(t + 1, lb, None, 1, None, None, {}).result.assignment == b"B"


def test_missing_assignments_are_empty():
    g = new_group()
    a, b = join_new(g, 0, client="a"), join_new(g, 0, client="b")
    t = settle(g)
    fa = g.sync(t, a.result.member_id, None, 1, None, None, {})
    fb = g.sync(t, b.result.member_id, None, 1, None, None, {})
    store_all(g, t)
    assert fa.result.assignment == fb.result.assignment == b""


def test_failed_store_fails_the_syncs_and_rebalances():
    g = new_group()
    a = join_new(g, 0, client="a")
    g.tick(3.0)
    s = g.sync(3, a.result.member_id, None, 1, None, None, {a.result.member_id: b"x"})
    store_all(g, 3, ok=False)
    assert s.result.error == E.COORDINATOR_NOT_AVAILABLE
    assert g.state is S.PREPARING_REBALANCE


def test_sync_errors():
    g = new_group()
    a = join_new(g, 0, client="a")
    mid = a.member_id
    assert g.sync(0.5, mid, None, 0, None, None, {}).result.error == E.REBALANCE_IN_PROGRESS
    g.tick(3.0)
    assert g.sync(3, "ghost", None, 1, None, None, {}).result.error == E.UNKNOWN_MEMBER_ID
    assert g.sync(3, mid, None, 7, None, None, {}).result.error == E.ILLEGAL_GENERATION
    assert g.sync(3, mid, None, 1, "connect", None, {}).result.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert g.sync(3, mid, None, 1, None, "sticky", {}).result.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert g.sync(3, mid, "inst", 1, None, None, {}).result.error == E.UNKNOWN_MEMBER_ID


def test_members_that_never_sync_are_removed_after_the_rebalance_timeout():
    g = new_group()
    a, b = join_new(g, 0, client="a"), join_new(g, 0, client="b")
    t = settle(g)
    la, lb = a.result.member_id, b.result.member_id
    g.sync(t, la, None, 1, None, None, {la: b"A", lb: b"B"})
    store_all(g, t)
    assert g.state is S.STABLE and g.sync_deadline == pytest.approx(t + REBALANCE / 1000)
    for dt in range(5, 30, 5):  # b heartbeats too, but never syncs
        g.heartbeat(t + dt, la, None, 1)
        g.heartbeat(t + dt, lb, None, 1)
    g.tick(t + REBALANCE / 1000)
    assert lb not in g.members and g.state is S.PREPARING_REBALANCE


# -- heartbeats and expiry -------------------------------------------------------------------

def test_heartbeat_answers_by_state():
    g = new_group()
    assert g.heartbeat(0, "x", None, 0) == E.UNKNOWN_MEMBER_ID
    a = join_new(g, 0, client="a")
    mid = a.member_id
    assert g.heartbeat(1, mid, None, 0) == E.REBALANCE_IN_PROGRESS
    g.tick(3.0)
    assert g.heartbeat(3, mid, None, 1) == E.NONE  # CompletingRebalance
    g.sync(3, mid, None, 1, None, None, {})
    store_all(g, 3)
    assert g.heartbeat(4, mid, None, 1) == E.NONE
    assert g.heartbeat(4, mid, None, 0) == E.ILLEGAL_GENERATION
    assert g.heartbeat(4, "ghost", None, 1) == E.UNKNOWN_MEMBER_ID
    g.mark_dead(5)
    assert g.heartbeat(5, mid, None, 1) == E.COORDINATOR_NOT_AVAILABLE


def test_new_member_in_stable_group_rebalances_and_others_rejoin():
    g, (a, b), now = stable_group()
    c = join_new(g, now, client="new")
    assert g.state is S.PREPARING_REBALANCE and not c.done
    assert g.heartbeat(now + 0.5, a, None, 1) == E.REBALANCE_IN_PROGRESS
    ja = join(g, now + 0.5, member_id=a)
    assert not ja.done
    jb = join(g, now + 0.6, member_id=b)  # the last one: completes at once, no delay
    assert ja.result.generation_id == jb.result.generation_id == c.result.generation_id == 2
    assert ja.result.leader == a and len(ja.result.members) == 3
    assert g.state is S.COMPLETING_REBALANCE


def test_members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout():
    g, (a, b), now = stable_group()
    ja = join(g, now, member_id=a)  # the leader rejoins: a rebalance
    assert g.state is S.PREPARING_REBALANCE and not ja.done
    g.heartbeat(now + 5, b, None, 1)  # b keeps heartbeating but never rejoins
    g.heartbeat(now + 14, b, None, 1)
    g.heartbeat(now + 23, b, None, 1)
    g.tick(now + REBALANCE / 1000)
    assert ja.result.error == E.NONE and ja.result.generation_id == 2
    assert list(g.members) == [a]


def test_session_expiry_removes_the_member_and_rebalances():
    g, (a, b), now = stable_group()
    g.heartbeat(now + 5, a, None, 1)
    assert g.next_deadline() == pytest.approx(now + SESSION / 1000)  # b's session
    g.tick(now + 9.9)
    assert b in g.members
    g.tick(now + 10.0)
    assert b not in g.members and g.state is S.PREPARING_REBALANCE
    w = join(g, now + 10.5, member_id=a)
    assert w.result.generation_id == 2 and w.result.members == [(a, None, RANGE[0][1])]


def test_members_parked_in_join_do_not_expire():
    g, (a, b), now = stable_group()
    ja = join(g, now, member_id=a, rebalance=600_000)  # parked until b rejoins
    assert not ja.done
    g.heartbeat(now + 8, b, None, 1)
    g.tick(now + 15)  # a's session (10 s) ran out while parked: it stays
    assert a in g.members and g.next_deadline() == pytest.approx(now + 18)  # b's session
    jb = join(g, now + 16, member_id=b)
    assert ja.result.error == jb.result.error == E.NONE and ja.result.generation_id == 2


def test_a_new_member_waiting_too_long_gets_unknown_member_id():
    """A new member's join can only be answered by the rebalance; if that takes more
    than 5 minutes (old members alive but not rejoining), the new member is dropped."""
    g, (a, b), now = stable_group()
    w = join(g, now, require=False, rebalance=600_000)
    for t in range(int(now) + 5, int(now) + 300, 5):
        g.heartbeat(t, a, None, 1)
        g.heartbeat(t, b, None, 1)
        g.tick(t)
    assert not w.done
    g.tick(now + 300.0)
    assert w.result.error == E.UNKNOWN_MEMBER_ID and w.member_id not in g.members


def test_pending_member_ids_expire_after_the_session_timeout():
    g, (a, b), now = stable_group()
    first = join(g, now, client="slow")
    pending = first.result.member_id
    assert pending in g.pending_members
    g.tick(now + SESSION / 1000)
    assert pending not in g.pending_members
    assert join(g, now + 11, member_id=pending).result.error == E.UNKNOWN_MEMBER_ID


def test_duplicate_join_answers_the_parked_one():
    g = new_group()
    w1 = join_new(g, 0, client="a")
    mid = w1.member_id
    w2 = join(g, 1, member_id=mid)
    assert w1.result.error == E.REBALANCE_IN_PROGRESS and not w2.done
    g.tick(3.0)
    assert w2.result.error == E.NONE


# -- rejoining stable / completing groups ----------------------------------------------------

def test_follower_rejoin_with_same_metadata_does_not_rebalance():
    g, (a, b), now = stable_group()
    w = join(g, now, member_id=b)
    assert w.result.error == E.NONE and w.result.generation_id == 1 and w.result.members == []
    assert g.state is S.STABLE


def test_changed_metadata_rebalances_kip429_second_join():
    """Cooperative rebalancing: after revoking, members join again with new owned
    partitions in their metadata; each such join starts another generation while
    every member keeps its membership."""
    meta2 = [("cooperative-sticky", b"owned-1")]
    g2 = new_group()
    ws = [join_new(g2, 0, client=c, protocols=[("cooperative-sticky", b"x")]) for c in "ab"]
    t = settle(g2)
    la, lb = (w.result.member_id for w in ws)
    g2.sync(t, la, None, 1, None, None, {la: b"p0,p1", lb: b""})
    g2.sync(t, lb, None, 1, None, None, {})
    store_all(g2, t)
    assert g2.state is S.STABLE
    wb = join(g2, t + 1, member_id=lb, protocols=meta2)  # changed metadata: rebalance
    assert g2.state is S.PREPARING_REBALANCE
    wa = join(g2, t + 1.5, member_id=la, protocols=[("cooperative-sticky", b"owned-0")])
    assert wa.result.generation_id == wb.result.generation_id == 2
    assert set(g2.members) == {la, lb}


def test_rejoin_in_completing_rebalance():
    g = new_group()
    a, b = join_new(g, 0, client="a"), join_new(g, 0, client="b")
    t = settle(g)
    la, lb = a.result.member_id, b.result.member_id
    same = join(g, t, member_id=lb)  # lost its answer: gets it again
    assert same.result.generation_id == 1 and same.result.leader == la
    parked = g.sync(t, lb, None, 1, None, None, {})
    changed = join(g, t, member_id=la, protocols=[("range", subscription("t", "u"))])
    assert parked.result.error == E.REBALANCE_IN_PROGRESS and not changed.done
    assert g.state is S.PREPARING_REBALANCE


# -- leaving ---------------------------------------------------------------------------------

def test_leave_rebalances_and_the_last_one_out_empties_the_group():
    g, (a, b), now = stable_group()
    top, codes = g.leave(now, [(a, None), ("ghost", None)])
    assert (top, codes) == (E.NONE, [E.NONE, E.UNKNOWN_MEMBER_ID])
    assert g.state is S.PREPARING_REBALANCE and g.leader == b
    w = join(g, now + 1, member_id=b)
    assert w.result.leader == b and w.result.generation_id == 2
    g.sync(now + 1, b, None, 2, None, None, {b: b"all"})
    store_all(g, now + 1)
    g.leave(now + 2, [(b, None)])  # nobody left to wait for: the join completes at once
    assert g.state is S.EMPTY and g.generation == 3 and g.protocol is None and g.leader is None
    stores = g.take_stores()
    assert stores and stores[-1].snapshot["m"] == [] and stores[-1].snapshot["g"] == 3


def test_leave_answers_parked_requests_and_pending_members():
    g = new_group()
    a = join_new(g, 0, client="a")
    first = join(g, 0, client="b")
    pending = first.result.member_id
    assert g.leave(1, [(pending, None)]) == (E.NONE, [E.NONE])
    assert g.leave(1, [(a.member_id, None)]) == (E.NONE, [E.NONE])
    assert a.result.error == E.UNKNOWN_MEMBER_ID
    g.mark_dead(2)
    assert g.leave(2, [(a.member_id, None)])[0] == E.COORDINATOR_NOT_AVAILABLE


# -- static membership ------------------------------------------------------------------------

def static_group() -> tuple[Group, list[str], float]:
    g = new_group()
    ws = [join(g, 0, client=f"c{i}", instance=f"i{i}") for i in range(2)]  # no MEMBER_ID_REQUIRED
    assert not any(w.done for w in ws)
    t = settle(g)
    ids = [w.result.member_id for w in ws]
    g.sync(t, ids[0], "i0", 1, None, None, {ids[0]: b"A", ids[1]: b"B"})
    g.sync(t, ids[1], "i1", 1, None, None, {})
    store_all(g, t)
    assert g.state is S.STABLE
    g.drain()
    return g, ids, t


def test_static_member_restart_replaces_old_id_without_rebalance():
    g, (a, b), now = static_group()
    w = join(g, now + 1, client="c1", instance="i1")
    assert not w.done  # the new member id is stored first
    stores = g.take_stores()
    assert len(stores) == 1
    new_id = next(m["id"] for m in stores[0].snapshot["m"] if m["gi"] == "i1")
    assert new_id != b
    g.store_done(now + 1, stores[0], True)
    r = w.result
    assert r.error == E.NONE and r.member_id == new_id and r.generation_id == 1
    assert r.leader == a and r.members == [] and not r.skip_assignment
    assert g.state is S.STABLE and g.generation == 1  # nobody else rebalanced
    assert g.heartbeat(now + 1, a, "i0", 1) == E.NONE
    sync = g.sync(now + 2, new_id, "i1", 1, None, None, {})
    assert sync.result.assignment == b"B"  # its old partitions back
    # the old incarnation is fenced
    assert g.heartbeat(now + 2, b, "i1", 1) == E.FENCED_INSTANCE_ID
    assert join(g, now + 2, member_id=b, instance="i1").result.error == E.FENCED_INSTANCE_ID
    assert g.validate_commit(now + 2, b, "i1", 1) == E.FENCED_INSTANCE_ID


def test_static_leader_restart_is_told_to_skip_assignment():
    g, (a, b), now = static_group()
    w = join(g, now + 1, client="c0", instance="i0")
    store_all(g, now + 1)
    r = w.result
    assert r.skip_assignment and r.leader == r.member_id and len(r.members) == 2
    assert r.legacy_leader == a  # what JoinGroup < v9 reports: not this member's id


def test_static_member_restart_fences_parked_requests_of_the_old_one():
    g, (a, b), now = static_group()
    jb = join(g, now, member_id=b, instance="i1", protocols=[("range", subscription("t", "u"))])
    assert g.state is S.PREPARING_REBALANCE and not jb.done
    w = join(g, now + 1, client="c1", instance="i1")
    assert jb.result.error == E.FENCED_INSTANCE_ID
    ja = join(g, now + 1, member_id=a, instance="i0")
    assert ja.result.error == E.NONE and w.result.error == E.NONE and w.result.member_id != b


def test_static_member_restart_with_a_new_protocol_rebalances():
    g, (a, b), now = static_group()
    w = join(g, now + 1, client="c1", instance="i1", protocols=[("roundrobin", b""), ("range", b"")])
    assert g.state is S.STABLE and len(g.take_stores()) == 1  # range is still everyone's pick
    g2, (a2, b2), now = static_group()
    # a change that alters the selected protocol has to rebalance
    g2.members[a2].protocols = [("roundrobin", b""), ("range", b"")]
    w2 = join(g2, now + 1, client="c1", instance="i1", protocols=[("roundrobin", b""), ("range", b"")])
    assert g2.state is S.PREPARING_REBALANCE and not w2.done
    del w


def test_static_members_that_do_not_rejoin_stay_in_the_group():
    g, (a, b), now = static_group()
    ja = join(g, now, member_id=a, instance="i0")  # leader rejoins: rebalance
    for dt in (5, 14, 23):  # b is alive (heartbeats) but does not rejoin
        assert g.heartbeat(now + dt, b, "i1", 1) == E.REBALANCE_IN_PROGRESS
    g.tick(now + REBALANCE / 1000)
    assert ja.result.error == E.NONE and set(g.members) == {a, b}
    assert len(ja.result.members) == 2


def test_leave_by_instance_id():
    g, (a, b), now = static_group()
    assert g.leave(now, [("", "i1"), ("", "nope")]) == (E.NONE, [E.NONE, E.UNKNOWN_MEMBER_ID])
    assert b not in g.members and "i1" not in g.static


# -- offsets ---------------------------------------------------------------------------------

def test_offset_commit_validation():
    g = new_group()
    assert g.validate_commit(0, "", None, -1) == E.NONE  # simple commit to an empty group
    assert g.validate_commit(0, "m", None, 1) == E.UNKNOWN_MEMBER_ID
    a = join_new(g, 0, client="a")
    mid = a.member_id
    assert g.validate_commit(1, "", None, -1) == E.UNKNOWN_MEMBER_ID  # members only now
    assert g.validate_commit(1, mid, None, 0) == E.NONE  # PreparingRebalance still commits
    g.tick(3.0)
    assert g.validate_commit(3, mid, None, 1) == E.REBALANCE_IN_PROGRESS
    g.sync(3, mid, None, 1, None, None, {})
    store_all(g, 3)
    assert g.validate_commit(4, mid, None, 1) == E.NONE
    assert g.validate_commit(4, mid, None, 0) == E.ILLEGAL_GENERATION
    assert g.validate_commit(4, "ghost", None, 1) == E.UNKNOWN_MEMBER_ID
    assert g.check_metadata("x" * 100) == E.NONE
    assert g.check_metadata("x" * 101) == E.OFFSET_METADATA_TOO_LARGE
    g.mark_dead(5)
    assert g.validate_commit(5, "", None, -1) == E.COORDINATOR_NOT_AVAILABLE


def test_offset_commit_refreshes_the_session():
    g, (a, b), now = stable_group()
    g.validate_commit(now + 9, b, None, 1)
    g.heartbeat(now + 9, a, None, 1)
    g.tick(now + 12)
    assert b in g.members


def test_offset_delete_refuses_subscribed_topics():
    g, ids, now = stable_group()
    top, codes = g.deletable_offsets([("t", 0), ("other", 0)])
    assert top == E.NONE and codes == {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("other", 0): E.NONE}
    empty = new_group()
    assert empty.deletable_offsets([("t", 0)]) == (E.NONE, {("t", 0): E.NONE})
    empty.mark_dead(1)
    assert empty.deletable_offsets([("t", 0)])[0] == E.GROUP_ID_NOT_FOUND
    other = new_group()
    join_new(other, 0, ptype="connect", protocols=[("v1", b"")])
    assert other.deletable_offsets([("t", 0)])[0] == E.NON_EMPTY_GROUP


def test_offsets_retention():
    day = 86_400_000
    simple = new_group()  # offsets only: each offset ages on its own
    simple.offsets = {("t", 0): OffsetEntry(1, commit_ms=0), ("t", 1): OffsetEntry(1, commit_ms=day),
                      ("t", 2): OffsetEntry(1, commit_ms=0, expire_ms=day)}
    assert simple.expired_offsets(day) == [("t", 2)]
    assert sorted(simple.expired_offsets(7 * day)) == [("t", 0), ("t", 2)]

    g, (a, b), now = stable_group()
    g.offsets = {("t", 0): OffsetEntry(1, commit_ms=0), ("gone", 0): OffsetEntry(1, commit_ms=0)}
    assert g.expired_offsets(30 * day) == [("gone", 0)]  # subscribed topics never expire while Stable
    g.leave(now, [(a, None), (b, None)])
    g.tick(now)
    assert g.state is S.EMPTY
    emptied = g.state_ms
    g.offsets[("t", 0)].commit_ms = 0
    assert g.expired_offsets(emptied + 7 * day - 1) == []  # counted from when it became empty
    assert sorted(g.expired_offsets(emptied + 7 * day)) == [("gone", 0), ("t", 0)]


def test_parse_subscription():
    assert parse_subscription(subscription("a", "bb")) == ["a", "bb"]
    assert parse_subscription(b"\x00") is None


# -- describe, persist, restore ---------------------------------------------------------------

def test_describe_shows_metadata_only_when_stable():
    g, (a, b), now = stable_group()
    d = g.describe()
    assert (d.state, d.protocol_type, d.protocol) == ("Stable", "consumer", "range")
    assert {m.member_id: m.assignment for m in d.members} == {a: f"a-{a}".encode(), b: f"a-{b}".encode()}
    join(g, now, member_id=a)
    d = g.describe()
    assert d.state == "PreparingRebalance" and d.protocol == "" and all(m.assignment == b"" for m in d.members)


def test_snapshot_restore_keeps_members_and_gives_them_a_session():
    g, (a, b), now = stable_group()
    snap = g.snapshot(now)
    offsets = {("t", 0): OffsetEntry(5, 3, "meta", 1000)}
    r = Group.restore("g", CFG, 100.0, snap, offsets)
    assert r.state is S.STABLE and r.generation == 1 and r.leader == a and r.protocol == "range"
    assert {m.member_id: m.assignment for m in r.members.values()} == {a: f"a-{a}".encode(),
                                                                         b: f"a-{b}".encode()}
    assert r.offsets == offsets and r.subscribed == {"t"}
    assert r.heartbeat(101, a, None, 1) == E.NONE
    assert r.sync(101, b, None, 1, None, None, {}).result.assignment == f"a-{b}".encode()
    r.tick(110.5)  # a heartbeated at 101; b synced at 101
    assert set(r.members) == {a, b}
    r.tick(120)  # nobody came back
    assert not r.members or r.state is S.PREPARING_REBALANCE


def test_restore_of_an_empty_group():
    g = Group.restore("g", CFG, 5.0, {"v": 1, "pt": "consumer", "g": 4, "p": None, "l": None,
                                       "ts": 1234, "m": []}, {})
    assert g.state is S.EMPTY and g.generation == 4 and g.state_ms == 1234
    w = join_new(g, 5.0)
    g.tick(8.0)
    assert w.result.generation_id == 5
    assert Group.restore("g", CFG, 0, None, {}).state is S.EMPTY


def test_results_are_plain_data():
    assert JoinResult(E.NONE).members == [] and SyncResult(E.NONE).assignment == b""


# -- settings read live from the broker config (issue #16) ------------------------------------

def live_group(**settings) -> tuple[Group, Config]:
    """A group whose GroupConfig is a view over a broker Config, as the broker builds it."""
    config = Config(**settings)
    n = itertools.count(1)
    return Group("g", GroupConfig.from_config(config), 0.0,
                 new_member_id=lambda client: f"{client}-{next(n)}"), config


def test_group_config_reads_the_broker_config_at_every_use():
    config = Config()
    gc = GroupConfig.from_config(config)
    assert (gc.min_session_timeout_ms, gc.max_session_timeout_ms, gc.max_size, gc.offsets_retention_ms,
            gc.offset_metadata_max_bytes, gc.offsets_retention_check_interval_ms) == (
        6000, 1_800_000, 2**31 - 1, 7 * 86_400_000, 4096, 600_000)
    # the dynamic-config watcher sets attributes of the same Config object
    config.group_min_session_timeout_ms = 1000
    config.offsets_retention_minutes = 2
    config.group_max_size = 3
    assert (gc.min_session_timeout_ms, gc.offsets_retention_ms, gc.max_size) == (1000, 120_000, 3)
    # fixed values (tests, embedding) win over the source; unknown names are refused
    assert GroupConfig(config, max_size=9).max_size == 9
    with pytest.raises(TypeError):
        GroupConfig(offsets_retention_minutes=1)


def test_session_timeout_bounds_change_without_a_restart():
    g, config = live_group()
    assert join(g, 0, session=3000).result.error == E.INVALID_SESSION_TIMEOUT
    config.group_min_session_timeout_ms = 1000
    assert join(g, 0, session=3000).result.error == E.MEMBER_ID_REQUIRED
    config.group_max_session_timeout_ms = 2000
    assert join(g, 0, session=3000).result.error == E.INVALID_SESSION_TIMEOUT


def test_metadata_limit_changes_without_a_restart():
    g, config = live_group()
    assert g.check_metadata("x" * 4096) == E.NONE
    assert g.check_metadata("x" * 4097) == E.OFFSET_METADATA_TOO_LARGE
    config.offset_metadata_max_bytes = 10
    assert g.check_metadata("é" * 6) == E.OFFSET_METADATA_TOO_LARGE  # bytes, not characters


# -- group.max.size ---------------------------------------------------------------------------

def test_a_new_member_of_a_full_stable_group_is_refused():
    g, ids, now = stable_group(2)
    g.config.max_size = 2
    w = join(g, now + 1, client="late")
    assert w.result.error == E.GROUP_MAX_SIZE_REACHED and w.result.member_id == ""
    assert g.state is S.STABLE and sorted(g.members) == sorted(ids) and not g.pending_members
    # old JoinGroup versions (no member id round trip) are refused the same way
    assert join(g, now + 1, client="late", require=False).result.error == E.GROUP_MAX_SIZE_REACHED
    # members already in the group still rejoin
    assert join(g, now + 1, member_id=ids[1]).result.error == E.NONE
    g.config.max_size = 3
    assert join(g, now + 2, client="late").result.error == E.MEMBER_ID_REQUIRED


def test_while_preparing_only_members_that_rejoined_count():
    g = new_group(GroupConfig(initial_rebalance_delay_ms=3000, max_size=2))
    a = join_new(g, 0, client="a")
    b = join_new(g, 0, client="b")
    assert g.state is S.PREPARING_REBALANCE and not a.done and not b.done
    third = join(g, 0.5, client="c")
    assert third.result.error == E.GROUP_MAX_SIZE_REACHED
    # an id handed out before the group filled is refused when it comes back with it
    g.config.max_size = 3
    pending = join(g, 0.6, client="d").result.member_id
    g.config.max_size = 2
    assert join(g, 0.7, member_id=pending, client="d").result.error == E.GROUP_MAX_SIZE_REACHED
    assert pending not in g.pending_members and pending not in g.members
    settle(g)
    assert a.result.error == E.NONE and b.result.error == E.NONE and len(g.members) == 2


def test_a_group_over_a_lowered_limit_keeps_the_first_members_to_rejoin():
    g, ids, now = stable_group(3)
    g.config.max_size = 2
    # the next heartbeat starts a rebalance (Kafka does this when it loads such a group)
    assert g.heartbeat(now + 1, ids[0], None, 1) == E.REBALANCE_IN_PROGRESS
    assert g.state is S.PREPARING_REBALANCE
    first = join(g, now + 2, member_id=ids[2])
    second = join(g, now + 2, member_id=ids[0])
    last = join(g, now + 2, member_id=ids[1])
    assert last.result.error == E.GROUP_MAX_SIZE_REACHED
    assert ids[1] not in g.members
    # the two that rejoined complete the rebalance at once: everyone left has rejoined
    assert first.result.error == E.NONE and second.result.error == E.NONE
    assert first.result.generation_id == 2 and g.state is S.COMPLETING_REBALANCE
    assert sorted(g.members) == sorted([ids[0], ids[2]])


def test_a_static_member_coming_back_to_a_full_group_takes_its_place():
    g = new_group(GroupConfig(initial_rebalance_delay_ms=3000, max_size=1))
    w = join(g, 0, client="s", instance="i1")
    now = settle(g)
    mid = w.result.member_id
    g.sync(now, mid, "i1", 1, None, None, {mid: b"x"})
    store_all(g, now)
    assert g.state is S.STABLE
    back = join(g, now + 1, client="s", instance="i1")
    store_all(g, now + 1)
    assert back.result.error == E.NONE and back.result.member_id != mid
    assert join(g, now + 1, client="other", instance="i2").result.error == E.GROUP_MAX_SIZE_REACHED


# -- offsets retention (KIP-211) --------------------------------------------------------------

def test_offsets_expire_by_kafkas_rules_with_a_live_retention():
    minute = 60_000
    g, config = live_group(offsets_retention_minutes=10)
    # commits only (no protocol ever): each offset on its own, from its commit
    g.offsets = {("t", 0): OffsetEntry(1, commit_ms=0), ("t", 1): OffsetEntry(1, commit_ms=5 * minute)}
    assert g.expired_offsets(10 * minute - 1) == []
    assert g.expired_offsets(10 * minute) == [("t", 0)]
    config.offsets_retention_minutes = 1  # an operator shortened it: the next pass sees it
    assert sorted(g.expired_offsets(6 * minute)) == [("t", 0), ("t", 1)]
    assert not g.removable  # it still has offsets
    g.offsets.clear()
    assert g.removable
    g.pending_commits = 1  # a commit being written keeps the group
    assert not g.removable


def test_explicit_retention_does_not_expire_offsets_a_stable_group_subscribes_to():
    g, (a, b), now = stable_group()
    g.offsets = {("t", 0): OffsetEntry(1, commit_ms=0, expire_ms=10),
                 ("other", 0): OffsetEntry(1, commit_ms=0, expire_ms=10)}
    assert g.expired_offsets(20) == [("other", 0)]
    # a group in the middle of a rebalance expires nothing (Kafka's "case _")
    join_new(g, now + 1, client="new")
    assert g.state is S.PREPARING_REBALANCE
    assert g.expired_offsets(10**12) == []
    assert not g.removable


def test_an_emptied_group_loses_all_its_offsets_retention_after_it_emptied():
    g, (a, b), now = stable_group()
    g.offsets = {("t", 0): OffsetEntry(1, commit_ms=int(now * 1000))}
    g.leave(now + 100, [(a, None), (b, None)])
    assert g.state is S.EMPTY and g.state_ms == int((now + 100) * 1000)
    retention = g.config.offsets_retention_ms
    assert g.expired_offsets(g.state_ms + retention - 1) == []
    assert g.expired_offsets(g.state_ms + retention) == [("t", 0)]
