"""TLS listeners against real brokers: confluent-kafka, kafka-python and aiokafka over SSL
with client certificates (produce, consume in a group, an admin call); clients without a
certificate, with an expired one or one from a CA the broker does not trust, and plaintext
clients on the TLS port, are refused while the broker stays up and nothing is written; a
stalled handshake holds up no one; each listener advertises its own address; certificates
are reloaded when their files change.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import time
import uuid

import pytest
from cryptography import x509

from support.certs import Pki
from support.procs import wait_for
from support.roundtrip import (aiokafka_roundtrip, confluent_roundtrip, high_watermarks, kafka_python_roundtrip,
                               values)

pytestmark = pytest.mark.timeout(240)

N = 200


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = Pki(d / "ca")
    out = {
        "ca": ca,
        "server": ca.issue("server", "kafscale-test-broker", server=True),
        "alice": ca.issue("alice", "alice", org="acme"),
        "expired": ca.issue("expired", "old", expired=True),
        "untrusted": Pki(d / "other", name="Someone Else's CA").issue("mallory", "mallory"),
    }
    return out


def _tls_options(pki, listeners: str, **extra) -> dict:
    return {"listeners": listeners, "tls_cert_file": pki["server"].cert, "tls_key_file": pki["server"].key,
            "tls_ca_file": pki["ca"].ca_file, **extra}


@pytest.fixture
def mtls_broker(broker_factory, pki):
    """SSL (client certificates required) and PLAINTEXT listeners."""
    return broker_factory(options=_tls_options(pki, "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"))


def _confluent_ssl(pki, client: str | None = "alice") -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki["ca"].ca_file)}
    if client:
        conf.update({"ssl.certificate.location": str(pki[client].cert), "ssl.key.location": str(pki[client].key)})
    return conf


# -- real clients over SSL with client certificates -----------------------------------------

def test_confluent_kafka_over_mtls(mtls_broker, pki):
    from confluent_kafka.admin import AdminClient

    bootstrap = mtls_broker.listener_bootstrap("SSL")
    got = confluent_roundtrip(bootstrap, _topic("tls-ck"), _confluent_ssl(pki), n=N)
    assert sorted(got) == sorted(values(N))
    admin = AdminClient({"bootstrap.servers": bootstrap, **_confluent_ssl(pki)})
    cluster = admin.describe_cluster().result(timeout=30)
    assert [(n.host, n.port) for n in cluster.nodes] == [("127.0.0.1", mtls_broker.listener_port("SSL"))]


def test_kafka_python_over_mtls(mtls_broker, pki):
    got = kafka_python_roundtrip(mtls_broker.listener_bootstrap("SSL"), _topic("tls-kp"), n=N,
                                 security_protocol="SSL", ssl_cafile=str(pki["ca"].ca_file),
                                 ssl_certfile=str(pki["alice"].cert), ssl_keyfile=str(pki["alice"].key))
    assert sorted(got) == sorted(values(N))


def test_aiokafka_over_mtls(mtls_broker, pki):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.helpers import create_ssl_context

    bootstrap = mtls_broker.listener_bootstrap("SSL")

    def ctx():
        return create_ssl_context(cafile=str(pki["ca"].ca_file), certfile=str(pki["alice"].cert),
                                  keyfile=str(pki["alice"].key))

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=ctx())
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            assert [b["port"] for b in cluster["brokers"]] == [mtls_broker.listener_port("SSL")]
        finally:
            await admin.close()
        return await aiokafka_roundtrip(bootstrap, _topic("tls-aio"), n=N, security_protocol="SSL", ssl_context=ctx)

    assert sorted(asyncio.run(run())) == sorted(values(N))


# -- refused --------------------------------------------------------------------------------

API_VERSIONS_V0 = struct.pack(">ihhi", 0, 18, 0, 7) + struct.pack(">h", 3) + b"raw"
API_VERSIONS_V0 = struct.pack(">i", len(API_VERSIONS_V0) - 4) + API_VERSIONS_V0[4:]


def _tls_api_versions(port: int, pki, client: str | None) -> bytes:
    """An ApiVersions request over TLS: the answer's bytes, or raise (refused)."""
    ctx = ssl.create_default_context(cafile=str(pki["ca"].ca_file))
    if client:
        ctx.load_cert_chain(str(pki[client].cert), str(pki[client].key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(API_VERSIONS_V0)
            data = s.recv(4)  # (TLS 1.3: a refused certificate shows on the first read)
            if not data:
                raise ConnectionError("closed")
            return data


@pytest.mark.parametrize("client", [None, "untrusted", "expired"])
def test_client_without_a_valid_certificate_is_refused(mtls_broker, pki, client):
    from confluent_kafka import Producer

    port = mtls_broker.listener_port("SSL")
    assert _tls_api_versions(port, pki, "alice")  # a valid certificate is answered
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _tls_api_versions(port, pki, client)

    topic = _topic("refused")
    conf = _confluent_ssl(pki, client=None)
    if client:
        conf.update({"ssl.certificate.location": str(pki[client].cert), "ssl.key.location": str(pki[client].key)})
    errors = []
    p = Producer({"bootstrap.servers": mtls_broker.listener_bootstrap("SSL"), "message.timeout.ms": 4000,
                  "socket.timeout.ms": 3000, **conf})
    p.produce(topic, b"must not land", on_delivery=lambda err, _m: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None  # not delivered
    assert mtls_broker.running and mtls_broker.is_healthy()
    assert high_watermarks(mtls_broker.bootstrap, topic) is None  # nothing written, not even the topic
    assert "TLS handshake failed" in mtls_broker.log_text()


def test_plaintext_client_on_the_tls_port_is_closed(mtls_broker, pki):
    from confluent_kafka.admin import AdminClient

    port = mtls_broker.listener_port("SSL")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(API_VERSIONS_V0)
        try:
            while s.recv(1024):  # a TLS alert at most, then the close (a timeout fails the test)
                pass
        except ConnectionResetError:
            pass
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 2000})
    with pytest.raises(Exception):
        admin.list_topics(timeout=3)
    assert mtls_broker.running and mtls_broker.is_healthy()
    assert _tls_api_versions(port, pki, "alice")  # the TLS listener still serves


def test_stalled_handshakes_hold_up_no_one(mtls_broker, pki):
    """Connections that never start their handshake are each closed after the handshake
    timeout; meanwhile other clients are served at once."""
    port = mtls_broker.listener_port("SSL")
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(20)]
    try:
        started = time.monotonic()
        assert _tls_api_versions(port, pki, "alice")
        assert time.monotonic() - started < 3
        for s in stalled:  # closed by the broker after its handshake timeout (10 s)
            assert s.recv(1) == b""
        assert time.monotonic() - started < 15
    finally:
        for s in stalled:
            s.close()
    assert "TLS handshake not done" in mtls_broker.log_text()


# -- advertised addresses -------------------------------------------------------------------

def test_each_listener_advertises_its_own_address(broker_factory, pki):
    """Two brokers, each with PLAINTEXT and SSL listeners (SSL advertised as localhost):
    Metadata, DescribeCluster and FindCoordinator over one listener name every broker's
    address on that listener."""
    from confluent_kafka.admin import AdminClient

    brokers = [broker_factory(options=_tls_options(pki, "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
                                                   advertised_listeners="SSL://localhost:0"))  # (port: the bound one)
               for _ in range(2)]
    plain = {(b.broker_id, "127.0.0.1", b.listener_port("PLAINTEXT")) for b in brokers}
    tls = {(b.broker_id, "localhost", b.listener_port("SSL")) for b in brokers}

    def nodes(conf):
        admin = AdminClient(conf)
        return wait_for(lambda: (lambda md: len(md.brokers) == 2 and
                                 {(b.id, b.host, b.port) for b in md.brokers.values()})(admin.list_topics(timeout=10)),
                        timeout=30, message="both brokers in Metadata")

    assert nodes({"bootstrap.servers": brokers[0].bootstrap}) == plain
    assert nodes({"bootstrap.servers": brokers[0].listener_bootstrap("SSL"), **_confluent_ssl(pki)}) == tls

    admin = AdminClient({"bootstrap.servers": brokers[1].listener_bootstrap("SSL"), **_confluent_ssl(pki)})
    described = admin.describe_cluster().result(timeout=30)  # DescribeCluster
    assert {(n.id, n.host, n.port) for n in described.nodes} == tls
    group = _topic("grp")
    coordinator = admin.describe_consumer_groups([group])[group].result(timeout=30).coordinator  # FindCoordinator
    assert (coordinator.id, coordinator.host, coordinator.port) in tls


# -- certificate rotation -------------------------------------------------------------------

def _server_serial(port: int, pki) -> int:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].ca_file))
    ctx.load_cert_chain(str(pki["alice"].cert), str(pki["alice"].key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number


def test_certificates_are_reloaded_when_their_files_change(broker_factory, pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(pki["server"].cert, cert)
    shutil.copy(pki["server"].key, key)
    b = broker_factory(options={"listeners": "SSL://127.0.0.1:0", "tls_cert_file": cert,
                                "tls_key_file": key, "tls_ca_file": pki["ca"].ca_file})
    port = b.listener_port("SSL")
    assert _server_serial(port, pki) == pki["server"].serial

    # A broken file keeps the old certificate in use, and is logged once.
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    time.sleep(5.5)
    for _ in range(3):
        assert _server_serial(port, pki) == pki["server"].serial
    assert b.log_text().count("do not load") == 1

    rotated = pki["ca"].issue("rotated", "kafscale-test-broker", server=True, directory=tmp_path / "new")
    shutil.copy(rotated.key, key)
    shutil.copy(rotated.cert, cert)
    wait_for(lambda: _server_serial(port, pki) == rotated.serial, timeout=15, interval=0.5,
             message="the rotated certificate in use")
    assert "TLS certificate files reloaded" in b.log_text()


# -- the principal of a client certificate is who the authorizer sees -----------------------

def test_mtls_principal_is_the_certificate_subject(broker_factory, pki):
    """With ACLs on and alice's subject as the only super user: alice (certificate
    CN=alice,O=acme, principal User:O=acme,CN=alice) creates and writes; bob's valid
    certificate from the same CA, and a client with none (requested: ANONYMOUS), are refused."""
    from confluent_kafka import KafkaError, Producer

    bob = pki["ca"].issue("bob", "bob", org="acme")
    b = broker_factory(options=_tls_options(pki, "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
                                            tls_client_auth="requested", authorizer="acls",
                                            super_users="User:O=acme,CN=alice"))
    bootstrap = b.listener_bootstrap("SSL")
    topic = _topic("principal")
    assert sorted(confluent_roundtrip(bootstrap, topic, _confluent_ssl(pki), n=20)) == sorted(values(20))

    def produce(conf) -> object:
        errors = []
        p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000, **conf})
        p.produce(topic, b"not allowed", on_delivery=lambda err, _m: errors.append(err))
        p.flush(10)
        return errors[0] if errors else None

    as_bob = {**_confluent_ssl(pki, client=None), "ssl.certificate.location": str(bob.cert),
              "ssl.key.location": str(bob.key)}
    for conf in (as_bob, _confluent_ssl(pki, client=None)):  # User:O=acme,CN=bob; User:ANONYMOUS
        err = produce(conf)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    assert sum(high_watermarks(bootstrap, topic, _confluent_ssl(pki))) == 20  # nothing of theirs written
    assert b.is_healthy()
