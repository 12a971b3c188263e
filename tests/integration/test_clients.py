"""Real Kafka clients produce to and consume from a broker on real etcd + real S3.

confluent-kafka (librdkafka), kafka-python and aiokafka each round-trip 10,000
messages with every codec; kcat (Debian's older librdkafka) and kafkajs each produce
and consume a topic too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.clientdata import Msg, assert_same, messages

N = 10_000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ROOT = Path(__file__).resolve().parents[2]


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int = 3, config: dict | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})], operation_timeout=30)
    fs[name].result(timeout=30)


# -- confluent-kafka ---------------------------------------------------------------------

def confluent_produce(bootstrap: str, topic: str, msgs: list[Msg], codec: str) -> None:
    from confluent_kafka import Producer

    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "acks": "all",
                  "linger.ms": 5, "enable.idempotence": False})
    for m in msgs:
        while True:
            try:
                p.produce(topic, value=m.value, key=m.key, partition=m.partition,
                          headers=list(m.headers) or None, timestamp=m.timestamp,
                          on_delivery=lambda err, _msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "messages left unflushed"
    assert not errors, errors[:3]


def confluent_consume(bootstrap: str, topic: str, n: int, partitions: int = 3, timeout: float = 60):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    import time

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: dict[int, list[Msg]] = {}
    offsets: dict[int, list[int]] = {}
    count, deadline = 0, time.monotonic() + timeout
    try:
        while count < n and time.monotonic() < deadline:
            for msg in c.consume(1000, 1.0):
                assert msg.error() is None, msg.error()
                ts_type, ts = msg.timestamp()
                got.setdefault(msg.partition(), []).append(
                    Msg(msg.partition(), msg.key(), msg.value(), tuple(msg.headers() or ()), ts))
                offsets.setdefault(msg.partition(), []).append(msg.offset())
                count += 1
    finally:
        c.close()
    return got, offsets


# -- kafka-python ------------------------------------------------------------------------

def kafka_python_produce(bootstrap: str, topic: str, msgs: list[Msg], codec: str) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                      compression_type=None if codec == "none" else codec)
    futures = [p.send(topic, value=m.value, key=m.key, partition=m.partition, headers=list(m.headers),
                      timestamp_ms=m.timestamp) for m in msgs]
    p.flush(60)
    for f in futures:
        f.get(timeout=60)
    p.close()


def kafka_python_consume(bootstrap: str, topic: str, n: int, partitions: int = 3, timeout: float = 60):
    from kafka import KafkaConsumer, TopicPartition
    import time

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got: dict[int, list[Msg]] = {}
    count, deadline = 0, time.monotonic() + timeout
    try:
        while count < n and time.monotonic() < deadline:
            for tp, records in c.poll(timeout_ms=1000).items():
                for r in records:
                    got.setdefault(tp.partition, []).append(
                        Msg(tp.partition, r.key, r.value, tuple(r.headers), r.timestamp))
                    count += 1
    finally:
        c.close()
    return got


# -- aiokafka ----------------------------------------------------------------------------

async def _aiokafka_roundtrip(bootstrap: str, topic: str, msgs: list[Msg], codec: str):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    await _aiokafka_produce_only(bootstrap, topic, msgs, codec)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest")
    await c.start()
    got: dict[int, list[Msg]] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        count = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while count < len(msgs) and loop.time() < deadline:
            batch = await c.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    got.setdefault(tp.partition, []).append(
                        Msg(tp.partition, r.key, r.value, tuple(r.headers), r.timestamp))
                    count += 1
    finally:
        await c.stop()
    return got


# -- the tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_roundtrip(broker, codec):
    topic = _topic(f"ck-{codec}")
    create_topic(broker.bootstrap, topic)
    msgs = messages(N, tag=codec)
    confluent_produce(broker.bootstrap, topic, msgs, codec)
    got, offsets = confluent_consume(broker.bootstrap, topic, N)
    assert_same(msgs, got)
    for p, offs in offsets.items():
        assert offs == list(range(len(offs))), f"partition {p}: offsets not contiguous from 0"


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_roundtrip(broker, codec):
    topic = _topic(f"kp-{codec}")
    create_topic(broker.bootstrap, topic)
    msgs = messages(N, tag=codec)
    kafka_python_produce(broker.bootstrap, topic, msgs, codec)
    assert_same(msgs, kafka_python_consume(broker.bootstrap, topic, N))


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_roundtrip(broker, codec):
    topic = _topic(f"aio-{codec}")
    create_topic(broker.bootstrap, topic)
    msgs = messages(N, tag=codec)
    assert_same(msgs, asyncio.run(_aiokafka_roundtrip(broker.bootstrap, topic, msgs, codec)))


def test_clients_read_each_others_data(broker):
    """What one client library wrote, another reads identically."""
    topic = _topic("mixed")
    create_topic(broker.bootstrap, topic)
    msgs = messages(3000, tag="mixed")
    confluent_produce(broker.bootstrap, topic, msgs[:1000], "lz4")
    kafka_python_produce(broker.bootstrap, topic, msgs[1000:2000], "zstd")
    asyncio.run(_aiokafka_produce_only(broker.bootstrap, topic, msgs[2000:], "snappy"))
    assert_same(msgs, kafka_python_consume(broker.bootstrap, topic, 3000))


async def _aiokafka_produce_only(bootstrap, topic, msgs, codec):
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         compression_type=None if codec == "none" else codec)
    await p.start()
    try:
        futs = [await p.send(topic, value=m.value, key=m.key, partition=m.partition,
                             headers=list(m.headers), timestamp_ms=m.timestamp) for m in msgs]
        await asyncio.gather(*futs)
    finally:
        await p.stop()


KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (scripts/install-system-deps.sh installs it)")
def test_kcat_produce_and_consume(broker):
    topic = _topic("kcat")
    create_topic(broker.bootstrap, topic, partitions=1)
    lines = [f"key{i}:value {i} " + "x" * (i % 50) for i in range(500)]
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        subprocess.run([KCAT, "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":",
                        "-z", codec, "-X", "acks=all"],
                       input="\n".join(lines) + "\n", text=True, check=True, timeout=60)
    out = subprocess.run([KCAT, "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning",
                          "-e", "-f", "%o %k %s\\n"], capture_output=True, text=True, check=True, timeout=60)
    got = out.stdout.splitlines()
    expected = [f"{n * 500 + i} key{i} value {i} " + "x" * (i % 50) for n in range(5) for i in range(500)]
    assert [g.rstrip() for g in got] == [e.rstrip() for e in expected]


JS = ROOT / "tests" / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None or not (JS / "node_modules" / "kafkajs").exists(),
                    reason="node or tests/js/node_modules missing (scripts/install-system-deps.sh runs npm ci)")
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_kafkajs_roundtrip(broker, codec):
    topic = _topic(f"js-{codec}")
    create_topic(broker.bootstrap, topic)
    out = subprocess.run([NODE, str(JS / "kafkajs_roundtrip.js"), broker.bootstrap, topic, "2000", codec],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary.get("ok") is True, summary
