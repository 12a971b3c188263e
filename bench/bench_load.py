"""Load generators for bench/run.py: confluent-kafka (librdkafka) producers and
consumers, and a raw S3 PUT/GET baseline with the minio client.

Every loop here is bounded in time (and usually in bytes); every address is loopback.

Payloads: 1 KiB values drawn in turn from a pool of 4096 distinct random values (4 MiB,
far beyond lz4's 64 KiB window), so lz4 gains nothing and payload bytes are about the
bytes that reach S3. The steady-rate runs overwrite the first 8 bytes with the send
time (``time.time()``, float64) for end-to-end latency.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import random
import struct
import threading
import time
from array import array
from urllib.parse import urlparse

from bench_procs import cpu_seconds
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MSG_BYTES = 1024
_POOL_N = 4096
_rng = random.Random(20240601)
POOL = [_rng.randbytes(MSG_BYTES) for _ in range(_POOL_N)]
_TS = struct.Struct("<d")

# What a user tuning for throughput would set; everything else is librdkafka's default
# (queue.buffering.max.messages 100000, max.in.flight 1000000, no idempotence).
PRODUCER_TUNING = {
    "compression.type": "lz4",
    "acks": "all",
    "linger.ms": 10,
    "batch.size": 1_000_000,
}


def percentiles(values, qs=(50, 90, 99, 99.9)) -> dict:
    """{'p50': ..., 'p99': ..., 'max': ..., 'n': ...} in milliseconds (values in seconds)."""
    if not values:
        return {"n": 0}
    v = sorted(values)
    n = len(v)
    out = {"n": n}
    for q in qs:
        idx = min(n - 1, max(0, int(round(q / 100 * n + 0.5)) - 1))
        out[f"p{q:g}".replace(".", "_")] = round(v[idx] * 1000, 2)
    out["max"] = round(v[-1] * 1000, 2)
    out["mean"] = round(sum(v) / n * 1000, 2)
    return out


def cdf_points(values, points: int = 200) -> list[list[float]]:
    """A downsampled CDF for the plot: [[latency_ms, fraction], ...]."""
    if not values:
        return []
    v = sorted(values)
    n = len(v)
    idx = sorted({min(n - 1, int(i * (n - 1) / (points - 1))) for i in range(points)})
    return [[round(v[i] * 1000, 3), round((i + 1) / n, 5)] for i in idx]


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 120, extra: dict | None = None) -> float:
    """Create a topic; seconds it took (until the create answer). ``extra``: more client
    settings (e.g. security)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3, **(extra or {})})
    t0 = time.monotonic()
    fut = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=timeout,
                              request_timeout=timeout)[topic]
    fut.result(timeout)
    took = time.monotonic() - t0
    # Wait until metadata shows every partition with a leader.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            break
        time.sleep(0.2)
    return took


def _producer(bootstrap: str, on_delivery, **extra) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "log_level": 3, "message.timeout.ms": 120_000,
            **PRODUCER_TUNING, **extra, "on_delivery": on_delivery}
    return Producer(conf)


class _Deliveries:
    __slots__ = ("lat", "at", "errors", "first_error")

    def __init__(self) -> None:
        self.lat = array("d")
        self.at = array("d")  # when each delivery report came (monotonic)
        self.errors = 0
        self.first_error = None

    def __call__(self, err, msg) -> None:
        if err is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(err)
            return
        self.lat.append(msg.latency())
        self.at.append(time.monotonic())


def window_spread(times, t0: float, t1: float, unit_bytes: int, window: float = 1.0, counts_at=None) -> dict:
    """Throughput in ``window``-second slices of [t0, t1] (the first and last slice
    dropped): mean, relative standard deviation and min/max, in MB/s. The run's own
    estimate of its noise."""
    n = int((t1 - t0) / window)
    if n < 4:
        return {}
    counts = [0] * n
    for j, t in enumerate(times):
        i = int((t - t0) / window)
        if 0 <= i < n:
            counts[i] += counts_at[j] if counts_at is not None else 1
    mbs = [c * unit_bytes / window / 1e6 for c in counts[1:-1]]
    mean = sum(mbs) / len(mbs)
    sd = (sum((x - mean) ** 2 for x in mbs) / len(mbs)) ** 0.5
    return {"windows": len(mbs), "mean_mb_per_s": round(mean, 2), "rsd_pct": round(100 * sd / mean, 1) if mean else None,
            "min_mb_per_s": round(min(mbs), 2), "max_mb_per_s": round(max(mbs), 2)}


def produce_flat_out(bootstrap: str, topic: str, partitions: int, seconds: float,
                     max_bytes: float = float("inf"), drain_timeout: float = 180, extra: dict | None = None) -> dict:
    """Produce as fast as the broker takes it, for ``seconds`` (or ``max_bytes``), then
    wait for every delivery report. Throughput counts the drain time too. ``extra``:
    more producer settings (e.g. security)."""
    d = _Deliveries()
    p = _producer(bootstrap, d, **(extra or {}))
    pool, npool = POOL, len(POOL)
    produce, poll = p.produce, p.poll
    max_msgs = max_bytes / MSG_BYTES
    n = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while True:
        if not n & 511:
            if time.monotonic() >= deadline or n >= max_msgs:
                break
            poll(0)
        try:
            produce(topic, pool[n % npool], partition=n % partitions)
            n += 1
        except BufferError:
            poll(0.005)
    t_sent = time.monotonic()
    left = p.flush(drain_timeout)
    t_end = time.monotonic()
    ok = len(d.lat)
    elapsed = t_end - t0
    return {
        "sent": n, "delivered": ok, "errors": d.errors, "undelivered": left, "first_error": d.first_error,
        "seconds": round(elapsed, 3), "send_seconds": round(t_sent - t0, 3),
        "msgs_per_s": round(ok / elapsed, 1), "mb_per_s": round(ok * MSG_BYTES / elapsed / 1e6, 2),
        "payload_bytes": ok * MSG_BYTES,
        "latency_ms": percentiles(d.lat), "_lat": d.lat,
        "per_second": window_spread(d.at, t0, t_sent, MSG_BYTES),
    }


class Tailer(threading.Thread):
    """A consumer assigned to every partition from offset 0 (no group), recording
    end-to-end latency from the send time embedded in each value."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        super().__init__(daemon=True, name="tailer")
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-tail-{topic}",
                                  "enable.auto.commit": False, "log_level": 3})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.lat = array("d")
        self.count = 0
        self.errors = 0
        self.since = float("inf")  # wall time: only messages sent from then on are recorded
        self._halt = threading.Event()

    def run(self) -> None:
        unpack = _TS.unpack_from
        lat = self.lat
        try:
            while not self._halt.is_set():
                # A short timeout: consume() waits for its whole timeout unless the batch
                # fills, which would add up to the timeout to every latency measured.
                msgs = self.consumer.consume(1000, 0.002)
                now = time.time()
                since = self.since
                for m in msgs:
                    if m.error() is not None:
                        self.errors += 1
                        continue
                    sent = unpack(m.value())[0]
                    if sent >= since:
                        lat.append(now - sent)
                self.count += len(msgs)
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


@contextlib.contextmanager
def no_gc():
    """The cycle collector off (after one collection) for a measured loop: the loops
    make many objects and no cycles, and the collector's full passes over this
    process's heap (the scenarios before leave a large one) stalled them for hundreds
    of ms, which is no broker's doing."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def produce_at_rate(bootstrap: str, topic: str, partitions: int, mb_per_s: float, seconds: float,
                    tail: bool = False, drain_timeout: float = 120, warmup_s: float = 0.0) -> dict:
    """Produce at a fixed rate (sent in 5 ms ticks) for ``seconds``; optionally with a
    Tailer consuming the same topic for end-to-end latency. The first ``warmup_s``
    seconds (connections, partition ownership, the consumer's first fetches) are
    produced at the same rate but left out of every figure."""
    d = _Deliveries()
    warm = _Deliveries()
    p = _producer(bootstrap, d)
    tailer = Tailer(bootstrap, topic, partitions) if tail else None
    with no_gc():
        return _produce_at_rate(p, d, warm, tailer, topic, partitions, mb_per_s, seconds, drain_timeout, warmup_s)


def _produce_at_rate(p, d, warm, tailer, topic, partitions, mb_per_s, seconds, drain_timeout, warmup_s) -> dict:
    if tailer:
        tailer.start()
        time.sleep(0.5)  # let it connect and start polling before the first send
    pool, npool = POOL, len(POOL)
    produce, poll, pack, now_wall = p.produce, p.poll, _TS.pack, time.time
    rate = mb_per_s * 1e6 / MSG_BYTES
    n = 0
    behind = 0
    t_warm = time.monotonic()
    t0 = t_warm + warmup_s
    end = t0 + seconds
    tick = 0.005
    n_warm = int(warmup_s * rate)
    measuring = warmup_s <= 0
    if tailer and measuring:
        tailer.since = now_wall()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not measuring and now >= t0:
            measuring = True
            if tailer:
                tailer.since = now_wall()
        due = min(int((now - t_warm) * rate), n_warm + int(seconds * rate))
        while n < due:
            try:
                if n < n_warm:
                    produce(topic, pack(now_wall()) + pool[n % npool][8:], partition=n % partitions,
                            on_delivery=warm)
                else:
                    produce(topic, pack(now_wall()) + pool[n % npool][8:], partition=n % partitions)
                n += 1
            except BufferError:
                behind += 1
                poll(0.001)
                break
        poll(0)
        sleep = tick - (time.monotonic() - now)
        if sleep > 0:
            time.sleep(sleep)
    t_sent = time.monotonic()
    left = p.flush(drain_timeout)
    t_end = time.monotonic()
    ok = len(d.lat)
    n -= n_warm
    out = {
        "offered_mb_per_s": mb_per_s, "warmup_s": warmup_s, "warmup_errors": warm.errors,
        "sent": n, "delivered": ok, "errors": d.errors, "undelivered": left,
        "first_error": d.first_error, "buffer_full_events": behind,
        "seconds": round(t_end - t0, 3), "send_seconds": round(t_sent - t0, 3),
        "msgs_per_s": round(ok / (t_sent - t0), 1), "mb_per_s": round(ok * MSG_BYTES / (t_sent - t0) / 1e6, 2),
        "payload_bytes": ok * MSG_BYTES,
        "latency_ms": percentiles(d.lat), "_lat": d.lat,
    }
    if tailer:
        deadline = time.monotonic() + 30
        while tailer.count < ok + len(warm.lat) and time.monotonic() < deadline:
            time.sleep(0.05)
        tailer.stop()
        out["consumed"] = tailer.count
        out["consume_errors"] = tailer.errors
        out["e2e_latency_ms"] = percentiles(tailer.lat)
        out["_e2e"] = tailer.lat
    return out


def consume_backlog(bootstrap: str, topic: str, partitions: int, max_bytes: float, timeout: float = 300) -> dict:
    """Read a topic from offset 0 on every partition until ``max_bytes`` of payload (or
    the whole topic) are read; MB/s from the assign to the last message."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-cold-{topic}", "enable.auto.commit": False,
                  "log_level": 3})
    try:
        t_meta = time.monotonic()
        total = 0
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            total += hi - lo
        meta_s = time.monotonic() - t_meta
        want = int(min(total, max_bytes / MSG_BYTES))
        n = errors = nbytes = 0
        first_msg_s = None
        marks, got = array("d"), array("q")
        t0 = time.monotonic()
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = t0 + timeout
        with no_gc():
            while n < want and time.monotonic() < deadline:
                msgs = c.consume(10000, 0.5)
                for m in msgs:
                    if m.error() is not None:
                        errors += 1
                        continue
                    n += 1
                    nbytes += len(m)  # (the value's length, without copying it out as m.value() does)
                if msgs:
                    marks.append(time.monotonic())
                    got.append(len(msgs))
                if first_msg_s is None and msgs:
                    first_msg_s = time.monotonic() - t0
        elapsed = time.monotonic() - t0
    finally:
        c.close()
    return {
        "backlog_messages": total, "wanted": want, "consumed": n, "errors": errors, "timed_out": n < want,
        "seconds": round(elapsed, 3), "watermark_seconds": round(meta_s, 3),
        "first_message_s": round(first_msg_s, 3) if first_msg_s is not None else None,
        "msgs_per_s": round(n / elapsed, 1) if elapsed else 0,
        "mb_per_s": round(nbytes / elapsed / 1e6, 2) if elapsed else 0,
        "payload_bytes": nbytes,
        "per_quarter_second": window_spread(marks, t0, t0 + elapsed, MSG_BYTES, 0.25, got),
    }


# --------------------------------------------------------------------------- raw S3


def _minio(endpoint: str, access_key: str, secret_key: str, region: str, pool: int):
    import urllib3  # noqa: PLC0415
    from minio import Minio  # noqa: PLC0415

    u = urlparse(endpoint)
    http = urllib3.PoolManager(maxsize=pool + 2, timeout=urllib3.Timeout(connect=5, read=60),
                               retries=urllib3.Retry(total=3, backoff_factor=0.2))
    return Minio(u.netloc, access_key=access_key, secret_key=secret_key, secure=u.scheme == "https",
                 region=region, http_client=http)


def raw_s3(endpoint: str, bucket: str, access_key: str, secret_key: str, *, sizes: list[int],
           concurrency: int, seconds: float, region: str = "us-east-1", prefix: str = "rawbench",
           server_pid: int | None = None) -> list[dict]:
    """PUT then GET objects of each size from ``concurrency`` threads, each phase for
    ``seconds``; MB/s, request latency, and the CPU seconds per GB of the S3 server
    (``server_pid``) and of this client. The objects are deleted afterwards."""
    client = _minio(endpoint, access_key, secret_key, region, concurrency)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    results = []
    for size in sizes:
        data = random.Random(size).randbytes(size)
        keys: list[str] = []
        keys_lock = threading.Lock()

        def run_phase(kind: str) -> dict:
            lat = array("d")
            lock = threading.Lock()
            count = [0]
            errors = [0]
            deadline = time.monotonic() + seconds

            def worker(tid: int) -> None:
                i = 0
                my = array("d")
                while time.monotonic() < deadline:
                    t = time.monotonic()
                    try:
                        if kind == "put":
                            key = f"{prefix}/{size}/{tid}-{i:06d}"
                            client.put_object(bucket, key, io.BytesIO(data), size)
                            with keys_lock:
                                keys.append(key)
                        else:
                            with keys_lock:
                                key = keys[(tid * 7919 + i) % len(keys)]
                            resp = client.get_object(bucket, key)
                            try:
                                got = len(resp.read())
                            finally:
                                resp.close()
                                resp.release_conn()
                            if got != size:
                                raise OSError(f"short read {got} of {size}")
                    except Exception:  # noqa: BLE001 - counted; the run goes on
                        with lock:
                            errors[0] += 1
                        i += 1
                        continue
                    my.append(time.monotonic() - t)
                    i += 1
                with lock:
                    lat.extend(my)
                    count[0] += len(my)

            t0, srv0, me0 = time.monotonic(), cpu_seconds(server_pid), sum(os.times()[:2])
            threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 120)
            elapsed = time.monotonic() - t0
            gb = count[0] * size / 1e9
            srv, me = cpu_seconds(server_pid) - srv0, sum(os.times()[:2]) - me0
            return {"requests": count[0], "errors": errors[0], "seconds": round(elapsed, 3),
                    "req_per_s": round(count[0] / elapsed, 1),
                    "mb_per_s": round(count[0] * size / elapsed / 1e6, 2),
                    "latency_ms": percentiles(lat),
                    "s3_server_cpu_s_per_gb": round(srv / gb, 2) if gb and server_pid else None,
                    "client_cpu_s_per_gb": round(me / gb, 2) if gb else None}

        put = run_phase("put")
        get = run_phase("get") if keys else {"requests": 0, "mb_per_s": 0.0, "errors": 0}
        results.append({"object_bytes": size, "concurrency": concurrency, "put": put, "get": get})
        try:
            from minio.deleteobjects import DeleteObject  # noqa: PLC0415

            for err in client.remove_objects(bucket, [DeleteObject(k) for k in keys]):
                _ = err
        except Exception:  # noqa: BLE001 - cleanup only
            pass
    return results


def count_objects(endpoint: str, bucket: str, access_key: str, secret_key: str, prefix: str = "",
                  region: str = "us-east-1", limit: int = 200_000) -> tuple[int, int]:
    """(objects, bytes) under a prefix; bounded by ``limit`` objects."""
    client = _minio(endpoint, access_key, secret_key, region, 2)
    n = size = 0
    try:
        for obj in client.list_objects(bucket, prefix=prefix or None, recursive=True):
            n += 1
            size += obj.size or 0
            if n >= limit:
                break
    except Exception:  # noqa: BLE001
        pass
    return n, size


def make_bucket(endpoint: str, bucket: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
    client = _minio(endpoint, access_key, secret_key, region, 2)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)


__all__ = ["KafkaException", "MSG_BYTES", "PRODUCER_TUNING", "cdf_points", "consume_backlog", "count_objects",
           "create_topic", "make_bucket", "percentiles", "produce_at_rate", "produce_flat_out", "raw_s3"]
