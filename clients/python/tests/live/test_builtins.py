"""The built-in actions every library client serves, targeted only (protocol §7.6, §11.4), on a
real Mosquitto: `relais/contracts/get` answers the declared contracts (presence announces their
hashes), `relais/logs/get` the kept log lines with the broker's password masked, a bad request
with code 2, a second retrieval during a follow with code 8 (the lock), a follow ended by its
lock's time-out; and the TS CLI's `relais logs` and `relais call` read them from a Python client.
Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import json
import os
import unittest
from contextlib import aclosing

import relais

from .brokers import HAVE_MOSQUITTO, Mosquitto
from .ts_cli import HAVE_CLI, run_ts_cli

SCHEMA = {"type": "object", "properties": {"width": {"type": "number"}}, "required": ["width"]}


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class BuiltInActions(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto()
        # A password in the URL: the kept lines must never serve it (protocol §11.4).
        self.secret_url = self.broker.url.replace("mqtt://", "mqtt://user:s3cr%65t@")

    def tearDown(self) -> None:
        self.broker.stop()

    async def _cli(self, *args: str) -> tuple[int, str, str]:
        code, out, err = await run_ts_cli(*args)
        return code, out.decode(), err

    async def test_contracts_are_announced_and_served_targeted_only(self) -> None:
        async with relais.connect(id="py-served", broker=self.broker.url) as served, \
                relais.connect(id="py-asker", broker=self.broker.url) as asker:
            await served.serve("image/resize", lambda payload, ctx: payload, description="resize an image", input_schema=SCHEMA)
            await served.serve("image/plain", lambda payload, ctx: payload)
            # The second serve announces both in a later presence: wait for that one.
            await asker.wait_for_handler("image/plain", timeout=10)
            presence = asker.directory.get("py-served")
            self.assertEqual(sorted(presence["targetedActions"]), ["relais/contracts/get", "relais/logs/get"])
            self.assertEqual(sorted(presence["actions"]), ["image/plain", "image/resize"])
            answer = await asker.request("relais/contracts/get", {}, target="py-served", timeout=10)
            contract = answer["actions"]["image/resize"]
            self.assertEqual(list(answer["actions"]), ["image/resize"])
            self.assertEqual((contract["input"], contract["description"]), (SCHEMA, "resize an image"))
            self.assertRegex(contract["hash"], "^[0-9a-f]{16}$")
            self.assertEqual(presence["contracts"], {"image/resize": contract["hash"]})
            with self.assertRaisesRegex(relais.NoHandlerError, "no connected client serves relais/contracts/get"):
                await asker.request("relais/contracts/get", {}, timeout=10)
            with self.assertRaisesRegex(ValueError, "already handled"):
                await served.serve("relais/logs/get", lambda payload, ctx: None)

    async def test_logs_are_served_with_secrets_masked_one_retrieval_at_a_time(self) -> None:
        async with relais.connect(id="py-logs", broker=self.secret_url, logs={"lock_timeout": 1.5}) as served, \
                relais.connect(id="py-reader", broker=self.broker.url) as reader:
            await reader.wait_for_handler("relais/logs/get", target="py-logs", timeout=10)
            served.logger.warning("the broker is %s", self.secret_url, extra={"lane": "main"})
            answer = await reader.request("relais/logs/get", {"level": "warn", "lines": 5}, target="py-logs", timeout=10)
            line = answer["lines"][-1]
            self.assertEqual((line["level"], line["lane"], line["name"]), (40, "main", "relais.app"))
            self.assertIn("mqtt://user:***@127.0.0.1", line["msg"])
            self.assertNotIn("s3cr", json.dumps(answer))
            self.assertGreaterEqual(answer["next"], line.get("seq", 1))
            self.assertEqual(set(answer["kept"]), {"level", "lines", "bytes", "maxLines", "maxBytes"})
            with self.assertRaisesRegex(relais.InvalidMessageError, "invalid relais/logs/get request: field 'lines'"):
                await reader.request("relais/logs/get", {"lines": 0}, target="py-logs", timeout=10)
            with self.assertRaises(relais.NoHandlerError):
                await reader.request("relais/logs/get", {}, timeout=10)
            # A follow holds the lock: another retrieval is refused with code 8, naming the holder.
            steps = reader.call("relais/logs/get", {"follow": True, "level": "warn"}, target="py-logs", timeout=10)
            async with aclosing(steps):
                first = await asyncio.wait_for(steps.__anext__(), 10)
                self.assertIn(first.kind, ("accepted", "progress"))
                with self.assertRaises(relais.BusyError) as busy:
                    await reader.request("relais/logs/get", {}, target="py-logs", timeout=10)
                self.assertEqual(busy.exception.response_code, 8)
                self.assertIn("being read by py-reader", str(busy.exception))
                served.logger.warning("a new line while followed")
                followed = []
                async for step in steps:
                    if step.kind == "progress":
                        followed += [entry["msg"] for entry in step.payload["lines"]]
                    if step.kind == "final":
                        # The lock timed out: the follow ends by itself, with its reason.
                        self.assertEqual(step.payload["ended"], "lock-timeout")
                        break
                self.assertIn("a new line while followed", followed)
            # Released: the next retrieval is served.
            self.assertIn("lines", await reader.request("relais/logs/get", {}, target="py-logs", timeout=10))

    @unittest.skipUnless(HAVE_CLI, "needs node with a built dist/ (npx tsc -p tsconfig.build.json)")
    async def test_the_ts_cli_reads_a_python_clients_logs_and_contracts(self) -> None:
        async with relais.connect(id="py-cli-target", broker=self.secret_url) as served:
            await served.serve("image/resize", lambda payload, ctx: payload, description="resize an image", input_schema=SCHEMA)
            served.logger.error("disk full on %s", "/var")
            code, out, err = await self._cli("logs", "py-cli-target", "--json", "--lines", "3", "--broker", self.broker.url)
            self.assertEqual(code, 0, err)
            lines = [json.loads(text) for text in out.splitlines()]
            self.assertEqual([(entry["level"], entry["msg"]) for entry in lines if entry["msg"].startswith("disk")], [(50, "disk full on /var")])
            code, out, err = await self._cli("call", "relais/contracts/get", "--target", "py-cli-target", "--broker", self.broker.url)
            self.assertEqual(code, 0, err)
            self.assertEqual(json.loads(out.strip().splitlines()[-1])["payload"]["actions"]["image/resize"]["input"], SCHEMA)


if __name__ == "__main__":
    unittest.main()
