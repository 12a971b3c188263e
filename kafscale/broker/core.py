"""The broker: request dispatch over the handler registry, and what handlers share.

``Broker.handle`` takes a decoded request and returns the response object (or None
for acks=0 produces). The three error tiers of STYLE.md meet here: handlers put
expected per-partition codes into their responses; a KafkaError that escapes a
handler answers the whole request with its code; anything unexpected is logged once
with context and answered with UNKNOWN_SERVER_ERROR. The connection lives either way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kafscale.broker.authorizer import Authorizer
from kafscale.broker.dynconfig import DynamicConfigs
from kafscale.broker.membership import Membership
from kafscale.broker.registry import REGISTRY, Registry
from kafscale import config as cfgmod
from kafscale.config import Config
from kafscale.errors import ErrorCode, KafkaError
from kafscale.groups.coordinator import GroupConfig
from kafscale.groups.service import GroupService
from kafscale.metadata.cluster import Cluster
from kafscale.protocol.headers import api_name
from kafscale.protocol import messages
from kafscale.runtime import Runtime
from kafscale.security import Session
from kafscale.security.sasl import FailureDelay, SaslAuthenticator
from kafscale.security.users import UserStore
from kafscale.storage.engine import LogManager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


def advertised_brokers(ctx: Any) -> list[BrokerInfo]:
    """The live brokers, with the addresses clients of the request's listener use
    (Metadata, DescribeCluster, FindCoordinator)."""
    session = getattr(ctx, "session", None)
    if session is None:  # a context made without a connection: the registrations' host and port
        return ctx.broker.live_brokers()
    return ctx.broker.live_brokers(session.listener)


class Sequencer:
    """The arrival order of one connection's requests, for the steps that must keep it.

    Requests on a connection are handled concurrently, but Kafka promises that a
    client's produces to a partition are appended in the order it sent them. A produce
    waits for its turn before it assigns offsets and passes the turn on right after;
    every other request passes its turn at once.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.next = 0
        self._passed: set[int] = set()
        self._waiting: dict[int, Any] = {}  # ticket -> its event (set when its turn comes)

    async def wait_turn(self, ticket: int) -> None:
        # One event per waiting ticket: a connection may have a thousand requests in
        # progress, and waking them all on every turn would cost O(n) each time.
        while ticket > self.next:
            event = self._waiting.get(ticket)
            if event is None:
                event = self._waiting[ticket] = self.rt.event()
            await event.wait()

    async def done(self, ticket: int) -> None:
        if ticket < self.next:
            return
        self._passed.add(ticket)
        moved = False
        while self.next in self._passed:
            self._passed.remove(self.next)
            self.next += 1
            moved = True
        if moved:
            event = self._waiting.pop(self.next, None)
            if event is not None:
                await event.set()


@dataclass
class RequestContext:
    broker: "Broker"
    api_key: int
    version: int
    correlation_id: int
    client_id: str | None
    client_host: str = ""
    ticket: int = 0
    sequencer: Sequencer | None = None
    arrived: float = 0.0  # time.monotonic() when the request's frame was read whole
    session: Session = field(default_factory=Session)  # who the connection is (kafscale/security)
    peer: str = ""  # the client's address, host:port

    @property
    def log_context(self) -> dict[str, Any]:
        """The ``extra=`` of log lines about this request (JSON logs' fields)."""
        return {"api": api_name(self.api_key), "client_id": self.client_id, "peer": self.peer}

    async def in_turn(self) -> None:
        """Wait until every earlier request of this connection has passed its turn."""
        if self.sequencer is not None:
            await self.sequencer.wait_turn(self.ticket)

    async def pass_turn(self) -> None:
        if self.sequencer is not None:
            await self.sequencer.done(self.ticket)

    @property
    def logs(self) -> LogManager:
        return self.broker.logs

    @property
    def rt(self) -> Runtime:
        return self.broker.rt

    @property
    def config(self) -> Config:
        return self.broker.config


class Broker:
    def __init__(self, rt: Runtime, config: Config, cluster: Cluster, logs: LogManager,
                 registry: Registry = REGISTRY) -> None:
        import kafscale.broker.handlers  # noqa: F401 - registers every handler

        self.rt = rt
        self.metrics = logs.metrics
        self.config = config
        self.cluster = cluster
        self.logs = logs
        self.membership = Membership(rt, cluster, logs, config.broker_id,
                                     {"host": config.broker_host, "port": config.broker_port,
                                      "rack": config.rack}, config.lease_ttl_s)
        self.groups = GroupService(rt, cluster, GroupConfig.from_config(config), config.broker_id,
                                   topics=lambda: logs.topics)
        self.groups.placement = self.membership.coordinator_for
        self.membership.on_live_changed = self.groups.placement_changed
        self.dynamic = DynamicConfigs(rt, cluster, config, logs)
        self.authorizer = Authorizer(rt, cluster, config)
        self.registry = registry
        # SASL (kafscale/security): users from etcd, the handshake/authenticate state machine.
        self.users = UserStore(rt, cluster)
        self.sasl = SaslAuthenticator(
            self.users.credential, lambda: cfgmod.sasl_mechanisms(config), lambda: config.connections_max_reauth_ms,
            FailureDelay(config.connection_failed_authentication_delay_ms / 1000.0), self.metrics.sasl_result)
        self.cluster_id = ""
        # Listener name -> (host, port) its clients use (set_advertised).
        self.advertised: dict[str, tuple[str, int]] = {"PLAINTEXT": (config.broker_host, config.broker_port)}
        self.started_ms = int(time.time() * 1000)

    def set_advertised(self, advertised: dict[str, tuple[str, int]]) -> None:
        """The address of every listener, as its clients must use it (before start: it goes
        into the broker's registration). ``host``/``port`` of the registration keep their
        old meaning, the PLAINTEXT listener's (else the first listener's), for brokers
        that know no ``listeners``."""
        self.advertised = dict(advertised)
        host, port = advertised.get("PLAINTEXT") or next(iter(advertised.values()))
        self.membership.info.update(host=host, port=port,
                                    listeners={name: [h, p] for name, (h, p) in advertised.items()})

    @property
    def me(self) -> BrokerInfo:
        return self.me_for()

    def me_for(self, listener: str | None = None) -> BrokerInfo:
        info = self.membership.info
        host, port = self.advertised.get(listener or "", (info["host"], info["port"]))
        return BrokerInfo(self.config.broker_id, host, port, self.config.rack)

    def live_brokers(self, listener: str | None = None) -> list[BrokerInfo]:
        """The live brokers, each with the address clients of ``listener`` use (a broker
        that registered no such listener: its host and port)."""
        live = self.membership.live
        if not live:
            return [self.me_for(listener)]
        out = []
        for b, i in sorted(live.items()):
            host, port = (i.get("listeners") or {}).get(listener) or (i.get("host", ""), i.get("port", 0))
            out.append(BrokerInfo(b, host, int(port), i.get("rack")))
        return out

    def leader_of(self, topic: str, partition: int) -> tuple[int, int]:
        """(broker id, leader epoch) clients should use for a partition: its current
        owner, or while it has none the broker the assignment gives it to (epoch -1)."""
        owner = self.logs.owners.get((topic, partition))
        if owner is not None and owner.broker in self.membership.live:
            return owner.broker, owner.epoch
        return self.membership.desired_owner(topic, partition), -1

    async def start(self) -> None:
        self.cluster_id = await self.rt.run_in_thread(self.cluster.cluster_id)
        await self.dynamic.start()
        await self.users.start()
        if self.config.sasl_admin_user:
            if await self.users.ensure_user(self.config.sasl_admin_user, cfgmod.sasl_admin_password(self.config)):
                log.info("SASL admin user %r written to etcd", self.config.sasl_admin_user)
            if f"User:{self.config.sasl_admin_user}" not in self.authorizer.super_users():
                log.warning("the SASL admin user %r is not in --super-users: it may not manage users or ACLs",
                            self.config.sasl_admin_user)
        await self.authorizer.start()
        await self.logs.start()
        await self.membership.start()
        await self.groups.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Leave the cluster: hand partitions over within ``timeout`` seconds (the rest is
        left to the lease), then stop the groups and the logs."""
        t0 = self.rt.monotonic()
        await self.membership.drain(timeout)
        await self.groups.stop()
        await self.logs.stop(None if timeout is None else max(0.5, timeout - (self.rt.monotonic() - t0)))
        await self.dynamic.stop()
        await self.users.stop()
        await self.authorizer.stop()

    def supports(self, api_key: int, version: int) -> bool:
        reg = self.registry.get(api_key)
        return reg is not None and reg.min_version <= version <= reg.max_version

    async def handle(self, ctx: RequestContext, request: Any) -> Any:
        t0 = time.monotonic()
        response = await self._handle(ctx, request)
        self.metrics.request_done(ctx.api_key, time.monotonic() - t0, response)
        return response

    async def _handle(self, ctx: RequestContext, request: Any) -> Any:
        reg = self.registry.get(ctx.api_key)
        assert reg is not None  # the server checked support before decoding
        if ctx.api_key != 0:  # only Produce keeps the connection's order (see Sequencer)
            await ctx.pass_turn()
        try:
            return await reg.fn(ctx, request)
        except KafkaError as exc:
            code = exc.code
            log.info("%s v%d from %s: %s", api_name(ctx.api_key), ctx.version, ctx.client_id, exc,
                     extra=ctx.log_context)
        except Exception:  # noqa: BLE001 - tier 3: log once, answer, keep the connection
            code = ErrorCode.UNKNOWN_SERVER_ERROR
            log.exception("%s v%d from %s (correlation %d) failed", api_name(ctx.api_key), ctx.version,
                          ctx.client_id, ctx.correlation_id, extra=ctx.log_context)
        await ctx.pass_turn()
        return error_response(ctx.api_key, ctx.version, request, int(code))


def error_response(api_key: int, version: int, request: Any, code: int) -> Any:
    """A response of the right shape that carries ``code`` everywhere it can.

    Top-level error fields get it; so does every per-topic / per-partition entry that
    mirrors the request, as Kafka's getErrorResponse does.
    """
    cls = messages.RESPONSES[api_key]
    resp = cls()
    if hasattr(resp, "error_code"):
        resp.error_code = code
    _mirror(api_key, request, resp, code)
    return resp


def _mirror(api_key: int, req: Any, resp: Any, code: int) -> None:
    R = messages.RESPONSES[api_key]
    if api_key == 0:  # Produce
        resp.responses = [R.TopicProduceResponse(name=t.name, partition_responses=[
            R.PartitionProduceResponse(index=p.index, error_code=code, base_offset=-1)
            for p in t.partition_data]) for t in req.topic_data]
    elif api_key == 1:  # Fetch
        resp.responses = [R.FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=[
            R.PartitionData(partition_index=p.partition, error_code=code, high_watermark=-1)
            for p in t.partitions]) for t in req.topics]
    elif api_key == 2:  # ListOffsets
        resp.topics = [R.ListOffsetsTopicResponse(name=t.name, partitions=[
            R.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code)
            for p in t.partitions]) for t in req.topics]
    elif api_key == 19:  # CreateTopics
        resp.topics = [R.CreatableTopicResult(name=t.name, error_code=code) for t in req.topics]
    elif api_key == 20:  # DeleteTopics
        names = list(req.topic_names) + [t.name for t in req.topics if t.name]
        resp.responses = [R.DeletableTopicResult(name=n, error_code=code) for n in names]
    elif api_key == 8:  # OffsetCommit
        resp.topics = [R.OffsetCommitResponseTopic(name=t.name, partitions=[
            R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
            for p in t.partitions]) for t in req.topics]
    elif api_key == 9:  # OffsetFetch (v0-7 topics, v8+ groups; the encoder picks by version)
        resp.topics = [R.OffsetFetchResponseTopic(name=t.name, partitions=[
            R.OffsetFetchResponsePartition(partition_index=p, committed_offset=-1, error_code=code)
            for p in t.partition_indexes]) for t in req.topics or []]
        resp.groups = [R.OffsetFetchResponseGroup(group_id=g.group_id, error_code=code) for g in req.groups]
    elif api_key == 10:  # FindCoordinator v4+
        resp.node_id, resp.port = -1, -1
        resp.coordinators = [R.Coordinator(key=k, node_id=-1, host="", port=-1, error_code=code)
                             for k in req.coordinator_keys]
    elif api_key == 13:  # LeaveGroup v3+
        resp.members = [R.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                         error_code=code) for m in req.members]
    elif api_key == 15:  # DescribeGroups
        resp.groups = [R.DescribedGroup(group_id=g, error_code=code) for g in req.groups]
    elif api_key == 42:  # DeleteGroups
        resp.results = [R.DeletableGroupResult(group_id=g, error_code=code) for g in req.groups_names]
    elif api_key == 37:  # CreatePartitions
        resp.results = [R.CreatePartitionsTopicResult(name=t.name, error_code=code) for t in req.topics]
    elif api_key == 43:  # ElectLeaders (v0 has no top-level error code)
        resp.replica_election_results = [R.ReplicaElectionResult(topic=t.topic, partition_result=[
            R.PartitionResult(partition_id=p, error_code=code) for p in t.partitions])
            for t in req.topic_partitions or []]
    elif api_key == 45:  # AlterPartitionReassignments
        resp.responses = [R.ReassignableTopicResponse(name=t.name, partitions=[
            R.ReassignablePartitionResponse(partition_index=p.partition_index, error_code=code)
            for p in t.partitions]) for t in req.topics]
    elif api_key == 61:  # DescribeProducers
        resp.topics = [R.TopicResponse(name=t.name, partitions=[
            R.PartitionResponse(partition_index=p, error_code=code) for p in t.partition_indexes])
            for t in req.topics]
