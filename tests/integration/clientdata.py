"""The message set the client round-trip tests produce, and how they compare what comes back.

Keys, values, headers and explicit timestamps vary with the index; every 7th key and
every 11th value is null (never both: Python clients refuse a record with neither).
Message i goes to partition i % partitions so per-partition order is checkable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Msg:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


BASE_TS = int(time.time() * 1000) - 3_600_000


def messages(n: int, partitions: int = 3, tag: str = "") -> list[Msg]:
    out = []
    for i in range(n):
        key = None if i % 7 == 0 else f"key-{tag}-{i}".encode()
        value = None if i % 11 == 0 and key is not None else (f"value-{tag}-{i}-".encode() + bytes(range(256))[: i % 256] * (1 + i % 3))
        if i % 5 == 0:
            headers: tuple[tuple[str, bytes], ...] = ()
        else:
            headers = (("idx", str(i).encode()), ("h", b"\x00\x01" * (i % 4)))
        out.append(Msg(i % partitions, key, value, headers, BASE_TS + i))
    return out


def by_partition(msgs: list[Msg]) -> dict[int, list[Msg]]:
    out: dict[int, list[Msg]] = {}
    for m in msgs:
        out.setdefault(m.partition, []).append(m)
    return out


def assert_same(expected: list[Msg], got: dict[int, list[Msg]]) -> None:
    want = by_partition(expected)
    assert sorted(got) == sorted(want), f"partitions {sorted(got)} != {sorted(want)}"
    for p, msgs in want.items():
        have = got[p]
        assert len(have) == len(msgs), f"partition {p}: {len(have)} messages, expected {len(msgs)}"
        for i, (a, b) in enumerate(zip(have, msgs)):
            assert a == b, f"partition {p} position {i}: {a!r} != {b!r}"
