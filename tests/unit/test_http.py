"""The HTTP port's server (kafscale/server/http.py) on a real socket: routing, methods,
HEAD, keep-alive, credentials, and the bounds that keep a bad client from holding it."""

from __future__ import annotations

import base64
import http.client
import socket
import time

import curio
import pytest

from kafscale.server import http as khttp
from kafscale.server.console import RateMeter
from kafscale.server.http import HttpAuth, HttpServer, Response, Route


async def _ready():
    return True, ""


async def _echo(req, name):
    return Response(200, f"hello {name} {req.query.get('x', '')}".encode())


def run_server(client, auth: HttpAuth | None = None, **kwargs):
    """Start an HttpServer on a free port, run ``client(port)`` in a thread, stop."""
    async def main():
        srv = HttpServer("127.0.0.1", 0, _ready, lambda: "m 1\n", routes=[Route("/echo/{name}", _echo)],
                         auth=auth, **kwargs)
        await srv.bind()
        task = await curio.spawn(srv.serve, daemon=True)
        try:
            return await curio.run_in_thread(client, srv.port)
        finally:
            await task.cancel()
    return curio.run(main)


def request(port, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def raw(port, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def test_routes_methods_and_head():
    def client(port):
        out = {}
        out["health"] = request(port, "GET", "/healthz")
        out["ready"] = request(port, "GET", "/readyz")
        out["metrics"] = request(port, "GET", "/metrics")
        out["head"] = request(port, "HEAD", "/metrics")
        out["post"] = request(port, "POST", "/metrics")
        out["missing"] = request(port, "GET", "/nope")
        out["echo"] = request(port, "GET", "/echo/a%2Fb%20c?x=1")
        return out
    out = run_server(client)
    assert out["health"][0] == 200 and out["health"][2] == b"ok\n"
    assert out["ready"][0] == 200
    status, headers, body = out["metrics"]
    assert status == 200 and body == b"m 1\n"
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    status, headers, body = out["head"]
    assert status == 200 and body == b"" and headers["Content-Length"] == "4"
    status, headers, _ = out["post"]
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert out["missing"][0] == 404
    assert out["echo"][2] == b"hello a/b c 1"  # one percent-decoded segment


def test_keep_alive_serves_several_requests_on_one_connection():
    def client(port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        bodies = []
        for _ in range(3):
            conn.request("GET", "/healthz")
            bodies.append(conn.getresponse().read())
        conn.close()
        return bodies
    assert run_server(client) == [b"ok\n"] * 3


def test_bad_and_oversized_requests_are_refused():
    def client(port):
        garbage = raw(port, b"NOT HTTP AT ALL\r\n\r\n")
        huge_head = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (khttp.MAX_HEAD_BYTES + 10))
        huge_body = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                        % (khttp.MAX_BODY_BYTES + 1) + b"x" * (khttp.MAX_BODY_BYTES + 1))
        return garbage, huge_head, huge_body
    garbage, huge_head, huge_body = run_server(client)
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert huge_head.startswith(b"HTTP/1.1 431 ")
    assert huge_body.startswith(b"HTTP/1.1 413 ")


def test_a_slow_request_is_cut_off_and_others_are_served_meanwhile(monkeypatch):
    monkeypatch.setattr(khttp, "REQUEST_TIMEOUT_S", 0.5)

    def client(port):
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # ... and never the rest
        t0 = time.monotonic()
        meanwhile = request(port, "GET", "/healthz")[0]
        answer = slow.recv(4096)
        took = time.monotonic() - t0
        slow.close()
        return meanwhile, answer, took
    meanwhile, answer, took = run_server(client)
    assert meanwhile == 200
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert took < 3


def test_connections_over_the_limit_are_answered_503():
    def client(port):
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        status = request(port, "GET", "/healthz")[0]
        for s in held:
            s.close()
        time.sleep(0.2)
        return status, request(port, "GET", "/healthz")[0]
    assert run_server(client, max_connections=2) == (503, 200)


def test_credentials_protect_routes_but_never_the_probes_or_metrics():
    auth = HttpAuth(token="s3cret", basic="ops:pa:ss")

    def client(port):
        basic = "Basic " + base64.b64encode(b"ops:pa:ss").decode()
        wrong = "Basic " + base64.b64encode(b"ops:nope").decode()
        return {
            "none": request(port, "GET", "/echo/x"),
            "bearer": request(port, "GET", "/echo/x", {"Authorization": "Bearer s3cret"})[0],
            "bad bearer": request(port, "GET", "/echo/x", {"Authorization": "Bearer s3cre"})[0],
            "basic": request(port, "GET", "/echo/x", {"Authorization": basic})[0],
            "bad basic": request(port, "GET", "/echo/x", {"Authorization": wrong})[0],
            "not base64": request(port, "GET", "/echo/x", {"Authorization": "Basic %%%"})[0],
            "probes": [request(port, "GET", p)[0] for p in ("/healthz", "/readyz", "/metrics")],
        }
    out = run_server(client, auth=auth)
    status, headers, _ = out["none"]
    assert status == 401
    assert 'Basic realm="kafscale"' in headers["WWW-Authenticate"] or "Bearer" in headers["WWW-Authenticate"]
    assert out["bearer"] == 200 and out["basic"] == 200
    assert out["bad bearer"] == out["bad basic"] == out["not base64"] == 401
    assert out["probes"] == [200, 200, 200]


def test_auth_off_by_default_and_challenges_name_each_scheme():
    assert HttpAuth().allows(None)
    assert [v for _, v in HttpAuth(token="t").challenges()] == ['Bearer realm="kafscale"']
    assert not HttpAuth(token="t").allows("Basic dDp0")  # basic not configured


def test_rate_meter_over_the_window():
    m = RateMeter(window=5.0)
    assert m.rates() is None
    for i in range(10):
        m.sample(100.0 + i, (1000.0 * i, 10.0 * i, 0.0, 0.0))
    assert m.rates() == pytest.approx((1000.0, 10.0, 0.0, 0.0))
    m.sample(110.0, (0.0, 0.0, 0.0, 0.0))  # a counter that restarted does not go negative
    assert min(m.rates()) >= 0
