"""The ``kafscale`` command: ``serve`` runs a broker; the other commands administer a
cluster over the Kafka protocol (docs/cli.md).

Exit codes: 0 success, 1 the operation failed (an error from the cluster, a broker out
of reach), 2 a usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from typing import NoReturn

from kafscale.admin import ClientError

from . import admin_commands, serve, stream, users
from .common import UsageError, connection_options
from .output import fail

EXIT_FAILED = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``kafscale topics create: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def version() -> str:
    try:
        return metadata.version("kafscale")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from kafscale import __version__
        return __version__


def build_parser() -> Parser:
    parser = Parser(prog="kafscale", description="Run a Kafscale broker (serve), or administer a Kafka "
                    "cluster over the Kafka protocol (the other commands; docs/cli.md).",
                    parents=[connection_options()])
    parser.add_argument("--version", action="version", version=f"kafscale {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(sub)
    admin_commands.add_parsers(sub)
    stream.add_parsers(sub)
    users.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except ClientError as exc:
        fail(str(exc))
        return EXIT_FAILED
    except UsageError as exc:
        fail(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        fail("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `kafscale consume ... | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
