# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels over Kafka record-batch buffers.

Every function has a twin with the same signature and behaviour in ``_pure.py``; the
batch layout is described there. The C helpers below take raw pointers and lengths and
are only called after the Python-facing wrapper has checked the bounds, which is why the
module can run with ``boundscheck(False)``. Large buffers are processed without the GIL.
"""

from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

# walk_batches / check_records statuses (same values in _pure)
cdef enum:
    _OK = 0
    _TRUNCATED = 1
    _BAD_MAGIC = 2
    _BAD_CRC = 3
    _BAD_COUNT = 4
    _BAD_OFFSETS = 5
    _BAD_TIMESTAMP = 6
    _NULL_KEY = 7
    _BAD_CODEC = 8
    _CONTROL = 9
    _BAD_SEQUENCE = 10

# check flags
cdef enum:
    _CHECK_TIMESTAMPS = 1
    _REQUIRE_KEYS = 2
    _FROM_CLIENT = 4

OK = _OK
TRUNCATED = _TRUNCATED
BAD_MAGIC = _BAD_MAGIC
BAD_CRC = _BAD_CRC
BAD_COUNT = _BAD_COUNT
BAD_OFFSETS = _BAD_OFFSETS
BAD_TIMESTAMP = _BAD_TIMESTAMP
NULL_KEY = _NULL_KEY
BAD_CODEC = _BAD_CODEC
CONTROL = _CONTROL
BAD_SEQUENCE = _BAD_SEQUENCE
CHECK_TIMESTAMPS = _CHECK_TIMESTAMPS
REQUIRE_KEYS = _REQUIRE_KEYS
FROM_CLIENT = _FROM_CLIENT

BATCH_HEADER_SIZE = 61

cdef enum:
    _HDR = 61            # v2 batch header
    _OVERHEAD = 12       # baseOffset + batchLength
    _MIN_LENGTH = 49     # smallest legal batchLength (header minus the overhead)
    _ENTRY = 12          # index entry: i64 offset + i32 position
    _NOGIL_BYTES = 65536 # release the GIL above this many bytes

cdef int64_t _INT32_MIN = -2147483648
cdef int64_t _INT32_MAX = 2147483647

# ---------------------------------------------------------------------------- CRC-32C

cdef uint32_t _T[8][256]


cdef void _init_tables() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = <uint32_t>n
        for k in range(8):
            if c & 1:
                c = (c >> 1) ^ 0x82F63B78u
            else:
                c = c >> 1
        _T[0][n] = c
    for n in range(256):
        c = _T[0][n]
        for k in range(1, 8):
            c = (c >> 8) ^ _T[0][c & 0xFF]
            _T[k][n] = c


_init_tables()


cdef inline uint32_t _le32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef extern from "crc32c_hw.h":
    uint32_t ks_crc32c_hw(uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
    int ks_crc32c_hw_available() noexcept


cdef bint _HW_CRC = ks_crc32c_hw_available() != 0


def crc32c_implementation():
    """Which CRC-32C the kernels use: "sse4.2" (the CPU's crc32 instruction) or "table"."""
    return "sse4.2" if _HW_CRC else "table"


def crc32c_table(const unsigned char[::1] buf, uint32_t crc=0):
    """CRC-32C by the slicing-by-8 tables whatever the CPU (for tests and benchmarks)."""
    if buf.shape[0] == 0:
        return crc
    return _crc_table(crc, &buf[0], buf.shape[0])


cdef inline uint32_t _crc_update(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    if _HW_CRC:
        return ks_crc32c_hw(crc, p, <size_t>n)
    return _crc_table(crc, p, n)


cdef uint32_t _crc_table(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Slicing-by-8 CRC-32C; ``crc`` is a finished value (pre/post inversion inside)."""
    cdef uint32_t c = crc ^ 0xFFFFFFFFu
    cdef uint32_t hi
    while n > 0 and (<size_t>p & 7) != 0:
        c = _T[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        n -= 1
    while n >= 8:
        c ^= _le32(p)
        hi = _le32(p + 4)
        c = (_T[7][c & 0xFF] ^ _T[6][(c >> 8) & 0xFF] ^
             _T[5][(c >> 16) & 0xFF] ^ _T[4][c >> 24] ^
             _T[3][hi & 0xFF] ^ _T[2][(hi >> 8) & 0xFF] ^
             _T[1][(hi >> 16) & 0xFF] ^ _T[0][hi >> 24])
        p += 8
        n -= 8
    while n > 0:
        c = _T[0][(c ^ p[0]) & 0xFF] ^ (c >> 8)
        p += 1
        n -= 1
    return c ^ 0xFFFFFFFFu


def crc32c(const unsigned char[::1] buf, uint32_t crc=0):
    """CRC-32C (Castagnoli) of ``buf``; ``crc`` continues a previous result."""
    cdef Py_ssize_t n = buf.shape[0]
    cdef const unsigned char* p
    if n == 0:
        return crc
    p = &buf[0]
    if n >= _NOGIL_BYTES:
        with nogil:
            crc = _crc_update(crc, p, n)
    else:
        crc = _crc_update(crc, p, n)
    return crc

# ---------------------------------------------------------------------------- big-endian

cdef inline int64_t _be64(const unsigned char* p) noexcept nogil:
    return <int64_t>(
        (<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40) |
        (<uint64_t>p[3] << 32) | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16) |
        (<uint64_t>p[6] << 8) | <uint64_t>p[7])


cdef inline uint32_t _beu32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline int32_t _be32(const unsigned char* p) noexcept nogil:
    return <int32_t>_beu32(p)


cdef inline int16_t _be16(const unsigned char* p) noexcept nogil:
    return <int16_t>((<uint32_t>p[0] << 8) | <uint32_t>p[1])


cdef inline void _put_be64(unsigned char* p, int64_t v) noexcept nogil:
    cdef uint64_t u = <uint64_t>v
    cdef int i
    for i in range(8):
        p[7 - i] = <unsigned char>(u & 0xFF)
        u >>= 8


cdef inline void _put_be32(unsigned char* p, int32_t v) noexcept nogil:
    cdef uint32_t u = <uint32_t>v
    p[0] = <unsigned char>(u >> 24)
    p[1] = <unsigned char>(u >> 16)
    p[2] = <unsigned char>(u >> 8)
    p[3] = <unsigned char>u

# ---------------------------------------------------------------------------- varints

cdef Py_ssize_t _rd(const unsigned char* p, Py_ssize_t pos, Py_ssize_t limit,
                    int max_bytes, uint64_t* out) noexcept nogil:
    """Base-128 decode of at most ``max_bytes`` (5 or 10) bytes of ``p[pos:limit]``.

    Returns the new position, -1 if truncated, -2 if over-long / too wide.
    """
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef int i
    cdef unsigned char b
    for i in range(max_bytes):
        if pos >= limit:
            return -1
        b = p[pos]
        pos += 1
        if i == max_bytes - 1:
            # the last byte may only carry the bits left of the 32/64-bit width
            if b > (0x0F if max_bytes == 5 else 0x01):
                return -2
            out[0] = result | (<uint64_t>b << shift)
            return pos
        result |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            out[0] = result
            return pos
        shift += 7
    return -2


cdef inline int64_t _unzigzag(uint64_t raw) noexcept nogil:
    return <int64_t>(raw >> 1) ^ -(<int64_t>(raw & 1))


cdef object _read(const unsigned char[::1] buf, Py_ssize_t pos, int max_bytes, bint signed):
    cdef Py_ssize_t n = buf.shape[0]
    cdef uint64_t raw = 0
    cdef Py_ssize_t new_pos
    if pos < 0:
        raise ValueError("negative position")
    if pos >= n:
        raise ValueError("truncated varint")
    new_pos = _rd(&buf[0], pos, n, max_bytes, &raw)
    if new_pos == -1:
        raise ValueError("truncated varint")
    if new_pos < 0:
        raise ValueError("varint too long")
    if signed:
        return _unzigzag(raw), new_pos
    return raw, new_pos


def read_varint(const unsigned char[::1] buf, Py_ssize_t pos):
    """Zig-zag signed varint (at most 5 bytes, int32) at ``pos`` -> (value, new_pos)."""
    return _read(buf, pos, 5, True)


def read_varlong(const unsigned char[::1] buf, Py_ssize_t pos):
    """Zig-zag signed varlong (at most 10 bytes, int64) at ``pos`` -> (value, new_pos)."""
    return _read(buf, pos, 10, True)


def read_uvarint(const unsigned char[::1] buf, Py_ssize_t pos):
    """Unsigned varint (at most 5 bytes, uint32) at ``pos`` -> (value, new_pos)."""
    return _read(buf, pos, 5, False)


cdef bytes _write_raw(uint64_t v):
    cdef unsigned char tmp[10]
    cdef int n = 0
    while v >= 0x80:
        tmp[n] = <unsigned char>((v & 0x7F) | 0x80)
        v >>= 7
        n += 1
    tmp[n] = <unsigned char>v
    return PyBytes_FromStringAndSize(<char*>tmp, n + 1)


def write_varint(int64_t n):
    """Zig-zag encode a signed int64 (a varint for int32 values, a varlong beyond)."""
    return _write_raw((<uint64_t>n << 1) ^ <uint64_t>(n >> 63))


def write_uvarint(uint32_t n):
    """Encode an unsigned 32-bit value as an unsigned varint."""
    return _write_raw(n)

# ---------------------------------------------------------------------------- batch walk

cdef struct WalkResult:
    int status
    int64_t n_batches
    int64_t n_offsets
    int64_t max_timestamp
    int64_t largest


cdef int _check_records(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, int32_t count,
                        int64_t base_ts, int64_t max_ts, int flags, int32_t* at) noexcept nogil:
    """Status of the records in ``p[pos:end]`` against their batch header: exactly
    ``count`` well-formed records (BAD_COUNT), offset deltas 0..count-1 (BAD_OFFSETS),
    with CHECK_TIMESTAMPS the largest timestamp equal to ``max_ts`` (BAD_TIMESTAMP),
    with REQUIRE_KEYS no null key (NULL_KEY). ``at[0]`` is the index of the record at
    fault (``count`` when the fault is after the last one)."""
    cdef int32_t i
    cdef int64_t j, nheaders, flen, ts, largest = 0
    cdef int field
    cdef uint64_t raw
    cdef Py_ssize_t rend
    cdef bint any_record = False
    for i in range(count):
        at[0] = i
        pos = _rd(p, pos, end, 5, &raw)
        if pos < 0:
            return _BAD_COUNT
        flen = _unzigzag(raw)
        if flen < 1 or flen > end - pos:
            return _BAD_COUNT
        rend = pos + <Py_ssize_t>flen
        pos += 1  # attributes
        pos = _rd(p, pos, rend, 10, &raw)  # timestampDelta
        if pos < 0:
            return _BAD_COUNT
        ts = base_ts + _unzigzag(raw)
        if not any_record or ts > largest:
            largest = ts
            any_record = True
        pos = _rd(p, pos, rend, 5, &raw)  # offsetDelta
        if pos < 0:
            return _BAD_COUNT
        if _unzigzag(raw) != i:
            return _BAD_OFFSETS
        for field in range(2):  # key, value
            pos = _rd(p, pos, rend, 5, &raw)
            if pos < 0:
                return _BAD_COUNT
            flen = _unzigzag(raw)
            if flen < -1 or flen > rend - pos:
                return _BAD_COUNT
            if flen > 0:
                pos += <Py_ssize_t>flen
            elif flen < 0 and field == 0 and (flags & _REQUIRE_KEYS):
                return _NULL_KEY
        pos = _rd(p, pos, rend, 5, &raw)
        if pos < 0:
            return _BAD_COUNT
        nheaders = _unzigzag(raw)
        if nheaders < 0:
            return _BAD_COUNT
        j = 0
        while j < nheaders:
            pos = _rd(p, pos, rend, 5, &raw)
            if pos < 0:
                return _BAD_COUNT
            flen = _unzigzag(raw)
            if flen < 0 or flen > rend - pos:
                return _BAD_COUNT
            pos += <Py_ssize_t>flen
            pos = _rd(p, pos, rend, 5, &raw)
            if pos < 0:
                return _BAD_COUNT
            flen = _unzigzag(raw)
            if flen < -1 or flen > rend - pos:
                return _BAD_COUNT
            if flen > 0:
                pos += <Py_ssize_t>flen
            j += 1
        if pos != rend:
            return _BAD_COUNT
    at[0] = count
    if pos != end:
        return _BAD_COUNT
    if (flags & _CHECK_TIMESTAMPS) and any_record and largest != max_ts:
        return _BAD_TIMESTAMP
    return _OK


def check_records(const unsigned char[::1] buf, int32_t count, int64_t base_timestamp,
                  int64_t max_timestamp, int flags=0):
    """Check the (decompressed) records of one batch against its header fields.

    Returns ``(status, record_index)``: OK, or BAD_COUNT (not exactly ``count``
    well-formed records), BAD_OFFSETS (offset deltas not 0..count-1), BAD_TIMESTAMP
    (with CHECK_TIMESTAMPS: the largest record timestamp is not ``max_timestamp``) or
    NULL_KEY (with REQUIRE_KEYS), and the index of the record at fault.
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef int32_t at = 0
    cdef int status
    cdef const unsigned char* p
    if count < 0:
        return _BAD_COUNT, 0
    if n == 0:
        return (_OK if count == 0 else _BAD_COUNT), 0
    p = &buf[0]
    if n >= _NOGIL_BYTES:
        with nogil:
            status = _check_records(p, 0, n, count, base_timestamp, max_timestamp, flags, &at)
    else:
        status = _check_records(p, 0, n, count, base_timestamp, max_timestamp, flags, &at)
    return status, at


cdef void _walk(const unsigned char* p, Py_ssize_t n, int flags, WalkResult* r) noexcept nogil:
    cdef Py_ssize_t pos = 0, remaining, size, end
    cdef int32_t batch_length, last_delta, count, at
    cdef int16_t attributes
    cdef int64_t ts
    cdef int status, record_flags
    r.status = _OK
    r.n_batches = 0
    r.n_offsets = 0
    r.max_timestamp = -1
    r.largest = 0
    if n == 0:
        r.status = _TRUNCATED
        return
    while pos < n:
        remaining = n - pos
        if remaining < 17:
            r.status = _TRUNCATED
            return
        if <signed char>p[pos + 16] != 2:
            r.status = _BAD_MAGIC
            return
        batch_length = _be32(p + pos + 8)
        if remaining < _HDR or batch_length < _MIN_LENGTH:
            r.status = _TRUNCATED
            return
        size = _OVERHEAD + <Py_ssize_t>batch_length
        if size > remaining:
            r.status = _TRUNCATED
            return
        end = pos + size
        if _crc_update(0, p + pos + 21, size - 21) != _beu32(p + pos + 17):
            r.status = _BAD_CRC
            return
        last_delta = _be32(p + pos + 23)
        count = _be32(p + pos + 57)
        if count <= 0 or <int64_t>last_delta != <int64_t>count - 1:
            r.status = _BAD_COUNT
            return
        attributes = _be16(p + pos + 21)
        if (attributes & 0x07) > 4:
            r.status = _BAD_CODEC
            return
        if flags & _FROM_CLIENT:
            if attributes & 0x20:
                r.status = _CONTROL
                return
            if _be64(p + pos + 43) >= 0 and _be32(p + pos + 53) < 0:
                r.status = _BAD_SEQUENCE
                return
        ts = _be64(p + pos + 35)
        if (attributes & 0x07) == 0:
            record_flags = flags
            if attributes & 0x08:  # LogAppendTime: the record timestamps do not count
                record_flags &= ~_CHECK_TIMESTAMPS
            status = _check_records(p, pos + _HDR, end, count, _be64(p + pos + 27), ts, record_flags, &at)
            if status != _OK:
                r.status = status
                return
        r.n_batches += 1
        r.n_offsets += <int64_t>last_delta + 1
        if ts > r.max_timestamp:
            r.max_timestamp = ts
        if size > r.largest:
            r.largest = size
        pos = end


def walk_batches(const unsigned char[::1] buf, int flags=0):
    """Validate every batch of a records blob.

    Returns ``(status, n_batches, n_offsets, max_timestamp, largest_batch_bytes)``; on a
    bad batch the counters cover the good batches before it. Checks per batch, in order:
    magic (as soon as its byte is present, so a short v0/v1 message set is BAD_MAGIC),
    framing (TRUNCATED), CRC, counts (BAD_COUNT), the codec id (BAD_CODEC); with
    FROM_CLIENT no control batch (CONTROL) and no producer id without a sequence
    (BAD_SEQUENCE); and for uncompressed batches the records as ``check_records`` does
    (CHECK_TIMESTAMPS applies to CreateTime batches only). Never decompresses: the
    records of a compressed batch are for the caller to check.
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef WalkResult r
    cdef const unsigned char* p
    if n == 0:
        return TRUNCATED, 0, 0, -1, 0
    p = &buf[0]
    if n >= _NOGIL_BYTES:
        with nogil:
            _walk(p, n, flags, &r)
    else:
        _walk(p, n, flags, &r)
    return r.status, r.n_batches, r.n_offsets, r.max_timestamp, r.largest


cdef inline Py_ssize_t _batch_size(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """Size of the batch at ``pos`` if it is whole inside ``p[:n]``, else -1."""
    cdef int32_t batch_length
    if n - pos < _HDR:
        return -1
    batch_length = _be32(p + pos + 8)
    if batch_length < _MIN_LENGTH or _OVERHEAD + <Py_ssize_t>batch_length > n - pos:
        return -1
    return _OVERHEAD + <Py_ssize_t>batch_length


cdef int _check_start(Py_ssize_t start, Py_ssize_t n) except -1:
    if start < 0 or start > n:
        raise ValueError(f"start {start} outside buffer of {n} bytes")
    return 0


def count_records(const unsigned char[::1] buf):
    """The records of the whole batches at the start of ``buf`` (their headers' record
    counts; a partial batch at the end, as a fetch may return, is not counted)."""
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = 0, size
    cdef int64_t total = 0
    if n == 0:
        return 0
    while True:
        size = _batch_size(&buf[0], pos, n)
        if size < 0:
            return total
        total += _be32(&buf[0] + pos + 57)
        pos += size


def rewrite_base_offsets(unsigned char[::1] buf, int64_t base_offset, int32_t leader_epoch=-1):
    """Give each batch consecutive offsets from ``base_offset``; return the next offset.

    A ``leader_epoch`` >= 0 is stamped into each batch's partitionLeaderEpoch (like the
    base offset, outside the CRC). ``buf`` must be writable and consist of whole batches
    (ValueError otherwise, before anything is written).
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = 0, size
    cdef unsigned char* p
    cdef int64_t nxt = base_offset
    if n == 0:
        return base_offset
    p = &buf[0]
    while pos < n:
        size = _batch_size(p, pos, n)
        if size < 0:
            raise ValueError(f"truncated batch at byte {pos}")
        pos += size
    pos = 0
    while pos < n:
        _put_be64(p + pos, nxt)
        if leader_epoch >= 0:
            _put_be32(p + pos + 12, leader_epoch)
        nxt += <int64_t>_be32(p + pos + 23) + 1
        pos += _OVERHEAD + <Py_ssize_t>_be32(p + pos + 8)
    return nxt


def scan_batches(const unsigned char[::1] buf, Py_ssize_t start, int64_t target_offset,
                 int64_t max_bytes):
    """Byte range of whole batches to serve a fetch at ``target_offset``.

    Skips batches that end before ``target_offset``, then takes batches while the range
    stays within ``max_bytes``, but always at least one (KIP-74). Stops at a truncated batch.
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = start, size, begin, end
    cdef const unsigned char* p
    _check_start(start, n)
    if n == 0:
        return start, start
    p = &buf[0]
    while True:
        size = _batch_size(p, pos, n)
        if size < 0:
            return pos, pos
        if _be64(p + pos) + <int64_t>_be32(p + pos + 23) >= target_offset:
            break
        pos += size
    begin = pos
    end = pos + size
    while True:
        size = _batch_size(p, end, n)
        if size < 0 or <int64_t>(end + size - begin) > max_bytes:
            return begin, end
        end += size


def find_timestamp(const unsigned char[::1] buf, Py_ssize_t start, int64_t timestamp):
    """Byte position of the first batch with maxTimestamp >= ``timestamp``, or -1."""
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = start, size
    cdef const unsigned char* p
    _check_start(start, n)
    if n == 0:
        return -1
    p = &buf[0]
    while True:
        size = _batch_size(p, pos, n)
        if size < 0:
            return -1
        if _be64(p + pos + 35) >= timestamp:
            return pos
        pos += size


def build_index(const unsigned char[::1] buf, int64_t position_base, int64_t interval):
    """Sparse index entries (i64 base offset, i32 position_base + byte position).

    The first batch always gets an entry; later a batch gets one once ``interval``
    records (recordsCount) were passed since the last entry. ``interval <= 0`` acts as 1.
    Raises ValueError on a truncated batch.
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = 0, size, n_entries = 0, k = 0
    cdef const unsigned char* p
    cdef int64_t since = 0, position
    cdef bint first = True
    cdef bytes out
    cdef unsigned char* o
    if interval <= 0:
        interval = 1
    if n == 0:
        return b""
    p = &buf[0]
    # pass 1: validate framing and count entries, so the output is allocated once
    while pos < n:
        size = _batch_size(p, pos, n)
        if size < 0:
            raise ValueError(f"truncated batch at byte {pos}")
        if first or since >= interval:
            position = position_base + pos
            if position < _INT32_MIN or position > _INT32_MAX:
                raise OverflowError("index position out of int32 range")
            n_entries += 1
            since = 0
            first = False
        since += _be32(p + pos + 57)
        pos += size
    out = PyBytes_FromStringAndSize(NULL, n_entries * _ENTRY)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    pos = 0
    since = 0
    first = True
    while pos < n:
        size = _OVERHEAD + <Py_ssize_t>_be32(p + pos + 8)
        if first or since >= interval:
            _put_be64(o + k, _be64(p + pos))
            _put_be32(o + k + 8, <int32_t>(position_base + pos))
            k += _ENTRY
            since = 0
            first = False
        since += _be32(p + pos + 57)
        pos += size
    return out


def index_floor(const unsigned char[::1] entries, int64_t offset):
    """Position of the greatest entry whose offset <= ``offset``, or -1 if none."""
    cdef Py_ssize_t n = entries.shape[0]
    cdef Py_ssize_t lo = 0, hi, mid
    cdef const unsigned char* p
    if n % _ENTRY:
        raise ValueError("index entries must be a multiple of 12 bytes")
    if n == 0:
        return -1
    p = &entries[0]
    hi = n // _ENTRY
    # invariant: entries[:lo] <= offset < entries[hi:]
    while lo < hi:
        mid = (lo + hi) >> 1
        if _be64(p + mid * _ENTRY) <= offset:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return -1
    return _be32(p + (lo - 1) * _ENTRY + 8)
