"""CreateTopics (key 19), versions 0-7.

v1 validate_only and error messages; v5 flexible, and the created topic's partition
count, replication factor and every config (as DescribeConfigs reports them) in the
response; v7 topic ids. Replication is S3's job: any replication factor is accepted and
reported as asked (-1 reports 1).
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import CreateTopicsRequest, CreateTopicsResponse

R = CreateTopicsResponse


@handles(ApiKey.CREATE_TOPICS, versions=(0, 7))
async def create_topics(ctx, req: CreateTopicsRequest) -> CreateTopicsResponse:
    results = []
    seen: set[str] = set()
    for t in req.topics:
        if t.name in seen:
            results.append(R.CreatableTopicResult(name=t.name, error_code=ErrorCode.INVALID_REQUEST,
                                                  error_message="topic named twice in one request"))
            continue
        seen.add(t.name)
        results.append(await _create(ctx, req, t))
    return R(topics=results)


async def _create(ctx, req, t) -> "R.CreatableTopicResult":
    partitions = t.num_partitions
    if t.assignments:
        if partitions != -1:
            return R.CreatableTopicResult(name=t.name, error_code=ErrorCode.INVALID_REQUEST,
                                          error_message="both partitions and assignments given")
        partitions = len(t.assignments)
    if t.replication_factor == 0 or t.replication_factor < -1:
        return R.CreatableTopicResult(name=t.name, error_code=ErrorCode.INVALID_REPLICATION_FACTOR,
                                      error_message="replication factor must be -1 or positive")
    config = {c.name: c.value for c in t.configs}  # a null value is refused (INVALID_CONFIG), as in Kafka
    if not ctx.broker.authorizer.may_create_topic(ctx, t.name):
        return R.CreatableTopicResult(name=t.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                      error_message=f"Not authorized to CREATE topic {t.name}.")
    try:
        rec = await ctx.logs.create_topic(t.name, partitions, config, validate_only=req.validate_only)
    except KafkaError as exc:
        return R.CreatableTopicResult(name=t.name, error_code=exc.code, error_message=str(exc))
    rf = t.replication_factor if t.replication_factor > 0 else 1
    return R.CreatableTopicResult(
        name=t.name, topic_id=rec.id_bytes, error_code=0, num_partitions=rec.partitions,
        replication_factor=rf,
        configs=[R.CreatableTopicConfigs(name=d.name, value=d.value, read_only=d.read_only, config_source=d.source,
                                         is_sensitive=d.sensitive)
                 for d in ctx.broker.dynamic.describe_topic(rec.config)])
