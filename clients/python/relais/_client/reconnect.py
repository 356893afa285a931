"""When to try a lost connection again (protocol §1.1), a port of
`src/client/connection/reconnect.ts`: "full jitter" exponential back-off, started over only once
a connection has stayed up, and a pause once the broker keeps dropping us right after accepting
(another client with our id, protocol §7.5). Times in seconds here; the rule is the TS one.
"""
from __future__ import annotations

import random as _random
import time
from typing import Optional

#: A connection up this long resets the back-off.
STABLE_CONNECTION_S = 5.0
#: A connection dropped sooner than this after its CONNACK counts as "young".
YOUNG_CONNECTION_S = 1.0
#: So many young drops in a row suggest another client with our id (protocol §7.5).
YOUNG_DROPS_SUSPECT = 3
#: Least reconnection pause, to twice this at random, once a twin is suspected.
TAKEOVER_PAUSE_S = 0.5


def backoff(attempt: int, first: float, ceiling: float, rnd: Optional[float] = None) -> float:
    """Delay before attempt `attempt` (0 first): a random value up to `first` x 2^attempt, capped."""
    top = min(ceiling, first * 2 ** min(attempt, 16))
    return max(0.001, (_random.random() if rnd is None else rnd) * top)


class ReconnectSchedule:
    def __init__(self, first: float, ceiling: float) -> None:
        self._first = first
        self._ceiling = ceiling
        self._attempt = 0
        self._up_since: Optional[float] = None
        self._young_count = 0
        self._young_up_since = 0.0

    @property
    def attempts(self) -> int:
        return self._attempt

    def connected(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self._up_since = now
        self._young_up_since = now

    def dropped(self, now: Optional[float] = None) -> bool:
        """An established connection dropped; True exactly when this makes a twin likely (say so once)."""
        now = time.monotonic() if now is None else now
        if self._up_since is not None and now - self._up_since >= STABLE_CONNECTION_S:
            self._attempt = 0
        self._up_since = None
        self._young_count = self._young_count + 1 if now - self._young_up_since < YOUNG_CONNECTION_S else 0
        return self._young_count == YOUNG_DROPS_SUSPECT

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts as one attempt."""
        rnd = _random.random()
        pause = TAKEOVER_PAUSE_S * (1 + rnd) if self._young_count >= YOUNG_DROPS_SUSPECT else 0.0
        delay = max(backoff(self._attempt, self._first, self._ceiling, rnd), pause)
        self._attempt += 1
        return delay
