"""CreatePartitions (key 37), versions 0-3.

Grows a topic's partition count, stored in etcd before the answer; a count that would
shrink the topic or keep it as it is gets INVALID_PARTITIONS, as in Kafka. Manual
assignments are checked as Kafka checks them (one list of registered brokers per new
partition) and then not followed: ownership follows Kafscale's assignment over the live
brokers, and every broker's topic watch makes it claim its share of the new partitions.
v1 same as v0; v2 flexible; v3 same as v2.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import CreatePartitionsRequest, CreatePartitionsResponse

R = CreatePartitionsResponse


@handles(ApiKey.CREATE_PARTITIONS, versions=(0, 3))
async def create_partitions(ctx, req: CreatePartitionsRequest) -> CreatePartitionsResponse:
    names = [t.name for t in req.topics]
    live = set(ctx.broker.membership.live) or {ctx.config.broker_id}
    results = []
    for t in req.topics:
        if names.count(t.name) > 1:
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=ErrorCode.INVALID_REQUEST,
                                                         error_message="Duplicate topic in request."))
            continue
        assignments = None if t.assignments is None else [a.broker_ids for a in t.assignments]
        try:
            ctx.broker.authorizer.check_topic(ctx, Operation.ALTER, t.name)
            await ctx.logs.create_partitions(t.name, t.count, assignments, live, validate_only=req.validate_only)
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=0))
        except KafkaError as exc:
            results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=exc.code, error_message=str(exc)))
    return R(results=results)
