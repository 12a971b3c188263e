"""The chart's Grafana dashboard and PrometheusRule as data: their PromQL expressions and
the metric names those use, for tests/chart/test_chart_monitoring.py (render, parse,
validate) and tests/integration/test_dashboard_metrics.py (every name exists in a real
broker's /metrics).

Expressions are parsed with promql-parser (PyPI, Python binding of the Rust
promql-parser crate; in the test extra): it rejects bad syntax and unknown functions.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
from typing import Any

import pytest

from .rendering import CHART_DIR, REPO_ROOT, render

promql = pytest.importorskip("promql_parser", reason="promql-parser (in the test extra) is not installed")

DASHBOARD_FILE = CHART_DIR / "dashboards" / "kafscale.json"
GENERATOR = REPO_ROOT / "tools" / "gen_dashboard.py"
OPERATIONS_MD = REPO_ROOT / "docs" / "operations.md"

BOTH_ON = {"metrics": {"grafanaDashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}}

# Grafana's built-in interval variables are not PromQL durations; everything else the
# dashboard's variables stand for sits inside label-matcher strings.
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$")

# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_SYNTHETIC = {"up"}


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_dashboard", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row keeps its panels inside
    return out


def as_promql(expr: str) -> str:
    for var, duration in GRAFANA_DURATIONS.items():
        expr = expr.replace(f"[{var}]", f"[{duration}]").replace(f"[{var}:", f"[{duration}:")
    return expr


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every variable's label_values query."""
    out = []
    for p in panels(dashboard):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", as_promql(t["expr"])))
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = LABEL_VALUES.match(query)
            assert m, f"variable {v['name']}: not a label_values(selector, label) query: {query}"
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def rendered_rule(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (rule,) = render(values or BOTH_ON).all("PrometheusRule")
    return rule


def rule_exprs(rule: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"rule {r.get('alert') or r.get('record')}", str(r["expr"]))
            for g in rule["spec"]["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (its vector selectors' metric names)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            names.add(node.name)

    promql.walk(promql.parse(expr), visit)
    return names


def all_referenced_names() -> dict[str, set[str]]:
    """metric name -> where it is used, over the dashboard and the default rule."""
    out: dict[str, set[str]] = {}
    for where, expr in dashboard_exprs(load_dashboard()) + rule_exprs(rendered_rule()):
        for name in metric_names(expr):
            out.setdefault(name, set()).add(where)
    return out


def series_names(families) -> set[str]:
    """Every series name a scrape's families (prometheus_client's parser) can have: a
    counter's <name>_total, a histogram's _bucket/_sum/_count, a gauge's own name..."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count"),
                "gaugehistogram": ("_bucket", "_gsum", "_gcount"), "info": ("_info",)}
    out = set()
    for f in families:
        for suffix in suffixes.get(f.type, ("",)):
            out.add(f.name + suffix)
    return out


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors
