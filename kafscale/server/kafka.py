"""The Kafka listener: accept connections, frame, decode, dispatch, encode, send.

One request at a time per connection, answered in order (as Kafka does by muting a
channel until its response is sent); many connections at once. Framing violations
(a frame larger than max_request_bytes, a header or body that does not parse, an
unknown API key or an unsupported version of anything but ApiVersions) close that one
connection, as Kafka does; every other failure is answered and the connection lives.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import curio

from kafscale.broker.core import Broker, RequestContext
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
    def __init__(self, server: KafkaServer, sock: Any, addr: Any) -> None:
        self.server = server
        self.broker = server.broker
        self.sock = sock
        self.addr = addr
        self.busy = False
        self.stopping = False
        self.task: Any = None

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
        try:
            async with self.sock:
                while not self.stopping:
                    data = await self.sock.recv(256 * 1024)
                    if not data:
                        return
                    decoder.feed(data)
                    while not self.stopping:
                        frame = decoder.next_frame()
                        if frame is None:
                            break
                        self.busy = True
                        try:
                            out = await self.process(frame)
                            if out is not None:
                                await self.sock.sendall(out)
                        finally:
                            self.busy = False
        except (DecodeError, CloseConnection) as exc:
            log.info("closing connection from %s: %s", self.addr, exc)
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s: %s", self.addr, exc)
        finally:
            self.server.connections.discard(self)

    async def process(self, frame: memoryview) -> bytes | None:
        if len(frame) < _PEEK.size:
            raise CloseConnection("request shorter than a header")
        api_key, version, correlation_id = _PEEK.unpack_from(frame, 0)
        broker = self.broker
        if not broker.supports(api_key, version):
            if api_key == ApiKey.API_VERSIONS:
                # Kafka answers with a v0 response naming what it supports.
                return headers.encode_response(
                    (api_key, 0, correlation_id), unsupported_version_response())
            raise CloseConnection(f"unsupported API {api_key} version {version}")
        try:
            header, request = headers.decode_request(frame)
        except (DecodeError, headers.UnknownApiKey, headers.UnsupportedVersion) as exc:
            raise CloseConnection(f"malformed request (api {api_key} v{version}): {exc}") from None
        ctx = RequestContext(broker, api_key, version, correlation_id, header.client_id,
                             self.addr[0] if isinstance(self.addr, tuple) else "")
        response = await broker.handle(ctx, request)
        if response is None:
            return None
        return headers.encode_response((api_key, version, correlation_id), response)
