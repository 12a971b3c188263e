"""ApiVersions (key 18), versions 0-4.

v3 adds client software name/version and flexible encoding. The response lists exactly
the registry's handlers. An unsupported ApiVersions version is answered by the server
with UNSUPPORTED_VERSION in a v0 response (see ``build``), as Kafka does.
"""

from __future__ import annotations

from kafscale.broker.registry import REGISTRY, ApiKey, Registry, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import ApiVersionsRequest, ApiVersionsResponse


def build(registry: Registry, error_code: int = 0) -> ApiVersionsResponse:
    return ApiVersionsResponse(
        error_code=error_code,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=r.api_key, min_version=r.min_version,
                                                 max_version=r.max_version)
                  for r in registry.supported()],
    )


@handles(ApiKey.API_VERSIONS, versions=(0, 4))
async def api_versions(ctx, req: ApiVersionsRequest) -> ApiVersionsResponse:
    return build(ctx.broker.registry)


def unsupported_version_response() -> ApiVersionsResponse:
    return build(REGISTRY, int(ErrorCode.UNSUPPORTED_VERSION))
