"""Every metric the chart's Grafana dashboard and PrometheusRule use exists where they
expect it: the kafscale_*, process_* and python_* series in a real broker's /metrics
(after produce, fetch and a consumer group's commits, so the labelled families have
series), the etcd_* ones in the test stack's real etcd's /metrics. ``up`` is Prometheus'
own. Names are compared as series names: a counter's family ``kafscale_requests`` is
``kafscale_requests_total`` in PromQL, a histogram's ``…_bucket``/``_sum``/``_count``.
"""

from __future__ import annotations

import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.chart.monitoring import PROMETHEUS_SYNTHETIC, REPO_ROOT, all_referenced_names, series_names
from tests.integration.test_clients import create_topic
from tests.support.procs import wait_for


def scrape(url: str) -> list:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return list(text_string_to_metric_families(resp.read().decode()))


def missing(names: set[str], families: list) -> list[str]:
    return sorted(names - series_names(families))


def test_every_metric_the_dashboard_and_rules_use_exists(broker, stack):
    from confluent_kafka import Consumer, Producer

    topic = f"dash-{uuid.uuid4().hex[:6]}"
    group = f"dash-g-{topic}"
    create_topic(broker.bootstrap, topic, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(50):
        p.produce(topic, b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    while got < 30:
        msg = c.poll(10)
        assert msg is not None and msg.error() is None
        got += 1
    c.commit(asynchronous=False)
    c.close()

    def group_lag_exported() -> bool:
        return any(s.labels.get("group") == group for f in scrape(broker.metrics_url)
                   if f.name == "kafscale_group_lag_records" for s in f.samples)

    wait_for(group_lag_exported, timeout=15, message="the group's lag in /metrics")

    referenced = all_referenced_names()
    etcd_names = {n for n in referenced if n.startswith("etcd_")}
    broker_names = set(referenced) - etcd_names - PROMETHEUS_SYNTHETIC
    assert {n for n in broker_names if n.startswith("kafscale_")} and etcd_names  # the walk found them

    broker_families = scrape(broker.metrics_url)
    absent = missing(broker_names, broker_families)
    assert not absent, "not in the broker's /metrics: " + "; ".join(
        f"{n} (used by {', '.join(sorted(referenced[n]))})" for n in absent)

    etcd_url = f"http://{stack.etcd_endpoints.split(',')[0]}/metrics"
    absent = missing(etcd_names, scrape(etcd_url))
    assert not absent, f"not in etcd's /metrics ({etcd_url}): {absent}"

    # the check itself can fail: a misspelt name, or a counter named without _total, is missing
    assert missing({"kafscale_request", "kafscale_requests", "kafscale_partitions_owned_total"},
                   broker_families) == ["kafscale_partitions_owned_total", "kafscale_request", "kafscale_requests"]


def test_docs_metrics_md_lists_every_family_the_broker_exports(broker):
    """docs/metrics.md names each kafscale_* family as scraped (a counter with _total)."""
    doc = (REPO_ROOT / "docs" / "metrics.md").read_text()
    families = [f for f in scrape(broker.metrics_url) if f.name.startswith(("kafscale_", "process_", "python_"))]
    assert len(families) > 40
    undocumented = []
    for f in families:
        scraped = f.name + ("_total" if f.type == "counter" else "")
        if f"`{scraped}`" not in doc:
            undocumented.append(scraped)
    assert not undocumented, f"docs/metrics.md lacks {undocumented}"
