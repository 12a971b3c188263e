#!/usr/bin/env python3
"""Flat-out produce over SASL_SSL beside PLAINTEXT, on one broker (issue #14).

    .venv/bin/python bench/security.py [--seconds 8] [--partitions 12] [--rounds 2]

One broker with a PLAINTEXT and a SASL_SSL listener (a test CA's certificate, SCRAM-SHA-512
user), the local etcd and S3 server; the same flat-out produce as bench/run.py's scenario 1
(1 KiB lz4 values, acks=all) runs over each listener in turn, ``--rounds`` times,
alternating, so that drift in the machine's load hits both alike. Prints MB/s and the
produce latency percentiles of each run, and the broker's CPU seconds per GB.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench_load import create_topic, produce_flat_out  # noqa: E402
from bench_procs import cpu_seconds, local_stack, started_broker  # noqa: E402

from tests.support.certs import Pki  # noqa: E402
from tests.support.procs import free_port  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with local_stack("kafscale-security-bench-") as (stack, tmp):
        ca = Pki(tmp / "pki")
        server = ca.issue("server", "kafscale-bench", server=True)
        with started_broker(stack, tmp / "broker", options=_options(server)) as broker:
            _run(args, broker, ca)
    return 0


def _options(server) -> dict:
    return {"listeners": f"PLAINTEXT://127.0.0.1:{free_port()},SASL_SSL://127.0.0.1:{free_port()}",
            "tls_cert_file": server.cert, "tls_key_file": server.key, "sasl_admin_user": USER,
            "sasl_admin_password": PASSWORD, "super_users": f"User:{USER}",
            # As bench/run.py's scenarios 1-4: no compaction competing for the CPU.
            "compaction_interval_ms": 3_600_000}


def _run(args: argparse.Namespace, broker, ca) -> None:
    clients = {
        "PLAINTEXT": {},
        "SASL_SSL": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER,
                     "sasl.password": PASSWORD, "ssl.ca.location": str(ca.ca_file)},
    }
    print(f"flat-out produce, {args.partitions} partitions, {args.seconds:g} s per run, 1 KiB lz4 values, "
          "acks=all", flush=True)
    print(f"{'listener':<10} {'round':>5} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'broker CPU s/GB':>16}",
          flush=True)
    for rnd in range(args.rounds):
        for listener, extra in clients.items():
            bootstrap = broker.listener_bootstrap(listener)
            topic = f"bench-{listener.lower()}-{rnd}"
            create_topic(bootstrap, topic, args.partitions, extra=extra)
            cpu0 = cpu_seconds(broker.pid)
            res = produce_flat_out(bootstrap, topic, args.partitions, args.seconds, extra=extra)
            cpu = cpu_seconds(broker.pid) - cpu0
            gb = res["payload_bytes"] / 1e9
            lat = res["latency_ms"]
            print(f"{listener:<10} {rnd + 1:>5} {res['mb_per_s']:>7.1f} {lat.get('p50', 0):>8.1f} "
                  f"{lat.get('p99', 0):>8.1f} {cpu / gb if gb else 0:>16.1f}"
                  + (f"  errors {res['errors']}: {res['first_error']}" if res["errors"] else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
