"""--log-format json against a real broker: every line it writes (standard output and
standard error both go to its log file) is one JSON object with time, level, logger and
message, and the context fields appear where the broker knows them."""

from __future__ import annotations

import datetime
import re
import struct
import time
import uuid

import orjson

from tests.integration.test_clients import confluent_consume, confluent_produce, create_topic
from tests.integration.clientdata import messages as make_messages
from tests.support.rawclient import RawClient

# The line tests/support/procs.py writes before each start (preceded by an empty line):
# "\n==== start #N at HH:MM:SS: argv\n".
HARNESS_LINE = re.compile(r"==== start #\d+ at \d\d:\d\d:\d\d: .*")
REQUIRED = ("time", "level", "logger", "message")


def _broker_lines(text: str) -> list[str]:
    """The log file's lines without exactly what the harness wrote: its start lines and
    the empty line it puts before each."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline
    out = []
    for i, line in enumerate(lines):
        if HARNESS_LINE.fullmatch(line):
            continue
        if line == "" and i + 1 < len(lines) and HARNESS_LINE.fullmatch(lines[i + 1]):
            continue
        out.append(line)
    return out


def _group_consume(bootstrap: str, topic: str, group: str, n: int, timeout: float = 60) -> int:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.monotonic() + timeout
    try:
        while got < n and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got += 1
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_every_line_a_broker_writes_is_json(broker_factory):
    broker = broker_factory(options={"log_format": "json"})
    suffix = uuid.uuid4().hex[:6]
    topic, group = f"jsonlogs-{suffix}", f"jsonlogs-g-{suffix}"
    create_topic(broker.bootstrap, topic, partitions=2)
    msgs = make_messages(40, partitions=2, tag="json")
    confluent_produce(broker.bootstrap, topic, msgs, "lz4")
    got, _ = confluent_consume(broker.bootstrap, topic, 40, partitions=2, timeout=30)
    assert sum(len(v) for v in got.values()) == 40
    assert _group_consume(broker.bootstrap, topic, group, 40) == 40
    # A bad request: Produce at a version nobody serves; the broker closes the connection.
    with RawClient(broker.bootstrap) as raw:
        header = struct.pack(">hhi", 0, 99, 7) + struct.pack(">h", 4) + b"test"
        raw.send_raw(struct.pack(">i", len(header)) + header)
        assert raw.is_closed()
    assert broker.terminate() == 0

    text = broker.log_path.read_text(encoding="utf-8")
    lines = _broker_lines(text)
    assert len(lines) > 5, text
    records = []
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"not a JSON line in {broker.log_path}: {line!r}") from None
        assert isinstance(record, dict), line
        missing = [k for k in REQUIRED if k not in record]
        assert not missing, f"{missing} missing from {line!r}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), line
        datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        assert record["broker_id"] == broker.broker_id, line
        records.append(record)

    def having(**fields):
        return [r for r in records if all(r.get(k) == v for k, v in fields.items())]

    (ready,) = having(logger="kafscale.cli")
    assert ready["bootstrap"] == broker.bootstrap and "broker ready" in ready["message"]
    assert having(topic=topic), "no line with the topic as a field (creation, ownership)"
    assert {r["partition"] for r in having(topic=topic) if "partition" in r} == {0, 1}
    assert any("created topic" in r["message"] for r in having(topic=topic))
    rebalances = having(group=group)
    assert any("rebalance" in r["message"] for r in rebalances), rebalances
    closes = [r for r in records if "unsupported API Produce version 99" in r["message"]]
    assert closes and all(re.fullmatch(r"127\.0\.0\.1:\d+", r["peer"]) for r in closes), closes
    assert any(r["message"] == "stopped" for r in records)
