"""The handler registry: one async handler per API key, and the single source of ApiVersions.

A handler module declares ``@handles(ApiKey.X, versions=(lo, hi))``. Registering a key
twice is an error, and ApiVersions advertises exactly what is registered, so what we
advertise is what we handle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Awaitable, Callable


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Registration:
    api_key: int
    min_version: int
    max_version: int
    fn: Handler


class Registry:
    def __init__(self) -> None:
        self._by_key: dict[int, Registration] = {}

    def handles(self, api_key: int, versions: tuple[int, int]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if api_key in self._by_key:
                raise ValueError(f"API key {api_key} registered twice "
                                 f"({self._by_key[api_key].fn.__qualname__}, {fn.__qualname__})")
            lo, hi = versions
            self._by_key[int(api_key)] = Registration(int(api_key), lo, hi, fn)
            return fn
        return register

    def get(self, api_key: int) -> Registration | None:
        return self._by_key.get(api_key)

    def supported(self) -> list[Registration]:
        return sorted(self._by_key.values(), key=lambda r: r.api_key)


REGISTRY = Registry()
handles = REGISTRY.handles
