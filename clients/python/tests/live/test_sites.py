"""Sites (protocol §13.4) against a real Mosquitto: a request to a handler on a site whose link
is down fails at once with SiteUnreachableError, or with `wait_for_site` goes once the link is
back up; an untargeted request avoids a provider behind a down link. The link's status and the
site's roster are the retained messages a `relais start --site` link publishes, written here.
Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import time
import unittest

import relais
from relais.protocol.messages import notification_message

from .brokers import HAVE_MOSQUITTO, Mosquitto

SINCE = 1796518934000


def _status(status: str) -> dict:
    return notification_message(source="link-central", priority="normal",
                                payload={"site": "poller-1", "status": status, "since": SINCE, "mode": "pull"})


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class Sites(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto()

    def tearDown(self) -> None:
        self.broker.stop()

    async def test_a_handler_behind_a_down_link_fails_fast_or_waits_for_it(self) -> None:
        async with relais.connect(id="link-central", broker=self.broker.url) as link, \
                relais.connect(id="agent-p1", broker=self.broker.url) as remote:
            await remote.serve("demo/site", lambda payload, ctx: "from the site")
            link.publish("relais/sites/poller-1/clients", notification_message(
                source="link-central", priority="normal", payload={"site": "poller-1", "clients": ["agent-p1"]}), retain=True)
            link.publish("relais/sites/poller-1", _status("down"), retain=True)
            async with relais.connect(id="central-req", broker=self.broker.url) as bus:
                await bus.wait_for_handler("demo/site", timeout=10)
                self.assertEqual([(s["site"], s["status"]["status"]) for s in bus.sites()], [("poller-1", "down")])
                started = time.monotonic()
                with self.assertRaises(relais.SiteUnreachableError) as raised:
                    await bus.request("demo/site", {}, timeout=10)
                self.assertLess(time.monotonic() - started, 2, "it fails at once, it does not wait for its time-out")
                self.assertEqual(str(raised.exception), "site poller-1 is unreachable since 2026-12-06T01:02:14Z (its link is down): "
                                                        "agent-p1 cannot be reached")
                self.assertIsInstance(raised.exception, relais.NoHandlerError)
                # Waiting for the site: the link comes back up, the request goes.
                waiting = asyncio.ensure_future(bus.request("demo/site", {}, timeout=10, wait_for_site=8))
                await asyncio.sleep(0.3)
                self.assertFalse(waiting.done())
                link.publish("relais/sites/poller-1", _status("up"), retain=True)
                self.assertEqual(await asyncio.wait_for(waiting, 10), "from the site")

    async def test_an_untargeted_request_avoids_a_provider_behind_a_down_link(self) -> None:
        async with relais.connect(id="link-central2", broker=self.broker.url) as link, \
                relais.connect(id="agent-p1", broker=self.broker.url) as remote, \
                relais.connect(id="agent-local", broker=self.broker.url) as local:
            await remote.serve("demo/site", lambda payload, ctx: "remote")
            await local.serve("demo/site", lambda payload, ctx: "local")
            link.publish("relais/sites/poller-1/clients", notification_message(
                source="link-central2", priority="normal", payload={"site": "poller-1", "clients": ["agent-p1"]}), retain=True)
            link.publish("relais/sites/poller-1", _status("down"), retain=True)
            async with relais.connect(id="central-req2", broker=self.broker.url) as bus:
                await bus.wait_for_handler("demo/site", target="agent-p1", timeout=10)
                await bus.wait_for_handler("demo/site", target="agent-local", timeout=10)
                answers = [await bus.request("demo/site", {}, timeout=10) for _ in range(4)]
                self.assertEqual(answers, ["local"] * 4)


if __name__ == "__main__":
    unittest.main()
