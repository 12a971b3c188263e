"""The idempotent-producer table of one partition (KIP-98's producer state, in small).

Per producer id, the epoch last seen and the sequence ranges, base offsets and max
timestamps of its last PRODUCER_BATCHES batches::

    {"<producer id>": [epoch, [[first_seq, last_seq, base_offset, max_timestamp], ...oldest first]]}

(tables written before timestamps were kept have three-element batches.)

That is the shape kept in the partition's committed state in etcd
(``PartitionState.producers``), so it moves with the partition from owner to owner. An
owner works on a copy: the committed table plus the batches it has staged since. At
most MAX_PRODUCERS producers are kept; the one that wrote least recently goes first.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from kafscale.errors import ErrorCode, KafkaError

__all__ = ["MAX_PRODUCERS", "PRODUCER_BATCHES", "Producer", "ProducerTable"]

MAX_PRODUCERS = 1000  # idempotent producers remembered per partition
PRODUCER_BATCHES = 5  # batches remembered per producer (max.in.flight of idempotent clients)

Producer = tuple[int, int, int]  # (producer id, producer epoch, base sequence) of a batch


class ProducerTable:
    def __init__(self, committed: dict[str, list] | None = None) -> None:
        self.table: dict[str, list] = copy.deepcopy(committed) if committed else {}

    def check(self, producer: Producer, count: int, *, after_takeover: bool = False) -> int | None:
        """Validate an idempotent batch of ``count`` records: the base offset of the batch
        it repeats (a retry), or None for a new batch in sequence. A stale epoch, or a
        sequence that is not the next one, raises the Kafka error. Right ``after_takeover``
        a gap is answered REQUEST_TIMED_OUT instead (retriable): the batches before it are
        most likely still on their way back from the previous owner, and librdkafka
        answers OUT_OF_ORDER_SEQUENCE_NUMBER by renumbering every unacknowledged batch,
        which would write again a batch that the old owner did write."""
        pid, epoch, seq = producer
        entry = self.table.get(str(pid))
        if entry is None:
            return None  # a producer we have no state for starts anywhere (as Kafka does)
        known_epoch, batches = entry
        if epoch < known_epoch:
            raise KafkaError(f"producer {pid} epoch {epoch} < {known_epoch}", ErrorCode.INVALID_PRODUCER_EPOCH)
        if epoch > known_epoch:
            if seq != 0:
                raise KafkaError(f"producer {pid} new epoch must start at sequence 0",
                                 ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)
            return None
        for first, _last, base, *_ in batches:
            if first == seq:
                return base
        expected = (batches[-1][1] + 1) & 0x7FFFFFFF
        if seq != expected:
            ahead = 0 < (seq - expected) & 0x7FFFFFFF < 1 << 30
            if ahead and after_takeover:
                raise KafkaError(f"producer {pid}: sequence {seq}, expected {expected} (the batches before "
                                 "it are still to come from the previous owner's clients)",
                                 ErrorCode.REQUEST_TIMED_OUT)
            raise KafkaError(f"producer {pid}: sequence {seq}, expected {expected}",
                             ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)
        return None

    def remember(self, producer: Producer, count: int, base: int, max_ts: int = -1) -> None:
        """Record an idempotent batch of ``count`` records appended at ``base``."""
        pid, epoch, seq = producer
        key = str(pid)
        entry = self.table.get(key)
        batches = list(entry[1]) if entry and entry[0] == epoch else []
        batches.append([seq, (seq + count - 1) & 0x7FFFFFFF, base, max_ts])
        self.table[key] = [epoch, batches[-PRODUCER_BATCHES:]]
        if len(self.table) > MAX_PRODUCERS:
            oldest = min(self.table, key=lambda k: self.table[k][1][-1][2])
            del self.table[oldest]

    def describe(self) -> list[tuple[int, int, int, int]]:
        """(producer id, epoch, last sequence, last batch's max timestamp or -1) of every
        producer, by id (DescribeProducers)."""
        out = []
        for pid, (epoch, batches) in self.table.items():
            last = batches[-1]
            out.append((int(pid), epoch, last[1], last[3] if len(last) > 3 else -1))
        return sorted(out)

    @classmethod
    def committed_with(cls, committed: dict[str, list],
                       batches: Iterable[tuple[Producer, int, int, int]]) -> dict[str, list]:
        """The table to commit: ``committed`` plus ``batches`` of (producer, count, base,
        max timestamp)."""
        table = cls(committed)
        for producer, count, base, max_ts in batches:
            table.remember(producer, count, base, max_ts)
        return table.table
