"""charts/kafscale, rendered offline: it lints, every manifest validates against the
Kubernetes schemas (strict), and the manifests wire brokers, MinIO, etcd, Secrets,
probes and Services together as the broker expects (docs/configuration.md)."""

from __future__ import annotations

import copy
import os
import re
import subprocess

import pytest

from kafscale.config import OPTIONS

from .rendering import (
    CHART_DIR, COMBINATIONS, EVERYTHING_ON, EXTERNAL_ETCD, EXTERNAL_ETCD_SECRETS, EXTERNAL_S3, FULLNAME, KUBE_VERSIONS,
    NAMESPACE, chart, helm, kubernetes_validate, merge, render, validate, yaml,
)

KAFSCALE_ENVS = {o.env for o in OPTIONS}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
HEADLESS = f"{FULLNAME}-headless"
SVC = f"{NAMESPACE}.svc.cluster.local"

ALL_CASES = {**COMBINATIONS, "everything-on": EVERYTHING_ON,
             "everything-on+external-both": merge(EVERYTHING_ON, COMBINATIONS["external-both"],
                                                  {"etcd": EXTERNAL_ETCD_SECRETS})}


# ---- lint, render, validate


@pytest.mark.parametrize("case", list(ALL_CASES))
def test_chart_lints_without_warnings(case):
    report = helm.lint(str(CHART_DIR), ALL_CASES[case] or None, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # 2 = warning, 3 = error


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", list(ALL_CASES))
def test_every_manifest_validates_strict(case, version):
    r = render(ALL_CASES[case])
    assert r.objects
    for obj in r.objects:
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule"):
            continue  # CRDs: kubernetes-validate has no schema; see test_service_monitor, test_chart_monitoring
        validate(obj, version)


def test_strict_validation_really_rejects_unknown_fields():
    """Guard for the test above: a typo in a rendered manifest must not pass."""
    sts = copy.deepcopy(render().broker_sts())
    validate(sts, KUBE_VERSIONS[-1])
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(sts, KUBE_VERSIONS[-1])


def test_every_object_is_named_and_namespaced():
    for case in ALL_CASES.values():
        for obj in render(case).objects:
            meta = obj["metadata"]
            assert meta["namespace"] == NAMESPACE, (obj["kind"], meta["name"])
            assert len(meta["name"]) <= 63 and DNS_1035.match(meta["name"]), meta["name"]
            assert meta["labels"]["app.kubernetes.io/instance"] == "demo"


def test_long_release_name_keeps_dns_names_short():
    name = "a-very-long-release-name-that-is-at-the-helm-limit-x"[:53]
    helm.validate_release_name(name)
    r = render(merge(EVERYTHING_ON), name=name)
    for obj in r.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
    for sts in r.all("StatefulSet"):
        # its controller-revision-hash label is "<name>-<10 chars>", at most 63
        assert len(sts["metadata"]["name"]) <= 52, sts["metadata"]["name"]
        assert len(f"{sts['metadata']['name']}-99.{sts['spec']['serviceName']}.{SVC}") <= 253


# ---- the brokers' configuration


def expected_env(case: str) -> dict[str, str | tuple[str, str]]:
    """The KAFSCALE_* environment each combination must give the broker; a tuple is a
    secretKeyRef (secret name, key)."""
    s3_external = "s3" in COMBINATIONS[case]
    etcd_external = "etcd" in COMBINATIONS[case]
    secret = EXTERNAL_S3["existingSecret"] if s3_external else f"{FULLNAME}-s3"
    keys = EXTERNAL_S3["secretKeys"] if s3_external else {"accessKey": "access-key", "secretKey": "secret-key"}
    return {
        "KAFSCALE_BROKER_HOST": f"$(POD_NAME).{HEADLESS}.{SVC}",
        "KAFSCALE_BROKER_PORT": "9092",
        "KAFSCALE_LISTEN_HOST": "0.0.0.0",
        "KAFSCALE_METRICS_PORT": "9093",
        "KAFSCALE_ETCD_ENDPOINTS": (",".join(EXTERNAL_ETCD["endpoints"]) if etcd_external
                                    else f"{FULLNAME}-etcd-0.{FULLNAME}-etcd-headless.{SVC}:2379"),
        "KAFSCALE_ETCD_PREFIX": "/kafscale",
        "KAFSCALE_S3_ENDPOINT": EXTERNAL_S3["endpoint"] if s3_external else f"http://{FULLNAME}-minio.{SVC}:9000",
        "KAFSCALE_S3_BUCKET": EXTERNAL_S3["bucket"] if s3_external else "kafscale",
        "KAFSCALE_S3_REGION": EXTERNAL_S3["region"] if s3_external else "us-east-1",
        "KAFSCALE_S3_NAMESPACE": "kafscale",
        "KAFSCALE_S3_ACCESS_KEY": (secret, keys["accessKey"]),
        "KAFSCALE_S3_SECRET_KEY": (secret, keys["secretKey"]),
        "KAFSCALE_SEGMENT_BYTES": "4194304",
        "KAFSCALE_FLUSH_INTERVAL_MS": "50",
        "KAFSCALE_CACHE_BYTES": "268435456",
        "KAFSCALE_MAX_REQUEST_BYTES": "104857600",
        "KAFSCALE_MAX_MESSAGE_BYTES": "1048588",
        "KAFSCALE_AUTO_CREATE_TOPICS": "true",
        "KAFSCALE_DEFAULT_PARTITIONS": "1",
        "KAFSCALE_GROUP_INITIAL_REBALANCE_DELAY_MS": "3000",
        "KAFSCALE_LOG_LEVEL": "INFO",
        "KAFSCALE_LOG_FORMAT": "text",
    }


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_broker_gets_the_kafscale_environment_of_each_combination(case):
    env = render(COMBINATIONS[case]).broker_env()
    got: dict[str, str | tuple[str, str]] = {}
    for name, e in env.items():
        if not name.startswith("KAFSCALE_"):
            continue
        if "value" in e:
            got[name] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            got[name] = (ref["name"], ref["key"])
    assert got == expected_env(case)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("case", list(ALL_CASES))
def test_every_rendered_kafscale_variable_is_a_broker_option(case):
    env = render(ALL_CASES[case]).broker_env()
    unknown = sorted(n for n in env if n.startswith("KAFSCALE_") and n not in KAFSCALE_ENVS)
    assert not unknown, f"the chart sets variables the broker does not read: {unknown}"


def test_values_change_the_environment():
    env = render({"broker": {
        "port": 19092, "metricsPort": 19093, "rack": "rack-7", "etcdPrefix": "/team-a",
        "segmentBytes": 8388608, "cacheBytes": 1073741824, "autoCreateTopics": False,
        "defaultPartitions": 6, "logLevel": "DEBUG", "flushIntervalMs": 0,
    }, "s3": {"namespace": "team-a", "bucket": "team-a-logs"}}).broker_env()
    values = {n: e.get("value") for n, e in env.items()}
    assert values["KAFSCALE_BROKER_PORT"] == "19092"
    assert values["KAFSCALE_METRICS_PORT"] == "19093"
    assert values["KAFSCALE_RACK"] == "rack-7"
    assert values["KAFSCALE_ETCD_PREFIX"] == "/team-a"
    assert values["KAFSCALE_SEGMENT_BYTES"] == "8388608"
    assert values["KAFSCALE_CACHE_BYTES"] == "1073741824"  # not 1.073741824e+09
    assert values["KAFSCALE_AUTO_CREATE_TOPICS"] == "false"
    assert values["KAFSCALE_DEFAULT_PARTITIONS"] == "6"
    assert values["KAFSCALE_LOG_LEVEL"] == "DEBUG"
    assert values["KAFSCALE_FLUSH_INTERVAL_MS"] == "0"
    assert values["KAFSCALE_S3_NAMESPACE"] == "team-a"
    assert values["KAFSCALE_S3_BUCKET"] == "team-a-logs"


def test_broker_id_comes_from_the_pod_ordinal(tmp_path):
    """Run the container's command with a stand-in `kafscale` that prints what it got."""
    container = render().broker_container()
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert container["command"][2].endswith("exec kafscale serve")
    assert "args" not in container
    fake = tmp_path / "kafscale"
    fake.write_text('#!/bin/sh\necho "id=$KAFSCALE_BROKER_ID args=$*"\n')
    fake.chmod(0o755)
    for pod, broker_id in ((f"{FULLNAME}-0", "0"), (f"{FULLNAME}-12", "12")):
        out = subprocess.run(container["command"], env={"PATH": f"{tmp_path}:/usr/bin:/bin", "POD_NAME": pod},
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"id={broker_id} args=serve"


def test_each_broker_advertises_its_own_pod_address():
    r = render()
    sts = r.broker_sts()
    headless = r.get("Service", HEADLESS)
    assert sts["spec"]["serviceName"] == HEADLESS
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    # $(POD_NAME).<headless>.<ns>.svc.<domain> is the pod's DNS name under that Service.
    assert r.broker_env()["KAFSCALE_BROKER_HOST"]["value"] == f"$(POD_NAME).{HEADLESS}.{SVC}"
    assert r.broker_env()["KAFSCALE_LISTEN_HOST"]["value"] == "0.0.0.0"


def test_three_brokers_by_default_and_the_hpa_takes_over_replicas():
    r = render()
    assert r.broker_sts()["spec"]["replicas"] == 3
    assert r.all("HorizontalPodAutoscaler") == []
    assert r.broker_sts()["spec"]["podManagementPolicy"] == "Parallel"
    r = render({"broker": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5}}})
    assert "replicas" not in r.broker_sts()["spec"]
    (hpa,) = r.all("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5)


# ---- secrets


LITERAL_CREDENTIALS = {"s3": {"accessKey": "AKIA-LITERAL-ACCESS", "secretKey": "literal-secret-key-value-0123456789"}}


@pytest.mark.parametrize("case", list(COMBINATIONS))
def test_credentials_are_secret_references_never_inline(case):
    r = render(COMBINATIONS[case])
    for workload in r.workloads():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if re.search(r"ACCESS_KEY|SECRET_KEY|ROOT_USER|ROOT_PASSWORD", e["name"]):
                    assert "value" not in e, (workload["metadata"]["name"], e)
                    assert "secretKeyRef" in e["valueFrom"], (workload["metadata"]["name"], e)
    for secret in r.all("Secret"):  # whatever the chart generated appears only in its Secret
        for value in r.secret_data(secret["metadata"]["name"]).values():
            for obj in r.objects:
                if obj is not secret:
                    assert value not in yaml.safe_dump(obj), (obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("case", ["default", "external-s3", "external-etcd"])
def test_given_credentials_go_into_the_secret_only(case):
    values = merge(COMBINATIONS[case], LITERAL_CREDENTIALS)
    values.get("s3", {}).pop("existingSecret", None)
    values["s3"].pop("secretKeys", None)
    r = render(values)
    assert r.secret_data(f"{FULLNAME}-s3") == {"access-key": "AKIA-LITERAL-ACCESS",
                                               "secret-key": "literal-secret-key-value-0123456789"}
    for path, text in r.files.items():
        if not path.endswith("secret-s3.yaml"):
            assert "AKIA-LITERAL-ACCESS" not in text and "literal-secret-key-value" not in text, path


def test_generated_credentials_are_shared_by_minio_the_bucket_job_and_the_brokers():
    r = render()
    data = r.secret_data(f"{FULLNAME}-s3")
    assert len(data["access-key"]) >= 8 and len(data["secret-key"]) >= 32
    assert render().secret_data(f"{FULLNAME}-s3") != data  # random per fresh install (kept on upgrade: lookup)
    refs = set()
    for workload in r.workloads():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((workload["kind"], workload["metadata"]["name"], ref["name"], ref["key"]))
    secret = f"{FULLNAME}-s3"
    assert refs == {
        ("StatefulSet", FULLNAME, secret, "access-key"), ("StatefulSet", FULLNAME, secret, "secret-key"),
        ("StatefulSet", f"{FULLNAME}-minio", secret, "access-key"),
        ("StatefulSet", f"{FULLNAME}-minio", secret, "secret-key"),
        ("Job", f"{FULLNAME}-minio-bucket", secret, "access-key"),
        ("Job", f"{FULLNAME}-minio-bucket", secret, "secret-key"),
    }


def test_an_existing_secret_is_referenced_and_none_is_created():
    r = render({"s3": {"existingSecret": "corp-s3", "secretKeys": {"accessKey": "user", "secretKey": "password"}}})
    assert r.all("Secret") == []
    env = r.broker_env()
    assert env["KAFSCALE_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "corp-s3", "key": "user"}
    assert env["KAFSCALE_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "corp-s3", "key": "password"}
    minio_env = {e["name"]: e for e in r.get("StatefulSet", f"{FULLNAME}-minio")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert minio_env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "corp-s3", "key": "user"}


# ---- probes, ports, security


@pytest.mark.parametrize("ports", [(9092, 9093), (29092, 29500)])
def test_probes_point_at_the_broker_http_endpoints_and_port(ports):
    kafka_port, metrics_port = ports
    r = render({"broker": {"port": kafka_port, "metricsPort": metrics_port}})
    c = r.broker_container()
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named == {"kafka": kafka_port, "metrics": metrics_port}
    env = r.broker_env()
    assert int(env["KAFSCALE_BROKER_PORT"]["value"]) == named["kafka"]
    assert int(env["KAFSCALE_METRICS_PORT"]["value"]) == named["metrics"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # the client Service forwards to the named ports
    svc = r.get("Service", FULLNAME)
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {"kafka": "kafka", "metrics": "metrics"}


def test_broker_runs_non_root_with_a_read_only_root_filesystem():
    r = render()
    pod = r.broker_sts()["spec"]["template"]["spec"]
    c = r.broker_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False
    for workload in r.workloads():
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["limits"]["memory"], container["name"]


def test_pod_disruption_budget_covers_the_brokers():
    r = render()
    (pdb,) = r.all("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == r.broker_sts()["spec"]["selector"]["matchLabels"]
    assert render({"broker": {"pdb": {"enabled": False}}}).all("PodDisruptionBudget") == []


def test_client_service_is_the_bootstrap_address_in_the_notes():
    r = render()
    svc = r.get("Service", FULLNAME)
    assert svc["spec"]["selector"] == r.broker_sts()["spec"]["selector"]["matchLabels"]
    assert "clusterIP" not in svc["spec"]
    bootstrap = f"{FULLNAME}.{SVC}:9092"
    assert bootstrap in r.notes
    assert f"-b {bootstrap} -t hello -P" in r.notes  # how to produce a first message
    assert f"-b {bootstrap} -t hello -C" in r.notes


# ---- MinIO and etcd


def test_default_installs_minio_with_a_volume_and_a_bucket_job():
    r = render()
    minio = r.get("StatefulSet", f"{FULLNAME}-minio")
    (claim,) = minio["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert {m["name"] for m in minio["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]} >= {"data"}
    svc = r.get("Service", f"{FULLNAME}-minio")
    assert [p["port"] for p in svc["spec"]["ports"]] == [9000]
    job = r.get("Job", f"{FULLNAME}-minio-bucket")
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert "post-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    job_env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["S3_ENDPOINT"] == r.broker_env()["KAFSCALE_S3_ENDPOINT"]["value"]
    assert job_env["S3_BUCKET"] == r.broker_env()["KAFSCALE_S3_BUCKET"]["value"]
    assert "mc mb --ignore-existing" in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]


@pytest.mark.parametrize("case", ["external-s3", "external-both"])
def test_external_s3_installs_no_minio(case):
    r = render(COMBINATIONS[case])
    assert not [o for o in r.objects if "minio" in o["metadata"]["name"]]


@pytest.mark.parametrize("case", ["external-etcd", "external-both"])
def test_external_etcd_installs_no_etcd(case):
    r = render(COMBINATIONS[case])
    assert not [o for o in r.objects if "etcd" in o["metadata"]["name"]]


@pytest.mark.parametrize("members", [1, 3, 5])
def test_etcd_members_know_each_other(members):
    r = render({"etcd": {"replicas": members}})
    sts = r.get("StatefulSet", f"{FULLNAME}-etcd")
    assert sts["spec"]["replicas"] == members
    assert sts["spec"]["podManagementPolicy"] == "Parallel"  # members wait for each other's quorum
    assert sts["spec"]["serviceName"] == f"{FULLNAME}-etcd-headless"
    assert r.get("Service", f"{FULLNAME}-etcd-headless")["spec"]["publishNotReadyAddresses"] is True
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    names = [f"{FULLNAME}-etcd-{i}" for i in range(members)]
    peer = f"{FULLNAME}-etcd-headless.{SVC}"
    assert env["ETCD_INITIAL_CLUSTER"] == ",".join(f"{n}=http://{n}.{peer}:2380" for n in names)
    assert env["ETCD_NAME"] == "$(POD_NAME)"
    assert env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == f"http://$(POD_NAME).{peer}:2380"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == f"http://$(POD_NAME).{peer}:2379"
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert r.broker_env()["KAFSCALE_ETCD_ENDPOINTS"]["value"] == ",".join(f"{n}.{peer}:2379" for n in names)
    pdbs = [p for p in r.all("PodDisruptionBudget") if "etcd" in p["metadata"]["name"]]
    if members == 1:
        assert pdbs == []
    else:
        assert pdbs[0]["spec"]["minAvailable"] == members // 2 + 1  # keep a quorum


# ---- ServiceMonitor (a CRD: what the Kubernetes schemas cannot check is asserted here)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_service_monitor(version):
    assert render().all("ServiceMonitor") == []
    r = render({"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}}})
    (sm,) = r.all("ServiceMonitor")
    with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
        validate(sm, version)
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert sm["metadata"]["labels"]["release"] == "prom"
    # metadata and the label selector are core types: validate them inside core objects
    validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": sm["metadata"]}, version)
    validate({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"},
              "spec": {"maxUnavailable": 1, "selector": sm["spec"]["selector"]}}, version)
    assert set(sm["spec"]) == {"selector", "namespaceSelector", "endpoints"}
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    # it selects exactly the client Service, which has a port named "metrics"
    wanted = sm["spec"]["selector"]["matchLabels"]
    selected = [s for s in r.all("Service") if wanted.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [FULLNAME]
    assert "metrics" in {p["name"] for p in selected[0]["spec"]["ports"]}


# ---- values.schema.json: wrong values fail with a message naming them


WRONG_VALUES = [
    ({"broker": {"replicas": "three"}}, "/broker/replicas", "want integer"),
    ({"s3": {"external": True}}, "/s3/endpoint", "minLength"),
    ({"s3": {"external": True, "endpoint": "minio:9000"}}, "/s3/endpoint", "does not match pattern"),
    ({"etcd": {"external": True}}, "/etcd/endpoints", "minItems"),
    ({"etcd": {"external": True, "endpoints": "etcd:2379"}}, "/etcd/endpoints", "want array"),
    ({"etcd": {"replicas": 2}}, "/etcd/replicas", "one of 1, 3, 5"),
    ({"broker": {"logLevel": "verbose"}}, "/broker/logLevel", "one of"),
    ({"broker": {"port": 70000}}, "/broker/port", "maximum"),
    ({"broker": {"replica": 2}}, "/broker", "additional properties 'replica'"),
    ({"service": {"type": "Ingress"}}, "/service/type", "one of"),
    ({"broker": {"cacheBytes": 0}}, "/broker/cacheBytes", "minimum"),
]


@pytest.mark.parametrize("values,where,what", WRONG_VALUES, ids=[w for _, w, _ in WRONG_VALUES])
def test_schema_rejects_wrong_values_with_a_message(values, where, what):
    with pytest.raises(helm.HelmValuesError) as info:
        chart().validate_schema(values)
    assert f"at '{where}'" in str(info.value) and what in str(info.value)
    with pytest.raises(helm.HelmValuesError) as info:  # install/template fail the same way
        render(values)
    assert f"at '{where}'" in str(info.value)
    assert helm.lint(str(CHART_DIR), values)["errors"]


@pytest.mark.parametrize("case", list(ALL_CASES))
def test_schema_accepts_the_supported_values(case):
    chart().validate_schema(ALL_CASES[case] or None)


@pytest.mark.parametrize("values,message", [
    ({"s3": {"external": True, "endpoint": "http://s3:9000"}}, "give the S3 credentials"),
    ({"broker": {"extraEnv": [{"name": "KAFSCALE_S3_ENDPOINT", "value": "http://x"}]}},
     "KAFSCALE_S3_ENDPOINT is set by the chart"),
])
def test_template_guards_fail_with_a_message(values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


# ---- values.yaml: documented field by field, in step with the schema


def _schema_leaves(schema: dict, path: tuple = ()) -> dict[tuple, dict]:
    """Fields of the schema: a leaf is a property without sub-properties."""
    out = {}
    for name, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            out.update(_schema_leaves(sub, path + (name,)))
        else:
            out[path + (name,)] = sub
    return out


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each mapping key's path in values.yaml to its line number (block style only)."""
    out: dict[tuple, int] = {}
    stack: list[tuple[int, str]] = []
    for no, line in enumerate(text.splitlines()):
        m = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        out[tuple(k for _, k in stack)] = no
    return out


def test_values_yaml_documents_every_field():
    text = (CHART_DIR / "values.yaml").read_text()
    lines = text.splitlines()
    keys = _key_lines(text)
    leaves = _schema_leaves(chart().schema)
    undocumented = []
    for path in leaves:
        if path == ("global",):
            continue
        assert path in keys, f"values.yaml lacks {'.'.join(path)} (in the schema)"
        above = lines[keys[path] - 1].strip()
        if not above.startswith("#"):
            undocumented.append(".".join(path))
    assert not undocumented, f"fields without a comment right above them in values.yaml: {undocumented}"
    for path, sub in leaves.items():
        assert sub.get("description"), f"schema field {'.'.join(path)} has no description"


def test_values_yaml_fields_are_all_in_the_schema():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    chart().validate_schema(values)  # additionalProperties: false rejects unknown ones
    assert chart().values == values


# ---- the chart package itself


def test_chart_packages(tmp_path):
    archive = helm.package(str(CHART_DIR), destination=str(tmp_path))
    assert os.path.basename(archive) == "kafscale-0.1.0.tgz"
    with helm.Chart.load(archive) as packaged:
        assert packaged.metadata["appVersion"] == "0.1.0"
        assert packaged.schema == chart().schema
        assert {t["name"] for t in packaged.templates} == {t["name"] for t in chart().templates}

