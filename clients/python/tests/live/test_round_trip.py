"""Live smoke tests of the Python client against a real Mosquitto (skipped when it is absent):
a request served and answered between two Python clients, with progress, a cancel, and a
notification. Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import unittest
from contextlib import aclosing

import relais

MOSQUITTO = os.environ.get("RELAIS_MOSQUITTO", "/usr/sbin/mosquitto")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@unittest.skipUnless(shutil.which(MOSQUITTO) or os.path.exists(MOSQUITTO), "mosquitto is not installed")
class RoundTrip(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        port = _free_port()
        self.broker_url = f"mqtt://127.0.0.1:{port}"
        self.broker = subprocess.Popen([MOSQUITTO, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def tearDown(self) -> None:
        self.broker.terminate()
        self.broker.wait(5)

    async def test_request_answered_with_progress_then_final(self) -> None:
        async with relais.connect(id="live-h", broker=self.broker_url) as handler, \
                relais.connect(id="live-r", broker=self.broker_url) as requester:
            async def work(payload, ctx):
                await ctx.progress(0.5, {"half": True})
                await asyncio.sleep(0.05)
                return {"echo": payload, "from": ctx.source}

            await handler.serve("live/work", work)
            await requester.wait_for_handler("live/work", timeout=5)
            steps = [step async for step in requester.call("live/work", {"n": 1}, timeout=5)]
            # The progress step sent in the handler's first step tells the requester it has the
            # command: no acknowledgement is sent (protocol §4.7).
            self.assertEqual([s.kind for s in steps], ["progress", "final"])
            self.assertEqual(steps[0].progress, 0.5)
            self.assertEqual(steps[-1].payload, {"echo": {"n": 1}, "from": "live-r"})

    async def test_cancel_reaches_the_handler_as_cancelled_error(self) -> None:
        async with relais.connect(id="live-h2", broker=self.broker_url) as handler, \
                relais.connect(id="live-r2", broker=self.broker_url) as requester:
            seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def hang(payload, ctx):
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    seen.set_result(str(ctx.abort_reason))
                    raise

            await handler.serve("live/hang", hang)
            await requester.wait_for_handler("live/hang", timeout=5)
            async with aclosing(requester.call("live/hang", {}, timeout=10)) as steps:
                async for step in steps:
                    self.assertEqual(step.kind, "accepted")
                    break
            self.assertIn("consumer stopped reading", await asyncio.wait_for(seen, 5))

    async def test_no_handler_fails_at_once_and_nothing_is_sent(self) -> None:
        async with relais.connect(id="live-r3", broker=self.broker_url) as requester:
            started = time.monotonic()
            with self.assertRaises(relais.NoHandlerError):
                await requester.request("live/nobody", {}, timeout=5)
            self.assertLess(time.monotonic() - started, 4)

    async def test_notification_reaches_a_subscriber(self) -> None:
        async with relais.connect(id="live-n", broker=self.broker_url) as bus:
            async with await bus.subscribe("live/+/notification") as subscription:
                bus.notify("live/temp", {"c": 21.5})
                message = await asyncio.wait_for(subscription.__anext__(), 5)
                self.assertEqual((message.topic, message.payload, message.source), ("live/temp/notification", {"c": 21.5}, "live-n"))


if __name__ == "__main__":
    unittest.main()
