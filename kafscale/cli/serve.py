"""``kafscale serve``: run a broker.

With no etcd/S3 endpoints it runs the local default: a real etcd and a real S3 server
(SeaweedFS) as child processes with their data under ``--data-dir``, stopped with the
broker. Every option is a flag and a ``KAFSCALE_*`` variable (docs/configuration.md).
A bad value stops it before anything starts, with one line naming the flag and the
variable, and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kafscale import config as cfgmod

from .output import fail

EXIT_CONFIG = 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run a broker (local default stack when no endpoints are given)",
                           description=__doc__.splitlines()[0])
    for opt in cfgmod.OPTIONS:
        # Values stay text here: config.from_sources parses them and names the flag and
        # the variable when one is bad.
        serve.add_argument("--" + opt.name.replace("_", "-"), dest=opt.name, default=None, metavar="VALUE",
                           help=f"{opt.help} [{opt.env}]")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = {opt.name: getattr(args, opt.name) for opt in cfgmod.OPTIONS}
    try:
        config = cfgmod.from_sources(flags)
    except ValueError as exc:
        fail(str(exc))
        return EXIT_CONFIG
    logging.basicConfig(level=getattr(logging, config.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from kafscale.server.app import ListenError, serve

    def ready(bootstrap: str) -> None:
        print(f"kafscale: broker ready, bootstrap servers: {bootstrap}", flush=True)

    try:
        if not config.local_default:
            return serve(config, ready)
        return _serve_local(config, serve, ready)
    except ListenError as exc:
        fail(str(exc))
        return EXIT_CONFIG


def _serve_local(config: cfgmod.Config, serve, ready) -> int:
    from kafscale.localstack import LocalStack

    data_dir = Path(config.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    access = config.s3_access_key or "kafscale"
    secret = config.s3_secret_key or "kafscale-secret"
    print(f"kafscale: starting local etcd and S3 server under {data_dir}", flush=True)
    with LocalStack(data_dir, bucket=config.s3_bucket, access_key=access, secret_key=secret) as stack:
        local = cfgmod.replace(config, etcd_endpoints=stack.etcd_endpoints, s3_endpoint=stack.s3_endpoint,
                               s3_access_key=access, s3_secret_key=secret)
        print(f"kafscale: etcd {stack.etcd_endpoints}, S3 {stack.s3_endpoint} bucket {stack.bucket}", flush=True)
        return serve(local, ready)
