"""The chart's Grafana dashboard ConfigMap and PrometheusRule: off by default, rendered and
validated when on, every PromQL expression parses, every alert has its runbook section.
(That every metric they name exists in a real broker's /metrics is
tests/integration/test_dashboard_metrics.py.)"""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest

from .monitoring import (
    BOTH_ON, DASHBOARD_FILE, OPERATIONS_MD, dashboard_exprs, generator, github_anchors, load_dashboard,
    metric_names, panels, promql, rendered_rule, rule_exprs,
)
from .rendering import CHART_DIR, FULLNAME, KUBE_VERSIONS, NAMESPACE, chart, helm, kubernetes_validate, merge, render, validate

ALERTS = {"KafscaleBrokerDown", "KafscaleBrokersAbsent", "KafscaleBrokerNotReady", "KafscaleLeaseLost",
          "KafscaleProduceLatencyHigh", "KafscaleS3Errors", "KafscaleEtcdErrors", "KafscaleConsumerLagGrowing",
          "KafscaleEtcdDatabaseNearQuota"}

# The PrometheusRule CRD's schema (prometheus-operator v0.82,
# example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml), written out
# here because kubernetes-validate has only the built-in kinds. additionalProperties is
# false where the CRD lists every field, so a misspelt field fails as with strict
# validation.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object"},  # validated as a core ObjectMeta below
        "spec": {"type": "object", "additionalProperties": False, "properties": {"groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "labels": STRING_MAP,
                    "limit": {"type": "integer"},
                    "partial_response_strategy": {"type": "string", "enum": ["", "abort", "warn", "Abort", "Warn", "ABORT", "WARN"]},
                    "query_offset": {"type": "string", "pattern": DURATION},
                    "rules": {"type": "array", "items": {
                        "type": "object",
                        "required": ["expr"],
                        "additionalProperties": False,
                        # "Only one of record and alert must be set."
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {
                            "alert": {"type": "string"},
                            "record": {"type": "string"},
                            "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "for": {"type": "string", "pattern": DURATION},
                            "keep_firing_for": {"type": "string", "minLength": 1, "pattern": DURATION},
                            "labels": STRING_MAP,
                            "annotations": STRING_MAP,
                        },
                    }},
                },
            },
        }}},
    },
}


def dashboard_configmap(values: dict | None = None) -> dict:
    (cm,) = [o for o in render(values or BOTH_ON).all("ConfigMap") if o["metadata"]["name"] == f"{FULLNAME}-dashboard"]
    return cm


# ---- off by default, on when asked


def test_dashboard_and_rules_are_off_by_default():
    r = render()
    assert r.all("PrometheusRule") == []
    assert [c for c in r.all("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")] == []
    assert chart().values["metrics"]["grafanaDashboard"]["enabled"] is False
    assert chart().values["metrics"]["prometheusRule"]["enabled"] is False


def test_each_can_be_turned_on_alone():
    only_dashboard = render({"metrics": {"grafanaDashboard": {"enabled": True}}})
    assert only_dashboard.all("PrometheusRule") == []
    assert only_dashboard.find("ConfigMap", f"{FULLNAME}-dashboard") is not None
    only_rule = render({"metrics": {"prometheusRule": {"enabled": True}}})
    assert len(only_rule.all("PrometheusRule")) == 1
    assert only_rule.find("ConfigMap", f"{FULLNAME}-dashboard") is None


@pytest.mark.parametrize("values", [BOTH_ON, merge(BOTH_ON, {"metrics": {"serviceMonitor": {"enabled": True}}})])
def test_chart_with_dashboard_and_rules_lints(values):
    report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# ---- the dashboard ConfigMap


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_dashboard_configmap_validates_and_carries_the_sidecar_label(version):
    cm = dashboard_configmap()
    validate(cm, version)
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    assert list(cm["data"]) == ["kafscale.json"]
    assert json.loads(cm["data"]["kafscale.json"]) == load_dashboard()


def test_dashboard_label_namespace_and_annotations_are_values():
    cm = dashboard_configmap({"metrics": {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "label": "grafana.example.com/dashboard", "labelValue": "kafscale",
        "labels": {"team": "streaming"}, "annotations": {"grafana_folder": "Kafscale"}}}})
    validate(cm, KUBE_VERSIONS[-1])
    assert cm["metadata"]["namespace"] == "monitoring"
    labels = cm["metadata"]["labels"]
    assert labels["grafana.example.com/dashboard"] == "kafscale" and "grafana_dashboard" not in labels
    assert labels["team"] == "streaming"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Kafscale"}


def test_dashboard_json_is_what_the_generator_writes():
    assert DASHBOARD_FILE.read_text() == generator().render(), "run: .venv/bin/python tools/gen_dashboard.py"


# Panel titles the dashboard must have, with a metric each must query.
EXPECTED_PANELS = {
    "Produced bytes/s by topic": "kafscale_topic_produced_bytes_total",
    "Fetched bytes/s by topic": "kafscale_topic_fetched_bytes_total",
    "Produced records/s by topic": "kafscale_topic_produced_records_total",
    "Fetched records/s by topic": "kafscale_topic_fetched_records_total",
    "Request rate by API": "kafscale_requests_total",
    "Request latency p99 by API": "kafscale_request_duration_seconds_bucket",
    "Request latency p50 by API": "kafscale_request_duration_seconds_bucket",
    "Produce acknowledgement latency": "kafscale_produce_ack_seconds_bucket",
    "Errors by API and error": "kafscale_request_errors_total",
    "S3 latency by operation": "kafscale_s3_request_duration_seconds_bucket",
    "S3 errors/s": "kafscale_s3_errors_total",
    "etcd transaction latency": "kafscale_etcd_txn_duration_seconds_bucket",
    "etcd errors/s": "kafscale_etcd_errors_total",
    "Lag by group": "kafscale_group_lag_records",
    "Lag by group and partition": "kafscale_group_lag_records",
    "Partitions owned per broker": "kafscale_partitions_owned",
    "Pending bytes per broker": "kafscale_pending_bytes",
    "Cache hit ratio per broker": "kafscale_cache_hits_total",
    "Cache bytes per broker": "kafscale_cache_bytes",
    "Connections per broker": "kafscale_connections",
    "CPU per broker": "process_cpu_seconds_total",
    "Memory (RSS) per broker": "process_resident_memory_bytes",
}


def test_dashboard_has_the_expected_panels():
    by_title = {p["title"]: p for p in panels(load_dashboard()) if p["type"] != "row"}
    missing = sorted(set(EXPECTED_PANELS) - set(by_title))
    assert not missing, f"panels missing: {missing}"
    for title, metric in EXPECTED_PANELS.items():
        used = set().union(*(metric_names(t["expr"].replace("$__rate_interval", "5m"))
                             for t in by_title[title]["targets"]))
        assert metric in used, (title, used)
    ack = [t["expr"] for t in by_title["Produce acknowledgement latency"]["targets"]]
    assert any(e.startswith("histogram_quantile(0.5,") for e in ack)
    assert any(e.startswith("histogram_quantile(0.99,") for e in ack)
    assert "sum by (group)" in by_title["Lag by group"]["targets"][0]["expr"]
    assert "by (api, error)" in by_title["Errors by API and error"]["targets"][0]["expr"]


def test_dashboard_variables_and_datasource():
    d = load_dashboard()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "job", "instance"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"]
        assert variables[name]["allValue"] == ".*"  # also matches a missing label (outside Kubernetes)
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            # every selector in every query is narrowed by the namespace/job/instance variables
            for name in metric_names(t["expr"].replace("$__rate_interval", "5m")):
                narrowed = re.escape(name + '{namespace=~"$namespace", job=~"$job", instance=~"$instance"')
                assert len(re.findall(narrowed, t["expr"])) == len(re.findall(rf"\b{name}\b", t["expr"])), \
                    (name, t["expr"])


def test_dashboard_layout_is_a_valid_grid():
    d = load_dashboard()
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels(d):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
    assert d["uid"] and d["title"] == "Kafscale" and d["schemaVersion"] >= 36


# ---- the PrometheusRule


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_prometheus_rule_validates_against_the_crd_schema(version):
    rule = rendered_rule()
    with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
        validate(rule, version)  # no CRD schemas offline: hence the transcription above
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": rule["metadata"]}, version)
    assert rule["metadata"]["namespace"] == NAMESPACE and rule["metadata"]["name"] == FULLNAME


def test_crd_schema_check_really_rejects_mistakes():
    rule = rendered_rule()
    for mutate in (lambda r: r["spec"]["groups"][0]["rules"][0].update(fro="5m"),
                   lambda r: r["spec"]["groups"][0]["rules"][0].update({"for": "5 minutes"}),
                   lambda r: r["spec"]["groups"][0]["rules"][0].pop("expr"),
                   lambda r: r["spec"]["groups"][0]["rules"][0].update(record="x"),
                   lambda r: r["spec"]["groups"][0]["rules"][0]["labels"].update(severity=2)):
        broken = copy.deepcopy(rule)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, PROMETHEUS_RULE_SCHEMA)


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    rules = rendered_rule()["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == ALERTS
    anchors = github_anchors(OPERATIONS_MD.read_text())
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        base, _, anchor = r["annotations"]["runbook_url"].partition("#")
        assert base == "docs/operations.md"
        assert anchor in anchors, f"{r['alert']}: docs/operations.md has no section #{anchor}"
        assert re.fullmatch(DURATION, r["for"]), r["alert"]


def test_rule_selectors_thresholds_and_extra_rules_are_values():
    rules = {r["alert"]: r for r in rendered_rule()["spec"]["groups"][0]["rules"]}
    default_sel = f'namespace="{NAMESPACE}", job="{FULLNAME}"'  # the job the ServiceMonitor gives
    assert rules["KafscaleBrokerDown"]["expr"] == f"up{{{default_sel}}} == 0"
    assert rules["KafscaleProduceLatencyHigh"]["expr"].endswith("> 1")
    assert "etcd's own /metrics" in rules["KafscaleEtcdDatabaseNearQuota"]["annotations"]["description"]

    extra = {"alert": "KafscaleTooManyConnections", "expr": "sum(kafscale_connections) > 1000", "for": "10m"}
    rule = rendered_rule({"metrics": {"prometheusRule": {
        "enabled": True, "labels": {"release": "prom"}, "brokerSelector": 'job="kafscale-prod"',
        "etcdSelector": 'job="etcd-main"', "for": "2m", "consumerLagFor": "30m",
        "runbookBaseUrl": "https://docs.example.com/kafscale/operations",
        "thresholds": {"produceP99Seconds": 0.25, "consumerLagRecords": 5000000, "etcdQuotaRatio": 0.9,
                       "s3ErrorsPerSecond": 0.5, "etcdErrorsPerSecond": 0.1},
        "extraRules": [extra]}}})
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    assert rule["metadata"]["labels"]["release"] == "prom"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert rules["KafscaleTooManyConnections"] == extra
    assert rules["KafscaleBrokerDown"]["expr"] == 'up{job="kafscale-prod"} == 0'
    assert rules["KafscaleBrokerDown"]["for"] == "2m"
    assert rules["KafscaleProduceLatencyHigh"]["expr"].endswith("> 0.25")
    assert "> 5000000)" in rules["KafscaleConsumerLagGrowing"]["expr"]  # not 5e+06
    assert rules["KafscaleConsumerLagGrowing"]["for"] == "30m"
    assert rules["KafscaleS3Errors"]["expr"].endswith("> 0.5")
    assert rules["KafscaleEtcdErrors"]["expr"].endswith("> 0.1")
    quota = rules["KafscaleEtcdDatabaseNearQuota"]["expr"]
    assert quota.count('{job="etcd-main"}') == 2 and quota.endswith("> 0.9")
    assert rules["KafscaleLeaseLost"]["annotations"]["runbook_url"] == \
        "https://docs.example.com/kafscale/operations#kafscaleleaselost"
    for where, expr in rule_exprs(rule):
        promql.parse(expr)


@pytest.mark.parametrize("values,where", [
    ({"prometheusRule": {"for": "5 minutes"}}, "/metrics/prometheusRule/for"),
    ({"prometheusRule": {"thresholds": {"etcdQuotaRatio": 80}}}, "/metrics/prometheusRule/thresholds/etcdQuotaRatio"),
    ({"prometheusRule": {"thresholds": {"produceP99": 1}}}, "/metrics/prometheusRule/thresholds"),
    ({"grafanaDashboard": {"labelValue": 1}}, "/metrics/grafanaDashboard/labelValue"),
    ({"grafanaDashboard": {"label": "not a label"}}, "/metrics/grafanaDashboard/label"),
])
def test_schema_rejects_wrong_monitoring_values(values, where):
    with pytest.raises(helm.HelmValuesError) as info:
        chart().validate_schema({"metrics": values})
    assert f"at '{where}'" in str(info.value)


# ---- PromQL


def all_exprs() -> list[tuple[str, str]]:
    return dashboard_exprs(load_dashboard()) + rule_exprs(rendered_rule())


def test_every_promql_expression_parses():
    exprs = all_exprs()
    assert len(exprs) > 40
    failures = []
    for where, expr in exprs:
        try:
            promql.parse(expr)
        except ValueError as e:
            failures.append(f"{where}: {e}\n  {expr}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("bad", [
    "sum(rate(kafscale_requests_total[5m])",           # unbalanced parenthesis
    'kafscale_ready{job="x" == 0',                       # unbalanced brace
    "histogram_quantil(0.99, x_bucket)",                # unknown function
    "rate(kafscale_requests_total[5 m])",               # bad duration
    "sum by (api) (rate(kafscale_requests_total[$__rate_interval]))",  # a Grafana variable left in
])
def test_the_parser_really_rejects_bad_promql(bad):
    with pytest.raises(ValueError):
        promql.parse(bad)


def test_referenced_metric_names_are_found():
    """The names the integration test looks up in /metrics: a sanity check of the walk."""
    names = set().union(*(metric_names(e) for _, e in all_exprs()))
    assert {"kafscale_produce_ack_seconds_bucket", "kafscale_group_lag_records", "up", "kafscale_broker_info",
            "etcd_mvcc_db_total_size_in_bytes", "process_cpu_seconds_total"} <= names
