"""Who is connected and which actions they serve, from the retained presences on
`relais/presence/<id>` (protocol §7), a port of `src/client/presence/directory.ts`: the
ordering rule (§7.1, in `relais.protocol.presence`), the loading barrier and its settling
(§7.2), and the events the requester acts on (§7.3). An on-demand directory (the `directory`
option, §7.2) follows every presence only once asked (`want()`).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional

from ..protocol.errors import NotSentError, TimeoutError
from ..protocol.presence import PresenceOrder, judge_presence, order_after, parse_presence

#: The settling ends at the latest this many `directory_settle` windows after our own presence came back (§7.2).
MAX_SETTLE_IN_WINDOWS = 20

PresenceInfo = dict  # a presence payload as read by parse_presence (protocol §7.1)


def _all_actions(info: PresenceInfo) -> list[str]:
    return list(info.get("actions") or []) + list(info.get("realtimeActions") or [])


def _order_of(info: PresenceInfo) -> PresenceOrder:
    return PresenceOrder(since=info.get("since", 0), seq=info.get("seq") or 0, instance=info.get("instance"))


class Directory:
    def __init__(self, loop: asyncio.AbstractEventLoop, settle_s: float,
                 follow: Optional[Callable[[], "asyncio.Future[None]"]] = None) -> None:
        """`settle_s`: how long after our own presence comes back the directory is taken as
        complete (`directory_settle`). `follow`, for an on-demand directory: subscribes to every
        presence, its future done on the broker's SUBACK."""
        self.loop = loop
        self.settle_s = settle_s
        self._follow = follow
        #: Whether it follows every presence: from the start for a full directory, from the first `want()` for an on-demand one.
        self._following = follow is None
        #: Why an on-demand directory could not follow the presences (its subscription refused), for the errors of what found nobody.
        self._failure: Optional[str] = None
        #: The client is closing or closed: nothing may start following or arm a timer any more.
        self._stopped = False
        self._clients: dict[str, PresenceInfo] = {}
        self._providers: dict[str, set[str]] = {}
        self._unconfirmed: Optional[set[str]] = None
        self._settled = False
        self._settle_timer: Optional[asyncio.TimerHandle] = None
        self._settle_started = 0.0
        self.loaded: asyncio.Future[None] = loop.create_future()
        #: Listeners: gone(client_id, info|None), change(client_id, info|None), settled().
        self.on_gone: list[Callable[[str, Optional[PresenceInfo]], None]] = []
        self.on_change: list[Callable[[str, Optional[PresenceInfo]], None]] = []
        self.on_settled: list[Callable[[], None]] = []

    @property
    def following(self) -> bool:
        """Whether it follows every presence on the bus (an on-demand one only once `want()` was called)."""
        return self._following

    @property
    def failure(self) -> Optional[str]:
        """Why it could not follow the presences, when its subscription was refused."""
        return self._failure

    def want(self) -> None:
        """What needs the whole directory calls this first: an on-demand one subscribes to every
        presence and settles as after a connection (§7.2: a request for an action nobody announces
        yet is held meanwhile). A no-op for a full directory, or once following."""
        if self._following or self._stopped:
            return
        self._following = True
        self._settled = False
        assert self._follow is not None
        self._follow().add_done_callback(self._followed)

    def _followed(self, subscribed: "asyncio.Future[None]") -> None:
        if subscribed.cancelled() or subscribed.exception() is not None:
            # Nothing will come: what waits is answered with what is known, and says why.
            why = "cancelled" if subscribed.cancelled() else str(subscribed.exception())
            self._failure = f"cannot subscribe to the presences: {why}"
            if not self._settled:
                self._end_reload()
            return
        # The broker sends the retained presences after its SUBACK: the settling counts from there.
        if self._settled or self._settle_timer is not None or self._stopped:
            return
        self._settle_started = time.monotonic()
        self._arm_settle()

    async def when_settled(self, timeout: float) -> None:
        """Returns once settled (at once if it is), or when `timeout` s have passed, whatever it holds then."""
        if self._settled:
            return
        settled: asyncio.Future[None] = self.loop.create_future()

        def on_settled() -> None:
            if not settled.done():
                settled.set_result(None)

        self.on_settled.append(on_settled)
        try:
            await asyncio.wait({settled}, timeout=timeout)
        finally:
            self.on_settled.remove(on_settled)
            if not settled.done():
                settled.cancel()

    @property
    def settled(self) -> bool:
        """False while retained presences may still be arriving (§7.2)."""
        return self._settled

    def begin_reload(self) -> None:
        """After a reconnection: every entry must be confirmed again by the retained presences."""
        self._settled = False
        self._unconfirmed = set(self._clients)

    def own_presence_back(self) -> None:
        if not self.loaded.done():
            self.loaded.set_result(None)
        # Not following: there is nothing else to wait for.
        if not self._following:
            if not self._settled:
                self._end_reload()
            return
        if self._settled or self._settle_timer is not None:
            return
        self._settle_started = time.monotonic()
        self._arm_settle()

    def _arm_settle(self) -> None:
        if self._settle_timer is not None:
            self._settle_timer.cancel()
        self._settle_timer = self.loop.call_later(self.settle_s, self._end_reload)

    def stop(self) -> None:
        self._stopped = True
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None

    def _end_reload(self) -> None:
        self._settle_timer = None
        stale, self._unconfirmed = self._unconfirmed, None
        self._settled = True
        for client_id in list(stale or ()):
            self.update(client_id, None)
        for listener in list(self.on_settled):
            listener()

    def update(self, client_id: str, envelope: Optional[dict]) -> None:
        """Records a presence; `None` means the retained presence was cleared (or invalid)."""
        if self._unconfirmed is not None:
            self._unconfirmed.discard(client_id)
        if self._settle_timer is not None and time.monotonic() - self._settle_started < MAX_SETTLE_IN_WINDOWS * self.settle_s:
            self._arm_settle()
        info: Optional[PresenceInfo] = parse_presence(envelope.get("payload")) if envelope is not None else None
        before = self._clients.get(client_id)
        if info is not None:
            known = _order_of(before) if before is not None else None
            verdict = judge_presence(info, known)
            if verdict == "older":
                return
            if verdict == "forget":
                info = None
            else:
                info["seq"] = order_after(info, known).seq
        if before is not None:
            for action in _all_actions(before):
                self._providers.get(action, set()).discard(client_id)
        if info is not None:
            self._clients[client_id] = info
            if info.get("status") == "alive" and info.get("lifecycle") != "starting":
                for action in _all_actions(info):
                    self._providers.setdefault(action, set()).add(client_id)
        else:
            self._clients.pop(client_id, None)
        for listener in list(self.on_change):
            listener(client_id, info)
        if before is not None and before.get("status") == "alive" and (info is None or info.get("status") != "alive"):
            for listener in list(self.on_gone):
                listener(client_id, info)

    def providers(self, action: str) -> set[str]:
        """Ids of the alive clients that announce `action`."""
        return self._providers.get(action) or set()

    def serves(self, client_id: str, action: str) -> bool:
        """Whether `client_id` takes a command for `action` targeted at it (announced, or built in, §11.4)."""
        if client_id in self.providers(action):
            return True
        info = self._clients.get(client_id)
        return info is not None and info.get("status") == "alive" and action in (info.get("targetedActions") or [])

    def get(self, client_id: str) -> Optional[PresenceInfo]:
        return self._clients.get(client_id)

    def list(self) -> list[tuple[str, PresenceInfo]]:
        return list(self._clients.items())

    async def wait_for_provider(self, action: str, target: Optional[str], timeout: float, stopped: asyncio.Future[Any]) -> None:
        def available() -> bool:
            return self.serves(target, action) if target else len(self.providers(action)) > 0

        if available():
            return
        found: asyncio.Future[None] = self.loop.create_future()

        def on_change(_id: str, _info: Optional[PresenceInfo]) -> None:
            if available() and not found.done():
                found.set_result(None)

        self.on_change.append(on_change)
        try:
            done, _ = await asyncio.wait({found, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if found in done:
                return
            if stopped in done:
                raise NotSentError(str(stopped.result()) if not stopped.exception() else "the client is closed")
            raise TimeoutError(f"no handler for {action}{f' on {target}' if target else ''} appeared within {timeout * 1000:.0f} ms")
        finally:
            self.on_change.remove(on_change)
            if not found.done():
                found.cancel()
