"""What every admin command shares: the connection options and value parsers."""

from __future__ import annotations

import argparse
import os

from kafscale.admin import Client

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
    return common


def client(args: argparse.Namespace) -> Client:
    bootstrap = (getattr(args, "bootstrap_server", None) or os.environ.get("KAFSCALE_BOOTSTRAP_SERVER")
                 or DEFAULT_BOOTSTRAP)
    return Client(bootstrap, connect_timeout=getattr(args, "connect_timeout", 5.0))


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
