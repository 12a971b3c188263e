"""Kafka client run inside the kind cluster by integration/test_kind.py.

    python /client.py produce BOOTSTRAP TOPIC COUNT RATE   # prints one line per acknowledged message
    python /client.py consume BOOTSTRAP TOPIC EXPECTED     # prints every value read, until EXPECTED or idle

`produce` uses acks=all with idempotence and long retries, so messages sent while a
broker pod is being replaced are retried; only acknowledged ones are printed ("ACK n"),
and failures are printed as "ERR n reason".
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def produce(bootstrap: str, topic: str, count: int, rate: float) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 300000, "linger.ms": 5,
                  "reconnect.backoff.max.ms": 2000})

    def done(err, msg):
        if err is None:
            print(f"ACK {msg.value().decode()}", flush=True)
        else:
            print(f"ERR {msg.value().decode()} {err}", flush=True)

    start = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, str(i).encode(), on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        ahead = start + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    left = p.flush(330)
    print(f"DONE {left}", flush=True)


def consume(bootstrap: str, topic: str, expected: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{time.time_ns()}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen = 0
    idle_since = time.monotonic()
    while seen < expected and time.monotonic() - idle_since < 60:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        idle_since = time.monotonic()
        seen += 1
        print(f"GOT {msg.value().decode()}", flush=True)
    c.close()


if __name__ == "__main__":
    mode, bootstrap, topic, *rest = sys.argv[1:]
    if mode == "produce":
        produce(bootstrap, topic, int(rest[0]), float(rest[1]))
    else:
        consume(bootstrap, topic, int(rest[0]))
