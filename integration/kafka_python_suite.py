"""Run kafka-python's own integration tests against a Kafscale broker.

    .venv/bin/python integration/kafka_python_suite.py                 # admin, consumer, producer, sasl
    .venv/bin/python integration/kafka_python_suite.py admin consumer  # some files of it
    .venv/bin/python integration/kafka_python_suite.py -k describe_configs
    .venv/bin/python integration/kafka_python_suite.py --bootstrap 127.0.0.1:9092  # a running broker

Without ``--bootstrap`` it starts what the project's integration tests start: a local etcd
and S3 server (kafscale.localstack) and one ``kafscale serve`` (tests/support/procs.py)
with the options kafka-python's own Kafka fixture would set (see
tests/support/kafka_python.py), and stops them afterwards. kafka-python's source package
is downloaded once into ~/.cache/kafscale (``KAFSCALE_SUITE_CACHE`` moves it). Prints a
summary: counts, and every test that did not pass with its reason; exits 1 if any test
failed. What is expected to fail and why: docs/architecture.md, "kafka-python's
integration suite".
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.kafka_python import BROKER_OPTIONS, Summary, run_suite  # noqa: E402
from support.procs import BrokerFactory  # noqa: E402

from kafscale.localstack import LocalStack  # noqa: E402

FILES = {"admin": "test_admin_integration.py", "consumer": "test_consumer_integration.py",
         "producer": "test_producer_integration.py", "sasl": "test_sasl_integration.py",
         "ssl": "test_ssl_integration.py"}
# The SSL tests start a Kafka of their own with an SSL listener (they ignore KAFKA_URI);
# Kafscale has no TLS listener, so they run only when asked for.
DEFAULT = ["admin", "consumer", "producer", "sasl"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", metavar="FILE",
                    help=f"which of its test files: {', '.join(FILES)} (default: {', '.join(DEFAULT)})")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression")
    ap.add_argument("--bootstrap", help="use this running broker instead of starting one")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra broker option, e.g. group_min_session_timeout_ms=1000")
    ap.add_argument("--kafka-version", help="KAFKA_VERSION for the suite (default: what kafka-python "
                    "infers from the broker's ApiVersions)")
    ap.add_argument("--workdir", type=pathlib.Path, help="keep logs and the JUnit report here")
    ap.add_argument("--test-timeout", type=int, default=120, help="seconds one test may take")
    args = ap.parse_args(argv)
    unknown = set(args.files) - set(FILES)
    if unknown:
        ap.error(f"unknown test files {sorted(unknown)}; choose from {', '.join(FILES)}")
    selection = [FILES[f] for f in args.files or DEFAULT]
    options = dict(BROKER_OPTIONS)
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = value
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="kafka-python-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def run(bootstrap: str) -> Summary:
        return run_suite(bootstrap, selection, keyword=args.keyword, workdir=workdir,
                         test_timeout=args.test_timeout, kafka_version=args.kafka_version)

    if args.bootstrap:
        summary = run(args.bootstrap)
    else:
        stack = LocalStack(workdir / "stack")
        stack.start()
        factory = BrokerFactory(stack, workdir / "brokers")
        try:
            broker = factory(options=options)
            print(f"broker {broker.bootstrap} (log: {broker.log_path}); running kafka-python's tests ...",
                  flush=True)
            summary = run(broker.bootstrap)
        finally:
            factory.close()
            stack.stop()
    print(summary.text())
    return 1 if summary.count("failed") or summary.count("error") or summary.returncode not in (0, 1, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
