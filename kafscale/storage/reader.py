"""Reading committed segments: the byte-bounded cache, de-duplicated S3 reads, read-ahead.

A segment is read whole (and cached) when it sits inside a topic object, or is an
older one-object segment of at most WHOLE_READ_LIMIT bytes; a larger one is read by
index and byte range. Every segment read is checked (CRC, framing) before it is cached
or served: a corrupt one is reported as CORRUPT_MESSAGE, never served. GETs of
segments of one object wanted at the same time are merged (COALESCE_GAP), and a topic
whose partitions are being read together has its objects read whole (ACTIVE_READ_S).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from kafscale import _fast
from kafscale.config import Config
from kafscale.errors import ErrorCode, KafkaError, StorageError
from kafscale.metadata.cluster import SegmentRef, TopicRecord
from kafscale.runtime import Runtime
from kafscale.storage import segment as fmt
from kafscale.storage.cache import SegmentCache
from kafscale.storage.objects import ObjectStore

log = logging.getLogger(__name__)

# Segments up to this size are read whole (and cached); larger ones by index + range.
WHOLE_READ_LIMIT = 16 * 1024 * 1024


class _Load:
    """A GET of one segment under way; readers of the segment wait on ``event``."""

    __slots__ = ("seg", "event", "data", "error", "ahead")

    def __init__(self, seg: SegmentRef, event) -> None:
        self.seg = seg
        self.event = event
        self.data: memoryview | None = None
        self.error: Exception | None = None
        self.ahead = False  # counted in SegmentReader._ahead_bytes


# Segments of one object wanted together are read with one GET when no more than this
# lies between them (it is read and dropped).
COALESCE_GAP = 256 * 1024

# A topic whose partitions are read at the same time (at least half of them, and two,
# within ACTIVE_READ_S: one consumer reading it all, or a group spread over it) has its
# objects read whole and every segment in them cached: its other partitions' readers
# are about to want them. One GET of a whole object costs the S3 server about half the
# CPU of ranged GETs of its pieces at unaligned offsets (SeaweedFS, measured: 1.0 vs
# 1.5-3.0 CPU s per GB), and it halves or better the number of GETs.
ACTIVE_READ_S = 5.0


def _verified(view: memoryview, lo: int, segs: list[SegmentRef]) -> list[tuple[memoryview | None, ValueError | None]]:
    """Each segment's bytes out of ``view`` (which starts at object position ``lo``),
    its CRC checked: (bytes, None), or (None, the problem)."""
    out: list[tuple[memoryview | None, ValueError | None]] = []
    for seg in segs:
        piece = view[seg.pos - lo:seg.pos - lo + seg.size] if seg.pos >= 0 else view
        try:
            if len(piece) != seg.size and seg.pos >= 0:
                raise fmt.CorruptSegment(f"object ends before the segment's {seg.size} bytes")
            fmt.parse_segment(piece, verify=True)
            out.append((piece, None))
        except ValueError as exc:
            out.append((None, exc))
    return out


def _read_whole(seg: SegmentRef) -> bool:
    """Whether a segment is read (and cached) whole rather than through its index: a
    segment inside a topic object always (it has no index object), an older
    one-object segment up to WHOLE_READ_LIMIT."""
    return seg.pos >= 0 or seg.size <= WHOLE_READ_LIMIT


class SegmentReader:
    """Committed segments' bytes for the partition logs, from the cache or S3."""

    def __init__(self, rt: Runtime, config: Config, objects: ObjectStore, stats: Counter[str]) -> None:
        self.rt = rt
        self.config = config
        self.objects = objects
        self.stats = stats
        self.cache = SegmentCache(config.cache_bytes)
        self._inflight_reads: dict[str, Any] = {}
        self._ahead_bytes = 0  # read-ahead GETs under way (bounded: see read_ahead)
        self._object_queue: dict[str, list[_Load]] = {}  # segments waiting for their object's GET
        self._whole_objects: set[str] = set()  # objects in _object_queue to be read whole
        self._reads: dict[str, dict[int, float]] = {}  # topic id -> partition -> when last read
        self._reads_whole: dict[str, tuple[float, bool, int]] = {}  # reads_whole_topic's last count

    @property
    def reads_under_way(self) -> int:
        """Segments being read (or queued for their object's GET)."""
        return len(self._inflight_reads)

    @property
    def ahead_bytes(self) -> int:
        """Bytes of read-ahead GETs under way."""
        return self._ahead_bytes

    @property
    def idle(self) -> bool:
        """No GET under way or queued, and no read-ahead counted."""
        return not self._inflight_reads and not self._object_queue and self._ahead_bytes == 0

    def forget_topics(self, live_ids: set[str]) -> None:
        """Drop what is kept about reads of topics that are gone."""
        for tid in [t for t in self._reads if t not in live_ids]:
            del self._reads[tid]
            self._reads_whole.pop(tid, None)

    async def segment_bytes(self, seg: SegmentRef) -> bytes | memoryview:
        """A whole segment, from the cache or S3 (one GET per segment at a time, and
        segments of one object wanted at the same time in one GET)."""
        data = self.cache.get(seg.cache_key)
        if data is not None:
            return data
        load = self._inflight_reads.get(seg.cache_key) or await self._start_load(seg)
        await load.event.wait()
        if load.error is not None:
            raise load.error
        return load.data

    def is_cached(self, seg: SegmentRef) -> bool:
        return seg.cache_key in self.cache

    def is_loading(self, seg: SegmentRef) -> bool:
        return seg.cache_key in self._inflight_reads

    def note_read(self, topic: TopicRecord, partition: int) -> None:
        self._reads.setdefault(topic.id, {})[partition] = self.rt.monotonic()

    def reads_whole_topic(self, topic: TopicRecord) -> bool:
        """Whether at least half of ``topic``'s partitions (and two) were read within
        ACTIVE_READ_S: then its objects are read whole (see ACTIVE_READ_S)."""
        reads = self._reads.get(topic.id)
        if not reads or len(reads) < 2:
            return False
        now = self.rt.monotonic()
        known = self._reads_whole.get(topic.id)
        if known is not None and known[0] > now - 0.5 and (known[1] or len(reads) < known[2]):
            return known[1]  # (counted at most twice a second: a fetch asks for every partition)
        active = sum(1 for t in reads.values() if t >= now - ACTIVE_READ_S)
        whole = active >= 2 and 2 * active >= topic.partitions
        self._reads_whole[topic.id] = (now, whole, len(reads))
        return whole

    async def load_all(self, segs: list[SegmentRef]) -> None:
        """Start the GETs of whichever of ``segs`` are not cached, side by side; a segment
        inside a topic object comes with the whole object, every segment of it cached
        (the compactor: the other partitions' segments are about to be compacted too)."""
        for seg in segs:
            if seg.cache_key not in self.cache and seg.cache_key not in self._inflight_reads:
                await self._start_load(seg, whole_object=True)
                self.stats["compaction_loads"] += 1

    async def read_ahead(self, seg: SegmentRef, whole_object: bool = False) -> bool:
        """Start loading ``seg`` into the cache in the background (once); False if it is
        not read whole or the read-ahead under way is at its bound (a quarter of the
        cache, so what is read ahead is not evicted before it is read).
        ``whole_object``: GET all of the topic object that holds it and cache every
        segment in it."""
        key = seg.cache_key
        if not _read_whole(seg) or key in self.cache or key in self._inflight_reads:
            return True
        if self._ahead_bytes + seg.size > self.config.cache_bytes // 4:
            return False
        load = await self._start_load(seg, whole_object)
        load.ahead = True
        self._ahead_bytes += seg.size
        self.stats["read_ahead"] += 1
        return True

    async def _start_load(self, seg: SegmentRef, whole_object: bool = False) -> "_Load":
        """Register a GET of ``seg``. Segments of one topic object asked for before its
        loader task runs (a fetch asks for all its partitions first) share one GET."""
        load = _Load(seg, self.rt.event())
        self._inflight_reads[seg.cache_key] = load
        if whole_object and seg.pos >= 0:
            self._whole_objects.add(seg.key)
        queue = self._object_queue.get(seg.key)
        if queue is not None:
            queue.append(load)
        else:
            self._object_queue[seg.key] = [load]
            await self.rt.spawn(self._load_object, seg.key)
        return load

    async def _load_object(self, key: str) -> None:
        loads = sorted(self._object_queue.pop(key), key=lambda ld: ld.seg.pos)
        if key in self._whole_objects:
            self._whole_objects.discard(key)
            await self._load_group(key, loads, whole=True)
            return
        groups = [[loads[0]]]
        for ld in loads[1:]:
            prev = groups[-1][-1].seg
            if ld.seg.pos >= 0 and ld.seg.pos - (prev.pos + prev.size) <= COALESCE_GAP:
                groups[-1].append(ld)
            else:
                groups.append([ld])
        tasks = [await self.rt.spawn(self._load_group, key, g) for g in groups[1:]]
        await self._load_group(key, groups[0])
        for t in tasks:
            await t.join()

    async def _load_group(self, key: str, group: list["_Load"], whole: bool = False) -> None:
        try:
            if whole:
                results, others = await self.rt.run_in_thread(self._get_object, [ld.seg for ld in group])
                for cache_key, data in others:
                    if cache_key not in self.cache and cache_key not in self._inflight_reads:
                        self.cache.put(cache_key, data)
                        self.stats["segments_read_along"] += 1
                self.stats["whole_object_gets"] += 1
            else:
                results = await self.rt.run_in_thread(self._get_segments, [ld.seg for ld in group])
            self.stats["s3_gets"] += 1
            for ld, (data, problem) in zip(group, results):
                if problem is not None:
                    log.error("corrupt segment %s: %s", ld.seg.cache_key, problem)
                    ld.error = KafkaError(f"corrupt segment {ld.seg.cache_key}: {problem}",
                                          code=ErrorCode.CORRUPT_MESSAGE)
                else:
                    ld.data = data
                    self.cache.put(ld.seg.cache_key, data)
        except Exception as exc:  # noqa: BLE001 - every reader of the group gets the error
            error = exc if isinstance(exc, KafkaError) else StorageError(f"GET {key}: {exc}")
            for ld in group:
                ld.error = error
        finally:
            for ld in group:
                del self._inflight_reads[ld.seg.cache_key]
                if ld.ahead:
                    self._ahead_bytes -= ld.seg.size
                await ld.event.set()

    def _get_segments(self, segs: list[SegmentRef]) -> list[tuple[memoryview | None, ValueError | None]]:
        """GET segments lying close together in one object with one ranged read, on a
        worker thread, and check each one's CRC (neither blocks the event loop)."""
        if segs[0].pos < 0:  # (a one-object segment of the older layout)
            data, lo = self.objects.get(segs[0].object_key), 0
        else:
            lo = segs[0].pos
            hi = max(s.pos + s.size for s in segs)
            data = self.objects.get(segs[0].key, lo, hi - lo)
        return _verified(memoryview(data), lo, segs)

    def _get_object(self, segs: list[SegmentRef]) -> tuple[
            list[tuple[memoryview | None, ValueError | None]], list[tuple[str, memoryview]]]:
        """GET a whole topic object on a worker thread: ``segs`` as _get_segments gives
        them, and every other intact segment its directory lists, as (cache key, bytes)."""
        key = segs[0].key
        view = memoryview(self.objects.get(key))
        out = _verified(view, 0, segs)
        wanted = {seg.pos for seg in segs}
        others: list[tuple[str, memoryview]] = []
        try:
            entries = fmt.parse_directory(view)
        except ValueError as exc:  # (the segments asked for were checked on their own)
            log.warning("topic object %s: %s; only the segments asked for are cached", key, exc)
            entries = []
        for _partition, pos, size in entries:
            cache_key = f"{key}@{pos}"
            if pos in wanted:
                continue
            piece = view[pos:pos + size]
            try:
                fmt.parse_segment(piece, verify=True)
            except ValueError as exc:
                log.warning("corrupt segment %s (read along, not cached): %s", cache_key, exc)
                continue
            others.append((cache_key, piece))
        return out, others

    async def read_segment_range(self, seg: SegmentRef, offset: int, max_bytes: int,
                                 allow_oversize: bool = True) -> tuple[memoryview, bool]:
        """Whole batches of ``seg`` from the one holding ``offset``, within ``max_bytes``
        (but at least one batch when ``allow_oversize``, as Kafka's KIP-74), and whether
        they run to the end of the segment."""
        if _read_whole(seg) or self.cache.get(seg.cache_key) is not None:
            data = await self.segment_bytes(seg)
            view = memoryview(data)[:len(data) - fmt.FOOTER_SIZE]
            begin, end = _fast.scan_batches(view, fmt.HEADER_SIZE, offset, max_bytes)
            if not allow_oversize and end - begin > max_bytes:
                return view[begin:begin], False
            return view[begin:end], end == len(view)
        # A large segment: find the batch through the index, then read a byte range.
        index = fmt.parse_index(await self.rt.run_in_thread(self.objects.get, seg.key + ".index"))
        pos = fmt.index_lookup(index, offset)
        body_end = seg.size - fmt.FOOTER_SIZE
        want = max_bytes
        while True:
            length = min(body_end - pos, want + 64 * 1024)
            chunk = await self.rt.run_in_thread(self.objects.get, seg.key + ".kfs", pos, length)
            self.stats["s3_range_gets"] += 1
            begin, end = _fast.scan_batches(chunk, 0, offset, max_bytes)
            if end > begin or pos + length >= body_end:
                return memoryview(chunk)[begin:end], pos + end >= body_end
            # A single batch larger than what we read: read again, wide enough for it.
            want = max(want * 2, 1 << 20)
