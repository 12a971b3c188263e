"""Bad input gets the right answer, and other clients keep being served meanwhile."""

from __future__ import annotations

import socket
import struct
import threading
import uuid

import pytest

from kafscale.protocol import headers, messages
from kafscale.protocol.records import build_batch
from tests.integration.test_clients import confluent_consume, confluent_produce, create_topic
from tests.integration.clientdata import messages as make_messages
from tests.support.rawclient import RawClient, create_topic_request, produce_request

CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION, MESSAGE_TOO_LARGE, UNSUPPORTED_VERSION = 2, 3, 10, 35


@pytest.fixture
def busy(broker):
    """A real client producing and consuming on its own connection throughout the test."""
    topic = f"busy-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=1)
    errors: list[BaseException] = []
    stop = threading.Event()
    rounds = [0]

    def loop():
        try:
            n = 0
            while not stop.is_set():
                msgs = make_messages(50, partitions=1, tag=str(rounds[0]))
                confluent_produce(broker.bootstrap, topic, msgs, "none")
                n += 50
                got, _ = confluent_consume(broker.bootstrap, topic, n, partitions=1, timeout=30)
                assert sum(len(v) for v in got.values()) == n
                rounds[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the fixture
            errors.append(exc)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield broker
    stop.set()
    t.join(120)
    assert not errors, f"the other client failed: {errors[0]!r}"
    assert rounds[0] >= 1, "the other client completed no round"
    assert broker.running


def _batch(n: int = 3, value: bytes = b"v") -> bytes:
    return build_batch([(b"k", value, [], 1_700_000_000_000 + i) for i in range(n)])


def _produce_code(client: RawClient, topic: str, partition: int, records: bytes, version: int = 9) -> int:
    resp = client.request(0, version, produce_request(topic, partition, records))
    return resp.responses[0].partition_responses[0].error_code


def _alive(broker) -> None:
    with RawClient(broker.bootstrap) as c:
        resp = c.request(18, 3, messages.ApiVersionsRequest(client_software_name="t", client_software_version="1"))
        assert resp.error_code == 0


def test_truncated_frame_then_disconnect(busy):
    with RawClient(busy.bootstrap) as c:
        c.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x03" + b"\x00" * 10)
    _alive(busy)


def test_truncated_body_inside_a_whole_frame_closes_only_that_connection(busy):
    with RawClient(busy.bootstrap) as c:
        body = struct.pack(">hhi", 3, 9, 1) + b"\x00"  # Metadata v9 header cut short
        c.send_raw(struct.pack(">i", len(body)) + body)
        assert c.is_closed()
    _alive(busy)


def test_oversized_frame_is_refused(busy):
    with RawClient(busy.bootstrap) as c:
        c.send_raw(struct.pack(">i", 2_000_000_000) + b"\x00" * 64)
        assert c.is_closed()
    _alive(busy)


def test_garbage_bytes(busy):
    with RawClient(busy.bootstrap) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
        assert c.is_closed()
    _alive(busy)


def test_unknown_api_key(busy):
    with RawClient(busy.bootstrap) as c:
        body = struct.pack(">hhi", 9999, 0, 7) + struct.pack(">h", -1)
        c.send_raw(struct.pack(">i", len(body)) + body)
        assert c.is_closed()
    _alive(busy)


def test_unsupported_api_versions_version_gets_error_and_the_list(busy):
    with RawClient(busy.bootstrap) as c:
        body = struct.pack(">hhi", 18, 99, 42) + struct.pack(">h", 4) + b"test" + b"\x00"
        c.send_raw(struct.pack(">i", len(body)) + body)
        frame = c.recv_frame()
        assert frame is not None
        correlation, error_code = struct.unpack_from(">ih", frame, 0)
        assert (correlation, error_code) == (42, UNSUPPORTED_VERSION)
        resp = messages.ApiVersionsResponse.decode(frame[4:], 0)
        keys = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
        assert keys[18] == (0, 4) and keys[0] == (3, 11)


def test_unsupported_produce_version_closes_the_connection(busy):
    with RawClient(busy.bootstrap) as c:
        body = struct.pack(">hhi", 0, 2, 1) + struct.pack(">h", -1) + b"\x00" * 16
        c.send_raw(struct.pack(">i", len(body)) + body)
        assert c.is_closed()
    _alive(busy)


def test_wrong_crc_is_corrupt_message_for_that_partition_only(busy):
    topic = f"crc-{uuid.uuid4().hex[:6]}"
    with RawClient(busy.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 2)).topics[0].error_code == 0
        bad = bytearray(_batch())
        bad[-1] ^= 0xFF  # flip a byte of the last record: the CRC no longer matches
        R = messages.ProduceRequest
        req = R(acks=-1, timeout_ms=10000, topic_data=[R.TopicProduceData(name=topic, partition_data=[
            R.PartitionProduceData(index=0, records=bytes(bad)),
            R.PartitionProduceData(index=1, records=_batch())])])
        parts = c.request(0, 9, req).responses[0].partition_responses
        codes = {p.index: p.error_code for p in parts}
        assert codes == {0: CORRUPT_MESSAGE, 1: 0}
        # A good batch after a corrupt one in the same blob still fails the whole partition.
        assert _produce_code(c, topic, 0, _batch() + bytes(bad)) == CORRUPT_MESSAGE
        assert _produce_code(c, topic, 0, _batch()[:-5]) == CORRUPT_MESSAGE  # truncated
        assert _produce_code(c, topic, 0, _batch()) == 0  # the connection still serves
    got, offsets = confluent_consume(busy.bootstrap, topic, 6, partitions=2, timeout=15)
    assert offsets == {0: [0, 1, 2], 1: [0, 1, 2]}, "a corrupt batch took offsets"


def test_batch_over_max_message_bytes_is_message_too_large(busy):
    topic = f"big-{uuid.uuid4().hex[:6]}"
    with RawClient(busy.bootstrap) as c:
        resp = c.request(19, 5, create_topic_request(topic, 1, {"max.message.bytes": "2000"}))
        assert resp.topics[0].error_code == 0
        assert _produce_code(c, topic, 0, _batch(1, b"x" * 5000)) == MESSAGE_TOO_LARGE
        assert _produce_code(c, topic, 0, _batch(1, b"x" * 500)) == 0


def test_produce_to_missing_partition_and_topic(busy):
    topic = f"few-{uuid.uuid4().hex[:6]}"
    with RawClient(busy.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 2)).topics[0].error_code == 0
        assert _produce_code(c, topic, 5, _batch()) == UNKNOWN_TOPIC_OR_PARTITION
        assert _produce_code(c, topic, -1, _batch()) == UNKNOWN_TOPIC_OR_PARTITION


def test_produce_to_unknown_topic_without_auto_create(broker_factory):
    b = broker_factory(options={"auto_create_topics": "false"})
    with RawClient(b.bootstrap) as c:
        assert _produce_code(c, "no-such-topic", 0, _batch()) == UNKNOWN_TOPIC_OR_PARTITION


def test_invalid_acks(busy):
    topic = f"acks-{uuid.uuid4().hex[:6]}"
    with RawClient(busy.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 1)).topics[0].error_code == 0
        resp = c.request(0, 9, produce_request(topic, 0, _batch(), acks=2))
        assert resp.responses[0].partition_responses[0].error_code == 21  # INVALID_REQUIRED_ACKS


def test_acks_zero_gets_no_response_but_is_written(broker):
    topic = f"acks0-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 1)).topics[0].error_code == 0
        c.correlation += 1
        from kafscale.protocol import headers
        c.send_raw(headers.encode_request(0, 9, c.correlation, "t", produce_request(topic, 0, _batch(), acks=0)))
        # The next response on this connection must be the Metadata answer, not a produce answer.
        resp = c.request(3, 9, messages.MetadataRequest(topics=[messages.MetadataRequest.MetadataRequestTopic(name=topic)]))
        assert resp.topics[0].name == topic
    got, offsets = confluent_consume(broker.bootstrap, topic, 3, partitions=1, timeout=15)
    assert offsets == {0: [0, 1, 2]}


def test_two_batches_in_one_partition_are_refused(busy):
    topic = f"two-{uuid.uuid4().hex[:6]}"
    with RawClient(busy.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 1)).topics[0].error_code == 0
        assert _produce_code(c, topic, 0, _batch() + _batch()) == 87  # INVALID_RECORD


def test_idempotent_retry_gets_the_original_offset_and_gaps_are_refused(broker):
    topic = f"idem-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 1)).topics[0].error_code == 0
        init = c.request(22, 4, messages.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=0))
        assert init.error_code == 0 and init.producer_id >= 0
        pid, epoch = init.producer_id, init.producer_epoch

        def batch(seq: int, n: int = 2) -> bytes:
            return build_batch([(b"k", b"v%d" % i, [], 1_700_000_000_000) for i in range(n)],
                               producer_id=pid, producer_epoch=epoch, base_sequence=seq)

        def send(records: bytes):
            part = c.request(0, 9, produce_request(topic, 0, records)).responses[0].partition_responses[0]
            return part.error_code, part.base_offset

        assert send(batch(0)) == (0, 0)
        assert send(batch(2)) == (0, 2)
        assert send(batch(2)) == (0, 2), "a retried batch was written twice"
        assert send(batch(0)) == (0, 0)
        assert send(batch(9))[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
        assert send(batch(4)) == (0, 4)
        bumped = c.request(22, 4, messages.InitProducerIdRequest(
            transactional_id=None, transaction_timeout_ms=0, producer_id=pid, producer_epoch=epoch))
        assert (bumped.producer_id, bumped.producer_epoch) == (pid, epoch + 1)
        new_epoch = build_batch([(b"k", b"n", [], 1)], producer_id=pid, producer_epoch=epoch + 1, base_sequence=0)
        assert send(new_epoch) == (0, 6)
        assert send(batch(6))[0] == 47  # INVALID_PRODUCER_EPOCH: the old epoch is fenced
    broker.restart()  # the producer table survives in etcd
    with RawClient(broker.bootstrap) as c:
        part = c.request(0, 9, produce_request(topic, 0, new_epoch)).responses[0].partition_responses[0]
        assert (part.error_code, part.base_offset) == (0, 6), "a retry after restart was written twice"
    got, offsets = confluent_consume(broker.bootstrap, topic, 7, partitions=1, timeout=15)
    assert offsets == {0: [0, 1, 2, 3, 4, 5, 6]}


def test_transactional_producer_is_refused_clearly(broker):
    with RawClient(broker.bootstrap) as c:
        init = c.request(22, 4, messages.InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=1000))
        assert init.error_code == 53  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_clients_that_vanish_in_the_middle_of_large_responses_leave_the_broker_up(busy):
    """Clients that pipeline fetches of megabytes and then reset the connection while
    the answers are being sent: each only loses its own connection. (A socket closed
    while the task sending on it was still registered with curio's selector once
    stopped the whole broker with EBADF.)"""
    broker = busy
    topic = f"vanish-{uuid.uuid4().hex[:6]}"
    create_topic(broker.bootstrap, topic, partitions=4)
    value = bytes(range(256)) * 400  # ~100 KB, so a fetch answer is megabytes
    with RawClient(broker.bootstrap) as c:
        for i in range(24):
            assert _produce_code(c, topic, i % 4, build_batch(
                [(b"k", value, [], 1_700_000_000_000 + j) for j in range(10)])) == 0
    F = messages.FetchRequest
    fetch = F(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=64 << 20, isolation_level=0,
              session_id=0, session_epoch=-1,
              topics=[F.FetchTopic(topic=topic, partitions=[
                  F.FetchPartition(partition=p, fetch_offset=0, partition_max_bytes=16 << 20) for p in range(4)])])
    for round_ in range(40):
        c = RawClient(broker.bootstrap)
        for _ in range(8):
            c.correlation += 1
            c.send_raw(headers.encode_request(1, 11, c.correlation, "vanish", fetch))
        c.sock.recv(round_ * 4096 + 1)  # (the first answer has started)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset, with most of the answers unsent
    _alive(broker)
    assert broker.running


def _high_watermark(client: RawClient, topic: str) -> int:
    R = messages.ListOffsetsRequest
    req = R(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(name=topic, partitions=[
        R.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
    p = client.request(2, 7, req).topics[0].partitions[0]
    assert p.error_code == 0
    return p.offset


def test_every_invalid_batch_is_refused_and_nothing_of_it_is_stored(busy):
    """Batches whose CRC is right but whose content is not (bad compression, counts,
    offset deltas, codecs, control bits, timestamps, null keys on a compacted topic):
    each gets Kafka's error, the high watermark does not move, and the next good batch
    lands at the next offset and is readable."""
    from tests.support import badbatches as bb

    plain, compacted = f"bad-{uuid.uuid4().hex[:6]}", f"badc-{uuid.uuid4().hex[:6]}"
    failures = []
    with RawClient(busy.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(plain, 1)).topics[0].error_code == 0
        assert c.request(19, 5, create_topic_request(compacted, 1, {"cleanup.policy": "compact"})) \
            .topics[0].error_code == 0
        for name, (batch, code, is_compacted) in sorted(bb.BAD_BATCHES.items()):
            topic = compacted if is_compacted else plain
            hw = _high_watermark(c, topic)
            resp = c.request(0, 9, produce_request(topic, 0, batch)).responses[0].partition_responses[0]
            if resp.error_code != code or not resp.error_message:
                failures.append(f"{name}: answered {resp.error_code} ({resp.error_message!r}), want {code}")
            if _high_watermark(c, topic) != hw:
                failures.append(f"{name}: the high watermark moved from {hw}")
            good = c.request(0, 9, produce_request(topic, 0, bb.good_batch(3, bb.LZ4))) \
                .responses[0].partition_responses[0]
            if (good.error_code, good.base_offset) != (0, hw):
                failures.append(f"{name}: the next good batch got {good.error_code} at {good.base_offset}, not {hw}")
        # per-record errors (v8+) name the record at fault
        resp = c.request(0, 9, produce_request(compacted, 0, bb.BAD_BATCHES["null key on a compacted topic"][0]))
        errs = resp.responses[0].partition_responses[0].record_errors
        assert [e.batch_index for e in errs] == [1], errs
    assert not failures, "\n".join(failures)
    n = sum(1 for v in bb.BAD_BATCHES.values() if not v[2])
    got, offsets = confluent_consume(busy.bootstrap, plain, 3 * n, partitions=1, timeout=30)
    assert offsets == {0: list(range(3 * n))}
    assert {m.value for m in got[0]} == {b"v"}  # only the good batches' records
