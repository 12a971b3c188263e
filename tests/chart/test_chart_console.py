"""The web console in the chart (docs/console.md): reachable through the client
Service's metrics port, an Ingress off by default that routes only the console's paths,
and credentials from a Secret (the chart's, generated or given, or your own)."""

from __future__ import annotations

import pytest

from .rendering import FULLNAME, KUBE_VERSIONS, helm, render, validate

SECRET = f"{FULLNAME}-console"
INGRESS = f"{FULLNAME}-console"
AUTH_VARS = ("KAFSCALE_HTTP_AUTH_TOKEN", "KAFSCALE_HTTP_BASIC_AUTH")


def test_off_by_default_no_ingress_no_secret_no_credentials():
    r = render()
    assert r.all("Ingress") == []
    assert r.find("Secret", SECRET) is None
    assert not set(AUTH_VARS) & set(r.broker_env())
    assert "metrics" in {p["name"] for p in r.get("Service", FULLNAME)["spec"]["ports"]}  # the console's way in
    assert "/ui" in r.notes and "console.auth" not in r.notes


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_ingress_routes_only_the_console_to_the_metrics_port(version):
    r = render({"console": {"auth": {"enabled": True}, "ingress": {
        "enabled": True, "className": "nginx", "host": "console.example.org",
        "annotations": {"nginx.ingress.kubernetes.io/affinity": "cookie"},
        "tls": [{"secretName": "console-tls", "hosts": ["console.example.org"]}]}}})
    (ing,) = r.all("Ingress")
    validate(ing, version)
    assert ing["metadata"]["name"] == INGRESS
    assert ing["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/affinity": "cookie"}
    spec = ing["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "console-tls", "hosts": ["console.example.org"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == "console.example.org"
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/", "Exact"), ("/ui", "Prefix"), ("/api", "Prefix")}  # not /metrics, not the probes
    for p in rule["http"]["paths"]:
        assert p["backend"] == {"service": {"name": FULLNAME, "port": {"name": "metrics"}}}
    assert "https://console.example.org/ui" in r.notes


def test_an_ingress_without_credentials_is_warned_about():
    r = render({"console": {"ingress": {"enabled": True}}})
    assert "WARNING" in r.notes and "console.auth.enabled=true" in r.notes
    assert "ingressClassName" not in r.get("Ingress", INGRESS)["spec"]


def test_auth_generates_a_token_once_and_the_brokers_read_it_from_the_secret():
    r = render({"console": {"auth": {"enabled": True}}})
    data = r.secret_data(SECRET)
    assert set(data) == {"token"} and len(data["token"]) >= 32
    assert render({"console": {"auth": {"enabled": True}}}).secret_data(SECRET) != data  # random per install
    env = r.broker_env()
    for var, key in zip(AUTH_VARS, ("token", "basic-auth")):
        assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key, "optional": True}}}
    annotations = r.broker_sts()["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/console-secret" in annotations  # a changed token rolls the brokers
    assert data["token"] not in "".join(text for path, text in r.files.items() if "secret-console" not in path)


def test_given_token_and_basic_auth_go_into_the_secret_only():
    r = render({"console": {"auth": {"enabled": True, "token": "given-token-123", "basicAuth": "ops:pw:with:colons"}}})
    assert r.secret_data(SECRET) == {"token": "given-token-123", "basic-auth": "ops:pw:with:colons"}
    for path, text in r.files.items():
        if "secret-console" not in path:
            assert "given-token-123" not in text and "pw:with:colons" not in text, path


def test_an_existing_secret_is_referenced_and_none_is_created():
    r = render({"console": {"auth": {"enabled": True, "existingSecret": "corp-console",
                                     "secretKeys": {"token": "bearer", "basicAuth": "htpasswd"}}}})
    assert r.find("Secret", SECRET) is None
    env = r.broker_env()
    assert env["KAFSCALE_HTTP_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == \
        {"name": "corp-console", "key": "bearer", "optional": True}
    assert env["KAFSCALE_HTTP_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == \
        {"name": "corp-console", "key": "htpasswd", "optional": True}


@pytest.mark.parametrize("values,where", [
    ({"console": {"auth": {"basicAuth": "no-colon"}}}, "/console/auth/basicAuth"),
    ({"console": {"ingress": {"enabled": "yes"}}}, "/console/ingress/enabled"),
    ({"console": {"ingress": {"host": ""}}}, "/console/ingress/host"),
    ({"console": {"auth": {"user": "x"}}}, "/console/auth"),
])
def test_schema_rejects_wrong_console_values(values, where):
    with pytest.raises(helm.HelmValuesError) as info:
        render(values)
    assert f"at '{where}'" in str(info.value)


def test_the_credentials_variables_are_the_charts_own():
    with pytest.raises(helm.HelmRenderError, match="KAFSCALE_HTTP_AUTH_TOKEN is set by the chart"):
        render({"broker": {"extraEnv": [{"name": "KAFSCALE_HTTP_AUTH_TOKEN", "value": "inline"}]}})
