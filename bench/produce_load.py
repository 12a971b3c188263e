"""Flat-out produce against a running broker; prints messages/s and payload MB/s.

    .venv/bin/python -m kafscale serve --data-dir /tmp/kb &      # a broker on the local default
    .venv/bin/python bench/produce_load.py 127.0.0.1:9092 --seconds 10

confluent-kafka as a user would tune it: 1 KiB messages, lz4, acks=all, 12 partitions,
linger 10 ms, 1 MB batches. The payload compresses well, so this is payload throughput,
not bytes written to S3 (the broker's /metrics has kafscale_bytes_flushed_total for that).
This is the quick probe behind the pipelining figures in the session notes; bench/run.py
(issue 6) is the full side-by-side harness.
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--partitions", type=int, default=12)
    args = ap.parse_args()
    topic = f"load-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": args.bootstrap, "compression.type": "lz4", "linger.ms": 10,
                  "batch.size": 1_000_000, "acks": "all", "queue.buffering.max.kbytes": 262144})
    payload = bytes(range(256)) * 4
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < args.seconds:
        try:
            p.produce(topic, payload, partition=n % args.partitions)
            n += 1
        except BufferError:
            p.poll(0.01)
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(120)
    elapsed = time.monotonic() - t0
    print(f"{n - left} messages in {elapsed:.1f} s = {(n - left) / elapsed:,.0f} messages/s, "
          f"{(n - left) * len(payload) / elapsed / 1e6:.1f} MB/s payload")


if __name__ == "__main__":
    main()
