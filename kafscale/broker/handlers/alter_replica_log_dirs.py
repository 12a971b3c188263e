"""AlterReplicaLogDirs (key 34), versions 0-2.

A broker has one log dir, its S3 bucket and namespace (DescribeLogDirs names it), and
every partition's data is there: moving a partition to the log dir it is in is a no-op
that succeeds, as in Kafka; any other path gets LOG_DIR_NOT_FOUND; an unknown topic or
partition UNKNOWN_TOPIC_OR_PARTITION. Needs ALTER on the cluster. v2 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode
from kafscale.protocol.messages import AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse
from kafscale.security.acls import Operation

R = AlterReplicaLogDirsResponse


@handles(ApiKey.ALTER_REPLICA_LOG_DIRS, versions=(0, 2))
async def alter_replica_log_dirs(ctx, req: AlterReplicaLogDirsRequest) -> AlterReplicaLogDirsResponse:
    ctx.broker.authorizer.check_cluster(ctx, Operation.ALTER)
    logs = ctx.logs
    results = []
    for d in req.dirs:
        for t in d.topics:
            rec = await logs.lookup_topic(t.name)
            parts = []
            for p in t.partitions:
                if rec is None or not 0 <= p < rec.partitions:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                elif d.path != logs.log_dir:
                    code = ErrorCode.LOG_DIR_NOT_FOUND
                else:
                    code = ErrorCode.NONE
                parts.append(R.AlterReplicaLogDirPartitionResult(partition_index=p, error_code=code))
            results.append(R.AlterReplicaLogDirTopicResult(topic_name=t.name, partitions=parts))
    return R(results=results)
