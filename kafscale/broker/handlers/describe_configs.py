"""DescribeConfigs (key 32), versions 0-4.

TOPIC resources: every topic config Kafka defines, the topic's own value or the broker's
default for topics; BROKER resources: this broker's configs (its id as the name; another
broker's id gets INVALID_REQUEST, as in Kafka: clients send it to that broker), or ""
for the configs set at run time for every broker. Values, sources and synonyms follow
kafscale/broker_configs.py; sensitive values are reported as null. v1 synonyms
(when asked) and config sources; v3 types and documentation (when asked); v4 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.broker_configs import ConfigSource, Described, InvalidRequest, ResourceType
from kafscale.errors import KafkaError, UnknownTopicOrPartition
from kafscale.protocol.messages import DescribeConfigsRequest, DescribeConfigsResponse
from kafscale.storage.engine import validate_topic_name

R = DescribeConfigsResponse


@handles(ApiKey.DESCRIBE_CONFIGS, versions=(0, 4))
async def describe_configs(ctx, req: DescribeConfigsRequest) -> DescribeConfigsResponse:
    results = []
    for r in req.resources:
        try:
            described = await _describe(ctx, r.resource_type, r.resource_name)
        except KafkaError as exc:
            results.append(R.DescribeConfigsResult(error_code=exc.code, error_message=str(exc),
                                                   resource_type=r.resource_type, resource_name=r.resource_name))
            continue
        keys = None if r.configuration_keys is None else set(r.configuration_keys)
        configs = [_entry(d, req) for d in described if keys is None or d.name in keys]
        results.append(R.DescribeConfigsResult(resource_type=r.resource_type, resource_name=r.resource_name,
                                               configs=configs))
    return R(results=results)


async def _describe(ctx, resource_type: int, name: str) -> list[Described]:
    dynamic = ctx.broker.dynamic
    authz = ctx.broker.authorizer
    if resource_type == ResourceType.TOPIC:
        validate_topic_name(name)
        authz.check_topic(ctx, Operation.DESCRIBE_CONFIGS, name)
        rec = await ctx.logs.lookup_topic(name)
        if rec is None:
            raise UnknownTopicOrPartition(f"Topic {name} does not exist")
        return dynamic.describe_topic(rec.config)
    if resource_type == ResourceType.BROKER:
        authz.check_cluster(ctx, Operation.DESCRIBE_CONFIGS)
        return dynamic.describe_broker(name)
    if resource_type == ResourceType.BROKER_LOGGER:
        raise InvalidRequest("BROKER_LOGGER resources are not supported: set --log-level")
    raise InvalidRequest(f"Unsupported resource type {resource_type}")


def _entry(d: Described, req: DescribeConfigsRequest) -> "R.DescribeConfigsResourceResult":
    synonyms = [R.DescribeConfigsSynonym(name=n, value=v, source=int(s)) for n, v, s in d.synonyms] \
        if req.include_synonyms else []
    return R.DescribeConfigsResourceResult(
        name=d.name, value=d.value, read_only=d.read_only, is_default=d.source == ConfigSource.DEFAULT_CONFIG,
        config_source=int(d.source), is_sensitive=d.sensitive, synonyms=synonyms, config_type=int(d.type),
        documentation=d.doc if req.include_documentation else None)
