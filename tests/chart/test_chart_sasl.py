"""SASL and ACLs in the chart (docs/security.md): a SASL_PLAINTEXT plaintext port or a
SASL_SSL TLS listener, the admin user's password from a Secret (generated or your own),
super users and the ACL authorizer as broker variables."""

from __future__ import annotations

import pytest

from .rendering import FULLNAME, KUBE_VERSIONS, render, validate

SECRET = f"{FULLNAME}-sasl"
SASL_VARS = {"KAFSCALE_SASL_ENABLED_MECHANISMS", "KAFSCALE_SASL_ADMIN_USER", "KAFSCALE_SASL_ADMIN_PASSWORD"}


def _value(env: dict, name: str) -> str:
    return env[name]["value"]


def test_off_by_default():
    r = render()
    env = r.broker_env()
    assert not (SASL_VARS | {"KAFSCALE_AUTHORIZER", "KAFSCALE_SUPER_USERS", "KAFSCALE_LISTENERS"}) & set(env)
    assert r.find("Secret", SECRET) is None


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_sasl_plaintext_with_a_generated_admin_password_and_acls(version):
    r = render({"sasl": {"plaintext": True}, "authorization": {"acls": True, "superUsers": ["User:ops"]}})
    env = r.broker_env()
    assert _value(env, "KAFSCALE_LISTENERS") == "SASL_PLAINTEXT://0.0.0.0:9092"
    assert _value(env, "KAFSCALE_ADVERTISED_LISTENERS") == "SASL_PLAINTEXT://$(KAFSCALE_BROKER_HOST):9092"
    assert _value(env, "KAFSCALE_SASL_ADMIN_USER") == "admin"
    assert env["KAFSCALE_SASL_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": SECRET,
                                                                                "key": "admin-password"}
    assert _value(env, "KAFSCALE_SUPER_USERS") == "User:admin;User:ops"
    assert _value(env, "KAFSCALE_AUTHORIZER") == "acls"
    assert _value(env, "KAFSCALE_ALLOW_EVERYONE_IF_NO_ACL_FOUND") == "false"
    secret = r.get("Secret", SECRET)
    validate(secret, version)
    assert len(r.secret_data(SECRET)["admin-password"]) == 32


def test_sasl_ssl_listener_with_your_own_secret():
    r = render({"tls": {"enabled": True, "protocol": "SASL_SSL", "existingSecret": "broker-tls", "plaintext": False},
                "sasl": {"existingSecret": "my-sasl", "passwordKey": "pw", "mechanisms": "SCRAM-SHA-512"}})
    env = r.broker_env()
    assert _value(env, "KAFSCALE_LISTENERS") == "SASL_SSL://0.0.0.0:9094"
    assert _value(env, "KAFSCALE_SASL_ENABLED_MECHANISMS") == "SCRAM-SHA-512"
    assert env["KAFSCALE_SASL_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "my-sasl", "key": "pw"}
    assert r.find("Secret", SECRET) is None  # yours, not the chart's
    assert "KAFSCALE_AUTHORIZER" not in env


def test_super_users_without_sasl_and_a_bad_mechanism_is_refused():
    env = render({"authorization": {"acls": True, "superUsers": ["User:CN=ops,O=acme"]}}).broker_env()
    assert _value(env, "KAFSCALE_SUPER_USERS") == "User:CN=ops,O=acme"  # (an mTLS principal)
    with pytest.raises(Exception, match="mechanisms"):
        render({"sasl": {"plaintext": True, "mechanisms": "GSSAPI"}})
