"""Assemble a broker from its configuration and run it until SIGTERM/SIGINT.

Shutdown is graceful: stop accepting, let in-flight requests finish and be answered,
flush what is pending, exit 0.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from typing import Any, Callable

import curio

from kafscale import __version__
from kafscale.broker.core import Broker
from kafscale.config import Config, option_source, secret_option
from kafscale.errors import KafkaError
from kafscale.metadata.cluster import Cluster
from kafscale.metadata.etcd import EtcdStore
from kafscale.metadata.store import StoreUnavailable
from kafscale.metrics import BrokerCollector, Metrics
from kafscale.protocol.headers import API_NAMES
from kafscale.security.tls import ServerTls
from kafscale.server.console import ClusterView, Console, traffic_totals
from kafscale.server.http import HttpAuth, HttpServer, ReadinessProbe
from kafscale.server.kafka import KafkaServer
from kafscale.server.runtime import CurioRuntime
from kafscale.storage.engine import LogManager
from kafscale.storage.objects import ObjectStore
from kafscale.storage.objectstore import S3ObjectStore

log = logging.getLogger("kafscale")


def broker_state(broker: Broker, server: KafkaServer, probe: ReadinessProbe) -> dict[str, Any]:
    """What /metrics reports of the broker's state (metrics.BrokerCollector), read from
    memory when scraped."""
    logs = broker.logs
    stats = dict(logs.stats)
    stats.update(broker.groups.stats)
    offsets = []
    for group in broker.groups.groups.values():  # the groups this broker coordinates
        for (topic, partition), entry in group.offsets.items():
            offsets.append((group.group_id, topic, partition, entry.offset, logs.high_watermark(topic, partition)))
    return {
        "broker_id": broker.config.broker_id, "cluster_id": broker.cluster_id, "version": __version__,
        "connections": len(server.connections), "accepted": server.accepted, "idle_closed": server.idle_closed,
        "partitions_owned": sum(1 for p in logs.logs.values() if p.owned),
        "lease_up": int(broker.membership.lease_ok), "ready": int(probe.ready),
        "pending_bytes": logs.pending_bytes, "cache_bytes": logs.cache.bytes, "cache_hits": logs.cache.hits,
        "cache_misses": logs.cache.misses, "live_brokers": len(broker.membership.live), "topics": len(logs.topics),
        "stats": stats, "group_offsets": offsets,
    }


async def run(config: Config, on_ready: Callable[[str], None] | None = None) -> int:
    rt = CurioRuntime()
    metrics = Metrics(API_NAMES)
    store, objects = _backends(config, metrics)
    cluster = Cluster(store, config.etcd_prefix)
    logs = LogManager(rt, config, cluster, objects, metrics)
    broker = Broker(rt, config, cluster, logs)
    listeners = config.listener_list
    tls = _server_tls(config) if any(lst.uses_tls for lst in listeners) else None
    server = KafkaServer(broker, config.bind_host, config.broker_port, config.max_request_bytes,
                         queued_max_request_bytes=config.queued_max_request_bytes,
                         connections_max_idle_ms=config.connections_max_idle_ms,
                         max_connections=config.max_connections, max_connections_per_ip=config.max_connections_per_ip,
                         listeners=listeners, tls=tls)

    def limits_changed() -> None:  # max.connections(.per.ip) are dynamic broker configs
        server.max_connections, server.max_connections_per_ip = config.max_connections, config.max_connections_per_ip

    broker.dynamic.on_change.append(limits_changed)
    probe = ReadinessProbe({"s3": logs.check_s3, "etcd": logs.check_etcd})
    metrics.registry.register(BrokerCollector(lambda: broker_state(broker, server, probe)))
    console = Console(ClusterView(broker, probe), traffic=lambda: traffic_totals(metrics))
    http = HttpServer(config.bind_host, config.metrics_port, probe, metrics.exposition, routes=console.routes(),
                      auth=HttpAuth(config.http_auth_token, config.http_basic_auth))

    stop = curio.UniversalEvent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Set from a helper thread: the handler runs on the kernel's thread and must not
        # take the event's lock there.
        signal.signal(sig, lambda *_: threading.Thread(target=stop.set, daemon=True).start())
    # Bind first so a port clash fails at once, then wait for etcd and S3 (in Kubernetes
    # they may start after us); /healthz answers meanwhile, /readyz says why not ready.
    await _bind(server, config.bind_host, config.broker_port, "listeners" if config.listeners else "broker_port")
    # Registered in etcd with the ports bound (port 0: a free one).
    broker.set_advertised(config.advertised(server.ports))
    if config.listeners:
        log.info("listening on %s", ", ".join(e.listener.url(e.port) for e in server.endpoints))
    await _bind(http, config.bind_host, config.metrics_port, "metrics_port")
    http_task = await curio.spawn(http.serve, daemon=True)
    rates_task = await curio.spawn(console.run, daemon=True)
    start_task = await curio.spawn(_start_when_reachable, broker, objects, daemon=True)
    while not start_task.terminated:
        if stop.is_set():
            await start_task.cancel()
            await http_task.cancel()
            await rates_task.cancel()
            store.close()
            return 0
        await curio.ignore_after(0.1, stop.wait)
    await start_task.join()
    log.info("kafscale broker %d ready: bootstrap %s:%d, http :%d", config.broker_id, config.broker_host,
             server.port, http.port)
    if on_ready:
        on_ready(f"{config.broker_host}:{server.port}")
    serve_task = await curio.spawn(server.serve, daemon=True)
    await stop.wait()
    log.info("shutting down: draining connections")
    probe.draining = True
    await serve_task.cancel()
    # One budget for the whole shutdown (below Kubernetes' grace period): a third for the
    # requests in flight, the rest for the hand-over and the last flushes.
    deadline = time.monotonic() + config.shutdown_timeout_s
    await server.drain(config.shutdown_timeout_s / 3)
    await broker.stop(max(1.0, deadline - time.monotonic() - 2.0))
    await http_task.cancel()
    await rates_task.cancel()
    store.close()
    log.info("stopped")
    return 0


class ListenError(Exception):
    """A listener could not bind (the port is taken or the address is not this host's), or
    a file it or the etcd client needs cannot be read: one line, exit code 2."""


def _backends(config: Config, metrics: Metrics) -> tuple[EtcdStore, S3ObjectStore]:
    """The etcd and S3 adapters, secured as the options say (docs/security.md)."""
    try:
        store = EtcdStore(config.etcd_endpoints, timeout=config.etcd_timeout_s, metrics=metrics,
                          ca_file=config.etcd_ca_file, cert_file=config.etcd_cert_file, key_file=config.etcd_key_file,
                          user=config.etcd_user, password=lambda: secret_option(config, "etcd_password"))
    except OSError as exc:
        raise ListenError(f"{option_source('etcd_ca_file')}, {option_source('etcd_cert_file')}, "
                          f"{option_source('etcd_key_file')}: cannot read: {exc.strerror or exc}: "
                          f"{exc.filename}") from None
    objects = S3ObjectStore(config.s3_endpoint, config.s3_bucket, config.s3_access_key, config.s3_secret_key,
                            config.s3_region, timeout=config.s3_timeout_s, metrics=metrics, ca_file=config.s3_ca_file)
    return store, objects


def _server_tls(config: Config) -> ServerTls:
    try:
        return ServerTls(config.tls_cert_file, config.tls_key_file, config.tls_ca_file, config.client_auth)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ListenError(f"{option_source('tls_cert_file')}, {option_source('tls_key_file')}: cannot load "
                          f"the TLS certificate and key: {getattr(exc, 'reason', None) or exc}") from None


async def _bind(listener: KafkaServer | HttpServer, host: str, port: int, option: str) -> None:
    try:
        await listener.bind()
    except OSError as exc:
        if option == "listeners":
            raise ListenError(f"{option_source(option)}: cannot listen on {exc.strerror or exc}") from None
        raise ListenError(f"{option_source(option)}: cannot listen on {host or '*'}:{port}: "
                          f"{exc.strerror or exc}") from None


async def _start_when_reachable(broker: Broker, objects: ObjectStore) -> None:
    delay = 0.2
    while True:
        try:
            await curio.run_in_thread(objects.ensure_bucket)
            await broker.start()
            return
        except (StoreUnavailable, KafkaError) as exc:
            log.warning("waiting for etcd and S3: %s", exc)
            await curio.sleep(delay)
            delay = min(delay * 2, 5.0)


def serve(config: Config, on_ready: Callable[[str], None] | None = None) -> int:
    tune_gc()
    return curio.run(run, config, on_ready)


def tune_gc() -> None:
    """Fewer, cheaper cycle collections. The broker holds many long-lived objects (the
    segment manifests it serves from) and makes many short-lived ones per request; with
    CPython's default thresholds a full collection ran every few hundred ms under load
    and paused the event loop for 25-80 ms each time, which was most of produce p99.
    Objects from start-up are frozen out of collection, and a full collection waits for
    far more allocations. Request objects form no cycles; nothing relies on the cycle
    collector running often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
