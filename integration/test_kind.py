"""The image and the chart on a real Kubernetes (kind): install, produce and consume
through the client Service from a pod, lose a broker pod under load without losing
an acknowledged message, upgrade, uninstall.

    .venv/bin/pytest integration -m kind -v        # needs docker (running), kind, kubectl

Skipped, with the reason, where any of them is missing. Helm itself comes from the
helm-python-sdk (test extra), so no helm binary is needed. Set KAFSCALE_KIND_KEEP=1 to
keep the cluster afterwards for a look (`kind delete cluster --name kafscale-it`).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest

pytestmark = [pytest.mark.kind, pytest.mark.slow]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "charts" / "kafscale"
CLUSTER = os.environ.get("KAFSCALE_KIND_CLUSTER", "kafscale-it")
NAMESPACE = "kafscale-it"
RELEASE = "ks"
FULLNAME = f"{RELEASE}-kafscale"
BOOTSTRAP = f"{FULLNAME}.{NAMESPACE}.svc.cluster.local:9092"
TAG = f"it-{uuid.uuid4().hex[:8]}"
IMAGE = f"kafscale:{TAG}"
CLIENT_IMAGE = f"kafscale-it-client:{TAG}"
# Brokers after `helm upgrade`: the install starts with one, the upgrade scales out.
UPGRADE_REPLICAS = int(os.environ.get("KAFSCALE_KIND_UPGRADE_REPLICAS", "3"))


def _missing() -> str | None:
    for tool in ("docker", "kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (the kind test needs docker, kind and kubectl)"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        return "the Docker daemon is not reachable (`docker info` fails)"
    try:
        import helm_python  # noqa: F401
    except ImportError:
        return "helm-python-sdk (test extra) is not installed"
    return None


_reason = _missing()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

import helm_python as helm  # noqa: E402


def run(*argv: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    path = tmp_path_factory.mktemp("kind") / "kubeconfig"
    existing = run("kind", "get", "clusters").stdout.split()
    created = CLUSTER not in existing
    if created:
        run("kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s", "--kubeconfig", str(path), timeout=900)
    else:
        path.write_text(run("kind", "get", "kubeconfig", "--name", CLUSTER).stdout)
    try:
        yield path
    finally:
        if created and os.environ.get("KAFSCALE_KIND_KEEP") != "1":
            run("kind", "delete", "cluster", "--name", CLUSTER, check=False)


@pytest.fixture(scope="module")
def kubectl(kubeconfig):
    def kubectl(*args: str, **kw) -> subprocess.CompletedProcess:
        return run("kubectl", "--kubeconfig", str(kubeconfig), *args, **kw)
    return kubectl


@pytest.fixture(scope="module")
def images(kubeconfig):
    """The broker image from the repository's Dockerfile, and the client image, in kind."""
    run("docker", "build", "-t", IMAGE, str(REPO_ROOT), timeout=1800)
    run("docker", "build", "-t", CLIENT_IMAGE, str(REPO_ROOT / "integration" / "client"), timeout=900)
    for image in (IMAGE, CLIENT_IMAGE):
        run("kind", "load", "docker-image", image, "--name", CLUSTER, timeout=900)
    return IMAGE, CLIENT_IMAGE


@pytest.fixture(scope="module")
def helm_config(kubeconfig):
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=NAMESPACE) as cfg:
        yield cfg


def _values(**broker) -> dict:
    repo, tag = IMAGE.split(":")
    return {"image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
            "broker": {"replicas": 1, **broker},
            "minio": {"persistence": {"size": "2Gi"}}, "etcd": {"persistence": {"size": "1Gi"}}}


@pytest.fixture(scope="module")
def release(helm_config, images, kubectl):
    rel = helm_config.install(str(CHART), RELEASE, _values(), namespace=NAMESPACE, create_namespace=True,
                              wait="watcher", timeout=600)
    assert rel["status"] == "deployed"
    kubectl("-n", NAMESPACE, "run", "client", f"--image={CLIENT_IMAGE}", "--image-pull-policy=Never",
            "--restart=Never")
    kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", "pod/client", "--timeout=180s")
    yield rel
    # test_uninstall normally removes it; make sure nothing is left if it did not run
    try:
        helm_config.uninstall(RELEASE, namespace=NAMESPACE, wait="watcher", timeout=300)
    except helm.HelmError:
        pass


def _client(kubectl, *args: str, timeout: float = 600) -> list[str]:
    out = kubectl("-n", NAMESPACE, "exec", "client", "--", "python", "/client.py", *args, timeout=timeout).stdout
    return out.splitlines()


def _acked(lines: list[str]) -> set[str]:
    return {line.split()[1] for line in lines if line.startswith("ACK ")}


def _consumed(kubectl, topic: str, expected: int) -> list[str]:
    return [line.split()[1] for line in _client(kubectl, "consume", BOOTSTRAP, topic, str(expected))
            if line.startswith("GOT ")]


def test_produce_and_consume_through_the_service(release, kubectl):
    lines = _client(kubectl, "produce", BOOTSTRAP, "smoke", "500", "1000")
    assert _acked(lines) == {str(i) for i in range(500)}
    assert _consumed(kubectl, "smoke", 500) == [str(i) for i in range(500)]


def test_broker_pod_deleted_under_load_loses_nothing_acknowledged(release, kubectl, kubeconfig):
    topic = "under-load"
    producer = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubeconfig), "-n", NAMESPACE, "exec", "client", "--",
         "python", "/client.py", "produce", BOOTSTRAP, topic, "6000", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # producing for a while
    kubectl("-n", NAMESPACE, "delete", "pod", f"{FULLNAME}-0", "--wait=false")
    out, err = producer.communicate(timeout=900)
    assert producer.returncode == 0, err[-3000:]
    lines = out.splitlines()
    acked = _acked(lines)
    assert acked, "nothing was acknowledged"
    assert lines[-1].startswith("DONE")
    kubectl("-n", NAMESPACE, "rollout", "status", f"statefulset/{FULLNAME}", "--timeout=300s")
    consumed = _consumed(kubectl, topic, len(acked))
    lost = acked - set(consumed)
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost, key=int)[:10]}"


def test_upgrade_keeps_the_data(release, helm_config, kubectl):
    values = _values(flushIntervalMs=20, logLevel="DEBUG")  # changes the pod template: a rolling restart
    values["broker"]["replicas"] = UPGRADE_REPLICAS
    rel = helm_config.upgrade(str(CHART), RELEASE, values, namespace=NAMESPACE, wait="watcher", timeout=600)
    assert rel["status"] == "deployed" and rel["revision"] == 2
    sts = json.loads(kubectl("-n", NAMESPACE, "get", "statefulset", FULLNAME, "-o", "json").stdout)
    assert sts["status"].get("readyReplicas") == UPGRADE_REPLICAS
    # the S3 credentials were kept (lookup), so the brokers still read what MinIO holds
    assert _consumed(kubectl, "smoke", 500) == [str(i) for i in range(500)]
    lines = _client(kubectl, "produce", BOOTSTRAP, "after-upgrade", "100", "1000")
    assert len(_acked(lines)) == 100


def test_uninstall(release, helm_config, kubectl):
    helm_config.uninstall(RELEASE, namespace=NAMESPACE, wait="watcher", timeout=300)
    left = kubectl("-n", NAMESPACE, "get", "statefulset,service,secret,job", "-l",
                   f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
    assert left == []

