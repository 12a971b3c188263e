"""Following one etcd prefix: read it whole at start, then on every change.

``PrefixFollower`` is what the broker's run-time configs, ACLs and SASL users share: a
watch on a prefix (set up before the first read, so no change between the two is
missed), the first read, and a task that reads again on each batch of events. A read
that fails is logged and retried at the next event; the task never dies of it. With
``on_events``, batches are applied as they come and the prefix is re-read only when the
watch was re-created (its callback gets None: events may have been lost).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from kafscale.runtime import Runtime

log = logging.getLogger(__name__)


class PrefixFollower:
    def __init__(self, rt: Runtime, store: Any, prefix: str, reload: Callable[[], Awaitable[None]], what: str,
                 on_events: Callable[[list], None] | None = None) -> None:
        self.rt = rt
        self.store = store  # a metadata.store.MetadataStore
        self.prefix = prefix
        self.reload = reload
        self.what = what  # for the log: "ACLs", "SCRAM users", ...
        self.on_events = on_events
        self._task: Any = None
        self._cancel: Any = None

    async def start(self) -> None:
        queue = self.rt.thread_queue()
        self._cancel = await self.rt.run_in_thread(self.store.watch_prefix, self.prefix, queue.put)
        await self.reload()
        self._task = await self.rt.spawn(self._follow, queue)

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.cancel()
        if self._cancel is not None:
            await self.rt.run_in_thread(self._cancel)

    async def _follow(self, queue: Any) -> None:
        while True:
            events = await queue.get()
            if events is not None and self.on_events is not None:
                self.on_events(events)
                continue
            try:
                await self.reload()
            except Exception as exc:  # noqa: BLE001 - keep following; the next event retries
                log.warning("reading %s failed: %s", self.what, exc)
