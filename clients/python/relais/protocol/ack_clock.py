"""When requests waiting for their handler's first answer (protocol §4.7) are written again,
then given up waiting for: one sweep for all of them instead of a timer per request.

Ports the pure part of ``src/client/requesting/ack-clock.ts``; the shell owns the timer and the
connections. The sweep runs only while some request waits, every quarter of the shortest wait
among them (``start`` returns the period to sweep at when it changes; ``tick`` whether to go on).

A wait ends only after what has arrived is read: a process frozen or starved wakes with its
timers due before it reads its sockets, and an answer that came in time may be there, unread.
So a wait found over is given up later (``give_up``, which the shell calls once the pending I/O
is read: asyncio's ``loop.call_soon`` from the sweep runs after the next poll), unless an answer
stopped it meanwhile; taking it for silence would move a command already taken elsewhere.

The same holds of a broker frozen (a paused VM, SIGSTOP): the handler's answer waits inside it.
So a wait over counts as the handler's silence only if the broker was heard on the request's
lane in its last quarter; else the broker is asked first (``BrokerHearing.probe``, an
UNSUBSCRIBE round trip, protocol §4.7), and once it answers (``broker_answered``) the handler has
a quarter of the wait more, for what it held.
"""
from __future__ import annotations

import math
from typing import Optional, Protocol

#: The sweep is never faster than this, whatever the ack time-out.
FASTEST_SWEEP_MS = 10


class AwaitingAck(Protocol):
    """A request that waits; the clock keeps its times on it (``ack_retry_at``, ``ack_expire_at``,
    ``ack_wait_ms``, ms) and whether its wait was drawn out once the broker answered the clock's
    question (``ack_asked``: its end then counts)."""

    #: Where its answers come: the broker must be heard there for the handler's silence to count.
    lane: str
    ack_retry_at: float
    ack_expire_at: float
    ack_wait_ms: float
    ack_asked: bool

    def retry(self) -> None:
        """Half-way: write the command once more."""

    def expire(self) -> None:
        """The end of the wait: the handler is suspected."""


class BrokerHearing(Protocol):
    """What the clock asks of the connections (protocol §4.7)."""

    def heard_at(self, lane: str) -> float:
        """When the broker last sent anything on ``lane``'s connection (epoch ms)."""

    def probe(self, lane: str) -> None:
        """Asks the broker on ``lane`` for a round trip; its answer is ``AckClock.broker_answered``,
        the connection's end before it ``AckClock.broker_lost``. Neither from within this call."""


class AckClock:
    """The retries and expiries of every request waiting for a first answer."""

    def __init__(self, broker: Optional[BrokerHearing] = None) -> None:
        """Without ``broker``, a wait over is always given up (the sweep's own unit tests)."""
        self._broker = broker
        self._waiting: dict[int, AwaitingAck] = {}
        #: Waits found over, given up by ``give_up`` unless answered (or started again) meanwhile.
        self._expiring: dict[int, AwaitingAck] = {}
        #: Waits over while the broker was not heard, by lane: they wait for its answer to the probe.
        self._asking: dict[str, dict[int, AwaitingAck]] = {}
        self.period = math.inf

    @property
    def sweeping(self) -> bool:
        return self.period != math.inf

    def start(self, request: AwaitingAck, wait: float, now: float) -> Optional[float]:
        """``request`` waits from ``now`` (ms) for up to ``wait`` ms. Returns the period (ms) to
        sweep at when the sweep must be (re)armed, None when the running one will do."""
        self._expiring.pop(id(request), None)
        self._asking.get(request.lane, {}).pop(id(request), None)
        request.ack_wait_ms = wait
        request.ack_asked = False
        request.ack_retry_at = now + wait / 2
        request.ack_expire_at = now + wait
        self._waiting[id(request)] = request
        period = max(FASTEST_SWEEP_MS, wait / 4)
        if self.sweeping and period >= self.period:
            return None
        self.period = period
        return period

    def stop(self, request: AwaitingAck) -> None:
        """``request`` got its answer (or ended): no retry, no expiry."""
        self._waiting.pop(id(request), None)
        self._expiring.pop(id(request), None)
        self._asking.get(request.lane, {}).pop(id(request), None)

    def tick(self, now: float) -> bool:
        """Retries due by ``now`` (ms) are made; waits over are set aside for ``give_up``.
        Returns False when nobody waits: the sweep stops."""
        if not self._waiting:
            self.period = math.inf
            return False
        for key, request in list(self._waiting.items()):
            if now >= request.ack_expire_at:
                del self._waiting[key]
                self._expiring[key] = request
            elif now >= request.ack_retry_at:
                request.ack_retry_at = math.inf  # once
                request.retry()
        return True

    @property
    def expiring(self) -> bool:
        """Whether waits found over wait for ``give_up``."""
        return bool(self._expiring)

    def give_up(self) -> None:
        """After the pending I/O was read: the waits over that no answer stopped expire, if the
        broker was heard on their lane in their last quarter; else it is asked first, one
        question per lane at a time."""
        over = list(self._expiring.items())
        self._expiring.clear()
        to_ask: list[str] = []
        for key, request in over:
            broker = self._broker
            if broker is None or request.ack_asked or broker.heard_at(request.lane) >= request.ack_expire_at - request.ack_wait_ms / 4:
                request.expire()
                continue
            asking = self._asking.get(request.lane)
            if asking is None:
                asking = self._asking[request.lane] = {}
                to_ask.append(request.lane)
            asking[key] = request
        for lane in to_ask:
            self._broker.probe(lane)  # type: ignore[union-attr] - asked only with a broker

    def broker_answered(self, lane: str, now: float) -> Optional[float]:
        """The broker answered the question on ``lane`` at ``now`` (ms): each request that waited
        for it has a quarter of its wait more, then its end counts. Returns the period to sweep
        at when the sweep must be (re)armed, as ``start`` does."""
        rearm: Optional[float] = None
        for request in list(self._asking.pop(lane, {}).values()):
            period = self.start(request, request.ack_wait_ms / 4, now)
            if period is not None:
                rearm = period
            request.ack_retry_at = math.inf  # written twice already
            request.ack_asked = True
        return rearm

    def broker_lost(self, lane: str) -> None:
        """The connection of ``lane`` ended before the broker answered: its requests are written
        again when it is back (the lifecycle's ``reconnected``), and wait from then."""
        self._asking.pop(lane, None)
