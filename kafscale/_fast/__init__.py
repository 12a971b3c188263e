"""Kernels over record-batch buffers, compiled (Cython) or pure Python, chosen once here.

``KAFSCALE_PURE_PYTHON=1`` forces the pure-Python twins. Otherwise the compiled module
is used; if it cannot be imported (not built), the twins are used instead and the reason
is kept in ``FALLBACK_REASON`` (the test suite fails in that case, so a missing build is
noticed rather than silently slow).
"""

from __future__ import annotations

import logging
import os

from . import codecs
from .codecs import compress, decompress

FALLBACK_REASON: str | None = None

if os.environ.get("KAFSCALE_PURE_PYTHON", "") == "1":
    from . import _pure as _impl

    IMPLEMENTATION = "python"
else:
    try:
        from . import _kernels as _impl  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError as exc:  # not built: keep working, but say why
        from . import _pure as _impl  # type: ignore[no-redef]

        IMPLEMENTATION = "python"
        FALLBACK_REASON = f"compiled kernels unavailable: {exc}"
        logging.getLogger(__name__).warning("using pure-Python kernels (%s)", FALLBACK_REASON)

OK: int = _impl.OK
TRUNCATED: int = _impl.TRUNCATED
BAD_MAGIC: int = _impl.BAD_MAGIC
BAD_CRC: int = _impl.BAD_CRC
BAD_COUNT: int = _impl.BAD_COUNT
BAD_OFFSETS: int = _impl.BAD_OFFSETS
BAD_TIMESTAMP: int = _impl.BAD_TIMESTAMP
NULL_KEY: int = _impl.NULL_KEY
BAD_CODEC: int = _impl.BAD_CODEC
CONTROL: int = _impl.CONTROL
BAD_SEQUENCE: int = _impl.BAD_SEQUENCE
CHECK_TIMESTAMPS: int = _impl.CHECK_TIMESTAMPS
REQUIRE_KEYS: int = _impl.REQUIRE_KEYS
FROM_CLIENT: int = _impl.FROM_CLIENT
BATCH_HEADER_SIZE: int = _impl.BATCH_HEADER_SIZE

crc32c = _impl.crc32c
read_varint = _impl.read_varint
read_varlong = _impl.read_varlong
read_uvarint = _impl.read_uvarint
write_varint = _impl.write_varint
write_uvarint = _impl.write_uvarint
walk_batches = _impl.walk_batches
count_records = _impl.count_records
check_records = _impl.check_records
rewrite_base_offsets = _impl.rewrite_base_offsets
scan_batches = _impl.scan_batches
find_timestamp = _impl.find_timestamp
build_index = _impl.build_index
index_floor = _impl.index_floor

__all__ = [
    "IMPLEMENTATION",
    "FALLBACK_REASON",
    "OK",
    "TRUNCATED",
    "BAD_MAGIC",
    "BAD_CRC",
    "BAD_COUNT",
    "BAD_OFFSETS",
    "BAD_TIMESTAMP",
    "NULL_KEY",
    "BAD_CODEC",
    "CONTROL",
    "BAD_SEQUENCE",
    "CHECK_TIMESTAMPS",
    "REQUIRE_KEYS",
    "FROM_CLIENT",
    "BATCH_HEADER_SIZE",
    "crc32c",
    "read_varint",
    "read_varlong",
    "read_uvarint",
    "write_varint",
    "write_uvarint",
    "walk_batches",
    "count_records",
    "check_records",
    "rewrite_base_offsets",
    "scan_batches",
    "find_timestamp",
    "build_index",
    "index_floor",
    "codecs",
    "compress",
    "decompress",
]
