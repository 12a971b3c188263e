"""The leader-epoch history answers OffsetForLeaderEpoch as Kafka's leader epoch cache
(LeaderEpochFileCache.endOffsetFor) does, case by case."""

from types import SimpleNamespace

import pytest

from kafscale.broker.handlers.offset_for_leader_epoch import end_of_epoch
from kafscale.metadata.cluster import PartitionState
from kafscale.storage.epochs import effective, end_offset_for, trimmed, with_epoch

# epochs 1, 3 and 4 wrote (2 won the partition but wrote nothing); 5 is the owner now
HISTORY = [[1, 0], [3, 20], [4, 30]]


def answer(requested, history=HISTORY, current=5, hw=40, log_start=0):
    return end_offset_for(effective(history, current, hw, log_start), requested, hw)


def test_undefined_epoch_has_no_answer():
    assert answer(-1) == (-1, -1)


def test_the_current_epoch_ends_at_the_high_watermark():
    assert answer(5) == (5, 40)
    # also once it has written (it is then the last recorded entry)
    assert answer(5, HISTORY + [[5, 40]], hw=55) == (5, 55)


def test_a_recorded_epoch_ends_where_the_next_begins():
    assert answer(1) == (1, 20)
    assert answer(3) == (3, 30)
    assert answer(4) == (4, 40)  # the current epoch has not written: it begins at the hw


def test_an_epoch_between_recorded_ones_answers_the_floor_epoch():
    assert answer(2) == (1, 20)


def test_an_epoch_older_than_every_recorded_one_ends_where_the_first_begins():
    # Kafka: (the requested epoch, the start of the first higher epoch). The skip bug
    # answered (-1, -1) here and librdkafka jumped to the end of the log.
    assert answer(0, [[1, 0], [3, 20]]) == (0, 0)
    assert answer(0, [[2, 25637], [3, 30000]], hw=31000) == (0, 25637)


def test_batches_from_before_epochs_were_recorded_end_after_every_old_offset():
    # A partition written before epochs were stamped: its batches carry the producer's
    # epoch (0); the history is empty; the owner (epoch 7) has not written yet.
    assert answer(0, [], current=7, hw=1000) == (0, 1000)
    # ... and once it has written
    assert answer(0, [[7, 1000]], current=7, hw=1500) == (0, 1000)


def test_an_epoch_newer_than_the_current_one_has_no_answer():
    assert answer(6) == (-1, -1)
    assert answer(99, [], current=1, hw=0) == (-1, -1)


def test_a_log_start_that_moved_folds_the_older_epochs_into_it():
    # log start 25: epochs 1 (0..19) are gone, 3 now begins at 25 (truncateFromStart)
    assert effective(HISTORY, 5, 40, 25) == [(3, 25), (4, 30), (5, 40)]
    assert answer(1, log_start=25) == (1, 25)   # older than every entry left
    assert answer(3, log_start=25) == (3, 30)
    assert answer(2, log_start=25) == (2, 25)
    # log start on an entry's start offset keeps that entry as it is
    assert effective(HISTORY, 5, 40, 20) == [(3, 20), (4, 30), (5, 40)]
    # log start at the high watermark: only the current epoch is left
    assert effective(HISTORY, 5, 40, 40) == [(5, 40)]
    assert answer(4, log_start=40) == (4, 40)


def test_with_epoch_appends_once_and_drops_what_it_supersedes():
    assert with_epoch([], 1, 0) == [[1, 0]]
    assert with_epoch([[1, 0]], 1, 50) == [[1, 0]]  # same epoch: already recorded
    assert with_epoch([[1, 0]], 2, 50) == [[1, 0], [2, 50]]
    # an entry at the same start offset gives way (Kafka's assign)
    assert with_epoch([[1, 0], [2, 50]], 3, 50) == [[1, 0], [3, 50]]


def test_partition_state_keeps_the_history():
    state = PartitionState(40, 0, {}, [[1, 0], [3, 20]])
    assert PartitionState.decode(state.encode()) == state
    assert PartitionState.decode(PartitionState(5).encode()).epochs == []
    assert b"epochs" not in PartitionState(5).encode()


@pytest.mark.parametrize("requested, expected", [(0, (0, 0)), (1, (1, 20)), (2, (1, 20)), (5, (5, 40)),
                                                 (6, (-1, -1)), (-1, (-1, -1))])
def test_the_handler_answers_from_the_partition_state(requested, expected):
    plog = SimpleNamespace(state=PartitionState(40, 0, {}, [[1, 0], [3, 20]]), epoch=5, log_start=0)
    assert end_of_epoch(plog, requested) == expected


def test_the_stored_history_is_trimmed_to_the_retained_log():
    assert trimmed(HISTORY, 0) == HISTORY
    assert trimmed(HISTORY, 25) == [[3, 20], [4, 30]]  # epoch 1 ended at 19
    assert trimmed(HISTORY, 30) == [[4, 30]]
    assert trimmed([], 10) == []
    # the answers stay Kafka's: effective() folds what is left at the log start
    assert effective(trimmed(HISTORY, 25), 5, 40, 25) == effective(HISTORY, 5, 40, 25)
