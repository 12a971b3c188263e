"""Render charts/kafscale offline with the Helm v4 SDK and look into the result.

    r = render({"s3": {...}})              # a Rendered: every manifest parsed
    sts = r.get("StatefulSet", r.broker_name)
    env = r.broker_env()                   # {name: EnvVar} of the broker container

The chart tests skip (with the reason) only when the SDK or the validator is not
installed; both are in the `test` extra of pyproject.toml.
"""

from __future__ import annotations

import base64
import functools
import pathlib
from dataclasses import dataclass
from typing import Any

import pytest

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk (Helm v4 SDK, in the test extra) is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate (in the test extra) is not installed")
yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extra) is not installed")

helm.disable_logging()  # the SDK logs every template `fail` at INFO on stderr

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "kafscale"
RELEASE = "demo"
NAMESPACE = "streaming"
FULLNAME = f"{RELEASE}-kafscale"
# Kubernetes versions the manifests are validated against: the oldest still common and
# a recent one (kubernetes-validate ships the schemas of both).
KUBE_VERSIONS = ("1.30.0", "1.34.0")

EXTERNAL_S3 = {
    "external": True,
    "endpoint": "https://s3.storage.example:9000",
    "bucket": "kafscale-logs",
    "region": "eu-west-3",
    "existingSecret": "my-s3-credentials",
    "secretKeys": {"accessKey": "AWS_ACCESS_KEY_ID", "secretKey": "AWS_SECRET_ACCESS_KEY"},
}
EXTERNAL_ETCD = {"external": True, "endpoints": ["etcd-a.meta:2379", "etcd-b.meta:2379", "etcd-c.meta:2379"]}
# What a secured external etcd needs besides (EVERYTHING_ON turns etcd TLS and auth on):
# the brokers' client certificate and the password, from Secrets of your own.
EXTERNAL_ETCD_SECRETS = {"tls": {"clientSecret": "etcd-client-certs"}, "auth": {"existingSecret": "etcd-password"}}

# The storage/metadata combinations the chart supports.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "external-s3": {"s3": EXTERNAL_S3},
    "external-etcd": {"etcd": EXTERNAL_ETCD},
    "external-both": {"s3": EXTERNAL_S3, "etcd": EXTERNAL_ETCD},
}

# Every optional part switched on, so it is rendered and validated too.
EVERYTHING_ON: dict[str, Any] = {
    "broker": {
        "rack": "zone-a",
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "podAnnotations": {"example.com/team": "streaming"},
        "podLabels": {"example.com/tier": "data"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafscale", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "broker"}}}],
        "priorityClassName": "high-priority",
        "pdb": {"maxUnavailable": "50%"},
    },
    "service": {"type": "LoadBalancer", "annotations": {"example.com/lb": "internal"}},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Kafscale"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}}},
    "console": {
        "auth": {"enabled": True, "basicAuth": "ops:console-password"},
        "ingress": {"enabled": True, "className": "nginx", "host": "kafscale.streaming.example",
                    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                    "tls": [{"secretName": "kafscale-console-tls", "hosts": ["kafscale.streaming.example"]}]},
    },
    "etcd": {"replicas": 3, "persistence": {"storageClass": "fast", "size": "5Gi"},
             "tls": {"enabled": True}, "auth": {"enabled": True}},
    "minio": {"persistence": {"storageClass": "standard", "size": "100Gi"}, "tls": {"enabled": True}},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/kafscale"}},
    "imagePullSecrets": [{"name": "registry-credentials"}],
}


@functools.lru_cache(maxsize=1)
def chart() -> Any:
    """The chart, loaded once (a loaded chart is immutable and thread-safe)."""
    return helm.Chart.load(str(CHART_DIR))


@dataclass
class Rendered:
    files: dict[str, str]  # template path -> rendered text
    objects: list[dict[str, Any]]  # every manifest, parsed
    notes: str
    fullname: str = FULLNAME

    @property
    def broker_name(self) -> str:
        return self.fullname

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for o in self.all(kind):
            if o["metadata"]["name"] == name:
                return o
        return None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        o = self.find(kind, name)
        assert o is not None, f"no {kind} {name!r} rendered; have {[(x['kind'], x['metadata']['name']) for x in self.objects]}"
        return o

    def broker_sts(self) -> dict[str, Any]:
        return self.get("StatefulSet", self.broker_name)

    def broker_container(self) -> dict[str, Any]:
        (container,) = [c for c in self.broker_sts()["spec"]["template"]["spec"]["containers"] if c["name"] == "broker"]
        return container

    def broker_env(self) -> dict[str, dict[str, Any]]:
        env = self.broker_container()["env"]
        names = [e["name"] for e in env]
        assert len(names) == len(set(names)), f"duplicate env names: {names}"
        return {e["name"]: e for e in env}

    def secret_data(self, name: str) -> dict[str, str]:
        """A rendered Secret's data, decoded."""
        secret = self.get("Secret", name)
        return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("StatefulSet", "Deployment", "Job", "DaemonSet")]


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge value layers (later wins), like several -f files."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    files = chart().render(values or None, name=name, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    fullname = name if "kafscale" in name else f"{name}-kafscale"
    if values and values.get("fullnameOverride"):
        fullname = values["fullnameOverride"]
    return Rendered(files=files, objects=objects, notes=notes, fullname=fullname[:40].rstrip("-"))


def validate(obj: dict[str, Any], version: str) -> None:
    """Validate one manifest against the Kubernetes schemas, strict (unknown fields fail)."""
    kubernetes_validate.validate(obj, version, strict=True)


def resolve_env(env: list[dict[str, Any]], rendered: Rendered, field_refs: dict[str, str]) -> dict[str, str]:
    """Resolve a container's env list the way the kubelet does: fieldRef from field_refs,
    secretKeyRef from the rendered Secrets, and $(VAR) references to earlier variables."""
    out: dict[str, str] = {}
    for e in env:
        if "value" in e:
            value = str(e["value"])
            for prior, prior_value in out.items():
                value = value.replace(f"$({prior})", prior_value)
        elif "fieldRef" in e.get("valueFrom", {}):
            value = field_refs[e["valueFrom"]["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            data = rendered.secret_data(ref["name"])
            if ref.get("optional") and ref["key"] not in data:
                continue  # the kubelet leaves the variable unset
            value = data[ref["key"]]
        else:
            raise AssertionError(f"cannot resolve env var {e}")
        out[e["name"]] = value
    return out
