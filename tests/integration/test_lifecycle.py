"""A cluster that runs for months: compaction into Kafscale segments, retention,
DeleteRecords and garbage collection, on real etcd and S3 with real clients.

Brokers here run with short intervals (compaction every 300 ms, segments old enough at
once, retention checked every 500 ms, a 2 s orphan grace); the defaults suit production.
"""

from __future__ import annotations

import time
import uuid

import pytest
from minio import Minio

from kafscale.metadata.etcd import EtcdStore
from kafscale.protocol import messages
from tests.integration.test_cluster import Tail, assert_exactly_acked, assert_read_exactly_once_in_order
from tests.integration.test_clients import create_topic
from tests.integration.test_durability import AckedProducer
from tests.support import kfs_reader
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient

FAST = {"compaction_interval_ms": 300, "compaction_min_age_ms": 0, "log_retention_check_interval_ms": 500,
        "orphan_grace_ms": 2000, "flush_interval_ms": 5}


def _s3(stack) -> Minio:
    return Minio(stack.s3_endpoint.split("://", 1)[1], access_key=stack.access_key,
                 secret_key=stack.secret_key, secure=False, region="us-east-1")


def objects(stack, prefix: str) -> dict[str, int]:
    return {o.object_name: o.size for o in _s3(stack).list_objects(stack.bucket, prefix=prefix, recursive=True)}


def manifest_keys(stack, broker, topic: str) -> int:
    store = EtcdStore(stack.etcd_endpoints)
    try:
        return len(store.get_prefix(f"{broker.etcd_prefix}/segments/{topic}/"))
    finally:
        store.close()


def earliest(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    """(error code, earliest offset) from ListOffsets."""
    R = messages.ListOffsetsRequest
    req = R(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(name=topic, partitions=[
        R.ListOffsetsPartition(partition_index=partition, current_leader_epoch=-1, timestamp=-2)])])
    with RawClient(bootstrap, timeout=10) as c:
        p = c.request(2, 7, req).topics[0].partitions[0]
        return p.error_code, p.offset


def test_compaction_under_load_loses_and_repeats_nothing_and_shrinks_the_manifest(broker_factory, stack):
    broker = broker_factory(options=FAST)
    topic = f"compact-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=3)
    prod = AckedProducer(broker.bootstrap, topic, 3, rate=3000, **{"linger.ms": 1}).start()
    tail = Tail(broker.bootstrap, topic, 3)  # reads all along, through every swap
    wait_for(lambda: prod.acked_count() > 10_000, timeout=60, message="acks")
    prod.stop(60)
    assert not prod.failed, prod.failed[:3]
    total = sum(len(a) for a in prod.acked.values())
    wait_for(lambda: tail.count() >= total, timeout=60, message="the tail read everything")
    tail.stop()
    assert not tail.errors, tail.errors[:3]
    assert_read_exactly_once_in_order(tail, prod)
    # The compactor catches up: a handful of keys per partition, not one per flush.
    wait_for(lambda: manifest_keys(stack, broker, topic) <= 3 * 3, timeout=60, message="the manifest shrinks")
    assert_exactly_acked(prod, broker.bootstrap, no_duplicates=True)
    # Every segment the compactor wrote parses with the independent reader.
    written = [k for k in objects(stack, f"{broker.s3_namespace}/{topic}/") if k.endswith(".kfs")]
    assert written, "the compactor wrote no segment"
    s3 = _s3(stack)
    for key in written:
        seg = kfs_reader.read_segment(s3.get_object(stack.bucket, key).read())
        index = kfs_reader.read_index(s3.get_object(stack.bucket, key[:-4] + ".index").read())
        kfs_reader.check_index_against_segment(index, seg)


def test_kill_9_mid_compaction_loses_nothing(broker_factory, stack):
    broker = broker_factory(options={**FAST, "compaction_interval_ms": 50})
    topic = f"compact-kill-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=2)
    prod = AckedProducer(broker.bootstrap, topic, 2, rate=4000,
                         **{"linger.ms": 1, "message.timeout.ms": 120000, "enable.idempotence": True}).start()
    for _ in range(3):
        wait_for(lambda: prod.acked_count() > 3000, timeout=60, message="acks")
        before = prod.acked_count()
        wait_for(lambda: prod.acked_count() > before + 2000, timeout=60, message="more acks")
        broker.kill()  # the compactor runs every 50 ms: most kills land in or near a swap
        broker.start()
    wait_for(lambda: prod.acked_count() > before + 4000, timeout=60, message="acks after the last restart")
    prod.stop(120)
    assert not prod.failed, prod.failed[:3]
    assert_exactly_acked(prod, broker.bootstrap, no_duplicates=True)
    # and compaction went on across the restarts: a few keys per partition (at most one
    # leftover segment per merge level), not one per flush
    flushed = manifest_keys(stack, broker, topic)
    wait_for(lambda: manifest_keys(stack, broker, topic) <= 2 * 8, timeout=60,
             message=f"the manifest shrinks (from {flushed} keys; now {manifest_keys(stack, broker, topic)})")
    assert_exactly_acked(prod, broker.bootstrap, no_duplicates=True)


def test_retention_moves_the_log_start_and_consumers_reset_to_it(broker_factory, stack):
    from confluent_kafka import Consumer, Producer, TopicPartition

    broker = broker_factory(options=FAST)
    topic = f"retain-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1, config={"retention.ms": "2000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(50):
        p.produce(topic, b"old-%d" % i, partition=0)
    assert p.flush(30) == 0
    time.sleep(2.5)
    for i in range(50):
        p.produce(topic, b"new-%d" % i, partition=0)
    assert p.flush(30) == 0
    # the old records' segments expire; the new ones (written just now) stay
    wait_for(lambda: earliest(broker.bootstrap, topic)[1] >= 50, timeout=20, message="the log start moves")
    assert earliest(broker.bootstrap, topic) == (0, 50)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])  # below the log start: OFFSET_OUT_OF_RANGE, then a reset
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 50 and time.monotonic() < deadline:
        got += [(m.offset(), m.value()) for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    assert got[0] == (50, b"new-0") and len(got) == 50
    # the objects of the expired segments are collected once past the grace period
    prefix = f"{broker.s3_namespace}/{topic}/"
    wait_for(lambda: len(objects(stack, prefix)) <= 2 and manifest_keys(stack, broker, topic) <= 1,
             timeout=30, message="expired objects collected")


def test_delete_records_with_confluent_kafka_and_kafka_python(broker):
    from confluent_kafka import KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition

    topic = f"delrec-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce(topic, b"m%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = admin.delete_records([TopicPartition(topic, 0, 20)])
    assert res[TopicPartition(topic, 0)].result(30).low_watermark == 20
    assert earliest(broker.bootstrap, topic, 0) == (0, 20)
    # -1: up to the high watermark
    res = admin.delete_records([TopicPartition(topic, 1, -1)])
    assert res[TopicPartition(topic, 1)].result(30).low_watermark == 50
    # beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing moves
    res = admin.delete_records([TopicPartition(topic, 0, 51)])
    with pytest.raises(KafkaException) as err:
        res[TopicPartition(topic, 0)].result(30)
    assert err.value.args[0].code() == 1
    assert earliest(broker.bootstrap, topic, 0) == (0, 20)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        out = kp.delete_records({KTopicPartition(topic, 0): 35})
        assert out[KTopicPartition(topic, 0)]["low_watermark"] == 35
    finally:
        kp.close()
    assert earliest(broker.bootstrap, topic, 0) == (0, 35)
    # a fetch below the log start is out of range; at it, the data is there
    from tests.integration.test_clients import confluent_consume
    got, offsets = confluent_consume(broker.bootstrap, topic, 15, partitions=1, timeout=20)
    assert offsets[0][0] == 35 and len(offsets[0]) == 15


def test_garbage_collection_deletes_a_planted_orphan_and_keeps_live_objects(broker_factory, stack):
    from confluent_kafka import Producer

    broker = broker_factory(options={**FAST, "compaction_interval_ms": 3_600_000})
    topic = f"gc-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce(topic, b"live-%d" % i, partition=0)
    assert p.flush(30) == 0
    prefix = f"{broker.s3_namespace}/{topic}/"
    live = set(objects(stack, prefix))
    assert live
    import io
    orphan = f"{prefix}objects/0000000000001-deadbeef0000-b9-orphan.kfo"
    _s3(stack).put_object(stack.bucket, orphan, io.BytesIO(b"x" * 100), 100)
    wait_for(lambda: orphan not in objects(stack, prefix), timeout=30, message="the orphan is collected")
    assert live <= set(objects(stack, prefix)), "a referenced object was deleted"
    from tests.integration.test_clients import confluent_consume
    got, offsets = confluent_consume(broker.bootstrap, topic, 10, partitions=1, timeout=20)
    assert [m.value for m in got[0]] == [b"live-%d" % i for i in range(10)]


def test_a_fenced_compactor_changes_nothing_on_real_etcd_and_s3(stack):
    """The swap races a new owner: broker 1 claims the partition (next epoch) while
    broker 0's compactor has its run planned and its objects uploaded; the transaction
    compares the owner record, so nothing of broker 0's lands and no record is lost."""
    import curio

    from kafscale.config import Config
    from kafscale.errors import Fenced
    from kafscale.metadata.cluster import Cluster
    from kafscale.protocol.records import build_batch, decode_records
    from kafscale.server.runtime import CurioRuntime
    from kafscale.storage.engine import LogManager
    from kafscale.storage.objectstore import S3ObjectStore

    prefix, ns = f"/fence-{uuid.uuid4().hex[:6]}", f"fence-{uuid.uuid4().hex[:6]}"
    store = EtcdStore(stack.etcd_endpoints)
    objects = S3ObjectStore(stack.s3_endpoint, stack.bucket, stack.access_key, stack.secret_key)
    cfg = Config(etcd_endpoints=stack.etcd_endpoints, s3_endpoint=stack.s3_endpoint, s3_namespace=ns,
                 etcd_prefix=prefix, compaction_min_age_ms=0, flush_interval_ms=5)

    async def main():
        cluster = Cluster(store, prefix)
        mgr = LogManager(CurioRuntime(), cfg, cluster, objects)
        await mgr.refresh_topics()
        await mgr.create_topic("t", 1)
        plog = await mgr.owned_log("t", 0)
        for i in range(6):
            batch = bytearray(build_batch([(b"k", b"r%d" % i, [], 1_700_000_000_000 + i)]))
            await plog.append(batch, 1, 1_700_000_000_000 + i, 10.0)
        await curio.sleep(0.1)
        before = dict(store.get_prefix(f"{prefix}/segments/"))
        # broker 1 takes the partition over: the old owner record goes, a new epoch comes
        store.delete(f"{prefix}/partitions/t/0/leader")
        Cluster(store, prefix).claim_partition(mgr.topics["t"], 0, broker_id=1)
        with pytest.raises(Fenced):
            await mgr.compactor.compact_once(plog)
        assert dict(store.get_prefix(f"{prefix}/segments/")) == before
        other = LogManager(CurioRuntime(), cfg, Cluster(store, prefix), objects)
        await other.refresh_topics()
        view = await other.partition_log("t", 0)
        res = await view.read(0, 1 << 20)
        got = [r.value for r in decode_records(res.records)]
        # (a read returns whole segments from the first; the rest follow on later reads)
        assert got and got == [b"r%d" % i for i in range(len(got))]
        return True

    try:
        assert curio.run(main)
    finally:
        store.delete(prefix, prefix=True)
        store.close()
