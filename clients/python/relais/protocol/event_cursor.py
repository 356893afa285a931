"""A consumer's place in the router's event stream (protocol §11.8), as a state machine.

Ports ``src/protocol/event-cursor.ts``: the live batches pushed on ``relais/events/notification``
and the pages of ``relais/events/get`` in, what to yield and what to ask the router out. Each
event is yielded once, in cursor order; whatever the pushes miss (a gap in the cursors, a lost
connection, a consumer too slow) is replayed from the router first; events that retention
removed before they could be read are told as an ``EventGap`` with their count. No I/O, no
timer: the shell asks, waits and yields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

#: Live events held while catching up; beyond, they are dropped and replayed from the router.
MAX_HELD_EVENTS = 10_000
#: Events asked per page while catching up.
EVENTS_PAGE = 1000


@dataclass(frozen=True)
class EventGap:
    """Yielded when retention removed ``missed`` events after cursor ``after`` before this consumer could read them."""

    missed: int
    after: int
    type: str = "gap"


@dataclass
class EventCatchUp:
    """One replay from the router, done: why (``start``, ``reconnection``, ``gap``), the cursor it
    read from, the events it yielded, and those retention removed (also yielded as an EventGap)."""

    reason: str
    after: int
    events: int = 0
    missed: int = 0


@dataclass(frozen=True)
class Answered:
    """What to yield after a page, in order (a gap first), and what the replay found once it ends."""

    items: list = field(default_factory=list)
    caught_up: Optional[EventCatchUp] = None


class EventCursor:
    """Where a consumer is in the event stream (protocol §11.8)."""

    def __init__(self, since: Optional[int] = None) -> None:
        """``since``: yield the events after this cursor (first those stored, then live ones); None: from now on."""
        self._held: list[dict] = []
        self._replay_wanted = True
        self._replaying = False
        self._at: Optional[int] = since
        self._next_reason = "start"
        self._catch_up: Optional[EventCatchUp] = None

    @property
    def cursor(self) -> Optional[int]:
        """The cursor of the last event yielded (or skipped as missed); None before the first answer when started from now."""
        return self._at

    def ask(self) -> Optional[dict]:
        """The payload of the ``relais/events/get`` to send now, or None when the live events can be read."""
        if not self._replaying:
            if not self._replay_wanted:
                return None
            self._replay_wanted = False
            self._replaying = True
            self._catch_up = None if self._at is None else EventCatchUp(self._next_reason, self._at)
            self._next_reason = "gap"
        return {"limit": 1} if self._at is None else {"since": self._at, "limit": EVENTS_PAGE}

    def answered(self, page: dict) -> Answered:
        """The router answered the last ``ask()`` with ``page``: what to yield, in order, and,
        when this page ends a replay, what that replay found."""
        if self._at is None:
            # From now on: the newest cursor stored is where the live events take over.
            self._at = page.get("latest", 0)
            self._replaying = False
            return Answered([])
        items: list[Union[dict, EventGap]] = []
        missed = page.get("missed") or 0
        if missed:
            items.append(EventGap(missed, self._at))
        events = page.get("events") or []
        for event in events:
            cursor: Any = event.get("cursor") if isinstance(event, dict) else None
            if not isinstance(cursor, int) or cursor <= self._at:
                continue
            items.append(event)
            self._at = cursor
        if missed and not events:
            self._at = max(self._at, page.get("latest", 0))
        catch_up = self._catch_up
        if catch_up is not None:
            catch_up.missed += missed
            catch_up.events += len(items) - (1 if missed else 0)
        if page.get("more"):
            return Answered(items)
        self._replaying = False
        self._catch_up = None
        return Answered(items, catch_up)

    def failed(self) -> None:
        """The router did not answer the last ``ask()``: it is asked again (after a pause the
        shell decides), for the same reason unless a reconnection came meanwhile."""
        self._replaying = False
        self._replay_wanted = True
        if self._catch_up is not None and self._next_reason == "gap":
            self._next_reason = self._catch_up.reason
        self._catch_up = None

    def pushed(self, events: Iterable[dict]) -> None:
        """A live batch arrived. Beyond ``MAX_HELD_EVENTS`` held, they are dropped and replayed from the router."""
        events = list(events)
        if len(self._held) + len(events) > MAX_HELD_EVENTS:
            self._held = []
            self._missed_live()
        else:
            self._held.extend(events)

    def reconnected(self) -> None:
        """The connection came back: what was pushed while away is in the router, not here."""
        self._replay_wanted = True
        self._next_reason = "reconnection"

    def _missed_live(self) -> None:
        self._replay_wanted = True
        if self._next_reason != "reconnection":
            self._next_reason = "gap"

    def live(self) -> list[dict]:
        """The live events to yield now, in cursor order, none yielded before. At a gap in the
        cursors the rest is left to a replay from the router, which has them too."""
        if self._replaying or self._replay_wanted or self._at is None or not self._held:
            return []
        batch, self._held = self._held, []
        out: list[dict] = []
        for event in batch:
            cursor: Any = event.get("cursor") if isinstance(event, dict) else None
            if not isinstance(cursor, int) or cursor <= self._at:
                continue  # yielded by a replay already (or not an event)
            if cursor > self._at + 1:
                self._missed_live()
                break
            out.append(event)
            self._at = cursor
        return out

    @property
    def idle(self) -> bool:
        """Nothing to do until an event is pushed, the connection comes back, or the consumer stops."""
        return not self._replaying and not self._replay_wanted and not self._held
