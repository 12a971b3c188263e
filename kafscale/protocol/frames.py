"""Sans-IO framing: every Kafka request and response is ``int32 size`` + ``size`` bytes.

FrameDecoder buffers whatever the transport delivers and hands back complete frames
(without the size prefix) as memoryviews. A frame that lies inside one fed chunk is a
zero-copy slice of that chunk; only frames spanning chunks are joined (one copy).
Fed bytes objects are kept by reference; mutable buffers are copied once, since the
caller may reuse them.
"""

from __future__ import annotations

from collections import deque
from typing import Union

from .primitives import DecodeError

__all__ = ["FrameDecoder", "FrameTooLarge", "DEFAULT_MAX_FRAME_BYTES"]

# Kafka's socket.request.max.bytes default.
DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024

Buffer = Union[bytes, bytearray, memoryview]


class FrameTooLarge(DecodeError):
    """The size prefix announces more than max_frame_bytes."""


class FrameDecoder:
    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # consumed bytes of _chunks[0]
        self._buffered = 0  # unconsumed bytes over all chunks
        self._need = -1  # size of the frame being assembled, once its prefix is read

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames (prefix included)."""
        return self._buffered

    def feed(self, data: Buffer) -> None:
        if not data:
            return
        chunk = bytes(data)  # no copy for bytes; a private copy of mutable buffers
        self._chunks.append(chunk)
        self._buffered += len(chunk)

    def next_frame(self) -> memoryview | None:
        """The next complete frame without its size prefix, or None if more bytes are needed.

        Raises FrameTooLarge or DecodeError (negative size); the stream cannot be
        resynchronised after that, so the connection should be closed.
        """
        if self._need < 0:
            if self._buffered < 4:
                return None
            size = int.from_bytes(self._take(4), "big", signed=True)
            if size < 0:
                raise DecodeError(f"negative frame size {size}")
            if size > self.max_frame_bytes:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {self.max_frame_bytes}")
            self._need = size
        if self._buffered < self._need:
            return None
        frame = self._take(self._need)
        self._need = -1
        return frame

    def __iter__(self):
        while (frame := self.next_frame()) is not None:
            yield frame

    def _take(self, n: int) -> memoryview:
        if n == 0:  # a zero-length frame: there may be no chunk left to slice
            return memoryview(self._chunks[0])[self._offset:self._offset] if self._chunks else memoryview(b"")
        self._buffered -= n
        first = self._chunks[0]
        start = self._offset
        if len(first) - start >= n:
            view = memoryview(first)[start:start + n]
            self._advance(n)
            return view
        parts = []
        left = n
        while left:
            first = self._chunks[0]
            avail = len(first) - self._offset
            take = min(avail, left)
            parts.append(memoryview(first)[self._offset:self._offset + take])
            self._advance(take)
            left -= take
        return memoryview(b"".join(parts))

    def _advance(self, n: int) -> None:
        self._offset += n
        if self._offset == len(self._chunks[0]):
            self._chunks.popleft()
            self._offset = 0
