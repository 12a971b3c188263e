"""MetadataStore on etcd v3, through the (blocking) etcd3 client. The only etcd3 importer.

Every client error is turned into StoreUnavailable so callers above never see grpc or
etcd3 types. Watches survive an etcd restart: when the stream breaks the adapter
re-creates the watch in the background and then calls the callback with ``None``,
meaning "events may have been missed; re-read what you cache".
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

import etcd3
import etcd3.events
import etcd3.exceptions
import etcd3.transactions
import etcd3.utils
import grpc

from kafscale.metrics import Metrics
from kafscale.metadata.store import MetadataStore, Op, Put, StoreUnavailable, ValueIs, WatchEvent

log = logging.getLogger(__name__)

_ERRORS = (etcd3.exceptions.Etcd3Exception, grpc.RpcError, ValueError, OSError)
PAGE_KEYS = 2000  # keys per range read (values here are small: well under 4 MiB a page)


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        part = part.removeprefix("http://")
        host, _, port = part.rpartition(":")
        if not host:
            host, port = part, "2379"
        out.append((host, int(port)))
    if not out:
        raise ValueError("no etcd endpoints given")
    return out


class EtcdStore(MetadataStore):
    def __init__(self, endpoints: str, timeout: float = 5.0, metrics: Metrics | None = None) -> None:
        eps = [etcd3.Endpoint(h, p, secure=False, time_retry=1.0) for h, p in parse_endpoints(endpoints)]
        self._client = etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=timeout, failover=True)
        self._closed = False
        self.metrics = metrics or Metrics()  # transaction latency and errors (kafscale/metrics.py)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _ERRORS as exc:
            self.metrics.etcd_errors.labels(getattr(fn, "__name__", "call").strip("_")).inc()
            raise StoreUnavailable(f"etcd: {type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        value, _meta = self._call(self._client.get, key)
        return value

    def get_prefix(self, prefix: str) -> list[tuple[str, bytes]]:
        """Read in pages of PAGE_KEYS keys, all at the revision of the first page (one
        consistent view): one answer holding a large prefix whole would pass gRPC's
        4 MiB message limit (a manifest of 1000 partitions did)."""
        end = etcd3.utils.prefix_range_end(etcd3.utils.to_bytes(prefix))

        def read() -> list[tuple[str, bytes]]:
            out: list[tuple[str, bytes]] = []
            start, revision = etcd3.utils.to_bytes(prefix), None
            while True:
                resp = self._client.get_range_response(start, end, sort_order="ascend", sort_target="key",
                                                       limit=PAGE_KEYS, revision=revision)
                revision = resp.header.revision
                out += [(kv.key.decode(), kv.value) for kv in resp.kvs]
                if not resp.more or not resp.kvs:
                    return out
                start = resp.kvs[-1].key + b"\0"
        return self._call(read)

    def put(self, key: str, value: bytes, lease: int | None = None) -> None:
        self._call(self._client.put, key, value, lease=lease)

    def delete(self, key: str, prefix: bool = False) -> None:
        if prefix:
            self._call(self._client.delete_prefix, key)
        else:
            self._call(self._client.delete, key)

    def _op(self, op: Op):
        t = self._client.transactions
        if isinstance(op, Put):
            return t.put(op.key, op.value, lease=op.lease)
        if op.prefix:
            return etcd3.transactions.Delete(op.key, range_end=etcd3.utils.prefix_range_end(op.key.encode()))
        return t.delete(op.key)

    def txn(self, compare: Iterable[ValueIs], success: Iterable[Op], failure: Iterable[Op] = ()) -> bool:
        t = self._client.transactions
        cmp = []
        for c in compare:
            if c.value is None:
                cmp.append(t.version(c.key) == 0)
            else:
                cmp.append(t.value(c.key) == c.value)
        t0 = time.monotonic()
        try:
            ok, _ = self._call(self._client.transaction, compare=cmp,
                               success=[self._op(o) for o in success],
                               failure=[self._op(o) for o in failure])
        finally:
            self.metrics.etcd_txn_seconds.observe(time.monotonic() - t0)
        return bool(ok)

    def watch_prefix(self, prefix: str, callback: Callable[[list[WatchEvent] | None], None]) -> Callable[[], None]:
        state = {"id": None, "cancelled": False}
        lock = threading.Lock()

        def on_response(resp) -> None:
            if isinstance(resp, Exception):
                if not state["cancelled"] and not self._closed:
                    threading.Thread(target=rewatch, name="etcd-rewatch", daemon=True).start()
                return
            events = []
            for ev in resp.events:
                key = ev.key.decode()
                if isinstance(ev, etcd3.events.DeleteEvent):
                    events.append(WatchEvent(key, None))
                else:
                    events.append(WatchEvent(key, ev.value))
            if events:
                callback(events)

        def rewatch() -> None:
            delay = 0.2
            while not state["cancelled"] and not self._closed:
                try:
                    with lock:
                        state["id"] = self._client.add_watch_prefix_callback(prefix, on_response)
                    callback(None)
                    return
                except Exception as exc:  # noqa: BLE001 - the watch thread must keep trying
                    log.debug("etcd watch on %s not re-established yet: %s", prefix, exc)
                    threading.Event().wait(delay)
                    delay = min(delay * 2, 2.0)

        state["id"] = self._call(self._client.add_watch_prefix_callback, prefix, on_response)

        def cancel() -> None:
            state["cancelled"] = True
            with lock:
                if state["id"] is not None:
                    try:
                        self._client.cancel_watch(state["id"])
                    except Exception:  # noqa: BLE001 - best effort on shutdown
                        pass
        return cancel

    def grant_lease(self, ttl: int) -> int:
        return self._call(self._client.lease, ttl).id

    def refresh_lease(self, lease_id: int) -> int:
        def refresh() -> int:
            for resp in self._client.refresh_lease(lease_id):
                return int(resp.TTL)
            return 0
        return self._call(refresh)

    def revoke_lease(self, lease_id: int) -> None:
        self._call(self._client.revoke_lease, lease_id)

    def ping(self) -> None:
        self._call(self._client.status)

    def close(self) -> None:
        self._closed = True
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken channel may fail
            pass
