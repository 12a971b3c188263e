"""kafscale/security/acls.py: Kafka's ACL rules."""

from __future__ import annotations

import pytest

from kafscale.security.acls import (CLUSTER_NAME, Acl, AclFilter, AclIndex, InvalidAcl, Operation as Op,
                                    PatternType as P, Permission, ResourceType as T)

ALLOW, DENY = Permission.ALLOW, Permission.DENY


def acl(name="orders", op=Op.READ, perm=ALLOW, principal="User:alice", host="*", kind=T.TOPIC, pattern=P.LITERAL):
    return Acl(kind, name, pattern, principal, host, op, perm).check()


def test_allow_deny_implied_operations_and_wildcards():
    index = AclIndex([acl(op=Op.WRITE), acl(name="logs-", pattern=P.PREFIXED, op=Op.READ),
                      acl(name="logs-secret", op=Op.READ, perm=DENY),
                      acl(name="*", op=Op.DESCRIBE, principal="User:*"),
                      acl(name="audit", op=Op.ALL, principal="User:bob", host="10.0.0.1")])
    assert index.allowed("User:alice", "1.2.3.4", Op.WRITE, T.TOPIC, "orders")
    assert not index.allowed("User:alice", "1.2.3.4", Op.READ, T.TOPIC, "orders")  # WRITE only
    assert index.allowed("User:alice", "1.2.3.4", Op.DESCRIBE, T.TOPIC, "orders")  # implied by WRITE
    assert index.allowed("User:alice", "1.2.3.4", Op.READ, T.TOPIC, "logs-app")  # prefixed
    assert not index.allowed("User:alice", "1.2.3.4", Op.READ, T.TOPIC, "logs-secret")  # deny beats allow
    assert not index.allowed("User:alice", "1.2.3.4", Op.READ, T.TOPIC, "logs")  # shorter than the prefix
    assert index.allowed("User:carol", "1.2.3.4", Op.DESCRIBE, T.TOPIC, "anything")  # wildcards
    assert not index.allowed("User:carol", "1.2.3.4", Op.READ, T.TOPIC, "anything")
    assert index.allowed("User:bob", "10.0.0.1", Op.DELETE, T.TOPIC, "audit")  # ALL
    assert not index.allowed("User:bob", "10.0.0.2", Op.DELETE, T.TOPIC, "audit")  # another host
    assert not index.allowed("User:alice", "1.2.3.4", Op.READ, T.GROUP, "orders")  # another resource type


def test_no_acl_found_super_users_and_the_cache():
    index = AclIndex([acl()], super_users=["User:admin"])
    assert not index.allowed("User:alice", "h", Op.READ, T.TOPIC, "unnamed")  # no ACL: closed by default
    assert index.allowed("User:admin", "h", Op.ALTER, T.CLUSTER, CLUSTER_NAME)
    assert AclIndex([acl()], allow_if_no_acl=True).allowed("User:alice", "h", Op.READ, T.TOPIC, "unnamed")
    assert not AclIndex([acl()], allow_if_no_acl=True).allowed("User:eve", "h", Op.READ, T.TOPIC, "orders")
    index.allowed("User:alice", "h", Op.READ, T.TOPIC, "orders")
    assert ("User:alice", "h", Op.READ, T.TOPIC, "orders") in index._cache
    assert index.any_allowed("User:alice", "h", Op.READ, T.TOPIC)
    assert not index.any_allowed("User:alice", "h", Op.WRITE, T.TOPIC)


@pytest.mark.parametrize("bad", [
    dict(kind=T.ANY), dict(pattern=P.MATCH), dict(op=Op.ANY), dict(perm=Permission.ANY), dict(name=""),
    dict(name="*", pattern=P.PREFIXED), dict(kind=T.CLUSTER, name="other"), dict(principal="alice"),
    dict(host=""),
])
def test_invalid_bindings_are_refused(bad):
    with pytest.raises(InvalidAcl):
        acl(**bad)


def test_filters_match_as_kafka_describe_and_delete_do():
    bindings = [acl(), acl(name="*"), acl(name="ord", pattern=P.PREFIXED), acl(name="other"),
                acl(kind=T.GROUP, name="orders")]
    names = lambda f: sorted((a.resource_type, a.name) for a in bindings if f.matches(a))  # noqa: E731
    assert len(names(AclFilter())) == 5
    assert names(AclFilter(T.TOPIC, "orders", P.LITERAL)) == [(T.TOPIC, "orders")]
    assert names(AclFilter(T.TOPIC, "orders", P.MATCH)) == [(T.TOPIC, "*"), (T.TOPIC, "ord"), (T.TOPIC, "orders")]
    assert names(AclFilter(T.ANY, "orders")) == [(T.TOPIC, "orders"), (T.GROUP, "orders")]
    assert names(AclFilter(principal="User:bob")) == []
    with pytest.raises(InvalidAcl):
        AclFilter(resource_type=T.UNKNOWN).check()
    assert Acl.from_dict(bindings[2].to_dict()) == bindings[2]
