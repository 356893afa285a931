"""Ports the "directory on demand" tests of test/unit/directory-settle.test.ts (protocol §7.2): an
on-demand directory is settled at once while it follows nothing, `want()` subscribes once and
settles `directory_settle` after the SUBACK, and a refused subscription settles it with what it
knows, saying why (in the NoHandlerError of a request that then finds nobody). On a manual clock,
as the TypeScript tests run on mocked timers."""
from __future__ import annotations

import asyncio
import heapq
import itertools
import unittest
from types import SimpleNamespace
from typing import Any, Callable
from unittest import mock

import relais
from relais._client import directory as directory_module
from relais._client.directory import Directory
from relais._client.requester import _World
from relais.protocol.errors import NotAuthorizedError

SETTLE = 0.5


def presence(client_id: str) -> dict:
    return {"type": "notification", "source": client_id, "destination": "*",
            "payload": {"status": "alive", "actions": [f"serve/{client_id}"], "since": 1, "seq": 1}}


class ManualClock:
    """The two things a Directory asks of its loop, `call_later` on a clock moved by `tick`, and
    `create_future` from the running loop; `time.monotonic` in the directory module reads it too."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._order = itertools.count()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        handle = asyncio.TimerHandle(self.now + delay, callback, args, loop)
        heapq.heappush(self._timers, (self.now + delay, next(self._order), handle))
        return handle

    def create_future(self) -> "asyncio.Future[Any]":
        return asyncio.get_running_loop().create_future()

    def tick(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, handle = heapq.heappop(self._timers)
            self.now = when
            if not handle.cancelled():
                handle._run()
        self.now = end


class DirectoryOnDemandTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.clock = ManualClock()
        # The directory module's `time` only (the event loop keeps its own clock).
        patcher = mock.patch.object(directory_module, "time", SimpleNamespace(monotonic=lambda: self.clock.now))
        patcher.start()
        self.addCleanup(patcher.stop)

    async def test_settled_at_once_while_it_follows_nothing_want_subscribes_once_and_settles_settle_after_the_suback(self) -> None:
        subscriptions: list[asyncio.Future[None]] = []

        def follow() -> "asyncio.Future[None]":
            subscriptions.append(self.clock.create_future())
            return subscriptions[-1]

        directory = Directory(self.clock, SETTLE, follow)  # type: ignore[arg-type]
        directory.own_presence_back()
        self.assertEqual((directory.following, directory.settled), (False, True), "nothing to wait for")
        directory.want()
        directory.want()
        self.assertEqual((directory.following, directory.settled, len(subscriptions)), (True, False, 1), "one subscription, settling again")
        self.clock.tick(10 * SETTLE)
        self.assertFalse(directory.settled, "not settled before the SUBACK")
        subscriptions[0].set_result(None)
        await asyncio.sleep(0)
        directory.update("handler", presence("handler"))
        self.clock.tick(SETTLE)
        self.assertTrue(directory.settled)
        self.assertIn("handler", directory.providers("serve/handler"))

    async def test_a_refused_subscription_settles_it_with_what_it_knows_and_says_why(self) -> None:
        def follow() -> "asyncio.Future[None]":
            refused = self.clock.create_future()
            refused.set_exception(NotAuthorizedError("Not authorized"))
            return refused

        directory = Directory(self.clock, SETTLE, follow)  # type: ignore[arg-type]
        directory.own_presence_back()
        directory.want()
        await asyncio.sleep(0)
        self.assertTrue(directory.settled)
        self.assertRegex(directory.failure or "", "cannot subscribe to the presences: Not authorized")
        # What then finds nobody says why (the TS requester's DirectoryWorld does the same).
        requester = SimpleNamespace(directory=directory, options=SimpleNamespace(id="me", max_message_bytes=1 << 20, reconnect_grace=10.0))
        missing = _World(requester).missing("demo/nobody", None)  # type: ignore[arg-type]
        self.assertRegex(str(missing), r"no connected client serves demo/nobody \(this client cannot subscribe to the presences: Not authorized\)")

    async def test_a_full_directory_follows_from_the_start_and_want_asks_nothing(self) -> None:
        directory = Directory(self.clock, SETTLE)  # type: ignore[arg-type]
        self.assertTrue(directory.following)
        directory.want()
        directory.own_presence_back()
        self.assertFalse(directory.settled, "it waits for the retained presences")
        self.clock.tick(SETTLE)
        self.assertTrue(directory.settled)


class DirectoryOptionTest(unittest.TestCase):
    def test_connect_refuses_a_directory_other_than_full_or_on_demand(self) -> None:
        for bad in ("lazy", "", None, "On-Demand"):
            with self.assertRaisesRegex(ValueError, r"directory must be 'full' or 'on-demand', got "):
                relais.connect(id="py-option", broker="mqtt://127.0.0.1:1", directory=bad)
        for good in ("full", "on-demand"):
            self.assertEqual(relais.connect(id="py-option", broker="mqtt://127.0.0.1:1", directory=good)._options.directory, good)


if __name__ == "__main__":
    unittest.main()
