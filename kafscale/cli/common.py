"""What every admin command shares: the connection options and value parsers."""

from __future__ import annotations

import argparse
import os
import ssl

from kafscale.admin import Client
from kafscale.admin.connection import SaslLogin

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class UsageError(Exception):
    """Options that parse but make no sense together (exit code 2, like argparse's)."""


def connection_options() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (``kafscale -o json topics list``
    and ``kafscale topics list -o json`` are the same)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-b", "--bootstrap-server", default=argparse.SUPPRESS, metavar="HOST:PORT",
                        help=f"broker(s) to start from, comma separated [KAFSCALE_BOOTSTRAP_SERVER, "
                             f"default {DEFAULT_BOOTSTRAP}]")
    common.add_argument("-o", "--output", choices=("table", "json"), default=argparse.SUPPRESS,
                        help="output format (default: table)")
    common.add_argument("--connect-timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="give up connecting to a broker after this long (default 5)")
    common.add_argument("--sasl-mechanism", type=str.upper, choices=SASL_MECHANISMS, default=argparse.SUPPRESS,
                        help="authenticate with SASL on a SASL_PLAINTEXT listener [KAFSCALE_SASL_MECHANISM]")
    common.add_argument("--sasl-username", default=argparse.SUPPRESS, metavar="NAME",
                        help="the SASL user [KAFSCALE_SASL_USERNAME]")
    common.add_argument("--sasl-password-file", default=argparse.SUPPRESS, metavar="FILE",
                        help="a file holding the SASL password (else KAFSCALE_SASL_PASSWORD)")
    common.add_argument("--tls", action="store_true", default=argparse.SUPPRESS,
                        help="connect with TLS (SSL and SASL_SSL listeners), trusting the system's CAs "
                             "[KAFSCALE_CLIENT_TLS=true]")
    common.add_argument("--tls-ca-file", default=argparse.SUPPRESS, metavar="FILE",
                        help="CA certificates (PEM) to trust instead; implies --tls [KAFSCALE_CLIENT_TLS_CA_FILE]")
    common.add_argument("--tls-cert-file", default=argparse.SUPPRESS, metavar="FILE",
                        help="client certificate (PEM) for mTLS; implies --tls [KAFSCALE_CLIENT_TLS_CERT_FILE]")
    common.add_argument("--tls-key-file", default=argparse.SUPPRESS, metavar="FILE",
                        help="the client certificate's key (PEM) [KAFSCALE_CLIENT_TLS_KEY_FILE]")
    return common


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def sasl_login(args: argparse.Namespace) -> SaslLogin | None:
    """The SASL credentials of the options (or KAFSCALE_SASL_* variables), None without a mechanism."""
    mechanism = (getattr(args, "sasl_mechanism", None) or os.environ.get("KAFSCALE_SASL_MECHANISM", "")).upper()
    if not mechanism:
        return None
    if mechanism not in SASL_MECHANISMS:
        raise UsageError(f"KAFSCALE_SASL_MECHANISM: not one of {', '.join(SASL_MECHANISMS)}: {mechanism!r}")
    username = getattr(args, "sasl_username", None) or os.environ.get("KAFSCALE_SASL_USERNAME", "")
    if not username:
        raise UsageError("--sasl-mechanism needs --sasl-username (or KAFSCALE_SASL_USERNAME)")
    path = getattr(args, "sasl_password_file", None)
    if path:
        password = read_secret_file(path, "--sasl-password-file")
    else:
        password = os.environ.get("KAFSCALE_SASL_PASSWORD", "")
    if not password:
        raise UsageError("--sasl-mechanism needs --sasl-password-file (or KAFSCALE_SASL_PASSWORD)")
    return SaslLogin(mechanism, username, password)


def read_secret_file(path: str, option: str) -> str:
    """A password file's text, one trailing newline dropped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"{option}: {path}: {exc.strerror or exc}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise UsageError(f"{option}: {path} is empty")
    return text


def _setting(args: argparse.Namespace, name: str, variable: str) -> str:
    return getattr(args, name, None) or os.environ.get(variable, "")


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context of the options (or KAFSCALE_CLIENT_TLS* variables); None: plaintext."""
    ca = _setting(args, "tls_ca_file", "KAFSCALE_CLIENT_TLS_CA_FILE")
    cert = _setting(args, "tls_cert_file", "KAFSCALE_CLIENT_TLS_CERT_FILE")
    key = _setting(args, "tls_key_file", "KAFSCALE_CLIENT_TLS_KEY_FILE")
    wanted = getattr(args, "tls", False) or os.environ.get("KAFSCALE_CLIENT_TLS", "").lower() in ("1", "true", "yes")
    if not (wanted or ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise UsageError("--tls-cert-file and --tls-key-file go together")
    try:
        context = ssl.create_default_context(cafile=ca or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"TLS files: {getattr(exc, 'strerror', None) or exc}") from None
    return context


def client(args: argparse.Namespace) -> Client:
    bootstrap = (getattr(args, "bootstrap_server", None) or os.environ.get("KAFSCALE_BOOTSTRAP_SERVER")
                 or DEFAULT_BOOTSTRAP)
    return Client(bootstrap, connect_timeout=getattr(args, "connect_timeout", 5.0), sasl=sasl_login(args),
                  tls=tls_context(args))


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


def int_at_least(low: int):
    """An argparse type: an integer no lower than ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {value}")
        return value
    return parse
