"""An in-process MetadataStore with etcd's semantics, for unit tests of single modules."""

from __future__ import annotations

import itertools
import threading
from typing import Callable, Iterable

from kafscale.metadata.store import Delete, MetadataStore, Op, Put, StoreUnavailable, ValueIs, WatchEvent


class MemoryStore(MetadataStore):
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._watches: dict[int, tuple[str, Callable[[list[WatchEvent]], None]]] = {}
        self._ids = itertools.count(1)
        self.available = True  # tests flip this to simulate an outage

    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailable("memory store marked unavailable")

    def get(self, key: str) -> bytes | None:
        self._check()
        return self._data.get(key)

    def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        self._check()
        with self._lock:
            return sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))

    def put(self, key: str, value: bytes, lease: int | None = None) -> None:
        self.txn((), (Put(key, value, lease),))

    def delete(self, key: str, prefix: bool = False) -> None:
        self.txn((), (Delete(key, prefix),))

    def txn(self, compare: Iterable[ValueIs], success: Iterable[Op], failure: Iterable[Op] = ()) -> bool:
        self._check()
        with self._lock:
            ok = all(self._data.get(c.key) == c.value for c in compare)
            events = [self._apply(op) for op in (success if ok else failure)]
        flat = [e for evs in events for e in evs]
        if flat:
            self._notify(flat)
        return ok

    def _apply(self, op: Op) -> list[WatchEvent]:
        if isinstance(op, Put):
            self._data[op.key] = op.value
            return [WatchEvent(op.key, op.value)]
        keys = [k for k in self._data if (k.startswith(op.key) if op.prefix else k == op.key)]
        for k in keys:
            del self._data[k]
        return [WatchEvent(k, None) for k in keys]

    def _notify(self, events: list[WatchEvent]) -> None:
        for prefix, cb in list(self._watches.values()):
            mine = [e for e in events if e.key.startswith(prefix)]
            if mine:
                cb(mine)

    def watch_prefix(self, prefix: str, callback: Callable[[list[WatchEvent]], None]) -> Callable[[], None]:
        wid = next(self._ids)
        self._watches[wid] = (prefix, callback)
        return lambda: self._watches.pop(wid, None)

    def grant_lease(self, ttl: int) -> int:
        self._check()
        return next(self._ids)

    def refresh_lease(self, lease_id: int) -> int:
        self._check()
        return 10

    def revoke_lease(self, lease_id: int) -> None:
        self._check()

    def ping(self) -> None:
        self._check()
