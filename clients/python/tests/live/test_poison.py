"""protocol §1.4 against a real Mosquitto: a packet the broker refuses by dropping the
connection (a PUBLISH over its max_packet_size, a SUBSCRIBE to a filter holding U+0000) must not
keep the client off the bus. paho writes unacknowledged QoS 1 messages and the client its
subscriptions again after each reconnection; the library gives such a packet up after two drops,
says so, and carries on. Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import logging
import unittest

import relais

from .brokers import HAVE_MOSQUITTO, Mosquitto

FAST = dict(reconnect_delay=0.02, reconnect_max_delay=0.2)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class PoisonPackets(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto("max_packet_size 4096")
        self.records = _Records()
        logging.getLogger("relais").addHandler(self.records)

    def tearDown(self) -> None:
        logging.getLogger("relais").removeHandler(self.records)
        self.broker.stop()

    async def _still_serves(self, bus: relais.Bus, server: relais.Bus) -> None:
        await bus.wait_for_handler("live/alive", timeout=10)
        self.assertEqual(await bus.request("live/alive", bus.id, timeout=10), f"hello {bus.id}")
        self.assertEqual(await server.request("live/alive", server.id, timeout=10), f"hello {server.id}")

    async def test_a_message_the_broker_refuses_is_given_up_after_two_drops_and_the_client_carries_on(self) -> None:
        async with relais.connect(id="poison-server", broker=self.broker.url, **FAST) as server, \
                relais.connect(id="poison-pub", broker=self.broker.url, **FAST) as bus:
            await server.serve("live/alive", lambda who, ctx: f"hello {who}")
            lost = asyncio.Event()
            bus._on_main_online.append(lost.set)
            # Under the library's limit (1 MiB), over the broker's: Mosquitto drops a 3.1.1 client for it.
            bus.notify("live/big", {"blob": "x" * 8000})
            await asyncio.wait_for(lost.wait(), 10)
            await self._still_serves(bus, server)
            given_up = [r for r in self.records.records if "given up so that it cannot keep the client off" in r.getMessage()]
            self.assertEqual([getattr(r, "topic", None) for r in given_up], ["live/big/notification"])
            self.assertTrue(bus.connected)
            # Two drops, then a connection that holds.
            self.assertEqual(self.broker.log().count("New client connected from 127.0.0.1:") - 4, 2,
                             "poison-pub's main lane connected three times: once, then after each of two drops")

    async def test_a_subscription_the_broker_refuses_by_dropping_the_connection_ends_with_not_sent_error(self) -> None:
        async with relais.connect(id="poison-server2", broker=self.broker.url, **FAST) as server, \
                relais.connect(id="poison-sub", broker=self.broker.url, **FAST) as bus:
            await server.serve("live/alive", lambda who, ctx: f"hello {who}")
            # The library checks filters (protocol §2.1); this one goes around the check, as a
            # filter only the broker refuses (an ACL, a limit) would.
            with self.assertRaisesRegex(relais.NotSentError, "dropped the connection 2 times when subscribing to bad/\x00"):
                await asyncio.wait_for(bus._transport.subscribe("bad/\x00", "main"), 20)
            await self._still_serves(bus, server)


if __name__ == "__main__":
    unittest.main()
