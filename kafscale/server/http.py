"""HTTP endpoints on the metrics port: /healthz, /readyz, /metrics.

/healthz answers 200 while the process serves. /readyz answers 200 only when S3 and
etcd both answer now (checked at most once a second, with short timeouts), else 503
with the reason. /metrics is Prometheus text.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import curio

from kafscale.server.net import listen_socket

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, host: str, port: int, ready: Callable[[], Any], metrics: Callable[[], str]) -> None:
        self.host = host
        self.port = port
        self._ready = ready  # async () -> (bool, reason)
        self._metrics = metrics
        self._sock = None

    async def bind(self) -> None:
        self._sock = listen_socket(self.host, self.port, backlog=128)
        self.port = self._sock.getsockname()[1]

    async def serve(self) -> None:
        async with self._sock:
            while True:
                client, _addr = await self._sock.accept()
                await curio.spawn(self._handle, client, daemon=True)

    async def _handle(self, client) -> None:
        async with client:
            try:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 8192:
                    chunk = await curio.timeout_after(5, client.recv, 4096)
                    if not chunk:
                        return
                    data += chunk
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split()
                path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
                if path == "/healthz":
                    status, body = 200, "ok\n"
                elif path == "/readyz":
                    ok, reason = await self._ready()
                    status, body = (200, "ready\n") if ok else (503, f"not ready: {reason}\n")
                elif path == "/metrics":
                    status, body = 200, self._metrics()
                else:
                    status, body = 404, "not found\n"
                payload = body.encode()
                reason_text = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
                head = (f"HTTP/1.1 {status} {reason_text}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
                await client.sendall(head + payload)
            except (curio.TaskTimeout, OSError) as exc:
                log.debug("http: %s", exc)


class ReadinessProbe:
    """Checks S3 and etcd at most once per ``interval`` seconds."""

    def __init__(self, checks: dict[str, Callable[[], None]], interval: float = 1.0, timeout: float = 3.0) -> None:
        self.checks = checks
        self.interval = interval
        self.timeout = timeout
        self._at = 0.0
        self._result: tuple[bool, str] = (False, "not checked yet")
        self.draining = False

    async def __call__(self) -> tuple[bool, str]:
        if self.draining:
            return False, "shutting down"
        now = time.monotonic()
        if now - self._at < self.interval:
            return self._result
        failures = []
        for name, check in self.checks.items():
            try:
                await curio.timeout_after(self.timeout, curio.run_in_thread, check)
            except curio.TaskTimeout:
                failures.append(f"{name} timed out")
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                failures.append(f"{name}: {exc}")
        self._at = time.monotonic()
        self._result = (not failures, "; ".join(failures))
        return self._result
