"""The metadata store interface: a small transactional key-value API that etcd provides.

Everything above this module speaks in these terms; ``etcd.py`` is the only
implementation that touches a network (and the only etcd3 importer), ``memory.py``
is an in-process twin for unit tests of single modules. All calls block: async
callers run them through the runtime's ``run_in_thread``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Iterable, Union

from kafscale.errors import ErrorCode, KafkaError


@dataclass(frozen=True)
class ValueIs:
    """Compare: the key holds exactly ``value`` (None: the key is absent)."""

    key: str
    value: bytes | None


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    lease: int | None = None


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False


Op = Union[Put, Delete]


@dataclass(frozen=True)
class WatchEvent:
    key: str
    value: bytes | None  # None: deleted


# etcd's default --max-txn-ops: the most compares, or success ops, in one transaction.
MAX_TXN_OPS = 128


class StoreUnavailable(KafkaError):
    """The store could not be reached or did not answer in time; outcome unknown (retriable)."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


class MetadataStore(abc.ABC):
    @abc.abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """All keys under ``prefix``, sorted by key."""

    @abc.abstractmethod
    def put(self, key: str, value: bytes, lease: int | None = None) -> None: ...

    @abc.abstractmethod
    def delete(self, key: str, prefix: bool = False) -> None: ...

    @abc.abstractmethod
    def txn(self, compare: Iterable[ValueIs], success: Iterable[Op],
            failure: Iterable[Op] = ()) -> bool:
        """Apply ``success`` if every comparison holds, else ``failure``; return which."""

    @abc.abstractmethod
    def watch_prefix(self, prefix: str, callback: Callable[[list[WatchEvent]], None]) -> Callable[[], None]:
        """Call ``callback`` (on a store thread) with changes under ``prefix``; return a cancel function."""

    @abc.abstractmethod
    def grant_lease(self, ttl: int) -> int: ...

    @abc.abstractmethod
    def refresh_lease(self, lease_id: int) -> int:
        """Refresh; return the remaining TTL (<= 0 when the lease is gone)."""

    @abc.abstractmethod
    def revoke_lease(self, lease_id: int) -> None: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""

    def close(self) -> None:
        pass
