"""The pending buffer, the backpressure count and the idempotent-producer table, alone."""

from __future__ import annotations

import curio
import pytest

from kafscale.errors import ErrorCode, KafkaError
from kafscale.server.runtime import CurioRuntime
from kafscale.storage.pending import Append, Backpressure, PendingAppends
from kafscale.storage.producers import MAX_PRODUCERS, PRODUCER_BATCHES, ProducerTable


def test_pending_takes_oldest_first_within_a_limit():
    p = PendingAppends()
    assert not p
    for i, size in enumerate((100, 200, 300)):
        p.add(bytearray(size), Append(None, i, i + 1, None), max_ts=10 * i, now=float(i))
    assert p.bytes == 600 and p.since == 0.0
    chunks, appends, size, max_ts = p.take(350, at_least_one=True, now=5.0)
    assert [len(c) for c in chunks] == [100, 200] and size == 300 and max_ts == 20
    assert [a.base for a in appends] == [0, 1]
    assert p.bytes == 300 and p.since == 5.0  # what is left counts from the take
    # the first append goes whatever its size, when asked
    assert p.take(10, at_least_one=False, now=6.0)[2] == 0
    assert p.take(10, at_least_one=True, now=6.0)[2] == 300
    assert not p and p.max_ts == -1
    p.add(bytearray(7), Append(None, 3, 5, None), max_ts=1, now=7.0)
    appends, size = p.drain()
    assert [a.count for a in appends] == [2] and size == 7 and not p and p.bytes == 0


def test_backpressure_waits_for_room_then_times_out_retriably():
    async def main():
        bp = Backpressure(CurioRuntime(), limit=100)
        assert await bp.wait_for_room(500, 1.0) is False  # nothing held: always fits
        bp.hold(80)
        assert await bp.wait_for_room(20, 1.0) is False

        async def release_later():
            await curio.sleep(0.05)
            await bp.release(80)

        t = await curio.spawn(release_later)
        assert await bp.wait_for_room(50, 5.0) is True
        await t.join()
        assert bp.held == 0
        bp.hold(90)
        with pytest.raises(KafkaError) as err:
            await bp.wait_for_room(50, 0.05)
        assert err.value.code == ErrorCode.REQUEST_TIMED_OUT

    curio.run(main)


def test_producer_table_duplicates_gaps_and_epochs():
    t = ProducerTable()
    assert t.check((7, 0, 0), 5) is None  # unknown producers start anywhere
    t.remember((7, 0, 0), 5, 100)
    t.remember((7, 0, 5), 3, 105)
    assert t.check((7, 0, 0), 5) == 100  # a retry gets its offset
    assert t.check((7, 0, 5), 3) == 105
    assert t.check((7, 0, 8), 1) is None  # next in sequence
    for seq, code in (((7, 0, 9), ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
                      ((7, 1, 3), ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),  # new epoch must start at 0
                      ((7, -1, 8), ErrorCode.INVALID_PRODUCER_EPOCH)):
        with pytest.raises(KafkaError) as err:
            t.check(seq, 1)
        assert err.value.code == code
    with pytest.raises(KafkaError) as err:
        t.check((7, 0, 9), 1, after_takeover=True)  # a gap right after a takeover: retriable
    assert err.value.code == ErrorCode.REQUEST_TIMED_OUT
    assert t.check((7, 1, 0), 1) is None
    # the newest PRODUCER_BATCHES batches are kept; sequences wrap at 2^31
    for i in range(PRODUCER_BATCHES + 2):
        t.remember((8, 0, i), 1, 200 + i)
    assert [b[0] for b in t.table["8"][1]] == list(range(2, PRODUCER_BATCHES + 2))
    t.remember((9, 0, 0x7FFFFFFF), 2, 300)
    assert t.check((9, 0, 1), 1) is None


def test_producer_table_forgets_the_least_recent_writer_and_commits_copies():
    committed = {"1": [0, [[0, 0, 5]]]}
    table = ProducerTable.committed_with(committed, [((2, 0, 0), 1, 6, 1234)])
    assert set(table) == {"1", "2"} and committed == {"1": [0, [[0, 0, 5]]]}  # not changed
    # (producer id, epoch, last sequence, last timestamp); a table from before timestamps: -1
    assert ProducerTable(table).describe() == [(1, 0, 0, -1), (2, 0, 0, 1234)]
    assert ProducerTable(table).check((1, 0, 0), 1) == 5  # old three-element batches still match
    t = ProducerTable()
    for pid in range(MAX_PRODUCERS + 1):
        t.remember((pid, 0, 0), 1, pid)
    assert len(t.table) == MAX_PRODUCERS and "0" not in t.table
