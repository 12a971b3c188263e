"""The ``kafscale`` command, run as users run it (the installed entry point, a subprocess)
against real brokers: output as tables and as JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import uuid

import pytest

from kafscale.admin.groupproto import partition_for_key

KAFSCALE = str(pathlib.Path(sys.executable).with_name("kafscale"))
FAST_GROUPS = {"group_initial_rebalance_delay_ms": 100}


def kafscale(*args: str, bootstrap: str | None = None, input: str | None = None, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    if bootstrap is not None:
        full_env["KAFSCALE_BOOTSTRAP_SERVER"] = bootstrap
    return subprocess.run([KAFSCALE, *args], input=input, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def ok(*args: str, **kwargs) -> str:
    r = kafscale(*args, **kwargs)
    assert r.returncode == 0, f"kafscale {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def as_json(*args: str, **kwargs):
    return json.loads(ok(*args, "-o", "json", **kwargs))


def one_line_error(r: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------- topics


def test_topics_create_list_describe_alter_delete(broker):
    b = broker.bootstrap
    topic = _name("cli")
    assert ok("topics", "create", topic, "-p", "2", "-c", "retention.ms=3600000", bootstrap=b).strip() == \
        f"created topic {topic} with 2 partitions"
    one_line_error(kafscale("topics", "create", topic, bootstrap=b), 1, f"topic '{topic}'", "TOPIC_ALREADY_EXISTS")

    table = ok("topics", "list", bootstrap=b).splitlines()
    assert table[0].split() == ["TOPIC", "PARTITIONS"]
    assert [topic, "2"] in [line.split() for line in table[1:]]
    assert {"name": topic, "partitions": 2, "internal": False} in as_json("topics", "list", bootstrap=b)

    ok("produce", topic, "-p", "1", input="a\nb\nc\n", bootstrap=b)
    described = as_json("topics", "describe", topic, bootstrap=b)
    assert [(p["partition"], p["leader"], p["log_start_offset"], p["high_watermark"])
            for p in described["partitions"]] == [(0, 0, 0, 0), (1, 0, 0, 3)]
    assert described["partitions"][1]["leader_address"] == b
    assert described["configs"] == {"retention.ms": "3600000"}
    text = ok("topics", "describe", topic, bootstrap=b)
    assert text.splitlines()[0] == f"Topic: {topic}  Partitions: 2"
    assert "retention.ms  3600000" in text

    ok("topics", "alter", topic, "-p", "4", "-c", "cleanup.policy=compact", "--delete-config", "retention.ms",
       bootstrap=b)
    described = as_json("topics", "describe", topic, bootstrap=b)
    assert len(described["partitions"]) == 4
    assert described["configs"] == {"cleanup.policy": "compact"}
    one_line_error(kafscale("topics", "alter", topic, "-p", "2", bootstrap=b), 1, f"topic '{topic}'",
                   "INVALID_PARTITIONS")
    one_line_error(kafscale("topics", "alter", topic, bootstrap=b), 2, "nothing to change")

    assert ok("topics", "delete", topic, bootstrap=b).strip() == f"deleted topic {topic}"
    assert topic not in {t["name"] for t in as_json("topics", "list", bootstrap=b)}


def test_describe_reports_partition_sizes(broker):
    b = broker.bootstrap
    topic = _name("size")
    ok("topics", "create", topic, "-p", "1", bootstrap=b)
    ok("produce", topic, input="x" * 1000 + "\n", bootstrap=b)
    sizes = [p["size_bytes"] for p in as_json("topics", "describe", topic, bootstrap=b)["partitions"]]
    assert sizes[0] is not None and sizes[0] >= 1000, sizes


def test_mistyped_topic_is_one_clear_line(broker):
    for args in (("topics", "describe", "no-such-topic"), ("consume", "no-such-topic", "-n", "1"),
                 ("groups", "reset-offsets", "g", "--topic", "no-such-topic", "--to-earliest")):
        one_line_error(kafscale(*args, bootstrap=broker.bootstrap), 1, "topic 'no-such-topic' does not exist",
                       "UNKNOWN_TOPIC_OR_PARTITION")


def test_unreachable_broker_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    start = time.monotonic()
    r = kafscale("topics", "list", "-b", f"127.0.0.1:{port}")
    one_line_error(r, 1, f"cannot connect to 127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    r = kafscale("cluster", "describe", "--connect-timeout", "0.5", bootstrap="10.255.255.1:9092")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr


def test_usage_errors_exit_2_with_one_line():
    one_line_error(kafscale("topics", "create"), 2, "kafscale topics create", "topic")
    one_line_error(kafscale("topics", "create", "t", "-c", "novalue"), 2, "expected key=value")
    one_line_error(kafscale("groups", "reset-offsets", "g", "--topic", "t"), 2, "--to-earliest")
    one_line_error(kafscale("consume", "t", "-n", "0"), 2, "-n")


def test_version():
    from importlib.metadata import version

    assert ok("--version").strip() == f"kafscale {version('kafscale')}"


# ---------------------------------------------------------------------- produce / consume


def test_produce_consume_round_trip(broker_factory):
    b = broker_factory(options=FAST_GROUPS).bootstrap
    topic = _name("rt")
    ok("topics", "create", topic, "-p", "3", bootstrap=b)
    lines = [f"k{i}:value {i}" for i in range(200)]
    r = kafscale("produce", topic, "-k", ":", input="\n".join(lines) + "\n", bootstrap=b)
    assert r.returncode == 0 and "produced 200 messages" in r.stderr, r.stderr

    got = ok("consume", topic, "--from-beginning", "-n", "200", "-K", "=", bootstrap=b).splitlines()
    assert sorted(got) == sorted(line.replace(":", "=", 1) for line in lines)
    records = [json.loads(line) for line in
               ok("consume", topic, "--from-beginning", "-n", "200", "-o", "json", bootstrap=b).splitlines()]
    assert all(r["partition"] == partition_for_key(r["key"].encode(), 3) for r in records)
    assert ok("consume", topic, "--from-beginning", "-n", "3", bootstrap=b).count("\n") == 3
    # From the end: nothing, then the timeout ends it.
    assert ok("consume", topic, "--timeout-ms", "1500", bootstrap=b) == ""

    # As a group member: consume 150, commit them on exit; the rest is the lag.
    group = _name("g")
    first = ok("consume", topic, "-g", group, "--from-beginning", "-n", "150", bootstrap=b).splitlines()
    assert len(first) == 150
    described = as_json("groups", "describe", group, bootstrap=b)
    assert described["state"] == "Empty"
    assert sum(o["committed_offset"] for o in described["offsets"]) == 150
    assert sum(o["lag"] for o in described["offsets"]) == 50
    rest = ok("consume", topic, "-g", group, "--timeout-ms", "3000", bootstrap=b).splitlines()
    assert sorted(first + rest) == sorted(line.split(":", 1)[1] for line in lines)


def test_group_consumers_share_partitions_and_stop_cleanly(broker_factory, tmp_path):
    import signal

    b = broker_factory(options=FAST_GROUPS).bootstrap
    topic, group = _name("share"), _name("g")
    ok("topics", "create", topic, "-p", "4", bootstrap=b)
    ok("produce", topic, input="".join(f"{i}\n" for i in range(400)), bootstrap=b)
    env = {**os.environ, "KAFSCALE_BOOTSTRAP_SERVER": b}
    outs = [tmp_path / f"out{i}" for i in range(2)]
    procs = [subprocess.Popen([KAFSCALE, "consume", topic, "-g", group, "--from-beginning", "--assignor", "roundrobin"],
                              stdout=out.open("w"), stderr=subprocess.PIPE, text=True, env=env)
             for out in outs]
    try:
        deadline = time.monotonic() + 30
        described = None
        while time.monotonic() < deadline:
            r = kafscale("groups", "describe", group, "-o", "json", bootstrap=b)
            if r.returncode != 0:  # (not joined yet: the group does not exist)
                assert "GROUP_ID_NOT_FOUND" in r.stderr, r.stderr
                time.sleep(0.5)
                continue
            described = json.loads(r.stdout)
            assigned = [p for m in described["members"] for ps in m["assignment"].values() for p in ps]
            if described["state"] == "Stable" and len(described["members"]) == 2 and sorted(assigned) == [0, 1, 2, 3]:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the two members did not share the partitions: {described}")
        assert all(len(ps) == 2 for m in described["members"] for ps in m["assignment"].values())
        table = ok("groups", "describe", group, bootstrap=b)
        assert "State: Stable" in table and "Protocol: roundrobin" in table
        one_line_error(kafscale("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
                                bootstrap=b), 1, f"group '{group}'", "stop its consumers")
        one_line_error(kafscale("groups", "delete", group, bootstrap=b), 1, "NON_EMPTY_GROUP")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both read everything (they commit on exit)
            if sum(out.read_text().count("\n") for out in outs) >= 400:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        errors = [p.communicate(timeout=30)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    values = sorted(int(v) for out in outs for v in out.read_text().split())
    assert values == list(range(400))
    described = as_json("groups", "describe", group, bootstrap=b)
    assert described["state"] == "Empty" and described["members"] == []
    assert sum(o["committed_offset"] for o in described["offsets"]) == 400


# ---------------------------------------------------------------------- groups


def test_groups_list_describe_reset_delete_after_a_confluent_consumer(broker):
    from confluent_kafka import Consumer

    b = broker.bootstrap
    topic, group = _name("grp"), _name("g")
    ok("topics", "create", topic, "-p", "2", bootstrap=b)
    ok("produce", topic, input="".join(f"m{i}\n" for i in range(20)), bootstrap=b)
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 20 and time.monotonic() < deadline:
        for msg in c.consume(100, 1.0):
            if not msg.error():
                seen += 1
    assert seen == 20
    c.commit(asynchronous=False)
    c.close()

    listed = {g["group"]: g for g in as_json("groups", "list", bootstrap=b)}
    assert listed[group]["protocol_type"] == "consumer"
    assert group in ok("groups", "list", bootstrap=b)
    described = as_json("groups", "describe", group, bootstrap=b)
    assert [(o["partition"], o["committed_offset"] == o["log_end_offset"], o["lag"])
            for o in described["offsets"]] == [(0, True, 0), (1, True, 0)]

    plan = as_json("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", bootstrap=b)
    assert plan["executed"] is False
    assert [o["new_offset"] for o in plan["offsets"]] == [0, 0]
    r = kafscale("groups", "reset-offsets", group, "--topic", topic, "--to-offset", "3", bootstrap=b)
    assert r.returncode == 0 and "dry run" in r.stderr
    assert r.stdout.splitlines()[0].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
    assert sum(o["lag"] for o in as_json("groups", "describe", group, bootstrap=b)["offsets"]) == 0  # unchanged

    ok("groups", "reset-offsets", group, "--topic", topic, "--to-offset", "3", "--execute", bootstrap=b)
    assert [o["committed_offset"] for o in as_json("groups", "describe", group, bootstrap=b)["offsets"]] == [3, 3]
    ok("groups", "reset-offsets", group, "--topic", topic, "--to-datetime", "2000-01-01T00:00:00Z", "--execute",
       bootstrap=b)
    assert [o["committed_offset"] for o in as_json("groups", "describe", group, bootstrap=b)["offsets"]] == [0, 0]
    ok("groups", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute", bootstrap=b)
    assert sum(o["lag"] for o in as_json("groups", "describe", group, bootstrap=b)["offsets"]) == 0
    one_line_error(kafscale("groups", "reset-offsets", group, "--topic", topic, "--to-datetime", "yesterday",
                            bootstrap=b), 1, "--to-datetime", "ISO 8601")

    assert ok("groups", "delete", group, bootstrap=b).strip() == f"deleted group {group}"
    assert group not in {g["group"] for g in as_json("groups", "list", bootstrap=b)}
    one_line_error(kafscale("groups", "describe", group, bootstrap=b), 1, f"group '{group}'", "GROUP_ID_NOT_FOUND")


# ---------------------------------------------------------------------- cluster and configs


def test_cluster_describe(broker_factory):
    a = broker_factory(options={"rack": "r1"})
    b2 = broker_factory(options={"rack": "r2"})
    topic = _name("cl")
    ok("topics", "create", topic, "-p", "4", bootstrap=a.bootstrap)
    data = as_json("cluster", "describe", bootstrap=a.bootstrap)
    assert data["cluster_id"]
    assert [(x["id"], x["port"], x["rack"]) for x in data["brokers"]] == [(0, a.port, "r1"), (1, b2.port, "r2")]
    owners = [o for o in data["partitions"] if o["topic"] == topic]
    assert [o["partition"] for o in owners] == [0, 1, 2, 3]
    assert {o["leader"] for o in owners} <= {0, 1}
    table = ok("cluster", "describe", bootstrap=b2.bootstrap)
    assert table.startswith(f"Cluster: {data['cluster_id']}")
    assert ["1", "127.0.0.1", str(b2.port), "r2"] in [line.split() for line in table.splitlines()]


def test_configs_describe_and_alter(broker):
    b = broker.bootstrap
    topic = _name("cfg")
    ok("topics", "create", topic, "-c", "retention.ms=60000", bootstrap=b)
    entries = {e["name"]: e for e in as_json("configs", "describe", "--topic", topic, bootstrap=b)}
    assert entries["retention.ms"]["value"] == "60000"
    assert entries["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert all(e["source"] != "DEFAULT_CONFIG" for e in entries.values())
    every = {e["name"]: e for e in as_json("configs", "describe", "--topic", topic, "--all", bootstrap=b)}
    assert every["cleanup.policy"]["source"] == "DEFAULT_CONFIG" and len(every) > len(entries)

    ok("configs", "alter", "--topic", topic, "--set", "retention.bytes=1048576", "--delete", "retention.ms",
       bootstrap=b)
    entries = {e["name"]: e["value"] for e in as_json("configs", "describe", "--topic", topic, bootstrap=b)}
    assert entries == {"retention.bytes": "1048576"}
    one_line_error(kafscale("configs", "alter", "--topic", topic, "--set", "cleanup.policy=banana", bootstrap=b),
                   1, f"topic '{topic}'", "INVALID_CONFIG", "banana")

    ok("configs", "alter", "--broker", "0", "--set", "max.connections=1000", bootstrap=b)
    broker_entries = {e["name"]: e for e in as_json("configs", "describe", "--broker", "0", bootstrap=b)}
    assert broker_entries["max.connections"]["value"] == "1000"
    assert broker_entries["max.connections"]["source"] == "DYNAMIC_BROKER_CONFIG"
    ok("configs", "alter", "--cluster", "--set", "log.retention.ms=100000", bootstrap=b)
    cluster_entries = {e["name"]: e for e in as_json("configs", "describe", "--cluster", bootstrap=b)}
    assert cluster_entries["log.retention.ms"]["value"] == "100000"
    assert "log.retention.ms" in ok("configs", "describe", "--cluster", bootstrap=b)
    one_line_error(kafscale("configs", "describe", bootstrap=b), 2, "--topic")


# ---------------------------------------------------------------------- serve errors


@pytest.mark.parametrize("args, env, fragments", [
    (["--auto-create-topics", "maybe"], {},
     ["--auto-create-topics (KAFSCALE_AUTO_CREATE_TOPICS): not a boolean: 'maybe'"]),
    ([], {"KAFSCALE_AUTO_CREATE_TOPICS": "maybe"}, ["--auto-create-topics (KAFSCALE_AUTO_CREATE_TOPICS)"]),
    (["--log-level", "verbose"], {}, ["--log-level (KAFSCALE_LOG_LEVEL)", "verbose", "DEBUG, INFO, WARNING or ERROR"]),
    (["--segment-bytes", "0"], {}, ["--segment-bytes (KAFSCALE_SEGMENT_BYTES): must be positive"]),
    ([], {"KAFSCALE_SEGMENT_BYTES": "-5"}, ["--segment-bytes (KAFSCALE_SEGMENT_BYTES): must be positive"]),
    (["--broker-port", "ninety"], {}, ["--broker-port (KAFSCALE_BROKER_PORT): not an integer: 'ninety'"]),
    (["--etcd-endpoints", "127.0.0.1:1"], {}, ["--s3-endpoint (KAFSCALE_S3_ENDPOINT)", "set both"]),
])
def test_serve_refuses_a_bad_option_in_one_line(tmp_path, args, env, fragments):
    r = kafscale("serve", "--data-dir", str(tmp_path), *args, env=env, timeout=20)
    one_line_error(r, 2, "kafscale: ", *fragments)


def test_serve_names_the_port_in_use(stack, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = kafscale("serve", "--etcd-endpoints", stack.etcd_endpoints, "--s3-endpoint", stack.s3_endpoint,
                     "--s3-access-key", stack.access_key, "--s3-secret-key", stack.secret_key,
                     "--broker-port", str(port), "--metrics-port", "0", "--etcd-prefix", f"/cli-{uuid.uuid4().hex}",
                     timeout=30)
    one_line_error(r, 2, f"kafscale: --broker-port (KAFSCALE_BROKER_PORT): cannot listen on 127.0.0.1:{port}",
                   "in use")


def test_the_cli_over_sasl_ssl_and_mtls(broker_factory, tmp_path):
    """--tls-ca-file (SASL_SSL, with SASL) and --tls-cert-file/--tls-key-file (mTLS)."""
    from support.certs import Pki
    from support.procs import free_port

    ca = Pki(tmp_path / "pki")
    server = ca.issue("server", "kafscale-cli-test", server=True)
    client = ca.issue("client", "ops", org="acme")
    password_file = tmp_path / "pw"
    password_file.write_text("admin-pw\n")
    b = broker_factory(options={
        "listeners": f"SASL_SSL://127.0.0.1:{free_port()},SSL://127.0.0.1:{free_port()}",
        "tls_cert_file": server.cert, "tls_key_file": server.key, "tls_ca_file": ca.ca_file,
        "tls_client_auth": "requested", "sasl_admin_user": "admin", "sasl_admin_password": "admin-pw",
        "super_users": "User:admin"})
    sasl = ["--tls-ca-file", str(ca.ca_file), "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "admin",
            "--sasl-password-file", str(password_file)]
    topic = _name("tls")
    ok("topics", "create", topic, "-p", "2", *sasl, bootstrap=b.listener_bootstrap("SASL_SSL"))
    users = as_json("users", "list", *sasl, bootstrap=b.listener_bootstrap("SASL_SSL"))
    assert "admin" in json.dumps(users)
    mtls = ["--tls-ca-file", str(ca.ca_file), "--tls-cert-file", str(client.cert), "--tls-key-file", str(client.key)]
    listed = as_json("topics", "list", *mtls, bootstrap=b.listener_bootstrap("SSL"))
    assert topic in json.dumps(listed)
    # Without the CA the server's certificate is not trusted: one line, exit 1.
    one_line_error(kafscale("topics", "list", "--tls", bootstrap=b.listener_bootstrap("SSL")), 1, "TLS", "failed")
    # Plaintext to a TLS port: refused, not hung.
    r = kafscale("topics", "list", "--connect-timeout", "3", bootstrap=b.listener_bootstrap("SSL"), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
