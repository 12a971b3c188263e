"""IncrementalAlterConfigs (key 44), versions 0-1.

Changes single configs of each resource: SET (0), DELETE (1: back to the default), and
for LIST configs APPEND (2) and SUBTRACT (3), starting from the current value. Same
resources, checks, storage and ``validate_only`` as AlterConfigs (alter_configs.py);
a config named twice for one resource, APPEND/SUBTRACT on a non-list config or an
unknown operation get INVALID_REQUEST. v1 flexible.
"""

from __future__ import annotations

from kafscale import broker_configs
from kafscale.broker.handlers.alter_configs import alter_each
from kafscale.broker.registry import ApiKey, handles
from kafscale.broker_configs import InvalidRequest, ResourceType
from kafscale.protocol.messages import IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse

R = IncrementalAlterConfigsResponse


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS, versions=(0, 1))
async def incremental_alter_configs(ctx, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse:
    return await alter_each(R, ctx, req, _ops)


def _ops(ctx, resource):
    dynamic = ctx.broker.dynamic
    ops = [(c.name, c.config_operation, c.value) for c in resource.configs]
    if resource.resource_type == ResourceType.TOPIC:
        effective = dynamic.topic_effective
    elif resource.resource_type == ResourceType.BROKER:
        effective = dynamic.broker_effective
    else:
        raise InvalidRequest(f"Unsupported resource type {resource.resource_type}")

    def update(current: dict[str, str]) -> dict[str, str]:
        return broker_configs.apply_changes(current, broker_configs.incremental(current, ops, effective))
    return update
