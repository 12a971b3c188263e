"""Broker processes for integration tests.

A :class:`BrokerProcess` runs ``python -m kafscale serve`` against a
:class:`kafscale.localstack.LocalStack` with its own etcd prefix and S3 namespace (shared
by every broker of one test, so they form a cluster, and kept across restarts), fixed
ports, and its output in a log file. :class:`BrokerFactory` hands them out and cleans up.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Iterable, Mapping

import kafscale
from kafscale import listeners
from kafscale.localstack import LocalStack, free_port, preexec_die_with_parent

__all__ = ["BrokerProcess", "BrokerFactory", "BrokerStartError", "free_port", "unique_suffix", "wait_for"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The broker runs the same kafscale the tests import, installed or not.
KAFSCALE_PATH = str(pathlib.Path(kafscale.__file__).resolve().parent.parent)


class BrokerStartError(RuntimeError):
    pass


def unique_suffix() -> str:
    return uuid.uuid4().hex[:10]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class BrokerProcess:
    """One broker subprocess. Ports, etcd prefix and S3 namespace stay fixed across restarts."""

    def __init__(
        self,
        stack: LocalStack,
        workdir: pathlib.Path,
        broker_id: int = 0,
        *,
        etcd_prefix: str | None = None,
        s3_namespace: str | None = None,
        port: int | None = None,
        metrics_port: int | None = None,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        suffix = unique_suffix()
        self.stack = stack
        self.broker_id = broker_id
        self.port = port if port is not None else free_port()
        # With options={"listeners": "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"},
        # listener_port(name) is each one's port (port 0: the one the broker bound, read from
        # its "listening on" log line at every start); ``port`` is the PLAINTEXT one (or the first).
        self.listener_ports = {"PLAINTEXT": self.port}
        self._listeners = None
        if (options or {}).get("listeners"):
            self._listeners = listeners.parse(str(options["listeners"]))
            self._set_listener_ports({lst.name: lst.port for lst in self._listeners})
        self.metrics_port = metrics_port if metrics_port is not None else free_port()
        self.etcd_prefix = etcd_prefix if etcd_prefix is not None else f"/kt-{suffix}"
        self.s3_namespace = s3_namespace if s3_namespace is not None else f"ns-{suffix}"
        self.extra_args = list(extra_args)
        for name, value in (options or {}).items():
            self.extra_args += [_flag(name), _flag_value(value)]
        self.env = dict(env or {})
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"broker-{broker_id}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # ---- addresses

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _set_listener_ports(self, ports: dict[str, int]) -> None:
        self.listener_ports = ports
        self.port = ports.get("PLAINTEXT", next(iter(ports.values())))

    def _read_listener_ports(self) -> None:
        lines = [ln for ln in self.log_text().splitlines() if " listening on " in ln]
        if lines:
            urls = lines[-1].split(" listening on ", 1)[1].split(", ")
            self._set_listener_ports({u.split("://")[0]: int(u.rsplit(":", 1)[1]) for u in urls})

    def listener_port(self, name: str) -> int:
        """The port of listener ``name`` (its security protocol: PLAINTEXT, SSL, ...)."""
        return self.listener_ports[name]

    def listener_bootstrap(self, name: str) -> str:
        return f"127.0.0.1:{self.listener_port(name)}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def healthz_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/healthz"

    @property
    def readyz_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/readyz"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def argv(self) -> list[str]:
        s = self.stack
        return [
            sys.executable, "-m", "kafscale", "serve",
            "--broker-id", str(self.broker_id),
            "--broker-host", "127.0.0.1",
            "--broker-port", str(self.port),
            "--listen-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            "--etcd-endpoints", s.etcd_endpoints,
            "--etcd-prefix", self.etcd_prefix,
            "--s3-endpoint", s.s3_endpoint,
            "--s3-bucket", s.bucket,
            "--s3-access-key", s.access_key,
            "--s3-secret-key", s.secret_key,
            "--s3-region", "us-east-1",
            "--s3-namespace", self.s3_namespace,
            *self.extra_args,
        ]

    # ---- lifecycle

    def start(self, wait_ready: bool = True, timeout: float = 30) -> BrokerProcess:
        if self.running:
            raise RuntimeError(f"broker {self.broker_id} is already running (pid {self.pid})")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFSCALE_")}
        env.update(PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        env["PYTHONPATH"] = os.pathsep.join([KAFSCALE_PATH, *filter(None, [env.get("PYTHONPATH")])])
        env.update(self.env)
        argv = self.argv()
        main = threading.current_thread() is threading.main_thread()
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== start #{self.starts} at {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=preexec_die_with_parent(os.getpid()) if main else None,
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _get(self, url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, OSError):
            return 0

    def is_ready(self) -> bool:
        return self._get(self.readyz_url) == 200

    def is_healthy(self) -> bool:
        return self._get(self.healthz_url) == 200

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll /readyz until 200; fail with the log tail if the broker exits or time runs out."""
        deadline = time.monotonic() + timeout
        last = 0
        while True:
            if self.proc is None:
                raise BrokerStartError(f"broker {self.broker_id} was never started")
            code = self.proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"broker {self.broker_id} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            last = self._get(self.readyz_url)
            if last == 200:
                if self._listeners is not None:
                    self._read_listener_ports()
                return
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"broker {self.broker_id} not ready after {timeout:.0f}s (last /readyz: {last or 'no answer'}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _signal(self, sig: int, group: bool = True) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> int | None:
        """SIGKILL (the whole process group) and reap. Returns the exit code."""
        if self.proc is None:
            return None
        self._signal(signal.SIGCONT)  # not that it matters for SIGKILL, but keep state sane
        self._signal(signal.SIGKILL)
        return self.proc.wait(30)

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait for a clean exit; raise TimeoutError (after SIGKILL) if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self._signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
        self._signal(signal.SIGTERM, group=False)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"broker {self.broker_id} did not exit within {timeout:.0f}s of SIGTERM; killed it. "
                f"Log tail:\n{self.log_tail()}"
            ) from None

    def restart(self, wait_ready: bool = True, timeout: float = 30, *, hard: bool = False) -> BrokerProcess:
        """Stop (SIGTERM, or SIGKILL with hard=True) and start again with the same identity."""
        if hard:
            self.kill()
        else:
            self.terminate()
        return self.start(wait_ready=wait_ready, timeout=timeout)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP, group=False)

    def resume(self) -> None:
        self._signal(signal.SIGCONT, group=False)

    def cleanup(self) -> None:
        """Make sure nothing of this broker is left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    # ---- logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}" if self.proc else "not started"
        return f"BrokerProcess(id={self.broker_id}, {self.bootstrap}, {state})"


class BrokerFactory:
    """Creates brokers for one test: shared etcd prefix + S3 namespace, ids 0, 1, ..."""

    def __init__(self, stack: LocalStack, workdir: pathlib.Path, **defaults) -> None:
        suffix = unique_suffix()
        self.stack = stack
        self.workdir = pathlib.Path(workdir)
        self.etcd_prefix = f"/kt-{suffix}"
        self.s3_namespace = f"ns-{suffix}"
        self.defaults = defaults
        self.brokers: list[BrokerProcess] = []

    def __call__(self, broker_id: int | None = None, *, start: bool = True, wait_ready: bool = True,
                 timeout: float = 30, **kwargs) -> BrokerProcess:
        """A new broker (started unless start=False). kwargs go to BrokerProcess:
        extra_args=[...], env={...}, options={"segment_bytes": 1024}, port=..., etc."""
        if broker_id is None:
            broker_id = max((b.broker_id for b in self.brokers), default=-1) + 1
        params = dict(self.defaults)
        for key in ("extra_args",):
            if key in kwargs and key in params:
                kwargs[key] = [*params.pop(key), *kwargs[key]]
        for key in ("env", "options"):
            if key in kwargs and key in params:
                kwargs[key] = {**params.pop(key), **kwargs[key]}
        params.update(kwargs)
        params.setdefault("etcd_prefix", self.etcd_prefix)
        params.setdefault("s3_namespace", self.s3_namespace)
        broker = BrokerProcess(self.stack, self.workdir, broker_id, **params)
        self.brokers.append(broker)
        if start:
            broker.start(wait_ready=wait_ready, timeout=timeout)
        return broker

    def cluster(self, n: int, **kwargs) -> list[BrokerProcess]:
        """n brokers started concurrently, then waited on together."""
        brokers = [self(start=False, **kwargs) for _ in range(n)]
        for b in brokers:
            b.start(wait_ready=False)
        for b in brokers:
            b.wait_ready(kwargs.get("timeout", 30))
        return brokers

    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.running) or ",".join(b.bootstrap for b in self.brokers)

    def close(self) -> None:
        for b in self.brokers:
            try:
                b.cleanup()
            except Exception:  # noqa: BLE001 - teardown must reach every broker
                pass

    def log_tails(self, lines: int = 60) -> list[tuple[str, str]]:
        return [(f"broker {b.broker_id} log ({b.log_path}), last {lines} lines", b.log_tail(lines))
                for b in self.brokers]
