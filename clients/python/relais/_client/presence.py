"""This client's own presence (protocol §7), a port of `src/client/presence/presence.ts` and
`twins.ts`: the will it leaves with the broker, its `alive` announcements (serialised, so the
broker keeps the latest), the re-announcement 100 ms after a reconnection, the farewell, and
what to do about another client using its id (§7.5: the last one started wins).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Callable, Optional

from ..protocol.envelope import encode
from ..protocol.messages import presence_message
from ..protocol.topics import presence_topic
from .options import ResolvedOptions

log = logging.getLogger("relais.presence")

#: Pause between a reconnection and our presence, for the retained presences to arrive first (§7.5).
REANNOUNCE_DELAY_S = 0.1
#: How long after a later instance's will a lost connection means that instance is alive (§7.5).
TWIN_WINDOW_S = 10.0
#: How long the farewell waits for the broker's acknowledgement.
FAREWELL_GRACE_S = 2.0

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def random_text(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class TwinWatch:
    """Judges each presence of another instance seen on our own presence topic (§7.5)."""

    def __init__(self, since: int) -> None:
        self.since = since
        self.instance = random_text(8)
        self._older_seen: set[str] = set()
        self._later_wills: dict[str, list[float]] = {}
        self._suspected: Optional[tuple[dict, float]] = None

    def is_other(self, instance: Any) -> bool:
        return instance is not None and instance != self.instance

    def judge(self, other: dict, now: Optional[float] = None) -> str:
        now = time.monotonic() if now is None else now
        if other.get("status") == "stopped":
            return "ignore"
        instance = str(other.get("instance"))
        other_since = other.get("since") or 0
        later = other_since > self.since or (other_since == self.since and instance > self.instance)
        if not later:
            if other.get("status") != "alive" or instance in self._older_seen:
                return "ignore"
            self._older_seen.add(instance)
            return "older-twin"
        if other.get("status") == "alive":
            return "give-way"
        # A live twin's will fires each time our reconnection knocks it off; a crashed one's once.
        wills = [at for at in self._later_wills.get(instance, []) if now - at < TWIN_WINDOW_S] + [now]
        self._later_wills[instance] = wills
        if len(wills) >= 2:
            return "give-way"
        self._suspected = (other, now + TWIN_WINDOW_S)
        return "suspected-twin"

    def knocked_off_by(self, now: Optional[float] = None) -> Optional[dict]:
        now = time.monotonic() if now is None else now
        if self._suspected is not None and now < self._suspected[1]:
            return self._suspected[0]
        return None


def where_it_runs(presence: dict) -> str:
    return f"host {presence.get('host', '?')}, pid {presence.get('pid', '?')}"


class Presence:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: ResolvedOptions,
                 actions: Callable[[str], list[str]], targeted_actions: Callable[[], list[str]],
                 replaced: Callable[[dict, str], None]) -> None:
        self.loop = loop
        self.options = options
        self.twins = TwinWatch(int(time.time() * 1000))
        self.topic = presence_topic(options.id)
        self._actions = actions
        self._targeted_actions = targeted_actions
        self._replaced = replaced
        self._seq = 0
        self._announcing: Optional[asyncio.Future[None]] = None
        self._reannounce_timer: Optional[asyncio.TimerHandle] = None
        #: The latest presence the broker acknowledged, and the timer that publishes it once more
        #: (`presence_repeat`, protocol §7.1 "On a cluster").
        self._latest: Optional[str] = None
        self._repeat_timer: Optional[asyncio.TimerHandle] = None
        self._stopped = False
        self.starting = options.startup == "manual"
        self.transport: Any = None
        #: The hashes of the declared contracts, by action (protocol §7.6).
        self.contract_hashes: Callable[[], dict] = lambda: {}

    def will(self) -> tuple[str, str]:
        """The Last Will: `dead`, flagged ephemeral for an ephemeral client (§7.1)."""
        return self.topic, self._body("dead")

    def _body(self, status: str) -> str:
        starting = status == "alive" and self.starting
        alive = status == "alive" and not starting
        info: dict[str, Any] = {**self.options.host_facts, **self.options.info}
        info.update(
            status=status,
            actions=self._actions("main") if alive else [],
            realtimeActions=self._actions("realtime") if alive else [],
            targetedActions=self._targeted_actions() if alive else [],
            since=self.twins.since,
            seq=self._seq,
            instance=self.twins.instance,
            # This library acknowledges commands and remembers their tokens (protocol §4.7).
            acks=True,
        )
        self._seq += 1
        # Only when there are some: presence is retained for every client, keep it small.
        contracts = self.contract_hashes() if alive else {}
        if contracts:
            info["contracts"] = contracts
        if self.options.ephemeral:
            info["ephemeral"] = True
        if starting:
            info["lifecycle"] = "starting"
        return encode(presence_message(self.options.id, info))

    async def mark_ready(self) -> None:
        if not self.starting:
            return
        self.starting = False
        await self.announce()

    async def announce(self) -> None:
        """Publishes `alive` (retained) and resolves once the broker has it; serialised."""
        await self._enqueue(lambda: self._body("alive"), "announce")

    async def _enqueue(self, body: Callable[[], Optional[str]], what: str) -> None:
        """Publishes `body()` (skipped when it returns None) after what is queued before it."""
        previous = self._announcing
        mine: asyncio.Future[None] = self.loop.create_future()
        self._announcing = mine
        try:
            if previous is not None:
                await asyncio.wait({previous})
            text = body() if self.transport.connected else None
            if text is not None:
                await self.transport.publish_now(self.topic, text, True)
                if what != "repeat":
                    self._repeat_later(text)
        except Exception as error:  # noqa: BLE001
            # A connection lost on the way is not a failure: every reconnection announces again.
            if self.transport.connected and not self._stopped:
                raise
            log.debug("presence (%s) not acknowledged before the connection dropped: %s", what, error)
        finally:
            if not mine.done():
                mine.set_result(None)

    def _repeat_later(self, text: str) -> None:
        """Publishes `text` once more after `presence_repeat`, unless a newer presence went out
        meanwhile: a cluster's nodes copy a retained message to each other after its PUBACK, and a
        client subscribing on another node meanwhile gets the previous presence from that node's
        store, not this one live (protocol §7.1, "On a cluster"). Same `seq`: ignored by who has it."""
        if self._repeat_timer is not None:
            self._repeat_timer.cancel()
            self._repeat_timer = None
        self._latest = text
        if self.options.presence_repeat <= 0 or self._stopped or text == "":
            return
        self._repeat_timer = self.loop.call_later(self.options.presence_repeat, self._repeat, text)

    def _repeat(self, text: str) -> None:
        self._repeat_timer = None
        if self._stopped or not self.transport.connected:
            return
        # Checked when its turn comes: a newer presence queued before it must stay the retained one.
        task = self.loop.create_task(self._enqueue(lambda: text if self._latest == text else None, "repeat"))
        task.add_done_callback(_log_failure("presence not repeated"))

    def reannounce_soon(self) -> None:
        if self._reannounce_timer is not None:
            self._reannounce_timer.cancel()
        # The announcement is repeated in its turn; an older presence must not come back first.
        if self._repeat_timer is not None:
            self._repeat_timer.cancel()
            self._repeat_timer = None
        self._reannounce_timer = self.loop.call_later(REANNOUNCE_DELAY_S, self._reannounce)

    def _reannounce(self) -> None:
        if self._stopped or not self.transport.connected:
            return
        task = self.loop.create_task(self.announce())
        task.add_done_callback(_log_failure("presence not republished"))

    def on_own_topic(self, info: dict) -> bool:
        """A presence on our own topic: True when it is ours (the loading barrier waits for it)."""
        if not self.twins.is_other(info.get("instance")):
            return True
        if self._stopped:
            return False
        where = where_it_runs(info)
        verdict = self.twins.judge(info)
        if verdict == "older-twin":
            log.warning("an older client uses our id %s (%s); it gives way to this one", self.options.id, where)
        elif verdict == "suspected-twin":
            log.warning("a client started later with our id %s (%s) has died (its will); carrying on", self.options.id, where)
            self._reclaim()
        elif verdict == "give-way":
            self._give_way(info)
        return False

    def knocked_off(self) -> bool:
        twin = self.twins.knocked_off_by()
        if twin is not None:
            self._give_way(twin)
        return twin is not None

    def _give_way(self, other: dict) -> None:
        where = where_it_runs(other)
        message = (f"another client connected with the id {self.options.id} ({where}): only one connection may hold "
                   f"an id, so this one stops; give each client its own id")
        log.error(message)
        self._replaced(other, message)

    def _reclaim(self) -> None:
        """Clears the retained presence on our topic, then announces ours (§7.5)."""
        async def run() -> None:
            try:
                await self._enqueue(lambda: "", "clear")
            except Exception:  # noqa: BLE001
                pass
            await self.announce()

        self.loop.create_task(run()).add_done_callback(_log_failure("presence not republished"))

    async def farewell(self) -> None:
        """On a clean close: `stopped` (or cleared, for an ephemeral client), bounded in time."""
        self.stop()
        if not self.transport.connected:
            return
        body = "" if self.options.ephemeral else self._body("stopped")
        try:
            await self.transport.publish_now(self.topic, body, True, FAREWELL_GRACE_S)
        except Exception as error:  # noqa: BLE001
            log.warning("farewell presence not acknowledged; the will may announce this client as dead: %s", error)

    def stop(self) -> None:
        self._stopped = True
        if self._reannounce_timer is not None:
            self._reannounce_timer.cancel()
        if self._repeat_timer is not None:
            self._repeat_timer.cancel()


def _log_failure(what: str) -> Callable[["asyncio.Task[Any]"], None]:
    def done(task: "asyncio.Task[Any]") -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: %s", what, task.exception())
    return done
