"""The Kafka listener: accept connections, frame, decode, dispatch, encode, send.

Requests of a connection are handled side by side and answered in order; many
connections at once. Framing violations (a frame larger than max_request_bytes, a
header or body that does not parse, an unknown API key or an unsupported version of
anything but ApiVersions) close that one connection, as Kafka does, after the requests
read before the bad frame are answered; every other failure is answered and the
connection lives. Such a close is one log line (rate-limited), never a traceback.

No client can wedge the broker:
- a connection stops being read while it has MAX_IN_FLIGHT requests (or
  MAX_IN_FLIGHT_BYTES) in progress, and requests that are CPU work with nothing to wait
  for (Metadata, ListOffsets, ...: SERIAL_APIS) are handled one at a time per
  connection, so one client's pipeline cannot crowd the event loop;
- request bytes received and not yet answered, all connections together, are bounded
  by queued.max.request.bytes (past it no connection is read until there is room);
- a connection with no bytes received and nothing in progress for
  connections.max.idle.ms is closed, half-sent frames included;
- max.connections and max.connections.per.ip bound the connections (a connection past
  them is closed at once, as Kafka does);
- on a TLS listener the handshake runs in the connection's own task, bounded by
  HANDSHAKE_TIMEOUT_S: a client that stalls or speaks plaintext is closed, alone.

One server serves every listener (kafscale/listeners.py): the limits and the request
queue are the broker's, as in Kafka; each connection knows its listener, whose security
protocol starts its Session.
"""

from __future__ import annotations

import logging
import socket as socket_module
import ssl
import struct
import time
from typing import Any

import curio
from curio.io import Socket

from kafscale.broker.core import Broker, RequestContext, Sequencer
from kafscale.broker.handlers.api_versions import unsupported_version_response
from kafscale.broker.registry import ApiKey
from kafscale.protocol.headers import api_name
from kafscale.protocol import headers
from kafscale.protocol.frames import FrameDecoder
from kafscale.protocol.primitives import DecodeError
from kafscale.listeners import Listener
from kafscale.security import PLAINTEXT, Session
from kafscale.security.tls import ServerTls, principal_of
from kafscale.server.net import listen_socket

log = logging.getLogger(__name__)

_PEEK = struct.Struct(">hhi")  # api key, api version, correlation id

HANDSHAKE_TIMEOUT_S = 10.0  # longest a TLS handshake may take
RECV_BYTES = 256 * 1024  # most bytes read from a connection at once


# CPU-bound requests with nothing to wait for: one at a time per connection.
SERIAL_APIS = frozenset({ApiKey.METADATA, ApiKey.LIST_OFFSETS, ApiKey.OFFSET_FOR_LEADER_EPOCH,
                         ApiKey.DESCRIBE_GROUPS, ApiKey.LIST_GROUPS, ApiKey.DESCRIBE_CLUSTER,
                         ApiKey.API_VERSIONS, ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS,
                         ApiKey.DESCRIBE_CONFIGS})


def _peer(addr: Any) -> str:
    """A client's address as host:port ([host]:port for IPv6)."""
    if not isinstance(addr, tuple) or len(addr) < 2:
        return str(addr)
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


class CloseConnection(Exception):
    pass


class _Close:
    """What a request that must close its connection answers (instead of raising: a
    task that ends in an exception is logged by curio with a traceback)."""

    __slots__ = ("reason", "parts")

    def __init__(self, reason: str, parts: list | None = None) -> None:
        self.reason = reason
        self.parts = parts  # an answer to send before closing (e.g. a failed SASL authentication's)


class RateLimitedLog:
    """At most ``burst`` lines per ``period`` seconds; how many were left out is said on
    the next line that goes out. Bad input from clients must not flood the log."""

    def __init__(self, logger: logging.Logger, burst: int = 10, period: float = 10.0) -> None:
        self.logger, self.burst, self.period = logger, burst, period
        self._window = 0.0
        self._count = 0
        self.suppressed = 0

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self._window >= self.period:
            self._window, self._count = now, 0
        self._count += 1
        if self._count > self.burst:
            self.suppressed += 1
            return
        if self.suppressed:
            msg += " (%d more such lines left out)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.info(msg, *args, **kwargs)


closing_log = RateLimitedLog(log)


class Endpoint:
    """One listener's socket: its name, security protocol and (TLS listeners) context."""

    def __init__(self, listener: Listener, tls: ServerTls | None) -> None:
        self.listener = listener
        self.name = listener.name
        self.protocol = listener.protocol
        self.tls = tls if listener.uses_tls else None
        self.port = listener.port  # the bound port once bound
        self.sock: Any = None


class KafkaServer:
    def __init__(self, broker: Broker, host: str, port: int, max_request_bytes: int, *,
                 queued_max_request_bytes: int = 256 * 1024 * 1024, connections_max_idle_ms: int = 600_000,
                 max_connections: int = 0, max_connections_per_ip: int = 0,
                 listeners: list[Listener] | None = None, tls: ServerTls | None = None) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        if listeners is None:
            listeners = [Listener(PLAINTEXT, PLAINTEXT, host, port)]
        if tls is None and any(lst.uses_tls for lst in listeners):
            raise ValueError("a TLS listener needs a TLS context")
        self.endpoints = [Endpoint(lst, tls) for lst in listeners]
        self.tls = tls
        self.max_request_bytes = max_request_bytes
        self.queued_max_request_bytes = queued_max_request_bytes
        self.idle_s = connections_max_idle_ms / 1000.0
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.connections: set["Connection"] = set()
        self.per_ip: dict[str, int] = {}
        self.accepted = 0
        self.refused = 0
        self.idle_closed = 0
        self.queued_bytes = 0  # request bytes received and not yet answered, all connections
        self._queue_room: Any = None  # set when queued_bytes drops
        self._draining = False

    @property
    def ports(self) -> dict[str, int]:
        """Listener name -> the port it is bound to."""
        return {e.name: e.port for e in self.endpoints}

    async def bind(self) -> None:
        """Bind every listener; OSError naming the listener that could not."""
        for e in self.endpoints:
            try:
                e.sock = listen_socket(e.listener.host, e.listener.port, backlog=1024)
            except OSError as exc:
                for other in self.endpoints:
                    if other.sock is not None:
                        await other.sock.close()
                        other.sock = None
                raise OSError(exc.errno, f"{e.listener.url()}: {exc.strerror or exc}") from None
            e.port = e.sock.getsockname()[1]
        self.port = self.endpoints[0].port

    async def serve(self) -> None:
        async with curio.TaskGroup() as group:
            for e in self.endpoints:
                await group.spawn(self._accept, e)

    async def _accept(self, endpoint: Endpoint) -> None:
        assert endpoint.sock is not None
        async with endpoint.sock:
            while True:
                client, addr = await endpoint.sock.accept()
                self.accepted += 1
                ip = addr[0] if isinstance(addr, tuple) else ""
                if (self.max_connections and len(self.connections) >= self.max_connections or
                        self.max_connections_per_ip and self.per_ip.get(ip, 0) >= self.max_connections_per_ip):
                    self.refused += 1
                    peer = _peer(addr)
                    closing_log.info("refusing a connection from %s: connection limit reached", peer,
                                     extra={"peer": peer})
                    await client.close()
                    continue
                conn = Connection(self, client, addr, endpoint)
                self.connections.add(conn)
                self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
                await curio.spawn(conn.run, daemon=True)

    def forget(self, conn: "Connection") -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            ip = conn.ip
            self.per_ip[ip] -= 1
            if not self.per_ip[ip]:
                del self.per_ip[ip]

    def queue(self, size: int) -> None:
        self.queued_bytes += size

    async def dequeue(self, size: int) -> None:
        self.queued_bytes -= size
        if self._queue_room is not None and size:
            room, self._queue_room = self._queue_room, None
            await room.set()

    @property
    def queue_full(self) -> bool:
        return self.queued_bytes >= self.queued_max_request_bytes

    async def wait_for_queue_room(self, timeout: float) -> None:
        """Until queued request bytes drop (or ``timeout`` seconds pass)."""
        if self.queue_full:
            if self._queue_room is None:
                self._queue_room = curio.Event()
            await curio.ignore_after(timeout, self._queue_room.wait)

    async def drain(self, timeout: float) -> None:
        """Stop reading new requests; wait for in-flight ones to be answered."""
        self._draining = True
        # Requests parked in a group rebalance would hold the drain: answer them now.
        await self.broker.groups.stop()
        for conn in list(self.connections):
            await conn.stop_when_idle()
        waited = 0.0
        while any(c.busy for c in self.connections) and waited < timeout:
            await curio.sleep(0.02)
            waited += 0.02
        for conn in list(self.connections):
            await conn.cancel()


class Connection:
    """One client connection. Requests are pipelined: each is decoded and handled as soon
    as it arrives (so produces from one client share a flush instead of queueing behind
    each other's S3 round trips), while responses go out strictly in request order.
    At most MAX_IN_FLIGHT requests, and MAX_IN_FLIGHT_BYTES of them, are in progress
    (always at least one); past that the connection stops reading and TCP pushes back
    on the client. The count is high because a client spreading a modest rate over
    many partitions sends many small requests, each of which waits for a flush.
    Offsets are assigned in arrival order: a handler reaches its append before it
    first waits on anything."""

    MAX_IN_FLIGHT = 1024
    MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024

    def __init__(self, server: KafkaServer, sock: Any, addr: Any, endpoint: Endpoint | None = None) -> None:
        self.server = server
        self.endpoint = endpoint = endpoint or server.endpoints[0]
        self.broker = server.broker
        self.sock = sock
        self.addr = addr
        self.in_flight = 0
        self.in_flight_bytes = 0
        self._room: Any = None  # set when a full connection may read again
        self.tickets = 0
        self.sequencer = Sequencer(server.broker.rt)
        self.stopping = False
        self.task: Any = None
        self.ip = addr[0] if isinstance(addr, tuple) else ""
        self.peer = _peer(addr)
        self.log_context = {"peer": self.peer}  # extra= of its log lines
        self.serial = curio.Lock()  # SERIAL_APIS, one at a time
        # Who the client is (kafscale/security): the listener's protocol, the principal.
        self.session = Session.for_listener(endpoint.protocol, endpoint.name, self.ip)
        self.queued = 0  # request bytes of this connection counted in server.queued_bytes
        self.closed = False

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    async def stop_when_idle(self) -> None:
        self.stopping = True
        if not self.busy and self.task is not None:
            await self.task.cancel(blocking=False)

    async def cancel(self) -> None:
        if self.task is not None:
            await self.task.cancel(blocking=False)

    async def _recv(self) -> bytes | None:
        """The next bytes from the client; None once it was idle for connections.max.idle.ms
        (no bytes, nothing in progress). Waits first while the server's queue is full."""
        server = self.server
        while server.queue_full:
            # Nothing is read while the queue is full; but a client that went away is
            # noticed (its bytes go back to the queue), else stalled senders would hold
            # the queue full for good.
            await server.wait_for_queue_room(1.0)
            if self._peer_closed():
                return b""
        while True:
            data = await curio.ignore_after(server.idle_s, self.sock.recv(RECV_BYTES))
            if data is not None:
                return self._more_tls(data) if data and self.endpoint.tls is not None else data
            if not self.in_flight:
                return None

    def _more_tls(self, data: bytes) -> bytes:
        """``data`` and whatever else TLS has decrypted or can decrypt without waiting, up
        to RECV_BYTES: a TLS recv returns one record (16 KiB) at most, and one event-loop
        round per record tripled the broker's CPU per GB over SASL_SSL."""
        raw = self.sock._socket
        chunks, size = [data], len(data)
        while size < RECV_BYTES:
            try:
                more = raw.recv(RECV_BYTES - size)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except OSError:  # (the next awaited recv reports it)
                break
            if not more:
                break
            chunks.append(more)
            size += len(more)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _peer_closed(self) -> bool:
        """Whether the client closed its end (without reading what it sent)."""
        try:
            # (the plain socket's recv: on TLS this peeks ciphertext, which is all this needs)
            return socket_module.socket.recv(self.sock._socket, 1,
                                             socket_module.MSG_PEEK | socket_module.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _enqueue(self, size: int) -> None:
        self.queued += size
        self.server.queue(size)

    async def _dequeue(self, size: int) -> None:
        if not self.closed:  # (once closed, all it held went back at once)
            self.queued -= size
            await self.server.dequeue(size)

    async def _start_tls(self) -> bool:
        """The TLS handshake, bounded by HANDSHAKE_TIMEOUT_S; whether it succeeded (if not,
        one line is logged and the caller closes). Sets the principal from a client
        certificate (Kafka's default: ``User:`` + the subject's RFC 2253 name)."""
        tls = self.endpoint.tls
        assert tls is not None
        try:
            wrapped = tls.context().wrap_socket(self.sock._socket, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            closing_log.info("closing connection from %s: TLS: %s", self.peer, exc, extra=self.log_context)
            return False
        self.sock = Socket(wrapped)  # (the plain socket's descriptor is the TLS socket's now)
        try:
            await curio.timeout_after(HANDSHAKE_TIMEOUT_S, self.sock.do_handshake())
        except curio.TaskTimeout:
            closing_log.info("closing connection from %s: TLS handshake not done after %.0f s", self.peer,
                             HANDSHAKE_TIMEOUT_S, extra=self.log_context)
            return False
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or exc.strerror or exc
            closing_log.info("closing connection from %s: TLS handshake failed: %s", self.peer, reason,
                             extra=self.log_context)
            return False
        if tls.verifies_clients:
            der = wrapped.getpeercert(binary_form=True)
            if der:
                try:
                    self.session.principal = principal_of(der)
                except ValueError as exc:
                    closing_log.info("closing connection from %s: client certificate: %s", self.peer, exc,
                                     extra=self.log_context)
                    return False
        return True

    async def run(self) -> None:
        self.task = await curio.current_task()
        server = self.server
        if self.endpoint.tls is not None and not await self._tls_or_close():
            return
        decoder = FrameDecoder(server.max_request_bytes)
        queue = curio.Queue(self.MAX_IN_FLIGHT)
        sender = await curio.spawn(self._send_in_order, queue, daemon=True)
        try:
            try:
                while not self.stopping and not sender.terminated:
                    data = await self._recv()
                    if data is None:
                        server.idle_closed += 1
                        closing_log.info("closing connection from %s: idle for %.0f s%s", self.peer, server.idle_s,
                                         f" with {decoder.buffered} bytes of a request" if decoder.buffered else "",
                                         extra=self.log_context)
                        break
                    if not data:
                        break
                    decoder.feed(data)
                    self._enqueue(len(data))
                    while not self.stopping:
                        frame = decoder.next_frame()
                        if frame is None:
                            break
                        if self.in_flight and self.in_flight_bytes + len(frame) > self.MAX_IN_FLIGHT_BYTES:
                            self._room = curio.Event()
                            await self._room.wait()
                        self.in_flight += 1
                        self.in_flight_bytes += len(frame)
                        ticket, self.tickets = self.tickets, self.tickets + 1
                        await queue.put(await curio.spawn(self._handle, frame, ticket, daemon=True))
            except (DecodeError, CloseConnection) as exc:
                closing_log.info("closing connection from %s: %s", self.peer, exc, extra=self.log_context)
            # Answer what was read before the end (or the bad frame), then close.
            if not sender.terminated:
                await queue.put(None)
                await sender.join()
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s: %s", self.peer, exc, extra=self.log_context)
        except curio.TaskError as exc:
            log.debug("connection from %s: %s", self.peer, exc.__cause__ or exc, extra=self.log_context)
        finally:
            # The sender ends before the socket closes: curio keeps a task's last socket
            # registered with the selector until the task next waits, and a socket
            # closed under it then fails that wait with EBADF, which stops the whole
            # kernel (a client closing mid-response brought the broker down).
            await sender.cancel()
            await self.sock.close()
            held, self.queued, self.closed = self.queued, 0, True
            await server.dequeue(held)  # (half-sent and unanswered requests)
            server.forget(self)

    async def _tls_or_close(self) -> bool:
        """The TLS handshake; if it fails, the connection is closed and forgotten."""
        ok = False
        try:
            ok = await self._start_tls()
        finally:
            if not ok:
                await self.sock.close()
                self.closed = True
                self.server.forget(self)
        return ok

    async def _handle(self, frame: memoryview, ticket: int) -> list | _Close | None:
        arrived = time.monotonic()
        try:
            if len(frame) >= 2 and int.from_bytes(frame[:2], "big", signed=True) in SERIAL_APIS:
                async with self.serial:
                    # curio runs every task that becomes ready before it polls sockets
                    # again: a chain of these requests (each waking the next) would keep
                    # every other connection unread until its end. A timed sleep lets the
                    # ready queue drain and the sockets be polled between two of them.
                    await curio.sleep(1e-6)
                    return await self.process(frame, ticket, arrived)
            return await self.process(frame, ticket, arrived)
        except CloseConnection as exc:
            return _Close(str(exc))
        except Exception:  # noqa: BLE001 - a bug: logged once with its traceback; the connection closes
            log.exception("connection from %s: request failed", self.peer, extra=self.log_context)
            return _Close("internal error")
        finally:
            await self.sequencer.done(ticket)  # (a no-op when the handler passed it already)
            self.in_flight -= 1
            self.in_flight_bytes -= len(frame)
            await self._dequeue(len(frame) + 4)
            if self._room is not None:
                room, self._room = self._room, None
                await room.set()

    def _shutdown(self) -> None:
        """Stop both directions of the socket (the reader's recv returns at once); the
        reader closes it. (The plain socket's shutdown: a TLS socket's would drop its
        TLS state under the reader.)"""
        try:
            socket_module.socket.shutdown(self.sock._socket, socket_module.SHUT_RDWR)
        except OSError:
            pass

    async def _send_in_order(self, queue: Any) -> None:
        """Send each response in request order; after a request that must close the
        connection, answer nothing more and shut the socket."""
        closing = False
        while True:
            task = await queue.get()
            if task is None:
                return
            if closing:
                await task.cancel()
                continue
            try:
                out = await task.join()
            except curio.TaskError as exc:  # (cancelled: the connection is going away)
                out = _Close(f"request ended: {exc.__cause__ or exc}")
            if isinstance(out, _Close):
                closing_log.info("closing connection from %s: %s", self.peer, out.reason, extra=self.log_context)
                closing = True
                try:
                    for part in out.parts or ():
                        await self.sock.sendall(part)
                except (ConnectionError, OSError):
                    pass
                self.stopping = True
                self._shutdown()
                continue
            if out is not None:
                try:
                    for part in out:  # (large record sets go out from the cache, uncopied)
                        await self.sock.sendall(part)
                except (ConnectionError, OSError) as exc:  # the client went away
                    log.debug("connection from %s: %s", self.peer, exc, extra=self.log_context)
                    self.stopping = True
                    self._shutdown()
                    return

    async def process(self, frame: memoryview, ticket: int = 0, arrived: float = 0.0) -> list | None:
        """The response to one request frame, as buffers to send in order (or None)."""
        if len(frame) < _PEEK.size:
            raise CloseConnection("request shorter than a header")
        api_key, version, correlation_id = _PEEK.unpack_from(frame, 0)
        broker = self.broker
        if not broker.supports(api_key, version):
            if api_key == ApiKey.API_VERSIONS:
                # Kafka answers with a v0 response naming what it supports.
                return headers.encode_response_parts(
                    (api_key, 0, correlation_id), unsupported_version_response())
            raise CloseConnection(f"unsupported API {api_name(api_key)} version {version}")
        if not self.session.allows_before_auth(api_key):
            raise CloseConnection(f"unexpected {api_name(api_key)} request before SASL authentication")
        if self.session.expired_for(api_key, time.monotonic()):
            raise CloseConnection("SASL session expired without re-authentication (connections.max.reauth.ms)")
        try:
            header, request = headers.decode_request(frame)
        except (DecodeError, headers.UnknownApiKey, headers.UnsupportedVersion) as exc:
            raise CloseConnection(f"malformed request ({api_name(api_key)} v{version}): {exc}") from None
        ctx = RequestContext(broker, api_key, version, correlation_id, header.client_id,
                             self.ip, ticket, self.sequencer, arrived, peer=self.peer, session=self.session)
        response = await broker.handle(ctx, request)
        if response is None:
            return None
        parts = headers.encode_response_parts((api_key, version, correlation_id), response)
        if self.session.closing:  # answered, then closed (a failed SASL authentication)
            return _Close(self.session.closing, parts)  # type: ignore[return-value]
        return parts
