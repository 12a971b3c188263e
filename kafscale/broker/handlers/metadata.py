"""Metadata (key 3), versions 0-12.

v1 adds rack, controller and internal flags and null-for-all topics; v2 cluster id;
v4 allow_auto_topic_creation; v7 leader epochs; v9 flexible; v10 topic ids (topics may
be requested by id); v12 null topic names in responses for id lookups.
"""

from __future__ import annotations

from kafscale.broker.core import advertised_brokers
from kafscale.broker.registry import ApiKey, handles
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import MetadataRequest, MetadataResponse
from kafscale.security.acls import Operation
from kafscale.storage.engine import validate_topic_name

R = MetadataResponse
ZERO_ID = b"\0" * 16


@handles(ApiKey.METADATA, versions=(0, 12))
async def metadata(ctx, req: MetadataRequest) -> MetadataResponse:
    logs = ctx.logs
    v = ctx.version
    if req.topics is None or (v == 0 and not req.topics):
        # From the table the etcd watch keeps: no request re-reads etcd (Kafka's
        # metadata cache does the same); a named topic's miss reads its one key.
        authz = ctx.broker.authorizer
        wanted = [(name, None) for name in sorted(logs.topics) if authz.topic(ctx, Operation.DESCRIBE, name)]
        auto = False
    else:
        wanted = [(t.name, t.topic_id) for t in req.topics]
        auto = req.allow_auto_topic_creation if v >= 4 else True
    topics = []
    for name, topic_id in wanted:
        topics.append(await _topic(ctx, name, topic_id, auto))
    return R(
        brokers=[R.MetadataResponseBroker(node_id=b.node_id, host=b.host, port=b.port, rack=b.rack)
                 for b in advertised_brokers(ctx)],
        cluster_id=ctx.broker.cluster_id,
        controller_id=min(b.node_id for b in ctx.broker.live_brokers()),
        topics=topics,
    )


async def _topic(ctx, name: str | None, topic_id: bytes | None, auto: bool) -> "R.MetadataResponseTopic":
    logs = ctx.logs
    if name is None:
        rec = logs.topics_by_id.get(topic_id or ZERO_ID)
        if rec is None or not ctx.broker.authorizer.topic(ctx, Operation.DESCRIBE, rec.name):
            return R.MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_ID if rec is None else
                                           ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=None,
                                           topic_id=topic_id or ZERO_ID)
    else:
        try:
            validate_topic_name(name)
        except KafkaError as exc:
            return R.MetadataResponseTopic(error_code=exc.code, name=name)
        authz = ctx.broker.authorizer
        if not authz.topic(ctx, Operation.DESCRIBE, name):  # (whether it exists or not: no leak)
            return R.MetadataResponseTopic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name)
        rec = await logs.lookup_topic(name)
        if rec is None and auto and not authz.may_create_topic(ctx, name):
            return R.MetadataResponseTopic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name)
        if rec is None and auto:
            try:
                rec = await logs.ensure_topic(name)
            except KafkaError as exc:
                return R.MetadataResponseTopic(error_code=exc.code, name=name)
        if rec is None:
            return R.MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name)
    partitions = []
    live = {b.node_id for b in ctx.broker.live_brokers()}
    for p in range(rec.partitions):
        leader, epoch = ctx.broker.leader_of(rec.name, p)
        code = 0 if leader in live else ErrorCode.LEADER_NOT_AVAILABLE
        replicas = [leader] if leader >= 0 else []
        partitions.append(R.MetadataResponsePartition(
            error_code=code, partition_index=p, leader_id=leader, leader_epoch=epoch,
            replica_nodes=replicas, isr_nodes=replicas, offline_replicas=[]))
    return R.MetadataResponseTopic(error_code=0, name=rec.name, topic_id=rec.id_bytes,
                                   is_internal=False, partitions=partitions)
