"""Kafka's ACL model and the decision over it: pure, no I/O.

An ACL binding is a resource pattern (type, name, LITERAL or PREFIXED) and an entry
(principal, host, operation, ALLOW or DENY). ``AclIndex`` holds the bindings, indexed so
that a decision is a few dictionary lookups: literal names by (type, name), prefixed ones
by (type, every prefix length in use); the decisions themselves are cached per
(principal, host, operation, type, name) until the bindings change. The rules are
Kafka's AclAuthorizer's: super users may do anything; a resource no ACL matches is open
only with ``allow_everyone_if_no_acl_found``; a matching DENY beats any ALLOW; READ,
WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL
matches every operation; ``*`` as a literal name, ``User:*`` and host ``*`` are wildcards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name, as in Kafka
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"

# An ALLOW for one of these operations also allows the operation it maps to.
_IMPLIES = {
    Operation.DESCRIBE: {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER},
    Operation.DESCRIBE_CONFIGS: {Operation.ALTER_CONFIGS},
}


class InvalidAcl(ValueError):
    """A binding or filter that cannot be stored or matched (Kafka's INVALID_REQUEST)."""


@dataclass(frozen=True, slots=True)
class Acl:
    resource_type: ResourceType
    name: str
    pattern: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def to_dict(self) -> dict:
        return {"resource_type": int(self.resource_type), "name": self.name, "pattern": int(self.pattern),
                "principal": self.principal, "host": self.host, "operation": int(self.operation),
                "permission": int(self.permission)}

    @classmethod
    def from_dict(cls, d: dict) -> "Acl":
        return cls(ResourceType(d["resource_type"]), d["name"], PatternType(d["pattern"]), d["principal"],
                   d["host"], Operation(d["operation"]), Permission(d["permission"]))

    def check(self) -> "Acl":
        """Raises InvalidAcl unless this binding may be stored (Kafka's checks)."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise InvalidAcl(f"Invalid resource type {self.resource_type.name}")
        if self.pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise InvalidAcl(f"Invalid pattern type {self.pattern.name}: LITERAL or PREFIXED")
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            raise InvalidAcl(f"Invalid operation {self.operation.name}")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise InvalidAcl(f"Invalid permission type {self.permission.name}")
        if not self.name:
            raise InvalidAcl("Resource name must not be empty")
        if self.pattern is PatternType.PREFIXED and self.name == WILDCARD:
            raise InvalidAcl("A PREFIXED pattern must not be '*'")
        if self.resource_type is ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            raise InvalidAcl(f"The CLUSTER resource is named {CLUSTER_NAME!r}")
        kind, sep, name = self.principal.partition(":")
        if not sep or not kind or not name:
            raise InvalidAcl(f"Invalid principal {self.principal!r}: expected Type:name, e.g. User:alice")
        if not self.host:
            raise InvalidAcl("Host must not be empty: '*' for any host")
        return self


@dataclass(frozen=True)
class AclFilter:
    """What DescribeAcls and DeleteAcls match: ANY/None fields match everything; MATCH
    matches the bindings that would apply to the named resource (literal, wildcard and
    prefixes)."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def check(self) -> "AclFilter":
        for field, value in (("resource type", self.resource_type), ("pattern type", self.pattern),
                             ("operation", self.operation), ("permission type", self.permission)):
            if value.name == "UNKNOWN":
                raise InvalidAcl(f"Invalid {field} filter UNKNOWN")
        return self

    def matches(self, acl: Acl) -> bool:
        if self.resource_type is not ResourceType.ANY and acl.resource_type is not self.resource_type:
            return False
        if self.pattern is PatternType.MATCH:
            if self.name is not None and not (
                    (acl.pattern is PatternType.LITERAL and acl.name in (self.name, WILDCARD))
                    or (acl.pattern is PatternType.PREFIXED and self.name.startswith(acl.name))):
                return False
        else:
            if self.pattern is not PatternType.ANY and acl.pattern is not self.pattern:
                return False
            if self.name is not None and acl.name != self.name:
                return False
        if self.principal is not None and acl.principal != self.principal:
            return False
        if self.host is not None and acl.host != self.host:
            return False
        if self.operation is not Operation.ANY and acl.operation is not self.operation:
            return False
        return self.permission is Permission.ANY or acl.permission is self.permission


class AclIndex:
    """The bindings of a cluster, and decisions over them."""

    CACHE_LIMIT = 100_000

    def __init__(self, acls: Iterable[Acl] = (), super_users: Iterable[str] = (),
                 allow_if_no_acl: bool = False) -> None:
        self.acls = frozenset(acls)
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._literal: dict[tuple[ResourceType, str], list[Acl]] = {}
        self._prefixed: dict[tuple[ResourceType, str], list[Acl]] = {}
        self._prefix_lengths: dict[ResourceType, list[int]] = {}
        for acl in self.acls:
            table = self._literal if acl.pattern is PatternType.LITERAL else self._prefixed
            table.setdefault((acl.resource_type, acl.name), []).append(acl)
            if acl.pattern is PatternType.PREFIXED:
                self._prefix_lengths.setdefault(acl.resource_type, []).append(len(acl.name))
        for kind, lengths in self._prefix_lengths.items():
            self._prefix_lengths[kind] = sorted(set(lengths))
        self._cache: dict[tuple, bool] = {}

    def matching(self, resource_type: ResourceType, name: str) -> list[Acl]:
        """The bindings that apply to one resource."""
        out = list(self._literal.get((resource_type, name), ()))
        if name != WILDCARD:
            out += self._literal.get((resource_type, WILDCARD), ())
        for length in self._prefix_lengths.get(resource_type, ()):
            if length > len(name):
                break
            out += self._prefixed.get((resource_type, name[:length]), ())
        return out

    def allowed(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                name: str) -> bool:
        key = (principal, host, operation, resource_type, name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(principal, host, operation, resource_type, name)
            if len(self._cache) >= self.CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                name: str) -> bool:
        if principal in self.super_users:
            return True
        acls = self.matching(resource_type, name)
        if not acls:
            return self.allow_if_no_acl
        mine = [a for a in acls if a.principal in (principal, WILDCARD_PRINCIPAL) and a.host in (host, WILDCARD)]
        if any(a.permission is Permission.DENY and a.operation in (operation, Operation.ALL) for a in mine):
            return False
        allowed_ops = {operation, Operation.ALL} | _IMPLIES.get(operation, set())
        return any(a.permission is Permission.ALLOW and a.operation in allowed_ops for a in mine)

    def any_allowed(self, principal: str, host: str, operation: Operation, resource_type: ResourceType) -> bool:
        """Whether some resource of the type may be acted on (e.g. IDEMPOTENT_WRITE's
        fallback: WRITE on any topic)."""
        if principal in self.super_users:
            return True
        return any(a.resource_type is resource_type and a.permission is Permission.ALLOW
                   and a.operation in (operation, Operation.ALL) and a.principal in (principal, WILDCARD_PRINCIPAL)
                   and a.host in (host, WILDCARD)
                   and self.allowed(principal, host, operation, resource_type, a.name if a.name != WILDCARD else "*")
                   for a in self.acls)
