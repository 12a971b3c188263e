"""The ``kafscale`` command.

``kafscale serve`` runs a broker. With no etcd/S3 endpoints it runs the local default:
a real etcd and a real S3 server (SeaweedFS) as child processes with their data under
``--data-dir``, stopped with the broker. Every option is a flag and a ``KAFSCALE_*``
variable; docs/configuration.md lists them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kafscale import config as cfgmod


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafscale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a broker (local default stack when no endpoints are given)")
    for opt in cfgmod.OPTIONS:
        kind = opt.parse if opt.parse in (int, str) else str
        serve.add_argument("--" + opt.name.replace("_", "-"), type=kind, default=None,
                           help=f"{opt.help} [{opt.env}]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    if flags.get("auto_create_topics") is not None:
        flags["auto_create_topics"] = cfgmod._bool(flags["auto_create_topics"])
    try:
        config = cfgmod.from_sources(flags)
    except ValueError as exc:
        print(f"kafscale: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "serve":
        return _serve(config)
    return 2


def _serve(config: cfgmod.Config) -> int:
    from kafscale.server.app import serve

    def ready(bootstrap: str) -> None:
        print(f"kafscale: broker ready, bootstrap servers: {bootstrap}", flush=True)

    if not config.local_default:
        return serve(config, ready)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
