"""A partition's leader-epoch history, answered as Kafka's leader epoch cache answers.

Kafka keeps, per partition, the list of ``(epoch, start offset)`` at which each leader
epoch began to write (``leader-epoch-checkpoint``); consumers (KIP-320) ask where the
epoch of the last batch they fetched ended, to detect a truncated log after a leader
change. Kafscale keeps the same list in the partition's committed state in etcd
(``PartitionState.epochs``): the first flush a new owner commits adds
``[its epoch, its first offset]``. The current owner's epoch is in the list only once
it has written; until then it begins at the high watermark, which is what Kafka's
cache holds right after a leader election (``assign(epoch, logEndOffset)``).

Every stored record batch carries, in ``partitionLeaderEpoch``, the epoch of the owner
that appended it (stamped on append, as Kafka's leader does). Batches written before
that was done carry whatever the producer put there (0 or -1). Since the list only
holds epochs that stamped their batches, such an old epoch is "older than every
recorded epoch" and is answered with the start of the first recorded one, which lies
after every old batch: a consumer never sees a truncation that did not happen.

This module is pure: lists in, answers out.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["UNDEFINED_EPOCH", "UNDEFINED_OFFSET", "with_epoch", "trimmed", "effective", "end_offset_for"]

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1

Entry = tuple[int, int]  # (epoch, start offset)


def with_epoch(epochs: Sequence[Sequence[int]], epoch: int, start: int) -> list[list[int]]:
    """``epochs`` with ``epoch`` beginning at ``start`` (Kafka's ``assign``): entries of
    the same or a later epoch, or starting at or after ``start``, give way to it."""
    if epochs and epochs[-1][0] == epoch:
        return [list(e) for e in epochs]
    kept = [[e, s] for e, s in epochs if e < epoch and s < start]
    kept.append([epoch, start])
    return kept


def trimmed(epochs: Sequence[Sequence[int]], log_start: int) -> list[list[int]]:
    """``epochs`` without the entries that end at or below ``log_start`` (the last entry
    that begins at or below it is kept): the history stays as long as the retained log."""
    keep = 0
    for i, (_e, start) in enumerate(epochs):
        if start <= log_start:
            keep = i
    return [list(e) for e in epochs[keep:]]


def effective(epochs: Sequence[Sequence[int]], current_epoch: int, log_end: int,
              log_start: int) -> list[Entry]:
    """What Kafka's cache would hold: the recorded entries, the current epoch if it has
    not written yet (from ``log_end``), and the entries at or below ``log_start`` folded
    into one that begins at ``log_start`` (Kafka's ``truncateFromStart``)."""
    entries: list[Entry] = [(int(e), int(s)) for e, s in epochs]
    if current_epoch >= 0 and (not entries or entries[-1][0] < current_epoch):
        entries = [(e, s) for e, s in entries if s < log_end]
        entries.append((current_epoch, log_end))
    below = [x for x in entries if x[1] <= log_start]
    if below:
        entries = [(below[-1][0], log_start)] + [x for x in entries if x[1] > log_start]
    return entries


def end_offset_for(entries: Sequence[Entry], requested: int, log_end: int) -> Entry:
    """(epoch, end offset) for a requested epoch, exactly as Kafka's
    ``LeaderEpochFileCache.endOffsetFor``; (-1, -1) when there is no answer.

    - undefined (-1): no answer;
    - the latest epoch: the log end (the high watermark here: nothing else is served);
    - older than every entry: the requested epoch, ending where the first entry begins;
    - between entries: the greatest epoch <= the requested one, ending where the first
      greater epoch begins;
    - newer than the latest: no answer.
    """
    if requested == UNDEFINED_EPOCH or not entries:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    if entries[-1][0] == requested:
        return requested, log_end
    higher = next((x for x in entries if x[0] > requested), None)
    if higher is None:
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET
    floor = None
    for x in entries:
        if x[0] > requested:
            break
        floor = x
    if floor is None:
        return requested, higher[1]
    return floor[0], higher[1]
