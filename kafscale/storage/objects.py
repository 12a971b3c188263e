"""The object-store interface: the few blocking calls the broker makes on S3.

Everything above this module speaks in these terms. ``objectstore.py`` is the S3
adapter (the only minio importer); ``memobjects.py`` is an in-process twin for unit
tests of single modules, with the same semantics and errors. Every failure is an
``ObjectStoreError`` (a retriable KAFKA_STORAGE_ERROR) or ``ObjectNotFound``. All calls
block: async callers run them through the runtime's ``run_in_thread``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

from kafscale.errors import StorageError


class ObjectStoreError(StorageError):
    pass


class ObjectNotFound(ObjectStoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size in bytes, and last-modified time (ms since the epoch)."""

    key: str
    size: int
    modified_ms: int


class ObjectStore(abc.ABC):
    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write the whole object (a key is written once by this broker's conventions)."""

    @abc.abstractmethod
    def get(self, key: str, offset: int = 0, length: int = 0) -> bytes | bytearray:
        """The object's bytes, or ``length`` bytes from ``offset`` (0: to the end)."""

    @abc.abstractmethod
    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (recursively), with size and age."""

    def list(self, prefix: str) -> Iterator[str]:
        """The keys of every object under ``prefix``."""
        return (o.key for o in self.list_info(prefix))

    @abc.abstractmethod
    def delete_many(self, keys: list[str]) -> None:
        """Delete ``keys`` (absent ones are no error)."""

    @abc.abstractmethod
    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ObjectStoreError unless the store answers and the bucket exists."""
