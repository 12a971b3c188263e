"""One round trip per client library, with whatever security settings a test gives:
create a topic through the library's admin client, produce ``n`` values, consume them
back in a consumer group and commit. Each returns the values consumed.

    kafka_python_roundtrip(bootstrap, topic, security_protocol="SSL", ssl_cafile=...)
    confluent_roundtrip(bootstrap, topic, {"security.protocol": "SASL_SSL", ...})
    asyncio.run(aiokafka_roundtrip(bootstrap, topic, security_protocol="SSL", ssl_context=...))
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from support.procs import wait_for

__all__ = ["values", "kafka_python_metadata", "kafka_python_roundtrip", "confluent_roundtrip",
           "aiokafka_roundtrip"]


def values(n: int) -> list[bytes]:
    return [b"v%d" % i for i in range(n)]


def kafka_python_metadata(consumer: Any, *topics: str, timeout: float = 20.0) -> None:
    """Wait until a subscribed kafka-python consumer holds the topics' partitions in its
    metadata; call it before the consumer's first poll.

    kafka-python 3.0.12's group leader loses the assignment of a rebalance it starts
    itself on a metadata change when a poll times out during that rebalance's SyncGroup:
    its join loop stops on ``need_rejoin()`` turning false (set by its own assignment)
    with the join still in flight, so the SyncGroup answer is never applied and the
    member holds nothing until its session times out. A consumer that polls before its
    first metadata answer assigns nothing, then rebalances when the metadata comes in,
    which is that case; waiting for the metadata first keeps tests out of it.
    """
    wait_for(lambda: all(consumer.partitions_for_topic(t) for t in topics), timeout,
             message=f"metadata for {', '.join(topics)}")


def kafka_python_roundtrip(bootstrap: str, topic: str, n: int = 200, partitions: int = 2,
                           **client: Any) -> list[bytes]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **client)
    for v in values(n):
        producer.send(topic, value=v)
    producer.flush(60)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="g-" + topic,
                             auto_offset_reset="earliest", consumer_timeout_ms=20_000, **client)
    kafka_python_metadata(consumer, topic)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == n:
            break
    consumer.commit()
    consumer.close()
    return got


def confluent_roundtrip(bootstrap: str, topic: str, conf: dict[str, Any], n: int = 200,
                        partitions: int = 2) -> list[bytes]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = {"bootstrap.servers": bootstrap, **conf}
    admin = AdminClient(conf)  # (kept referenced until its future is done)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)
    p = Producer({**conf, "acks": "all"})
    errors: list = []
    for i, v in enumerate(values(n)):
        p.produce(topic, value=v, key=b"k%d" % i, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors[:3]
    c = Consumer({**conf, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got.append(m.value())
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


async def aiokafka_roundtrip(bootstrap: str, topic: str, n: int = 200, **client: Any) -> list[bytes]:
    """(``client`` may hold an ``ssl_context`` factory under ``ssl_context``: a callable is
    called for each client, as an SSLContext should not be shared between event loops' clients.)"""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    def settings() -> dict[str, Any]:
        out = dict(client)
        if callable(out.get("ssl_context")):
            out["ssl_context"] = out["ssl_context"]()
        return out

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings())
    await producer.start()
    try:
        for v in values(n):
            await producer.send(topic, value=v)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="g-" + topic,
                                auto_offset_reset="earliest", **settings())
    await consumer.start()
    got: list[bytes] = []
    try:
        while len(got) < n:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
            for records in batch.values():
                got += [r.value for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def high_watermarks(bootstrap: str, topic: str, conf: dict[str, Any] | None = None) -> list[int] | None:
    """Per-partition high watermarks of ``topic`` (None: no such topic), with confluent-kafka;
    ``conf`` adds client settings (security)."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw-" + uuid.uuid4().hex[:6],
                  "allow.auto.create.topics": False, **(conf or {})})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return None
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(md.partitions)]
    finally:
        c.close()
