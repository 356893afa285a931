"""How long a requester waits for a handler's first answer before it suspects it (protocol §4.7).

Ports ``src/client/requesting/failure-detector.ts``. Learnt per handler from what this
requester observes, as TCP's retransmission timer does (RFC 6298): a smoothed round trip and
its variation, deadline = SRTT + 4*RTTVAR, kept between ``ack_timeout`` and a ceiling, and
doubled for each time a request already waited that long for it in vain.

It only ever *suspects*: a suspected handler is passed over while other providers are fine
(handler_choice) and is trusted again as soon as it answers, when its presence changes, or
after a while. Whether a handler is gone is for its presence alone to say (§7.3). Pure: times
(ms) are passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

#: Gains of RFC 6298 §2.3.
ALPHA = 1 / 8
BETA = 1 / 4

#: The deadline never grows past this many ``ack_timeout``s, however slow or missed the handler.
CEILING_IN_ACK_TIMEOUTS = 8
#: A suspicion lapses after this many ``ack_timeout``s, so that a handler passed over is tried again.
SUSPICION_IN_ACK_TIMEOUTS = 15


def _field(presence: Any, name: str) -> Any:
    """``since`` or ``seq`` of a presence given as a dict (a parsed presence) or an object."""
    if presence is None:
        return None
    if isinstance(presence, dict):
        return presence.get(name)
    return getattr(presence, name, None)


@dataclass
class _HandlerRecord:
    srtt: float = math.nan
    rttvar: float = 0.0
    #: Suspected until then (epoch ms); 0 when not suspected.
    suspected_until: float = 0
    #: The presence it was learnt under (§7.1): another ``since`` is another instance.
    since: Any = None
    seq: Any = None


class FailureDetector:
    """Per-handler acknowledgement deadlines and suspicions (protocol §4.7)."""

    def __init__(self, presence_of: Callable[[str], Optional[Any]]) -> None:
        """``presence_of(handler)``: its current presence (``since``, ``seq``), read when its record is made."""
        self._presence_of = presence_of
        self._handlers: dict[str, _HandlerRecord] = {}

    def deadline(self, handler: str, ack_timeout: float, misses: int = 0) -> float:
        """How long (ms) to wait for ``handler``'s first answer to a command written now, after
        ``misses`` waits in vain for this request: ``ack_timeout`` for a handler not heard from
        yet, else SRTT + 4*RTTVAR, at least ``ack_timeout``; doubled per miss; at most
        ``CEILING_IN_ACK_TIMEOUTS`` x ``ack_timeout``."""
        record = self._handlers.get(handler)
        estimate = max(ack_timeout, record.srtt + 4 * record.rttvar) if record is not None and not math.isnan(record.srtt) else ack_timeout
        return min(CEILING_IN_ACK_TIMEOUTS * ack_timeout, estimate if misses == 0 else estimate * 2**misses)

    def answered(self, handler: str, rtt: float) -> None:
        """``handler`` gave its first answer ``rtt`` ms after the command was written; lifts a suspicion."""
        record = self._record_of(handler)
        sample = rtt if rtt > 0 else 0
        if math.isnan(record.srtt):
            record.srtt = sample
            record.rttvar = sample / 2
        else:
            record.rttvar = (1 - BETA) * record.rttvar + BETA * abs(record.srtt - sample)
            record.srtt = (1 - ALPHA) * record.srtt + ALPHA * sample
        record.suspected_until = 0

    def missed(self, handler: str, ack_timeout: float, now: float) -> bool:
        """No first answer from ``handler`` within its deadline, at ``now`` (ms): suspected until it
        answers, its presence changes, or ``SUSPICION_IN_ACK_TIMEOUTS`` x ``ack_timeout`` pass.
        Returns whether it was not suspected before."""
        was_suspected = self.is_suspected(handler, now)
        self._record_of(handler).suspected_until = now + SUSPICION_IN_ACK_TIMEOUTS * ack_timeout
        return not was_suspected

    def is_suspected(self, handler: str, now: float) -> bool:
        """Whether ``handler`` is suspected at ``now`` (ms)."""
        record = self._handlers.get(handler)
        if record is None or record.suspected_until == 0:
            return False
        if now < record.suspected_until:
            return True
        record.suspected_until = 0
        return False

    def presence_changed(self, handler: str, presence: Optional[Any]) -> None:
        """``handler``'s presence changed (§7.1): a new instance (another ``since``) or a cleared
        presence (None) starts from nothing; a newer presence of the same instance lifts the
        suspicion but keeps what was measured."""
        record = self._handlers.get(handler)
        if record is None:
            return
        if presence is None or _field(presence, "since") != record.since:
            del self._handlers[handler]
            return
        seq = _field(presence, "seq")
        if seq != record.seq:
            record.seq = seq
            record.suspected_until = 0

    def _record_of(self, handler: str) -> _HandlerRecord:
        record = self._handlers.get(handler)
        if record is None:
            presence = self._presence_of(handler)
            record = _HandlerRecord(since=_field(presence, "since"), seq=_field(presence, "seq"))
            self._handlers[handler] = record
        return record
