"""A minimal Kafka client over a plain socket, for tests that need exact bytes on the wire."""

from __future__ import annotations

import socket
import struct
from typing import Any

from kafscale.protocol import headers, messages


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 30.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes | None:
        """One response frame without its size prefix; None if the broker closed the connection."""
        head = self._recv_exact(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, version: int, req: Any) -> Any:
        self.correlation += 1
        self.send_raw(headers.encode_request(api_key, version, self.correlation, "raw-test", req))
        frame = self.recv_frame()
        if frame is None:
            raise ConnectionError("broker closed the connection")
        correlation, resp = headers.decode_response(api_key, version, frame)
        assert correlation == self.correlation
        return resp

    def is_closed(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def produce_request(topic: str, partition: int, records: bytes, acks: int = -1, timeout_ms: int = 10000):
    R = messages.ProduceRequest
    return R(acks=acks, timeout_ms=timeout_ms, topic_data=[
        R.TopicProduceData(name=topic, partition_data=[R.PartitionProduceData(index=partition, records=records)])])


def create_topic_request(name: str, partitions: int, configs: dict[str, str] | None = None):
    R = messages.CreateTopicsRequest
    return R(topics=[R.CreatableTopic(name=name, num_partitions=partitions, replication_factor=1,
                                      configs=[R.CreatableTopicConfig(name=k, value=v)
                                               for k, v in (configs or {}).items()])],
             timeout_ms=10000)
