"""Which alive client gets a request sent without a target (protocol §4.6).

Ports ``src/client/requesting/handler-choice.ts``: the one with the fewest requests pending
from this client, taking turns among equals. A client of a site whose link is down is passed
over while another provider can be reached (§13.4); a suspected client (failure_detector) while
another provider is not suspected (§4.7); both stay in the directory.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Collection, Mapping, Optional, Protocol

from .failure_detector import FailureDetector


class ProviderDirectory(Protocol):
    def providers(self, action: str) -> Collection[str]:
        """The alive clients that announce ``action``, in the order they became known."""


class SiteView(Protocol):
    """What a requester knows of sites (§13.4): whether any link is down, and whether a client is behind one."""

    any_down: bool

    def down(self, client_id: str) -> bool: ...


def _now_ms() -> float:
    return time.time() * 1000


class HandlerChoice:
    """Picks the provider of an untargeted request (protocol §4.6)."""

    def __init__(self, directory: ProviderDirectory, detector: FailureDetector, sites: Optional[SiteView] = None,
                 clock: Callable[[], float] = _now_ms) -> None:
        """``clock()`` gives epoch ms (for the detector's suspicions); the current time by default."""
        self._directory = directory
        self._detector = detector
        self._sites = sites
        self._clock = clock
        self._rotation = 0

    def pick(self, action: str, loads: Callable[[], Mapping[str, int]], exclude: Optional[Collection[str]] = None,
             unsuspected_only: bool = False) -> Optional[str]:
        """The provider to use, or None when the directory knows none outside ``exclude`` (none
        that is not suspected, with ``unsuspected_only``). ``loads()`` tells the requests pending
        per handler; it is asked only when there is a choice."""
        providers = list(self._directory.providers(action))
        if len(providers) <= 1 and not exclude and not unsuspected_only:
            return providers[0] if providers else None
        candidates = [handler for handler in providers if not exclude or handler not in exclude]
        sites: Any = self._sites
        if sites is not None and sites.any_down:
            reachable = [handler for handler in candidates if not sites.down(handler)]
            if reachable:
                candidates = reachable
        now = self._clock()
        unsuspected = [handler for handler in candidates if not self._detector.is_suspected(handler, now)]
        pool = unsuspected if unsuspected or unsuspected_only else candidates
        if len(pool) <= 1:
            return pool[0] if pool else None
        load = loads()
        first = self._rotation % len(pool)
        self._rotation += 1
        best: Optional[str] = None
        best_load = math.inf
        for index in range(len(pool)):
            handler = pool[(first + index) % len(pool)]
            pending = load.get(handler, 0)
            if pending < best_load:
                best, best_load = handler, pending
        return best
