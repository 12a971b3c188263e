"""SASL against real brokers over SASL_PLAINTEXT and SASL_SSL: confluent-kafka, kafka-python and aiokafka
with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN (produce, consume in a group, an admin call),
users created through AlterUserScramCredentials and then logging in, wrong passwords and
unknown users refused with nothing written and the broker up, who may manage users,
KIP-368 re-authentication with confluent-kafka, ``kafscale users``, and raw SASL frames
(malformed, oversized, out of order) that never authenticate a connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from kafscale.protocol import headers, messages
from support.certs import Pki
from support.procs import free_port
from support.roundtrip import (aiokafka_roundtrip, confluent_roundtrip, high_watermarks, kafka_python_roundtrip,
                               values)
from support.rawclient import RawClient

pytestmark = pytest.mark.timeout(240)

ADMIN, ADMIN_PASSWORD = "admin", "admin-secret-\u00e9"
MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
N = 100
SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM = 58, 34, 33


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


PROTOCOLS = ["SASL_PLAINTEXT", "SASL_SSL"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = Pki(tmp_path_factory.mktemp("pki") / "ca")
    return {"ca": ca, "server": ca.issue("server", "kafscale-test-broker", server=True)}


def _options(pki=None, **extra) -> dict:
    listeners = f"SASL_PLAINTEXT://127.0.0.1:{free_port()},PLAINTEXT://127.0.0.1:{free_port()}"
    tls = {}
    if pki is not None:  # (a server certificate; no client certificates asked for)
        listeners += f",SASL_SSL://127.0.0.1:{free_port()}"
        tls = {"tls_cert_file": pki["server"].cert, "tls_key_file": pki["server"].key}
    return {"listeners": listeners, "sasl_admin_user": ADMIN, "sasl_admin_password": ADMIN_PASSWORD,
            "super_users": f"User:{ADMIN}", "connection_failed_authentication_delay_ms": "20", **tls, **extra}


@pytest.fixture
def sasl_broker(broker_factory, pki):
    """SASL_PLAINTEXT, SASL_SSL and PLAINTEXT listeners; the admin user from the options."""
    broker = broker_factory(options=_options(pki))
    broker.pki = pki
    return broker


def _conf(broker, mechanism: str, user: str, password: str, protocol: str = "SASL_PLAINTEXT") -> dict:
    conf = {"bootstrap.servers": broker.listener_bootstrap(protocol), "security.protocol": protocol,
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}
    if protocol == "SASL_SSL":
        conf["ssl.ca.location"] = str(broker.pki["ca"].ca_file)
    return conf


def _create_user(broker, name: str, password: str, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512")) -> None:
    """Through confluent-kafka's AdminClient, as the admin (AlterUserScramCredentials)."""
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    admin = AdminClient(_conf(broker, "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD))
    ups = [UserScramCredentialUpsertion(name, ScramCredentialInfo(getattr(ScramMechanism, m.replace("-", "_")), 4096),
                                        password.encode()) for m in mechanisms]
    for fut in admin.alter_user_scram_credentials(ups).values():
        fut.result(30)


def _metric(broker, name: str, mechanism: str) -> float:
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{mechanism="{mechanism}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- the three clients, each mechanism ------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka(sasl_broker, mechanism, protocol):
    """alice, created through confluent-kafka's AlterUserScramCredentials, logs in."""
    _create_user(sasl_broker, "alice", "alice-pw")
    conf = _conf(sasl_broker, mechanism, "alice", "alice-pw", protocol)
    bootstrap = conf.pop("bootstrap.servers")
    assert sorted(confluent_roundtrip(bootstrap, _topic("cf"), conf, n=N)) == sorted(values(N))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python(sasl_broker, mechanism, protocol):
    from kafka.admin import KafkaAdminClient, ScramMechanism, UserScramCredentialUpsertion

    bootstrap = sasl_broker.listener_bootstrap(protocol)
    auth = {"security_protocol": protocol, "sasl_mechanism": mechanism}
    if protocol == "SASL_SSL":
        auth["ssl_cafile"] = str(sasl_broker.pki["ca"].ca_file)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, sasl_plain_username=ADMIN,
                             sasl_plain_password=ADMIN_PASSWORD, **auth)
    # kafka-python's AlterUserScramCredentials: the admin creates bob (both mechanisms).
    result = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("bob", ScramMechanism.SCRAM_SHA_256, "bob-pw"),
        UserScramCredentialUpsertion("bob", ScramMechanism.SCRAM_SHA_512, "bob-pw", iterations=8192)])
    assert result == {"bob": None}
    described = admin.describe_user_scram_credentials(["bob", "nobody"])
    assert described["bob"] == {"error": None, "credential_infos": [
        {"mechanism": ScramMechanism.SCRAM_SHA_256, "iterations": 4096},
        {"mechanism": ScramMechanism.SCRAM_SHA_512, "iterations": 8192}]}
    assert described["nobody"]["error"] == "Attempt to describe a user credential that does not exist"
    admin.close()
    got = kafka_python_roundtrip(bootstrap, _topic("kp"), n=N, sasl_plain_username="bob",
                                 sasl_plain_password="bob-pw", **auth)
    assert sorted(got) == sorted(values(N))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka(sasl_broker, mechanism, protocol):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    _create_user(sasl_broker, "carol", "carol-pw")
    bootstrap = sasl_broker.listener_bootstrap(protocol)
    auth = {"security_protocol": protocol, "sasl_mechanism": mechanism,
            "sasl_plain_username": "carol", "sasl_plain_password": "carol-pw"}
    if protocol == "SASL_SSL":  # (a factory: one context per client)
        auth["ssl_context"] = lambda: create_ssl_context(cafile=str(sasl_broker.pki["ca"].ca_file))
    topic = _topic("aio")

    async def main():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                    **{k: v() if k == "ssl_context" else v for k, v in auth.items()})
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 2, 1)])
        finally:
            await admin.close()
        return await aiokafka_roundtrip(bootstrap, topic, n=N, **auth)

    assert sorted(asyncio.run(main())) == sorted(values(N))


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_and_unknown_user_are_refused_and_nothing_is_written(sasl_broker, mechanism):
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    _create_user(sasl_broker, "dave", "dave-pw")
    before = _metric(sasl_broker, "kafscale_sasl_authentication_failures_total", mechanism)
    topic = _topic("refused")
    for user, password in (("dave", "not-dave-pw"), ("nobody", "dave-pw")):
        p = Producer({**_conf(sasl_broker, mechanism, user, password), "message.timeout.ms": 4000})
        reports = []
        p.produce(topic, b"must not be written", on_delivery=lambda err, msg: reports.append(err))
        p.flush(15)
        assert len(reports) == 1 and reports[0] is not None  # not delivered
        admin = AdminClient({**_conf(sasl_broker, mechanism, user, password), "socket.timeout.ms": 3000})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=3)
    # Nothing written, not even the topic.
    assert high_watermarks(sasl_broker.listener_bootstrap("PLAINTEXT"), topic) is None
    assert sasl_broker.running
    assert _metric(sasl_broker, "kafscale_sasl_authentication_failures_total", mechanism) >= before + 2
    log = sasl_broker.log_path.read_text()
    assert "SASL authentication failed" in log and "not-dave-pw" not in log and "dave-pw" not in log


def _raw_handshake(client: RawClient, mechanism: str) -> messages.SaslHandshakeResponse:
    return client.request(17, 1, messages.SaslHandshakeRequest(mechanism=mechanism))


def _raw_authenticate(client: RawClient, token: bytes, version: int = 2) -> messages.SaslAuthenticateResponse:
    return client.request(36, version, messages.SaslAuthenticateRequest(auth_bytes=token))


def test_failures_answer_generically_then_close(sasl_broker):
    bootstrap = sasl_broker.listener_bootstrap("SASL_PLAINTEXT")
    with RawClient(bootstrap, timeout=10) as c:
        r = _raw_handshake(c, "GSSAPI")
        assert r.error_code == UNSUPPORTED_SASL_MECHANISM and r.mechanisms == MECHANISMS
        assert c.is_closed()
    with RawClient(bootstrap, timeout=10) as c:
        r = _raw_authenticate(c, b"\0admin\0" + ADMIN_PASSWORD.encode())  # before the handshake
        assert r.error_code == ILLEGAL_SASL_STATE and c.is_closed()
    with RawClient(bootstrap, timeout=10) as c:
        assert _raw_handshake(c, "PLAIN").error_code == 0
        r = _raw_authenticate(c, b"\0admin\0wrong")
        assert r.error_code == SASL_AUTHENTICATION_FAILED
        assert r.error_message == "Authentication failed: Invalid username or password"
        assert c.is_closed()
    with RawClient(bootstrap, timeout=10) as c:  # before authenticating: only the SASL APIs and ApiVersions
        c.send_raw(headers.encode_request(3, 12, 1, "raw", messages.MetadataRequest(topics=None)))
        assert c.recv_frame() is None
    with RawClient(bootstrap, timeout=10) as c:  # the right password works on a raw connection too
        assert _raw_handshake(c, "PLAIN").error_code == 0
        r = _raw_authenticate(c, b"\0admin\0" + ADMIN_PASSWORD.encode())
        assert r.error_code == 0 and r.session_lifetime_ms == 0
        assert c.request(3, 12, messages.MetadataRequest(topics=None)).brokers
        # PLAINTEXT listener: SaslHandshake is ILLEGAL_SASL_STATE and the connection lives.
    with RawClient(sasl_broker.listener_bootstrap("PLAINTEXT"), timeout=10) as c:
        assert _raw_handshake(c, "PLAIN").error_code == ILLEGAL_SASL_STATE
        assert c.request(3, 12, messages.MetadataRequest(topics=None)).brokers


def test_only_super_users_manage_users_once_sasl_is_on(sasl_broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)

    _create_user(sasl_broker, "erin", "erin-pw")
    for conf in (_conf(sasl_broker, "SCRAM-SHA-256", "erin", "erin-pw"),
                 {"bootstrap.servers": sasl_broker.listener_bootstrap("PLAINTEXT")}):
        admin = AdminClient(conf)
        up = UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"mine")
        with pytest.raises(KafkaException, match="CLUSTER_AUTHORIZATION_FAILED|[Aa]uthoriz"):
            admin.alter_user_scram_credentials([up])["erin"].result(30)
        with pytest.raises(KafkaException, match="CLUSTER_AUTHORIZATION_FAILED|[Aa]uthoriz"):
            # (named users: librdkafka 2.16 aborts on the top-level error a describe-all gets)
            admin.describe_user_scram_credentials(["erin"])["erin"].result(30)
    admin = AdminClient(_conf(sasl_broker, "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD))
    users = admin.describe_user_scram_credentials().result(30)
    assert {"admin", "erin"} <= set(users)
    assert sorted(i.mechanism for i in users["admin"].scram_credential_infos) == [ScramMechanism.SCRAM_SHA_256,
                                                                                   ScramMechanism.SCRAM_SHA_512]
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_256),
                                        UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)
                                        ])["erin"].result(30)
    with pytest.raises(KafkaException, match="RESOURCE_NOT_FOUND"):
        admin.describe_user_scram_credentials(["erin"])["erin"].result(30)
    up = UserScramCredentialUpsertion("frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw")
    with pytest.raises(KafkaException, match="UNACCEPTABLE_CREDENTIAL"):
        admin.alter_user_scram_credentials([up])["frank"].result(30)


def _plain_login(bootstrap: str, user: str, password: str) -> int:
    """A PLAIN login on a raw connection: SaslAuthenticate's error code."""
    with RawClient(bootstrap, timeout=10) as c:
        assert _raw_handshake(c, "PLAIN").error_code == 0
        return _raw_authenticate(c, f"\0{user}\0{password}".encode()).error_code


def test_users_changed_through_one_broker_apply_on_another_at_once(broker_factory):
    b0 = broker_factory(options=_options(connection_failed_authentication_delay_ms="0"))
    b1 = broker_factory(options=_options(connection_failed_authentication_delay_ms="0"))
    b0.pki = None
    on_b1 = b1.listener_bootstrap("SASL_PLAINTEXT")
    assert _plain_login(on_b1, "henry", "henry-pw") == SASL_AUTHENTICATION_FAILED

    def within_a_second(expected: int) -> float:
        t0 = time.monotonic()
        while _plain_login(on_b1, "henry", "henry-pw") != expected:
            assert time.monotonic() - t0 < 1.0, "broker 1 did not see the change within a second"
            time.sleep(0.02)
        return time.monotonic() - t0

    _create_user(b0, "henry", "henry-pw")
    within_a_second(0)
    from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion

    admin = AdminClient(_conf(b0, "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD))
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("henry", ScramMechanism.SCRAM_SHA_256),
                                        UserScramCredentialDeletion("henry", ScramMechanism.SCRAM_SHA_512)
                                        ])["henry"].result(30)
    within_a_second(SASL_AUTHENTICATION_FAILED)


# -- re-authentication (KIP-368) -----------------------------------------------------------------


def test_confluent_kafka_reauthenticates_when_sessions_are_short(broker_factory):
    from confluent_kafka import Producer

    broker = broker_factory(options=_options(connections_max_reauth_ms="1500"))
    broker.pki = None
    conf = _conf(broker, "SCRAM-SHA-256", ADMIN, ADMIN_PASSWORD)
    before = _metric(broker, "kafscale_sasl_authentication_successes_total", "SCRAM-SHA-256")
    topic = _topic("reauth")
    p = Producer({**conf, "acks": "all"})
    t_end = time.time() + 6
    sent = 0
    while time.time() < t_end:
        p.produce(topic, f"v{sent}".encode())
        sent += 1
        p.flush(10)
        time.sleep(0.2)
    assert p.flush(30) == 0
    assert sum(high_watermarks(broker.listener_bootstrap("PLAINTEXT"), topic) or [0]) == sent
    # One connection kept re-authenticating (bootstrap and broker connection: a few logins
    # at start, then one per 1.5 s session at least).
    assert _metric(broker, "kafscale_sasl_authentication_successes_total", "SCRAM-SHA-256") >= before + 4
    # ... on the same connections: none was closed for an expired session.
    assert "SASL session expired" not in broker.log_path.read_text()
    # A client that does not re-authenticate is closed at its first request after expiry.
    with RawClient(broker.listener_bootstrap("SASL_PLAINTEXT"), timeout=10) as c:
        assert _raw_handshake(c, "PLAIN").error_code == 0
        r = _raw_authenticate(c, b"\0admin\0" + ADMIN_PASSWORD.encode(), version=1)
        assert r.error_code == 0 and r.session_lifetime_ms == 1500
        assert c.request(3, 12, messages.MetadataRequest(topics=None)).brokers
        time.sleep(1.7)
        c.send_raw(headers.encode_request(3, 12, 99, "raw", messages.MetadataRequest(topics=None)))
        assert c.recv_frame() is None


# -- the admin CLI ----------------------------------------------------------------------------------


def test_kafscale_users_cli(sasl_broker, tmp_path):
    env = {**os.environ, "KAFSCALE_BOOTSTRAP_SERVER": sasl_broker.listener_bootstrap("SASL_PLAINTEXT"),
           "KAFSCALE_SASL_MECHANISM": "SCRAM-SHA-512", "KAFSCALE_SASL_USERNAME": ADMIN,
           "KAFSCALE_SASL_PASSWORD": ADMIN_PASSWORD}

    def cli(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "kafscale", *args], input=stdin, env=env, capture_output=True,
                              text=True, timeout=60)

    r = cli("users", "create", "grace", "--iterations", "4096", stdin="grace-pw\n")
    assert r.returncode == 0, r.stderr
    r = cli("users", "list", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert {"user": "grace", "mechanisms": [{"mechanism": "SCRAM-SHA-256", "iterations": 4096},
                                           {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]} in json.loads(r.stdout)
    secret = tmp_path / "pw"
    secret.write_text("grace-pw\n")
    # grace logs in with the CLI (PLAIN against her SCRAM credential) but may not manage users.
    as_grace = ["--sasl-mechanism", "PLAIN", "--sasl-username", "grace", "--sasl-password-file", str(secret)]
    r = cli("topics", "list", *as_grace)
    assert r.returncode == 0, r.stderr
    r = cli("users", "list", *as_grace)
    assert r.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr
    r = cli("topics", "list", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "grace")
    assert r.returncode == 1 and "SASL_AUTHENTICATION_FAILED" in r.stderr  # (the admin's password from env)
    r = cli("users", "delete", "grace")
    assert r.returncode == 0, r.stderr
    r = cli("topics", "list", *as_grace)
    assert r.returncode == 1 and "SASL_AUTHENTICATION_FAILED" in r.stderr


# -- fuzz ---------------------------------------------------------------------------------------------


def test_fuzzed_sasl_frames_never_authenticate_nor_crash(sasl_broker):
    """Random, malformed, oversized and out-of-order SaslHandshake / SaslAuthenticate
    frames on raw connections: each is answered with an error, or a step of the exchange,
    or the connection is closed; a Metadata request after them is never served; the broker
    keeps serving a real client."""
    rng = random.Random(14)
    bootstrap = sasl_broker.listener_bootstrap("SASL_PLAINTEXT")
    tokens = [b"", b"\0admin\0", b"\0admin\0wrong", b"admin\0admin\0wrong", b"n,,n=admin,r=abc",
              b"c=biws,r=abc,p=AAAA", b"\xff" * 50, b"x" * 70_000, b"n,,n=admin,r=abc,tokenauth=true",
              b"\0" * 3, "\0\u00e9\0\u00e9".encode()]
    for round_ in range(60):
        with RawClient(bootstrap, timeout=10) as c:
            closed = False
            for _ in range(rng.randint(1, 5)):
                kind = rng.random()
                if kind < 0.3:
                    frame = headers.encode_request(17, 1, 1, "fuzz", messages.SaslHandshakeRequest(
                        mechanism=rng.choice(MECHANISMS + ["GSSAPI", "", "x" * 1000])))
                elif kind < 0.7:
                    frame = headers.encode_request(36, rng.randint(0, 2), 1, "fuzz", messages.SaslAuthenticateRequest(
                        auth_bytes=rng.choice(tokens) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 300))))
                else:  # a SASL header over random bytes, or a cut or lying frame
                    body = struct.pack(">hhi", rng.choice([17, 36]), rng.randint(-1, 5), 1) + rng.randbytes(
                        rng.randint(0, 64))
                    size = len(body) if rng.random() < 0.8 else 0x7FFFFFFF  # (past the broker's limit: closed)
                    frame = struct.pack(">i", size) + body
                try:
                    c.send_raw(frame)
                    reply = c.recv_frame()
                except (ConnectionError, OSError):
                    reply = None
                if reply is None:
                    closed = True
                    break
            if not closed:
                try:
                    c.send_raw(headers.encode_request(3, 12, 7, "fuzz", messages.MetadataRequest(topics=None)))
                    reply = c.recv_frame()
                except (ConnectionError, OSError):
                    reply = None
                # Never authenticated: the Metadata request closes the connection.
                assert reply is None, f"round {round_}: a Metadata request was answered"
    assert sasl_broker.running
    with RawClient(bootstrap, timeout=10) as c:
        assert _raw_handshake(c, "PLAIN").error_code == 0
        assert _raw_authenticate(c, b"\0admin\0" + ADMIN_PASSWORD.encode()).error_code == 0
    _create_user(sasl_broker, "after-fuzz", "pw-after")  # a real client is still served
