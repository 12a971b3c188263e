"""AlterConfigs (key 33), versions 0-2.

Replaces the whole set of configs of each resource: a TOPIC's own configs (checked as at
CreateTopics), or a BROKER's run-time configs (name "" for every broker, an id for one;
only dynamic broker configs). Stored in etcd before the answer and applied by every
broker (broker/dynconfig.py). ``validate_only`` checks and stores nothing. A resource
named twice in one request gets INVALID_REQUEST. v2 flexible.
"""

from __future__ import annotations

from typing import Any

from kafscale.broker.registry import ApiKey, handles
from kafscale.broker_configs import ResourceType
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import AlterConfigsRequest, AlterConfigsResponse

R = AlterConfigsResponse


@handles(ApiKey.ALTER_CONFIGS, versions=(0, 2))
async def alter_configs(ctx, req: AlterConfigsRequest) -> AlterConfigsResponse:
    return await alter_each(R, ctx, req, _replace)


def _replace(ctx, resource):
    new = {c.name: c.value for c in resource.configs}
    return lambda current: new


async def alter_each(response: Any, ctx, req, update_of) -> Any:
    """The ``response`` (AlterConfigsResponse or IncrementalAlterConfigsResponse: the same
    shape) to an AlterConfigs or IncrementalAlterConfigs request, a code and message per
    resource; ``update_of(ctx, resource)`` gives the function from current configs to new."""
    names = [(r.resource_type, r.resource_name) for r in req.resources]
    out = []
    for r, key in zip(req.resources, names):
        code, message = 0, None
        if names.count(key) > 1:
            code, message = ErrorCode.INVALID_REQUEST, f"Error due to duplicate resource {r.resource_name!r}"
        else:
            try:
                if r.resource_type == ResourceType.TOPIC:
                    ctx.broker.authorizer.check_topic(ctx, Operation.ALTER_CONFIGS, r.resource_name)
                elif r.resource_type == ResourceType.BROKER:
                    ctx.broker.authorizer.check_cluster(ctx, Operation.ALTER_CONFIGS)
                await ctx.broker.dynamic.alter(r.resource_type, r.resource_name, update_of(ctx, r),
                                               req.validate_only)
            except KafkaError as exc:
                code, message = exc.code, str(exc)
        out.append(response.AlterConfigsResourceResponse(error_code=code, error_message=message,
                                                         resource_type=r.resource_type,
                                                         resource_name=r.resource_name))
    return response(responses=out)
