"""The Kafka listener: accept connections, frame, decode, dispatch, encode, send.

One request at a time per connection, answered in order (as Kafka does by muting a
channel until its response is sent); many connections at once. Framing violations
(a frame larger than max_request_bytes, a header or body that does not parse, an
unknown API key or an unsupported version of anything but ApiVersions) close that one
connection, as Kafka does; every other failure is answered and the connection lives.
"""

from __future__ import annotations

import logging
import socket as socket_module
import struct
from typing import Any

import curio

from kafscale.broker.core import Broker, RequestContext, Sequencer
from kafscale.broker.handlers.api_versions import unsupported_version_response
from kafscale.broker.registry import ApiKey
from kafscale.protocol import headers
from kafscale.protocol.frames import FrameDecoder
from kafscale.protocol.primitives import DecodeError
from kafscale.server.net import listen_socket

log = logging.getLogger(__name__)

_PEEK = struct.Struct(">hhi")  # api key, api version, correlation id


class CloseConnection(Exception):
    pass


class KafkaServer:
    def __init__(self, broker: Broker, host: str, port: int, max_request_bytes: int) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.max_request_bytes = max_request_bytes
        self.connections: set["Connection"] = set()
        self.accepted = 0
        self._sock = None
        self._draining = False

    async def bind(self) -> None:
        self._sock = listen_socket(self.host, self.port, backlog=1024)
        self.port = self._sock.getsockname()[1]

    async def serve(self) -> None:
        assert self._sock is not None
        async with self._sock:
            while True:
                client, addr = await self._sock.accept()
                self.accepted += 1
                conn = Connection(self, client, addr)
                self.connections.add(conn)
                await curio.spawn(conn.run, daemon=True)

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

    def __init__(self, server: KafkaServer, sock: Any, addr: Any) -> None:
        self.server = server
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

    async def run(self) -> None:
        self.task = await curio.current_task()
        decoder = FrameDecoder(self.server.max_request_bytes)
        queue = curio.Queue(self.MAX_IN_FLIGHT)
        sender = await curio.spawn(self._send_in_order, queue, daemon=True)
        try:
            try:
                while not self.stopping and not sender.terminated:
                    data = await self.sock.recv(256 * 1024)
                    if not data:
                        break
                    decoder.feed(data)
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
                log.info("closing connection from %s: %s", self.addr, exc)
            # Answer what was read before the end (or the bad frame), then close.
            if not sender.terminated:
                await queue.put(None)
                await sender.join()
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s: %s", self.addr, exc)
        except curio.TaskError as exc:
            log.debug("connection from %s: %s", self.addr, exc.__cause__ or exc)
        finally:
            # The sender ends before the socket closes: curio keeps a task's last socket
            # registered with the selector until the task next waits, and a socket
            # closed under it then fails that wait with EBADF, which stops the whole
            # kernel (a client closing mid-response brought the broker down).
            await sender.cancel()
            await self.sock.close()
            self.server.connections.discard(self)

    async def _handle(self, frame: memoryview, ticket: int) -> list | None:
        try:
            return await self.process(frame, ticket)
        finally:
            await self.sequencer.done(ticket)  # (a no-op when the handler passed it already)
            self.in_flight -= 1
            self.in_flight_bytes -= len(frame)
            if self._room is not None:
                room, self._room = self._room, None
                await room.set()

    def _shutdown(self) -> None:
        """Stop both directions of the socket (the reader's recv returns at once); the
        reader closes it."""
        try:
            self.sock._socket.shutdown(socket_module.SHUT_RDWR)
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
            except curio.TaskError as exc:
                cause = exc.__cause__
                if isinstance(cause, (DecodeError, CloseConnection)):
                    log.info("closing connection from %s: %s", self.addr, cause)
                else:
                    log.error("connection from %s: request failed: %r", self.addr, cause)
                closing = True
                self.stopping = True
                self._shutdown()
                continue
            if out is not None:
                try:
                    for part in out:  # (large record sets go out from the cache, uncopied)
                        await self.sock.sendall(part)
                except (ConnectionError, OSError) as exc:  # the client went away
                    log.debug("connection from %s: %s", self.addr, exc)
                    self.stopping = True
                    self._shutdown()
                    return

    async def process(self, frame: memoryview, ticket: int = 0) -> list | None:
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
            raise CloseConnection(f"unsupported API {api_key} version {version}")
        try:
            header, request = headers.decode_request(frame)
        except (DecodeError, headers.UnknownApiKey, headers.UnsupportedVersion) as exc:
            raise CloseConnection(f"malformed request (api {api_key} v{version}): {exc}") from None
        ctx = RequestContext(broker, api_key, version, correlation_id, header.client_id,
                             self.addr[0] if isinstance(self.addr, tuple) else "", ticket, self.sequencer)
        response = await broker.handle(ctx, request)
        if response is None:
            return None
        return headers.encode_response_parts((api_key, version, correlation_id), response)
