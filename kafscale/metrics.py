"""The broker's Prometheus metrics (prometheus_client), served on the HTTP port at /metrics.

One ``Metrics`` per broker, with its own registry. Instrumented code holds the metric
objects (``metrics.s3_seconds`` ...) and calls ``observe``/``inc``; what is state rather
than an event (connections, partitions owned, cache, pending bytes, consumer lag) is
read at scrape time by ``BrokerCollector``, from what the broker already keeps in
memory. docs/metrics.md lists every family. Per request the cost is a few dictionary
lookups and one histogram observation: labelled children are looked up once and kept.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kafscale.errors import ErrorCode

# The *_created series double every counter for no use here.
prometheus_client.disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = tuple(float(1 << s) for s in range(10, 28, 2))  # 1 KiB .. 64 MiB

# The storage counters (LogManager.stats and GroupService.stats), exported as
# kafscale_<name>_total with this help.
STATS_HELP = {
    "s3_puts": "Objects written to S3 by flushes.",
    "objects_flushed": "Objects flushed to S3 (one per flush of a topic).",
    "segments_flushed": "Partition segments committed by flushes.",
    "flushed_bytes": "Record bytes committed by flushes.",
    "etcd_commits": "etcd transactions committing flushed segments.",
    "s3_gets": "S3 GETs of whole objects by the read path.",
    "s3_range_gets": "S3 ranged GETs by the read path.",
    "whole_object_gets": "Reads that fetched a whole object.",
    "segments_read_along": "Segments cached by a whole-object read beside the one asked for.",
    "read_ahead": "Read-ahead GETs started for sequential readers.",
    "compaction_loads": "Segments read by the compactor.",
    "compactions": "Compaction runs that replaced segments with one.",
    "segments_compacted": "Segments replaced by compaction.",
    "compacted_bytes": "Bytes written by compaction.",
    "retention_offsets_deleted": "Offsets removed from the start of logs by retention.",
    "objects_collected": "Unreferenced S3 objects deleted by garbage collection.",
    "backpressure_waits": "Produces that waited for room under max_pending_bytes.",
    "meta_writes": "Consumer group metadata writes to etcd.",
    "offsets_committed": "Consumer group offsets committed to etcd.",
    "offset_txns": "etcd transactions committing consumer group offsets.",
}
# Counters that became histograms (their sums are in kafscale_s3_request_duration_seconds
# and kafscale_etcd_txn_duration_seconds).
_NOT_EXPORTED = {"s3_put_seconds", "etcd_commit_seconds"}


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class Metrics:
    def __init__(self, api_names: Mapping[int, str] | None = None) -> None:
        self.api_names = dict(api_names or {})  # api key -> Kafka's name ("Produce"), for labels
        self.registry = r = CollectorRegistry(auto_describe=True)
        prometheus_client.ProcessCollector(registry=r)
        prometheus_client.GCCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)
        self.requests = Counter("kafscale_requests", "Requests handled, by API.", ["api"], registry=r)
        self.request_errors = Counter(
            "kafscale_request_errors", "Error codes in responses, by API and error: one per failed "
            "partition, topic, group or resource, or per request for a request-level error.",
            ["api", "error"], registry=r)
        self.request_seconds = Histogram(
            "kafscale_request_duration_seconds", "Time from a decoded request to its response, by API "
            "(a produce's wait for S3 and etcd and a fetch's long poll included).",
            ["api"], buckets=LATENCY_BUCKETS, registry=r)
        self.produce_ack_seconds = Histogram(
            "kafscale_produce_ack_seconds", "Time from a produce request's arrival to its answer, "
            "for acks=1 and acks=all (after the data is in S3 and committed in etcd).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.fetch_wait_seconds = Histogram(
            "kafscale_fetch_wait_seconds", "Time fetch requests waited for new data (long polling).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.s3_seconds = Histogram("kafscale_s3_request_duration_seconds", "S3 request latency, by operation.",
                                    ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.s3_bytes = Counter("kafscale_s3_bytes", "Bytes written to (put) and read from (get) S3.", ["op"],
                                registry=r)
        self.s3_errors = Counter("kafscale_s3_errors", "S3 requests that failed, by operation.", ["op"], registry=r)
        self.etcd_txn_seconds = Histogram("kafscale_etcd_txn_duration_seconds", "etcd transaction latency.",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.etcd_errors = Counter("kafscale_etcd_errors", "etcd calls that failed, by operation.", ["op"],
                                   registry=r)
        self.flush_bytes = Histogram("kafscale_flush_size_bytes", "Size of each object flushed to S3.",
                                     buckets=SIZE_BUCKETS, registry=r)
        self.flush_seconds = Histogram("kafscale_flush_duration_seconds",
                                       "Time of each flush: S3 PUT and etcd commit.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.topic_bytes_in = Counter("kafscale_topic_produced_bytes", "Record batch bytes produced, by topic.",
                                      ["topic"], registry=r)
        self.topic_records_in = Counter("kafscale_topic_produced_records", "Records produced, by topic.", ["topic"],
                                        registry=r)
        self.topic_bytes_out = Counter("kafscale_topic_fetched_bytes", "Record batch bytes fetched, by topic.",
                                       ["topic"], registry=r)
        self.topic_records_out = Counter("kafscale_topic_fetched_records",
                                         "Records fetched (whole batches), by topic.", ["topic"], registry=r)
        self.sasl_successes = Counter("kafscale_sasl_authentication_successes",
                                      "SASL authentications that succeeded (re-authentications included), "
                                      "by mechanism.", ["mechanism"], registry=r)
        self.sasl_failures = Counter("kafscale_sasl_authentication_failures",
                                     "SASL authentications refused (unknown user, wrong password, malformed "
                                     "exchange), by mechanism.", ["mechanism"], registry=r)
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):  # at 0 from the start, for rate()
            self.sasl_successes.labels(mechanism)
            self.sasl_failures.labels(mechanism)
        self._api: dict[int, tuple[Any, Any]] = {}
        self._errors: dict[tuple[int, int], Any] = {}
        self._topics: dict[str, tuple[Any, Any, Any, Any]] = {}

    # -- per request ------------------------------------------------------------------------

    def request_done(self, api_key: int, seconds: float, response: Any) -> None:
        children = self._api.get(api_key)
        if children is None:
            name = self.api_name(api_key)
            children = self._api[api_key] = (self.requests.labels(name), self.request_seconds.labels(name))
        children[0].inc()
        children[1].observe(seconds)
        if response is not None:
            for code in error_codes(response):
                self.error(api_key, code)

    def sasl_result(self, mechanism: str, ok: bool) -> None:
        (self.sasl_successes if ok else self.sasl_failures).labels(mechanism).inc()

    def api_name(self, api_key: int) -> str:
        return self.api_names.get(api_key) or str(api_key)

    def error(self, api_key: int, code: int) -> None:
        child = self._errors.get((api_key, code))
        if child is None:
            child = self._errors[(api_key, code)] = self.request_errors.labels(self.api_name(api_key),
                                                                               error_name(code))
        child.inc()

    def topic(self, name: str) -> tuple[Any, Any, Any, Any]:
        """(bytes in, records in, bytes out, records out) counters of topic ``name``."""
        children = self._topics.get(name)
        if children is None:
            children = self._topics[name] = (self.topic_bytes_in.labels(name), self.topic_records_in.labels(name),
                                             self.topic_bytes_out.labels(name),
                                             self.topic_records_out.labels(name))
        return children

    def forget_topic(self, name: str) -> None:
        """A deleted topic's series go (a topic of the same name starts again from 0)."""
        if self._topics.pop(name, None) is not None:
            for family in (self.topic_bytes_in, self.topic_records_in, self.topic_bytes_out, self.topic_records_out):
                try:
                    family.remove(name)
                except KeyError:
                    pass

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


# -- error codes in responses -----------------------------------------------------------------

_PLANS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, bool], ...]:
    """(attribute, is a list) of ``cls``'s fields that hold error codes or nested structs."""
    plan = _PLANS.get(cls)
    if plan is None:
        out = []
        for attr, kind, *_ in cls.FIELDS:
            if attr == "error_code":
                out.append((attr, False))
            elif kind.startswith("[]") and isinstance(getattr(cls, kind[2:], None), type):
                out.append((attr, True))
            elif isinstance(getattr(cls, kind, None), type):
                out.append((attr, False))
        plan = _PLANS[cls] = tuple(out)
    return plan


def error_codes(message: Any) -> Iterable[int]:
    """Every non-zero error code in a response (its own and its nested structs')."""
    for attr, is_list in _plan(type(message)):
        value = getattr(message, attr, None)
        if attr == "error_code":
            if value:
                yield value
        elif is_list:
            for item in value or ():
                yield from error_codes(item)
        elif value is not None:
            yield from error_codes(value)


# -- state read at scrape time ----------------------------------------------------------------

class BrokerCollector:
    """Gauges and counters over the broker's state, read when /metrics is scraped.

    ``state()`` returns a dict of plain values (see kafscale/server/app.py); keeping the
    broker's structure out of here keeps this module free of it."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def describe(self) -> list:
        return []  # (collected lazily: the families depend on state)

    def collect(self) -> Iterable[Any]:
        s = self.state()
        info = GaugeMetricFamily("kafscale_broker_info", "The broker's id, cluster id and version (value 1).",
                                 labels=["broker_id", "cluster_id", "version"])
        info.add_metric([str(s["broker_id"]), s["cluster_id"], s["version"]], 1)
        yield info
        for name, help_text, value in (
                ("kafscale_connections", "Client connections open now.", s["connections"]),
                ("kafscale_partitions_owned", "Partitions this broker owns (leads) now.", s["partitions_owned"]),
                ("kafscale_lease_up", "1 while the broker's etcd lease is kept alive, else 0.", s["lease_up"]),
                ("kafscale_ready", "1 when the last readiness check (S3 and etcd) passed, else 0.", s["ready"]),
                ("kafscale_pending_bytes", "Produced bytes not yet in S3 (bounded by max_pending_bytes).",
                 s["pending_bytes"]),
                ("kafscale_cache_bytes", "Bytes held by the segment cache.", s["cache_bytes"]),
                ("kafscale_live_brokers", "Live brokers this broker sees in etcd.", s["live_brokers"]),
                ("kafscale_topics", "Topics in the cluster.", s["topics"])):
            g = GaugeMetricFamily(name, help_text)
            g.add_metric([], value)
            yield g
        for name, help_text, value in (
                ("kafscale_connections_accepted", "Client connections accepted.", s["accepted"]),
                ("kafscale_connections_idle_closed", "Connections closed after connections.max.idle.ms.",
                 s["idle_closed"]),
                ("kafscale_cache_hits", "Segment cache hits.", s["cache_hits"]),
                ("kafscale_cache_misses", "Segment cache misses.", s["cache_misses"])):
            c = CounterMetricFamily(name, help_text)
            c.add_metric([], value)
            yield c
        # Every known counter from the start (at 0 until it counts), so rate() and alerts
        # over it work before its first event; the storage keeps them in a Counter.
        for name, value in sorted({**dict.fromkeys(STATS_HELP, 0), **s["stats"]}.items()):
            if name in _NOT_EXPORTED:
                continue
            c = CounterMetricFamily(f"kafscale_{name}", STATS_HELP.get(name, name.replace("_", " ") + "."))
            c.add_metric([], value)
            yield c
        committed = GaugeMetricFamily(
            "kafscale_group_committed_offset", "Committed offset of a consumer group, per partition "
            "(exported by the group's coordinator only, so a sum over brokers counts each once).",
            labels=["group", "topic", "partition"])
        lag = GaugeMetricFamily(
            "kafscale_group_lag_records", "High watermark minus committed offset of a consumer group, per partition "
            "(coordinator only; a partition whose high watermark is unknown here is left out).",
            labels=["group", "topic", "partition"])
        for group, topic, partition, offset, hw in s["group_offsets"]:
            labels = [group, topic, str(partition)]
            committed.add_metric(labels, offset)
            if hw is not None:
                lag.add_metric(labels, max(hw - offset, 0))
        yield committed
        yield lag
