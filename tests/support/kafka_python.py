"""kafka-python's own integration suite, pointed at a Kafscale broker.

kafka-python ships its integration tests in its source package (not the wheel). They
take an already running broker from ``KAFKA_URI`` (its Kafka version from
``KAFKA_VERSION``), want ``KAFKA_ROOT`` to name any existing directory, and import two
helper modules the source package leaves out: ``test/service.py`` (the process wrappers
its fixtures use to spawn Kafka; with an external broker only ``ExternalService`` is
touched) and ``test/mock_broker.py`` (an in-process fake broker for its unit tests).
This module fetches the source package of the installed kafka-python version (cached),
writes small stand-ins for those two, runs pytest on ``test/integration`` in a child
process against a given bootstrap address, and summarizes the JUnit report.

Used by ``integration/kafka_python_suite.py`` (the runner anyone can re-run) and by
``tests/integration/test_kafka_python_suite.py`` (the admin subset, in CI).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

CACHE_DIR = pathlib.Path(os.environ.get("KAFSCALE_SUITE_CACHE", pathlib.Path.home() / ".cache" / "kafscale"))
# Broker options the suite's tests assume of the Kafka its fixture would start (its
# servers/resources kafka.properties and _acl_config()): topics it auto-creates have 4
# partitions, groups rebalance at once (group.initial.rebalance.delay.ms=0: its tests
# wait for groups to settle), consumers may ask for 3 s sessions (test_group does;
# Kafka's minimum is 6 s), and ACLs are enforced with allow.everyone.if.no.acl.found.
BROKER_OPTIONS = {"default_partitions": 4, "group_initial_rebalance_delay_ms": 0,
                  "group_min_session_timeout_ms": 1000, "authorizer": "acls",
                  "allow_everyone_if_no_acl_found": True}

SERVICE_STANDIN = '''"""Stand-in for kafka-python's test/service.py (not in its source package).

Kafscale's runner always passes KAFKA_URI, so the fixtures only wrap an external broker.
"""


class ExternalService:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def open(self):
        pass

    def close(self):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("Kafscale's runner does not spawn Kafka or ZooKeeper: set KAFKA_URI")
'''

MOCK_BROKER_STANDIN = '''"""Stand-in for kafka-python's test/mock_broker.py (not in its source package).

Only its unit tests use the mock broker; Kafscale's runner runs test/integration.
"""
import pytest

pytest.skip("kafka-python's mock broker is not in its source package", allow_module_level=True)
'''


@dataclass
class Outcome:
    name: str  # file::test[params]
    status: str  # passed, failed, error, skipped
    message: str = ""


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    returncode: int = 0
    seconds: float = 0.0
    log_path: pathlib.Path | None = None
    kafka_version: str = ""

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def not_passed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "passed"]

    def text(self) -> str:
        lines = [f"kafka-python integration suite (KAFKA_VERSION={self.kafka_version}): "
                 f"{self.count('passed')} passed, {self.count('failed')} failed, {self.count('error')} errors, "
                 f"{self.count('skipped')} skipped in {self.seconds:.0f} s"]
        for o in self.not_passed():
            reason = " ".join(o.message.split())[:200]
            lines.append(f"  {o.status.upper():7} {o.name}: {reason}")
        if self.log_path is not None:
            lines.append(f"pytest output: {self.log_path}")
        return "\n".join(lines)


def installed_version() -> str:
    return importlib.metadata.version("kafka-python")


def fetch_sdist(version: str | None = None, cache: pathlib.Path = CACHE_DIR) -> pathlib.Path:
    """The unpacked kafka-python source package (downloaded once), with the stand-ins."""
    version = version or installed_version()
    root = cache / "kafka-python"
    tree = root / f"kafka_python-{version}"
    if not (tree / "test" / "integration").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = root / f"kafka_python-{version}.tar.gz"
        if not archive.exists():
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                                "--no-deps", f"kafka-python=={version}", "-d", tmp], check=True)
                (got,) = pathlib.Path(tmp).glob("kafka_python-*.tar.gz")
                shutil.move(str(got), archive)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    write_standins(tree)
    return tree


def write_standins(tree: pathlib.Path) -> None:
    test = tree / "test"
    for name, text in (("service.py", SERVICE_STANDIN), ("mock_broker.py", MOCK_BROKER_STANDIN),
                       ("__init__.py", "")):  # a package, or Python's own `test` wins
        path = test / name
        if not path.exists():
            path.write_text(text)


def timeout_plugin(cache: pathlib.Path = CACHE_DIR) -> pathlib.Path | None:
    """Where pytest-timeout (the suite's pyproject asks for it) is: None when this
    environment has it, else a directory of its own (put on PYTHONPATH), so nothing is
    added to the project's environment."""
    if importlib.util.find_spec("pytest_timeout") is not None:
        return None
    target = cache / "pytest-timeout"
    if not (target / "pytest_timeout.py").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        str(target), "pytest-timeout"], check=True)
    return target


def broker_version(bootstrap: str) -> str:
    """The Kafka version kafka-python takes the broker for, from its ApiVersions answer.

    The suite picks each test's expectations (and skips) by KAFKA_VERSION, so it is told
    what the broker says it is, not a version the broker does not claim to be."""
    from kafka.net.compat import KafkaNetClient

    client = KafkaNetClient(bootstrap_servers=bootstrap, client_id="kafscale-version-probe")
    try:
        version = client.check_version()
    finally:
        client.close()
    return ".".join(str(n) for n in (tuple(version) + (0, 0, 0))[:3])


def run_suite(bootstrap: str, selection: list[str] | None = None, *, keyword: str | None = None,
              workdir: pathlib.Path, test_timeout: int = 120, total_timeout: float = 1800,
              kafka_version: str | None = None) -> Summary:
    """Run kafka-python's integration tests (``selection``: paths under its test/integration,
    default all of it) against ``bootstrap``; the pytest output goes to workdir/pytest.log.
    ``kafka_version``: what the suite is told the broker is (default: what it infers)."""
    import time

    tree = fetch_sdist()
    workdir.mkdir(parents=True, exist_ok=True)
    junit = workdir / "junit.xml"
    log_path = workdir / "pytest.log"
    kafka_root = workdir / "kafka-root"
    kafka_root.mkdir(exist_ok=True)
    env = dict(os.environ)
    kafka_version = kafka_version or broker_version(bootstrap)
    env.update(KAFKA_URI=f"PLAINTEXT://{bootstrap}", KAFKA_VERSION=kafka_version, KAFKA_ROOT=str(kafka_root),
               PYTHONPATH=os.pathsep.join(str(p) for p in (tree, timeout_plugin()) if p is not None))
    env.pop("PYTEST_ADDOPTS", None)
    targets = [f"test/integration/{s}" for s in selection] if selection else ["test/integration"]
    argv = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider",
            "-o", f"addopts=--timeout={test_timeout} --timeout-method=thread", "-o", "log_level=INFO",
            "-rA", "-q", f"--junitxml={junit}"]
    if keyword:
        argv += ["-k", keyword]
    started = time.monotonic()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(argv, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=total_timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
    summary = parse_junit(junit) if junit.exists() else Summary()
    summary.returncode = code
    summary.seconds = time.monotonic() - started
    summary.log_path = log_path
    summary.kafka_version = kafka_version
    return summary


def parse_junit(path: pathlib.Path) -> Summary:
    out = Summary()
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        name = f"{classname.rsplit('.', 1)[-1]}::{case.get('name')}"
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status = {"failure": "failed"}.get(tag, tag)
                message = node.get("message") or (node.text or "")
                break
        out.outcomes.append(Outcome(name, status, message))
    return out
