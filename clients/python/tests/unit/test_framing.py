"""Ports test/unit/framing.test.ts: binary messages (protocol §3.5), header JSON, one LF, body."""
from __future__ import annotations

import base64
import json
import unittest

from relais.protocol.envelope import decode, encode, encode_message
from relais.protocol.errors import PayloadTooLargeError
from relais.protocol.framing import split_frame
from relais.protocol.messages import command_message, notification_message

#: A binary command as the TypeScript library writes it (encodeMessage), body 0a 00 ff 7b.
FROM_TYPESCRIPT = base64.b64decode(
    "eyJ2IjoxLCJ0eXBlIjoiY29tbWFuZCIsInNvdXJjZSI6InZtLXgiLCJkZXN0aW5hdGlvbiI6ImgxIiwidG9rZW4iOiJ0MSIsImJvZHkiOjQsInByaW9yaXR5Ijoi"
    "bm9ybWFsIiwiZGVhZGxpbmUiOjE3OTY1NjA2NjMwMDAsInRzIjoxNzk2NTYwNjYwMDAwLCJhY2NlcHRCeSI6MTc5NjU2MDY2MjAwMH0KCgD/ew=="
)


def note(payload):
    return notification_message(source="alice", payload=payload, priority="normal")


class FramingTest(unittest.TestCase):
    def test_reads_what_the_typescript_library_writes(self):
        decoded = decode(FROM_TYPESCRIPT)
        self.assertTrue(decoded.ok, decoded.error)
        self.assertEqual(decoded.envelope["payload"], b"\n\x00\xff{")
        self.assertNotIn("body", decoded.envelope)
        self.assertEqual(list(decoded.envelope)[-1], "acceptBy")
        self.assertEqual(decoded.envelope["token"], "t1")

    def test_writes_it_the_same_way(self):
        envelope = command_message(source="vm-x", destination="h1", token="t1", payload=b"\n\x00\xff{", priority="normal", deadline=1796560663000, accept_by=1796560662000, now=1796560660000)
        self.assertEqual(encode_message(envelope), FROM_TYPESCRIPT)

    def test_round_trip_and_json_unchanged(self):
        body = bytes(range(256)) * 4
        wire = encode_message(note(body))
        self.assertIsInstance(wire, bytes)
        header = json.loads(wire[: wire.index(b"\n")])
        self.assertEqual(header["body"], len(body))
        self.assertNotIn("payload", header)
        self.assertEqual(decode(wire).envelope["payload"], body)
        self.assertIsInstance(encode_message(note({"x": 1})), str)
        pretty = json.dumps({"v": 1, "type": "notification", "source": "a", "destination": "*", "payload": {"x": 1}}, indent=2).encode()
        self.assertEqual(decode(pretty).envelope["payload"], {"x": 1})
        self.assertEqual(decode(encode(note({"y": 2})).encode() + b"\n").envelope["payload"], {"y": 2})
        self.assertIsNone(split_frame(pretty))

    def test_hostile_framings_are_invalid_with_the_sender(self):
        def header(body):
            return json.dumps({"v": 1, "type": "command", "source": "alice", "destination": "b", "token": "t9", "body": body}, separators=(",", ":"))

        for wire, pattern in [
            (header(5) + "\nabc", r"'body' is 5 bytes, 3 follow the LF"),
            (header(2**60) + "\nabc", r"non-negative integer"),
            (header(-1) + "\n", r"non-negative integer"),
            (header(1.5) + "\nx", r"non-negative integer"),
            (header("3") + "\nabc", r"non-negative integer"),
            (header(True) + "\nx", r"non-negative integer"),
            (header(3), r"one LF"),
        ]:
            decoded = decode(wire.encode())
            self.assertFalse(decoded.ok, wire)
            self.assertRegex(str(decoded.error), pattern)
            self.assertEqual((decoded.sender.source, decoded.sender.token), ("alice", "t9"))

    def test_size_limit_counts_header_lf_and_body(self):
        wire = encode_message(note(bytes(100)))
        encode_message(note(bytes(100)), max_bytes=len(wire))
        with self.assertRaises(PayloadTooLargeError):
            encode_message(note(bytes(100)), max_bytes=len(wire) - 1)
        self.assertFalse(decode(wire, len(wire) - 1).ok)
        with self.assertRaisesRegex(TypeError, "binary message"):
            encode(note(b"x"))


if __name__ == "__main__":
    unittest.main()
