"""The HTTP port: /healthz, /readyz, /metrics, and the web console with its JSON API.

HTTP/1.1 is parsed and framed by h11 (sans-IO, like our Kafka codecs); this module only
moves bytes between it and a curio socket and routes requests. Keep-alive works as h11
says it may (HTTP/1.0 and ``Connection: close`` close after the answer).

/healthz answers 200 while the process serves. /readyz answers 200 only when S3 and
etcd both answer now (checked at most once a second, with short timeouts), else 503
with the reason. /metrics is Prometheus text. Both probes are GET/HEAD only and never
need credentials; other routes (the console, docs/console.md) may (``HttpAuth``).

Nothing a client sends can hold the broker up: a request head is at most
``MAX_HEAD_BYTES`` and a body at most ``MAX_BODY_BYTES`` (our routes take none); a
request must arrive whole within ``REQUEST_TIMEOUT_S`` of its first byte, an idle
keep-alive connection is closed after ``IDLE_TIMEOUT_S``, an answer must be taken
within ``SEND_TIMEOUT_S``, and at most ``MAX_CONNECTIONS`` connections are served at
once (more are answered 503 and closed).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import http
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import curio
import h11

from kafscale.server.net import listen_socket

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
SEND_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
READ_CHUNK = 64 * 1024

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    method: str  # "GET" for HEAD too: a HEAD is answered as its GET without the body
    path: str  # percent-decoded per segment by the router, raw here
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    head: bool = False


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: list[tuple[str, str]] = field(default_factory=list)


def text(status: int, body: str) -> Response:
    return Response(status, body.encode())


Handler = Callable[..., Awaitable[Response]]


@dataclass
class Route:
    """``pattern`` is a path whose ``{name}`` segments match one percent-decoded
    segment each, passed to ``handler(request, **names)``."""

    pattern: str
    handler: Handler
    protected: bool = True  # needs credentials when HttpAuth is set
    methods: tuple[str, ...] = ("GET", "HEAD")

    def __post_init__(self) -> None:
        self._parts = self.pattern.strip("/").split("/") if self.pattern != "/" else []

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self._parts):
            return None
        params = {}
        for want, got in zip(self._parts, segments):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class HttpAuth:
    """Credentials the protected routes need: a bearer token, HTTP basic
    ``user:password``, or either. Compared in constant time."""

    realm = "kafscale"

    def __init__(self, token: str = "", basic: str = "") -> None:
        self._token = token.encode()
        self._basic = basic.encode()

    @property
    def enabled(self) -> bool:
        return bool(self._token or self._basic)

    def allows(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self._token:
            return hmac.compare_digest(value.encode(), self._token)
        if scheme.lower() == "basic" and self._basic:
            try:
                given = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, self._basic)
        return False

    def challenges(self) -> list[tuple[str, str]]:
        out = []
        if self._basic:
            out.append(("WWW-Authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'))
        if self._token:
            out.append(("WWW-Authenticate", f'Bearer realm="{self.realm}"'))
        return out


class HttpServer:
    def __init__(self, host: str, port: int, ready: Callable[[], Any], metrics: Callable[[], str | bytes],
                 routes: list[Route] | tuple[Route, ...] = (), auth: HttpAuth | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.host = host
        self.port = port
        self._ready = ready  # async () -> (bool, reason)
        self._metrics = metrics
        self.auth = auth or HttpAuth()
        self.max_connections = max_connections
        self.connections = 0
        self.routes = [Route("/healthz", self._healthz, protected=False),
                       Route("/readyz", self._readyz, protected=False),
                       Route("/metrics", self._metrics_page, protected=False),
                       *routes]
        self._sock = None

    async def bind(self) -> None:
        self._sock = listen_socket(self.host, self.port, backlog=128)
        self.port = self._sock.getsockname()[1]

    async def serve(self) -> None:
        async with self._sock:
            while True:
                client, _addr = await self._sock.accept()
                await curio.spawn(self._handle, client, daemon=True)

    # -- the built-in routes ------------------------------------------------------------

    async def _healthz(self, req: Request) -> Response:
        return text(200, "ok\n")

    async def _readyz(self, req: Request) -> Response:
        ok, reason = await self._ready()
        return text(200, "ready\n") if ok else text(503, f"not ready: {reason}\n")

    async def _metrics_page(self, req: Request) -> Response:
        body = self._metrics()
        return Response(200, body if isinstance(body, bytes) else body.encode(), METRICS_CONTENT_TYPE)

    # -- one connection -----------------------------------------------------------------

    async def _handle(self, client) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.connections += 1
        try:
            async with client:
                if self.connections > self.max_connections:
                    await self._send(client, conn, text(503, "too many connections\n"), head=False, close=True)
                    return
                while True:
                    try:
                        req = await self._receive(client, conn)
                    except h11.RemoteProtocolError as exc:
                        await self._send_error(client, conn, exc.error_status_hint, f"bad request: {exc}\n")
                        return
                    except _TooLarge:
                        await self._send_error(client, conn, 413, "request body too large\n")
                        return
                    except _Timeout:
                        await self._send_error(client, conn, 408, "request timed out\n")
                        return
                    if req is None:
                        return
                    resp = await self._dispatch(req)
                    await self._send(client, conn, resp, head=req.head)
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return  # h11 decided the connection closes (HTTP/1.0, Connection: close)
                    conn.start_next_cycle()
        except (curio.TaskTimeout, OSError, h11.LocalProtocolError) as exc:
            log.debug("http: %s", exc)
        finally:
            self.connections -= 1

    async def _receive(self, client, conn: h11.Connection) -> Request | None:
        """The next whole request (its body read and dropped), or None when the client
        closed or left the connection idle."""
        request: h11.Request | None = None
        body = 0
        deadline: float | None = None  # set by the request's first byte
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if deadline is None and conn.trailing_data[0]:
                    deadline = time.monotonic() + REQUEST_TIMEOUT_S
                wait = IDLE_TIMEOUT_S if deadline is None else deadline - time.monotonic()
                try:
                    data = await curio.timeout_after(max(wait, 0.0), client.recv, READ_CHUNK)
                except curio.TaskTimeout:
                    if deadline is None:
                        return None  # idle keep-alive connection
                    raise _Timeout() from None
                if deadline is None:
                    deadline = time.monotonic() + REQUEST_TIMEOUT_S
                conn.receive_data(data)  # b"": the client closed
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY_BYTES:
                    raise _TooLarge()
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return _request(request)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _dispatch(self, req: Request) -> Response:
        try:
            segments = [unquote(s) for s in req.path.strip("/").split("/")] if req.path != "/" else []
        except UnicodeDecodeError:
            return text(400, "bad path\n")
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if req.method not in route.methods:
                return Response(405, b"method not allowed\n", headers=[("Allow", ", ".join(route.methods))])
            if route.protected and not self.auth.allows(req.headers.get("authorization")):
                return Response(401, b"authentication required\n", headers=self.auth.challenges())
            try:
                return await route.handler(req, **params)
            except Exception:  # noqa: BLE001 - one bad page must not take the port down
                log.exception("http %s %s failed", req.method, req.path)
                return text(500, "internal error\n")
        return text(404, "not found\n")

    async def _send(self, client, conn: h11.Connection, resp: Response, head: bool, close: bool = False) -> None:
        headers = [("Content-Type", resp.content_type), ("Content-Length", str(len(resp.body))),
                   ("Cache-Control", "no-store"), *resp.headers]
        if close:
            headers.append(("Connection", "close"))
        data = conn.send(h11.Response(status_code=resp.status, headers=headers,
                                      reason=http.HTTPStatus(resp.status).phrase))
        if not head and resp.body:
            data += conn.send(h11.Data(data=resp.body))
        data += conn.send(h11.EndOfMessage())
        await curio.timeout_after(SEND_TIMEOUT_S, client.sendall, data)

    async def _send_error(self, client, conn: h11.Connection, status: int, body: str) -> None:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send(client, conn, text(status, body), head=False, close=True)


class _TooLarge(Exception):
    pass


class _Timeout(Exception):
    pass


def _request(event: h11.Request) -> Request:
    method = event.method.decode("ascii", "replace")
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    head = method == "HEAD"
    return Request("GET" if head else method, parts.path or "/", query, headers, head)


class ReadinessProbe:
    """Checks S3 and etcd at most once per ``interval`` seconds."""

    def __init__(self, checks: dict[str, Callable[[], None]], interval: float = 1.0, timeout: float = 3.0) -> None:
        self.checks = checks
        self.interval = interval
        self.timeout = timeout
        self._at = 0.0
        self._result: tuple[bool, str] = (False, "not checked yet")
        self.draining = False

    @property
    def ready(self) -> bool:
        """The last check's outcome (for the kafscale_ready gauge; no new check)."""
        return self._result[0] and not self.draining

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
