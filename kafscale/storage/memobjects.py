"""An in-process ObjectStore, for unit tests of single modules: a dict of immutable
objects, with switches to make calls fail the way S3 does (every call, the next N PUTs,
or the PUT of given bytes) and a gate that holds PUTs (they run on threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from kafscale.storage.objects import ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError


class MemoryObjectStore(ObjectStore):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.modified_ms: dict[str, int] = {}
        self.fail = False  # every call fails (S3 is down)
        self.fail_next = 0  # this many PUTs fail, then they succeed again
        # The next PUT whose data holds these bytes fails (which flush carries a record does
        # not depend on the order PUT threads start in, unlike fail_next).
        self.fail_containing: bytes | None = None
        self.puts = 0
        self.gets = 0
        self.gate = threading.Event()  # PUTs wait until it is set
        self.gate.set()
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.fail:
            raise ObjectStoreError("S3 is down")

    def put(self, key: str, data) -> None:
        with self._lock:  # (which PUT fails is decided in call order, before the gate)
            dropped = self.fail_next > 0
            self.fail_next -= dropped
            if self.fail_containing is not None and self.fail_containing in bytes(data):
                dropped, self.fail_containing = True, None
        self.gate.wait(30)
        with self._lock:
            if dropped:
                raise ObjectStoreError("S3 dropped this PUT")
            self._check()
            self.puts += 1
            self.objects[key] = bytes(data)
            self.modified_ms[key] = int(time.time() * 1000)

    def get(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        self._check()
        with self._lock:
            self.gets += 1
            data = self.objects.get(key)
        if data is None:
            raise ObjectNotFound(f"GET {key}: NoSuchKey")
        return data[offset:offset + length] if length else data[offset:]

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        self._check()
        with self._lock:
            return iter([ObjectInfo(k, len(v), self.modified_ms[k])
                         for k, v in sorted(self.objects.items()) if k.startswith(prefix)])

    def delete_many(self, keys: list[str]) -> None:
        self._check()
        with self._lock:
            for k in keys:
                self.objects.pop(k, None)
                self.modified_ms.pop(k, None)

    def ensure_bucket(self) -> None:
        self._check()

    def ping(self) -> None:
        self._check()
