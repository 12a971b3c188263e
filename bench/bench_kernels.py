"""Throughput of the record-batch kernels, compiled vs pure Python.

    .venv/bin/python bench/bench_kernels.py [--mb 16] [--records-per-batch 16]

Builds ~16 MB of uncompressed v2 batches of 1 KiB records and prints MB/s for crc32c,
walk_batches (CRC + record walk) and rewrite_base_offsets; then the whole check a
produced batch gets (``validate_produced``: walk, decompress, record walk) per codec, on
one batch of 256 x 1 KiB records (what a producer with linger sends per partition),
beside decompression alone. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kafscale._fast import _pure  # noqa: E402
from kafscale._fast import codecs  # noqa: E402
from kafscale.protocol.records import BATCH_HEADER_SIZE, build_batch, validate_produced  # noqa: E402

try:
    from kafscale._fast import _kernels
except ImportError:
    _kernels = None


def make_blob(total_mb: float, per_batch: int) -> bytes:
    value = os.urandom(1024)
    batch = build_batch([(b"key-%05d" % i, value, [("h", b"1")], 1_700_000_000_000 + i)
                         for i in range(per_batch)])
    n = max(1, int(total_mb * 1024 * 1024) // len(batch))
    return batch * n


def rate(fn, nbytes: int, min_time: float) -> float:
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return nbytes * runs / elapsed / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--records-per-batch", type=int, default=16)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    blob = make_blob(args.mb, args.records_per_batch)
    work = bytearray(blob)
    for _, k in [("python", _pure)] + ([("cython", _kernels)] if _kernels else []):
        assert k.walk_batches(blob)[0] == 0
    print(f"{len(blob) / 1e6:.1f} MB, {len(blob) // (12 + int.from_bytes(blob[8:12], 'big'))} batches "
          f"of {args.records_per_batch} x 1 KiB records")
    impls = [("cython", _kernels), ("python", _pure)] if _kernels else [("python", _pure)]
    print(f"{'kernel':<22}" + "".join(f"{name:>14}" for name, _ in impls) + "   (MB/s)")
    for label, call in [
        ("crc32c", lambda k: k.crc32c(blob)),
        ("walk_batches", lambda k: k.walk_batches(blob)),
        ("rewrite_base_offsets", lambda k: k.rewrite_base_offsets(work, 0)),
    ]:
        row = []
        for _, k in impls:
            row.append(rate(lambda: call(k), len(blob), args.min_time))
        print(f"{label:<22}" + "".join(f"{r:>14.1f}" for r in row))
    if _kernels:
        print(f"{'crc32c (tables only)':<22}{rate(lambda: _kernels.crc32c_table(blob), len(blob), args.min_time):>14.1f}"
              f"   (the CPU-independent path; crc32c above uses {_kernels.crc32c_implementation()})")
    print("(rewrite_base_offsets touches only the 61-byte headers, hence the large figures)")
    validate_figures(args.min_time)


def validate_figures(min_time: float) -> None:
    """validate_produced per codec, in MB/s of records (uncompressed) and us per batch."""
    values = [os.urandom(512) * 2 for _ in range(64)]  # 1 KiB, compressible 2:1
    recs = [(b"key-%05d" % i, values[i % 64], [], 1_700_000_000_000 + i) for i in range(256)]
    raw = len(build_batch(recs))
    print(f"\nvalidate_produced, one batch of 256 x 1 KiB records ({raw / 1e3:.0f} kB uncompressed), "
          "compiled kernels:")
    print(f"{'codec':<10}{'batch kB':>10}{'MB/s':>10}{'us/batch':>10}{'decompress alone us':>22}")
    for codec in (0, 1, 2, 3, 4):
        batch = build_batch(recs, compression=codec)
        mbs = rate(lambda: validate_produced(batch), raw, min_time)
        payload = memoryview(batch)[BATCH_HEADER_SIZE:]
        alone = "-"
        if codec:
            alone = f"{raw / rate(lambda: codecs.decompress(codec, payload), raw, min_time):.0f}"
        print(f"{codecs.CODEC_NAMES[codec]:<10}{len(batch) / 1e3:>10.0f}{mbs:>10.0f}{raw / mbs:>10.0f}{alone:>22}")


if __name__ == "__main__":
    main()
