"""Options of secured etcd and S3 (docs/security.md, "etcd and S3"): half-given pairs and
missing files stop the broker with one line naming the flags and the variables; the
password file is read anew each time."""

from __future__ import annotations

import pytest

from kafscale.config import ConfigError, from_sources, secret_option

ENDPOINTS = {"KAFSCALE_ETCD_ENDPOINTS": "etcd:2379", "KAFSCALE_S3_ENDPOINT": "https://s3:9000"}


def _config(tmp_path, **env):
    return from_sources({}, {**ENDPOINTS, **{k: str(v) for k, v in env.items()}})


@pytest.fixture
def pem(tmp_path):
    path = tmp_path / "x.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


@pytest.mark.parametrize("env, words", [
    ({"KAFSCALE_ETCD_CERT_FILE": "PEM"}, ["--etcd-cert-file (KAFSCALE_ETCD_CERT_FILE)",
                                           "--etcd-key-file (KAFSCALE_ETCD_KEY_FILE)"]),
    ({"KAFSCALE_ETCD_KEY_FILE": "PEM"}, ["--etcd-key-file (KAFSCALE_ETCD_KEY_FILE)", "--etcd-cert-file"]),
    ({"KAFSCALE_S3_ACCESS_KEY": "AKIA"}, ["--s3-access-key (KAFSCALE_S3_ACCESS_KEY)",
                                          "--s3-secret-key (KAFSCALE_S3_SECRET_KEY)"]),
    ({"KAFSCALE_ETCD_USER": "root"}, ["--etcd-user (KAFSCALE_ETCD_USER)", "--etcd-password (KAFSCALE_ETCD_PASSWORD)",
                                      "--etcd-password-file (KAFSCALE_ETCD_PASSWORD_FILE)"]),
    ({"KAFSCALE_ETCD_PASSWORD": "pw"}, ["--etcd-password (KAFSCALE_ETCD_PASSWORD)", "--etcd-user"]),
    ({"KAFSCALE_ETCD_PASSWORD_FILE": "PEM"}, ["--etcd-password-file", "--etcd-user"]),
    ({"KAFSCALE_ETCD_USER": "root", "KAFSCALE_ETCD_PASSWORD": "pw", "KAFSCALE_ETCD_PASSWORD_FILE": "PEM"},
     ["give one of them"]),
    ({"KAFSCALE_ETCD_CA_FILE": "/nonexistent/ca.pem"}, ["--etcd-ca-file (KAFSCALE_ETCD_CA_FILE): no such file"]),
    ({"KAFSCALE_S3_CA_FILE": "/nonexistent/ca.pem"}, ["--s3-ca-file (KAFSCALE_S3_CA_FILE): no such file"]),
    ({"KAFSCALE_S3_CA_FILE": "PEM", "KAFSCALE_S3_ENDPOINT": "http://s3:9000"}, ["--s3-ca-file", "not https://"]),
    ({"KAFSCALE_ETCD_CA_FILE": "PEM", "KAFSCALE_ETCD_ENDPOINTS": "http://etcd:2379"},
     ["--etcd-endpoints (KAFSCALE_ETCD_ENDPOINTS)", "https://"]),
])
def test_bad_combinations_are_one_line_naming_flags_and_variables(tmp_path, pem, env, words):
    env = {k: pem if v == "PEM" else v for k, v in env.items()}
    with pytest.raises(ConfigError) as exc:
        _config(tmp_path, **env)
    text = str(exc.value)
    assert "\n" not in text
    for word in words:
        assert word in text
    assert "pw" not in text.replace("password", "")  # a password is never echoed


def test_secured_options_need_endpoints(tmp_path, pem):
    with pytest.raises(ConfigError, match=r"^--etcd-ca-file \(KAFSCALE_ETCD_CA_FILE\): needs --etcd-endpoints"):
        from_sources({}, {"KAFSCALE_ETCD_CA_FILE": pem})


def test_good_combinations(tmp_path, pem):
    cfg = _config(tmp_path, KAFSCALE_ETCD_ENDPOINTS="https://etcd-0:2379,https://etcd-1:2379",
                  KAFSCALE_ETCD_CA_FILE=pem, KAFSCALE_ETCD_CERT_FILE=pem, KAFSCALE_ETCD_KEY_FILE=pem,
                  KAFSCALE_ETCD_USER="root", KAFSCALE_ETCD_PASSWORD_FILE=pem, KAFSCALE_S3_CA_FILE=pem)
    assert (cfg.etcd_user, cfg.etcd_ca_file, cfg.s3_ca_file) == ("root", pem, pem)
    assert _config(tmp_path, KAFSCALE_ETCD_USER="root", KAFSCALE_ETCD_PASSWORD="pw").etcd_password == "pw"


def test_password_file_is_read_anew_each_time(tmp_path):
    path = tmp_path / "pw"
    path.write_text("first\n")
    cfg = _config(tmp_path, KAFSCALE_ETCD_USER="root", KAFSCALE_ETCD_PASSWORD_FILE=path)
    assert secret_option(cfg, "etcd_password") == "first"
    path.write_text("second")  # a rotated Secret
    assert secret_option(cfg, "etcd_password") == "second"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"--etcd-password-file \(KAFSCALE_ETCD_PASSWORD_FILE\): the file is empty"):
        secret_option(cfg, "etcd_password")
    path.unlink()
    with pytest.raises(ConfigError, match="No such file"):
        secret_option(cfg, "etcd_password")
