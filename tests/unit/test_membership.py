"""Partition and coordinator placement: pure functions."""

from collections import Counter

from kafscale.broker.membership import assign, broker_order
from kafscale.metadata.cluster import TopicRecord


def topics(**counts):
    return {name: TopicRecord(name, "0" * 32, n) for name, n in counts.items()}


def test_assignment_is_even_and_deterministic():
    t = topics(a=12, b=7, c=1)
    brokers = [(0, None), (1, None), (2, None)]
    first = assign(t, brokers)
    assert first == assign(t, list(reversed(brokers)))
    assert len(first) == 20
    counts = Counter(first.values())
    assert max(counts.values()) - min(counts.values()) <= 2
    assert Counter(v for (name, _), v in first.items() if name == "a") == {0: 4, 1: 4, 2: 4}


def test_assignment_spreads_topics_over_different_first_brokers():
    t = topics(**{f"t{i}": 1 for i in range(30)})
    assert len(set(assign(t, [(0, None), (1, None), (2, None)]).values())) == 3


def test_racks_are_interleaved():
    order = broker_order([(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "c")])
    assert order == [0, 2, 4, 1, 3]
    owners = assign(topics(x=6), [(0, "a"), (1, "a"), (2, "b"), (3, "b")])
    racks = {0: "a", 1: "a", 2: "b", 3: "b"}
    seq = [racks[owners[("x", p)]] for p in range(6)]
    assert all(seq[i] != seq[i + 1] for i in range(5)), seq


def test_no_brokers_no_assignment():
    assert assign(topics(a=3), []) == {}

