"""Listeners and TLS without a broker: parsing --listeners, the errors a bad value gives,
the addresses advertised per listener, DescribeConfigs' listener configs, the TLS context's
reloading, and the principal of a client certificate."""

from __future__ import annotations

import os
import re
import ssl
import types

import pytest

from kafscale import broker_configs as bc, listeners
from kafscale.broker.core import Broker
from kafscale.broker_configs import ConfigSource as S, DynamicState
from kafscale.config import Config, ConfigError, from_sources
from kafscale.listeners import Listener
from kafscale.security.tls import ServerTls, principal_of
from support.certs import Pki


def test_listeners_parse_as_kafka_writes_them():
    assert listeners.parse("SASL_SSL://0.0.0.0:9094, plaintext://127.0.0.1:9092,SSL://:0,SASL_PLAINTEXT://[::1]:9095") \
        == [Listener("SASL_SSL", "SASL_SSL", "0.0.0.0", 9094), Listener("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 9092),
            Listener("SSL", "SSL", "", 0), Listener("SASL_PLAINTEXT", "SASL_PLAINTEXT", "::1", 9095)]
    assert Listener("SSL", "SSL", "::1", 9).url() == "SSL://[::1]:9"
    assert Listener("SSL", "SSL", "h", 0).url(port=5) == "SSL://h:5"


@pytest.mark.parametrize("text, problem", [
    ("127.0.0.1:9092", "expected PROTOCOL://host:port"),
    ("PLAINTEXT://127.0.0.1", "expected PROTOCOL://host:port"),
    ("HTTP://127.0.0.1:80", "unknown security protocol 'HTTP'"),
    ("INTERNAL://127.0.0.1:9092", "unknown security protocol"),
    ("PLAINTEXT://h:port", "not a port number"),
    ("PLAINTEXT://h:70000", "not a port number"),
    ("PLAINTEXT://h:9092,SSL://g:9092", "port 9092 used by two listeners"),
    ("SSL://h:1,SSL://h:2", "listener SSL named twice"),
    ("PLAINTEXT://h:1,", "empty entry"),
    ("SSL://[::1:9", "expected PROTOCOL://[ipv6]:port"),
])
def test_bad_listeners_say_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        listeners.parse(text)


def test_two_listeners_may_both_take_a_free_port():
    assert [lst.port for lst in listeners.parse("SSL://h:0,PLAINTEXT://h:0")] == [0, 0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = Pki(d)
    return {"ca": ca, "server": ca.issue("server", "broker", server=True), "alice": ca.issue("alice", "alice", org="acme")}


@pytest.mark.parametrize("flags, env, message", [
    ({"listeners": "FOO://h:1"}, {}, "--listeners (KAFSCALE_LISTENERS): unknown security protocol 'FOO'"),
    ({}, {"KAFSCALE_LISTENERS": "PLAINTEXT://h:1,SSL://h:1"},
     "--listeners (KAFSCALE_LISTENERS): port 1 used by two listeners"),
    ({"listeners": "SSL://h:1"}, {},
     "--listeners (KAFSCALE_LISTENERS): the SSL listener needs --tls-cert-file (KAFSCALE_TLS_CERT_FILE) and "
     "--tls-key-file (KAFSCALE_TLS_KEY_FILE)"),
    ({"listeners": "PLAINTEXT://h:1", "advertised_listeners": "SSL://h:2"}, {},
     "--advertised-listeners (KAFSCALE_ADVERTISED_LISTENERS): SSL is not a listener (listeners: PLAINTEXT)"),
    ({"advertised_listeners": "PLAINTEXT://0.0.0.0:2"}, {},
     "--advertised-listeners (KAFSCALE_ADVERTISED_LISTENERS): PLAINTEXT://0.0.0.0:2: advertise a host"),
    ({}, {"KAFSCALE_ADVERTISED_LISTENERS": "PLAINTEXT:/h:2"},
     "--advertised-listeners (KAFSCALE_ADVERTISED_LISTENERS): expected PROTOCOL://host:port"),
    ({"tls_client_auth": "always"}, {}, "--tls-client-auth (KAFSCALE_TLS_CLIENT_AUTH): not one of none, requested"),
    ({"tls_client_auth": "required"}, {},
     "--tls-client-auth (KAFSCALE_TLS_CLIENT_AUTH): required needs --tls-ca-file (KAFSCALE_TLS_CA_FILE)"),
])
def test_listener_errors_name_the_flag_and_the_variable(flags, env, message):
    with pytest.raises(ConfigError) as exc:
        from_sources(flags, env)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_a_missing_certificate_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"--tls-cert-file \(KAFSCALE_TLS_CERT_FILE\): no such file: .*nope.pem"):
        from_sources({"listeners": "SSL://h:1", "tls_cert_file": str(tmp_path / "nope.pem"),
                      "tls_key_file": str(tmp_path / "nope.pem")}, {})


def test_without_listeners_the_old_options_make_one_plaintext_listener():
    cfg = from_sources({"broker_host": "kafscale-0.kafscale", "broker_port": "9099", "listen_host": "0.0.0.0"}, {})
    assert cfg.listener_list == [Listener("PLAINTEXT", "PLAINTEXT", "0.0.0.0", 9099)]
    assert cfg.advertised() == {"PLAINTEXT": ("kafscale-0.kafscale", 9099)}
    assert cfg.advertised({"PLAINTEXT": 4000}) == {"PLAINTEXT": ("kafscale-0.kafscale", 4000)}
    assert cfg.client_auth == "none"


def test_advertised_addresses_default_to_each_listener_own(pki):
    cfg = from_sources({"listeners": "SSL://0.0.0.0:9094,PLAINTEXT://10.0.0.5:9092,SASL_SSL://:0",
                        "advertised_listeners": "SASL_SSL://kafscale.example.com:19095", "broker_host": "b0",
                        "broker_port": "1234", "tls_cert_file": str(pki["server"].cert),
                        "tls_key_file": str(pki["server"].key), "tls_ca_file": str(pki["ca"].ca_file)}, {})
    assert [lst.port for lst in cfg.listener_list] == [9094, 9092, 0]  # --broker-port adds nothing
    assert cfg.advertised({"SASL_SSL": 40000}) == {
        "SSL": ("b0", 9094), "PLAINTEXT": ("10.0.0.5", 9092), "SASL_SSL": ("kafscale.example.com", 19095)}
    assert cfg.client_auth == "required"  # a CA file makes it the default


def test_describe_configs_reports_the_listeners_in_effect(pki):
    cfg = from_sources({"listeners": "SSL://0.0.0.0:9094,PLAINTEXT://127.0.0.1:9092",
                        "advertised_listeners": "SSL://kafscale-0.example:9094",
                        "tls_cert_file": str(pki["server"].cert), "tls_key_file": str(pki["server"].key),
                        "tls_ca_file": str(pki["ca"].ca_file), "tls_client_auth": "requested"}, {})
    described = {d.name: d for d in bc.describe_broker(cfg, DynamicState(), 0)}
    assert described["listeners"].value == "SSL://0.0.0.0:9094,PLAINTEXT://127.0.0.1:9092"
    assert described["advertised.listeners"].value == "SSL://kafscale-0.example:9094,PLAINTEXT://127.0.0.1:9092"
    assert described["ssl.client.auth"].value == "requested"
    assert described["kafscale.tls.cert.file"].value == str(pki["server"].cert)
    for name in ("listeners", "advertised.listeners", "ssl.client.auth"):
        assert described[name].read_only and described[name].source is S.STATIC_BROKER_CONFIG
        assert [d.name for d in bc.describe_broker(cfg, DynamicState(), 0)].count(name) == 1
    default = {d.name: d for d in bc.describe_broker(Config(), DynamicState(), 0)}
    assert (default["ssl.client.auth"].value, default["ssl.client.auth"].source) == ("none", S.DEFAULT_CONFIG)
    assert default["listeners"].value == "PLAINTEXT://127.0.0.1:9092"


def test_brokers_are_advertised_per_listener_and_old_registrations_fall_back_to_host_and_port():
    broker = types.SimpleNamespace(
        config=Config(broker_id=0), advertised={"SSL": ("b0.tls", 9094), "PLAINTEXT": ("b0", 9092)},
        membership=types.SimpleNamespace(info={"host": "b0", "port": 9092}, live={
            0: {"host": "b0", "port": 9092, "listeners": {"SSL": ["b0.tls", 9094], "PLAINTEXT": ["b0", 9092]}},
            1: {"host": "b1", "port": 9092, "rack": "r1"},  # a broker from before listeners
        }))
    live = Broker.live_brokers
    assert [(b.node_id, b.host, b.port) for b in live(broker, "SSL")] == [(0, "b0.tls", 9094), (1, "b1", 9092)]
    assert [(b.host, b.port) for b in live(broker, "PLAINTEXT")] == [("b0", 9092), ("b1", 9092)]
    assert [(b.host, b.port) for b in live(broker)] == [("b0", 9092), ("b1", 9092)]
    broker.membership.live = {}
    broker.me_for = lambda listener=None: Broker.me_for(broker, listener)
    assert [(b.host, b.port) for b in live(broker, "SSL")] == [("b0.tls", 9094)]


def test_the_principal_of_a_client_certificate_is_its_subject_in_rfc2253_form(pki):
    der = ssl.PEM_cert_to_DER_cert(pki["alice"].cert.read_text())
    assert principal_of(der) == "User:O=acme,CN=alice"  # (RFC 2253: the last RDN first)


def test_tls_context_is_reloaded_when_the_files_change_and_a_broken_file_keeps_the_old(pki, tmp_path, caplog):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(pki["server"].cert.read_bytes())
    key.write_bytes(pki["server"].key.read_bytes())
    now = [0.0]
    tls = ServerTls(str(cert), str(key), str(pki["ca"].ca_file), "required", check_interval=5, clock=lambda: now[0])
    first = tls.context()
    assert first.verify_mode == ssl.CERT_REQUIRED and first.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.context() is first

    cert.write_text("garbage")
    os.utime(cert, ns=(1, 1))
    now[0] = 4.0
    assert tls.context() is first  # not checked yet
    now[0] = 10.0
    assert tls.context() is first  # checked: does not load, the old one stays
    now[0] = 20.0
    assert tls.context() is first
    assert sum("do not load" in r.message for r in caplog.records) == 1  # logged once

    other = pki["ca"].issue("other", "broker", server=True, directory=tmp_path / "new")
    cert.write_bytes(other.cert.read_bytes())
    key.write_bytes(other.key.read_bytes())
    now[0] = 30.0
    assert tls.context() is not first and tls.reloads == 1


def test_a_tls_context_that_does_not_load_at_start_fails_at_once(pki, tmp_path):
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ssl.SSLError):
        ServerTls(str(tmp_path / "bad.pem"), str(pki["server"].key))
    with pytest.raises(ssl.SSLError):  # a key that is not the certificate's
        ServerTls(str(pki["server"].cert), str(pki["alice"].key))
