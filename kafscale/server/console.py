"""The web console: a read-only view of the cluster on the HTTP port (docs/console.md).

``ClusterView`` answers from what the broker already holds in memory: the topic table,
owner records and high watermarks the etcd watches keep current, the partition logs it
has open (log start and size: known for partitions it owns or reads), the groups it
coordinates and the live brokers. Nothing here reads etcd or S3 (the one
exception, readiness, is the probe's own at-most-once-a-second check). Every answer
is bounded: lists stop at ``limit`` entries (at most ``MAX_LIMIT``) and a filter
narrows them, so a page costs O(topics + partitions shown) however big the cluster.

``Console`` serves it twice over the same dicts: JSON under ``/api/`` and HTML pages
under ``/ui`` (Jinja2 templates, autoescaped: topic and group names are user input).
``RateMeter`` turns the produce/fetch counters into rates over the last seconds.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Callable
from urllib.parse import quote

import curio
import jinja2
import orjson

from kafscale import __version__
from kafscale.admin.groupproto import decode_assignment
from kafscale.broker.core import Broker
from kafscale.server.http import Request, Response, Route

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Most partitions (or committed offsets) one answer adds up for its totals: past this,
# the remaining rows are listed with their totals null ("summarized": false), so a page
# over topics with 100k partitions costs milliseconds of the event loop, not seconds.
SUMMARY_BUDGET = 20_000
RATE_WINDOW_S = 5.0
JSON = "application/json"
HTML = "text/html; charset=utf-8"

# (bytes in, records in, bytes out, records out) since start: what the rates are made of.
Traffic = tuple[float, float, float, float]


class RateMeter:
    """Per-second rates of cumulative counters over the last ``window`` seconds, from
    samples taken about once a second (``sample``)."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self.samples: collections.deque[tuple[float, Traffic]] = collections.deque(maxlen=int(window) + 3)

    def sample(self, now: float, totals: Traffic) -> None:
        self.samples.append((now, totals))

    def rates(self) -> Traffic | None:
        """None until two samples are at hand; a counter that went down (a restart of
        its series) counts as 0."""
        if len(self.samples) < 2:
            return None
        t1, last = self.samples[-1]
        t0, first = next((t, v) for t, v in self.samples if t1 - t <= self.window + 0.5)
        if t1 - t0 <= 0:
            t0, first = self.samples[-2]
        span = t1 - t0
        return tuple(max(b - a, 0.0) / span for a, b in zip(first, last))  # type: ignore[return-value]


def traffic_totals(metrics: Any) -> Traffic:
    """Produced and fetched bytes and records so far: the per-topic counters of
    kafscale.metrics summed over topics (O(topics), once a second)."""
    counters = (metrics.topic_bytes_in, metrics.topic_records_in, metrics.topic_bytes_out, metrics.topic_records_out)
    return tuple(sum(s.value for family in c.collect() for s in family.samples if s.name.endswith("_total"))
                 for c in counters)  # type: ignore[return-value]


def _limit(req: Request, default: int = DEFAULT_LIMIT) -> int:
    """The ``limit`` query parameter, within 1..MAX_LIMIT."""
    try:
        return max(1, min(int(req.query.get("limit", default)), MAX_LIMIT))
    except ValueError:
        return default


class ClusterView:
    def __init__(self, broker: Broker, ready: Callable[[], Any], meter: RateMeter | None = None) -> None:
        self.broker = broker
        self.logs = broker.logs
        self.ready = ready  # async () -> (ok, reason): the readiness probe
        self.meter = meter or RateMeter()
        self._sorted: tuple[Any, list[str]] = (None, [])

    # -- the partition facts --------------------------------------------------------------

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's committed high watermark, wherever it is owned (the log
        manager keeps every partition's from the etcd watch)."""
        return self.logs.high_watermark(topic, partition)

    def _current_log(self, topic: str, partition: int) -> Any:
        plog = self.logs.logs.get((topic, partition))
        if plog is None or (plog.was_owner and not plog.owned):
            return None  # (an ex-owner's view stopped following at its last commit)
        return plog

    def partition(self, topic: str, p: int) -> dict[str, Any]:
        owner = self.logs.owners.get((topic, p))
        plog = self._current_log(topic, p)
        return {
            "partition": p,
            "owner": owner.broker if owner is not None else None,
            "leader_epoch": owner.epoch if owner is not None else None,
            "log_start": plog.log_start if plog is not None else None,
            "high_watermark": self.high_watermark(topic, p),
            "size_bytes": sum(s.size for s in plog.segments) if plog is not None else None,
        }

    # -- topics ---------------------------------------------------------------------------

    def _names(self) -> list[str]:
        topics = self.logs.topics  # replaced, never changed in place, when the table changes
        if self._sorted[0] is not topics:
            self._sorted = (topics, sorted(topics))
        return self._sorted[1]

    def topic_summary(self, name: str, summarize: bool = True) -> dict[str, Any]:
        rec = self.logs.topics[name]
        parts = [self.partition(name, p) for p in range(rec.partitions)] if summarize else []

        def total(key: str) -> int | None:
            known = [x[key] for x in parts if x[key] is not None]
            return sum(known) if known else None

        return {"name": name, "id": rec.id, "partitions": rec.partitions, "summarized": summarize,
                # log start and size come from partition logs: those this broker owns or reads
                "partitions_local": sum(1 for x in parts if x["size_bytes"] is not None),
                "log_start": total("log_start"), "high_watermark": total("high_watermark"),
                "size_bytes": total("size_bytes"), "configs": dict(sorted(rec.config.items()))}

    def topics(self, q: str = "", limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        names = self._names()
        matched = [n for n in names if q in n] if q else names
        budget, rows = SUMMARY_BUDGET, []
        for name in matched[:limit]:
            cost = self.logs.topics[name].partitions
            rows.append(self.topic_summary(name, cost <= budget))
            budget -= cost if cost <= budget else 0
        return {"total": len(names), "matched": len(matched), "filter": q, "limit": limit, "topics": rows}

    def topic(self, name: str, limit: int = MAX_LIMIT) -> dict[str, Any] | None:
        rec = self.logs.topics.get(name)
        if rec is None:
            return None
        return {**self.topic_summary(name, rec.partitions <= SUMMARY_BUDGET), "limit": limit,
                "partition_list": [self.partition(name, p) for p in range(min(rec.partitions, limit))]}

    # -- brokers --------------------------------------------------------------------------

    async def brokers(self) -> list[dict[str, Any]]:
        me = self.broker.config.broker_id
        owned = collections.Counter(o.broker for o in self.logs.owners.values())
        live = self.broker.membership.live
        ok, reason = await self.ready()
        out = []
        for info in self.broker.live_brokers():
            out.append({"id": info.node_id, "host": info.host, "port": info.port, "rack": info.rack,
                        "partitions_owned": owned.get(info.node_id, 0), "live": True, "this": info.node_id == me,
                        "ready": ok if info.node_id == me else None,
                        "not_ready_reason": reason if info.node_id == me and not ok else None})
        for gone in sorted(set(owned) - set(live) - {me}):  # owner records outliving a lease
            out.append({"id": gone, "host": None, "port": None, "rack": None, "partitions_owned": owned[gone],
                        "live": False, "this": False, "ready": None, "not_ready_reason": None})
        return out

    # -- groups ---------------------------------------------------------------------------

    def _offsets(self, group: Any, limit: int | None = None) -> list[dict[str, Any]]:
        out = []
        for (topic, p), entry in sorted(group.offsets.items())[:limit]:
            if topic not in self.logs.topics:
                continue  # committed for a topic since deleted
            hw = self.high_watermark(topic, p)
            out.append({"topic": topic, "partition": p, "committed": entry.offset, "high_watermark": hw,
                        "lag": max(hw - entry.offset, 0) if hw is not None else None,
                        "commit_ms": entry.commit_ms or None})
        return out

    def group_summary(self, group: Any, summarize: bool = True) -> dict[str, Any]:
        offsets = self._offsets(group) if summarize else []
        lags = [o["lag"] for o in offsets if o["lag"] is not None]
        return {"group": group.group_id, "state": group.state.value, "protocol_type": group.protocol_type or "",
                "protocol": group.protocol or "", "generation": group.generation, "members": len(group.members),
                "summarized": summarize, "partitions": len(offsets) if summarize else len(group.offsets),
                "lag": sum(lags) if lags else None}

    def _live_groups(self) -> list[Any]:
        return sorted((g for g in self.broker.groups.groups.values() if g.state.value != "Dead"),
                      key=lambda g: g.group_id)

    def groups(self, q: str = "", limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        live = self._live_groups()
        matched = [g for g in live if q in g.group_id] if q else live
        budget, rows = SUMMARY_BUDGET, []
        for group in matched[:limit]:
            cost = len(group.offsets)
            rows.append(self.group_summary(group, cost <= budget))
            budget -= cost if cost <= budget else 0
        return {"coordinator": self.broker.config.broker_id, "total": len(live), "matched": len(matched),
                "filter": q, "limit": limit, "groups": rows}

    def group(self, group_id: str, limit: int = MAX_LIMIT) -> dict[str, Any] | None:
        group = self.broker.groups.groups.get(group_id)
        if group is None or group.state.value == "Dead":
            return None
        members = []
        for m in group.members.values():
            assigned: dict[str, list[int]] = {}
            if group.protocol_type == "consumer" and m.assignment:
                try:
                    assigned = decode_assignment(m.assignment)
                except Exception:  # noqa: BLE001 - a client's own protocol: show it without
                    assigned = {}
            members.append({"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                            "client_id": m.client_id, "client_host": m.client_host,
                            "assignment": {t: sorted(ps) for t, ps in sorted(assigned.items())}})
        return {**self.group_summary(group, len(group.offsets) <= SUMMARY_BUDGET), "limit": limit,
                "member_list": members, "offsets": self._offsets(group, limit)}

    def coordinator_of(self, group_id: str) -> int:
        return self.broker.groups.coordinator_for(group_id)

    # -- rates and the whole ------------------------------------------------------------

    def rates(self) -> dict[str, Any]:
        r = self.meter.rates()
        if r is None:
            return {"window_s": self.meter.window, "produce": None, "fetch": None}
        return {"window_s": self.meter.window,
                "produce": {"bytes_per_s": round(r[0], 1), "records_per_s": round(r[1], 1)},
                "fetch": {"bytes_per_s": round(r[2], 1), "records_per_s": round(r[3], 1)}}

    async def cluster(self) -> dict[str, Any]:
        ok, reason = await self.ready()
        return {"cluster_id": self.broker.cluster_id, "broker_id": self.broker.config.broker_id,
                "version": __version__, "ready": ok, "not_ready_reason": None if ok else reason,
                "brokers": len(self.broker.live_brokers()), "topics": len(self.logs.topics),
                "partitions": sum(t.partitions for t in self.logs.topics.values()),
                "groups_coordinated": len(self._live_groups()), "rates": self.rates()}


# -- the web side -------------------------------------------------------------------------

def _human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _number(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n:,.0f}" if isinstance(n, int) or float(n).is_integer() else f"{n:,.1f}"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("kafscale.server", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(bytes=_human_bytes, number=_number, segment=lambda s: quote(str(s), safe=""))
    return env


class Console:
    """The console's routes (``routes()``) and its rate sampler (``run``, a task)."""

    def __init__(self, view: ClusterView, traffic: Callable[[], Traffic] | None = None) -> None:
        self.view = view
        self.traffic = traffic
        self.env = _templates()

    async def run(self, interval: float = 1.0) -> None:
        """Sample the traffic counters every ``interval`` seconds for the rates."""
        if self.traffic is None:
            return
        while True:
            try:
                self.view.meter.sample(time.monotonic(), self.traffic())
            except Exception:  # noqa: BLE001 - rates stay stale; the broker goes on
                log.exception("console: sampling the traffic counters failed")
            await curio.sleep(interval)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root),
            Route("/ui", self.overview_page),
            Route("/ui/topics", self.topics_page),
            Route("/ui/topics/{name}", self.topic_page),
            Route("/ui/groups", self.groups_page),
            Route("/ui/groups/{group_id}", self.group_page),
            Route("/api/cluster", self.api_cluster),
            Route("/api/brokers", self.api_brokers),
            Route("/api/topics", self.api_topics),
            Route("/api/topics/{name}", self.api_topic),
            Route("/api/groups", self.api_groups),
            Route("/api/groups/{group_id}", self.api_group),
            Route("/api/rates", self.api_rates),
        ]

    # -- JSON -------------------------------------------------------------------------------

    @staticmethod
    def json(data: Any, status: int = 200) -> Response:
        return Response(status, orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n", JSON)

    async def api_cluster(self, req: Request) -> Response:
        return self.json(await self.view.cluster())

    async def api_brokers(self, req: Request) -> Response:
        return self.json({"brokers": await self.view.brokers()})

    async def api_topics(self, req: Request) -> Response:
        return self.json(self.view.topics(req.query.get("q", ""), _limit(req)))

    async def api_topic(self, req: Request, name: str) -> Response:
        topic = self.view.topic(name, _limit(req, MAX_LIMIT))
        if topic is None:
            return self.json({"error": f"unknown topic {name!r}"}, 404)
        return self.json(topic)

    async def api_groups(self, req: Request) -> Response:
        return self.json(self.view.groups(req.query.get("q", ""), _limit(req)))

    async def api_group(self, req: Request, group_id: str) -> Response:
        group = self.view.group(group_id, _limit(req, MAX_LIMIT))
        if group is None:
            return self.json({"error": f"group {group_id!r} is not coordinated by this broker",
                              "coordinator": self.view.coordinator_of(group_id)}, 404)
        return self.json(group)

    async def api_rates(self, req: Request) -> Response:
        return self.json(self.view.rates())

    # -- HTML -------------------------------------------------------------------------------

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        body = self.env.get_template(template).render(broker_id=self.view.broker.config.broker_id,
                                                      version=__version__, **context)
        return Response(status, body.encode(), HTML)

    async def root(self, req: Request) -> Response:
        return Response(302, b"see /ui\n", headers=[("Location", "/ui")])

    async def overview_page(self, req: Request) -> Response:
        return self.page("overview.html", cluster=await self.view.cluster(), brokers=await self.view.brokers(),
                         topics=self.view.topics("", 50), groups=self.view.groups("", 50))

    async def topics_page(self, req: Request) -> Response:
        return self.page("topics.html", topics=self.view.topics(req.query.get("q", ""), _limit(req)))

    async def topic_page(self, req: Request, name: str) -> Response:
        topic = self.view.topic(name, _limit(req, MAX_LIMIT))
        if topic is None:
            return self.page("missing.html", 404, what="topic", name=name, coordinator=None)
        return self.page("topic.html", topic=topic)

    async def groups_page(self, req: Request) -> Response:
        return self.page("groups.html", groups=self.view.groups(req.query.get("q", ""), _limit(req)))

    async def group_page(self, req: Request, group_id: str) -> Response:
        group = self.view.group(group_id, _limit(req, MAX_LIMIT))
        if group is None:
            return self.page("missing.html", 404, what="group", name=group_id,
                             coordinator=self.view.coordinator_of(group_id))
        return self.page("group.html", group=group)
