"""Producing records: partition choice, record batches, acks=all, retries on a moved leader.

A record with a key goes to ``murmur2(key) % partitions`` (Kafka's default partitioner,
which librdkafka calls ``murmur2_random``); records without a key go round robin. Each
``send`` call waits for every batch to be acknowledged by all replicas (``acks=-1``).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

from kafscale.errors import is_retriable
from kafscale.protocol import messages as m
from kafscale.protocol.records import build_batch

from .client import Client, KafkaCallError, TopicInfo, check
from .groupproto import partition_for_key

# Records per batch are bounded well below Kafka's default max.message.bytes (1 MiB).
BATCH_BYTES = 512 * 1024

KeyValue = tuple[bytes | None, bytes]


class Producer:
    def __init__(self, client: Client, topic: str, partition: int | None = None, *,
                 timeout_ms: int = 30_000) -> None:
        self.client = client
        self.topic = topic
        self.partition = partition
        self.timeout_ms = timeout_ms
        self.info: TopicInfo = client.topic(topic, create=True)
        if partition is not None and partition not in self.info.partitions:
            raise KafkaCallError(f"topic {topic!r} has no partition {partition} "
                                 f"(partitions 0-{len(self.info.partitions) - 1})", 0)
        self._round_robin = itertools.count()
        self.sent = 0

    def partition_for(self, key: bytes | None) -> int:
        if self.partition is not None:
            return self.partition
        count = len(self.info.partitions)
        if key is None:
            return next(self._round_robin) % count
        return partition_for_key(key, count)

    def send(self, records: list[KeyValue]) -> None:
        """Produce ``records`` and wait until all are acknowledged."""
        now = int(time.time() * 1000)
        pending: dict[int, list[bytes]] = defaultdict(list)
        by_partition: dict[int, list[KeyValue]] = defaultdict(list)
        for key, value in records:
            by_partition[self.partition_for(key)].append((key, value))
        for p, recs in by_partition.items():
            batch: list[tuple[bytes | None, bytes, None, int]] = []
            size = 0
            for key, value in recs:
                if batch and size + len(value) + len(key or b"") > BATCH_BYTES:
                    pending[p].append(build_batch(batch))
                    batch, size = [], 0
                batch.append((key, value, None, now))
                size += len(value) + len(key or b"") + 16
            pending[p].append(build_batch(batch))
        self.client.retrying(lambda: self._send(pending))
        self.sent += len(records)

    def _send(self, pending: dict[int, list[bytes]]) -> None:
        """One Produce per leader; acknowledged batches leave ``pending`` so a retry
        sends only the rest."""
        R = m.ProduceRequest
        while pending:
            for leader, parts in self.client.by_leader(self.info, sorted(pending)).items():
                req = R(acks=-1, timeout_ms=self.timeout_ms, topic_data=[R.TopicProduceData(
                    name=self.topic, partition_data=[R.PartitionProduceData(index=p, records=pending[p][0])
                                                     for p in parts])])
                for t in self.client.node(leader).request(req).responses:
                    for p in t.partition_responses:
                        if p.error_code and is_retriable(p.error_code):
                            self.info = self.client.topic(self.topic)
                        check(p.error_code, f"topic {self.topic!r} partition {p.index}", p.error_message)
                        pending[p.index].pop(0)
                        if not pending[p.index]:
                            del pending[p.index]
