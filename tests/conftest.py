"""Shared fixtures: a real etcd + S3 server for the session, and broker subprocesses.

    def test_something(broker):                 # one started broker
        Producer({"bootstrap.servers": broker.bootstrap})

    def test_cluster(broker_factory):            # several, with options
        a = broker_factory(options={"segment_bytes": 4096, "flush_interval_ms": 10})
        b = broker_factory()                     # same etcd prefix + S3 namespace as a
        b.kill(); b.restart()

Every test's brokers share an etcd prefix and S3 namespace no other test uses. When a
test fails, the tail of each of its brokers' logs is attached to the report.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from support.procs import BrokerFactory, BrokerProcess, free_port  # noqa: E402

from kafscale.localstack import LocalStack  # noqa: E402

__all__ = ["BrokerProcess", "free_port"]  # importable helpers: support.procs has the rest

_FACTORIES = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One LocalStack (etcd + SeaweedFS S3) for the whole session."""
    s = LocalStack(tmp_path_factory.mktemp("stack"))  # logs in <dir>/logs
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def broker_factory(stack, tmp_path, request):
    """Call it to get started brokers: ``broker_factory(broker_id=None, start=True,
    wait_ready=True, timeout=30, options={...}, extra_args=[...], env={...})``."""
    factory = BrokerFactory(stack, tmp_path / "brokers")
    request.node.stash.setdefault(_FACTORIES, []).append(factory)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    """One started broker with default options."""
    return broker_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each of the test's broker logs to the report."""
    report = yield
    if report.failed:
        for factory in item.stash.get(_FACTORIES, []):
            for title, text in factory.log_tails():
                report.sections.append((f"{title} [{report.when}]", text or "(empty)"))
    return report


def pytest_collection_modifyitems(config, items):
    """Tests under tests/integration and tests/chart start real servers: mark them
    ``integration`` (``-m "not integration"`` runs the unit tests alone)."""
    for item in items:
        parts = pathlib.Path(str(item.fspath)).relative_to(TESTS_DIR).parts
        if parts and parts[0] in ("integration", "chart"):
            item.add_marker(pytest.mark.integration)
