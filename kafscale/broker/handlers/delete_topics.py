"""DeleteTopics (key 20), versions 0-6.

v4 flexible; v5 error messages; v6 topics by name or id. The topic's metadata goes in
one etcd transaction; its objects are deleted in the background.
"""

from __future__ import annotations

from kafscale.broker.registry import ApiKey, handles
from kafscale.security.acls import Operation
from kafscale.errors import ErrorCode, KafkaError
from kafscale.protocol.messages import DeleteTopicsRequest, DeleteTopicsResponse

R = DeleteTopicsResponse
ZERO_ID = b"\0" * 16


@handles(ApiKey.DELETE_TOPICS, versions=(0, 6))
async def delete_topics(ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse:
    wanted: list[tuple[str | None, bytes]] = [(n, ZERO_ID) for n in req.topic_names]
    wanted += [(t.name, t.topic_id) for t in req.topics]
    results = []
    for name, topic_id in wanted:
        if name is None:
            rec = ctx.logs.topics_by_id.get(topic_id)
            if rec is None:
                results.append(R.DeletableTopicResult(name=None, topic_id=topic_id,
                                                      error_code=ErrorCode.UNKNOWN_TOPIC_ID))
                continue
            name = rec.name
        if not ctx.broker.authorizer.topic(ctx, Operation.DELETE, name):
            results.append(R.DeletableTopicResult(name=name, topic_id=topic_id,
                                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        try:
            rec = await ctx.logs.delete_topic(name)
            results.append(R.DeletableTopicResult(name=name, topic_id=rec.id_bytes, error_code=0))
        except KafkaError as exc:
            results.append(R.DeletableTopicResult(name=name, topic_id=topic_id, error_code=exc.code,
                                                  error_message=str(exc)))
    return R(responses=results)
