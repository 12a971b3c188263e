"""A blocking Kafka admin client over the project's own protocol codecs.

It routes each request where Kafka clients send it: Metadata to any broker, partition
requests (Produce, Fetch, ListOffsets) to the partition's leader, group requests to
the group's coordinator (FindCoordinator), DescribeLogDirs to every broker. Error codes
in responses become ``ClientError``s naming the topic, group or resource and Kafka's
error name.
"""

from __future__ import annotations

import ssl

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

from kafscale.errors import ErrorCode, is_retriable
from kafscale.protocol import messages as m

from .connection import BrokerUnreachable, ClientError, Connection, SaslLogin, error_name, parse_address

T = TypeVar("T")

# ListOffsets special timestamps.
LATEST = -1
EARLIEST = -2

# DescribeConfigs / IncrementalAlterConfigs resource types and config sources.
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
CONFIG_SOURCES = {
    0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG", 3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG",
    8: "GROUP_CONFIG",
}
DEFAULT_CONFIG = 5
OP_SET = 0
OP_DELETE = 1

_HINTS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "no such topic or partition",
    ErrorCode.GROUP_ID_NOT_FOUND: "no such group",
    ErrorCode.NON_EMPTY_GROUP: "the group still has members",
    ErrorCode.TOPIC_ALREADY_EXISTS: "the topic exists already",
    ErrorCode.UNKNOWN_MEMBER_ID: "the group has members: stop its consumers first",
    ErrorCode.ILLEGAL_GENERATION: "the group has members: stop its consumers first",
}


def check(code: int, what: str, message: str | None = None) -> None:
    """Raise a ClientError ``what: ERROR_NAME: message`` for a non-zero code."""
    if code:
        detail = message or _HINTS.get(code)  # type: ignore[call-overload]
        raise KafkaCallError(f"{what}: {error_name(code)}" + (f" ({detail})" if detail else ""), code)


class KafkaCallError(ClientError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass
class PartitionInfo:
    partition: int
    leader: int
    error_code: int = 0


@dataclass
class TopicInfo:
    name: str
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)
    internal: bool = False
    error_code: int = 0


class Client:
    """Connections to a cluster, opened on demand and reused; ``close()`` closes them."""

    def __init__(self, bootstrap: str, *, connect_timeout: float = 5.0, timeout: float = 30.0,
                 sasl: SaslLogin | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.bootstrap = [parse_address(a) for a in bootstrap.split(",") if a.strip()]
        if not self.bootstrap:
            raise ClientError("no bootstrap server given")
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.sasl = sasl
        self.tls = tls
        self.brokers: dict[int, BrokerInfo] = {}
        self.cluster_id: str | None = None
        self.controller_id = -1
        self._conns: dict[Any, Connection] = {}
        self._coordinators: dict[str, int] = {}

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # ------------------------------------------------------------------ connections

    def any(self) -> Connection:
        """A connection to some broker: one already open, else the first bootstrap that answers."""
        if self._conns:
            return next(iter(self._conns.values()))
        failures = []
        for host, port in self.bootstrap:
            try:
                return self._open(("bootstrap", host, port), host, port)
            except BrokerUnreachable as exc:
                failures.append(str(exc))
        raise BrokerUnreachable("; ".join(failures))

    def node(self, node_id: int) -> Connection:
        if node_id not in self.brokers:
            self.metadata([])
        info = self.brokers.get(node_id)
        if info is None:
            raise ClientError(f"broker {node_id} is not in the cluster's metadata")
        return self._open(node_id, info.host, info.port)

    def _open(self, key: Any, host: str, port: int) -> Connection:
        conn = self._conns.get(key)
        if conn is None:
            conn = Connection(host, port, connect_timeout=self.connect_timeout, timeout=self.timeout, sasl=self.sasl,
                              tls=self.tls)
            self._conns[key] = conn
        return conn

    def _drop(self, conn: Connection) -> None:
        for key, c in list(self._conns.items()):
            if c is conn:
                del self._conns[key]
        conn.close()

    def retrying(self, call: Callable[[], T], attempts: int = 8) -> T:
        """``call()`` again after a retriable Kafka error (fresh metadata, short back-off)."""
        delay = 0.2
        for attempt in range(attempts):
            try:
                return call()
            except KafkaCallError as exc:
                if not is_retriable(exc.code) or attempt == attempts - 1:
                    raise
            except BrokerUnreachable:
                if attempt == attempts - 1:
                    raise
                self.close()
            self._coordinators.clear()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            self.metadata([])
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ metadata

    def metadata(self, topics: Iterable[str] | None = None, *, create: bool = False) -> dict[str, TopicInfo]:
        """Brokers (kept in ``self.brokers``) and the given topics (all with None);
        ``create`` lets a broker with auto-creation on create missing ones."""
        req = m.MetadataRequest(
            topics=None if topics is None else [m.MetadataRequest.MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=create)
        resp = self.any().request(req)
        self.brokers = {b.node_id: BrokerInfo(b.node_id, b.host, b.port, b.rack) for b in resp.brokers}
        self.cluster_id = resp.cluster_id
        self.controller_id = resp.controller_id
        out = {}
        for t in resp.topics:
            info = TopicInfo(t.name, internal=t.is_internal, error_code=t.error_code)
            for p in t.partitions:
                info.partitions[p.partition_index] = PartitionInfo(p.partition_index, p.leader_id, p.error_code)
            out[t.name] = info
        return out

    def topic(self, name: str, *, create: bool = False) -> TopicInfo:
        """One topic's partitions and leaders; a clear error when it does not exist."""
        def call() -> TopicInfo:
            info = self.metadata([name], create=create).get(name)
            if info is None:
                raise KafkaCallError(f"topic {name!r}: not in the metadata response", ErrorCode.UNKNOWN_SERVER_ERROR)
            if info.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                # Not retried: a mistyped name should fail at once.
                raise ClientError(f"topic {name!r} does not exist (UNKNOWN_TOPIC_OR_PARTITION)")
            check(info.error_code, f"topic {name!r}")
            return info
        return self.retrying(call)

    def by_leader(self, topic: TopicInfo, partitions: Iterable[int]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for p in partitions:
            info = topic.partitions.get(p)
            if info is None:
                raise ClientError(f"topic {topic.name!r} has no partition {p} "
                                  f"(partitions 0-{len(topic.partitions) - 1})")
            if info.leader < 0:
                raise KafkaCallError(f"topic {topic.name!r} partition {p}: no leader", ErrorCode.LEADER_NOT_AVAILABLE)
            groups[info.leader].append(p)
        return groups

    def describe_cluster(self) -> m.DescribeClusterResponse:
        resp = self.any().request(m.DescribeClusterRequest())
        check(resp.error_code, "DescribeCluster", resp.error_message)
        return resp

    # ------------------------------------------------------------------ offsets

    def list_offsets(self, topic: str, timestamp: int | dict[int, int],
                     partitions: Iterable[int] | None = None) -> dict[int, int]:
        """partition -> offset for ``timestamp`` (LATEST, EARLIEST or a time in ms; -1
        answers stay -1: no record at or after that time)."""
        def call() -> dict[int, int]:
            info = self.topic(topic)
            wanted = sorted(info.partitions) if partitions is None else list(partitions)
            out: dict[int, int] = {}
            R = m.ListOffsetsRequest
            for leader, parts in self.by_leader(info, wanted).items():
                req = R(replica_id=-1, topics=[R.ListOffsetsTopic(name=topic, partitions=[
                    R.ListOffsetsPartition(
                        partition_index=p, max_num_offsets=1,
                        timestamp=timestamp[p] if isinstance(timestamp, dict) else timestamp)
                    for p in parts])])
                for t in self.node(leader).request(req).topics:
                    for p in t.partitions:
                        check(p.error_code, f"topic {topic!r} partition {p.partition_index}")
                        out[p.partition_index] = p.offset
            return out
        return self.retrying(call)

    def log_sizes(self, topic: str, partitions: Iterable[int]) -> dict[int, int] | None:
        """partition -> bytes, from DescribeLogDirs sent to every broker; None when no
        broker serves DescribeLogDirs."""
        wanted = sorted(partitions)
        self.metadata([])
        sizes: dict[int, int] = {}
        answered = False
        R = m.DescribeLogDirsRequest
        for node_id in sorted(self.brokers):
            conn = self.node(node_id)
            if not conn.supports(35):
                continue
            answered = True
            resp = conn.request(R(topics=[R.DescribableLogDirTopic(topic=topic, partitions=wanted)]))
            check(getattr(resp, "error_code", 0), f"DescribeLogDirs on broker {node_id}")
            for result in resp.results:
                for t in result.topics:
                    if t.name == topic:
                        for p in t.partitions:
                            if not p.is_future_key:
                                sizes[p.partition_index] = max(sizes.get(p.partition_index, 0), p.partition_size)
        return sizes if answered else None

    # ------------------------------------------------------------------ topics

    def create_topic(self, name: str, partitions: int, replication: int, configs: dict[str, str]) -> None:
        R = m.CreateTopicsRequest
        req = R(timeout_ms=int(self.timeout * 1000), topics=[R.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=replication,
            configs=[R.CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])])
        for t in self.any().request(req).topics:
            check(t.error_code, f"topic {t.name!r}", t.error_message)

    def delete_topic(self, name: str) -> None:
        req = m.DeleteTopicsRequest(topic_names=[name], timeout_ms=int(self.timeout * 1000))
        for t in self.any().request(req).responses:
            check(t.error_code, f"topic {t.name!r}", t.error_message)

    def create_partitions(self, name: str, count: int) -> None:
        R = m.CreatePartitionsRequest
        req = R(topics=[R.CreatePartitionsTopic(name=name, count=count, assignments=None)],
                timeout_ms=int(self.timeout * 1000))
        for t in self.any().request(req).results:
            check(t.error_code, f"topic {t.name!r}", t.error_message)

    # ------------------------------------------------------------------ configs

    def describe_configs(self, resource_type: int, name: str,
                         node: int | None = None) -> list[m.DescribeConfigsResponse.DescribeConfigsResourceResult]:
        R = m.DescribeConfigsRequest
        req = R(resources=[R.DescribeConfigsResource(resource_type=resource_type, resource_name=name,
                                                     configuration_keys=None)],
                include_synonyms=False, include_documentation=False)
        conn = self.any() if node is None else self.node(node)
        out = []
        for r in conn.request(req).results:
            check(r.error_code, _resource(resource_type, name), r.error_message)
            out.extend(r.configs)
        return out

    def alter_configs(self, resource_type: int, name: str, set_: dict[str, str], delete: list[str],
                      node: int | None = None) -> None:
        R = m.IncrementalAlterConfigsRequest
        ops = [R.AlterableConfig(name=k, config_operation=OP_SET, value=v) for k, v in set_.items()]
        ops += [R.AlterableConfig(name=k, config_operation=OP_DELETE, value=None) for k in delete]
        req = R(resources=[R.AlterConfigsResource(resource_type=resource_type, resource_name=name, configs=ops)])
        conn = self.any() if node is None else self.node(node)
        for r in conn.request(req).responses:
            check(r.error_code, _resource(resource_type, name), r.error_message)

    # ------------------------------------------------------------------ SASL users

    def describe_users(self, names: list[str] | None = None
                       ) -> list[m.DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult]:
        """Every user's SCRAM mechanisms and iterations (``names``: only those)."""
        R = m.DescribeUserScramCredentialsRequest
        resp = self.any().request(R(users=None if names is None else [R.UserName(name=n) for n in names]))
        check(resp.error_code, "DescribeUserScramCredentials", resp.error_message)
        for r in resp.results:
            check(r.error_code, f"user {r.user!r}", r.error_message)
        return resp.results

    def alter_users(self, deletions: list[tuple[str, int]],
                    upsertions: list[tuple[str, int, int, bytes, bytes]]) -> None:
        """Delete (user, mechanism) credentials and upsert (user, mechanism, iterations, salt,
        salted password) ones; the password itself is never sent."""
        R = m.AlterUserScramCredentialsRequest
        req = R(deletions=[R.ScramCredentialDeletion(name=u, mechanism=mech) for u, mech in deletions],
                upsertions=[R.ScramCredentialUpsertion(name=u, mechanism=mech, iterations=i, salt=salt,
                                                       salted_password=salted)
                            for u, mech, i, salt, salted in upsertions])
        for r in self.any().request(req).results:
            check(r.error_code, f"user {r.user!r}", r.error_message)

    # ------------------------------------------------------------------ groups

    def coordinator(self, group: str) -> Connection:
        node_id = self._coordinators.get(group)
        if node_id is None:
            def call() -> int:
                resp = self.any().request(m.FindCoordinatorRequest(key=group, key_type=0))
                check(resp.error_code, f"group {group!r}: FindCoordinator", resp.error_message)
                self.brokers.setdefault(resp.node_id, BrokerInfo(resp.node_id, resp.host, resp.port))
                return resp.node_id
            node_id = self.retrying(call)
            self._coordinators[group] = node_id
        return self.node(node_id)

    def group_call(self, group: str, call: Callable[[Connection], T]) -> T:
        """``call(coordinator)``, retried (a new coordinator looked up) on retriable errors."""
        return self.retrying(lambda: call(self.coordinator(group)))

    def list_groups(self) -> list[m.ListGroupsResponse.ListedGroup]:
        self.metadata([])
        out = []
        for node_id in sorted(self.brokers):
            resp = self.node(node_id).request(m.ListGroupsRequest())
            check(resp.error_code, f"ListGroups on broker {node_id}")
            out.extend(resp.groups)
        return sorted(out, key=lambda g: g.group_id)

    def describe_group(self, group: str) -> m.DescribeGroupsResponse.DescribedGroup:
        def call(conn: Connection) -> m.DescribeGroupsResponse.DescribedGroup:
            g = conn.request(m.DescribeGroupsRequest(groups=[group])).groups[0]
            check(g.error_code, f"group {group!r}")
            return g
        return self.group_call(group, call)

    def committed(self, group: str, topics: dict[str, list[int]] | None = None) -> dict[tuple[str, int], int]:
        """(topic, partition) -> committed offset of ``group`` (all its offsets with None)."""
        R = m.OffsetFetchRequest

        def call(conn: Connection) -> dict[tuple[str, int], int]:
            req = R(group_id=group, topics=None if topics is None else [
                R.OffsetFetchRequestTopic(name=t, partition_indexes=ps) for t, ps in topics.items()])
            resp = conn.request(req)
            check(resp.error_code, f"group {group!r}")
            out = {}
            for t in resp.topics:
                for p in t.partitions:
                    check(p.error_code, f"group {group!r} topic {t.name!r} partition {p.partition_index}")
                    if p.committed_offset >= 0:
                        out[(t.name, p.partition_index)] = p.committed_offset
            return out
        return self.group_call(group, call)

    def commit(self, group: str, offsets: dict[tuple[str, int], int], generation: int = -1,
               member_id: str = "") -> None:
        R = m.OffsetCommitRequest
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for (topic, p), offset in sorted(offsets.items()):
            by_topic[topic].append(R.OffsetCommitRequestPartition(partition_index=p, committed_offset=offset,
                                                                  committed_metadata=""))

        def call(conn: Connection) -> None:
            req = R(group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
                    topics=[R.OffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()])
            for t in conn.request(req).topics:
                for p in t.partitions:
                    check(p.error_code, f"group {group!r}: commit of topic {t.name!r} partition {p.partition_index}")
        if by_topic:
            self.group_call(group, call)

    def delete_group(self, group: str) -> None:
        def call(conn: Connection) -> None:
            for r in conn.request(m.DeleteGroupsRequest(groups_names=[group])).results:
                check(r.error_code, f"group {r.group_id!r}")
        self.group_call(group, call)


def _resource(resource_type: int, name: str) -> str:
    if resource_type == RESOURCE_TOPIC:
        return f"topic {name!r}"
    if resource_type == RESOURCE_BROKER:
        return f"broker {name}" if name else "cluster (broker defaults)"
    return f"resource {resource_type} {name!r}"
