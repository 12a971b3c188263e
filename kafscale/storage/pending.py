"""What a partition has staged and not yet handed to a flush, and the broker-wide bound
on produced data not yet in S3.

    stage ──▶ PendingAppends.add ──▶ (a flush) take ──▶ committed / failed
       └──── Backpressure.hold                              └── Backpressure.release

``Append`` is one staged append: its offsets, and the event its produce request waits
on until the flush that carries it has committed (or failed: ``error``).
``Backpressure`` is the one count of produced bytes held in memory until they are in
S3 (staged, pending or in a flush under way), across all partitions; past
``max.pending.bytes`` a produce waits for room.
"""

from __future__ import annotations

from typing import Any

from kafscale.errors import ErrorCode, KafkaError

__all__ = ["Append", "PendingAppends", "Backpressure"]


class Append:
    __slots__ = ("event", "base", "end", "error", "producer", "max_ts")

    def __init__(self, event: Any, base: int, end: int, producer: tuple[int, int, int] | None,
                 max_ts: int = -1) -> None:
        self.event = event
        self.max_ts = max_ts  # the batch's max timestamp (kept in the producer table)
        self.base = base
        self.end = end  # one past the last offset of this append
        self.error: KafkaError | None = None
        self.producer = producer  # (producer id, epoch, base sequence) of an idempotent batch

    @property
    def count(self) -> int:
        return self.end - self.base


class PendingAppends:
    """One partition's staged appends in offset order, with their record batches."""

    __slots__ = ("chunks", "appends", "bytes", "max_ts", "since")

    def __init__(self) -> None:
        self.chunks: list[bytearray] = []
        self.appends: list[Append] = []
        self.bytes = 0
        self.max_ts = -1
        self.since = 0.0  # when the oldest pending append was staged (monotonic)

    def __bool__(self) -> bool:
        return bool(self.chunks)

    def add(self, chunk: bytearray, append: Append, max_ts: int, now: float) -> None:
        if not self.chunks:
            self.since = now
        self.chunks.append(chunk)
        self.appends.append(append)
        self.bytes += len(chunk)
        self.max_ts = max(self.max_ts, max_ts)

    def take(self, limit: int, at_least_one: bool, now: float) -> tuple[list[bytearray], list[Append], int, int]:
        """The oldest appends up to ``limit`` bytes (with ``at_least_one``, the first
        whatever its size): (chunks, appends, bytes, max timestamp of what is taken or
        left)."""
        n, size = 0, 0
        chunks = self.chunks
        while n < len(chunks) and (size + len(chunks[n]) <= limit or n == 0 and at_least_one):
            size += len(chunks[n])
            n += 1
        taken, appends = chunks[:n], self.appends[:n]
        del chunks[:n]
        del self.appends[:n]
        max_ts = self.max_ts
        self.bytes -= size
        if not chunks:
            self.max_ts = -1
        else:
            self.since = now
        return taken, appends, size, max_ts

    def drain(self) -> tuple[list[Append], int]:
        """Everything, dropped: (its appends, its bytes)."""
        appends, size = self.appends, self.bytes
        self.chunks, self.appends = [], []
        self.bytes, self.max_ts = 0, -1
        return appends, size


class Backpressure:
    """Bytes held until they are in S3, bounded by ``limit`` (max.pending.bytes)."""

    def __init__(self, rt: Any, limit: int) -> None:
        self.rt = rt
        self.limit = limit
        self.held = 0
        self._room = rt.event()

    def hold(self, size: int) -> None:
        self.held += size

    async def release(self, size: int) -> None:
        self.held -= size
        if size:
            ev, self._room = self._room, self.rt.event()
            await ev.set()

    async def wait_for_room(self, size: int, timeout: float) -> bool:
        """Wait until ``size`` more bytes fit (at once when nothing is held: one request
        larger than the bound still goes through); True if it had to wait. Fails
        retriably with REQUEST_TIMED_OUT at ``timeout``."""
        if not self.held or self.held + size <= self.limit:
            return False
        deadline = self.rt.monotonic() + timeout
        while self.held and self.held + size > self.limit:
            remaining = deadline - self.rt.monotonic()
            if remaining <= 0 or not await self.rt.wait(self._room, remaining):
                raise KafkaError("broker buffer full: S3 is not keeping up", ErrorCode.REQUEST_TIMED_OUT)
        return True
