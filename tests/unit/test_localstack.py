"""LocalStack: a real etcd and SeaweedFS S3 as child processes, on private loopback ports."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from kafscale.localstack import LocalStack

etcd3 = pytest.importorskip("etcd3")
minio = pytest.importorskip("minio")
from minio.error import S3Error  # noqa: E402


def _etcd(stack: LocalStack):
    host, port = stack.etcd_endpoints.rsplit(":", 1)
    return etcd3.client(host=host, port=int(port), timeout=5)


def _s3(stack: LocalStack, secret_key: str | None = None):
    return minio.Minio(
        stack.s3_endpoint.removeprefix("http://"),
        access_key=stack.access_key,
        secret_key=secret_key if secret_key is not None else stack.secret_key,
        secure=False,
        region="us-east-1",
    )


def _read(client, bucket: str, key: str, **kwargs) -> bytes:
    resp = client.get_object(bucket, key, **kwargs)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # LISTEN
                    addr_hex, port_hex = local.split(":")
                    if table == "tcp":
                        addr = ".".join(str(int(addr_hex[i:i + 2], 16)) for i in (6, 4, 2, 0))
                    else:
                        addr = addr_hex
                    out.add((addr, int(port_hex, 16)))
    return out


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    """A stack of this module's own: the fault tests stop and start its servers."""
    s = LocalStack(tmp_path_factory.mktemp("localstack"))
    t0 = time.monotonic()
    s.start()
    print(f"LocalStack.start() took {time.monotonic() - t0:.2f}s: {s.start_seconds}")
    yield s
    s.stop()


def test_properties(own_stack):
    s = own_stack
    assert s.etcd_endpoints.startswith("127.0.0.1:")
    assert s.s3_endpoint.startswith("http://127.0.0.1:")
    assert (s.bucket, s.access_key, s.secret_key) == ("kafscale", "kafscale", "kafscale-secret")
    assert s.etcd_running and s.s3_running


def test_etcd_put_get(own_stack):
    client = _etcd(own_stack)
    try:
        client.put("/localstack-test/a", b"1")
        value, _ = client.get("/localstack-test/a")
        assert value == b"1"
    finally:
        client.close()


def test_s3_put_get_list_range(own_stack):
    c = _s3(own_stack)
    assert c.bucket_exists(own_stack.bucket)
    data = bytes(range(256)) * 40
    c.put_object(own_stack.bucket, "t/seg/00000000000000000000.kfs", io.BytesIO(data), len(data))
    c.put_object(own_stack.bucket, "t/seg/00000000000000000100.kfs", io.BytesIO(b"x"), 1)
    assert _read(c, own_stack.bucket, "t/seg/00000000000000000000.kfs") == data
    assert _read(c, own_stack.bucket, "t/seg/00000000000000000000.kfs", offset=1000, length=300) == data[1000:1300]
    names = [o.object_name for o in c.list_objects(own_stack.bucket, prefix="t/seg/", recursive=True)]
    assert names == ["t/seg/00000000000000000000.kfs", "t/seg/00000000000000000100.kfs"]


def test_s3_checks_signatures(own_stack):
    c = _s3(own_stack)
    c.put_object(own_stack.bucket, "signed", io.BytesIO(b"secret"), 6)
    bad = _s3(own_stack, secret_key="not-the-secret")
    with pytest.raises(S3Error) as err:
        bad.get_object(own_stack.bucket, "signed")
    assert err.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
    with pytest.raises(S3Error):
        bad.put_object(own_stack.bucket, "forged", io.BytesIO(b"x"), 1)
    anonymous = minio.Minio(own_stack.s3_endpoint.removeprefix("http://"), secure=False, region="us-east-1")
    with pytest.raises(S3Error):
        anonymous.get_object(own_stack.bucket, "signed")


def test_everything_binds_loopback_only(own_stack):
    for name, pid in own_stack.pids.items():
        listening = _listening_ports(pid)
        assert listening, f"{name} listens on nothing?"
        assert {addr for addr, _ in listening} == {"127.0.0.1"}, (name, listening)
        assert {port for _, port in listening} <= set(own_stack.ports.values()), (name, listening, own_stack.ports)


def test_stop_start_s3_keeps_objects(own_stack):
    c = _s3(own_stack)
    c.put_object(own_stack.bucket, "survives/restart", io.BytesIO(b"still here"), 10)
    port = own_stack.ports["s3"]
    own_stack.stop_s3()
    assert not own_stack.s3_running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    t0 = time.monotonic()
    own_stack.start_s3()
    print(f"start_s3 took {time.monotonic() - t0:.2f}s")
    assert own_stack.ports["s3"] == port
    assert _read(_s3(own_stack), own_stack.bucket, "survives/restart") == b"still here"


def test_stop_start_etcd_keeps_keys(own_stack):
    client = _etcd(own_stack)
    client.put("/survives/restart", b"yes")
    client.close()
    own_stack.stop_etcd()
    assert not own_stack.etcd_running
    own_stack.start_etcd()
    client = _etcd(own_stack)
    try:
        assert client.get("/survives/restart")[0] == b"yes"
    finally:
        client.close()


def test_two_stacks_at_once(own_stack, tmp_path):
    with LocalStack(tmp_path / "second", bucket="other") as second:
        assert set(second.ports.values()).isdisjoint(own_stack.ports.values())
        c1, c2 = _s3(own_stack), _s3(second)
        c2.put_object("other", "only-in-second", io.BytesIO(b"2"), 1)
        assert not c1.bucket_exists("other")
        assert [o.object_name for o in c2.list_objects("other")] == ["only-in-second"]
        e1, e2 = _etcd(own_stack), _etcd(second)
        try:
            e2.put("/which", b"second")
            assert e1.get("/which")[0] != b"second"
        finally:
            e1.close()
            e2.close()
    assert not second.etcd_running and not second.s3_running
    second.stop()  # idempotent


def test_restart_on_same_data_dir_reuses_ports_and_data(tmp_path):
    first = LocalStack(tmp_path / "d")
    with first:
        _s3(first).put_object(first.bucket, "k", io.BytesIO(b"v"), 1)
        e = _etcd(first)
        e.put("/k", b"v")
        e.close()
    again = LocalStack(tmp_path / "d")
    assert again.ports == first.ports
    with again:
        assert _read(_s3(again), again.bucket, "k") == b"v"
        e = _etcd(again)
        try:
            assert e.get("/k")[0] == b"v"
        finally:
            e.close()


def test_children_die_with_a_killed_parent(tmp_path):
    """kill -9 of the process that started the stack must not leave etcd or weed running."""
    script = textwrap.dedent(f"""
        import json, pathlib, sys, time
        from kafscale.localstack import LocalStack
        s = LocalStack(pathlib.Path({str(tmp_path / "orphan")!r}))
        s.start()
        print(json.dumps(s.pids), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line, "the parent did not start its stack"
        pids = json.loads(line)
        for pid in pids.values():
            os.kill(pid, 0)  # alive
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        for name, pid in list(alive.items()):
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ")[1].startswith("Z"):
                        alive.pop(name)  # zombie reaped by init soon
            except (ProcessLookupError, FileNotFoundError):
                alive.pop(name)
        time.sleep(0.1)
    for pid in alive.values():  # do not leave them behind even if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"still running after the parent was killed: {alive}"


def test_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    from kafscale import localstack

    monkeypatch.setenv("KAFSCALE_WEED_BIN", str(tmp_path / "no-such-weed"))
    with pytest.raises(localstack.LocalStackError, match="KAFSCALE_WEED_BIN"):
        LocalStack(tmp_path / "x")
    monkeypatch.delenv("KAFSCALE_WEED_BIN")
    monkeypatch.setattr(localstack.sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(localstack.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(localstack.LocalStackError, match="cannot find the 'etcd' binary"):
        localstack.find_binary("etcd")
