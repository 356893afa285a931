"""A push-fed async iterator (the TS `src/client/async-queue.ts`): producers `push`, one consumer
iterates with `async for`. Bounded: past `capacity` the oldest item is dropped and counted (a slow
consumer must not grow memory without end). Leaving the loop early (`aclose()`, `break` in an
`async with`/generator) calls `on_return`."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class AsyncQueue(Generic[T]):
    def __init__(self, capacity: float = float("inf"), on_return: Optional[Callable[[], None]] = None) -> None:
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._on_return = on_return
        self._waiter: Optional[asyncio.Future[None]] = None
        self._ended = False
        self._failure: Optional[BaseException] = None
        self.dropped = 0

    def push(self, item: T) -> None:
        if self._ended:
            return
        if len(self._items) >= self._capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._wake()

    def end(self, error: Optional[BaseException] = None) -> None:
        """Ends the iteration after the items already queued; with an error, the next read raises it."""
        if self._ended:
            return
        self._ended = True
        self._failure = error
        self._wake()

    @property
    def ended(self) -> bool:
        return self._ended

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> "AsyncQueue[T]":
        return self

    async def __anext__(self) -> T:
        while True:
            if self._items:
                return self._items.popleft()
            if self._ended:
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                # The consumer's task was cancelled while waiting: it stops reading.
                self.aclose_now()
                raise

    def aclose_now(self) -> None:
        """The consumer stopped reading before the end."""
        if not self._ended:
            self._ended = True
            self._items.clear()
            if self._on_return is not None:
                self._on_return()

    async def aclose(self) -> None:
        self.aclose_now()
