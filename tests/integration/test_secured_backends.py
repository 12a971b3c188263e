"""A real broker against a secured etcd and S3 (issue #14 item 4, docs/security.md
"etcd and S3"): etcd over TLS with client certificates required, etcd with auth on and a
user and password (also after an etcd restart, which voids the token), and SeaweedFS's
S3 over https with a certificate from a test CA, produced to and consumed from with
confluent-kafka. A wrong CA, a missing client certificate or a wrong password keep the
broker unready, saying why in one line on /readyz and in its log, without tracebacks.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from support.certs import Pki
from support.procs import BrokerProcess, wait_for

from kafscale.localstack import LocalStack, TlsFiles, find_binary

pytestmark = pytest.mark.timeout(120)

ROOT_PASSWORD = "root-pw-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = Pki(d / "ca")
    return {"ca": ca, "server": ca.issue("server", "localhost", server=True),
            "broker": ca.issue("broker", "kafscale-broker"),
            "other": Pki(d / "other", name="Someone Else's CA")}


@pytest.fixture(scope="module")
def secured(tmp_path_factory, pki):
    """etcd over TLS requiring client certificates, and S3 over https."""
    ca, server, broker = pki["ca"], pki["server"], pki["broker"]
    stack = LocalStack(tmp_path_factory.mktemp("secured"),
                       etcd_tls=TlsFiles(str(server.cert), str(server.key), str(ca.ca_file),
                                         str(broker.cert), str(broker.key)),
                       s3_tls=TlsFiles(str(server.cert), str(server.key), str(ca.ca_file)))
    with stack:
        yield stack


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory, pki):
    """etcd over TLS (server certificate only) with auth on: user root, ROOT_PASSWORD."""
    ca, server = pki["ca"], pki["server"]
    stack = LocalStack(tmp_path_factory.mktemp("auth-etcd"),
                       etcd_tls=TlsFiles(str(server.cert), str(server.key), str(ca.ca_file)))
    stack.start_etcd()
    try:
        ctl = [find_binary("etcdctl"), "--endpoints", stack.etcd_endpoints, "--cacert", str(ca.ca_file)]
        for args in (["user", "add", "root", "--new-user-password", ROOT_PASSWORD], ["auth", "enable"]):
            subprocess.run(ctl + args, check=True, capture_output=True, timeout=30)
        yield stack
    finally:
        stack.stop()


def _broker(stack: LocalStack, tmp_path, env: dict | None = None, **options) -> BrokerProcess:
    return BrokerProcess(stack, tmp_path / "broker", env=env, options=options)


def _tls_options(pki, *, client_cert: bool = True, ca: str = "ca") -> dict:
    ca_file = pki[ca].ca_file
    out = {"etcd_ca_file": ca_file, "s3_ca_file": pki["ca"].ca_file}
    if client_cert:
        out.update(etcd_cert_file=pki["broker"].cert, etcd_key_file=pki["broker"].key)
    return out


def _roundtrip(bootstrap: str, n: int = 50) -> list[bytes]:
    from confluent_kafka import Consumer, Producer

    topic = "sec-" + uuid.uuid4().hex[:8]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors: list = []
    for i in range(n):
        p.produce(topic, b"v%d" % i, on_delivery=lambda err, _msg: err and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[bytes] = []
    try:
        wait_for(lambda: _poll_into(c, got) >= n, timeout=30, message=f"{n} records back")
    finally:
        c.close()
    return got


def _poll_into(consumer, got: list) -> int:
    msg = consumer.poll(0.5)
    if msg is not None and msg.error() is None:
        got.append(msg.value())
    return len(got)


def _s3_bytes_put(broker: BrokerProcess) -> float:
    with urllib.request.urlopen(broker.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('kafscale_s3_bytes_total{op="put"'))


def test_mtls_etcd_and_https_s3(secured, pki, tmp_path):
    broker = _broker(secured, tmp_path, **_tls_options(pki), flush_interval_ms=10).start(timeout=30)
    try:
        assert _roundtrip(broker.bootstrap) == [b"v%d" % i for i in range(50)]
        wait_for(lambda: _s3_bytes_put(broker) > 0, timeout=10, message="segments written to S3 over https")
    finally:
        broker.terminate()


def _etcdctl(stack: LocalStack, pki, *args: str, password: str = ROOT_PASSWORD, stdin: str = "") -> None:
    subprocess.run([find_binary("etcdctl"), "--endpoints", stack.etcd_endpoints, "--cacert", str(pki["ca"].ca_file),
                    "--user", f"root:{password}", *args], check=True, capture_output=True, timeout=30,
                   input=stdin + "\n" if stdin else None, text=True)


def test_etcd_user_and_password_survives_an_etcd_restart_and_a_rotation(secured, auth_etcd, pki, tmp_path):
    """The token dies with the etcd member (simple tokens live in its memory): the broker
    authenticates again, its lease and watches carry on, produce works again. A password
    rotated as docs/security.md says (the file first, then etcd, which then refuses every
    older token) is picked up from the file without a restart."""
    pw = tmp_path / "etcd-password"
    pw.write_text(ROOT_PASSWORD + "\n")
    broker = _broker(secured, tmp_path, **_tls_options(pki, client_cert=False),
                     etcd_endpoints=auth_etcd.etcd_endpoints, etcd_user="root",
                     etcd_password_file=str(pw)).start(timeout=30)
    rotated = ROOT_PASSWORD + "-rotated"
    try:
        assert len(_roundtrip(broker.bootstrap)) == 50
        auth_etcd.stop_etcd()
        auth_etcd.start_etcd()
        wait_for(broker.is_ready, timeout=20, message="ready again after the etcd restart")
        assert len(_roundtrip(broker.bootstrap)) == 50
        before_rotation = len(broker.log_text())
        pw.write_text(rotated + "\n")
        _etcdctl(auth_etcd, pki, "user", "passwd", "root", "--interactive=false", password=ROOT_PASSWORD,
                 stdin=rotated)
        assert len(_roundtrip(broker.bootstrap)) == 50
        assert broker.is_ready()
        assert broker.terminate() == 0
        assert "Traceback" not in broker.log_text(), broker.log_tail()
        log = broker.log_text()
        assert "authentication" not in log, broker.log_tail()  # no refusal on the way
        renewal = "etcd asks for a new token (UNAUTHENTICATED: etcdserver: invalid auth token): authenticating as"
        assert renewal in log[:before_rotation]  # after the restart (tokens died with etcd)
        assert renewal in log[before_rotation:]  # after the rotation (etcd voids the user's tokens)
    finally:
        broker.cleanup()
        if pw.read_text().strip() == rotated:  # the module's etcd keeps ROOT_PASSWORD for the other tests
            _etcdctl(auth_etcd, pki, "user", "passwd", "root", "--interactive=false", password=rotated,
                     stdin=ROOT_PASSWORD)


def test_no_static_s3_keys_take_credentials_from_the_environment(secured, pki, tmp_path):
    """Without --s3-access-key/--s3-secret-key the broker asks minio's provider chain, as
    workload identity needs; here its first link, the AWS_* variables."""
    env = {"AWS_ACCESS_KEY_ID": secured.access_key, "AWS_SECRET_ACCESS_KEY": secured.secret_key}
    broker = BrokerProcess(secured, tmp_path / "broker", env=env,
                           options={**_tls_options(pki), "s3_access_key": "", "s3_secret_key": ""}).start(timeout=30)
    try:
        assert len(_roundtrip(broker.bootstrap, n=10)) == 10
    finally:
        broker.terminate()


def _readyz(broker: BrokerProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(broker.readyz_url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


CASES = {
    # etcd's certificate is not signed by the CA the broker trusts
    "etcd-wrong-ca": (dict(ca="other"), "etcd: UNAVAILABLE", "etcd"),
    # etcd requires a client certificate the broker does not present
    "etcd-no-client-cert": (dict(client_cert=False), "etcd: UNAVAILABLE", "etcd"),
    # the right user with a wrong password
    "etcd-wrong-password": (dict(client_cert=False), "authentication failed, invalid user ID or password", "auth"),
    # S3's certificate is not signed by the CA the broker trusts
    "s3-wrong-ca": ({}, "CERTIFICATE_VERIFY_FAILED", "s3"),
    # no static keys and nothing in the credential chain (its IAM link pointed at a closed
    # port, so that the test does not depend on where it runs)
    "s3-no-credentials": ({}, "no S3 keys given and none from the environment", "nokeys"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_broker_stays_unready_and_says_why(case, secured, auth_etcd, pki, tmp_path):
    tls, reason, kind = CASES[case]
    options = _tls_options(pki, **tls)
    if kind == "auth":
        options.update(etcd_endpoints=auth_etcd.etcd_endpoints, etcd_user="root", etcd_password="wrong")
    if kind == "s3":
        options["s3_ca_file"] = pki["other"].ca_file
    env = None
    if kind == "nokeys":
        options.update(s3_access_key="", s3_secret_key="")
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/credentials"}
    broker = _broker(secured, tmp_path, env=env, **options).start(wait_ready=False)
    try:
        status, body = wait_for(lambda: (r := _readyz(broker)) and reason in r[1] and r, timeout=20,
                                message=f"/readyz naming {reason!r}")
        assert status == 503 and "\n" not in body.strip(), body
        wait_for(lambda: reason in broker.log_text(), timeout=15, message="the reason in the log")
        assert broker.running and not broker.is_ready()
        log = broker.log_text()
        assert "Traceback" not in log, log
        waiting = [line for line in log.splitlines() if "waiting for etcd and S3" in line]
        assert waiting and all(reason in line for line in waiting[-1:]), waiting
    finally:
        broker.kill()
