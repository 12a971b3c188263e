"""The console's view over a broker's in-memory state (kafscale/server/console.py),
with the state built from the real record types: filters, limits, the summing budget,
lag, and the escaping of the rendered pages."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from kafscale.broker.core import BrokerInfo
from kafscale.groups.coordinator import Group, GroupConfig, GroupState, OffsetEntry
from kafscale.metadata.cluster import Leader, SegmentRef, TopicRecord
from kafscale.server import console as c
from kafscale.server.http import Request


async def _ready():
    return True, ""


def fake_broker(topics: dict[str, int], groups: list[Group], hws: dict[tuple[str, int], int]):
    recs = {name: TopicRecord(name, f"{i:032x}", n, {"retention.ms": "1000"} if i == 0 else {})
            for i, (name, n) in enumerate(sorted(topics.items()))}
    plog = SimpleNamespace(hw=10, log_start=2, owned=True, was_owner=True,
                           segments=[SegmentRef("k", 0, 9, 10, 100, 0, 1, 0)])
    logs = SimpleNamespace(
        topics=recs, owners={(t, p): Leader(p % 2, 3, "x") for t, r in recs.items() for p in range(r.partitions)},
        logs={("a-topic", 0): plog}, high_watermark=lambda t, p: hws.get((t, p), 0 if t in recs else None))
    membership = SimpleNamespace(live={0: {}, 1: {}})
    return SimpleNamespace(
        config=SimpleNamespace(broker_id=0), cluster_id="cid", logs=logs, membership=membership,
        groups=SimpleNamespace(groups={g.group_id: g for g in groups}, coordinator_for=lambda key: 1),
        live_brokers=lambda: [BrokerInfo(0, "h0", 9092, "r1"), BrokerInfo(1, "h1", 9092, None)])


def group(group_id: str, offsets: dict[tuple[str, int], int], state=GroupState.EMPTY) -> Group:
    g = Group(group_id, GroupConfig(), 0.0)
    g.state = state
    g.offsets = {tp: OffsetEntry(o) for tp, o in offsets.items()}
    return g


def test_topics_filter_limit_and_totals():
    view = c.ClusterView(fake_broker({"a-topic": 2, "b-topic": 1, "other": 1}, [], {("a-topic", 0): 10, ("a-topic", 1): 5}), _ready)
    listing = view.topics("topic", limit=1)
    assert (listing["total"], listing["matched"], len(listing["topics"])) == (3, 2, 1)
    (a,) = listing["topics"]
    assert a["name"] == "a-topic" and a["configs"] == {"retention.ms": "1000"}
    assert (a["high_watermark"], a["log_start"], a["size_bytes"], a["partitions_local"]) == (15, 2, 100, 1)
    detail = view.topic("a-topic")
    assert [(p["owner"], p["leader_epoch"], p["high_watermark"], p["size_bytes"]) for p in detail["partition_list"]] \
        == [(0, 3, 10, 100), (1, 3, 5, None)]
    assert view.topic("nope") is None


def test_the_summing_budget_bounds_the_work_of_one_answer(monkeypatch):
    monkeypatch.setattr(c, "SUMMARY_BUDGET", 5)
    view = c.ClusterView(fake_broker({"a-topic": 3, "b-topic": 3, "c-topic": 2}, [], {}), _ready)
    rows = view.topics()["topics"]
    assert [(r["name"], r["summarized"]) for r in rows] == [("a-topic", True), ("b-topic", False), ("c-topic", True)]
    assert rows[1]["high_watermark"] is None and rows[1]["partitions"] == 3
    big = group("big", {("a-topic", p): 0 for p in range(3)} | {("b-topic", p): 0 for p in range(3)})
    view = c.ClusterView(fake_broker({"a-topic": 3, "b-topic": 3}, [big], {}), _ready)
    (g,) = view.groups()["groups"]
    assert g["summarized"] is False and g["lag"] is None and g["partitions"] == 6


def test_groups_lag_and_deleted_topics():
    g1 = group("g1", {("a-topic", 0): 4, ("a-topic", 1): 5, ("gone", 0): 1}, GroupState.STABLE)
    dead = group("dead", {}, GroupState.DEAD)
    view = c.ClusterView(fake_broker({"a-topic": 2}, [g1, dead], {("a-topic", 0): 10, ("a-topic", 1): 5}), _ready)
    listing = view.groups()
    assert [x["group"] for x in listing["groups"]] == ["g1"]  # dead groups are gone
    assert listing["groups"][0]["lag"] == 6 and listing["groups"][0]["state"] == "Stable"
    detail = view.group("g1", limit=1)
    assert [(o["partition"], o["committed"], o["lag"]) for o in detail["offsets"]] == [(0, 4, 6)]
    assert view.group("dead") is None and view.coordinator_of("dead") == 1


def test_brokers_include_owners_whose_broker_is_gone():
    broker = fake_broker({"a-topic": 3}, [], {})
    broker.logs.owners[("a-topic", 2)] = Leader(7, 1, "x")
    rows = asyncio.run(c.ClusterView(broker, _ready).brokers())
    assert [(r["id"], r["live"], r["partitions_owned"], r["ready"]) for r in rows] == \
        [(0, True, 1, True), (1, True, 1, None), (7, False, 1, None)]


@pytest.mark.parametrize("path,kwargs", [("/ui/groups", {}), ("/ui/groups/x", {"group_id": "<i>"})])
def test_pages_escape_group_ids(path, kwargs):
    weird = "<i>"
    view = c.ClusterView(fake_broker({"a-topic": 1}, [group(weird, {("a-topic", 0): 1})], {}), _ready)
    console = c.Console(view)
    handler = console.group_page if kwargs else console.groups_page
    resp = asyncio.run(handler(Request("GET", path, {}, {}), **kwargs))
    page = resp.body.decode()
    assert resp.status == 200 and "<i>" not in page and "&lt;i&gt;" in page
    assert "/ui/groups/%3Ci%3E" in page or kwargs  # links percent-encode the id


def test_api_answers_json_and_404s():
    view = c.ClusterView(fake_broker({"a-topic": 1}, [], {}), _ready)
    console = c.Console(view)
    resp = asyncio.run(console.api_topic(Request("GET", "/api/topics/x", {}, {}), name="x"))
    assert resp.status == 404 and resp.content_type == "application/json"
    resp = asyncio.run(console.api_group(Request("GET", "/api/groups/x", {}, {}), group_id="x"))
    assert resp.status == 404 and orjson.loads(resp.body)["coordinator"] == 1
    resp = asyncio.run(console.api_topics(Request("GET", "/api/topics", {"limit": "junk"}, {})))
    assert orjson.loads(resp.body)["limit"] == c.DEFAULT_LIMIT
