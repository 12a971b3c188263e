"""The ACL authorizer of one broker: bindings from etcd, kept current by a watch.

With ``--authorizer acls`` every handler asks ``allowed(ctx, operation, type, name)``
before acting (kafscale/security/acls.py decides, from a cache: a dictionary lookup per
request and resource); without it everything is allowed and the ACL APIs answer
SECURITY_DISABLED. Bindings created or deleted through any broker are in effect on every
broker within a watch round trip.
"""

from __future__ import annotations

import logging
from typing import Any

from kafscale.config import Config
from kafscale.errors import ErrorCode, KafkaError
from kafscale.metadata.cluster import Cluster
from kafscale.runtime import Runtime
from kafscale.watching import PrefixFollower
from kafscale.security.acls import Acl, AclFilter, AclIndex, Operation, ResourceType

log = logging.getLogger(__name__)


class Authorizer:
    def __init__(self, rt: Runtime, cluster: Cluster, config: Config) -> None:
        self.rt = rt
        self.cluster = cluster
        self.config = config
        self.enabled = config.authorizer == "acls"
        self.index = AclIndex(super_users=self.super_users(), allow_if_no_acl=config.allow_everyone_if_no_acl_found)
        self.keys: dict[Acl, str] = {}  # binding -> its etcd key
        self.follower = PrefixFollower(rt, cluster.store, cluster.keys.acls(), self.reload, "ACLs")

    def super_users(self) -> list[str]:
        return [p.strip() for p in self.config.super_users.split(";") if p.strip()]

    async def start(self) -> None:
        if self.enabled:
            await self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    async def reload(self) -> None:
        stored = await self.rt.run_in_thread(self.cluster.list_acls)
        keys = {}
        for key, raw in stored.items():
            try:
                keys[Acl.from_dict(raw)] = key
            except (KeyError, ValueError) as exc:  # written by another version: skipped, not fatal
                log.warning("ignoring ACL %s: %s", key, exc)
        self.keys = keys
        self.index = AclIndex(keys, self.super_users(), self.config.allow_everyone_if_no_acl_found)

    # -- decisions ------------------------------------------------------------------------

    def allowed(self, ctx: Any, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        if not self.enabled:
            return True
        session = ctx.session
        return self.index.allowed(session.principal, session.peer, operation, resource_type, name)

    def allowed_cluster(self, ctx: Any, operation: Operation) -> bool:
        return self.allowed(ctx, operation, ResourceType.CLUSTER, "kafka-cluster")

    def topic(self, ctx: Any, operation: Operation, name: str) -> bool:
        return not self.enabled or self.allowed(ctx, operation, ResourceType.TOPIC, name)

    def group(self, ctx: Any, operation: Operation, name: str) -> bool:
        return not self.enabled or self.allowed(ctx, operation, ResourceType.GROUP, name)

    def check_topic(self, ctx: Any, operation: Operation, name: str) -> None:
        """Raises TOPIC_AUTHORIZATION_FAILED unless ``operation`` on topic ``name`` is allowed."""
        if not self.topic(ctx, operation, name):
            raise KafkaError(f"Not authorized to {operation.name} topic {name}.",
                             ErrorCode.TOPIC_AUTHORIZATION_FAILED)

    def check_group(self, ctx: Any, operation: Operation, name: str) -> None:
        if not self.group(ctx, operation, name):
            raise KafkaError(f"Not authorized to {operation.name} group {name}.",
                             ErrorCode.GROUP_AUTHORIZATION_FAILED)

    def check_cluster(self, ctx: Any, operation: Operation) -> None:
        if self.enabled and not self.allowed_cluster(ctx, operation):
            raise KafkaError(f"Not authorized to {operation.name} the cluster.",
                             ErrorCode.CLUSTER_AUTHORIZATION_FAILED)

    def may_create_topic(self, ctx: Any, name: str) -> bool:
        """CREATE on the cluster or on the topic (Kafka's rule for CreateTopics and auto-creation)."""
        return not self.enabled or self.allowed_cluster(ctx, Operation.CREATE) or \
            self.allowed(ctx, Operation.CREATE, ResourceType.TOPIC, name)

    def idempotent_write(self, ctx: Any) -> bool:
        """IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (Kafka 3.x: InitProducerId)."""
        if not self.enabled or self.allowed_cluster(ctx, Operation.IDEMPOTENT_WRITE):
            return True
        return self.index.any_allowed(ctx.session.principal, ctx.session.peer, Operation.WRITE, ResourceType.TOPIC)

    # -- the ACL APIs -----------------------------------------------------------------------

    def describe(self, flt: AclFilter) -> list[Acl]:
        return sorted((a for a in self.index.acls if flt.matches(a)),
                      key=lambda a: (a.resource_type, a.name, a.pattern, a.principal, a.host, a.operation))

    async def create(self, acls: list[Acl]) -> None:
        await self.rt.run_in_thread(self.cluster.create_acls, [a.to_dict() for a in acls])
        await self.reload()

    async def delete(self, filters: list[AclFilter]) -> list[list[Acl]]:
        """Delete every binding any filter matches; per filter, the bindings it matched."""
        await self.reload()  # (match against what etcd holds now)
        matched = [[a for a in self.keys if f.matches(a)] for f in filters]
        doomed = sorted({self.keys[a] for group in matched for a in group})
        await self.rt.run_in_thread(self.cluster.delete_acls, doomed)
        await self.reload()
        return matched
