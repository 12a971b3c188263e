"""OffsetDelete (key 47), version 0.

Deletes a group's committed offsets for some partitions. Refused per partition with
GROUP_SUBSCRIBED_TO_TOPIC while a consumer group with members subscribes to the
topic; for the whole request with GROUP_ID_NOT_FOUND (unknown group) or
NON_EMPTY_GROUP (members, but not a consumer group). Unknown topics get
UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import OffsetDeleteRequest, OffsetDeleteResponse

R = OffsetDeleteResponse


@handles(ApiKey.OFFSET_DELETE, versions=(0, 0))
async def offset_delete(ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse:
    authz = ctx.broker.authorizer
    authz.check_group(ctx, Operation.DELETE, req.group_id)
    topics = ctx.logs.topics
    readable = {t.name for t in req.topics if authz.topic(ctx, Operation.READ, t.name)}
    known = [(t.name, p.partition_index) for t in req.topics for p in t.partitions
             if t.name in topics and t.name in readable and 0 <= p.partition_index < topics[t.name].partitions]
    top, codes = await ctx.broker.groups.delete_offsets(req.group_id, known)
    if top != ErrorCode.NONE:
        return R(error_code=top)
    return R(error_code=0, topics=[R.OffsetDeleteResponseTopic(name=t.name, partitions=[
        R.OffsetDeleteResponsePartition(
            partition_index=p.partition_index,
            error_code=codes.get((t.name, p.partition_index), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                                 if t.name in readable else ErrorCode.TOPIC_AUTHORIZATION_FAILED))
        for p in t.partitions]) for t in req.topics])
