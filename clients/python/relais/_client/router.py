"""What a client asks of the router (protocol §11), ports of `src/client/requesting/follow.ts`
and `event-feed.ts`: the client registry (§11.3), the history and following one request (§11.2),
and the event stream resumed across lost connections and broker restarts (§11.8), the shell of
an `EventCursor` (`relais.protocol.event_cursor`, where the rules of resuming and gaps live).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from ..protocol.event_cursor import EventCursor, EventGap
from ..protocol.topics import notification_topic
from .resumable import is_stream_interrupted, resumed_steps

if TYPE_CHECKING:
    from .bus import Bus

log = logging.getLogger("relais.router")

CLIENTS_LIST_ACTION = "relais/clients/list/get"
HISTORY_GET_ACTION = "relais/history/get"
HISTORY_FOLLOW_ACTION = "relais/history/follow"
EVENTS_ACTION = "relais/events/get"
EVENTS_CATEGORY = "relais/events"
#: Pause between attempts while the router does not answer.
RETRY_S = 1.0

_RENAMED = {"ctime_from": "ctimeFrom", "ctime_to": "ctimeTo", "etime_from": "etimeFrom", "etime_to": "etimeTo",
            "after_id": "afterId", "before_id": "beforeId"}


def _wire_query(query: dict[str, Any]) -> dict[str, Any]:
    """snake_case keyword arguments as the router's camelCase fields (§11.2); None left out."""
    return {_RENAMED.get(key, key): value for key, value in query.items() if value is not None}


async def registry(bus: "Bus", timeout: Optional[float]) -> dict:
    """`relais/clients/list/get` (§11.3), every page: `{"revision", "total", "clients": {id: {...}}}`.

    Pages are asked with `after` = the previous answer's `next` until an answer has none; the
    result keeps the FIRST page's revision, so the detail notifications with a larger one are the
    changes since (a client added before `after` while paging arrives that way, §11.3).
    """
    first = await bus.request(CLIENTS_LIST_ACTION, {}, timeout=timeout)
    clients = dict(first.get("clients", {}))
    total = first.get("total", len(clients))
    after = first.get("next")
    while after is not None:
        page = await bus.request(CLIENTS_LIST_ACTION, {"after": after}, timeout=timeout)
        clients.update(page.get("clients", {}))
        total = page.get("total", total)
        following = page.get("next")
        # A registry that does not move on would loop forever: ids go up, or the reading stops.
        if following is not None and following <= after:
            raise RuntimeError(f"the registry's page after {after} says next {following}: not after it")
        after = following
    return {"revision": first["revision"], "total": total, "clients": clients}


async def history(bus: "Bus", query: dict[str, Any]) -> Any:
    """`relais/history/get` (§11.2): `{"rows": [...], "more": bool}`."""
    timeout = query.pop("timeout", None)
    return await bus.request(HISTORY_GET_ACTION, _wire_query(query), timeout=timeout)


async def follow(bus: "Bus", token: str, options: dict[str, Any]) -> AsyncIterator[dict]:
    """Each history row of `token` in order, the last one its final, error or put row (§11.2).
    Asked again after the last row yielded when steps may have been lost (this client's
    reconnection, the router's `StreamInterruptedError`): none missed or doubled."""
    last: Optional[int] = options.get("after_id")

    def payload() -> dict:
        return {"token": token, **({"afterId": last} if last is not None else {})}
    # One deadline for the whole follow, however many times it is asked again (as in TS).
    timeout = options.get("timeout")
    deadline = None if timeout is None else time.monotonic() + timeout

    def remaining() -> Optional[float]:
        return None if deadline is None else max(0.001, deadline - time.monotonic())
    steps = resumed_steps(bus, HISTORY_FOLLOW_ACTION, payload, remaining, is_stream_interrupted, f"history follow of {token}")
    async with contextlib.aclosing(steps):
        async for step in steps:
            rows = step.payload if step.kind == "progress" and isinstance(step.payload, list) else [step.payload] if step.kind == "final" and step.payload else []
            for row in rows:
                if last is not None and row.get("id", 0) <= last:
                    continue
                last = row.get("id", last)
                yield row
            if step.kind == "final":
                return


async def events(bus: "Bus", since: Optional[int], options: dict[str, Any]) -> AsyncIterator[dict]:
    """The router's one event stream from `since` (or from now), each event once, in cursor
    order, across lost connections (§11.8). Each item is a dict: an event `{"cursor", "time",
    "type", "data"}`, or a gap `{"type": "gap", "missed": n, "after": cursor}` when retention
    removed `n` events after `cursor` before they could be read. `on_catch_up` (an option) is
    called with each finished replay (`relais.protocol.event_cursor.EventCatchUp`)."""
    cursor = EventCursor(since)
    wake = asyncio.Event()
    on_catch_up = options.get("on_catch_up")
    subscription = await bus.subscribe(notification_topic(EVENTS_CATEGORY))

    async def pump_live() -> None:
        async for message in subscription:
            payload = message.payload
            batch = payload.get("events") if isinstance(payload, dict) else None
            if isinstance(batch, list):
                cursor.pushed(batch)
                wake.set()

    def online() -> None:
        cursor.reconnected()
        wake.set()

    live_task = asyncio.ensure_future(pump_live())
    bus._on_main_online.append(online)
    try:
        while not bus.closed:
            ask = cursor.ask()
            if ask is not None:
                try:
                    page = await bus.request(EVENTS_ACTION, ask)
                except Exception as error:  # noqa: BLE001 - the router is away: try again
                    if bus.closed:
                        return
                    log.debug("events: the router did not answer (%s); trying again", error)
                    cursor.failed()
                    await asyncio.sleep(RETRY_S)
                    continue
                answered = cursor.answered(page)
                items, caught_up = _items_and_catch_up(answered)
                for item in items:
                    yield item
                if caught_up and on_catch_up is not None:
                    on_catch_up(caught_up)
                continue
            for item in cursor.live():
                yield item
            if cursor.idle:
                wake.clear()
                await wake.wait()
    finally:
        if online in bus._on_main_online:
            bus._on_main_online.remove(online)
        live_task.cancel()
        await subscription.unsubscribe()


def _items_and_catch_up(answered: Any) -> tuple[list, Any]:
    """The items of a page as `events()` yields them: events as the router sent them, a gap as
    the dict `{"type": "gap", "missed": n, "after": cursor}` (the TS `EventGap`), so that every
    item is a dict whose `type` says what it is."""
    items = [{"type": "gap", "missed": item.missed, "after": item.after} if isinstance(item, EventGap) else item
             for item in answered.items]
    return items, answered.caught_up
