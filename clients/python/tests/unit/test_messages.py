"""Ports test/unit/messages.test.ts (protocol §3.1, §3.2, §4.7)."""
from __future__ import annotations

import json
import unittest

from relais.protocol.envelope import decode, encode, encode_message
from relais.protocol.messages import (
    cancel_message, command_message, log_message, notification_message, presence_message, response_message, restamp_accept_by,
)


class MessagesTest(unittest.TestCase):
    def test_every_builder_makes_a_valid_envelope_source_and_token_before_the_payload(self) -> None:
        at = {"source": "vm-x", "destination": "h", "token": "t1", "priority": "normal"}
        built = [
            command_message(**at, payload={"big": "x"}, deadline=10, accept_by=5),
            response_message(**at, step="accepted", progress=0.5),
            response_message(**at, step="progress", payload={"p": 1}),
            response_message(**at, step="result", payload=42),
            response_message(**at, step="error", code=6, error={"name": "TimeoutError", "message": "late"}, not_run=True),
            cancel_message(**at, reason="stop"),
            notification_message(source="vm-x", payload={}, priority="high"),
            log_message(source="vm-x", level="info", message="m"),
            presence_message("vm-x", {"status": "alive", "actions": [], "since": 1}),
        ]
        for envelope in built:
            text = encode(envelope)
            result = decode(text)
            self.assertTrue(result.ok, text)
            self.assertEqual(result.envelope["v"], 1)
            keys = list(json.loads(text))
            self.assertLess(keys.index("source"), keys.index("payload"), text)
            if "token" in keys:
                self.assertLess(keys.index("token"), keys.index("payload"), text)
        accepted = json.loads(encode(built[1]))
        self.assertEqual((accepted["final"], accepted["accepted"], accepted["progress"]), (False, True, 0.5))
        self.assertIs(json.loads(encode(built[4]))["accepted"], False)
        self.assertNotIn("accepted", response_message(**at, step="error", code=1, error={"name": "E", "message": "m"}))
        self.assertEqual(response_message(**at, step="result", payload=None)["payload"], None)
        self.assertEqual(command_message(**at, payload=None, deadline=1)["payload"], {})
        self.assertNotIn("priority", presence_message("a", {}), "a presence has no priority (protocol §7.1)")

    def test_a_command_gets_a_new_accept_by_without_being_encoded_again(self) -> None:
        text = encode(command_message(source="a", destination="b", token="t", payload={"acceptBy": "in the payload"},
                                      priority="normal", deadline=99, accept_by=1))
        renewed = restamp_accept_by(text, 1_795_000_000_123)
        envelope = json.loads(renewed)
        self.assertEqual(envelope["acceptBy"], 1_795_000_000_123)
        self.assertEqual(envelope["payload"], {"acceptBy": "in the payload"})
        self.assertEqual(json.loads(restamp_accept_by(renewed, 0))["acceptBy"], 0)
        with self.assertRaisesRegex(TypeError, "no acceptBy"):
            restamp_accept_by(encode(command_message(source="a", destination="b", token="t", payload={}, priority="normal", deadline=9)), 5)

    def test_a_binary_command_gets_its_new_accept_by_last_in_its_header_and_keeps_its_body(self) -> None:
        body = b',"acceptBy":7}\n\x00'
        wire = encode_message(command_message(source="a", destination="b", token="t", payload=body, priority="normal",
                                              deadline=99, accept_by=1))
        renewed = restamp_accept_by(wire, 1_795_000_000_123)
        result = decode(renewed)
        self.assertTrue(result.ok, renewed)
        self.assertEqual((result.envelope["acceptBy"], result.envelope["payload"]), (1_795_000_000_123, body))
        self.assertEqual(list(result.envelope)[-1], "acceptBy")


if __name__ == "__main__":
    unittest.main()
