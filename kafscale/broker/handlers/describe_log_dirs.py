"""DescribeLogDirs (key 35), versions 0-4.

One log directory per broker, named after where its data is (``s3://{bucket}/{namespace}``),
listing the partitions this broker owns: admin tools ask every broker, and the union is
every partition. A partition's size is the sum of its committed segments' sizes, from
the manifest its owner keeps in memory; offset lag 0 (there are no followers to lag),
never a future replica. Null topics: all. v1 same as v0; v2 flexible; v3 top-level error
code; v4 total and usable bytes (-1: S3 has no such figure).
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.protocol.messages import DescribeLogDirsRequest, DescribeLogDirsResponse

R = DescribeLogDirsResponse


@handles(ApiKey.DESCRIBE_LOG_DIRS, versions=(0, 4))
async def describe_log_dirs(ctx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse:
    ctx.broker.authorizer.check_cluster(ctx, Operation.DESCRIBE)
    wanted: dict[str, set[int]] | None = None
    if req.topics is not None:
        wanted = {}
        for t in req.topics:
            wanted.setdefault(t.topic, set()).update(t.partitions)
    sizes = ctx.logs.owned_sizes(wanted)
    topics = [R.DescribeLogDirsTopic(name=name, partitions=[
        R.DescribeLogDirsPartition(partition_index=p, partition_size=size, offset_lag=0, is_future_key=False)
        for p, size in sorted(parts.items())]) for name, parts in sorted(sizes.items())]
    return R(error_code=0, results=[R.DescribeLogDirsResult(error_code=0, log_dir=ctx.logs.log_dir, topics=topics,
                                                            total_bytes=-1, usable_bytes=-1)])
