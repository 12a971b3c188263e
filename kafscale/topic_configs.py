"""Topic configs: one table of every config Kafka defines for a topic, and their checks.

Each entry holds Kafka's type (numbered as DescribeConfigs v3+ reports it), Kafka's
default as a string, the values Kafka accepts, a one-line description, and whether
Kafscale acts on it. CreateTopics runs ``validate``: an unknown key, a null, a value of
the wrong type, out of range or not among the allowed ones gets INVALID_CONFIG with a
message worded as Kafka's (``Invalid value banana for configuration cleanup.policy:
String must be one of: compact, delete``).

The table follows Kafka 3.9, the widest set: 4.x dropped ``message.format.version`` and
``message.timestamp.difference.max.ms``, turned ``message.downconversion.enable`` into a
no-op and raised the minimum of ``segment.bytes`` to 1 MiB; Kafscale keeps 3.x's rules so
that tools of either version are served. Accepted configs are stored with the topic and
reported back; those not marked ``acted_on`` change nothing (most are about local disks,
replicas or tiered storage, which S3 replaces).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from kafscale.errors import InvalidConfig


class ConfigType(enum.IntEnum):
    """Kafka's config types, with the ids DescribeConfigs v3+ reports."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


Value = Union[bool, int, float, str, list[str]]

# Short names for the table.
BOOLEAN = ConfigType.BOOLEAN
STRING = ConfigType.STRING
INT = ConfigType.INT
LONG = ConfigType.LONG
DOUBLE = ConfigType.DOUBLE
LIST = ConfigType.LIST
LONG_MAX = str(2**63 - 1)

_BITS = {ConfigType.SHORT: 16, ConfigType.INT: 32, ConfigType.LONG: 64}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_LIST_SEPARATOR = re.compile(r"\s*,\s*")


@dataclass(frozen=True)
class Check:
    """The values one config accepts beyond its type: ``problem(value)`` says what is
    wrong with a parsed value (None: nothing); ``valid`` says what is allowed (for docs)."""

    problem: Callable[[Any], str | None]
    valid: str


def _range(low: int, high: int | None = None) -> Check:
    def problem(number: float) -> str | None:
        if number < low:
            return f"Value must be at least {low}"
        if high is not None and number > high:
            return f"Value must be no more than {high}"
        return None
    return Check(problem, f"[{low},...]" if high is None else f"[{low},...,{high}]")


def _one_of(*allowed: str) -> Check:
    """Case-sensitive, as Kafka's; for a LIST, every item must be one of them."""
    def problem(value: str | list[str]) -> str | None:
        items = value if isinstance(value, list) else [value]
        if all(item in allowed for item in items):
            return None
        return "String must be one of: " + ", ".join(allowed)
    return Check(problem, "[" + ", ".join(allowed) + "]")


# gzip's levels, or -1 (zlib's default level).
_GZIP_LEVEL = Check(lambda level: None if level == -1 or 1 <= level <= 9
                    else "Value must be between 1 and 9 or equal to -1", "[1,...,9] or -1")

_REPLICA = re.compile(r"([0-9]+:[0-9]+)?")


def _throttled_replicas(name: str) -> Check:
    def problem(items: list[str]) -> str | None:
        if "".join(items) == "*" or all(_REPLICA.fullmatch(item) for item in items):
            return None
        return (f"{name} must be the literal '*' or a list of replicas in the following format: "
                "[partitionId]:[brokerId],[partitionId]:[brokerId],...")
    return Check(problem, "[partitionId]:[brokerId],[partitionId]:[brokerId],...")


# Releases a message.format.version may name ("0.10.2", "2.8", "3.0-IV1"; as in Kafka, a
# version past the release's own digits, "2.8.1", stands for the release).
_RELEASES = {"0.8.0", "0.8.1", "0.8.2", "0.9.0", "0.10.0", "0.10.1", "0.10.2", "0.11.0", "1.0", "1.1",
             *(f"2.{minor}" for minor in range(9)), *(f"3.{minor}" for minor in range(10))}


def _format_version_problem(version: str) -> str | None:
    release, _, iv = version.partition("-")
    release = ".".join(release.split(".")[:3 if version.startswith("0.") else 2])
    if release in _RELEASES and (not iv or re.fullmatch(r"IV[0-9]+", iv)):
        return None
    return f"Version {version} is not a valid version"


_FORMAT_VERSION = Check(_format_version_problem, "a Kafka version, e.g. 2.8 or 3.0-IV1")


@dataclass(frozen=True)
class TopicConfig:
    """One topic config as Kafka defines it, and whether Kafscale acts on it."""

    name: str
    type: ConfigType
    default: str  # Kafka's default, as DescribeConfigs reports it
    check: Check | None  # None: any value of the type
    doc: str
    acted_on: bool = False

    def parse(self, text: str) -> Value:
        """The value ``text`` stands for, read as Kafka reads it: trimmed, booleans in any
        case, a LIST split at commas (and the spaces around them), an empty LIST for "".
        Raises InvalidConfig when it is not of the type."""
        text = text.strip()
        if self.type is BOOLEAN:
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise self.invalid(text, "Expected value to be either true or false")
        if self.type in _BITS:
            limit = 1 << (_BITS[self.type] - 1)
            if _INTEGER.fullmatch(text) and -limit <= int(text) < limit:
                return int(text)
            raise self.invalid(text, f"Not a number of type {self.type.name}")
        if self.type is DOUBLE:
            if _DECIMAL.fullmatch(text):
                return float(text)
            raise self.invalid(text, "Not a number of type DOUBLE")
        if self.type is LIST:
            return _LIST_SEPARATOR.split(text) if text else []
        return text

    def invalid(self, text: str, problem: str) -> InvalidConfig:
        """The error for value ``text`` of this config, in Kafka's words."""
        return InvalidConfig(f"Invalid value {text} for configuration {self.name}: {problem}")


_TABLE = (
    TopicConfig("cleanup.policy", LIST, "delete", _one_of("compact", "delete"),
                "Retention policy of old segments: delete, compact, or both (comma separated).", acted_on=True),
    TopicConfig("compression.gzip.level", INT, "-1", _GZIP_LEVEL,
                "Compression level used when compression.type is gzip."),
    TopicConfig("compression.lz4.level", INT, "9", _range(1, 17),
                "Compression level used when compression.type is lz4."),
    TopicConfig("compression.type", STRING, "producer",
                _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
                "Final compression of the topic's batches; producer keeps the producer's codec."),
    TopicConfig("compression.zstd.level", INT, "3", _range(-131072, 22),
                "Compression level used when compression.type is zstd."),
    TopicConfig("delete.retention.ms", LONG, "86400000", _range(0),
                "How long tombstones stay in a compacted topic."),
    TopicConfig("file.delete.delay.ms", LONG, "60000", _range(0),
                "How long a deleted segment file waits before it is removed from the filesystem."),
    TopicConfig("flush.messages", LONG, LONG_MAX, _range(1), "Messages after which the log is fsynced."),
    TopicConfig("flush.ms", LONG, LONG_MAX, _range(0), "Time after which the log is fsynced."),
    TopicConfig("follower.replication.throttled.replicas", LIST, "",
                _throttled_replicas("follower.replication.throttled.replicas"),
                "Replicas (partition:broker, or *) whose replication is throttled on the follower side."),
    TopicConfig("index.interval.bytes", INT, "4096", _range(0),
                "Bytes of log between two offset index entries."),
    TopicConfig("leader.replication.throttled.replicas", LIST, "",
                _throttled_replicas("leader.replication.throttled.replicas"),
                "Replicas (partition:broker, or *) whose replication is throttled on the leader side."),
    TopicConfig("local.retention.bytes", LONG, "-2", _range(-2),
                "Largest local size of a partition under tiered storage; -2: retention.bytes."),
    TopicConfig("local.retention.ms", LONG, "-2", _range(-2),
                "Longest time local segments stay under tiered storage; -2: retention.ms."),
    TopicConfig("max.compaction.lag.ms", LONG, LONG_MAX, _range(1),
                "Longest time a message stays ineligible for compaction."),
    TopicConfig("max.message.bytes", INT, "1048588", _range(0),
                "Largest record batch (after compression) the topic accepts.", acted_on=True),
    TopicConfig("message.downconversion.enable", BOOLEAN, "true", None,
                "Whether batches are down-converted for consumers of older message formats."),
    TopicConfig("message.format.version", STRING, "3.0-IV1", _FORMAT_VERSION,
                "Deprecated (gone in 4.0): message format version, ignored from protocol version 3.0 on."),
    TopicConfig("message.timestamp.after.max.ms", LONG, LONG_MAX, _range(0),
                "How far a CreateTime timestamp may lie after the broker's clock."),
    TopicConfig("message.timestamp.before.max.ms", LONG, LONG_MAX, _range(0),
                "How far a CreateTime timestamp may lie before the broker's clock."),
    TopicConfig("message.timestamp.difference.max.ms", LONG, LONG_MAX, _range(0),
                "Deprecated (gone in 4.0): how far a CreateTime timestamp may lie from the broker's clock."),
    TopicConfig("message.timestamp.type", STRING, "CreateTime", _one_of("CreateTime", "LogAppendTime"),
                "Whether a record's timestamp is the producer's create time or the log append time."),
    TopicConfig("min.cleanable.dirty.ratio", DOUBLE, "0.5", _range(0, 1),
                "Share of uncompacted log at which the log is cleaned."),
    TopicConfig("min.compaction.lag.ms", LONG, "0", _range(0), "Shortest time a message stays uncompacted."),
    TopicConfig("min.insync.replicas", INT, "1", _range(1),
                "Replicas that must acknowledge a write with acks=all."),
    TopicConfig("preallocate", BOOLEAN, "false", None, "Whether a new segment file is preallocated on disk."),
    TopicConfig("remote.log.copy.disable", BOOLEAN, "false", None,
                "Whether copying to tiered storage stops (tiered data becomes read only)."),
    TopicConfig("remote.log.delete.on.disable", BOOLEAN, "false", None,
                "Whether tiered data is deleted when tiered storage is turned off for the topic."),
    TopicConfig("remote.storage.enable", BOOLEAN, "false", None, "Whether the topic uses tiered storage."),
    TopicConfig("retention.bytes", LONG, "-1", None,
                "Largest size of a partition before old segments are deleted (delete policy); -1: no limit.",
                acted_on=True),
    TopicConfig("retention.ms", LONG, "604800000", _range(-1),
                "Longest time a log is kept before old segments are deleted (delete policy); -1: no limit.",
                acted_on=True),
    TopicConfig("segment.bytes", INT, "1073741824", _range(14),
                "Size of one segment file; retention and cleaning work a whole segment at a time.",
                acted_on=True),
    TopicConfig("segment.index.bytes", INT, "10485760", _range(4),
                "Size of a segment's preallocated offset index."),
    TopicConfig("segment.jitter.ms", LONG, "0", _range(0),
                "Largest random time taken off a segment's roll time, to spread rolls out."),
    TopicConfig("segment.ms", LONG, "604800000", _range(1),
                "Time after which a segment is rolled even if not full, so retention can act on it."),
    TopicConfig("unclean.leader.election.enable", BOOLEAN, "false", None,
                "Whether a replica outside the ISR may become leader as a last resort (losing data)."),
)

CONFIGS: dict[str, TopicConfig] = {entry.name: entry for entry in _TABLE}


def lookup(name: str) -> TopicConfig | None:
    """The table's entry for ``name``; None for a name Kafka does not define for topics."""
    return CONFIGS.get(name)


def validate(config: Mapping[str, str | None]) -> dict[str, str]:
    """``config`` checked as Kafka checks a topic's configs, and normalized: every value
    trimmed, a LIST's items trimmed and joined with "," (" compact , delete" becomes
    "compact,delete"), a BOOLEAN lower-cased; other values keep their text.

    Raises InvalidConfig (INVALID_CONFIG) for an unknown key, a null value, a value that
    is not of the key's type, out of its range or not among its allowed values, and for
    min.compaction.lag.ms greater than max.compaction.lag.ms."""
    normalized: dict[str, str] = {}
    for name, text in config.items():
        entry = CONFIGS.get(name)
        if entry is None:
            raise InvalidConfig(f"Unknown topic config name: {name}")
        if text is None:
            raise InvalidConfig(f"Null value not supported for topic configs: {name}")
        parsed = entry.parse(text)
        problem = entry.check.problem(parsed) if entry.check else None
        if problem:
            raise entry.invalid(text.strip(), problem)
        if entry.type is LIST:
            normalized[name] = ",".join(parsed)
        elif entry.type is BOOLEAN:
            normalized[name] = str(parsed).lower()
        else:
            normalized[name] = text.strip()
    low, high = value(normalized, "min.compaction.lag.ms"), value(normalized, "max.compaction.lag.ms")
    if low > high:
        raise InvalidConfig(f"conflict topic config setting min.compaction.lag.ms ({low}) > "
                            f"max.compaction.lag.ms ({high})")
    return normalized


def value(config: Mapping[str, str], name: str, broker_default: Value | None = None) -> Value:
    """The typed value of ``name`` in a topic's ``config``; when the topic does not set it,
    ``broker_default`` if given, else Kafka's default. The name must be in the table."""
    entry = CONFIGS[name]
    text = config.get(name)
    if text is None:
        return broker_default if broker_default is not None else entry.parse(entry.default)
    return entry.parse(text)


def cleanup_policies(config: Mapping[str, str]) -> set[str]:
    """The topic's cleanup.policy as a set of lower-case names ("delete", "compact")."""
    return {policy.lower() for policy in value(config, "cleanup.policy")}


def is_compacted(config: Mapping[str, str]) -> bool:
    """cleanup.policy includes compact (in any case, as Kafka reads it): every record
    produced to the topic needs a key."""
    return "compact" in cleanup_policies(config)
