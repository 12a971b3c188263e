"""DescribeCluster (key 60), versions 0-1: the cluster id and the live brokers.

v1 adds the endpoint type (1: brokers; 2: controllers, which Kafscale has none of).
"""

from __future__ import annotations

from kafscale.broker.core import advertised_brokers
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import DescribeClusterRequest, DescribeClusterResponse

R = DescribeClusterResponse


@handles(ApiKey.DESCRIBE_CLUSTER, versions=(0, 1))
async def describe_cluster(ctx, req: DescribeClusterRequest) -> DescribeClusterResponse:
    if ctx.version >= 1 and req.endpoint_type != 1:
        return R(error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE, error_message="only broker endpoints exist",
                 endpoint_type=req.endpoint_type, cluster_id=ctx.broker.cluster_id)
    brokers = advertised_brokers(ctx)
    return R(error_code=0, endpoint_type=1, cluster_id=ctx.broker.cluster_id,
             controller_id=min(b.node_id for b in brokers),
             brokers=[R.DescribeClusterBroker(broker_id=b.node_id, host=b.host, port=b.port, rack=b.rack)
                      for b in brokers])
