"""The connections of one client, the main one and the real-time lane `<id>~rt` (protocol §6.2),
and the one place that decides which connection a message or a subscription uses; a port of
`src/client/connection/transport.ts` and `outbound-queue.ts`. Messages that cannot be written
now wait in the bounded offline queue, drained in priority order (protocol §6.1, §6.3); one
whose `deadline` passed is dropped, never sent late (§4.5).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from ..protocol.errors import NotSentError
from .connection import Connection, ConnectionHooks
from .options import ResolvedOptions

PRIORITIES = ("realtime", "high", "normal", "low")


@dataclass
class Outbound:
    topic: str
    #: The wire text, or what makes it when written (a command stamps its `acceptBy` then, §4.7).
    body: Union[str, bytes, Callable[[], Union[str, bytes]]]
    qos: int = 1
    priority: str = "normal"
    retain: bool = False
    #: Epoch seconds after which the message is useless: dropped instead of sent late.
    deadline: Optional[float] = None
    on_written: Optional[Callable[[], None]] = None
    on_dropped: Optional[Callable[[NotSentError], None]] = None


class _LaneHooks(ConnectionHooks):
    def __init__(self, transport: "Transport", lane: str) -> None:
        self.transport = transport
        self.lane = lane

    def message(self, topic: str, payload: bytes, retained: bool, qos: int) -> None:
        self.transport.on_message(topic, payload, retained, qos, self.lane)

    def connected(self, reconnected: bool) -> None:
        self.transport.pump()
        self.transport.on_connected(self.lane, reconnected)

    def disconnected(self) -> None:
        self.transport.on_disconnected(self.lane)


class Transport:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: ResolvedOptions, will: tuple[str, str],
                 on_message: Callable[[str, bytes, bool, int, str], None],
                 on_connected: Callable[[str, bool], None],
                 on_disconnected: Callable[[str], None],
                 sign: Optional[Callable[[str, Union[str, bytes]], Union[str, bytes]]] = None) -> None:
        self.options = options
        self.on_message = on_message
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self._sign = sign
        if sign is not None:
            will = (will[0], sign(will[0], will[1]))
        self.main = Connection(loop, options, options.id, "main", will, _LaneHooks(self, "main"))
        # A client id never ends with ~rt, so `<id>~rt` is nobody else's (protocol §2.1).
        self.realtime = Connection(loop, options, f"{options.id}~rt", "realtime", None, _LaneHooks(self, "realtime")) if options.realtime_lane else None
        self._queues: dict[str, deque[Outbound]] = {p: deque() for p in PRIORITIES}
        self._queued = 0
        self._closing = False

    def start(self) -> None:
        for connection in self.connections():
            connection.start()

    def connections(self) -> list[Connection]:
        return [self.main, self.realtime] if self.realtime else [self.main]

    @property
    def connected(self) -> bool:
        return self.main.connected

    @property
    def broker_label(self) -> str:
        return self.main.broker_label

    async def ready(self) -> None:
        await asyncio.gather(*(connection.ready() for connection in self.connections()))

    def lane_of(self, wanted: Optional[str]) -> str:
        """The lane of a subscription or request: real-time only when the client has that lane."""
        return "realtime" if wanted == "realtime" and self.realtime is not None else "main"

    def connection(self, lane: str) -> Connection:
        return self.realtime if lane == "realtime" and self.realtime is not None else self.main

    def _writable_for(self, priority: str) -> Optional[Connection]:
        if priority == "realtime" and self.realtime is not None and self.realtime.connected:
            return self.realtime
        return self.main if self.main.connected else None

    def send(self, message: Outbound) -> None:
        """Writes a message, or queues it while the main connection is down (bounded, §6.3).
        Raises NotSentError when the client is closed or the offline queue is full."""
        if self._closing:
            raise NotSentError("the client is closed")
        if self._queued == 0 or message.priority == "realtime":
            connection = self._writable_for(message.priority)
            if connection is not None:
                self._write(connection, message)
                return
        limit = self.options.max_offline_messages
        if self._queued >= limit:
            raise NotSentError(f"offline queue full while disconnected from {self.broker_label} ({limit} messages)")
        self._queues[message.priority if message.priority in self._queues else "normal"].append(message)
        self._queued += 1

    def _write(self, connection: Connection, message: Outbound) -> None:
        body = message.body() if callable(message.body) else message.body
        if self._sign is not None:
            body = self._sign(message.topic, body)
        connection.write(message.topic, body, message.qos, message.retain)
        if message.on_written is not None:
            message.on_written()

    def pump(self) -> None:
        """Writes what waits, in priority order, as far as the connections allow."""
        if self._queued == 0:
            return
        now = time.time()
        for priority in PRIORITIES:
            queue = self._queues[priority]
            while queue:
                message = queue[0]
                if message.deadline is not None and message.deadline <= now:
                    queue.popleft()
                    self._queued -= 1
                    if message.on_dropped:
                        message.on_dropped(NotSentError(f"deadline passed before {message.topic} could be sent (disconnected or backlogged)"))
                    continue
                connection = self._writable_for(message.priority)
                if connection is None:
                    break
                queue.popleft()
                self._queued -= 1
                self._write(connection, message)

    def subscribe(self, filter_: str, lane: str, qos: int = 1) -> "asyncio.Future[None]":
        return self.connection(lane).subscribe(filter_, qos)

    def unsubscribe(self, filter_: str, lane: str) -> "asyncio.Future[None]":
        return self.connection(lane).unsubscribe(filter_)

    async def publish_now(self, topic: str, body: str, retain: bool, within: Optional[float] = None) -> None:
        """QoS 1 on the main connection; resolves once the broker has it (presence)."""
        if self._sign is not None and body:
            body = self._sign(topic, body)
        await self.main.publish_now(topic, body, retain, within)

    def _clear(self, why: str) -> None:
        for queue in self._queues.values():
            while queue:
                message = queue.popleft()
                if message.on_dropped:
                    message.on_dropped(NotSentError(why))
        self._queued = 0

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._clear("the client closed before the message could be sent")
        await asyncio.gather(*(connection.close() for connection in self.connections()))

    async def kill(self) -> None:
        self._closing = True
        self._clear("the client was killed before the message could be sent")
        await asyncio.gather(*(connection.kill() for connection in self.connections()))


def _unused(*_: Any) -> None:  # pragma: no cover
    pass
