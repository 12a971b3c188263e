"""The chart's TLS listener (values `tls`): the listeners and certificate files the broker
is given, the ports on the pods and Services, the Secret volume, the optional cert-manager
Certificate, the NOTES' client configuration, and the guards; then the broker container as
rendered serves a real client over TLS with client certificates, configured as NOTES says.
"""

from __future__ import annotations

import copy
import re
import uuid

import pytest

from kafscale.config import OPTIONS, from_sources
from support.certs import Pki
from support.procs import free_port

from .commandbroker import CommandBroker, kafscale_shim
from .rendering import CHART_DIR, FULLNAME, KUBE_VERSIONS, NAMESPACE, helm, render, resolve_env, validate

HEADLESS = f"{FULLNAME}-headless"
SVC = f"{NAMESPACE}.svc.cluster.local"
TLS = {"tls": {"enabled": True, "existingSecret": "kafscale-tls"}}
MTLS = {"tls": {"enabled": True, "existingSecret": "kafscale-tls", "clientAuth": "required"}}
TLS_ONLY = {"tls": {"enabled": True, "existingSecret": "kafscale-tls", "plaintext": False}}
CERT_MANAGER = {"tls": {"enabled": True, "clientAuth": "requested", "protocol": "SASL_SSL",
                        "certManager": {"enabled": True, "issuerRef": {"name": "internal-ca"},
                                        "extraDnsNames": ["kafka.example.com"]}}}
CASES = {"tls": TLS, "mtls": MTLS, "tls-only": TLS_ONLY, "cert-manager": CERT_MANAGER}


def _env(values) -> dict[str, str]:
    r = render(values)
    return resolve_env(r.broker_container()["env"], r, {"metadata.name": f"{FULLNAME}-1"})


def test_tls_is_off_by_default():
    r = render()
    env = r.broker_env()
    assert not {n for n in env if n.startswith("KAFSCALE_TLS") or n.endswith("LISTENERS")}
    assert [p["name"] for p in r.broker_container()["ports"]] == ["kafka", "metrics"]
    assert r.all("Certificate") == []
    assert "security.protocol" not in r.notes


@pytest.mark.parametrize("case", list(CASES))
def test_tls_values_lint_and_validate(case):
    report = helm.lint(str(CHART_DIR), CASES[case], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    for obj in render(CASES[case]).objects:
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule", "Certificate"):
            continue  # CRDs: no schema offline (the Certificate is checked below)
        for version in KUBE_VERSIONS:
            validate(obj, version)


@pytest.mark.parametrize("case", list(CASES))
def test_every_tls_variable_is_a_broker_option_and_the_environment_is_a_valid_config(case, tmp_path):
    env = _env(CASES[case])
    known = {o.env for o in OPTIONS}
    assert not sorted(n for n in env if n.startswith("KAFSCALE_") and n not in known)
    # the broker accepts it, with the mounted files standing in
    for name in ("KAFSCALE_TLS_CERT_FILE", "KAFSCALE_TLS_KEY_FILE", "KAFSCALE_TLS_CA_FILE"):
        if name in env:
            assert env[name].startswith("/etc/kafscale/tls/")
            env[name] = str(tmp_path / env[name].rsplit("/", 1)[1])
            (tmp_path / env[name].rsplit("/", 1)[1]).write_text("x")
    cfg = from_sources({}, {k: v for k, v in env.items() if k.startswith("KAFSCALE_")})
    assert all(lst.host == "0.0.0.0" for lst in cfg.listener_list)


def test_both_listeners_are_advertised_at_the_pod_address():
    env = _env(MTLS)
    pod = f"{FULLNAME}-1.{HEADLESS}.{SVC}"
    assert env["KAFSCALE_LISTENERS"] == "SSL://0.0.0.0:9094,PLAINTEXT://0.0.0.0:9092"
    assert env["KAFSCALE_ADVERTISED_LISTENERS"] == f"SSL://{pod}:9094,PLAINTEXT://{pod}:9092"
    assert (env["KAFSCALE_TLS_CERT_FILE"], env["KAFSCALE_TLS_KEY_FILE"], env["KAFSCALE_TLS_CA_FILE"]) == (
        "/etc/kafscale/tls/tls.crt", "/etc/kafscale/tls/tls.key", "/etc/kafscale/tls/ca.crt")
    assert env["KAFSCALE_TLS_CLIENT_AUTH"] == "required"
    assert "KAFSCALE_TLS_CA_FILE" not in _env(TLS)  # no mTLS, no CA needed
    only = _env(TLS_ONLY)
    assert only["KAFSCALE_LISTENERS"] == "SSL://0.0.0.0:9094"
    assert only["KAFSCALE_ADVERTISED_LISTENERS"] == f"SSL://{pod}:9094"


def test_ports_of_the_pods_and_services():
    r = render(MTLS)
    assert {p["name"]: p["containerPort"] for p in r.broker_container()["ports"]} == \
        {"kafka": 9092, "kafka-tls": 9094, "metrics": 9093}
    for svc in r.all("Service"):
        if svc["metadata"]["name"] in (FULLNAME, HEADLESS):
            ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
            assert ports["kafka-tls"] == (9094, "kafka-tls") and "kafka" in ports
    r = render(TLS_ONLY)
    assert [p["name"] for p in r.broker_container()["ports"]] == ["kafka-tls", "metrics"]
    for svc in r.all("Service"):
        if svc["metadata"]["name"] in (FULLNAME, HEADLESS):
            assert "kafka" not in {p["name"] for p in svc["spec"]["ports"]}


def test_the_certificate_comes_from_the_secret_as_a_whole_volume():
    r = render(MTLS)
    pod = r.broker_sts()["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "kafscale-tls"
    assert [(i["key"], i["path"]) for i in volume["secret"]["items"]] == \
        [("tls.crt", "tls.crt"), ("tls.key", "tls.key"), ("ca.crt", "ca.crt")]
    (mount,) = [m for m in r.broker_container()["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/etc/kafscale/tls", "readOnly": True}  # no subPath: updates arrive
    keys = render({"tls": {**MTLS["tls"], "secretKeys": {"cert": "c.pem", "key": "k.pem", "ca": "ca.pem"}}})
    (volume,) = [v for v in keys.broker_sts()["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert [i["key"] for i in volume["secret"]["items"]] == ["c.pem", "k.pem", "ca.pem"]


def test_cert_manager_certificate_names_every_advertised_host():
    r = render(CERT_MANAGER)
    (cert,) = r.all("Certificate")
    assert cert["apiVersion"] == "cert-manager.io/v1"
    spec = cert["spec"]
    assert spec["secretName"] == f"{FULLNAME}-tls"
    (volume,) = [v for v in r.broker_sts()["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == spec["secretName"]
    assert spec["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert set(spec) == {"secretName", "duration", "renewBefore", "privateKey", "usages", "dnsNames", "issuerRef"}
    assert "server auth" in spec["usages"] and spec["privateKey"]["rotationPolicy"] == "Always"
    env = _env(CERT_MANAGER)
    patterns = [re.compile("^" + re.escape(n).replace(r"\*", "[^.]+") + "$") for n in spec["dnsNames"]]
    for url in env["KAFSCALE_ADVERTISED_LISTENERS"].split(","):
        host = url.split("://")[1].rsplit(":", 1)[0]
        assert any(p.match(host) for p in patterns), host
    assert any(p.match(f"{FULLNAME}.{SVC}") for p in patterns)  # the bootstrap Service
    assert "kafka.example.com" in spec["dnsNames"]
    assert env["KAFSCALE_LISTENERS"].startswith("SASL_SSL://0.0.0.0:9094")


def test_notes_show_a_client_configuration_that_matches():
    notes = render(MTLS).notes
    assert f"bootstrap.servers={FULLNAME}.{SVC}:9094" in notes
    assert "security.protocol=SSL" in notes and "ssl.certificate.location=" in notes
    notes = render(TLS).notes
    assert "security.protocol=SSL" in notes and "ssl.certificate.location" not in notes
    assert "sasl.mechanism=" in render(CERT_MANAGER).notes


@pytest.mark.parametrize("values, message", [
    ({"tls": {"enabled": True}}, "tls.enabled: give the certificate's Secret"),
    ({"tls": {"enabled": True, "certManager": {"enabled": True}}}, "tls.certManager.issuerRef.name"),
    ({"tls": {"enabled": True, "existingSecret": "s", "port": 9092}}, "tls.port: must differ from broker.port"),
    ({"tls": {"enabled": True, "existingSecret": "s"}, "broker": {"extraEnv": [
        {"name": "KAFSCALE_LISTENERS", "value": "PLAINTEXT://0.0.0.0:1"}]}}, "KAFSCALE_LISTENERS is set by the chart"),
])
def test_tls_guards_fail_with_a_message(values, message):
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


@pytest.mark.parametrize("values, where", [
    ({"tls": {"clientAuth": "always"}}, "/tls/clientAuth"),
    ({"tls": {"protocol": "PLAINTEXT"}}, "/tls/protocol"),
    ({"tls": {"certManager": {"duration": "90 days"}}}, "/tls/certManager/duration"),
])
def test_schema_rejects_wrong_tls_values(values, where):
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"at '{where}'")):
        render(values)


# ---- the rendered broker container, started here, serves TLS clients


def test_rendered_tls_broker_serves_mtls_clients(stack, broker_factory, tmp_path):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    suffix = uuid.uuid4().hex[:10]
    pki = Pki(tmp_path / "pki")
    server = pki.issue("server", "broker", server=True)
    client = pki.issue("client", "app", org="acme")
    plain_port, tls_port, metrics_port = free_port(), free_port(), free_port()
    r = render(copy.deepcopy({
        "broker": {"port": plain_port, "metricsPort": metrics_port, "etcdPrefix": f"/chart-{suffix}",
                   "flushIntervalMs": 10},
        "s3": {"external": True, "endpoint": stack.s3_endpoint, "bucket": stack.bucket,
               "accessKey": stack.access_key, "secretKey": stack.secret_key, "namespace": f"chart-{suffix}"},
        "etcd": {"external": True, "endpoints": stack.etcd_endpoints.split(",")},
        **{"tls": {**MTLS["tls"], "port": tls_port}},
    }))
    container = r.broker_container()
    pod = f"{r.broker_sts()['metadata']['name']}-0"
    env = resolve_env(container["env"], r, {"metadata.name": pod})
    # what stands in for the cluster: loopback for pod DNS and all interfaces, the Secret
    # volume's files for the mounted ones
    for name in ("KAFSCALE_LISTENERS", "KAFSCALE_ADVERTISED_LISTENERS", "KAFSCALE_BROKER_HOST"):
        env[name] = env[name].replace(env["KAFSCALE_BROKER_HOST"], "127.0.0.1").replace("0.0.0.0", "127.0.0.1")
    env["KAFSCALE_LISTEN_HOST"] = "127.0.0.1"
    env.update(KAFSCALE_TLS_CERT_FILE=str(server.cert), KAFSCALE_TLS_KEY_FILE=str(server.key),
               KAFSCALE_TLS_CA_FILE=str(pki.ca_file))
    env["PATH"] = f"{kafscale_shim(tmp_path / 'bin')}:/usr/bin:/bin"
    broker = CommandBroker(broker_factory, container["command"], env, broker_id=0, port=plain_port,
                           metrics_port=metrics_port)
    broker.start(timeout=60)

    # the client configuration of NOTES, with the files filled in
    lines = [ln.strip().split("#")[0].strip() for ln in r.notes.splitlines()]
    conf = dict(ln.split("=", 1) for ln in lines if re.match(r"^(bootstrap\.servers|security\.protocol|ssl\.)", ln))
    assert conf["bootstrap.servers"] == f"{FULLNAME}.{SVC}:{tls_port}"
    conf.update({"bootstrap.servers": f"127.0.0.1:{tls_port}", "ssl.ca.location": str(pki.ca_file),
                 "ssl.certificate.location": str(client.cert), "ssl.key.location": str(client.key)})
    topic = f"chart-tls-{suffix}"
    p = confluent_kafka.Producer({**conf, "acks": "all"})
    errors = []
    for i in range(50):
        p.produce(topic, b"%d" % i, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0 and not errors
    md = AdminClient(conf).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", tls_port)]
    plain = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain_port}"})
    assert [b.port for b in plain.list_topics(timeout=10).brokers.values()] == [plain_port]
    assert broker.terminate() == 0
