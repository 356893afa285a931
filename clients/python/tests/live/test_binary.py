"""Bytes payloads in the Python runtime (protocol §3.5), on a real Mosquitto: sent from `request`,
a handler's result and progress, `notify` and `publish`, received as `bytes`; the size limit
counting header + LF + body (§3.4); a wrong body length or a lost LF answered with code 2; a
binary message signed and verified (§12.2), and its body changed in transit refused as forged.
Run: cd clients/python && /usr/bin/python3 -m unittest discover -s tests/live -t .
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
import unittest

import relais
from relais.protocol.messages import command_message

from .brokers import HAVE_MOSQUITTO, Mosquitto

PACKAGE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")) + (
    os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")

# Every byte value, LFs and NULs among them, and a header-looking start.
ALL_BYTES = bytes(range(256)) + b'\n{"body":3}\n\x00'


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class BytesPayloads(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto()

    def tearDown(self) -> None:
        self.broker.stop()

    async def test_bytes_go_through_request_progress_result_and_arrive_as_bytes(self) -> None:
        async with relais.connect(id="bin-h", broker=self.broker.url) as handler, \
                relais.connect(id="bin-r", broker=self.broker.url) as requester:
            seen: list = []

            async def reverse(payload, ctx):
                seen.append(payload)
                await ctx.progress(0.5, memoryview(b"\x00half\n"))
                return bytearray(payload[::-1])

            await handler.serve("bin/reverse", reverse)
            await requester.wait_for_handler("bin/reverse", timeout=5)
            self.assertEqual(await requester.request("bin/reverse", ALL_BYTES, timeout=5), ALL_BYTES[::-1])
            self.assertEqual(seen, [ALL_BYTES])
            self.assertIs(type(seen[0]), bytes)
            steps = [step async for step in requester.call("bin/reverse", bytearray(b"ab\n"), timeout=5)]
            self.assertEqual([(s.kind, s.payload) for s in steps], [("progress", b"\x00half\n"), ("final", b"\nba")])
            self.assertIs(type(steps[-1].payload), bytes)
            # An empty body is a payload too.
            self.assertEqual(await requester.request("bin/reverse", b"", timeout=5), b"")

    async def test_notify_and_publish_send_bytes_that_subscribers_get_as_bytes(self) -> None:
        async with relais.connect(id="bin-pub", broker=self.broker.url) as publisher, \
                relais.connect(id="bin-sub", broker=self.broker.url) as subscriber:
            subscription = await subscriber.subscribe("bin/#", include_invalid=True)
            publisher.notify("bin/camera", ALL_BYTES)
            publisher.publish("bin/framed", {"v": 1, "type": "notification", "source": "bin-pub", "destination": "*",
                                             "payload": b"\x01\x02", "ts": int(time.time() * 1000)})
            publisher.publish("bin/raw", b"\xff\x00 raw")
            received = []
            async for message in subscription:
                received.append(message)
                if len(received) == 3:
                    break
            by_topic = {m.topic: m for m in received}
            self.assertEqual(by_topic["bin/camera/notification"].payload, ALL_BYTES)
            self.assertEqual(by_topic["bin/camera/notification"].envelope["source"], "bin-pub")
            self.assertEqual(by_topic["bin/framed"].payload, b"\x01\x02")
            # Raw bytes have no header: an application subscription sees them as invalid, as they are.
            self.assertIsNone(by_topic["bin/raw"].envelope)
            self.assertEqual(by_topic["bin/raw"].raw, b"\xff\x00 raw")

    async def test_the_size_limit_counts_header_lf_and_body(self) -> None:
        async with relais.connect(id="bin-big", broker=self.broker.url, max_message_bytes=1000) as bus:
            header = len(json.dumps({"v": 1, "type": "notification", "source": "bin-big", "destination": "*", "body": 900,
                                     "priority": "normal", "ts": int(time.time() * 1000)}, separators=(",", ":")))
            fits = 1000 - header - 1
            bus.notify("bin/size", b"x" * fits)
            with self.assertRaises(relais.PayloadTooLargeError) as refused:
                bus.notify("bin/size", b"x" * (fits + 1))
            self.assertIn("1001 bytes, over the 1000-byte limit", str(refused.exception))
            with self.assertRaises(relais.PayloadTooLargeError):
                await bus.request("bin/none", b"x" * 1000, timeout=1)
            with self.assertRaises(relais.PayloadTooLargeError):
                bus.publish("bin/raw", b"x" * 1001)

    async def test_a_wrong_body_length_or_a_lost_lf_is_answered_with_code_2(self) -> None:
        async with relais.connect(id="bin-h2", broker=self.broker.url) as handler, \
                relais.connect(id="bin-r2", broker=self.broker.url) as sender:
            runs: list = []
            await handler.serve("bin/strict", lambda payload, ctx: runs.append(payload) or b"ok")
            answers = await sender.subscribe("bin/strict/response/bin-r2")
            deadline = int(time.time() * 1000) + 30_000

            def header(token: str, body: int) -> bytes:
                command = command_message(source="bin-r2", destination="bin-h2", token=token, payload=None, priority="normal",
                                          deadline=deadline)
                del command["payload"]
                return json.dumps({**command, "body": body}, separators=(",", ":")).encode()

            sender.publish("bin/strict/request/bin-h2", header("short", 10) + b"\n1234")
            sender.publish("bin/strict/request/bin-h2", header("no-lf", 4))
            errors = {}
            async for message in answers:
                errors[message.envelope["token"]] = message.envelope
                if len(errors) == 2:
                    break
            self.assertEqual(errors["short"]["code"], 2)
            self.assertIn("'body' is 10 bytes, 4 follow the LF", errors["short"]["error"]["message"])
            self.assertEqual(errors["no-lf"]["code"], 2)
            self.assertIn("a binary message's header is followed by one LF", errors["no-lf"]["error"]["message"])
            self.assertEqual(runs, [])


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class BlockingBytes(unittest.TestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto()

    def tearDown(self) -> None:
        self.broker.stop()

    def test_a_threaded_handler_sends_progress_bytes_it_then_reuses_and_returns_bytes(self) -> None:
        import relais.sync
        with relais.sync.connect(id="bin-sync-h", broker=self.broker.url) as handler, \
                relais.sync.connect(id="bin-sync-r", broker=self.broker.url) as requester:
            def work(payload, ctx):
                buffer = bytearray(b"first")
                ctx.progress(0.5, buffer)
                buffer[:] = b"later"
                return payload + b"!"

            handler.serve("bin/sync", work)
            requester.wait_for_handler("bin/sync", timeout=5)
            steps = list(requester.call("bin/sync", b"\x00\n", timeout=5))
            self.assertEqual([(s.kind, s.payload) for s in steps if s.kind != "accepted"], [("progress", b"first"), ("final", b"\x00\n!")])


@unittest.skipUnless(HAVE_MOSQUITTO, "mosquitto is not installed")
class CommandLineBytes(unittest.IsolatedAsyncioTestCase):
    """`python -m relais` with bytes: `call --file`, the `<N bytes sha256 …>` summary, `--raw`,
    `serve --reply-file`, `sub`."""

    def setUp(self) -> None:
        self.broker = Mosquitto()
        self.dir = tempfile.TemporaryDirectory(prefix="relais-py-bin-cli-")
        self.file = os.path.join(self.dir.name, "all.bin")
        with open(self.file, "wb") as file:
            file.write(ALL_BYTES)

    def tearDown(self) -> None:
        self.broker.stop()
        self.dir.cleanup()

    async def _cli(self, *args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relais", *args, "--broker", self.broker.url, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": PACKAGE})
        out, err = await asyncio.wait_for(process.communicate(stdin), 60)
        return process.returncode, out, err.decode()

    async def test_call_sends_a_file_shows_bytes_as_their_summary_and_raw_writes_them(self) -> None:
        summary = f"<{len(ALL_BYTES)} bytes sha256 {hashlib.sha256(ALL_BYTES).hexdigest()[:16]}…>"
        async with relais.connect(id="bin-cli-h", broker=self.broker.url) as handler:
            await handler.serve("bin/echo", lambda payload, ctx: payload)
            code, out, err = await self._cli("call", "bin/echo", "--file", self.file, "--id", "bin-cli-r", "--timeout", "20")
            self.assertEqual(code, 0, err)
            self.assertEqual(json.loads(out.decode().splitlines()[-1]), {"kind": "final", "source": "bin-cli-h", "payload": summary, "code": 0})
            code, out, err = await self._cli("call", "bin/echo", "--file", "-", "--raw", "--id", "bin-cli-r", "--timeout", "20", stdin=ALL_BYTES)
            self.assertEqual(code, 0, err)
            self.assertEqual(out, ALL_BYTES)
            code, _, err = await self._cli("call", "bin/echo", "{}", "--file", self.file, "--id", "bin-cli-r")
            self.assertEqual(code, 2)
            self.assertIn("give no JSON argument", err)
            code, _, err = await self._cli("call", "bin/echo", "--file", os.path.join(self.dir.name, "absent"), "--id", "bin-cli-r")
            self.assertEqual(code, 2)
            self.assertIn("--file", err)

    async def test_serve_answers_with_a_file_and_sub_prints_bytes_as_their_summary(self) -> None:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relais", "serve", "bin/file", "--reply-file", self.file, "--id", "bin-cli-s", "--broker", self.broker.url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": PACKAGE})
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relais", "sub", "bin/+/notification", "--id", "bin-cli-sub", "--broker", self.broker.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": PACKAGE})
        try:
            async with relais.connect(id="bin-cli-r2", broker=self.broker.url) as bus:
                await bus.wait_for_handler("bin/file", timeout=30)
                self.assertEqual(await bus.request("bin/file", {"any": "thing"}, timeout=20), ALL_BYTES)
                # The subscriber is there once it prints what it receives: notify until it does.
                async def first_line() -> bytes:
                    while True:
                        bus.notify("bin/cam", b"\x00\x0a\xff")
                        try:
                            return await asyncio.wait_for(watcher.stdout.readline(), 0.5)
                        except asyncio.TimeoutError:
                            continue

                line = await asyncio.wait_for(first_line(), 30)
                self.assertTrue(line, "python -m relais sub ended without printing")
                digest = hashlib.sha256(b"\x00\x0a\xff").hexdigest()[:16]
                self.assertEqual(line.decode().strip(), f"bin/cam/notification <3 bytes sha256 {digest}…>")
        finally:
            for process in (server, watcher):
                if process.returncode is None:
                    process.terminate()
                await process.wait()


@unittest.skipUnless(HAVE_MOSQUITTO and relais.signing_available(), "needs mosquitto and python3-cryptography")
class SignedBytes(unittest.IsolatedAsyncioTestCase):
    def setUp(self) -> None:
        self.broker = Mosquitto()
        self.dir = tempfile.TemporaryDirectory(prefix="relais-py-bin-keys-")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.keys = {}
        for identity in ("bin-sh", "bin-sr"):
            key = Ed25519PrivateKey.generate()
            path = os.path.join(self.dir.name, f"{identity}.key")
            with open(path, "wb") as file:
                file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            self.keys[identity] = (path, key)
        self.trusted = [{"identity": identity, "public_key": key.public_key()} for identity, (_, key) in self.keys.items()]

    def tearDown(self) -> None:
        self.broker.stop()
        self.dir.cleanup()

    async def test_a_signed_binary_request_and_answer_verify_and_a_changed_body_is_forged(self) -> None:
        async with relais.connect(id="bin-sh", broker=self.broker.url, signing_key=self.keys["bin-sh"][0], trusted_keys=self.trusted) as handler, \
                relais.connect(id="bin-sr", broker=self.broker.url, signing_key=self.keys["bin-sr"][0], trusted_keys=self.trusted) as requester:
            refusals: list[dict] = []
            handler.on_refused.append(refusals.append)
            requester.on_refused.append(refusals.append)
            runs: list = []
            await handler.serve("bin/signed", lambda payload, ctx: runs.append(payload) or payload + b"\x00!")
            await requester.wait_for_handler("bin/signed", timeout=5)
            raw: list[bytes] = []
            original = handler._on_message

            def spy(topic: str, payload: bytes, *rest) -> None:
                if topic == "bin/signed/request/bin-sh":
                    raw.append(payload)
                original(topic, payload, *rest)

            handler._transport.on_message = spy
            self.assertEqual(await requester.request("bin/signed", ALL_BYTES, timeout=5), ALL_BYTES + b"\x00!")
            self.assertEqual(refusals, [])
            self.assertIn(b'"sig":{"kid":"', raw[0].split(b"\n", 1)[0], "the sig member is in the header")
            # The same signed header over other bytes of the same length: the body is signed too.
            header, body = raw[0].split(b"\n", 1)
            handler._transport.main.write("bin/signed/request/bin-sh", header + b"\n" + bytes([body[0] ^ 1]) + body[1:], 1, False)
            await asyncio.wait_for(_until(lambda: refusals), 10)
            self.assertEqual([r["reason"] for r in refusals], ["forged"])
            self.assertEqual(runs, [ALL_BYTES])


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    unittest.main()
