"""ElectLeaders (key 43), versions 0-2.

A partition's leader is its owner, and ownership follows Kafscale's assignment over
the live brokers, so an election is only ever needed where a partition has no live
owner: there this broker claims it if the assignment names it, else the answer waits
(within the request's timeout) for the named broker to claim it, or for a dead owner's
lease to expire. A partition with a live owner gets ELECTION_NOT_NEEDED; an unknown
one UNKNOWN_TOPIC_OR_PARTITION; one still without an owner at the timeout
ELIGIBLE_LEADERS_NOT_AVAILABLE. Preferred (0) and unclean (1) elections are the same
here: every broker reads the whole log from S3, so no replica is ever behind.
Null topic partitions: every partition, reporting only those that needed an election.
v1 election type and top-level error code; v2 flexible.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import ElectLeadersRequest, ElectLeadersResponse

R = ElectLeadersResponse


@handles(ApiKey.ELECT_LEADERS, versions=(0, 2))
async def elect_leaders(ctx, req: ElectLeadersRequest) -> ElectLeadersResponse:
    ctx.broker.authorizer.check_cluster(ctx, Operation.ALTER)
    if ctx.version >= 1 and req.election_type not in (0, 1):
        raise KafkaError(f"unknown election type {req.election_type}", ErrorCode.INVALID_REQUEST)
    membership = ctx.broker.membership
    everything = req.topic_partitions is None
    if everything:
        wanted = [(name, list(range(rec.partitions))) for name, rec in sorted(ctx.logs.topics.items())]
    else:
        wanted = [(t.topic, t.partitions) for t in req.topic_partitions]
    deadline = ctx.rt.monotonic() + max(req.timeout_ms, 0) / 1000.0
    results = []
    for topic, partitions in wanted:
        parts = []
        for p in partitions:
            try:
                await membership.elect(topic, p, deadline)
                parts.append(R.PartitionResult(partition_id=p, error_code=0))
            except KafkaError as exc:
                if not (everything and exc.code == ErrorCode.ELECTION_NOT_NEEDED):
                    parts.append(R.PartitionResult(partition_id=p, error_code=exc.code, error_message=str(exc)))
        if parts or not everything:
            results.append(R.ReplicaElectionResult(topic=topic, partition_result=parts))
    return R(error_code=0, replica_election_results=results)
