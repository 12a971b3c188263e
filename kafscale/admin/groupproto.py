"""The "consumer" embedded protocol of classic groups, the assignors, and the key partitioner.

JoinGroup carries each member's subscription and SyncGroup the leader's assignment as
opaque bytes; Kafka clients fill them with ConsumerProtocolSubscription and
ConsumerProtocolAssignment (big-endian, classic non-flexible encoding)::

    Subscription  int16 version | int32 n, n x (int16 len, utf-8 topic) |
                  int32 len, user data (-1 = null) | v1+: owned partitions ... (ignored)
    Assignment    int16 version | int32 n, n x (int16 len, utf-8 topic |
                  int32 k, k x int32 partition) | int32 len, user data (-1 = null)

Later versions only append fields, so reading the prefix reads every version. Sans-IO.
"""

from __future__ import annotations

import struct
from collections import defaultdict

_H = struct.Struct(">h")
_I = struct.Struct(">i")

ASSIGNORS = ("range", "roundrobin")


def _string(s: str) -> bytes:
    b = s.encode("utf-8")
    return _H.pack(len(b)) + b


def encode_subscription(topics: list[str]) -> bytes:
    return b"".join([_H.pack(0), _I.pack(len(topics)), *map(_string, topics), _I.pack(-1)])


def encode_assignment(assignment: dict[str, list[int]]) -> bytes:
    parts = [_H.pack(0), _I.pack(len(assignment))]
    for topic, partitions in sorted(assignment.items()):
        parts += [_string(topic), _I.pack(len(partitions)), *(_I.pack(p) for p in sorted(partitions))]
    parts.append(_I.pack(-1))
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = bytes(data), 0

    def unpack(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.data):
            raise ValueError("truncated consumer protocol data")
        (v,) = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return v

    def string(self) -> str:
        n = self.unpack(_H)
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("bad string in consumer protocol data")
        self.pos += n
        return self.data[self.pos - n:self.pos].decode("utf-8")

    def count(self) -> int:
        n = self.unpack(_I)
        return max(n, 0)


def decode_subscription(data: bytes) -> list[str]:
    r = _Reader(data)
    r.unpack(_H)
    return [r.string() for _ in range(r.count())]


def decode_assignment(data: bytes | None) -> dict[str, list[int]]:
    """topic -> partitions; empty bytes (a member not yet assigned) give {}."""
    if not data:
        return {}
    r = _Reader(data)
    r.unpack(_H)
    out: dict[str, list[int]] = {}
    for _ in range(r.count()):
        topic = r.string()
        out[topic] = [r.unpack(_I) for _ in range(r.count())]
    return out


def assign(strategy: str, subscriptions: dict[str, list[str]],
           partitions: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    """member -> topic -> partitions, as Kafka's RangeAssignor / RoundRobinAssignor.

    ``subscriptions`` maps member ids to topics, ``partitions`` topics to their count
    (topics missing from it are skipped).
    """
    out: dict[str, dict[str, list[int]]] = {member: {} for member in subscriptions}
    if strategy == "range":
        by_topic: dict[str, list[str]] = defaultdict(list)
        for member, topics in subscriptions.items():
            for t in set(topics):
                by_topic[t].append(member)
        for topic, members in sorted(by_topic.items()):
            n = partitions.get(topic, 0)
            members.sort()
            per, extra = divmod(n, len(members))
            start = 0
            for i, member in enumerate(members):
                length = per + (1 if i < extra else 0)
                if length:
                    out[member][topic] = list(range(start, start + length))
                start += length
    elif strategy == "roundrobin":
        members = sorted(subscriptions)
        all_tps = [(t, p) for t in sorted({t for ts in subscriptions.values() for t in ts})
                   for p in range(partitions.get(t, 0))]
        i = 0
        for topic, p in all_tps:
            while topic not in subscriptions[members[i % len(members)]]:
                i += 1
            out[members[i % len(members)]].setdefault(topic, []).append(p)
            i += 1
    else:
        raise ValueError(f"unknown assignor {strategy!r}")
    return out


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2, seed 0x9747b28c) as a signed 32-bit int."""
    length = len(data)
    mask = 0xFFFFFFFF
    mul = 0x5BD1E995
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * mul) & mask
        k ^= k >> 24
        k = (k * mul) & mask
        h = ((h * mul) & mask) ^ k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * mul) & mask
    h ^= h >> 13
    h = (h * mul) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, count: int) -> int:
    """The partition Java's and librdkafka's murmur2 partitioners pick for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % count
