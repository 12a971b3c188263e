"""One client's Metadata storm against everyone else's latency.

    .venv/bin/python bench/metadata_storm.py [--topics 120] [--requests 200 1000] [--seconds 20]

One broker on the local default stack with ``--topics`` topics of 4 partitions. A
steady producer (1 MB/s, 1 KiB messages, acks=all) runs throughout. For each count in
``--requests``, one connection pipelines that many all-topics Metadata requests (all
written at once, then all read): it prints the storm's Metadata requests/s, how long
another client's single Metadata took meanwhile (worst of 5), and the producer's p99
during the storm beside its p99 before it. A benchmark: it prints figures.
"""

from __future__ import annotations

import argparse
import pathlib
import socket
import struct
import sys
import threading
import time
from array import array

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench_load import POOL, percentiles  # noqa: E402
from bench_procs import local_stack, started_broker  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

from kafscale.protocol import headers, messages  # noqa: E402
from tests.support.rawclient import RawClient, create_topic_request  # noqa: E402

ALL = messages.MetadataRequest(topics=None, allow_auto_topic_creation=False)


class Steady(threading.Thread):
    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.topic, self.lat, self.stop = topic, array("d"), threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 3,
                           "on_delivery": lambda err, m: err is None and self.lat.append(m.latency())})

    def take(self) -> array:
        out, self.lat = self.lat, array("d")
        return out

    def run(self) -> None:
        n, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            while n < int((time.monotonic() - t0) * 1000):  # 1000 x 1 KiB per second
                self.p.produce(self.topic, POOL[n % len(POOL)], partition=n % 4)
                n += 1
            self.p.poll(0.005)
        self.p.flush(30)


def read_frames(sock: socket.socket, n: int) -> None:
    buf, got = b"", 0
    while got < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed after {got} of {n} answers")
        buf += chunk
        while len(buf) >= 4 and len(buf) - 4 >= struct.unpack(">i", buf[:4])[0]:
            buf = buf[4 + struct.unpack(">i", buf[:4])[0]:]
            got += 1


def storm(port: int, n: int, out: dict) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.monotonic()
        s.sendall(b"".join(headers.encode_request(3, 12, i, "storm", ALL) for i in range(n)))
        read_frames(s, n)
        out["seconds"] = time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", type=int, default=120)
    ap.add_argument("--requests", type=int, nargs="+", default=[200, 1000])
    args = ap.parse_args()
    with local_stack("kafscale-storm-") as (stack, tmp), started_broker(stack, tmp / "broker") as broker:
        with RawClient(broker.bootstrap) as c:
            for i in range(args.topics):
                c.request(19, 5, create_topic_request(f"storm-{i:03d}", 4))
        steady = Steady(broker.bootstrap, "storm-000")
        steady.start()
        time.sleep(5)
        print(f"{args.topics} topics x 4 partitions; a producer at 1 MB/s throughout")
        print(f"{'pipelined':>10} {'Metadata/s':>11} {'other client max s':>19} {'p99 before ms':>14} "
              f"{'p99 during ms':>14}")
        for n in args.requests:
            before = percentiles(steady.take()).get("p99")
            out: dict = {}
            t = threading.Thread(target=storm, args=(broker.port, n, out))
            t.start()
            worst = 0.0
            with RawClient(broker.bootstrap, timeout=120) as c:
                for _ in range(5):
                    if not t.is_alive():
                        break
                    t0 = time.monotonic()
                    c.request(3, 12, ALL)
                    worst = max(worst, time.monotonic() - t0)
            t.join(600)
            during = percentiles(steady.take()).get("p99")
            rate = n / out["seconds"] if "seconds" in out else 0
            print(f"{n:>10} {rate:>11.1f} {worst:>19.3f} {before!s:>14} {during!s:>14}", flush=True)
            time.sleep(3)
            steady.take()
        steady.stop.set()
        steady.join(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
