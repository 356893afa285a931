"""The router's one event stream on the wire (protocol §11.8): what an event holds, the topic it
is pushed on and the action that replays it. Ports ``src/protocol/events.ts``.

An event is a dict ``{"cursor", "time", "type", "data"}``; ``cursor`` increases by one from each
event to the next. A page of ``relais/events/get`` is ``{"events", "more", "latest", "missed"?}``.
"""
from __future__ import annotations

EVENTS_CATEGORY = "relais/events"
EVENTS_ACTION = "relais/events/get"

EVENT_TYPES: tuple[str, ...] = (
    "client", "request.started", "request.finished", "notification", "log", "history.gap", "site.up", "site.down", "site.sync",
)

#: The largest ``limit`` of a ``relais/events/get`` (protocol §11.8), and the default one.
MAX_EVENTS_LIMIT = 5000
DEFAULT_EVENTS_LIMIT = 1000
