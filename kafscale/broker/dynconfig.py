"""Configs changed at run time: topic configs and dynamic broker configs.

Both live in etcd (``topics/{name}``'s config; ``configs/cluster`` and
``configs/brokers/{id}``, see metadata/cluster.py) and are written there before the
admin call is answered. Every broker watches them: a topic's new config is in the topic
table the storage layer reads at each use, and a dynamic broker config is set on the
broker's one Config object, which every part of the broker reads at use time. So a
change made through any broker is in effect on all of them within a watch round trip,
without a restart. kafscale/broker_configs.py says which value wins.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from kafscale import broker_configs, topic_configs
from kafscale.broker_configs import CONFIGS, DynamicState, InvalidRequest, ResourceType
from kafscale.config import Config, OPTIONS
from kafscale.errors import KafkaError, UnknownTopicOrPartition
from kafscale.metadata.cluster import Cluster
from kafscale.runtime import Runtime
from kafscale.storage.engine import LogManager, validate_topic_name
from kafscale.topic_configs import ConfigType, Value
from kafscale.watching import PrefixFollower

log = logging.getLogger(__name__)

Update = Callable[[dict[str, str]], dict[str, str]]


class DynamicConfigs:
    def __init__(self, rt: Runtime, cluster: Cluster, config: Config, logs: LogManager) -> None:
        self.rt = rt
        self.cluster = cluster
        self.config = config  # the live object: dynamic values are set on it
        self.static = dataclasses.replace(config)  # flags and variables only
        self.broker_id = config.broker_id
        self.logs = logs
        self.state = DynamicState()
        self.on_change: list[Callable[[], Any]] = []
        self.follower = PrefixFollower(rt, cluster.store, cluster.keys.configs(), self.reload,
                                       "dynamic broker configs")
        logs.topic_default = self.topic_default

    async def start(self) -> None:
        await self.follower.start()

    async def stop(self) -> None:
        await self.follower.stop()

    async def reload(self) -> None:
        stored = await self.rt.run_in_thread(self.cluster.dynamic_configs)
        self.apply(stored)
        for callback in self.on_change:
            callback()

    def apply(self, stored: dict[str, dict[str, str]]) -> None:
        """Take ``stored`` ({"": every broker's, "<id>": one broker's}) as the run-time
        configs: set every dynamic option on the live Config (an option no longer set
        returns to its flag, variable or default)."""
        self.state = DynamicState(stored.get("", {}), {int(k): v for k, v in stored.items() if k.isdigit()})
        for opt in OPTIONS:
            if not opt.dynamic:
                continue
            value = getattr(self.static, opt.name)
            text = broker_configs.dynamic_text(self.state, self.broker_id, opt.config_name)
            if text is not None:
                try:
                    value = CONFIGS[opt.config_name].parse(text)
                except KafkaError as exc:  # written by an older or newer broker; keep ours
                    log.warning("ignoring dynamic config %s=%r: %s", opt.config_name, text, exc)
            if getattr(self.config, opt.name) != value:
                log.info("config %s is now %s", opt.config_name, broker_configs.option_text(value))
                setattr(self.config, opt.name, value)

    def topic_default(self, name: str) -> Value:
        """The value topic config ``name`` has on topics that do not set it."""
        return broker_configs.topic_default(name, self.config, self.state, self.broker_id)

    # -- describing -------------------------------------------------------------------------

    def describe_topic(self, config: dict[str, str]) -> list[broker_configs.Described]:
        return broker_configs.describe_topic(config, self.static, self.state, self.broker_id)

    def describe_broker(self, name: str) -> list[broker_configs.Described]:
        """The BROKER resource ``name``: "" is the cluster-wide default, else this broker's id."""
        if name == "":
            return broker_configs.describe_cluster_default(self.state)
        if name != str(self.broker_id):
            raise InvalidRequest(f"Unexpected broker id, expected {self.broker_id} or empty string, "
                                 f"but received {name}")
        return broker_configs.describe_broker(self.static, self.state, self.broker_id)

    # -- changing ---------------------------------------------------------------------------

    async def alter(self, resource_type: int, name: str, update: Update, validate_only: bool) -> None:
        if resource_type == ResourceType.TOPIC:
            validate_topic_name(name)
            await self.alter_topic(name, update, validate_only)
        elif resource_type == ResourceType.BROKER:
            await self.alter_broker(name, update, validate_only)
        elif resource_type == ResourceType.BROKER_LOGGER:
            raise InvalidRequest("BROKER_LOGGER resources are not supported: set --log-level")
        else:
            raise InvalidRequest(f"Unsupported resource type {resource_type}")

    async def alter_topic(self, name: str, update: Update, validate_only: bool) -> None:
        """Replace topic ``name``'s config with ``update(current)``, checked as at
        CreateTopics, in etcd before returning (nothing stored when ``validate_only``)."""
        rec = await self.logs.lookup_topic(name)
        if rec is None:
            raise UnknownTopicOrPartition(f"Topic {name} does not exist")

        def change(current: dict[str, str]) -> dict[str, str]:
            return topic_configs.validate(update(current))

        if validate_only:
            change(dict(rec.config))
            return
        rec = await self.rt.run_in_thread(self.cluster.alter_topic_config, name, change)
        self.logs.topic_changed(rec)
        log.info("topic %s config is now %s", name, rec.config)

    async def alter_broker(self, name: str, update: Update, validate_only: bool) -> None:
        """Replace the run-time configs of broker ``name`` ("": every broker) with
        ``update(current)``; every name must be a dynamic broker config, every value valid."""
        if name and not (name.isdigit() and int(name) < 2**31):
            raise InvalidRequest(f"Broker id must be an integer or empty, not {name!r}")

        def change(current: dict[str, str]) -> dict[str, str]:
            checked = broker_configs.validate_broker_changes(update(current))
            return {k: v for k, v in checked.items() if v is not None}

        if validate_only:
            change(self.state.brokers.get(int(name), {}) if name else dict(self.state.cluster))
            return
        await self.rt.run_in_thread(self.cluster.alter_broker_configs, name, change)
        await self.reload()

    def topic_effective(self, name: str) -> tuple[ConfigType, str] | None:
        """For IncrementalAlterConfigs on a topic: topic config ``name``'s type and the value
        it has on a topic that does not set it (None: no such topic config)."""
        entry = topic_configs.lookup(name)
        if entry is None:
            return None
        value = self.topic_default(name)
        return entry.type, ",".join(value) if isinstance(value, list) else broker_configs.option_text(value)

    def broker_effective(self, name: str) -> tuple[ConfigType, str] | None:
        entry = CONFIGS.get(name)
        if entry is None:
            return None
        return entry.type, broker_configs.effective_text(entry, self.static, self.state, self.broker_id) or ""
