"""Partition and coordinator placement, and epoch end offsets: pure functions."""

from collections import Counter
from types import SimpleNamespace

from kafscale.broker.handlers.offset_for_leader_epoch import end_of_epoch
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


def seg(base, epoch):
    return SimpleNamespace(base=base, epoch=epoch)


def test_end_of_epoch():
    segs = [seg(0, 1), seg(10, 1), seg(20, 3), seg(30, 4)]
    assert end_of_epoch(segs, 5, 40, 5) == (5, 40)  # the current epoch ends at the high watermark
    assert end_of_epoch(segs, 5, 40, 1) == (1, 20)
    assert end_of_epoch(segs, 5, 40, 2) == (1, 20)  # epoch 2 wrote nothing: floor is 1
    assert end_of_epoch(segs, 5, 40, 3) == (3, 30)
    assert end_of_epoch(segs, 5, 40, 4) == (4, 40)  # nothing after epoch 4 yet
    assert end_of_epoch(segs, 5, 40, 0) == (-1, -1)
    assert end_of_epoch(segs, 5, 40, 6) == (-1, -1)
    assert end_of_epoch([], 2, 0, 1) == (1, 0)
