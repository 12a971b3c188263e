"""Write charts/kafscale/dashboards/kafscale.json, the chart's Grafana dashboard.

    .venv/bin/python tools/gen_dashboard.py          # rewrite the JSON
    .venv/bin/python tools/gen_dashboard.py --check  # exit 1 if it is out of date

The JSON is checked in (the chart ships it with .Files.Get); this script is its source,
so a panel is one line here instead of forty there. tests/chart/test_chart_monitoring.py
fails when the two differ, parses every expression, and tests/integration/
test_dashboard_metrics.py checks that every metric named exists in a real broker's
/metrics. docs/operations.md describes the panels.

Every query is filtered by the $namespace, $job and $instance variables (regexes, "All"
is ".*", which also matches a missing label, so the dashboard works outside Kubernetes
too). Per-broker series are joined with kafscale_broker_info so legends show the broker id.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

OUT = pathlib.Path(__file__).resolve().parents[1] / "charts" / "kafscale" / "dashboards" / "kafscale.json"

SEL = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}


def s(extra: str = "") -> str:
    """A label selector: the dashboard's variables plus ``extra``."""
    return "{" + SEL + (", " + extra if extra else "") + "}"


def rate(metric: str, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{s(extra)}[{RATE}]))"


def quantile(q: float, bucket: str, by: str = "", extra: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}{s(extra)}[{RATE}])))"


def per_broker(expr: str) -> str:
    """``expr`` (keeping job and instance) labelled with the broker's id."""
    return f"({expr}) * on (job, instance) group_left (broker_id) kafscale_broker_info{s()}"


def gauge_by_broker(metric: str) -> str:
    return per_broker(f"sum by (job, instance) ({metric}{s()})")


def rate_by_broker(metric: str) -> str:
    return per_broker(f"sum by (job, instance) (rate({metric}{s()}[{RATE}]))")


BROKER = "broker {{broker_id}}"


class Layout:
    """Places panels on Grafana's 24-column grid, left to right, row by row."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "id": len(self.panels) + 1})
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["id"] = len(self.panels) + 1
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"datasource": DS, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "range": True}
            for i, (expr, legend) in enumerate(pairs)]


def timeseries(title: str, description: str, unit: str, *pairs: tuple[str, str], stack: bool = False) -> dict:
    custom: dict[str, Any] = {"fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {"type": "timeseries", "title": title, "description": description, "datasource": DS,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": targets(*pairs)}


def stat(title: str, description: str, expr: str, unit: str = "none") -> dict:
    return {"type": "stat", "title": title, "description": description, "datasource": DS,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area"},
            "targets": targets((expr, ""))}


def variable(name: str, label: str, query: str, *, multi: bool = True) -> dict:
    return {"type": "query", "name": name, "label": label, "datasource": DS,
            "query": {"query": query, "refId": f"{name}-query"}, "definition": query,
            "refresh": 2, "includeAll": True, "allValue": ".*", "multi": multi, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def dashboard() -> dict[str, Any]:
    g = Layout()
    topic = 'topic=~"$topic"'
    group = 'group=~"$group"'

    g.row("Overview")
    g.add(stat("Brokers up", "Broker targets Prometheus scrapes successfully (up == 1).",
               f"sum(up{s()})"), 4, 4)
    g.add(stat("Brokers ready", "Brokers whose last readiness check (S3 and etcd) passed.",
               f"sum(kafscale_ready{s()})"), 4, 4)
    g.add(stat("Leases held", "Brokers whose etcd lease is kept alive.", f"sum(kafscale_lease_up{s()})"), 4, 4)
    g.add(stat("Live brokers (etcd)", "Live brokers registered in etcd, as the brokers see them.",
               f"max(kafscale_live_brokers{s()})"), 4, 4)
    g.add(stat("Topics", "Topics in the cluster.", f"max(kafscale_topics{s()})"), 4, 4)
    g.add(stat("Partitions owned", "Partitions led by the selected brokers.",
               f"sum(kafscale_partitions_owned{s()})"), 4, 4)

    g.row("Throughput")
    g.add(timeseries("Produced bytes/s by topic", "Record batch bytes produced (bytes in).", "binBps",
                     (rate("kafscale_topic_produced_bytes_total", "topic", topic), "{{topic}}"), stack=True), 12, 8)
    g.add(timeseries("Fetched bytes/s by topic", "Record batch bytes fetched by consumers (bytes out).", "binBps",
                     (rate("kafscale_topic_fetched_bytes_total", "topic", topic), "{{topic}}"), stack=True), 12, 8)
    g.add(timeseries("Produced records/s by topic", "Records produced.", "cps",
                     (rate("kafscale_topic_produced_records_total", "topic", topic), "{{topic}}"), stack=True), 12, 8)
    g.add(timeseries("Fetched records/s by topic", "Records fetched (whole batches).", "cps",
                     (rate("kafscale_topic_fetched_records_total", "topic", topic), "{{topic}}"), stack=True), 12, 8)

    g.row("Requests")
    g.add(timeseries("Request rate by API", "Requests handled per second, by Kafka API.", "reqps",
                     (rate("kafscale_requests_total", "api"), "{{api}}"), stack=True), 12, 8)
    g.add(timeseries("Errors by API and error", "Error codes in responses per second (one per failed partition, "
                     "topic, group or resource).", "cps",
                     (rate("kafscale_request_errors_total", "api, error"), "{{api}} {{error}}")), 12, 8)
    g.add(timeseries("Request latency p99 by API", "99th percentile of the time from a decoded request to its "
                     "response (a fetch's long poll included).", "s",
                     (quantile(0.99, "kafscale_request_duration_seconds_bucket", "api"), "{{api}}")), 12, 8)
    g.add(timeseries("Request latency p50 by API", "Median time from a decoded request to its response.", "s",
                     (quantile(0.5, "kafscale_request_duration_seconds_bucket", "api"), "{{api}}")), 12, 8)
    g.add(timeseries("Produce acknowledgement latency", "Arrival of a produce to its answer, after the data is in "
                     "S3 and committed in etcd (acks=1 and acks=all).", "s",
                     (quantile(0.5, "kafscale_produce_ack_seconds_bucket"), "p50"),
                     (quantile(0.99, "kafscale_produce_ack_seconds_bucket"), "p99")), 12, 8)
    g.add(timeseries("Fetch wait", "Time fetches waited for new data (long polling; high is normal for idle "
                     "consumers).", "s",
                     (quantile(0.5, "kafscale_fetch_wait_seconds_bucket"), "p50"),
                     (quantile(0.99, "kafscale_fetch_wait_seconds_bucket"), "p99")), 12, 8)

    g.row("S3 and etcd")
    g.add(timeseries("S3 latency by operation", "S3 request latency, p50 and p99.", "s",
                     (quantile(0.5, "kafscale_s3_request_duration_seconds_bucket", "op"), "{{op}} p50"),
                     (quantile(0.99, "kafscale_s3_request_duration_seconds_bucket", "op"), "{{op}} p99")), 8, 8)
    g.add(timeseries("S3 bytes/s", "Bytes written to (put) and read from (get) S3.", "binBps",
                     (rate("kafscale_s3_bytes_total", "op"), "{{op}}")), 8, 8)
    g.add(timeseries("S3 errors/s", "S3 requests that failed, by operation.", "cps",
                     (rate("kafscale_s3_errors_total", "op"), "{{op}}")), 8, 8)
    g.add(timeseries("etcd transaction latency", "etcd transaction latency, p50 and p99.", "s",
                     (quantile(0.5, "kafscale_etcd_txn_duration_seconds_bucket"), "p50"),
                     (quantile(0.99, "kafscale_etcd_txn_duration_seconds_bucket"), "p99")), 8, 8)
    g.add(timeseries("etcd errors/s", "etcd calls that failed, by operation.", "cps",
                     (rate("kafscale_etcd_errors_total", "op"), "{{op}}")), 8, 8)
    g.add(timeseries("Flushes", "Time of each flush (S3 PUT and etcd commit), p99, and size of flushed "
                     "objects, p50.", "s",
                     (quantile(0.99, "kafscale_flush_duration_seconds_bucket"), "duration p99"),
                     (quantile(0.5, "kafscale_flush_size_bytes_bucket"), "size p50 (bytes)")), 8, 8)

    g.row("Consumer groups")
    g.add(timeseries("Lag by group", "High watermark minus committed offset, summed over the group's partitions "
                     "(exported by each group's coordinator only, so the sum counts each once).", "short",
                     (f"sum by (group) (kafscale_group_lag_records{s(group)})", "{{group}}")), 12, 8)
    g.add(timeseries("Lag by group and partition", "Lag of each partition a group has committed offsets for.",
                     "short",
                     (f"sum by (group, topic, partition) (kafscale_group_lag_records{s(group)})",
                      "{{group}} {{topic}}/{{partition}}")), 12, 8)
    g.add(timeseries("Committed offsets/s by group", "How fast each group's committed offsets move (its "
                     "consumption rate as committed).", "cps",
                     (f"sum by (group) (deriv(kafscale_group_committed_offset{s(group)}[{RATE}]))",
                      "{{group}}")), 12, 8)
    g.add(timeseries("Offset commits/s", "Consumer group offsets committed to etcd, and the etcd transactions "
                     "carrying them.", "cps",
                     (f"sum(rate(kafscale_offsets_committed_total{s()}[{RATE}]))", "offsets"),
                     (f"sum(rate(kafscale_offset_txns_total{s()}[{RATE}]))", "transactions")), 12, 8)

    g.row("Brokers")
    g.add(timeseries("Partitions owned per broker", "Partitions each broker leads now.", "short",
                     (gauge_by_broker("kafscale_partitions_owned"), BROKER), stack=True), 8, 8)
    g.add(timeseries("Connections per broker", "Client connections open now.", "short",
                     (gauge_by_broker("kafscale_connections"), BROKER)), 8, 8)
    g.add(timeseries("Pending bytes per broker", "Produced bytes not yet in S3 (bounded by max_pending_bytes).",
                     "bytes", (gauge_by_broker("kafscale_pending_bytes"), BROKER)), 8, 8)
    g.add(timeseries("Cache bytes per broker", "Bytes held by the segment cache.", "bytes",
                     (gauge_by_broker("kafscale_cache_bytes"), BROKER)), 8, 8)
    hits, misses = rate_by_broker("kafscale_cache_hits_total"), rate_by_broker("kafscale_cache_misses_total")
    g.add(timeseries("Cache hit ratio per broker", "Segment cache hits / (hits + misses).", "percentunit",
                     (f"{hits} / ({hits} + {misses})", BROKER)), 8, 8)
    g.add(timeseries("Backpressure waits/s", "Produces that waited for room under max_pending_bytes.", "cps",
                     (rate_by_broker("kafscale_backpressure_waits_total"), BROKER)), 8, 8)
    g.add(timeseries("CPU per broker", "Process CPU time per second (1 = one core).", "percentunit",
                     (rate_by_broker("process_cpu_seconds_total"), BROKER)), 8, 8)
    g.add(timeseries("Memory (RSS) per broker", "Resident set size of the broker process.", "bytes",
                     (gauge_by_broker("process_resident_memory_bytes"), BROKER)), 8, 8)
    g.add(timeseries("Open file descriptors per broker", "Open fds of the broker process.", "short",
                     (gauge_by_broker("process_open_fds"), BROKER)), 8, 8)
    g.add(timeseries("Python GC collections/s", "Garbage collections per second, by generation.", "cps",
                     (f"sum by (generation) (rate(python_gc_collections_total{s()}[{RATE}]))",
                      "generation {{generation}}")), 12, 8)
    g.add(timeseries("Connections accepted/s", "Client connections accepted, and closed for idleness.", "cps",
                     (f"sum(rate(kafscale_connections_accepted_total{s()}[{RATE}]))", "accepted"),
                     (f"sum(rate(kafscale_connections_idle_closed_total{s()}[{RATE}]))", "idle closed")), 12, 8)

    info = "kafscale_broker_info"
    return {
        "title": "Kafscale",
        "uid": "kafscale-overview",
        "description": "Kafscale brokers: throughput, latency, S3/etcd, consumer lag, brokers "
                       "(docs/operations.md describes each panel).",
        "tags": ["kafscale", "kafka"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": ""},
            variable("namespace", "Namespace", f"label_values({info}, namespace)"),
            variable("job", "Job", f'label_values({info}{{namespace=~"$namespace"}}, job)'),
            variable("instance", "Broker", f'label_values({info}{{namespace=~"$namespace", job=~"$job"}}, instance)'),
            variable("topic", "Topic", f"label_values(kafscale_topic_produced_bytes_total{s()}, topic)"),
            variable("group", "Consumer group", f"label_values(kafscale_group_lag_records{s()}, group)"),
        ]},
        "panels": g.panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run tools/gen_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
