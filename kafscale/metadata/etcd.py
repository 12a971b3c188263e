"""MetadataStore on etcd v3, through the (blocking) etcd3 client. The only etcd3 importer.

Every client error is turned into StoreUnavailable (one line: gRPC's status and details)
so callers above never see grpc or etcd3 types. Watches survive an etcd restart: when the
stream breaks the adapter re-creates the watch in the background and then calls the
callback with ``None``, meaning "events may have been missed; re-read what you cache".

Secured etcd (docs/security.md, "etcd and S3"): TLS when a CA or client certificate is
given or an endpoint is https:// (every channel, so watch streams and lease keep-alives
too, is a secure channel on the endpoint), and etcd auth with a user and password. The
etcd3 client authenticates only in its constructor (so it would fail when etcd is not up
yet) and never again, while etcd's tokens die with a member restart (simple tokens),
expire (JWT) or go stale when the auth store changes. So the adapter authenticates
itself, lazily, and again whenever etcd refuses the token (the refusals etcd's own Go
client refreshes on), reading the password anew each time so a rotated Secret is picked
up. Calls pass the token as gRPC metadata; a watch stream takes it when it opens, so a
new token also gets a new watcher for the watches created from then on.
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
from etcd3 import etcdrpc

from kafscale.metrics import Metrics
from kafscale.metadata.store import MetadataStore, Op, Put, StoreUnavailable, ValueIs, WatchEvent

log = logging.getLogger(__name__)

_ERRORS = (etcd3.exceptions.Etcd3Exception, grpc.RpcError, ValueError, OSError)
PAGE_KEYS = 2000  # keys per range read (values here are small: well under 4 MiB a page)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class _WatchRefused(grpc.RpcError):
    """A refused watch, shaped as the gRPC error of a refused token: with a user set the
    adapter authenticates again and retries once."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self) -> str:
        return self._details


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        part = part.removeprefix("http://").removeprefix("https://")
        host, _, port = part.rpartition(":")
        if not host:
            host, port = part, "2379"
        out.append((host, int(port)))
    if not out:
        raise ValueError("no etcd endpoints given")
    return out


def _describe(exc: BaseException) -> str:
    """One line: gRPC's status code and details (the etcd3 client raises its own
    exceptions, with a generic message, from inside the handler of the gRPC error)."""
    if isinstance(exc, etcd3.exceptions.Etcd3Exception) and isinstance(exc.__context__, grpc.RpcError):
        exc = exc.__context__
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def _token_refused(exc: BaseException) -> bool:
    """etcd refused the auth token, not the request: the token must be renewed. The same
    refusals as etcd's Go client refreshes its token on (clientv3 retry interceptor):
    invalid token (restart, expiry), stale auth revision, no user (no token)."""
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return False
    details = exc.details() or ""
    return exc.code() == grpc.StatusCode.UNAUTHENTICATED or (
        exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        and ("auth store is old" in details or "user name is empty" in details))


class EtcdStore(MetadataStore):
    """``ca_file``/``cert_file``/``key_file``: PEM files of TLS to etcd (the system's CAs
    when only an https:// endpoint is given); ``user`` and ``password`` (text, or a
    function called at each authentication): etcd auth."""

    def __init__(self, endpoints: str, timeout: float = 5.0, metrics: Metrics | None = None, *,
                 ca_file: str = "", cert_file: str = "", key_file: str = "",
                 user: str = "", password: str | Callable[[], str] = "") -> None:
        creds = None
        if ca_file or cert_file or "https://" in endpoints:
            creds = grpc.ssl_channel_credentials(_read(ca_file), _read(key_file), _read(cert_file))
        eps = [etcd3.Endpoint(h, p, secure=creds is not None, creds=creds, time_retry=1.0)
               for h, p in parse_endpoints(endpoints)]
        self._client = etcd3.MultiEndpointEtcd3Client(endpoints=eps, timeout=timeout, failover=True)
        self._timeout = timeout
        self._user = user
        self._password = password if callable(password) else (lambda: password)
        self._auth_lock = threading.Lock()
        self._rewatch_lock = threading.Lock()
        self._last_failure = ""  # why the last endpoint failed (the client then says only "none available")
        self._closed = False
        self.metrics = metrics or Metrics()  # transaction latency and errors (kafscale/metrics.py)

    def _call(self, fn, *args, **kwargs):
        try:
            return self._with_token(fn, *args, **kwargs)
        except _ERRORS as exc:
            self.metrics.etcd_errors.labels(getattr(fn, "__name__", "call").strip("_")).inc()
            why = _describe(exc)
            if isinstance(exc, etcd3.exceptions.NoServerAvailableError) and self._last_failure:
                why = self._last_failure
            elif isinstance(exc, etcd3.exceptions.ConnectionFailedError):
                self._last_failure = why
            raise StoreUnavailable(f"etcd: {why}") from exc

    def _with_token(self, fn, *args, **kwargs):
        """``fn`` with a valid auth token (when a user is set): authenticate first if there
        is none, and once more if etcd refuses the one there is."""
        if not self._user:
            return fn(*args, **kwargs)
        token = self._client.metadata
        if token is None:
            self._authenticate(None)
            token = self._client.metadata
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            # Without a token (auth was off), a call after auth was turned on is refused for
            # want of a user, or denied to the user etcd takes from the client certificate.
            tokenless_denied = token == () and hasattr(exc, "code") and exc.code() == grpc.StatusCode.PERMISSION_DENIED
            if not (_token_refused(exc) or tokenless_denied):
                raise
            log.info("etcd asks for a new token (%s): authenticating as %r", _describe(exc), self._user)
        self._authenticate(token)
        return fn(*args, **kwargs)

    def _authenticate(self, stale) -> None:
        with self._auth_lock:
            if self._client.metadata is not stale:  # another thread renewed it meanwhile
                return
            request = etcdrpc.AuthenticateRequest(name=self._user, password=self._password())
            try:
                # A stub on the channel of a member not marked failed (the client's cached
                # stub would stay on a dead member: only its own calls fail over).
                resp = etcdrpc.AuthStub(self._client.channel).Authenticate(request, self._timeout)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self._client.endpoint_in_use.fail()  # the next try goes to another member
                    self._last_failure = _describe(exc)
                    raise StoreUnavailable(f"etcd: {self._last_failure}") from exc
                if "authentication is not enabled" in (exc.details() or ""):
                    # Not yet: the chart turns auth on in a post-install Job, after the
                    # brokers are up. Go on without a token; once auth is on, etcd refuses
                    # token-less calls ("user name is empty") and the broker authenticates.
                    if self._client.metadata != ():
                        log.warning("etcd auth is not enabled: going on without a token as if no "
                                    "--etcd-user were given, until etcd asks for one")
                    self._client.metadata = ()
                    return
                raise StoreUnavailable(f"etcd: authentication as {self._user!r} failed: {_describe(exc)}") from exc
            self._client.metadata = (("token", resp.token),)
            # Watch streams carry the token they opened with: new watches need a new stream.
            self._client.watcher = self._client.get_watcher()

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
        state: dict = {"id": None, "watcher": None, "cancelled": False}
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
            if events and not state["cancelled"]:
                callback(events)

        def add() -> None:
            with lock:
                state["watcher"], state["id"] = self._call(self._add_watch, prefix, on_response)

        def rewatch() -> None:
            delay, broken = 0.2, state["watcher"]
            while not state["cancelled"] and not self._closed:
                try:
                    # One at a time, each on a watcher that has not failed: see _renew_watcher.
                    with self._rewatch_lock:
                        self._renew_watcher(broken)
                        broken = self._client.watcher
                        add()
                    callback(None)
                    return
                except Exception as exc:  # noqa: BLE001 - the watch thread must keep trying
                    log.debug("etcd watch on %s not re-established yet: %s", prefix, exc)
                    threading.Event().wait(delay)
                    delay = min(delay * 2, 2.0)

        add()

        def cancel() -> None:
            state["cancelled"] = True
            with lock:
                if state["id"] is not None:
                    try:
                        state["watcher"].cancel(state["id"])
                    except Exception:  # noqa: BLE001 - best effort on shutdown
                        pass
        return cancel

    def _renew_watcher(self, broken) -> None:
        """A new watcher (stream) in place of one that broke or failed a watch. The etcd3
        client would reopen the broken one, but a watch created while its stream dies
        goes to a queue no stream reads and times out, and the creates queued behind it
        time out one by one, 5 s each: seven watches took 30 s to come back after an etcd
        restart. Re-created one at a time on a fresh watcher they take milliseconds."""
        with self._auth_lock:
            if self._client.watcher is broken:
                self._client.watcher = self._client.get_watcher()

    def _add_watch(self, prefix: str, on_response) -> tuple[object, int]:
        """A watch on the client's current watcher: (that watcher, the watch id). A watch
        is cancelled on the watcher (stream) it was made on, which a new token replaces."""
        watcher = self._client.watcher
        key = etcd3.utils.to_bytes(prefix)
        watch_id = watcher.add_callback(key, on_response, range_end=etcd3.utils.prefix_range_end(key))
        if watch_id < 0:
            # etcd answers a watch it does not permit (no permission, or a stream opened
            # with a token since expired) "created and cancelled" with id -1, which the
            # client returns as if the watch were made.
            watcher.cancel(watch_id)
            raise _WatchRefused(f"the watch on {prefix} was refused (no permission, or an expired token)")
        return watcher, watch_id

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
