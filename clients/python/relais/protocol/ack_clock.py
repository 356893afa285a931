"""When requests waiting for their handler's first answer (protocol §4.7) are written again,
then given up waiting for: one sweep for all of them instead of a timer per request.

Ports the pure part of ``src/client/requesting/ack-clock.ts``; the shell owns the timer. The
sweep runs only while some request waits, every quarter of the shortest wait among them
(``start`` returns the period to sweep at when it changes; ``tick`` whether to go on).

A wait ends only after what has arrived is read: a process frozen or starved wakes with its
timers due before it reads its sockets, and an answer that came in time may be there, unread.
So a wait found over is given up later (``give_up``, which the shell calls once the pending I/O
is read: asyncio's ``loop.call_soon`` from the sweep runs after the next poll), unless an answer
stopped it meanwhile; taking it for silence would move a command already taken elsewhere.
"""
from __future__ import annotations

import math
from typing import Optional, Protocol

#: The sweep is never faster than this, whatever the ack time-out.
FASTEST_SWEEP_MS = 10


class AwaitingAck(Protocol):
    """A request that waits; the clock keeps its times on it (``ack_retry_at``, ``ack_expire_at``, ms)."""

    ack_retry_at: float
    ack_expire_at: float

    def retry(self) -> None:
        """Half-way: write the command once more."""

    def expire(self) -> None:
        """The end of the wait: the handler is suspected."""


class AckClock:
    """The retries and expiries of every request waiting for a first answer."""

    def __init__(self) -> None:
        self._waiting: dict[int, AwaitingAck] = {}
        #: Waits found over, given up by ``give_up`` unless answered (or started again) meanwhile.
        self._expiring: dict[int, AwaitingAck] = {}
        self.period = math.inf

    @property
    def sweeping(self) -> bool:
        return self.period != math.inf

    def start(self, request: AwaitingAck, wait: float, now: float) -> Optional[float]:
        """``request`` waits from ``now`` (ms) for up to ``wait`` ms. Returns the period (ms) to
        sweep at when the sweep must be (re)armed, None when the running one will do."""
        self._expiring.pop(id(request), None)
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
        """After the pending I/O was read: the waits over that no answer stopped expire."""
        over = list(self._expiring.values())
        self._expiring.clear()
        for request in over:
            request.expire()
