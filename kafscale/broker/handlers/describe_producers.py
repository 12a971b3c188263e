"""DescribeProducers (key 61), version 0.

Per partition, the idempotent producers in its owner's producer table: id, epoch, last
sequence and the max timestamp of its last batch (coordinator epoch and transaction
start -1: transactions are not supported). Only the owner answers
(NOT_LEADER_OR_FOLLOWER elsewhere); an unknown partition gets UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import KafkaError
from kafscale.protocol.messages import DescribeProducersRequest, DescribeProducersResponse

R = DescribeProducersResponse


@handles(ApiKey.DESCRIBE_PRODUCERS, versions=(0, 0))
async def describe_producers(ctx, req: DescribeProducersRequest) -> DescribeProducersResponse:
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partition_indexes:
            try:
                ctx.broker.authorizer.check_topic(ctx, Operation.READ, t.name)
                producers = await ctx.logs.describe_producers(t.name, p)
            except KafkaError as exc:
                parts.append(R.PartitionResponse(partition_index=p, error_code=exc.code, error_message=str(exc)))
                continue
            parts.append(R.PartitionResponse(partition_index=p, error_code=0, active_producers=[
                R.ProducerState(producer_id=pid, producer_epoch=epoch, last_sequence=seq, last_timestamp=ts,
                                coordinator_epoch=-1, current_txn_start_offset=-1)
                for pid, epoch, seq, ts in producers]))
        topics.append(R.TopicResponse(name=t.name, partitions=parts))
    return R(topics=topics)
