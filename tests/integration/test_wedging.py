"""No client can wedge the broker: metadata storms, frame edge cases, idle and
half-sent connections, bounded request memory, quiet logs, a shutdown within its grace.
Each against a real broker (real etcd, real S3) over TCP."""

from __future__ import annotations

import socket
import struct
import time
import uuid

from kafscale.protocol import headers, messages
from kafscale.protocol.records import build_batch
from tests.integration.test_clients import create_topic
from tests.integration.test_durability import AckedProducer
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient, create_topic_request, produce_request

ALL_TOPICS = messages.MetadataRequest(topics=None, allow_auto_topic_creation=False)


def _api_versions(correlation: int) -> bytes:
    return headers.encode_request(18, 3, correlation, "wedge",
                                  messages.ApiVersionsRequest(client_software_name="w", client_software_version="1"))


def _read_frames(sock: socket.socket, n: int, timeout: float = 10.0) -> list[bytes]:
    """Up to ``n`` response frames; fewer if the broker closes the connection first."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        try:
            chunk = sock.recv(1 << 16)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 4 and len(buf) - 4 >= struct.unpack(">i", buf[:4])[0]:
            size = struct.unpack(">i", buf[:4])[0]
            out.append(buf[4:4 + size])
            buf = buf[4 + size:]
    return out


def test_requests_before_a_zero_length_frame_are_answered_then_the_connection_closes(broker):
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(_api_versions(1) + _api_versions(2) + _api_versions(3) + b"\x00\x00\x00\x00")
        frames = _read_frames(s, 4)
        assert [struct.unpack(">i", f[:4])[0] for f in frames] == [1, 2, 3]  # all three, in order
        assert s.recv(1) == b""  # then closed


def test_a_produce_before_a_zero_length_frame_is_answered_with_its_offset(broker):
    topic = f"zero-{uuid.uuid4().hex[:6]}"
    with RawClient(broker.bootstrap) as c:
        assert c.request(19, 5, create_topic_request(topic, 1)).topics[0].error_code == 0
    batch = build_batch([(b"k", b"v%d" % i, [], 1_700_000_000_000 + i) for i in range(40)])
    req = headers.encode_request(0, 9, 7, "wedge", produce_request(topic, 0, batch))
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(req + b"\x00\x00\x00\x00")
        frames = _read_frames(s, 2, timeout=20)
    assert len(frames) == 1, "the produce was not answered"
    _corr, resp = headers.decode_response(0, 9, frames[0])
    p = resp.responses[0].partition_responses[0]
    assert (p.error_code, p.base_offset) == (0, 0)  # written AND acknowledged


def test_a_metadata_storm_on_one_connection_does_not_starve_another_client(broker):
    with RawClient(broker.bootstrap) as c:
        for i in range(60):
            c.request(19, 5, create_topic_request(f"storm-{uuid.uuid4().hex[:6]}-{i}", 4))
    for n in (200, 1000):
        storm = socket.create_connection(("127.0.0.1", broker.port))
        try:
            req = b"".join(headers.encode_request(3, 12, i, "storm", ALL_TOPICS) for i in range(n))
            storm.sendall(req)  # n pipelined all-topics Metadata, never read
            worst = 0.0
            with RawClient(broker.bootstrap, timeout=10) as c:
                for _ in range(10):
                    t0 = time.monotonic()
                    resp = c.request(3, 12, ALL_TOPICS)
                    worst = max(worst, time.monotonic() - t0)
                    assert len(resp.topics) >= 60
            assert worst < 1.0, f"another client's Metadata took {worst:.2f} s during a storm of {n}"
        finally:
            storm.close()


def test_pipelined_metadata_cost_grows_linearly(broker):
    with RawClient(broker.bootstrap) as c:
        for i in range(40):
            c.request(19, 5, create_topic_request(f"lin-{uuid.uuid4().hex[:6]}-{i}", 2))

    def pipelined(n: int) -> float:
        with socket.create_connection(("127.0.0.1", broker.port)) as s:
            t0 = time.monotonic()
            s.sendall(b"".join(headers.encode_request(3, 12, i, "lin", ALL_TOPICS) for i in range(n)))
            assert len(_read_frames(s, n, timeout=60)) == n
            return time.monotonic() - t0

    pipelined(10)  # warm-up
    small, large = pipelined(25), pipelined(200)
    # 8x the requests: linear is ~8x; the old quadratic growth was ~60x
    assert large < small * 20 + 0.5, f"25 took {small:.3f} s, 200 took {large:.3f} s"


def test_idle_and_half_sent_connections_are_closed(broker_factory):
    broker = broker_factory(options={"connections_max_idle_ms": 1500})
    idle = socket.create_connection(("127.0.0.1", broker.port))
    half = socket.create_connection(("127.0.0.1", broker.port))
    half.sendall(struct.pack(">i", 1000) + b"\x00\x12\x00\x03")  # a frame of 1000 bytes, 6 sent
    busy = socket.create_connection(("127.0.0.1", broker.port))  # keeps talking: stays open
    try:
        deadline = time.monotonic() + 4
        n = 0
        while time.monotonic() < deadline:
            n += 1
            busy.sendall(_api_versions(n))
            assert len(_read_frames(busy, 1)) == 1
            time.sleep(0.3)
        for s in (idle, half):
            s.settimeout(5)
            assert s.recv(1) == b"", "the idle connection is still open"
        busy.sendall(_api_versions(99))
        assert len(_read_frames(busy, 1)) == 1
    finally:
        for s in (idle, half, busy):
            s.close()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_half_sent_large_frames_are_bounded_by_queued_max_request_bytes(broker_factory):
    broker = broker_factory(options={"queued_max_request_bytes": 64 << 20})
    before = _rss(broker.pid)
    socks = []
    chunk = b"\x00" * (1 << 20)
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", broker.port))
            s.setblocking(False)
            s.send(struct.pack(">i", 100 << 20))  # announces 100 MB
            socks.append(s)
        # every connection pushes 1 MiB of its frame; past the bound the broker stops reading
        for s in socks:
            try:
                s.send(chunk)
            except BlockingIOError:
                pass
        time.sleep(3)
        grown = _rss(broker.pid) - before
        assert grown < 150 << 20, f"RSS grew {grown >> 20} MiB for 200 MiB of half-sent frames"
        # the broker still answers (on a new connection, once room is made by closing)
    finally:
        for s in socks:
            s.close()
    with RawClient(broker.bootstrap) as c:
        assert c.request(18, 3, messages.ApiVersionsRequest(client_software_name="t",
                                                            client_software_version="1")).error_code == 0


def test_malformed_frames_log_one_line_each_at_most_and_no_traceback(broker):
    for i in range(100):
        with socket.create_connection(("127.0.0.1", broker.port)) as s:
            s.sendall(struct.pack(">i", 12) + b"\x7f\x7f\x00\x00" + b"\xff" * 8)  # unknown API key 32639
            s.settimeout(5)
            try:
                s.recv(1)
            except (ConnectionResetError, socket.timeout):
                pass
    log = broker.log_text()
    assert "Traceback" not in log and "Task Crash" not in log
    closing = [line for line in log.splitlines() if "closing connection" in line]
    assert 1 <= len(closing) <= 15, f"{len(closing)} log lines for 100 malformed frames"
    with RawClient(broker.bootstrap) as c:
        assert c.request(18, 3, messages.ApiVersionsRequest(client_software_name="t",
                                                            client_software_version="1")).error_code == 0


def test_connection_limits(broker_factory):
    broker = broker_factory(options={"max_connections_per_ip": 5})
    socks = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(5)]
    try:
        extra = socket.create_connection(("127.0.0.1", broker.port))
        extra.settimeout(5)
        assert extra.recv(1) == b"", "a sixth connection from one address was kept"
        extra.close()
        socks[0].sendall(_api_versions(1))
        assert len(_read_frames(socks[0], 1)) == 1
        socks.pop().close()
        time.sleep(0.3)
        again = socket.create_connection(("127.0.0.1", broker.port))
        again.sendall(_api_versions(2))
        assert len(_read_frames(again, 1)) == 1
        again.close()
    finally:
        for s in socks:
            s.close()


def test_sigterm_with_100_partitions_under_load_exits_in_time_and_loses_nothing(broker_factory):
    from tests.integration.test_cluster import assert_exactly_acked

    a = broker_factory(options={"lease_ttl_s": 3})
    topic = f"term-{uuid.uuid4().hex[:6]}"
    create_topic(a.bootstrap, topic, partitions=100)
    prod = AckedProducer(a.bootstrap, topic, 100, rate=3000, **{"message.timeout.ms": 120000,
                                                                "enable.idempotence": True}).start()
    wait_for(lambda: prod.acked_count() > 3000, timeout=60, message="acks")
    t0 = time.monotonic()
    code = a.terminate(timeout=35)
    took = time.monotonic() - t0
    assert code == 0 and took < 30, f"exit {code} after {took:.1f} s"
    a.start()
    before = prod.acked_count()
    wait_for(lambda: prod.acked_count() > before + 2000, timeout=60, message="acks after the restart")
    prod.stop(120)
    assert not prod.failed, prod.failed[:3]
    assert_exactly_acked(prod, a.bootstrap, no_duplicates=True)
