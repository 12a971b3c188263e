"""The web console and its JSON API against a real broker (real etcd, real S3 server),
with data from real clients: a topic produced to, and a consumer group whose member
committed offsets short of the end, so it has a known lag. The console page is also
loaded in a real browser (Debian's headless chromium), which must show the topic and
the group with its lag; its screenshot is kept under test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import pathlib
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from support.procs import wait_for
from tests.integration.test_clients import create_topic

OPTIONS = {"group_initial_rebalance_delay_ms": 0}
TOPIC = "console.orders_v1-eu"
GROUP = "billing"
WEIRD_GROUP = "<b>x</b>&\"'é/../ops"  # group ids are any string: the console must escape it
PER_PARTITION = {0: 10, 1: 10, 2: 10}
COMMITTED = {0: 4, 1: 7, 2: 10}  # lag 6, 3, 0
LAG = sum(PER_PARTITION[p] - COMMITTED[p] for p in PER_PARTITION)
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"


def get(port: int, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def api(port: int, path: str, **kwargs) -> dict:
    status, headers, body = get(port, path, **kwargs)
    assert status == 200, (path, status, body)
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def produce(bootstrap: str) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition, n in PER_PARTITION.items():
        for i in range(n):
            p.produce(TOPIC, value=b"x" * 100, key=f"k{i}".encode(), partition=partition)
    assert p.flush(30) == 0


@pytest.fixture
def cluster_with_lag(broker_factory):
    """A broker, TOPIC with 30 records, GROUP with a live member that committed
    COMMITTED, and WEIRD_GROUP with one committed offset (no members)."""
    from confluent_kafka import Consumer, TopicPartition

    broker = broker_factory(options=OPTIONS)
    create_topic(broker.bootstrap, TOPIC, partitions=3, config={"retention.ms": "86400000"})
    produce(broker.bootstrap)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
    consumer.subscribe([TOPIC])

    def got_one() -> bool:
        msg = consumer.poll(0.2)
        return msg is not None and not msg.error()

    wait_for(got_one, timeout=30, message="the consumer joined and got a record")
    consumer.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in COMMITTED.items()], asynchronous=False)
    weird = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": WEIRD_GROUP, "enable.auto.commit": False})
    weird.commit(offsets=[TopicPartition(TOPIC, 0, 5)], asynchronous=False)
    weird.close()
    try:
        yield broker
    finally:
        consumer.close()


def test_api_shows_brokers_topics_partitions_groups_lag_and_rates(cluster_with_lag):
    port = cluster_with_lag.metrics_port

    cluster = api(port, "/api/cluster")
    assert cluster["broker_id"] == 0 and cluster["ready"] is True and cluster["topics"] >= 1

    brokers = api(port, "/api/brokers")["brokers"]
    assert [(b["id"], b["host"], b["port"], b["live"], b["ready"]) for b in brokers] == \
        [(0, "127.0.0.1", cluster_with_lag.port, True, True)]
    assert brokers[0]["partitions_owned"] >= 3

    listing = api(port, "/api/topics?q=orders")
    assert listing["matched"] == 1
    (topic,) = listing["topics"]
    assert topic["name"] == TOPIC and topic["partitions"] == 3
    assert topic["high_watermark"] == 30 and topic["log_start"] == 0 and topic["size_bytes"] > 3000
    assert topic["configs"] == {"retention.ms": "86400000"}
    assert api(port, "/api/topics?q=no-such-thing")["topics"] == []
    assert len(api(port, "/api/topics?limit=1")["topics"]) == 1

    detail = api(port, f"/api/topics/{TOPIC}")
    assert [(p["partition"], p["owner"], p["log_start"], p["high_watermark"]) for p in detail["partition_list"]] \
        == [(0, 0, 0, 10), (1, 0, 0, 10), (2, 0, 0, 10)]
    assert all(p["leader_epoch"] >= 1 and p["size_bytes"] > 1000 for p in detail["partition_list"])

    groups = {g["group"]: g for g in api(port, "/api/groups")["groups"]}
    g = groups[GROUP]
    assert g["state"] == "Stable" and g["members"] == 1 and g["lag"] == LAG
    group = api(port, f"/api/groups/{GROUP}")
    assert [(o["partition"], o["committed"], o["high_watermark"], o["lag"]) for o in group["offsets"]] == \
        [(p, COMMITTED[p], PER_PARTITION[p], PER_PARTITION[p] - COMMITTED[p]) for p in (0, 1, 2)]
    (member,) = group["member_list"]
    assert member["assignment"] == {TOPIC: [0, 1, 2]}
    weird = api(port, "/api/groups/" + urllib.request.quote(WEIRD_GROUP, safe=""))
    assert weird["group"] == WEIRD_GROUP and weird["lag"] == 5

    # Rates: produce again and watch the last seconds' rates move.
    produce(cluster_with_lag.bootstrap)
    wait_for(lambda: (api(port, "/api/rates")["produce"] or {}).get("records_per_s", 0) > 0, timeout=10,
             message="a produce rate")
    rates = api(port, "/api/rates")
    assert rates["produce"]["bytes_per_s"] > 0 and rates["fetch"]["bytes_per_s"] >= 0


def test_two_brokers_each_show_the_whole_cluster(broker_factory):
    """Owners, epochs and high watermarks of partitions the other broker owns come from
    the etcd watch: either broker's console shows them all."""
    a = broker_factory(0, options=OPTIONS)
    b = broker_factory(1, options=OPTIONS)
    create_topic(a.bootstrap, TOPIC, partitions=3)
    produce(a.bootstrap)

    def settled(port: int) -> bool:
        parts = api(port, f"/api/topics/{TOPIC}")["partition_list"]
        return [p["high_watermark"] for p in parts] == [10, 10, 10] and {p["owner"] for p in parts} == {0, 1}

    for broker in (a, b):
        wait_for(lambda: settled(broker.metrics_port), timeout=20, message="both brokers' partitions seen")
        brokers = api(broker.metrics_port, "/api/brokers")["brokers"]
        assert [(x["id"], x["port"], x["live"], x["this"]) for x in brokers] == \
            [(0, a.port, True, broker is a), (1, b.port, True, broker is b)]
        assert sum(x["partitions_owned"] for x in brokers) == 3
        assert all(x["partitions_owned"] >= 1 for x in brokers)
        assert api(broker.metrics_port, f"/api/topics?q={TOPIC}")["topics"][0]["high_watermark"] == 30


def test_a_broker_that_handed_partitions_over_shows_their_new_high_watermarks(broker_factory):
    """The first broker owns every partition, then hands some over to a second one; what is
    produced to those afterwards shows in the first broker's console too (its own view of
    them was frozen at the hand-over)."""
    a = broker_factory(0, options=OPTIONS)
    create_topic(a.bootstrap, TOPIC, partitions=3)
    wait_for(lambda: {p["owner"] for p in api(a.metrics_port, f"/api/topics/{TOPIC}")["partition_list"]} == {0},
             timeout=20, message="broker 0 owns every partition")
    b = broker_factory(1, options=OPTIONS)

    def owners() -> set[int]:
        return {p["owner"] for p in api(a.metrics_port, f"/api/topics/{TOPIC}")["partition_list"]}
    wait_for(lambda: owners() == {0, 1}, timeout=30, message="some partitions handed over to broker 1")
    produce(b.bootstrap)
    want = [PER_PARTITION[p] for p in range(3)]
    for broker in (a, b):
        wait_for(lambda: [p["high_watermark"] for p in api(broker.metrics_port, f"/api/topics/{TOPIC}")[
            "partition_list"]] == want, timeout=20, message=f"broker {broker.broker_id} sees every high watermark")


def test_errors_methods_and_escaping(cluster_with_lag):
    port = cluster_with_lag.metrics_port
    assert get(port, "/api/topics/no-such-topic")[0] == 404
    status, _, body = get(port, "/api/groups/nobody")
    assert status == 404 and json.loads(body)["coordinator"] == 0
    assert get(port, "/ui/topics/no-such-topic")[0] == 404
    assert get(port, "/no/such/page")[0] == 404
    status, headers, _ = get(port, "/api/topics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert get(port, "/ui", method="DELETE")[0] == 405
    status, headers, body = get(port, "/ui", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000

    status, headers, _ = get(port, "/")  # urllib follows the redirect to /ui
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"

    for path in ("/ui", "/ui/groups", "/ui/groups/" + urllib.request.quote(WEIRD_GROUP, safe="")):
        status, _, body = get(port, path)
        page = body.decode()
        assert status == 200, path
        assert "<b>x</b>" not in page, path
        assert "&lt;b&gt;x&lt;/b&gt;&amp;&#34;&#39;é/../ops" in page, path


def test_credentials_guard_console_and_api_but_not_probes_or_metrics(broker_factory):
    broker = broker_factory(env={"KAFSCALE_HTTP_AUTH_TOKEN": "t0ken", "KAFSCALE_HTTP_BASIC_AUTH": "ops:s3cret"})
    port = broker.metrics_port
    for path in ("/ui", "/api/cluster", "/api/topics", "/"):
        status, headers, _ = get(port, path)
        assert status == 401, path
        assert "WWW-Authenticate" in headers
    status, _, _ = get(port, "/api/cluster", headers={"Authorization": "Bearer t0ken"})
    assert status == 200
    basic = "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert get(port, "/ui", headers={"Authorization": basic})[0] == 200
    assert get(port, "/ui", headers={"Authorization": "Bearer wrong"})[0] == 401
    for path in ("/healthz", "/readyz", "/metrics"):
        assert get(port, path)[0] == 200, path
    assert "t0ken" not in broker.log_text() and "s3cret" not in broker.log_text()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (scripts/install-system-deps.sh installs it)")
@pytest.mark.timeout(180)
def test_console_in_a_real_browser(cluster_with_lag, tmp_path):
    url = f"http://127.0.0.1:{cluster_with_lag.metrics_port}/ui"
    flags = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert TOPIC in page, page[:2000]
    assert GROUP in page
    # The group's row, as the browser built it: its lag is there.
    row = page[page.index(f">{GROUP}</a>"):]
    row = row[:row.index("</tr>")]
    assert f">{LAG}<" in row, row

    ARTIFACTS.mkdir(exist_ok=True)
    for name, page_url in (("console.png", url), ("console-group.png", f"{url}/groups/{GROUP}")):
        shot = tmp_path / name
        done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,900", page_url],
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
        kept = ARTIFACTS / name
        shutil.copyfile(shot, kept)
        print(f"console screenshot: {shot} (copied to {kept})")
