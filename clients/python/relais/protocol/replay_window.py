"""Replay protection for signed messages (protocol §12.3): per sequence stream (a key id and the
signer's boot), the highest ``seq`` seen and a sliding window of the ``WINDOW`` seqs below it,
as IPsec does (RFC 4303 §3.4.3). Ports ``src/client/connection/replay-window.ts``.

Memory is bounded: at most ``max_streams`` streams, least recently used forgotten first; one
forgotten while its newest ``ts`` is within ``max_skew_ms`` is counted in ``unsafe_evictions``.
Pure: the clock (ms) is passed in.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: Seqs tracked below the highest one: a message may be overtaken by up to WINDOW - 1 later ones of its sender.
WINDOW = 1024

FRESH = "fresh"
REPLAYED = "replayed"


@dataclass
class _Stream:
    highest: int
    #: Bit ``seq % WINDOW`` set: that seq was seen (meaningful for seqs within the window only).
    seen: int
    newest_ts: float


class ReplayWindows:
    """The replay windows of every sequence stream heard (protocol §12.3)."""

    def __init__(self, max_streams: int, max_skew_ms: float) -> None:
        self._max_streams = max_streams
        self._max_skew_ms = max_skew_ms
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        #: Streams forgotten while a replay of theirs could still have passed the freshness check.
        self.unsafe_evictions = 0

    @property
    def size(self) -> int:
        return len(self._streams)

    def check(self, stream_key: str, seq: int, ts: float, now: float) -> str:
        """Records ``seq`` of the stream ``stream_key`` and says whether it is new: ``"fresh"``
        or ``"replayed"``. ``ts`` is the sender's clock, ``now`` the receiver's (ms)."""
        stream = self._streams.get(stream_key)
        if stream is not None:
            self._streams.move_to_end(stream_key)
        else:
            stream = _Stream(0, 0, ts)
            self._streams[stream_key] = stream
            self._evict(now)
        if seq > stream.highest:
            gap = seq - stream.highest
            if gap >= WINDOW:
                stream.seen = 0
            else:
                for passed in range(stream.highest + 1, seq + 1):
                    stream.seen &= ~(1 << (passed % WINDOW))
            stream.highest = seq
            stream.seen |= 1 << (seq % WINDOW)
        else:
            if seq <= stream.highest - WINDOW:
                return REPLAYED
            mask = 1 << (seq % WINDOW)
            if stream.seen & mask:
                return REPLAYED
            stream.seen |= mask
        if ts > stream.newest_ts:
            stream.newest_ts = ts
        return FRESH

    def _evict(self, now: float) -> None:
        while len(self._streams) > self._max_streams:
            _, oldest = self._streams.popitem(last=False)
            if now - oldest.newest_ts <= self._max_skew_ms:
                self.unsafe_evictions += 1
