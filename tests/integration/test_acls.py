"""ACLs enforced by real brokers, managed with real admin clients.

These run on PLAINTEXT listeners, where every client is ``User:ANONYMOUS``; the SASL
tests (test_sasl.py) cover ACLs per authenticated user and super users. The brokers run
with ``allow.everyone.if.no.acl.found`` so the tests may create their first ACLs.
"""

from __future__ import annotations

import time
import uuid

import pytest

from kafscale.protocol import messages
from tests.integration.test_clients import create_topic
from tests.support.procs import wait_for
from tests.support.rawclient import RawClient

ACL_OPTIONS = {"authorizer": "acls", "allow_everyone_if_no_acl_found": "true"}
TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, SECURITY_DISABLED = 29, 30, 54


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def _acls(bootstrap: str, bindings: list, delete: bool = False):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = (admin.delete_acls if delete else admin.create_acls)(bindings, request_timeout=20)
    return {b: f.result(20) for b, f in futures.items()}


def _binding(name: str, op: str, permission: str = "ALLOW", pattern: str = "LITERAL", kind: str = "TOPIC",
             principal: str = "User:ANONYMOUS"):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    return AclBinding(getattr(ResourceType, kind), name, getattr(ResourcePatternType, pattern), principal, "*",
                      getattr(AclOperation, op), getattr(AclPermissionType, permission))


def _produce(bootstrap: str, topic: str) -> str | None:
    from confluent_kafka import Producer

    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 10_000})
    p.produce(topic, b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    return errors[0].name() if errors and errors[0] is not None else (None if errors else "NO_ANSWER")


def _fetch_code(bootstrap: str, topic: str) -> int:
    R = messages.FetchRequest
    with RawClient(bootstrap, timeout=10) as raw:
        resp = raw.request(1, 12, R(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
            R.FetchTopic(topic=topic, partitions=[R.FetchPartition(partition=0, fetch_offset=0,
                                                                   partition_max_bytes=1 << 20)])]))
    return resp.responses[0].partitions[0].error_code


def _metadata_topics(bootstrap: str) -> set[str]:
    R = messages.MetadataRequest
    with RawClient(bootstrap, timeout=10) as raw:
        resp = raw.request(3, 9, R(topics=None, allow_auto_topic_creation=False))
    return {t.name for t in resp.topics}


def test_write_without_read_prefixed_acls_deny_beats_allow_and_hidden_topics(broker_factory):
    b = broker_factory(options=ACL_OPTIONS)
    wo, secret = _name("wo-"), _name("secret-")
    for t in (wo, secret):
        create_topic(b.bootstrap, t, partitions=1)
    assert _produce(b.bootstrap, wo) is None  # no ACL names it yet: open
    # WRITE (and DESCRIBE, for Metadata) on every wo-* topic, but not READ.
    _acls(b.bootstrap, [_binding("wo-", "WRITE", pattern="PREFIXED"), _binding("wo-", "DESCRIBE", pattern="PREFIXED"),
                        _binding(secret, "ALL", permission="DENY"), _binding(secret, "ALL")])
    wait = time.monotonic()
    assert _produce(b.bootstrap, wo) is None
    assert _fetch_code(b.bootstrap, wo) == TOPIC_AUTHORIZATION_FAILED
    # DENY beats ALLOW: the secret topic is refused and hidden from Metadata.
    assert _produce(b.bootstrap, secret) == "TOPIC_AUTHORIZATION_FAILED"
    assert _fetch_code(b.bootstrap, secret) == TOPIC_AUTHORIZATION_FAILED
    topics = _metadata_topics(b.bootstrap)
    assert wo in topics and secret not in topics
    assert time.monotonic() - wait < 30

    # A consumer group on the write-only topic: refused as Kafka does, and nothing read.
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": _name("g-"), "auto.offset.reset": "earliest"})
    c.subscribe([wo])
    try:
        errors = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not errors:
            msg = c.poll(1)
            if msg is not None:
                assert msg.error() is not None, "read a record without READ"
                errors.append(msg.error().name())
        assert errors and errors[0] in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED"), errors
    finally:
        c.close()

    # DescribeAcls shows them; DeleteAcls removes the deny and the secret topic opens.
    from confluent_kafka.admin import AclBindingFilter, AdminClient, AclOperation, AclPermissionType, \
        ResourcePatternType, ResourceType

    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    listed = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                  AclOperation.ANY, AclPermissionType.ANY)).result(20)
    assert {(x.name, x.operation.name, x.permission_type.name) for x in listed} >= {
        ("wo-", "WRITE", "ALLOW"), (secret, "ALL", "DENY")}
    deny = AclBindingFilter(ResourceType.TOPIC, secret, ResourcePatternType.LITERAL, None, None, AclOperation.ANY,
                            AclPermissionType.DENY)
    [deleted] = admin.delete_acls([deny]).values()
    assert [x.name for x in deleted.result(20)] == [secret]
    assert _produce(b.bootstrap, secret) is None


def test_acls_created_through_one_broker_apply_on_another_within_a_second(broker_factory):
    brokers = [broker_factory(options=ACL_OPTIONS) for _ in range(3)]
    topic = _name("x-")
    create_topic(brokers[0].bootstrap, topic, partitions=3)
    assert _fetch_code(brokers[2].bootstrap, topic) in (0, 6)  # allowed (6: not the owner)
    _acls(brokers[0].bootstrap, [_binding(topic, "READ", permission="DENY")])
    t0 = time.monotonic()
    wait_for(lambda: _fetch_code(brokers[2].bootstrap, topic) == TOPIC_AUTHORIZATION_FAILED, timeout=5,
             message="the deny in effect on broker 3")
    assert time.monotonic() - t0 < 1.0


def test_acl_apis_without_an_authorizer_are_security_disabled(broker):
    R = messages.DescribeAclsRequest
    with RawClient(broker.bootstrap, timeout=10) as raw:
        resp = raw.request(29, 2, R(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                                    principal_filter=None, host_filter=None, operation=1, permission_type=1))
    assert resp.error_code == SECURITY_DISABLED


def test_bad_bindings_and_filters_are_invalid_requests(broker_factory):
    b = broker_factory(options=ACL_OPTIONS)
    C = messages.CreateAclsRequest
    D = messages.DeleteAclsRequest
    with RawClient(b.bootstrap, timeout=10) as raw:
        resp = raw.request(30, 2, C(creations=[
            C.AclCreation(resource_type=2, resource_name="t", resource_pattern_type=3, principal="alice",
                          host="*", operation=3, permission_type=3),  # principal without a type
            C.AclCreation(resource_type=2, resource_name="*", resource_pattern_type=4, principal="User:a",
                          host="*", operation=3, permission_type=3),  # a PREFIXED '*'
            C.AclCreation(resource_type=99, resource_name="t", resource_pattern_type=3, principal="User:a",
                          host="*", operation=3, permission_type=3),
            C.AclCreation(resource_type=2, resource_name="ok", resource_pattern_type=3, principal="User:a",
                          host="*", operation=3, permission_type=3)]))
        assert [r.error_code for r in resp.results] == [42, 42, 42, 0]
        resp = raw.request(31, 2, D(filters=[D.DeleteAclsFilter(
            resource_type_filter=0, resource_name_filter=None, pattern_type_filter=1, principal_filter=None,
            host_filter=None, operation=1, permission_type=1)]))
        assert resp.filter_results[0].error_code == 42
    assert _produce(b.bootstrap, _name("after-")) is None  # the broker is up


def test_admin_calls_refused_without_acls_on_the_cluster(broker_factory):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    b = broker_factory(options=ACL_OPTIONS)
    # Once the cluster resource has an ACL, what it does not allow is refused (confluent-kafka
    # calls the cluster resource BROKER).
    _acls(b.bootstrap, [_binding("kafka-cluster", "DESCRIBE", kind="BROKER"),
                        _binding("nope-", "CREATE", permission="DENY", pattern="PREFIXED")])
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource("broker", str(b.broker_id))
    with pytest.raises(KafkaException) as err:
        admin.describe_configs([res])[res].result(20)
    assert err.value.args[0].code() == 31, err.value  # CLUSTER_AUTHORIZATION_FAILED
    # CreateTopics needs CREATE on the cluster or on the topic; a topic no ACL names is
    # open (allow.everyone.if.no.acl.found), one a DENY names is not.
    admin.create_topics([NewTopic(ok := _name("fine-"), 1, 1)])[ok].result(20)
    name = _name("nope-")
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(name, 1, 1)])[name].result(20)
    assert err.value.args[0].code() == TOPIC_AUTHORIZATION_FAILED, err.value
    # And, now that the cluster has an ACL without ALTER, no more ACL changes.
    with pytest.raises(KafkaException) as err:
        _acls(b.bootstrap, [_binding("t", "READ")])
    assert err.value.args[0].code() == 31


# -- per SASL user ------------------------------------------------------------------------------


def test_sasl_users_write_without_read_prefixes_deny_and_the_super_user(broker_factory):
    """alice may WRITE to w-* (not READ), bob READ but a DENY on w-secret beats it, the
    admin (a super user) needs no ACL; PLAINTEXT is User:ANONYMOUS and gets nothing."""
    from confluent_kafka import Consumer, KafkaException, Producer

    from tests.integration.test_sasl import ADMIN, ADMIN_PASSWORD, _conf, _create_user, _options

    b = broker_factory(options=_options(None, authorizer="acls"))
    admin = _conf(b, "SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD)
    _create_user(b, "alice", "alice-pw")
    _create_user(b, "bob", "bob-pw")
    topic, secret = _name("w-"), _name("w-secret-")
    from confluent_kafka.admin import AdminClient, NewTopic

    adm = AdminClient(admin)
    for t in (topic, secret):
        adm.create_topics([NewTopic(t, 1, 1)])[t].result(20)
    _acls_as(admin, [_binding("w-", "WRITE", pattern="PREFIXED", principal="User:alice"),
                     _binding("w-", "DESCRIBE", pattern="PREFIXED", principal="User:alice"),
                     _binding("w-", "READ", pattern="PREFIXED", principal="User:bob"),
                     _binding("*", "READ", kind="GROUP", principal="User:bob"),
                     _binding(secret, "READ", permission="DENY", principal="User:bob")])

    def produce(conf: dict, t: str) -> str | None:
        errors: list = []
        p = Producer({**conf, "acks": "all", "message.timeout.ms": 10_000})
        p.produce(t, b"v", on_delivery=lambda err, msg: errors.append(err))
        p.flush(15)
        return errors[0].name() if errors and errors[0] is not None else None

    def first_read(conf: dict, t: str) -> str:
        c = Consumer({**conf, "group.id": _name("g-"), "auto.offset.reset": "earliest"})
        c.subscribe([t])
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                msg = c.poll(1)
                if msg is not None:
                    return msg.error().name() if msg.error() else "READ"
            return "NOTHING"
        finally:
            c.close()

    alice = _conf(b, "SCRAM-SHA-256", "alice", "alice-pw")
    bob = _conf(b, "SCRAM-SHA-512", "bob", "bob-pw")
    assert produce(alice, topic) is None
    assert produce(alice, secret) is None  # the prefix covers it
    assert first_read(alice, topic) in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
    assert produce(bob, topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert first_read(bob, topic) == "READ"
    assert first_read(bob, secret) == "TOPIC_AUTHORIZATION_FAILED"  # DENY beats the prefixed ALLOW
    assert produce(admin, secret) is None and first_read(admin, secret) == "READ"  # super user
    anonymous = {"bootstrap.servers": b.listener_bootstrap("PLAINTEXT")}
    assert produce(anonymous, topic) == "TOPIC_AUTHORIZATION_FAILED"
    with pytest.raises(KafkaException):  # and alice may not manage ACLs
        _acls_as(alice, [_binding("w-", "READ", pattern="PREFIXED", principal="User:alice")])


def _acls_as(conf: dict, bindings: list) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf)
    for fut in admin.create_acls(bindings, request_timeout=20).values():
        fut.result(20)
