"""Broker configuration: one dataclass, filled from flags and ``KAFSCALE_*`` variables.

Every option is documented in docs/configuration.md. A flag wins over its variable,
which wins over the default. An option left unset for both S3 and etcd endpoints
means the local default: ``kafscale serve`` starts its own etcd and S3 server.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from kafscale import listeners
from kafscale.listeners import Listener


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass
class Option:
    name: str  # attribute name; flag is --name-with-dashes
    env: str
    parse: Callable[[str], Any]
    help: str
    kafka: str = ""  # Kafka's name of the broker config, where Kafka has one (DescribeConfigs)
    dynamic: bool = False  # may be changed at run time (AlterConfigs on a BROKER resource)
    sensitive: bool = False  # never reported (DescribeConfigs answers null)

    @property
    def config_name(self) -> str:
        """The name DescribeConfigs reports: Kafka's, else ``kafscale.`` + the dotted name."""
        return self.kafka or "kafscale." + self.name.replace("_", ".")


@dataclass
class Config:
    broker_id: int = 0
    broker_host: str = "127.0.0.1"  # advertised to clients in Metadata
    broker_port: int = 9092
    listen_host: str = ""  # bind address; empty means broker_host
    # Kafka's listeners / advertised.listeners (kafscale/listeners.py); empty: one PLAINTEXT
    # listener on listen_host:broker_port, advertised as broker_host:broker_port.
    listeners: str = ""
    advertised_listeners: str = ""
    tls_cert_file: str = ""  # PEM files of the TLS listeners (kafscale/security/tls.py)
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_client_auth: str = ""  # none | requested | required; empty: required with a CA, else none
    rack: str | None = None
    metrics_port: int = 9093
    etcd_endpoints: str = ""  # "host:port,host:port"; empty = local default
    etcd_prefix: str = "/kafscale"
    etcd_timeout_s: float = 5.0
    # etcd over TLS (client certificates) and/or with a user (kafscale/metadata/etcd.py)
    etcd_ca_file: str = ""
    etcd_cert_file: str = ""
    etcd_key_file: str = ""
    etcd_user: str = ""
    etcd_password: str = ""
    etcd_password_file: str = ""
    s3_endpoint: str = ""  # "http://host:port"; empty = local default
    s3_bucket: str = "kafscale"
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_namespace: str = "kafscale"
    s3_timeout_s: float = 10.0
    s3_ca_file: str = ""  # PEM CAs an https endpoint's certificate is checked against
    segment_bytes: int = 4 * 1024 * 1024
    flush_interval_ms: int = 50
    flush_concurrency: int = 4
    index_interval: int = 1000
    cache_bytes: int = 256 * 1024 * 1024
    max_pending_bytes: int = 256 * 1024 * 1024
    max_request_bytes: int = 100 * 1024 * 1024
    max_message_bytes: int = 1048588
    auto_create_topics: bool = True
    default_partitions: int = 1
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line (kafscale/logs.py)
    data_dir: str = "./data"
    shutdown_timeout_s: float = 25.0
    connections_max_idle_ms: int = 600_000
    queued_max_request_bytes: int = 256 * 1024 * 1024
    max_connections: int = 0  # 0: no limit
    max_connections_per_ip: int = 0  # 0: no limit
    lease_ttl_s: int = 10
    group_initial_rebalance_delay_ms: int = 3000
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_max_size: int = 2**31 - 1
    offsets_retention_minutes: int = 7 * 24 * 60
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4096
    # Default segment.bytes of topics: compacted segments grow to 8-16 MiB, which the read
    # path reads whole and caches (storage/reader.py WHOLE_READ_LIMIT).
    log_segment_bytes: int = 16 * 1024 * 1024
    compaction_interval_ms: int = 5_000
    compaction_min_age_ms: int = 10_000
    log_retention_check_interval_ms: int = 60_000
    log_retention_ms: int = 7 * 24 * 3600 * 1000  # default retention.ms of topics
    log_retention_bytes: int = -1  # default retention.bytes of topics
    orphan_grace_ms: int = 3_600_000
    http_auth_token: str = ""  # bearer token the console and /api need (docs/console.md)
    http_basic_auth: str = ""  # "user:password" the console and /api accept
    # SASL (kafscale/security, docs/security.md)
    sasl_enabled_mechanisms: str = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    sasl_admin_user: str = ""  # the first super user, written to etcd (hashed) at start-up
    sasl_admin_password: str = ""
    sasl_admin_password_file: str = ""
    connections_max_reauth_ms: int = 0  # 0: SASL sessions never expire
    connection_failed_authentication_delay_ms: int = 100
    authorizer: str = ""  # "acls": Kafka ACLs are enforced (kafscale/security/acls.py); "": none
    super_users: str = ""  # "User:admin;User:ops" (Kafka's super.users)
    allow_everyone_if_no_acl_found: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # The options given by flag or variable (DescribeConfigs: STATIC_BROKER_CONFIG).
    explicit: frozenset[str] = frozenset()

    @property
    def local_default(self) -> bool:
        return not self.etcd_endpoints and not self.s3_endpoint

    @property
    def bind_host(self) -> str:
        return self.listen_host or self.broker_host

    @property
    def listener_list(self) -> list[Listener]:
        """The listeners to bind: --listeners, else one PLAINTEXT on the bind host and broker port."""
        if self.listeners:
            return listeners.parse(self.listeners)
        return [Listener("PLAINTEXT", "PLAINTEXT", self.bind_host, self.broker_port)]

    def advertised(self, bound: dict[str, int] | None = None) -> dict[str, tuple[str, int]]:
        """Listener name -> the (host, port) its clients are told to use: --advertised-listeners,
        else the listener's own host (the broker host when it binds every address) and its
        port (``bound``: the ports actually bound, for port 0)."""
        bound = bound or {}
        given = {lst.name: lst for lst in listeners.parse(self.advertised_listeners)} \
            if self.advertised_listeners else {}
        out = {}
        for lst in self.listener_list:
            port = bound.get(lst.name, lst.port)
            if lst.name in given:
                adv = given[lst.name]
                out[lst.name] = (adv.host, adv.port or port)
            elif not self.listeners:
                out[lst.name] = (self.broker_host, port)
            else:
                out[lst.name] = (self.broker_host if lst.host in listeners.WILDCARD_HOSTS else lst.host, port)
        return out

    @property
    def client_auth(self) -> str:
        """ssl.client.auth in effect: the option, else required with a CA file, else none."""
        return (self.tls_client_auth or ("required" if self.tls_ca_file else "none")).lower()


OPTIONS: list[Option] = [
    Option("broker_id", "KAFSCALE_BROKER_ID", int, "Broker id (node id) reported in Metadata.", kafka="broker.id"),
    Option("broker_host", "KAFSCALE_BROKER_HOST", str, "Host advertised to clients."),
    Option("broker_port", "KAFSCALE_BROKER_PORT", int, "Kafka listener port."),
    Option("listen_host", "KAFSCALE_LISTEN_HOST", str, "Bind address (default: the broker host)."),
    Option("listeners", "KAFSCALE_LISTENERS", str,
           "Listeners to bind, PROTOCOL://host:port comma separated (PLAINTEXT, SSL, SASL_PLAINTEXT, "
           "SASL_SSL); replaces --listen-host/--broker-port.", kafka="listeners"),
    Option("advertised_listeners", "KAFSCALE_ADVERTISED_LISTENERS", str,
           "Address each listener's clients are told to use, same form (default: the listener's own).",
           kafka="advertised.listeners"),
    Option("tls_cert_file", "KAFSCALE_TLS_CERT_FILE", str,
           "PEM certificate (chain) of the TLS listeners; reloaded when it changes."),
    Option("tls_key_file", "KAFSCALE_TLS_KEY_FILE", str, "PEM private key of tls-cert-file; reloaded when it changes."),
    Option("tls_ca_file", "KAFSCALE_TLS_CA_FILE", str,
           "PEM CA certificates client certificates are checked against (mTLS)."),
    Option("tls_client_auth", "KAFSCALE_TLS_CLIENT_AUTH", str,
           "none, requested or required: client certificates on TLS listeners (default: required "
           "with a CA file, else none).", kafka="ssl.client.auth"),
    Option("rack", "KAFSCALE_RACK", str, "Rack id reported in Metadata.", kafka="broker.rack"),
    Option("metrics_port", "KAFSCALE_METRICS_PORT", int, "HTTP port for /metrics, /healthz, /readyz."),
    Option("etcd_endpoints", "KAFSCALE_ETCD_ENDPOINTS", str, "etcd endpoints, host:port, comma separated."),
    Option("etcd_prefix", "KAFSCALE_ETCD_PREFIX", str, "Key prefix for all metadata in etcd."),
    Option("etcd_ca_file", "KAFSCALE_ETCD_CA_FILE", str,
           "PEM CA certificates etcd's server certificate is checked against; turns on TLS to etcd."),
    Option("etcd_cert_file", "KAFSCALE_ETCD_CERT_FILE", str, "PEM client certificate presented to etcd."),
    Option("etcd_key_file", "KAFSCALE_ETCD_KEY_FILE", str, "PEM private key of etcd-cert-file."),
    Option("etcd_user", "KAFSCALE_ETCD_USER", str, "etcd user (etcd auth) the broker authenticates as."),
    Option("etcd_password", "KAFSCALE_ETCD_PASSWORD", str,
           "Password of etcd-user (or give --etcd-password-file).", sensitive=True),
    Option("etcd_password_file", "KAFSCALE_ETCD_PASSWORD_FILE", str,
           "A file holding etcd-user's password, read again at each re-authentication; a trailing "
           "newline is ignored."),
    Option("s3_endpoint", "KAFSCALE_S3_ENDPOINT", str, "S3 endpoint URL, e.g. http://minio:9000."),
    Option("s3_bucket", "KAFSCALE_S3_BUCKET", str, "Bucket holding segments and indexes."),
    Option("s3_region", "KAFSCALE_S3_REGION", str, "S3 region."),
    Option("s3_access_key", "KAFSCALE_S3_ACCESS_KEY", str, "S3 access key.", sensitive=True),
    Option("s3_secret_key", "KAFSCALE_S3_SECRET_KEY", str, "S3 secret key.", sensitive=True),
    Option("s3_namespace", "KAFSCALE_S3_NAMESPACE", str, "Object key prefix inside the bucket."),
    Option("s3_ca_file", "KAFSCALE_S3_CA_FILE", str,
           "PEM CA certificates an https S3 endpoint's certificate is checked against (default: the system's)."),
    Option("segment_bytes", "KAFSCALE_SEGMENT_BYTES", int, "Most record bytes in one flushed topic object."),
    Option("flush_interval_ms", "KAFSCALE_FLUSH_INTERVAL_MS", int, "Longest time data waits for a flush."),
    Option("flush_concurrency", "KAFSCALE_FLUSH_CONCURRENCY", int, "Most flushes of one topic under way at once."),
    Option("cache_bytes", "KAFSCALE_CACHE_BYTES", int, "Size bound of the segment cache."),
    Option("max_pending_bytes", "KAFSCALE_MAX_PENDING_BYTES", int, "Bound of produced data not yet in S3."),
    Option("max_request_bytes", "KAFSCALE_MAX_REQUEST_BYTES", int, "Largest request frame accepted.",
           kafka="socket.request.max.bytes"),
    Option("max_message_bytes", "KAFSCALE_MAX_MESSAGE_BYTES", int, "Default max.message.bytes of topics.",
           kafka="message.max.bytes", dynamic=True),
    Option("auto_create_topics", "KAFSCALE_AUTO_CREATE_TOPICS", _bool, "Create unknown topics on Metadata/Produce.",
           kafka="auto.create.topics.enable"),
    Option("default_partitions", "KAFSCALE_DEFAULT_PARTITIONS", int, "Partitions of auto-created topics.",
           kafka="num.partitions"),
    Option("log_level", "KAFSCALE_LOG_LEVEL", str, "DEBUG, INFO, WARNING or ERROR."),
    Option("log_format", "KAFSCALE_LOG_FORMAT", str, "text, or json: one JSON object per log line."),
    Option("shutdown_timeout_s", "KAFSCALE_SHUTDOWN_TIMEOUT_S", float,
           "Longest a SIGTERM shutdown takes; what is not handed over by then is left to lease expiry."),
    Option("connections_max_idle_ms", "KAFSCALE_CONNECTIONS_MAX_IDLE_MS", int,
           "A connection with no bytes received and no request in progress for this long is closed.",
           kafka="connections.max.idle.ms"),
    Option("queued_max_request_bytes", "KAFSCALE_QUEUED_MAX_REQUEST_BYTES", int,
           "Bound of request bytes received but not yet answered, all connections together.",
           kafka="queued.max.request.bytes"),
    Option("max_connections", "KAFSCALE_MAX_CONNECTIONS", int, "Most client connections at once; 0: no limit.",
           kafka="max.connections", dynamic=True),
    Option("max_connections_per_ip", "KAFSCALE_MAX_CONNECTIONS_PER_IP", int,
           "Most client connections from one address; 0: no limit.", kafka="max.connections.per.ip", dynamic=True),
    Option("lease_ttl_s", "KAFSCALE_LEASE_TTL_S", int, "Seconds a dead broker keeps its partitions."),
    Option("data_dir", "KAFSCALE_DATA_DIR", str, "Data directory of the local default stack."),
    Option("group_initial_rebalance_delay_ms", "KAFSCALE_GROUP_INITIAL_REBALANCE_DELAY_MS", int,
           "How long a group's first rebalance waits for more members (group.initial.rebalance.delay.ms).",
           kafka="group.initial.rebalance.delay.ms", dynamic=True),
    Option("log_segment_bytes", "KAFSCALE_LOG_SEGMENT_BYTES", int,
           "Default segment.bytes of topics: the size compacted segments grow to (log.segment.bytes).",
           kafka="log.segment.bytes", dynamic=True),
    Option("compaction_interval_ms", "KAFSCALE_COMPACTION_INTERVAL_MS", int,
           "How often each owner looks for segments to compact into Kafscale segments."),
    Option("compaction_min_age_ms", "KAFSCALE_COMPACTION_MIN_AGE_MS", int,
           "Segments younger than this are left alone by the compactor."),
    Option("log_retention_check_interval_ms", "KAFSCALE_LOG_RETENTION_CHECK_INTERVAL_MS", int,
           "How often retention is applied (log.retention.check.interval.ms).",
           kafka="log.retention.check.interval.ms"),
    Option("log_retention_ms", "KAFSCALE_LOG_RETENTION_MS", int,
           "Default retention.ms of topics (log.retention.ms); -1 keeps data forever.",
           kafka="log.retention.ms", dynamic=True),
    Option("log_retention_bytes", "KAFSCALE_LOG_RETENTION_BYTES", int,
           "Default retention.bytes of topics (log.retention.bytes); -1: no size bound.",
           kafka="log.retention.bytes", dynamic=True),
    Option("orphan_grace_ms", "KAFSCALE_ORPHAN_GRACE_MS", int,
           "Age after which an object no manifest entry refers to is deleted."),
    Option("group_min_session_timeout_ms", "KAFSCALE_GROUP_MIN_SESSION_TIMEOUT_MS", int,
           "Shortest session timeout a group member may ask for.", kafka="group.min.session.timeout.ms",
           dynamic=True),
    Option("group_max_session_timeout_ms", "KAFSCALE_GROUP_MAX_SESSION_TIMEOUT_MS", int,
           "Longest session timeout a group member may ask for.", kafka="group.max.session.timeout.ms",
           dynamic=True),
    Option("group_max_size", "KAFSCALE_GROUP_MAX_SIZE", int, "Most members one consumer group may have.",
           kafka="group.max.size", dynamic=True),
    Option("offsets_retention_minutes", "KAFSCALE_OFFSETS_RETENTION_MINUTES", int,
           "How long the committed offsets of a group with no members are kept.",
           kafka="offsets.retention.minutes", dynamic=True),
    Option("offsets_retention_check_interval_ms", "KAFSCALE_OFFSETS_RETENTION_CHECK_INTERVAL_MS", int,
           "How often each coordinator removes expired offsets and empty groups left without any.",
           kafka="offsets.retention.check.interval.ms"),
    Option("offset_metadata_max_bytes", "KAFSCALE_OFFSET_METADATA_MAX_BYTES", int,
           "Largest metadata string an offset commit may carry.", kafka="offset.metadata.max.bytes",
           dynamic=True),
    Option("http_auth_token", "KAFSCALE_HTTP_AUTH_TOKEN", str,
           "Bearer token the web console and /api need on the HTTP port (probes and /metrics stay open).",
           sensitive=True),
    Option("http_basic_auth", "KAFSCALE_HTTP_BASIC_AUTH", str,
           "user:password the web console and /api accept as HTTP basic auth.", sensitive=True),
    Option("authorizer", "KAFSCALE_AUTHORIZER", str,
           "acls: enforce Kafka ACLs on every API (CreateAcls & co. manage them); empty: no authorization.",
           kafka="authorizer.class.name"),
    Option("super_users", "KAFSCALE_SUPER_USERS", str,
           "Principals allowed everything, ;-separated, e.g. User:admin;User:ops.", kafka="super.users"),
    Option("allow_everyone_if_no_acl_found", "KAFSCALE_ALLOW_EVERYONE_IF_NO_ACL_FOUND", _bool,
           "With the ACL authorizer, whether a resource no ACL names is open to everyone.",
           kafka="allow.everyone.if.no.acl.found"),
    Option("sasl_enabled_mechanisms", "KAFSCALE_SASL_ENABLED_MECHANISMS", str,
           "SASL mechanisms the SASL listeners offer, comma separated: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN.",
           kafka="sasl.enabled.mechanisms"),
    Option("sasl_admin_user", "KAFSCALE_SASL_ADMIN_USER", str,
           "The first SASL user: its SCRAM credentials are written to etcd at start-up (never the password)."),
    Option("sasl_admin_password", "KAFSCALE_SASL_ADMIN_PASSWORD", str,
           "The admin user's password (or give --sasl-admin-password-file).", sensitive=True),
    Option("sasl_admin_password_file", "KAFSCALE_SASL_ADMIN_PASSWORD_FILE", str,
           "A file holding the admin user's password (e.g. a mounted Secret); a trailing newline is ignored."),
    Option("connections_max_reauth_ms", "KAFSCALE_CONNECTIONS_MAX_REAUTH_MS", int,
           "SASL session lifetime: a client must re-authenticate within it or its connection is closed; "
           "0: sessions never expire.", kafka="connections.max.reauth.ms"),
    Option("connection_failed_authentication_delay_ms", "KAFSCALE_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS", int,
           "Delay before a failed SASL authentication is answered, doubled per recent failure of the same "
           "address (at most 5 s).", kafka="connection.failed.authentication.delay.ms"),
]


class ConfigError(ValueError):
    """A bad option value; the message names the flag and its variable."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
_BY_NAME = {opt.name: opt for opt in OPTIONS}


def option_source(name: str) -> str:
    """How a user sets option ``name``: ``--flag-name (KAFSCALE_VARIABLE)``."""
    opt = _BY_NAME.get(name)
    return f"--{name.replace('_', '-')} ({opt.env})" if opt else name


def _parse(opt: Option, text: str) -> Any:
    try:
        return opt.parse(text.strip())
    except ValueError as exc:
        kind = {int: "not an integer", float: "not a number"}.get(opt.parse)
        raise ConfigError(f"{option_source(opt.name)}: {f'{kind}: {text!r}' if kind else exc}") from None


def from_sources(flags: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    """Build a Config: flags (text as typed, or parsed values; None when unset) over
    env over defaults. A bad value raises ConfigError naming the flag and the variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        flag_value = flags.get(opt.name)
        if flag_value is None and environ.get(opt.env, "") != "":
            flag_value = environ[opt.env]
        if isinstance(flag_value, str) and opt.parse is not str:
            flag_value = _parse(opt, flag_value)
        if flag_value is not None:
            values[opt.name] = flag_value
    cfg = Config(**values, explicit=frozenset(values))
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    if bool(cfg.etcd_endpoints) != bool(cfg.s3_endpoint):
        raise ConfigError(f"{option_source('etcd_endpoints')} and {option_source('s3_endpoint')}: "
                          "set both, or neither for the local default")
    if cfg.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"{option_source('log_level')}: not a log level: {cfg.log_level!r} "
                          f"(choose {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]})")
    if cfg.authorizer not in ("", "acls"):
        raise ConfigError(f"{option_source('authorizer')}: not an authorizer: {cfg.authorizer!r} "
                          "(choose acls, or leave it empty for none)")
    for principal in filter(None, (p.strip() for p in cfg.super_users.split(";"))):
        kind, _, name = principal.partition(":")
        if not kind or not name:
            raise ConfigError(f"{option_source('super_users')}: not a principal: {principal!r} (e.g. User:admin)")
    if cfg.log_format.lower() not in LOG_FORMATS:
        raise ConfigError(f"{option_source('log_format')}: not a log format: {cfg.log_format!r} "
                          f"(choose {' or '.join(LOG_FORMATS)})")
    for name in ("broker_port", "metrics_port"):
        if not 0 <= getattr(cfg, name) <= 65535:
            raise ConfigError(f"{option_source(name)}: not a port number (0-65535): {getattr(cfg, name)}")
    for name in ("segment_bytes", "cache_bytes", "max_pending_bytes", "max_request_bytes", "max_message_bytes",
                 "default_partitions", "lease_ttl_s", "flush_concurrency", "log_segment_bytes",
                 "compaction_interval_ms", "log_retention_check_interval_ms", "orphan_grace_ms",
                 "offsets_retention_check_interval_ms", "offsets_retention_minutes", "group_max_size",
                 "shutdown_timeout_s", "connections_max_idle_ms", "queued_max_request_bytes"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{option_source(name)}: must be positive, not {getattr(cfg, name)}")
    if cfg.flush_interval_ms < 0:
        raise ConfigError(f"{option_source('flush_interval_ms')}: must not be negative")
    if cfg.compaction_min_age_ms < 0:
        raise ConfigError(f"{option_source('compaction_min_age_ms')}: must not be negative")
    for name in ("max_connections", "max_connections_per_ip"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{option_source(name)}: must not be negative (0: no limit)")
    if cfg.broker_id < 0:
        raise ConfigError(f"{option_source('broker_id')}: must not be negative")
    _validate_listeners(cfg)
    _validate_backends(cfg)
    _validate_sasl(cfg)
    user, colon, _password = cfg.http_basic_auth.partition(":")
    if cfg.http_basic_auth and not (user and colon):
        raise ConfigError(f"{option_source('http_basic_auth')}: expected user:password")  # (value not shown)


CLIENT_AUTH = ("none", "requested", "required")


def _validate_listeners(cfg: Config) -> None:
    parsed = {}
    for name in ("listeners", "advertised_listeners"):
        if getattr(cfg, name):
            try:
                parsed[name] = listeners.parse(getattr(cfg, name))
            except ValueError as exc:
                raise ConfigError(f"{option_source(name)}: {exc}") from None
    names = [lst.name for lst in cfg.listener_list]
    for adv in parsed.get("advertised_listeners", []):
        if adv.name not in names:
            raise ConfigError(f"{option_source('advertised_listeners')}: {adv.name} is not a listener "
                              f"(listeners: {', '.join(names)})")
        if adv.host in listeners.WILDCARD_HOSTS:
            raise ConfigError(f"{option_source('advertised_listeners')}: {adv.url()}: advertise a host clients "
                              "can reach, not a wildcard address")
    if cfg.tls_client_auth and cfg.tls_client_auth.lower() not in CLIENT_AUTH:
        raise ConfigError(f"{option_source('tls_client_auth')}: not one of {', '.join(CLIENT_AUTH)}: "
                          f"{cfg.tls_client_auth!r}")
    tls = [lst for lst in cfg.listener_list if lst.uses_tls]
    if tls and not (cfg.tls_cert_file and cfg.tls_key_file):
        raise ConfigError(f"{option_source('listeners')}: the {tls[0].name} listener needs "
                          f"{option_source('tls_cert_file')} and {option_source('tls_key_file')}")
    if cfg.client_auth != "none" and not cfg.tls_ca_file:
        raise ConfigError(f"{option_source('tls_client_auth')}: {cfg.client_auth} needs "
                          f"{option_source('tls_ca_file')} to check client certificates against")
    for name in ("tls_cert_file", "tls_key_file", "tls_ca_file"):
        path = getattr(cfg, name)
        if tls and path and not os.path.isfile(path):
            raise ConfigError(f"{option_source(name)}: no such file: {path}")


def _validate_backends(cfg: Config) -> None:
    """etcd's TLS and user, S3's keys and CA: half-given pairs and missing files, one line each."""
    for given, missing in (("etcd_cert_file", "etcd_key_file"), ("etcd_key_file", "etcd_cert_file"),
                           ("s3_access_key", "s3_secret_key"), ("s3_secret_key", "s3_access_key")):
        if getattr(cfg, given) and not getattr(cfg, missing):
            raise ConfigError(f"{option_source(given)}: needs {option_source(missing)} too")
    password = cfg.etcd_password or cfg.etcd_password_file
    if cfg.etcd_user and not password:
        raise ConfigError(f"{option_source('etcd_user')}: needs {option_source('etcd_password')} "
                          f"or {option_source('etcd_password_file')}")
    if password and not cfg.etcd_user:
        name = "etcd_password" if cfg.etcd_password else "etcd_password_file"
        raise ConfigError(f"{option_source(name)}: set {option_source('etcd_user')} too")
    if cfg.etcd_password and cfg.etcd_password_file:
        raise ConfigError(f"{option_source('etcd_password')} and {option_source('etcd_password_file')}: "
                          "give one of them")
    secured = [n for n in ("etcd_ca_file", "etcd_cert_file", "etcd_user", "s3_ca_file") if getattr(cfg, n)]
    if secured and cfg.local_default:
        raise ConfigError(f"{option_source(secured[0])}: needs {option_source('etcd_endpoints')} and "
                          f"{option_source('s3_endpoint')} (the local default's etcd and S3 server are plain)")
    schemes = {e.strip().partition("://")[0] for e in cfg.etcd_endpoints.split(",") if "://" in e}
    if "http" in schemes and (cfg.etcd_ca_file or cfg.etcd_cert_file):
        raise ConfigError(f"{option_source('etcd_endpoints')}: http:// endpoints with "
                          f"{option_source('etcd_ca_file')} or {option_source('etcd_cert_file')}: "
                          "TLS needs https:// (or no scheme)")
    if cfg.s3_ca_file and cfg.s3_endpoint and not cfg.s3_endpoint.startswith("https://"):
        raise ConfigError(f"{option_source('s3_ca_file')}: the S3 endpoint {cfg.s3_endpoint} is not https://")
    for name in ("etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_password_file", "s3_ca_file"):
        path = getattr(cfg, name)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{option_source(name)}: no such file: {path}")


def secret_option(cfg: Config, name: str) -> str:
    """A password option's value, or the text of its ``<name>_file`` (one trailing newline
    dropped), read now: a mounted Secret that changed is read anew."""
    path = getattr(cfg, name + "_file")
    if not path:
        return getattr(cfg, name)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().removesuffix("\n").removesuffix("\r")
    except OSError as exc:
        raise ConfigError(f"{option_source(name + '_file')}: {exc.strerror or exc}: {path}") from None
    if not text:
        raise ConfigError(f"{option_source(name + '_file')}: the file is empty: {path}")
    return text


SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def sasl_mechanisms(cfg: Config) -> list[str]:
    return [m.strip().upper() for m in cfg.sasl_enabled_mechanisms.split(",") if m.strip()]


def _validate_sasl(cfg: Config) -> None:
    unknown = [m for m in sasl_mechanisms(cfg) if m not in SASL_MECHANISMS]
    if unknown or not sasl_mechanisms(cfg):
        raise ConfigError(f"{option_source('sasl_enabled_mechanisms')}: "
                          f"{'unknown ' + ', '.join(unknown) if unknown else 'empty'} "
                          f"(choose from {', '.join(SASL_MECHANISMS)})")
    for name in ("connections_max_reauth_ms", "connection_failed_authentication_delay_ms"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{option_source(name)}: must not be negative")
    if cfg.sasl_admin_password and cfg.sasl_admin_password_file:
        raise ConfigError(f"{option_source('sasl_admin_password')} and {option_source('sasl_admin_password_file')}: "
                          "give one of them")
    if cfg.sasl_admin_user and not (cfg.sasl_admin_password or cfg.sasl_admin_password_file):
        raise ConfigError(f"{option_source('sasl_admin_user')}: needs {option_source('sasl_admin_password')} "
                          f"or {option_source('sasl_admin_password_file')}")
    if (cfg.sasl_admin_password or cfg.sasl_admin_password_file) and not cfg.sasl_admin_user:
        raise ConfigError(f"{option_source('sasl_admin_password')}: set {option_source('sasl_admin_user')} too")
    if cfg.sasl_admin_password_file:
        sasl_admin_password(cfg)  # readable and not empty, or a ConfigError now rather than at start-up


def sasl_admin_password(cfg: Config) -> str:
    """The admin user's password: the option, or the file's text (one trailing newline dropped)."""
    return secret_option(cfg, "sasl_admin_password")


def replace(cfg: Config, **changes: Any) -> Config:
    return dataclasses.replace(cfg, **changes)
