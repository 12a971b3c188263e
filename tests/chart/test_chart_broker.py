"""The chart and the broker agree on configuration: the broker container exactly as the
chart renders it (its command, its environment, its Secret) starts a real broker here
against the test stack's real etcd and S3 server, and a real client produces and
consumes through it.

Only what cannot exist outside a cluster is replaced: the pod's advertised cluster DNS
name and the 0.0.0.0 listener become 127.0.0.1 (everything here stays on loopback),
and, for the default install, the in-cluster MinIO/etcd addresses and generated
credentials become the stack's.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest

from support.procs import free_port

from .commandbroker import CommandBroker, kafscale_shim
from .rendering import FULLNAME, Rendered, render, resolve_env

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402

ORDINAL = 2  # a pod other than -0, so the id really comes from the pod name


def _start_rendered_broker(r: Rendered, broker_factory, tmp_path, overrides: dict[str, str]) -> tuple[CommandBroker, dict]:
    container = r.broker_container()
    pod_name = f"{r.broker_sts()['metadata']['name']}-{ORDINAL}"
    env = resolve_env(container["env"], r, {"metadata.name": pod_name})
    # what stands in for the cluster: loopback instead of pod DNS / all interfaces
    assert env["KAFSCALE_BROKER_HOST"].startswith(f"{pod_name}.{FULLNAME}-headless.")
    env["KAFSCALE_BROKER_HOST"] = "127.0.0.1"
    assert env["KAFSCALE_LISTEN_HOST"] == "0.0.0.0"
    env["KAFSCALE_LISTEN_HOST"] = "127.0.0.1"
    env.update(overrides)
    env["PATH"] = f"{kafscale_shim(tmp_path / 'bin')}:/usr/bin:/bin"
    broker = CommandBroker(broker_factory, container["command"], env, broker_id=ORDINAL,
                           port=int(env["KAFSCALE_BROKER_PORT"]), metrics_port=int(env["KAFSCALE_METRICS_PORT"]))
    broker.start(timeout=60)
    return broker, container


def _probe_status(container: dict, probe: str) -> int:
    """GET what the probe in the rendered manifest points at (named port resolved)."""
    get = container[probe]["httpGet"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}[get["port"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{get['path']}", timeout=5) as resp:
        return resp.status


def _produce_and_consume(bootstrap: str, topic: str, n: int = 200) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                         "enable.idempotence": True, "linger.ms": 5})
    acked: list[bytes] = []
    errors: list = []

    def done(err, msg):
        (errors.append(err) if err else acked.append(msg.value()))

    for i in range(n):
        producer.produce(topic, f"chart-{i}".encode(), key=str(i).encode(), on_delivery=done)
    assert producer.flush(30) == 0
    assert not errors and len(acked) == n

    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    assert set(md.brokers) == {ORDINAL}, "the broker id is the pod ordinal"
    assert md.brokers[ORDINAL].host == "127.0.0.1"

    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                                         "enable.auto.commit": False})
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
    finally:
        consumer.close()
    assert got == [f"chart-{i}".encode() for i in range(n)]


def test_external_values_render_a_broker_that_serves(stack, broker_factory, tmp_path):
    """Values pointing at the stack (external S3 with given credentials, external etcd):
    nothing but the loopback addresses is replaced; the credentials travel through the
    rendered Secret and the secretKeyRefs."""
    suffix = uuid.uuid4().hex[:10]
    r = render({
        "broker": {"port": free_port(), "metricsPort": free_port(), "etcdPrefix": f"/chart-{suffix}",
                   "flushIntervalMs": 10},
        "s3": {"external": True, "endpoint": stack.s3_endpoint, "bucket": stack.bucket,
               "accessKey": stack.access_key, "secretKey": stack.secret_key, "namespace": f"chart-{suffix}"},
        "etcd": {"external": True, "endpoints": stack.etcd_endpoints.split(",")},
        "console": {"auth": {"enabled": True}},
    })
    broker, container = _start_rendered_broker(r, broker_factory, tmp_path, overrides={})
    assert _probe_status(container, "readinessProbe") == 200
    assert _probe_status(container, "livenessProbe") == 200
    # the console asks for the token the chart generated into its Secret
    console = f"http://127.0.0.1:{broker.metrics_port}/api/cluster"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(console, timeout=5)
    assert refused.value.code == 401
    token = r.secret_data(f"{FULLNAME}-console")["token"]
    req = urllib.request.Request(console, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    _produce_and_consume(broker.bootstrap, f"chart-{suffix}")
    assert broker.terminate() == 0  # SIGTERM as the kubelet sends it: clean exit


def test_default_values_render_a_broker_that_serves(stack, broker_factory, tmp_path):
    """Default values (the chart's MinIO and etcd): their in-cluster addresses and the
    generated credentials are swapped for the stack's; everything else is as rendered."""
    suffix = uuid.uuid4().hex[:10]
    r = render({"broker": {"port": free_port(), "metricsPort": free_port()}})
    env = r.broker_env()
    assert env["KAFSCALE_S3_ENDPOINT"]["value"].startswith(f"http://{FULLNAME}-minio.")
    assert env["KAFSCALE_ETCD_ENDPOINTS"]["value"].startswith(f"{FULLNAME}-etcd-0.")
    broker, container = _start_rendered_broker(r, broker_factory, tmp_path, overrides={
        "KAFSCALE_S3_ENDPOINT": stack.s3_endpoint, "KAFSCALE_ETCD_ENDPOINTS": stack.etcd_endpoints,
        "KAFSCALE_S3_ACCESS_KEY": stack.access_key, "KAFSCALE_S3_SECRET_KEY": stack.secret_key,
        # the stack's bucket; and a fresh prefix/namespace so no other test's data is seen
        "KAFSCALE_S3_BUCKET": stack.bucket,
        "KAFSCALE_ETCD_PREFIX": f"/chart-{suffix}", "KAFSCALE_S3_NAMESPACE": f"chart-{suffix}",
    })
    assert _probe_status(container, "readinessProbe") == 200
    _produce_and_consume(broker.bootstrap, f"chart-{suffix}")
    assert broker.terminate() == 0
