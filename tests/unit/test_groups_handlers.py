"""The group API handlers answer every version they advertise with an encodable response.

A small in-process broker stand-in (the real GroupService over a MemoryStore, on the
curio runtime) runs one group through join, sync, heartbeat, commit, fetch, describe,
list, leave, offset delete and delete, at every version of each API, and encodes each
response at the version it was asked in.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import curio
import pytest

from kafscale.broker.authorizer import Authorizer
from kafscale.config import Config
from kafscale.broker.core import BrokerInfo, error_response
from kafscale.broker.registry import REGISTRY, ApiKey
from kafscale.errors import ErrorCode as E
from kafscale.groups.coordinator import GroupConfig
from kafscale.groups.service import GroupService
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.memory import MemoryStore
from kafscale.protocol import messages as m
from kafscale.server.runtime import CurioRuntime

import kafscale.broker.handlers  # noqa: F401 - registers the handlers

SUB = struct.pack(">hi", 0, 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", -1)


def make_broker():
    store = MemoryStore()
    cluster = Cluster(store, "/t")
    cluster.create_topic("t", 2)
    rt = CurioRuntime()
    svc = GroupService(rt, cluster, GroupConfig(initial_rebalance_delay_ms=0), 7, topics=cluster.list_topics)
    me = BrokerInfo(7, "127.0.0.1", 9092)
    broker = SimpleNamespace(groups=svc, live_brokers=lambda: [me], registry=REGISTRY,
                             authorizer=Authorizer(rt, cluster, Config()))  # (none: everything allowed)
    logs = SimpleNamespace(topics=cluster.list_topics())
    return broker, logs


async def call(broker, logs, key: int, version: int, req):
    ctx = SimpleNamespace(broker=broker, logs=logs, version=version, api_key=key, client_id="cli",
                          rt=broker.groups.rt)
    resp = await REGISTRY.get(key).fn(ctx, req)
    resp.encode(version)  # must be encodable at the version asked
    return resp


def versions(key: int) -> range:
    reg = REGISTRY.get(key)
    return range(reg.min_version, reg.max_version + 1)


@pytest.mark.parametrize("v", versions(ApiKey.JOIN_GROUP))
def test_group_lifecycle_at_every_version(v):
    broker, logs = make_broker()
    J = m.JoinGroupRequest

    async def main():
        await broker.groups.start()
        group = f"g{v}"
        join = J(group_id=group, session_timeout_ms=10_000, rebalance_timeout_ms=5000, member_id="",
                 protocol_type="consumer", protocols=[J.JoinGroupRequestProtocol(name="range", metadata=SUB)])
        resp = await call(broker, logs, 11, v, join)
        if v >= 4:
            assert resp.error_code == E.MEMBER_ID_REQUIRED
            join.member_id = resp.member_id
            resp = await call(broker, logs, 11, v, join)
        assert resp.error_code == 0 and resp.generation_id == 1 and len(resp.members) == 1
        mid = resp.member_id
        sv = min(v, 5)
        sync = await call(broker, logs, 14, sv, m.SyncGroupRequest(
            group_id=group, generation_id=1, member_id=mid,
            assignments=[m.SyncGroupRequest.SyncGroupRequestAssignment(member_id=mid, assignment=b"A")]))
        assert sync.error_code == 0 and sync.assignment == b"A"
        for hv in versions(ApiKey.HEARTBEAT):
            hb = await call(broker, logs, 12, hv, m.HeartbeatRequest(group_id=group, generation_id=1, member_id=mid))
            assert hb.error_code == 0
        OC = m.OffsetCommitRequest
        for cv in versions(ApiKey.OFFSET_COMMIT):
            gen, member = (1, mid) if cv >= 1 else (-1, "")
            resp = await call(broker, logs, 8, cv, OC(
                group_id=group, generation_id_or_member_epoch=gen, member_id=member, topics=[
                    OC.OffsetCommitRequestTopic(name="t", partitions=[OC.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=10 + cv, committed_metadata=f"m{cv}")])]))
            expected = E.UNKNOWN_MEMBER_ID if cv == 0 else E.NONE  # v0 cannot name the member
            assert resp.topics[0].partitions[0].error_code == expected
        OF = m.OffsetFetchRequest
        for fv in versions(ApiKey.OFFSET_FETCH):
            if fv >= 8:
                resp = await call(broker, logs, 9, fv, OF(groups=[OF.OffsetFetchRequestGroup(
                    group_id=group, topics=[OF.OffsetFetchRequestTopics(name="t", partition_indexes=[0, 1])])]))
                parts = resp.groups[0].topics[0].partitions
            else:
                resp = await call(broker, logs, 9, fv, OF(group_id=group, topics=[
                    OF.OffsetFetchRequestTopic(name="t", partition_indexes=[0, 1])]))
                parts = resp.topics[0].partitions
            assert [(p.committed_offset, p.metadata) for p in parts] == [(19, "m9"), (-1, "")]
        for dv in versions(ApiKey.DESCRIBE_GROUPS):
            resp = await call(broker, logs, 15, dv, m.DescribeGroupsRequest(groups=[group, "none"]))
            assert [g.group_state for g in resp.groups] == ["Stable", "Dead"]
            assert resp.groups[0].members[0].member_assignment == b"A"
        for lv in versions(ApiKey.LIST_GROUPS):
            resp = await call(broker, logs, 16, lv, m.ListGroupsRequest())
            assert [(g.group_id, g.protocol_type) for g in resp.groups] == [(group, "consumer")]
        resp = await call(broker, logs, 47, 0, m.OffsetDeleteRequest(group_id=group, topics=[
            m.OffsetDeleteRequest.OffsetDeleteRequestTopic(name="t", partitions=[
                m.OffsetDeleteRequest.OffsetDeleteRequestPartition(partition_index=0)])]))
        assert resp.topics[0].partitions[0].error_code == E.GROUP_SUBSCRIBED_TO_TOPIC
        lv = min(v, 5)
        if lv >= 3:
            leave = m.LeaveGroupRequest(group_id=group, members=[m.LeaveGroupRequest.MemberIdentity(member_id=mid)])
        else:
            leave = m.LeaveGroupRequest(group_id=group, member_id=mid)
        resp = await call(broker, logs, 13, lv, leave)
        assert resp.error_code == 0
        for dv in versions(ApiKey.DELETE_GROUPS):
            resp = await call(broker, logs, 42, dv, m.DeleteGroupsRequest(groups_names=[group]))
            assert resp.results[0].error_code == (0 if dv == 0 else E.GROUP_ID_NOT_FOUND)
        await broker.groups.stop()

    curio.run(main)


@pytest.mark.parametrize("v", versions(ApiKey.FIND_COORDINATOR))
def test_find_coordinator_every_version(v):
    broker, logs = make_broker()

    async def main():
        if v >= 4:
            req = m.FindCoordinatorRequest(key_type=0, coordinator_keys=["a", "b"])
            resp = await call(broker, logs, 10, v, req)
            assert [(c.key, c.node_id, c.port, c.error_code) for c in resp.coordinators] == [
                ("a", 7, 9092, 0), ("b", 7, 9092, 0)]
            resp = await call(broker, logs, 10, v, m.FindCoordinatorRequest(key_type=1, coordinator_keys=["x"]))
            assert resp.coordinators[0].error_code == E.COORDINATOR_NOT_AVAILABLE
        else:
            resp = await call(broker, logs, 10, v, m.FindCoordinatorRequest(key="a"))
            assert (resp.error_code, resp.node_id, resp.host, resp.port) == (0, 7, "127.0.0.1", 9092)

    curio.run(main)


@pytest.mark.parametrize("key", [8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47])
def test_error_responses_encode_at_every_version(key):
    reqs = {
        8: m.OffsetCommitRequest(group_id="g", topics=[m.OffsetCommitRequest.OffsetCommitRequestTopic(
            name="t", partitions=[m.OffsetCommitRequest.OffsetCommitRequestPartition(partition_index=0)])]),
        9: m.OffsetFetchRequest(group_id="g", topics=[m.OffsetFetchRequest.OffsetFetchRequestTopic(
            name="t", partition_indexes=[0])], groups=[m.OffsetFetchRequest.OffsetFetchRequestGroup(group_id="g")]),
        10: m.FindCoordinatorRequest(key="g", coordinator_keys=["g"]),
        11: m.JoinGroupRequest(group_id="g"), 12: m.HeartbeatRequest(group_id="g"),
        13: m.LeaveGroupRequest(group_id="g", members=[m.LeaveGroupRequest.MemberIdentity(member_id="x")]),
        14: m.SyncGroupRequest(group_id="g"), 15: m.DescribeGroupsRequest(groups=["g"]),
        16: m.ListGroupsRequest(), 42: m.DeleteGroupsRequest(groups_names=["g"]),
        47: m.OffsetDeleteRequest(group_id="g"),
    }
    for v in versions(key):
        resp = error_response(key, v, reqs[key], int(E.COORDINATOR_NOT_AVAILABLE))
        resp.encode(v)
