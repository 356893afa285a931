"""What a handler remembers of the commands it has finished (protocol §4.8), so that a command
sent again with the same token is answered with the result already sent instead of running twice.

Ports ``src/client/serving/recent-tokens.ts``: bounded in entries and bytes, oldest forgotten
first; an entry is useless after its command's deadline. Times in epoch ms.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Optional

REMEMBERED_TOKENS = 100_000
REMEMBERED_BYTES = 32 * 1024 * 1024
#: How long a command without a deadline is remembered, and the longest anything is (ms).
REMEMBER_WITHOUT_DEADLINE_MS = 60_000
REMEMBER_AT_MOST_MS = 10 * 60_000


def _now_ms() -> float:
    return time.time() * 1000


@dataclass
class Finished:
    """A finished command: its key, the final response as sent (None once dropped to stay within the byte budget), when it expires."""

    key: str
    body: Optional[str]
    expires_at: float


class RecentTokens:
    """Finished commands by ``"<requester> <token>"`` (protocol §4.8)."""

    def __init__(self, max_entries: int = REMEMBERED_TOKENS, max_bytes: int = REMEMBERED_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        #: Oldest first.
        self._entries: OrderedDict[str, Finished] = OrderedDict()
        #: Entries that may still hold a text, oldest first: their texts go first past the budget.
        self._texts: deque[Finished] = deque()
        self._bytes = 0

    @property
    def size(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: Optional[float] = None) -> Optional[Finished]:
        """The finished command ``key``, if remembered and not expired at ``now`` (ms)."""
        now = _now_ms() if now is None else now
        entry = self._entries.get(key)
        if entry is None or entry.expires_at > now:
            return entry
        self._forget(entry)
        return None

    def remember(self, key: str, body: str, deadline: Optional[float], now: Optional[float] = None) -> None:
        """Remembers a finished command and the final response it got (its wire text), until its
        ``deadline`` (ms; a minute without one, ten at most)."""
        now = _now_ms() if now is None else now
        previous = self._entries.get(key)
        if previous is not None:
            self._forget(previous)
        expires_at = min(now + REMEMBER_AT_MOST_MS, now + REMEMBER_WITHOUT_DEADLINE_MS if deadline is None else deadline)
        entry = Finished(key, body if len(body) <= self._max_bytes else None, expires_at)
        self._entries[key] = entry
        if entry.body is not None:
            self._texts.append(entry)
            self._bytes += len(entry.body)
        self._trim(now)

    def _trim(self, now: float) -> None:
        # Forgotten oldest first: past their deadline, or past the count.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if len(self._entries) <= self._max_entries and oldest.expires_at > now:
                break
            self._forget(oldest)
        # Past the byte budget: texts dropped oldest first, tokens kept (they never run twice).
        while self._bytes > self._max_bytes and self._texts:
            entry = self._texts.popleft()
            if entry.body is not None and self._entries.get(entry.key) is entry:
                self._bytes -= len(entry.body)
                entry.body = None

    def _forget(self, entry: Finished) -> None:
        if self._entries.get(entry.key) is not entry:
            return
        del self._entries[entry.key]
        if entry.body is not None:
            self._bytes -= len(entry.body)
        # Its text no longer counts; it stays out of the byte queue's way.
        entry.body = None
