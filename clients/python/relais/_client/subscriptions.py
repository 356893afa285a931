"""Application subscriptions (protocol §8.3), a port of `src/client/subscriptions.ts`: MQTT
filters delivered as async iterators, valid envelopes only unless invalid ones are asked for;
one MQTT subscription per filter and lane, shared by the application's subscriptions to it."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..protocol.envelope import DecodeResult
from ..protocol.topics import PRESENCE_FILTER, check_filter, topic_matches
from .async_queue import AsyncQueue
from .transport import Transport

log = logging.getLogger("relais.subscriptions")

INVALID_TEXT_LIMIT = 4096


@dataclass
class Message:
    """A message delivered to a subscription: `topic`, the validated `envelope` (None when
    `invalid` says why it is not one, with `include_invalid`), its `payload`, `retained`, `qos`."""

    topic: str
    envelope: Optional[dict]
    retained: bool
    qos: int
    raw: bytes
    invalid: Optional[str] = None
    #: A sealed message (protocol §3.6): "opened" (the payload is the plaintext) or "unopened" (not
    #: sealed for this client, or it did not open: the payload is the ciphertext bytes); None when
    #: it was not sealed. `envelope["seal"]` stays in both cases.
    sealed: Optional[str] = None

    @property
    def payload(self) -> Any:
        return None if self.envelope is None else self.envelope.get("payload")

    @property
    def source(self) -> Optional[str]:
        return None if self.envelope is None else self.envelope.get("source")

    @property
    def text(self) -> str:
        return self.raw[:INVALID_TEXT_LIMIT].decode("utf-8", "replace")


class Subscription(AsyncQueue[Message]):
    """An async iterator of `Message`s; `await sub.unsubscribe()` (or leaving `async with`) stops it."""

    def __init__(self, filter_: str, capacity: int, stop: Callable[["Subscription"], "asyncio.Future[None]"]) -> None:
        super().__init__(capacity, on_return=lambda: self._stop_soon())
        self.filter = filter_
        self._stop = stop
        self._stopping: Optional[asyncio.Future[None]] = None

    def _stop_soon(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(self))

    async def unsubscribe(self) -> None:
        self.aclose_now()
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(self))
        await self._stopping

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.unsubscribe()


@dataclass
class _Entry:
    filter: str
    lane: str
    include_invalid: bool
    subscription: Subscription
    warned_drop: bool = False


class Subscriptions:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._entries: list[_Entry] = []
        self._use: dict[str, int] = {}

    async def subscribe(self, filter_: str, qos: int = 1, lane: Optional[str] = None, include_invalid: bool = False,
                        buffer_size: int = 10_000) -> Subscription:
        problem = check_filter(filter_)
        if problem:
            raise TypeError(problem)
        chosen = self.transport.lane_of(lane)
        key = f"{chosen} {filter_}"
        entry: _Entry

        async def stop(_sub: Subscription) -> None:
            if entry not in self._entries:
                return
            self._entries.remove(entry)
            left = self._use.get(key, 1) - 1
            if left > 0:
                self._use[key] = left
                return
            self._use.pop(key, None)
            # The client holds the presence filter for its own directory (protocol §7.2).
            if filter_ == PRESENCE_FILTER and chosen == "main":
                return
            await self.transport.unsubscribe(filter_, chosen)

        subscription = Subscription(filter_, buffer_size, stop)
        entry = _Entry(filter_, chosen, include_invalid, subscription)
        self._use[key] = self._use.get(key, 0) + 1
        self._entries.append(entry)
        try:
            await self.transport.subscribe(filter_, chosen, qos)
        except BaseException:
            subscription.aclose_now()
            await stop(subscription)
            raise
        return subscription

    def dispatch(self, topic: str, lane: str, raw: bytes, decoded: Callable[[], DecodeResult], retained: bool, qos: int,
                 sealed: Callable[[], Optional[str]] = lambda: None) -> None:
        """Delivers one message to every matching subscription; `sealed` says what became of a sealed one (read after `decoded()`)."""
        if not self._entries:
            return
        for entry in list(self._entries):
            # A message arrives once per connection whose subscriptions match: each lane delivers its own.
            if entry.lane != lane or not topic_matches(entry.filter, topic):
                continue
            result = decoded()
            subscription = entry.subscription
            if result.ok:
                message = Message(topic, result.envelope, retained, qos, raw, sealed=sealed())
            elif entry.include_invalid:
                message = Message(topic, None, retained, qos, raw, invalid=str(result.error))
            else:
                if len(raw) == 0:
                    log.debug("a retained message was cleared on %s", topic)
                else:
                    log.warning("invalid message on a subscribed topic %s: %s", topic, result.error)
                continue
            before = subscription.dropped
            subscription.push(message)
            if subscription.dropped > before and not entry.warned_drop:
                entry.warned_drop = True
                log.warning("slow subscriber of %s: dropping the oldest messages", entry.filter)

    def close_all(self) -> None:
        for entry in self._entries:
            entry.subscription.end()
        self._entries.clear()
