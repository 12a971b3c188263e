"""Does a cluster stay flat? A steady produce load with finite retention, for minutes.

    .venv/bin/python bench/lifecycle.py [--minutes 20] [--mb-per-s 10] [--partitions 12]
                                        [--retention-s 300] [--grace-s 120] [--out FILE]

One broker on the local default stack (real etcd, SeaweedFS), a topic with
``retention.ms`` of ``--retention-s``, 1 KiB lz4 messages at ``--mb-per-s`` from one
librdkafka producer. Every minute it prints: etcd keys under the broker's prefix, etcd's
database size (etcdctl endpoint status), objects and bytes in S3 under the namespace,
the broker's RSS, and the produce p99 of that minute. With compaction, retention and
garbage collection working, every column but the first minutes' is flat once one
retention period (plus the orphan grace) has passed.

The orphan grace (``--grace-s``) is set short so that deleted segments' objects go within
the run; the production default is an hour. A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from array import array

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench_load import MSG_BYTES, POOL, PRODUCER_TUNING, count_objects, percentiles  # noqa: E402
from bench_procs import local_stack, rss_bytes, started_broker  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402



class Load(threading.Thread):
    """Produce at a fixed rate in 5 ms ticks; delivery latencies kept per minute."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, mb_per_s: float) -> None:
        super().__init__(daemon=True)
        self.topic, self.partitions = topic, partitions
        self.rate = mb_per_s * 1e6 / MSG_BYTES
        self.lat = array("d")
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "log_level": 3, "message.timeout.ms": 120_000,
                           **PRODUCER_TUNING, "on_delivery": self._delivered})

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors += 1
        else:
            with self.lock:
                self.lat.append(msg.latency())

    def take_latencies(self) -> array:
        with self.lock:
            out, self.lat = self.lat, array("d")
        return out

    def run(self) -> None:
        t0, n, npool = time.monotonic(), 0, len(POOL)
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while n < due:
                try:
                    self.p.produce(self.topic, POOL[n % npool], partition=n % self.partitions)
                    n += 1
                except BufferError:
                    break
            self.p.poll(0.005)
        self.p.flush(60)


def etcd_figures(etcdctl: str, endpoint: str, prefix: str) -> tuple[int, int]:
    """(keys under ``prefix``, database size and size in use, in bytes)."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    out = subprocess.run([etcdctl, "--endpoints", endpoint, "get", prefix, "--prefix", "--count-only",
                          "-w", "fields"], capture_output=True, text=True, timeout=30, env=env, check=True).stdout
    keys = next((int(line.split(":")[1]) for line in out.splitlines() if line.startswith('"Count"')), 0)
    out = subprocess.run([etcdctl, "--endpoints", endpoint, "endpoint", "status", "-w", "json"],
                         capture_output=True, text=True, timeout=30, env=env, check=True).stdout
    status = json.loads(out)[0]["Status"]
    return keys, int(status["dbSize"]), int(status.get("dbSizeInUse", 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--mb-per-s", type=float, default=10)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--retention-s", type=int, default=300)
    ap.add_argument("--grace-s", type=int, default=120)
    ap.add_argument("--sample-s", type=float, default=60)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    etcdctl = shutil.which("etcdctl") or str(pathlib.Path(sys.executable).parent / "etcdctl")
    extra_args = ["--orphan-grace-ms", str(args.grace_s * 1000), "--log-retention-check-interval-ms", "30000"]
    rows = []
    with local_stack("kafscale-lifecycle-") as (stack, tmp), \
            started_broker(stack, tmp / "broker", extra_args=extra_args) as broker:
        topic = "lifecycle"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, args.partitions, 1,
                                      config={"retention.ms": str(args.retention_s * 1000)})])[topic].result(60)
        load = Load(broker.bootstrap, topic, args.partitions, args.mb_per_s)
        load.start()
        print(f"{args.mb_per_s} MB/s into {args.partitions} partitions, retention {args.retention_s} s, "
              f"orphan grace {args.grace_s} s, {args.minutes} min", flush=True)
        head = (f"{'min':>5} {'etcd keys':>10} {'etcd db MB':>11} {'in use MB':>10} {'S3 objects':>11} {'S3 MB':>9} "
                f"{'RSS MB':>8} {'p99 ms':>8} {'errors':>7}")
        print(head, flush=True)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < args.minutes * 60:
            n += 1
            time.sleep(max(0.0, t0 + n * args.sample_s - time.monotonic()))
            keys, db, in_use = etcd_figures(etcdctl, stack.etcd_endpoints.split(",")[0], broker.etcd_prefix + "/")
            objs, size = count_objects(stack.s3_endpoint, stack.bucket, stack.access_key, stack.secret_key,
                                       prefix=broker.s3_namespace + "/")
            lat = load.take_latencies()
            p99 = percentiles(lat).get("p99") if len(lat) else None
            row = {"minute": round((time.monotonic() - t0) / 60, 2), "etcd_keys": keys, "etcd_db_bytes": db,
                   "etcd_db_in_use_bytes": in_use,
                   "s3_objects": objs, "s3_bytes": size, "rss_bytes": rss_bytes(broker.pid),
                   "produce_p99_ms": p99, "errors": load.errors, "delivered": len(lat)}
            rows.append(row)
            print(f"{row['minute']:>5} {keys:>10} {db / 1e6:>11.1f} {in_use / 1e6:>10.1f} {objs:>11} {size / 1e6:>9.1f} "
                  f"{row['rss_bytes'] / 1e6:>8.1f} {p99 if p99 is None else round(p99, 1)!s:>8} {load.errors:>7}",
                  flush=True)
        load.stop.set()
        load.join(120)
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
