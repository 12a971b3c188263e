"""Produced records are checked as Kafka's broker checks them before an append
(protocol/records.validate_produced), compressed batches included."""

from __future__ import annotations

import pytest

from kafscale.errors import ErrorCode
from kafscale.protocol.records import InvalidBatch, build_batch, validate_produced
from support import badbatches as bb


@pytest.mark.parametrize("name", sorted(bb.BAD_BATCHES))
def test_each_bad_batch_is_refused_with_kafkas_code(name):
    batch, code, compacted = bb.BAD_BATCHES[name]
    with pytest.raises(InvalidBatch) as err:
        validate_produced(batch, require_keys=compacted)
    assert err.value.code == code, str(err.value)
    assert str(err.value)  # a message that says what was wrong


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_good_batches_pass_with_their_counts(codec):
    b = bb.good_batch(5, codec)
    assert validate_produced(b, require_keys=True) == (1, 5, bb.TS + 4, len(b))
    built = build_batch([(b"k", b"v" * 100, [("h", b"x")], 1000 + i) for i in range(50)], compression=codec)
    assert validate_produced(built) == (1, 50, 1049, len(built))


def test_a_record_at_fault_is_named():
    batch, _code, _ = bb.BAD_BATCHES["null key on a compacted topic"]
    with pytest.raises(InvalidBatch) as err:
        validate_produced(batch, require_keys=True)
    assert err.value.record == 1 and "record 1" in str(err.value)
    batch, _code, _ = bb.BAD_BATCHES["zstd: offset deltas 0, 5, 9"]
    with pytest.raises(InvalidBatch) as err:
        validate_produced(batch)
    assert err.value.record == 1 and "zstd" in str(err.value)


def test_a_decompression_bomb_is_refused():
    bomb = bb.raw_batch(bb.compress(bb.ZSTD, b"\x00" * (2 << 20)), 1, attributes=bb.ZSTD)
    with pytest.raises(InvalidBatch) as err:
        validate_produced(bomb, max_size=1 << 20)
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE and "exceeds" in str(err.value)
