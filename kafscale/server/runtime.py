"""The curio implementation of kafscale.runtime.Runtime."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import curio


class CurioRuntime:
    async def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await curio.run_in_thread(fn, *args)

    async def sleep(self, seconds: float) -> None:
        await curio.sleep(seconds)

    def event(self) -> curio.Event:
        return curio.Event()

    async def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> curio.Task:
        return await curio.spawn(fn, *args, daemon=True)

    async def wait(self, event: curio.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if timeout is None:
            await event.wait()
            return True
        if timeout <= 0:
            return False
        await curio.ignore_after(timeout, event.wait)
        return event.is_set()

    def thread_queue(self) -> curio.UniversalQueue:
        return curio.UniversalQueue()

    def monotonic(self) -> float:
        return time.monotonic()
