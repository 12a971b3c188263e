"""The chart's secured etcd and S3 (docs/security.md, "etcd and S3"): etcd TLS and auth,
MinIO https, the brokers' ServiceAccount and workload identity. Each combination renders
and validates strictly; the broker gets the KAFSCALE_ETCD_*/KAFSCALE_S3_CA_FILE variables
and the Secrets mounted where they point; the certificates the chart generates cover the
addresses the brokers dial. And for real: the chart's own certificates, password and
auth Job script (as rendered) against a real etcd and S3 server over TLS, then a broker
with the rendered options produces and consumes.
"""

from __future__ import annotations

import ipaddress
import pathlib
import subprocess
import sys
import uuid

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kafscale.config import OPTIONS
from kafscale.localstack import LocalStack, TlsFiles

from .rendering import (
    EXTERNAL_ETCD, EXTERNAL_S3, FULLNAME, KUBE_VERSIONS, NAMESPACE, Rendered, helm, merge, render, validate,
)

SVC = f"{NAMESPACE}.svc.cluster.local"
ETCD_SECURED = {"etcd": {"tls": {"enabled": True}, "auth": {"enabled": True}}}
IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/kafscale-s3"}
CASES = {
    "etcd-tls": {"etcd": {"tls": {"enabled": True}}},
    "etcd-tls-server-only": {"etcd": {"tls": {"enabled": True, "clientCertAuth": False}}},
    "etcd-auth": {"etcd": {"auth": {"enabled": True}}},
    "etcd-tls-auth-3": merge(ETCD_SECURED, {"etcd": {"replicas": 3}}),
    "minio-tls": {"minio": {"tls": {"enabled": True}}},
    "all-bundled": merge(ETCD_SECURED, {"minio": {"tls": {"enabled": True}}}),
    "existing-secrets": merge(ETCD_SECURED, {
        "etcd": {"tls": {"existingSecret": "etcd-server-certs", "clientSecret": "etcd-client-certs"},
                 "auth": {"existingSecret": "etcd-root", "secretKey": "pw"}},
        "minio": {"tls": {"enabled": True, "existingSecret": "minio-certs"}}}),
    "external-etcd-secured": {"etcd": merge(EXTERNAL_ETCD, {
        "endpoints": ["https://etcd-a.meta:2379", "https://etcd-b.meta:2379"],
        "tls": {"enabled": True, "clientSecret": "etcd-client-certs"},
        "auth": {"enabled": True, "user": "kafscale", "existingSecret": "etcd-kafscale"}})},
    "external-s3-workload-identity": {
        "s3": {"external": True, "endpoint": "https://s3.eu-west-3.amazonaws.com", "workloadIdentity": True,
               "region": "eu-west-3"},
        "serviceAccount": {"annotations": IRSA}},
    "external-s3-private-ca": {"s3": merge(EXTERNAL_S3, {"caSecret": "corp-ca", "caSecretKey": "bundle.pem"})},
}
OPTION_ENVS = {o.env for o in OPTIONS}


def _env(r: Rendered) -> dict[str, str | tuple[str, str]]:
    out: dict[str, str | tuple[str, str]] = {}
    for name, e in r.broker_env().items():
        if "value" in e:
            out[name] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            out[name] = (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
    return out


def _mounted_files(r: Rendered, container: dict, spec: dict) -> dict[str, tuple[str, str]]:
    """path in the container -> (Secret, key), for the container's Secret volumes."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    out = {}
    for m in container.get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if secret:
            for item in secret.get("items") or []:
                out[f"{m['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
            if not secret.get("items"):
                for key in ("tls.crt", "tls.key", "ca.crt"):
                    out[f"{m['mountPath']}/{key}"] = (secret["secretName"], key)
    return out


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_each_combination_renders_and_validates_strict(case, version):
    chart_values = CASES[case]
    report = helm.lint(str(pathlib.Path(__file__).resolve().parents[2] / "charts" / "kafscale"), chart_values,
                       strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    for obj in render(chart_values).objects:
        if obj["kind"] not in ("ServiceMonitor", "PrometheusRule"):
            validate(obj, version)


@pytest.mark.parametrize("case", list(CASES))
def test_broker_env_points_at_mounted_secrets(case):
    r = render(CASES[case])
    env = _env(r)
    assert not sorted(n for n in env if n.startswith("KAFSCALE_") and n not in OPTION_ENVS)
    container, spec = r.broker_container(), r.broker_sts()["spec"]["template"]["spec"]
    files = _mounted_files(r, container, spec)
    for name in ("KAFSCALE_ETCD_CA_FILE", "KAFSCALE_ETCD_CERT_FILE", "KAFSCALE_ETCD_KEY_FILE",
                 "KAFSCALE_ETCD_PASSWORD_FILE", "KAFSCALE_S3_CA_FILE"):
        if name in env:
            assert env[name] in files, (name, env[name], files)
    assert "KAFSCALE_ETCD_PASSWORD" not in env  # a file, never a variable
    values = CASES[case]
    etcd, s3 = values.get("etcd", {}), values.get("s3", {})
    tls, auth = etcd.get("tls", {}), etcd.get("auth", {})
    if tls.get("enabled"):
        client_secret = tls.get("clientSecret") or f"{FULLNAME}-etcd-client-tls"
        assert files[env["KAFSCALE_ETCD_CA_FILE"]] == (client_secret, "ca.crt")
        if tls.get("clientCertAuth", True):
            assert files[env["KAFSCALE_ETCD_CERT_FILE"]] == (client_secret, "tls.crt")
            assert files[env["KAFSCALE_ETCD_KEY_FILE"]] == (client_secret, "tls.key")
        else:
            assert "KAFSCALE_ETCD_CERT_FILE" not in env and "KAFSCALE_ETCD_KEY_FILE" not in env
        assert all(e.startswith("https://") for e in env["KAFSCALE_ETCD_ENDPOINTS"].split(","))
    else:
        assert not any(n in env for n in ("KAFSCALE_ETCD_CA_FILE", "KAFSCALE_ETCD_CERT_FILE"))
    if auth.get("enabled"):
        assert env["KAFSCALE_ETCD_USER"] == auth.get("user", "root")
        secret = auth.get("existingSecret") or f"{FULLNAME}-etcd-auth"
        assert files[env["KAFSCALE_ETCD_PASSWORD_FILE"]] == (secret, auth.get("secretKey", "password"))
    else:
        assert "KAFSCALE_ETCD_USER" not in env
    minio_tls = values.get("minio", {}).get("tls", {})
    if minio_tls.get("enabled"):
        secret = minio_tls.get("existingSecret") or f"{FULLNAME}-minio-tls"
        assert files[env["KAFSCALE_S3_CA_FILE"]] == (secret, "ca.crt")
        assert env["KAFSCALE_S3_ENDPOINT"] == f"https://{FULLNAME}-minio.{SVC}:9000"
    elif s3.get("caSecret"):
        assert files[env["KAFSCALE_S3_CA_FILE"]] == (s3["caSecret"], s3["caSecretKey"])
    else:
        assert "KAFSCALE_S3_CA_FILE" not in env
    if s3.get("workloadIdentity"):
        assert "KAFSCALE_S3_ACCESS_KEY" not in env and "KAFSCALE_S3_SECRET_KEY" not in env
        assert r.find("Secret", f"{FULLNAME}-s3") is None
    else:
        assert isinstance(env["KAFSCALE_S3_ACCESS_KEY"], tuple)


def test_service_account_carries_annotations_and_no_token():
    r = render(CASES["external-s3-workload-identity"])
    sa = r.get("ServiceAccount", FULLNAME)
    assert sa["metadata"]["annotations"] == IRSA and sa["automountServiceAccountToken"] is False
    spec = r.broker_sts()["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == FULLNAME and spec["automountServiceAccountToken"] is False
    assert r.all("Secret") == []  # no static keys anywhere
    named = render({"serviceAccount": {"create": False, "name": "platform-sa"}})
    assert named.all("ServiceAccount") == []
    assert named.broker_sts()["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"


def test_default_install_keeps_etcd_and_minio_plain():
    r = render()
    assert not any(n.startswith(("KAFSCALE_ETCD_CA", "KAFSCALE_ETCD_USER", "KAFSCALE_S3_CA")) for n in _env(r))
    assert {s["metadata"]["name"] for s in r.all("Secret")} == {f"{FULLNAME}-s3"}
    assert r.find("Job", f"{FULLNAME}-etcd-auth") is None


@pytest.mark.parametrize("values, message", [
    ({"s3": {"workloadIdentity": True}}, "s3.workloadIdentity needs s3.external"),
    ({"etcd": merge(EXTERNAL_ETCD, {"tls": {"enabled": True}})}, "etcd.tls.clientSecret"),
    ({"etcd": merge(EXTERNAL_ETCD, {"auth": {"enabled": True}})}, "etcd.auth.existingSecret or etcd.auth.password"),
    ({"broker": {"extraEnv": [{"name": "KAFSCALE_ETCD_PASSWORD", "value": "x"}]}},
     "KAFSCALE_ETCD_PASSWORD is set by the chart"),
])
def test_template_guards(values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def _etcd_env(r: Rendered) -> dict[str, str]:
    sts = r.get("StatefulSet", f"{FULLNAME}-etcd")
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_bundled_etcd_serves_tls_to_clients_and_peers_and_probes_on_plain_metrics():
    r = render(CASES["etcd-tls-auth-3"])
    env = _etcd_env(r)
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://0.0.0.0:2379"
    assert env["ETCD_INITIAL_CLUSTER"].count("=https://") == 3
    assert env["ETCD_CLIENT_CERT_AUTH"] == "true" and env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_TRUSTED_CA_FILE"] == env["ETCD_PEER_TRUSTED_CA_FILE"] == "/etc/etcd/tls/ca.crt"
    assert env["ETCD_LISTEN_METRICS_URLS"] == "http://0.0.0.0:2381"
    c = r.get("StatefulSet", f"{FULLNAME}-etcd")["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert {"name": "metrics", "containerPort": 2381, "protocol": "TCP"} in c["ports"]
    assert _etcd_env(render(CASES["etcd-tls-server-only"]))["ETCD_CLIENT_CERT_AUTH"] == "false"
    job = r.get("Job", f"{FULLNAME}-etcd-auth")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"


def _cert(r: Rendered, secret: str, key: str = "tls.crt") -> x509.Certificate:
    return x509.load_pem_x509_certificate(r.secret_data(secret)[key].encode())


def test_generated_certificates_cover_what_the_brokers_dial():
    r = render(CASES["all-bundled"])
    ca = _cert(r, f"{FULLNAME}-backend-ca", "ca.crt")
    for secret, host, usage in (
            (f"{FULLNAME}-etcd-tls", f"{FULLNAME}-etcd-0.{FULLNAME}-etcd-headless.{SVC}",
             ExtendedKeyUsageOID.SERVER_AUTH),
            (f"{FULLNAME}-etcd-tls", f"{FULLNAME}-etcd.{SVC}", ExtendedKeyUsageOID.CLIENT_AUTH),  # peers
            (f"{FULLNAME}-minio-tls", f"{FULLNAME}-minio.{SVC}", ExtendedKeyUsageOID.SERVER_AUTH),
            (f"{FULLNAME}-etcd-client-tls", None, ExtendedKeyUsageOID.CLIENT_AUTH)):
        cert = _cert(r, secret)
        cert.verify_directly_issued_by(ca)
        assert r.secret_data(secret)["ca.crt"] == r.secret_data(f"{FULLNAME}-backend-ca")["ca.crt"]
        assert usage in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if host:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = names.get_values_for_type(x509.DNSName)
            assert any(n == host or (n.startswith("*.") and host.split(".", 1)[1] == n[2:]) for n in dns), dns
            assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


# ---- for real: the chart's certificates, password and Job against real servers


def _write(directory: pathlib.Path, r: Rendered, secret: str) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, value in r.secret_data(secret).items():
        (directory / key).write_text(value)
        out[key] = str(directory / key)
    return out


def _roundtrip(bootstrap: str, tag: str, n: int = 20) -> None:
    from confluent_kafka import Consumer, Producer

    from support.procs import wait_for

    topic = f"chart-{tag}-" + uuid.uuid4().hex[:8]
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, b"m%d" % i)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []

    def poll() -> bool:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
        return len(got) >= n
    try:
        wait_for(poll, timeout=30, message=f"{n} records back")
    finally:
        c.close()
    assert got == [b"m%d" % i for i in range(n)]


def _run_job_script(r: Rendered, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The auth Job's script, as the chart renders it into the ConfigMap, with the Job's env."""
    script = r.get("ConfigMap", f"{FULLNAME}-etcd-auth")["data"]["etcd-auth.py"]
    job = r.get("Job", f"{FULLNAME}-etcd-auth")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"][:1] == ["python"] and {e["name"] for e in job["env"]} >= {"ETCD_ENDPOINTS", "ETCD_USER"}
    return subprocess.run([sys.executable, "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60)


def test_chart_certificates_password_and_auth_job_work_with_a_real_etcd_and_s3_and_broker(tmp_path):
    from support.procs import BrokerProcess, wait_for

    r = render(CASES["all-bundled"])
    server = _write(tmp_path / "etcd-tls", r, f"{FULLNAME}-etcd-tls")
    client = _write(tmp_path / "etcd-client", r, f"{FULLNAME}-etcd-client-tls")
    minio = _write(tmp_path / "minio-tls", r, f"{FULLNAME}-minio-tls")
    password_file = tmp_path / "etcd-auth" / "password"
    password_file.parent.mkdir()
    password_file.write_text(r.secret_data(f"{FULLNAME}-etcd-auth")["password"])
    stack = LocalStack(tmp_path / "stack",
                       etcd_tls=TlsFiles(server["tls.crt"], server["tls.key"], server["ca.crt"],
                                         client["tls.crt"], client["tls.key"]),
                       s3_tls=TlsFiles(minio["tls.crt"], minio["tls.key"], minio["ca.crt"]))
    with stack:
        # Install order: the brokers start while etcd has no auth yet (the Job is a
        # post-install hook, which `helm install --wait` runs once they are ready).
        env = _env(r)
        paths = {"/etc/kafscale/etcd-tls/": tmp_path / "etcd-client", "/etc/kafscale/s3-ca/": tmp_path / "minio-tls",
                 "/etc/kafscale/etcd-auth/": tmp_path / "etcd-auth"}

        def local(path: str) -> str:  # where the chart mounts a file -> where it was written here
            for prefix, directory in paths.items():
                if path.startswith(prefix):
                    return str(directory / path.removeprefix(prefix))
            raise AssertionError(path)
        options = {name: local(env[f"KAFSCALE_{name.upper()}"]) for name in (
            "etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_password_file", "s3_ca_file")}
        options["etcd_user"] = env["KAFSCALE_ETCD_USER"]
        broker = BrokerProcess(stack, tmp_path / "broker", options=options).start(timeout=40)
        try:
            _roundtrip(broker.bootstrap, "before")
            job_env = {"ETCD_ENDPOINTS": stack.etcd_endpoints, "ETCD_USER": "root",
                       "ETCD_PASSWORD_FILE": str(password_file), "ETCD_CA_FILE": client["ca.crt"],
                       "ETCD_CERT_FILE": client["tls.crt"], "ETCD_KEY_FILE": client["tls.key"], "ETCD_WAIT_S": "20"}
            first = _run_job_script(r, job_env)
            assert first.returncode == 0 and "auth turned on" in first.stdout, first.stderr
            again = _run_job_script(r, job_env)  # post-upgrade: idempotent
            assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
            wrong = tmp_path / "wrong"
            wrong.write_text("not-the-password")
            refused = _run_job_script(r, {**job_env, "ETCD_PASSWORD_FILE": str(wrong)})
            assert refused.returncode == 1 and "does not authenticate" in refused.stderr
            # With auth on, the broker authenticates with the chart's password and carries on.
            _roundtrip(broker.bootstrap, "after")
            wait_for(lambda: "authenticating as 'root'" in broker.log_text(), timeout=10,
                     message="the broker authenticating once etcd asks")
            assert broker.is_ready() and "Traceback" not in broker.log_text()
        finally:
            broker.terminate()

