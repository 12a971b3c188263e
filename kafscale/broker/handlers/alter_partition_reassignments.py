"""AlterPartitionReassignments (key 45), version 0.

Kafscale has nothing to reassign: a partition's data is in S3, readable by every broker,
and its owner is the one Kafscale's assignment over the live brokers names (every broker
computes the same one; broker/membership.py). So Alter accepts only what already is (the
partition's owner as its one replica) and refuses anything else with INVALID_REQUEST and
a message saying why; a cancellation (null replicas) gets NO_REASSIGNMENT_IN_PROGRESS,
brokers that are not registered INVALID_REPLICA_ASSIGNMENT, an unknown partition
UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import KafkaError
from kafscale.protocol.messages import AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse

R = AlterPartitionReassignmentsResponse


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS, versions=(0, 0))
async def alter_partition_reassignments(ctx, req: AlterPartitionReassignmentsRequest) -> R:
    ctx.broker.authorizer.check_cluster(ctx, Operation.ALTER)
    responses = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            try:
                await ctx.broker.membership.check_reassignment(t.name, p.partition_index, p.replicas)
                parts.append(R.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=0))
            except KafkaError as exc:
                parts.append(R.ReassignablePartitionResponse(partition_index=p.partition_index,
                                                             error_code=exc.code, error_message=str(exc)))
        responses.append(R.ReassignableTopicResponse(name=t.name, partitions=parts))
    return R(error_code=0, responses=responses)
