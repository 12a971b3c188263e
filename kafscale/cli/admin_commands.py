"""``kafscale topics|groups|cluster|configs``: administration over the Kafka protocol."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, Callable

from kafscale.admin import Client, ClientError
from kafscale.admin import client as ac
from kafscale.admin.groupproto import decode_assignment

from .common import UsageError, client, connection_options, int_at_least, key_value
from .output import Table, emit, note


def add_parsers(sub: argparse._SubParsersAction) -> None:
    common = connection_options()

    def leaf(group: argparse._SubParsersAction, name: str, func: Any, help: str,
             subject: str | None = None) -> argparse.ArgumentParser:
        p = group.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        if subject:
            p.add_argument(subject)
        return p

    def area(name: str, help: str) -> argparse._SubParsersAction:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        return p.add_subparsers(dest="action", required=True, metavar="ACTION")

    topics = area("topics", "list, describe, create, alter and delete topics")
    leaf(topics, "list", topics_list, "list the topics")
    leaf(topics, "describe", topics_describe, "partitions, offsets, sizes and non-default configs of a topic",
         "topic")
    p = leaf(topics, "create", topics_create, "create a topic", "topic")
    p.add_argument("-p", "--partitions", type=int_at_least(1), default=-1, help="default: the broker's")
    p.add_argument("-r", "--replication-factor", type=int_at_least(1), default=-1, help="default: the broker's")
    p.add_argument("-c", "--config", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    p = leaf(topics, "alter", topics_alter, "add partitions to a topic, set or delete its configs",
             "topic")
    p.add_argument("-p", "--partitions", type=int_at_least(1), help="the new total number of partitions")
    p.add_argument("-c", "--config", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--delete-config", action="append", default=[], metavar="KEY")
    leaf(topics, "delete", topics_delete, "delete a topic", "topic")

    groups = area("groups", "list, describe, reset the offsets of and delete consumer groups")
    leaf(groups, "list", groups_list, "list the consumer groups")
    leaf(groups, "describe", groups_describe, "state, members, assignment and lag of a group", "group")
    p = leaf(groups, "reset-offsets", groups_reset, "move a group's committed offsets (a dry run without --execute)",
             "group")
    p.add_argument("--topic", required=True)
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start of each partition")
    to.add_argument("--to-latest", action="store_true", help="the log end of each partition")
    to.add_argument("--to-offset", type=int_at_least(0), metavar="N", help="offset N (within the log)")
    to.add_argument("--to-datetime", metavar="ISO8601",
                    help="the first offset at or after this time (local time unless it has an offset)")
    p.add_argument("--execute", action="store_true", help="commit the new offsets (the group must be empty)")
    leaf(groups, "delete", groups_delete, "delete a group with no members, and its offsets", "group")

    cluster = area("cluster", "the cluster's brokers and partition owners")
    leaf(cluster, "describe", cluster_describe, "cluster id, brokers, and the owner of every partition")

    configs = area("configs", "describe and alter topic and broker configs")
    for name, func, help in (("describe", configs_describe, "configs of a topic, a broker or the cluster"),
                             ("alter", configs_alter, "set or delete configs of a topic, a broker or the cluster")):
        p = leaf(configs, name, func, help)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--topic", metavar="NAME")
        which.add_argument("--broker", type=int_at_least(0), metavar="ID")
        which.add_argument("--cluster", action="store_true", help="the cluster-wide broker defaults")
        if name == "describe":
            p.add_argument("--all", action="store_true", help="also the configs left at their defaults")
        else:
            p.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE")
            p.add_argument("--delete", action="append", default=[], metavar="KEY")


# ---------------------------------------------------------------------- topics


def topics_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        topics = sorted(c.metadata(None).values(), key=lambda t: t.name)
    data = [{"name": t.name, "partitions": len(t.partitions), "internal": t.internal} for t in topics]
    emit(args, data, Table(["TOPIC", "PARTITIONS"], [[t["name"], t["partitions"]] for t in data]))
    return 0


def topics_describe(args: argparse.Namespace) -> int:
    with client(args) as c:
        info = c.topic(args.topic)
        start = c.list_offsets(args.topic, ac.EARLIEST)
        end = c.list_offsets(args.topic, ac.LATEST)
        sizes = c.log_sizes(args.topic, info.partitions)
        configs = None
        if c.any().supports(32):
            configs = {e.name: e.value for e in c.describe_configs(ac.RESOURCE_TOPIC, args.topic)
                       if e.config_source != ac.DEFAULT_CONFIG}
        brokers = c.brokers
    partitions = []
    for p in sorted(info.partitions.values(), key=lambda p: p.partition):
        owner = brokers.get(p.leader)
        partitions.append({"partition": p.partition, "leader": p.leader,
                           "leader_address": f"{owner.host}:{owner.port}" if owner else None,
                           "log_start_offset": start.get(p.partition), "high_watermark": end.get(p.partition),
                           "size_bytes": None if sizes is None else sizes.get(p.partition)})
    data = {"name": info.name, "partitions": partitions, "configs": configs}
    tables: list[Table | str] = [
        f"Topic: {info.name}  Partitions: {len(partitions)}",
        Table(["PARTITION", "LEADER", "ADDRESS", "LOG-START", "HIGH-WATERMARK", "SIZE"],
              [[p["partition"], p["leader"], p["leader_address"], p["log_start_offset"], p["high_watermark"],
                p["size_bytes"]] for p in partitions])]
    if configs is None:
        tables.append("Configs: (the broker does not serve DescribeConfigs)")
    elif configs:
        tables.append(Table(["CONFIG", "VALUE"], sorted([k, v] for k, v in configs.items()), "Configs:"))
    else:
        tables.append("Configs: all at their defaults")
    emit(args, data, *tables)
    return 0


def topics_create(args: argparse.Namespace) -> int:
    configs = dict(args.config)
    with client(args) as c:
        c.create_topic(args.topic, args.partitions, args.replication_factor, configs)
        partitions = len(c.topic(args.topic).partitions)
    emit(args, {"topic": args.topic, "partitions": partitions, "configs": configs},
         f"created topic {args.topic} with {partitions} partition{'s' * (partitions != 1)}")
    return 0


def topics_alter(args: argparse.Namespace) -> int:
    if args.partitions is None and not args.config and not args.delete_config:
        raise UsageError("topics alter: nothing to change (give -p, -c or --delete-config)")
    done = []
    with client(args) as c:
        if args.partitions is not None:
            c.create_partitions(args.topic, args.partitions)
            done.append(f"partitions now {args.partitions}")
        if args.config or args.delete_config:
            c.alter_configs(ac.RESOURCE_TOPIC, args.topic, dict(args.config), args.delete_config)
            done += _changes(args.config, args.delete_config)
    emit(args, {"topic": args.topic, "partitions": args.partitions, "set": dict(args.config),
                "deleted": args.delete_config}, f"altered topic {args.topic}: {', '.join(done)}")
    return 0


def _delete(args: argparse.Namespace, kind: str, name: str, delete: Callable[[Client, str], None]) -> int:
    with client(args) as c:
        delete(c, name)
    emit(args, {kind: name, "deleted": True}, f"deleted {kind} {name}")
    return 0


def _changes(set_: list[tuple[str, str]], deleted: list[str]) -> list[str]:
    return [f"set {k}={v}" for k, v in set_] + [f"deleted {k}" for k in deleted]


def topics_delete(args: argparse.Namespace) -> int:
    return _delete(args, "topic", args.topic, Client.delete_topic)


# ---------------------------------------------------------------------- groups


def groups_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        groups = c.list_groups()
    data = [{"group": g.group_id, "state": g.group_state or None, "protocol_type": g.protocol_type}
            for g in groups]
    emit(args, data, Table(["GROUP", "STATE", "PROTOCOL-TYPE"],
                           [[g["group"], g["state"], g["protocol_type"] or "-"] for g in data]))
    return 0


def groups_describe(args: argparse.Namespace) -> int:
    with client(args) as c:
        g = c.describe_group(args.group)
        committed = c.committed(args.group)
        if g.group_state == "Dead" and not committed:
            raise ClientError(f"group {args.group!r} does not exist (GROUP_ID_NOT_FOUND)")
        members = []
        owner: dict[tuple[str, int], dict[str, Any]] = {}
        for mem in g.members:
            assignment = decode_assignment(mem.member_assignment) if g.protocol_type == "consumer" else {}
            member = {"member_id": mem.member_id, "client_id": mem.client_id, "host": mem.client_host,
                      "assignment": {t: sorted(ps) for t, ps in sorted(assignment.items())}}
            members.append(member)
            for t, ps in assignment.items():
                owner.update({(t, p): member for p in ps})
        tps = sorted(set(committed) | set(owner))
        ends: dict[str, dict[int, int]] = {}
        for topic in sorted({t for t, _ in tps}):
            try:
                ends[topic] = c.list_offsets(topic, ac.LATEST)
            except ClientError as exc:  # e.g. a topic deleted since the commit
                note(str(exc))
                ends[topic] = {}
    offsets = []
    for t, p in tps:
        current, end = committed.get((t, p)), ends[t].get(p)
        member = owner.get((t, p), {})
        offsets.append({"topic": t, "partition": p, "committed_offset": current, "log_end_offset": end,
                        "lag": None if current is None or end is None else max(end - current, 0),
                        "member_id": member.get("member_id"), "host": member.get("host"),
                        "client_id": member.get("client_id")})
    data = {"group": args.group, "state": g.group_state, "protocol_type": g.protocol_type,
            "protocol": g.protocol_data, "members": members, "offsets": offsets}
    emit(args, data,
         f"Group: {args.group}  State: {g.group_state}  Protocol: {g.protocol_data or '-'}  Members: {len(members)}",
         Table(["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
               [[mm["member_id"], mm["client_id"], mm["host"],
                 " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in mm["assignment"].items()) or "-"]
                for mm in members]) if members else "No members.",
         Table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"],
               [[o["topic"], o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"], o["member_id"]]
                for o in offsets]) if offsets else "No committed offsets.")
    return 0


def _target_offsets(c: Client, args: argparse.Namespace) -> dict[int, int]:
    start = c.list_offsets(args.topic, ac.EARLIEST)
    end = c.list_offsets(args.topic, ac.LATEST)
    if args.to_earliest:
        return start
    if args.to_latest:
        return end
    if args.to_offset is not None:
        return {p: min(max(args.to_offset, start[p]), end[p]) for p in end}
    try:
        when = datetime.fromisoformat(args.to_datetime)
    except ValueError:
        raise ClientError(f"--to-datetime: not an ISO 8601 time: {args.to_datetime!r} "
                          "(e.g. 2024-05-01T12:00:00 or 2024-05-01T12:00:00+02:00)") from None
    found = c.list_offsets(args.topic, int(when.timestamp() * 1000))
    return {p: end[p] if o < 0 else o for p, o in found.items()}


def groups_reset(args: argparse.Namespace) -> int:
    with client(args) as c:
        target = _target_offsets(c, args)
        committed = c.committed(args.group, {args.topic: sorted(target)})
        if args.execute:
            g = c.describe_group(args.group)
            if g.members:
                raise ClientError(f"group {args.group!r} is {g.group_state} with {len(g.members)} member(s): "
                                  "offsets can be reset only while it has none (stop its consumers first)")
            c.commit(args.group, {(args.topic, p): o for p, o in target.items()})
    plan = [{"topic": args.topic, "partition": p, "current_offset": committed.get((args.topic, p)),
             "new_offset": o} for p, o in sorted(target.items())]
    emit(args, {"group": args.group, "executed": args.execute, "offsets": plan},
         Table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
               [[r["topic"], r["partition"], r["current_offset"], r["new_offset"]] for r in plan]))
    if not args.execute:
        note("dry run: nothing was committed (add --execute to commit these offsets)")
    return 0


def groups_delete(args: argparse.Namespace) -> int:
    return _delete(args, "group", args.group, Client.delete_group)


# ---------------------------------------------------------------------- cluster


def cluster_describe(args: argparse.Namespace) -> int:
    with client(args) as c:
        topics = c.metadata(None)
        cluster_id, controller = c.cluster_id, c.controller_id
        brokers = sorted(c.brokers.values(), key=lambda b: b.node_id)
        if c.any().supports(60):
            dc = c.describe_cluster()
            cluster_id, controller = dc.cluster_id, dc.controller_id
            brokers = [ac.BrokerInfo(b.broker_id, b.host, b.port, b.rack)
                       for b in sorted(dc.brokers, key=lambda b: b.broker_id)]
    owners = [{"topic": t.name, "partition": p.partition, "leader": p.leader}
              for t in sorted(topics.values(), key=lambda t: t.name)
              for p in sorted(t.partitions.values(), key=lambda p: p.partition)]
    data = {"cluster_id": cluster_id, "controller_id": controller,
            "brokers": [{"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack} for b in brokers],
            "partitions": owners}
    emit(args, data, f"Cluster: {cluster_id}  Controller: {controller}",
         Table(["BROKER", "HOST", "PORT", "RACK"], [[b.node_id, b.host, b.port, b.rack] for b in brokers]),
         Table(["TOPIC", "PARTITION", "LEADER"], [[o["topic"], o["partition"], o["leader"]] for o in owners]))
    return 0


# ---------------------------------------------------------------------- configs


def _resource(args: argparse.Namespace) -> tuple[int, str, int | None]:
    """(resource type, resource name, broker to ask or None for any)."""
    if args.topic is not None:
        return ac.RESOURCE_TOPIC, args.topic, None
    if args.cluster:
        return ac.RESOURCE_BROKER, "", None
    return ac.RESOURCE_BROKER, str(args.broker), args.broker


def configs_describe(args: argparse.Namespace) -> int:
    rtype, name, node = _resource(args)
    with client(args) as c:
        entries = c.describe_configs(rtype, name, node)
    shown = sorted((e for e in entries if args.all or e.config_source != ac.DEFAULT_CONFIG), key=lambda e: e.name)
    data = [{"name": e.name, "value": e.value, "source": ac.CONFIG_SOURCES.get(e.config_source, e.config_source),
             "read_only": e.read_only, "sensitive": e.is_sensitive} for e in shown]
    emit(args, data, Table(["CONFIG", "VALUE", "SOURCE"],
                           [[d["name"], "(sensitive)" if d["sensitive"] else d["value"], d["source"]]
                            for d in data]))
    return 0


def configs_alter(args: argparse.Namespace) -> int:
    if not args.set and not args.delete:
        raise UsageError("configs alter: nothing to change (give --set or --delete)")
    rtype, name, node = _resource(args)
    with client(args) as c:
        c.alter_configs(rtype, name, dict(args.set), args.delete, node)
    what = f"topic {name}" if rtype == ac.RESOURCE_TOPIC else f"broker {name}" if name else "the cluster"
    emit(args, {"resource": what, "set": dict(args.set), "deleted": args.delete},
         f"altered {what}: {', '.join(_changes(args.set, args.delete))}")
    return 0
