"""Signed envelopes across languages (protocol §12), on a real Mosquitto (which cannot check an
envelope's source): keys made by the TS CLI (`relais identity keygen`), a Python handler that
signs and requires signatures called by the TS CLI that does the same, a Python requester calling
a TS handler (`relais serve`) that verifies, a binary call of the TS CLI (`--file`, `--raw`) answered
with bytes (signed over the body, §12.2), and what the Python verifier refuses: an unsigned
command, a message signed with another identity's key, a replay. Skipped without Mosquitto, node
or a built dist/ (npx tsc -p tsconfig.build.json).
Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import relais
from relais.protocol.messages import command_message

from .brokers import HAVE_MOSQUITTO, Mosquitto
from .ts_cli import HAVE_CLI, NODE, RELAIS, ROOT, run_ts_cli

PACKAGE = os.path.join(ROOT, "clients", "python") + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")


def _relais(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, RELAIS, *args], capture_output=True, text=True, timeout=timeout)


@unittest.skipUnless(HAVE_MOSQUITTO and HAVE_CLI and relais.signing_available(),
                     "needs mosquitto, node with a built dist/ and python3-cryptography")
class SignedAcrossLanguages(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.dir = tempfile.TemporaryDirectory(prefix="relais-py-signing-")
        data = os.path.join(cls.dir.name, "data")
        for identity in ("py-signed", "ts-signed", "py-req", "mallory"):
            made = _relais("identity", "keygen", identity, "-d", data)
            assert made.returncode == 0, made.stderr
        cls.keys_file = os.path.join(data, "signing-keys.json")
        cls.keys_dir = os.path.join(data, "keys")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dir.cleanup()

    def setUp(self) -> None:
        self.broker = Mosquitto()

    def key(self, identity: str) -> str:
        return os.path.join(self.keys_dir, f"{identity}.key")

    def tearDown(self) -> None:
        self.broker.stop()

    async def _cli(self, *args: str) -> tuple[int, str, str]:
        code, out, err = await run_ts_cli(*args)
        return code, out.decode(), err

    async def test_a_signed_ts_call_is_answered_by_a_signed_python_handler_and_an_unsigned_one_is_refused(self) -> None:
        async with relais.connect(id="py-signed", broker=self.broker.url, signing_key=self.key("py-signed"),
                                  trusted_keys=self.keys_file) as bus:
            refusals: list[dict] = []
            bus.on_refused.append(refusals.append)
            await bus.serve("demo/signed", lambda payload, ctx: {"got": payload, "from": ctx.source})
            code, out, err = await self._cli("call", "demo/signed", '{"n":1}', "--broker", self.broker.url, "--id", "ts-signed",
                                             "--signing-key", self.key("ts-signed"), "--verify-keys", self.keys_file, "--timeout", "20")
            self.assertEqual(code, 0, err)
            self.assertEqual(json.loads(out.strip().splitlines()[-1])["payload"], {"got": {"n": 1}, "from": "ts-signed"})
            self.assertGreaterEqual(bus.signatures["verified"], 2, "the TS caller's presence and command were verified")
            self.assertGreaterEqual(bus.signatures["signed"], 2)
            # Unsigned: the TS CLI's command never reaches the handler.
            code, out, err = await self._cli("call", "demo/signed", '{"n":2}', "--broker", self.broker.url, "--id", "ts-unsigned",
                                             "--timeout", "3")
            self.assertNotEqual(code, 0)
            self.assertIn({"topic": "demo/signed/request/py-signed", "reason": "unsigned", "lane": "main", "source": "ts-unsigned"}, refusals)

    async def test_a_signed_binary_ts_call_is_answered_with_signed_bytes_by_a_python_handler(self) -> None:
        # Binary messages (protocol §3.5) signed over header and body (§12.2), both ways.
        sent = bytes(range(256)) + b"\n{}\n"
        path = os.path.join(self.dir.name, "sent.bin")
        with open(path, "wb") as file:
            file.write(sent)
        async with relais.connect(id="py-signed", broker=self.broker.url, signing_key=self.key("py-signed"),
                                  trusted_keys=self.keys_file) as bus:
            got: list = []
            await bus.serve("demo/signed-bytes", lambda payload, ctx: got.append(payload) or payload[::-1])
            code, out, err = await run_ts_cli("call", "demo/signed-bytes", "--file", path, "--raw", "--broker", self.broker.url,
                                                   "--id", "ts-signed", "--signing-key", self.key("ts-signed"),
                                                   "--verify-keys", self.keys_file, "--timeout", "20")
            self.assertEqual(code, 0, err)
            self.assertEqual(got, [sent], "the TS CLI's signed binary command was verified and run")
            self.assertEqual(out, sent[::-1], "the Python handler's signed binary answer was verified by the TS CLI")
            self.assertEqual(sum(bus.signatures["refused"].values()), 0)

    async def test_a_signed_python_request_is_answered_by_a_ts_handler_that_requires_signatures(self) -> None:
        server = await asyncio.create_subprocess_exec(
            NODE, RELAIS, "serve", "demo/ts-signed", "--broker", self.broker.url, "--id", "ts-signed",
            "--signing-key", self.key("ts-signed"), "--verify-keys", self.keys_file, "--", "cat",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with relais.connect(id="py-req", broker=self.broker.url, signing_key=self.key("py-req"),
                                      trusted_keys=self.keys_file) as bus:
                await bus.wait_for_handler("demo/ts-signed", timeout=30)
                self.assertEqual(await bus.request("demo/ts-signed", {"n": 3}, timeout=20), {"n": 3})
                self.assertEqual(sum(bus.signatures["refused"].values()), 0)
            # The same from `python -m relais call`, signing and verifying.
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relais", "call", "demo/ts-signed", '{"n":6}', "--broker", self.broker.url, "--id", "py-req",
                "--signing-key", self.key("py-req"), "--verify-keys", self.keys_file, "--timeout", "20",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": PACKAGE})
            out, err = await asyncio.wait_for(cli.communicate(), 60)
            self.assertEqual(cli.returncode, 0, err.decode())
            self.assertEqual(json.loads(out.decode().strip().splitlines()[-1])["payload"], {"n": 6})
            # The same request unsigned is refused by the TS handler: it never answers.
            async with relais.connect(id="py-unsigned", broker=self.broker.url) as bus:
                with self.assertRaises((relais.TimeoutError, relais.HandlerGoneError)):
                    await bus.request("demo/ts-signed", {"n": 4}, timeout=3, ack_timeout=1)
        finally:
            server.terminate()
            _, err = await server.communicate()
        self.assertIn("no signature, and this client requires one", err.decode())

    async def test_the_python_verifier_refuses_another_identitys_key_and_a_replay(self) -> None:
        async with relais.connect(id="py-signed", broker=self.broker.url, signing_key=self.key("py-signed"),
                                  trusted_keys=self.keys_file) as bus, \
                relais.connect(id="mallory", broker=self.broker.url, signing_key=self.key("mallory"),
                               trusted_keys=self.keys_file, require_signatures=False) as mallory:
            refusals: list[dict] = []
            bus.on_refused.append(refusals.append)
            runs: list[dict] = []
            await bus.serve("demo/signed", lambda payload, ctx: runs.append(payload) or "ran")
            # Mallory's own key, claiming to be ts-signed: refused at once, its presence first.
            mallory.publish("demo/signed/request/py-signed", command_message(
                source="ts-signed", destination="py-signed", token="forged-1", payload={"evil": True}, priority="normal",
                deadline=int(time.time() * 1000) + 60_000))
            await _until(lambda: any(r["reason"] == "wrong-identity" and r["topic"].startswith("demo/") for r in refusals))
            self.assertEqual(runs, [])
            # A genuine signed command, then the same bytes again: the second is a replay.
            raw = _capture(bus, "demo/signed/request/py-signed")
            code, _, err = await self._cli("call", "demo/signed", '{"n":5}', "--broker", self.broker.url, "--id", "ts-signed",
                                           "--signing-key", self.key("ts-signed"), "--verify-keys", self.keys_file, "--timeout", "20")
            self.assertEqual(code, 0, err)
            self.assertEqual(runs, [{"n": 5}])
            bus._transport.main.write("demo/signed/request/py-signed", raw[0], 1, False)
            await _until(lambda: any(r["reason"] == "replayed" for r in refusals))
            self.assertEqual(runs, [{"n": 5}])


def _capture(bus: relais.Bus, topic: str) -> list[bytes]:
    """The raw bytes of the messages on `topic` the bus receives from now on."""
    seen: list[bytes] = []
    original = bus._on_message

    def spy(t: str, payload: bytes, *rest) -> None:
        if t == topic:
            seen.append(payload)
        original(t, payload, *rest)

    bus._transport.on_message = spy
    return seen


async def _until(check, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


if __name__ == "__main__":
    unittest.main()
