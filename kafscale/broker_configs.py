"""Broker configs as Kafka's admin APIs see them, and how each config's value is chosen.

A broker config is either one of Kafscale's options (config.OPTIONS: reported under
Kafka's name where Kafka has one, ``broker.id``, ``message.max.bytes``, ..., else as
``kafscale.<option.name>``), or the broker-level synonym of a topic config that no option
covers (``log.cleanup.policy``, ``compression.type``, ...): Kafka's cluster-wide default
for that topic config. Those synonyms and the options marked ``dynamic`` may be set at run
time (AlterConfigs / IncrementalAlterConfigs on a BROKER resource): for one broker
(resource name "1"), or for every broker (resource name "", Kafka's cluster default).

A value comes from the first of, as in Kafka:

    DYNAMIC_TOPIC_CONFIG           the topic's own config (topic configs only)
    DYNAMIC_BROKER_CONFIG          set at run time for this broker
    DYNAMIC_DEFAULT_BROKER_CONFIG  set at run time for every broker
    STATIC_BROKER_CONFIG           a flag or KAFSCALE_* variable
    DEFAULT_CONFIG                 Kafscale's default (Kafka's, where Kafscale has no other)

Everything here is pure: ``describe_topic`` and ``describe_broker`` answer from the
values handed to them; kafscale/broker/dynconfig.py keeps those current.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kafscale import topic_configs
from kafscale.config import OPTIONS, Config, Option
from kafscale.errors import InvalidConfig, KafkaError, ErrorCode
from kafscale.topic_configs import ConfigType, Value


class ConfigSource(enum.IntEnum):
    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8


# The broker config that is each topic config's cluster-wide default, as Kafka names it
# (Kafka's ServerTopicConfigSynonyms; where Kafka has several, the one in milliseconds).
TOPIC_SYNONYMS = {
    "cleanup.policy": "log.cleanup.policy",
    "compression.gzip.level": "compression.gzip.level",
    "compression.lz4.level": "compression.lz4.level",
    "compression.type": "compression.type",
    "compression.zstd.level": "compression.zstd.level",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "index.interval.bytes": "log.index.interval.bytes",
    "local.retention.bytes": "log.local.retention.bytes",
    "local.retention.ms": "log.local.retention.ms",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "max.message.bytes": "message.max.bytes",
    "message.downconversion.enable": "log.message.downconversion.enable",
    "message.format.version": "log.message.format.version",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms": "log.message.timestamp.difference.max.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "min.insync.replicas": "min.insync.replicas",
    "preallocate": "log.preallocate",
    "retention.bytes": "log.retention.bytes",
    "retention.ms": "log.retention.ms",
    "segment.bytes": "log.segment.bytes",
    "segment.index.bytes": "log.index.size.max.bytes",
    "segment.jitter.ms": "log.roll.jitter.ms",
    "segment.ms": "log.roll.ms",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
}

_OPTION_TYPES = {int: ConfigType.LONG, float: ConfigType.DOUBLE, str: ConfigType.STRING}


@dataclass(frozen=True)
class BrokerConfig:
    """One config of the BROKER resource."""

    name: str
    type: ConfigType
    doc: str
    dynamic: bool
    sensitive: bool = False
    option: Option | None = None  # the option holding it, if any
    topic: topic_configs.TopicConfig | None = None  # the topic config it is the default of

    def parse(self, text: str) -> Value:
        """The value ``text`` stands for; InvalidConfig (in Kafka's words) when it is not valid."""
        if self.topic is not None:
            value = self.topic.parse(text)
            problem = self.topic.check.problem(value) if self.topic.check else None
            if problem:
                raise InvalidConfig(f"Invalid value {text.strip()} for configuration {self.name}: {problem}")
        if self.option is None:
            return value
        try:
            value = self.option.parse(text.strip())
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 \
                    and self.option.name not in _NEGATIVE_OK:
                raise ValueError("Value must be at least 0")
            if self.option.name in _POSITIVE and value < 1:
                raise ValueError("Value must be at least 1")
        except ValueError as exc:
            raise InvalidConfig(f"Invalid value {text.strip()} for configuration {self.name}: {exc}") from None
        return value


# Options whose value may be negative (-1: no limit), and those that must be positive.
_NEGATIVE_OK = {"log_retention_ms", "log_retention_bytes"}
_POSITIVE = {"group_max_size", "offsets_retention_minutes", "group_min_session_timeout_ms",
             "group_max_session_timeout_ms", "max_message_bytes", "log_segment_bytes"}


def _type_of(opt: Option, topic: topic_configs.TopicConfig | None) -> ConfigType:
    if topic is not None:
        return topic.type
    if opt.parse not in _OPTION_TYPES:
        return ConfigType.BOOLEAN
    return ConfigType.PASSWORD if opt.sensitive else _OPTION_TYPES[opt.parse]


def _table() -> dict[str, BrokerConfig]:
    by_synonym = {broker: topic_configs.CONFIGS[topic] for topic, broker in TOPIC_SYNONYMS.items()}
    table: dict[str, BrokerConfig] = {}
    for opt in OPTIONS:
        topic = by_synonym.get(opt.kafka) if opt.kafka else None
        table[opt.config_name] = BrokerConfig(opt.config_name, _type_of(opt, topic), opt.help, opt.dynamic,
                                              opt.sensitive, opt, topic)
    for name, topic in by_synonym.items():
        if name not in table:
            table[name] = BrokerConfig(name, topic.type, f"Default {topic.name} of topics: {topic.doc}", True,
                                       topic=topic)
    return dict(sorted(table.items()))


CONFIGS: dict[str, BrokerConfig] = _table()
DEFAULTS = Config()


@dataclass(frozen=True)
class Described:
    """One config as DescribeConfigs reports it."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    sensitive: bool
    type: ConfigType
    doc: str
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...]


@dataclass
class DynamicState:
    """Broker configs set at run time: for every broker (``cluster``) and per broker id."""

    cluster: dict[str, str] = dataclasses.field(default_factory=dict)
    brokers: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)


def option_text(value: Any) -> str | None:
    """An option's value as Kafka reports it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _chain(entry: BrokerConfig, static: Config, state: DynamicState, broker_id: int
           ) -> list[tuple[str, str | None, ConfigSource]]:
    """Every source that has a value for ``entry``, highest first (Kafka's synonym order)."""
    out = []
    mine = state.brokers.get(broker_id, {})
    if entry.name in mine:
        out.append((entry.name, mine[entry.name], ConfigSource.DYNAMIC_BROKER_CONFIG))
    if entry.name in state.cluster:
        out.append((entry.name, state.cluster[entry.name], ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
    opt = entry.option
    if opt is not None:
        if opt.name in static.explicit:
            out.append((entry.name, option_text(getattr(static, opt.name)), ConfigSource.STATIC_BROKER_CONFIG))
        out.append((entry.name, option_text(getattr(DEFAULTS, opt.name)), ConfigSource.DEFAULT_CONFIG))
    elif entry.topic is not None:
        out.append((entry.name, entry.topic.default, ConfigSource.DEFAULT_CONFIG))
    return out


def effective_text(entry: BrokerConfig, static: Config, state: DynamicState, broker_id: int) -> str | None:
    """The value broker config ``entry`` has on broker ``broker_id`` now, as text."""
    return _chain(entry, static, state, broker_id)[0][1]


def dynamic_text(state: DynamicState, broker_id: int, name: str) -> str | None:
    """The run-time value of broker config ``name`` on broker ``broker_id`` (None: not set)."""
    mine = state.brokers.get(broker_id, {})
    return mine[name] if name in mine else state.cluster.get(name)


def _described(entry: BrokerConfig, chain, read_only: bool, name: str | None = None) -> Described:
    name = name or entry.name
    _, value, source = chain[0]
    if entry.sensitive:
        value = None
        chain = [(n, None, s) for n, _, s in chain]
    return Described(name, value, source, read_only, entry.sensitive, entry.type, entry.doc, tuple(chain))


def describe_broker(static: Config, state: DynamicState, broker_id: int) -> list[Described]:
    """Every config of broker ``broker_id`` (``static``: its flags and variables). Kafka's
    listener configs are the listeners in effect (read-only): --listeners and
    --advertised-listeners, else derived from the host and port options; ssl.client.auth
    is the one in effect (required with a CA file unless set)."""
    out = [_described(e, _chain(e, static, state, broker_id), not e.dynamic) for e in CONFIGS.values()
           if e.name not in _DERIVED]
    for name, options, value, doc in (
            ("advertised.listeners", {"advertised_listeners", "listeners", "broker_host", "broker_port"},
             ",".join(f"{n}://{f'[{h}]' if ':' in h else h}:{p}" for n, (h, p) in static.advertised().items()),
             "The address each listener's clients are told to use: --advertised-listeners, else "
             "--broker-host and the listener's port."),
            ("listeners", {"listeners", "listen_host", "broker_host", "broker_port"},
             ",".join(lst.url() for lst in static.listener_list),
             "The listeners the broker binds: --listeners, else --listen-host and --broker-port."),
            ("ssl.client.auth", {"tls_client_auth", "tls_ca_file"}, static.client_auth,
             "Client certificates on TLS listeners: none, requested or required.")):
        source = ConfigSource.STATIC_BROKER_CONFIG if static.explicit & options else ConfigSource.DEFAULT_CONFIG
        out.append(Described(name, value, source, True, False, ConfigType.STRING, doc, ((name, value, source),)))
    return sorted(out, key=lambda d: d.name)


_DERIVED = ("advertised.listeners", "listeners", "ssl.client.auth")  # describe_broker reports them in effect


def describe_cluster_default(state: DynamicState) -> list[Described]:
    """The BROKER resource "": the configs set at run time for every broker, and only those."""
    out = []
    for name, text in sorted(state.cluster.items()):
        entry = CONFIGS.get(name)
        if entry is not None:
            out.append(_described(entry, [(name, text, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)], False))
    return out


def describe_topic(config: Mapping[str, str], static: Config, state: DynamicState,
                   broker_id: int) -> list[Described]:
    """Every config of a topic whose own configs are ``config``, as seen on ``broker_id``."""
    out = []
    for tc in topic_configs.CONFIGS.values():
        chain: list[tuple[str, str | None, ConfigSource]] = []
        if tc.name in config:
            chain.append((tc.name, config[tc.name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
        broker_name = TOPIC_SYNONYMS.get(tc.name)
        if broker_name is not None:
            chain += _chain(CONFIGS[broker_name], static, state, broker_id)
        else:
            chain.append((tc.name, tc.default, ConfigSource.DEFAULT_CONFIG))
        out.append(Described(tc.name, chain[0][1], chain[0][2], False, False, tc.type, tc.doc, tuple(chain)))
    return out


def topic_default(name: str, config: Config, state: DynamicState, broker_id: int) -> Value:
    """The value topic config ``name`` has on a topic that does not set it: the broker's
    (live) option, else the run-time cluster default, else Kafka's default."""
    broker_name = TOPIC_SYNONYMS.get(name)
    entry = CONFIGS.get(broker_name) if broker_name else None
    tc = topic_configs.CONFIGS[name]
    if entry is not None and entry.option is not None:
        return getattr(config, entry.option.name)
    text = dynamic_text(state, broker_id, broker_name) if broker_name else None
    return tc.parse(tc.default if text is None else text)


# -- changes ---------------------------------------------------------------------------------

_LISTENERS = _DERIVED  # reported by describe_broker, never changed

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


class InvalidRequest(KafkaError):
    code = ErrorCode.INVALID_REQUEST


def incremental(current: Mapping[str, str], ops: list[tuple[str, int, str | None]],
                effective: Callable[[str], tuple[ConfigType, str] | None]) -> dict[str, str | None]:
    """The changes IncrementalAlterConfigs ``ops`` (name, operation, value) make to a
    resource whose set configs are ``current``: name -> new text, or None to delete.
    ``effective(name)`` is the config's type and the value it has when not set here (None:
    no such config). APPEND and SUBTRACT act on LIST configs only, starting from the
    current value."""
    seen: set[str] = set()
    changes: dict[str, str | None] = {}
    for name, op, text in ops:
        if name in seen:
            raise InvalidRequest(f"Error due to duplicate config keys: {name}")
        seen.add(name)
        if op == DELETE:
            changes[name] = None
            continue
        if op not in (SET, APPEND, SUBTRACT):
            raise InvalidRequest(f"Unknown config operation {op} for {name}")
        if text is None:
            raise InvalidRequest(f"Null value not supported for : {name}")
        if op == SET:
            changes[name] = text
            continue
        known = effective(name)
        if known is None:
            raise InvalidConfig(f"Unknown config name: {name}")
        kind, default = known
        if kind is not ConfigType.LIST:
            verb = "append" if op == APPEND else "subtract"
            raise InvalidRequest(f"Config value {verb} is not allowed for config key: {name}")
        base = current.get(name, default)
        items = [i for i in (s.strip() for s in base.split(",")) if i]
        given = [i for i in (s.strip() for s in text.split(",")) if i]
        if op == APPEND:
            items += [i for i in given if i not in items]
        else:
            items = [i for i in items if i not in given]
        changes[name] = ",".join(items)
    return changes


def apply_changes(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    out = dict(current)
    for name, text in changes.items():
        if text is None:
            out.pop(name, None)
        else:
            out[name] = text
    return out


def validate_broker_changes(changes: Mapping[str, str | None]) -> dict[str, str | None]:
    """``changes`` to broker configs checked: every name known and changeable at run time,
    every value valid; values normalized as topic configs are. Raises InvalidConfig /
    InvalidRequest (Kafka's codes and words)."""
    fixed = sorted(n for n in changes if n in CONFIGS and not CONFIGS[n].dynamic or n in _LISTENERS)
    if fixed:
        raise InvalidRequest("Cannot update these configs dynamically: " + ", ".join(fixed))
    out: dict[str, str | None] = {}
    for name, text in changes.items():
        entry = CONFIGS.get(name)
        if entry is None:
            raise InvalidConfig(f"Unknown broker config name: {name}")
        if text is None:
            out[name] = None
            continue
        value = entry.parse(text)
        if entry.topic is not None:
            out[name] = topic_configs.validate({entry.topic.name: text})[entry.topic.name]
        else:
            out[name] = option_text(value)
    return out
