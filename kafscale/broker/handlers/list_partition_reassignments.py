"""ListPartitionReassignments (key 46), version 0.

No reassignment is ever in progress: Kafscale does not reassign partitions (see
alter_partition_reassignments.py), so the answer lists none.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse

R = ListPartitionReassignmentsResponse


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS, versions=(0, 0))
async def list_partition_reassignments(ctx, req: ListPartitionReassignmentsRequest) -> R:
    ctx.broker.authorizer.check_cluster(ctx, Operation.DESCRIBE)
    return R(error_code=0, topics=[])
