"""Ports test/unit/envelope.test.ts, encoding and bytes checks (protocol §3)."""
from __future__ import annotations

import json
import random
import unittest

from relais.protocol.bytes import from_base64, is_base64_value, to_base64, utf8_byte_length, wire_bytes
from relais.protocol.envelope import decode, encode, encode_json, validate
from relais.protocol.errors import InvalidMessageError, PayloadTooLargeError

COMMAND = {"type": "command", "source": "vm-x", "destination": "*", "token": "t1", "payload": {"a": 1}}


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1.5, 2**53, 1e300, rng.randint(-10**6, 10**6)])
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(6)))
    if kind == 4:
        return rng.choice(["command", "response", "*", "", "a"])
    if kind in (5, 6):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["type", "source", "destination", "payload", "x", "token"]): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


class EnvelopeTest(unittest.TestCase):
    def test_accepts_the_psec_command_from_the_design_brief(self) -> None:
        result = decode(json.dumps(COMMAND).encode())
        self.assertTrue(result.ok)
        self.assertEqual(result.envelope["token"], "t1")

    def test_keeps_unknown_fields(self) -> None:
        result = validate({**COMMAND, "future": {"x": 1}})
        self.assertTrue(result.ok)
        self.assertEqual(result.envelope["future"], {"x": 1})

    def test_names_the_faulty_field(self) -> None:
        wrong_type = validate({**COMMAND, "type": "commande"})
        self.assertFalse(wrong_type.ok)
        self.assertIn("field 'type'", wrong_type.error.message)
        bad_code = validate({**COMMAND, "type": "response", "code": 1.5})
        self.assertFalse(bad_code.ok)
        self.assertIn("field 'code'", bad_code.error.message)
        no_payload = validate({"type": "notification", "source": "s", "destination": "*"})
        self.assertFalse(no_payload.ok)
        self.assertEqual(no_payload.error.message, "field 'payload' is required")
        self.assertEqual(no_payload.sender.source, "s")
        self.assertIsNone(no_payload.sender.token)
        response_without_token = validate({"type": "response", "source": "s", "destination": "r", "payload": None})
        self.assertFalse(response_without_token.ok)
        self.assertRegex(response_without_token.error.message, r"field 'token': a response must carry the token")
        bad_progress = validate({**COMMAND, "type": "response", "final": False, "progress": 2})
        self.assertFalse(bad_progress.ok)
        self.assertIn("field 'progress'", bad_progress.error.message)

    def test_field_rules_one_by_one_in_the_ts_schema_words(self) -> None:
        # Each row: the change to a valid command, and the message the TS library gives.
        table = [
            ({"type": "commande"}, "field 'type': Invalid option: expected one of \"command\"|\"response\"|\"notification\"|\"log\"|\"cancel\""),
            ({"type": "response", "code": 1.5}, "field 'code': Invalid input: expected int, received number"),
            ({"progress": 2}, "field 'progress': Too big: expected number to be <=1"),
            ({"progress": -1}, "field 'progress': Too small: expected number to be >=0"),
            ({"source": ""}, "field 'source': Too small: expected string to have >=1 characters"),
            ({"source": "x" * 257}, "field 'source': Too big: expected string to have <=256 characters"),
            ({"source": 3}, "field 'source': Invalid input: expected string, received number"),
            ({"priority": "urgent"}, "field 'priority': Invalid option: expected one of \"realtime\"|\"high\"|\"normal\"|\"low\""),
            ({"deadline": -1}, "field 'deadline': Too small: expected number to be >=0"),
            ({"v": 0}, "field 'v': Too small: expected number to be >0"),
            ({"final": "yes"}, "field 'final': Invalid input: expected boolean, received string"),
            ({"error": {"name": 1}}, "field 'error.name': Invalid input: expected string, received number; field 'error.message': Invalid input: expected string, received undefined"),
            ({"error": "x"}, "field 'error': Invalid input: expected object, received string"),
            ({"error": None}, "field 'error': Invalid input: expected object, received null"),
            ({"ts": -1}, "field 'ts': Too small: expected number to be >=0"),
            ({"token": ""}, "field 'token': Too small: expected string to have >=1 characters"),
            ({"code": 2**53}, "field 'code': Too big: expected int to be <=9007199254740991"),
            ({"accepted": 1}, "field 'accepted': Invalid input: expected boolean, received number"),
            ({"acceptBy": 1.5}, "field 'acceptBy': Invalid input: expected int, received number"),
            ({"code": "x"}, "field 'code': Invalid input: expected number, received string"),
            ({"code": True}, "field 'code': Invalid input: expected number, received boolean"),
            ({"error": {"name": "a", "message": "b" * 70000}}, "field 'error.message': Too big: expected string to have <=65536 characters"),
            ({"ts": float("inf")}, "field 'ts': Invalid input: expected number, received Infinity"),
        ]
        for change, message in table:
            with self.subTest(change=str(change)[:60]):
                result = validate({**COMMAND, **change})
                self.assertFalse(result.ok)
                self.assertEqual(result.error.message, f"invalid message: {message}")
        missing = validate({"type": "command", "source": "s", "payload": 1})
        self.assertEqual(missing.error.message, "invalid message: field 'destination': Invalid input: expected string, received undefined")
        # The token rule counts only once the rest is well formed (as in the TS schema).
        both = validate({"type": "cancel", "source": 5, "destination": "d", "payload": 1})
        self.assertEqual(both.error.message, "invalid message: field 'source': Invalid input: expected string, received number")

    def test_whole_numbers_written_as_decimals_are_integers_as_in_javascript(self) -> None:
        self.assertTrue(decode(b'{"type":"command","source":"a","destination":"*","payload":1,"code":1.0}').ok)
        self.assertFalse(decode(b'{"type":"command","source":"a","destination":"*","payload":1,"ts":1e400}').ok)
        self.assertTrue(validate({**COMMAND, "deadline": 2**53 - 1}).ok)
        for field in ("deadline", "code", "v"):
            self.assertFalse(validate({**COMMAND, field: 2**53}).ok, field)
        # Characters, not UTF-16 units: 128 emoji are a valid id, as the TS schema counts them.
        self.assertTrue(validate({**COMMAND, "source": "\U0001F600" * 128}).ok)
        self.assertTrue(validate({**COMMAND, "code": 3, "type": "response"}).ok)
        self.assertFalse(validate({**COMMAND, "final": 1}).ok, "1 is no boolean")
        self.assertFalse(validate({**COMMAND, "code": False}).ok, "False is no number")

    def test_says_what_is_wrong_with_non_json_and_non_objects(self) -> None:
        not_json = decode('{"type": ')
        self.assertFalse(not_json.ok)
        self.assertIsInstance(not_json.error, InvalidMessageError)
        self.assertIn("not valid JSON", not_json.error.message)
        array = decode("[1,2]")
        self.assertIn("must be a JSON object, got an array", array.error.message)
        for text, got in (("null", "null"), ('"x"', "a string"), ("12", "a number"), ("true", "a boolean")):
            self.assertEqual(decode(text).error.message, f"message must be a JSON object, got {got}")
        self.assertIn("not valid JSON", decode('{"type":"command","source":"a","destination":"*","payload":NaN}').error.message)

    def test_refuses_what_is_not_utf8_without_bom(self) -> None:
        body = json.dumps(COMMAND)
        self.assertEqual(decode(b"\xef\xbb\xbf" + body.encode()).error.message,
                         "message is not UTF-8 JSON: it starts with a UTF-8 byte order mark (protocol §3)")
        self.assertIn("UTF-16 byte order mark", decode(b"\xff\xfe" + body.encode("utf-16-le")).error.message)
        self.assertIn("NUL byte", decode(body.encode("utf-16-be")).error.message)
        self.assertIn("not well-formed UTF-8", decode(b'{"a":"\xc0\xaf"}').error.message)
        self.assertIn("not well-formed UTF-8", decode(b'{"a":"\xed\xa0\x80"}').error.message, "an encoded surrogate")
        self.assertIn("byte order mark", decode("\ufeff" + body).error.message)

    def test_refuses_an_oversized_message_before_parsing_it(self) -> None:
        result = decode(b" " * 2048, 1024)
        self.assertFalse(result.ok)
        self.assertIsInstance(result.error, PayloadTooLargeError)
        self.assertIn("2048 bytes is over the 1024-byte limit", result.error.message)
        big = encode({"type": "command", "source": "vm-x", "destination": "*", "token": "t9", "payload": "x" * 5000})
        refused = decode(big.encode(), 1024)
        self.assertEqual((refused.sender.source, refused.sender.token), ("vm-x", "t9"))

    def test_encode_stamps_the_protocol_version_and_round_trips(self) -> None:
        text = encode({"type": "notification", "source": "a", "destination": "*", "payload": [1]})
        self.assertEqual(json.loads(text)["v"], 1)
        back = decode(text)
        self.assertTrue(back.ok)
        self.assertEqual(back.envelope["payload"], [1])

    def test_random_bytes_never_raise_past_the_decoder(self) -> None:
        rng = random.Random(1)
        for _ in range(2000):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(512)))
            self.assertIsInstance(decode(data).ok, bool)

    def test_random_json_never_raises_and_valid_looking_envelopes_are_accepted(self) -> None:
        rng = random.Random(2)
        for _ in range(2000):
            result = decode(json.dumps(random_json(rng)))
            if not result.ok:
                self.assertTrue(result.error.message)
        for _ in range(500):
            payload = random_json(rng)
            kind = rng.choice(["command", "notification", "log"])
            result = validate({"type": kind, "source": "a", "destination": "*", "payload": payload})
            self.assertTrue(result.ok, result.error and result.error.message)


class EncodingTest(unittest.TestCase):
    def test_encoding_checks_json_and_size_once_naming_the_message(self) -> None:
        with self.assertRaisesRegex(TypeError, r"the request to demo/x is not JSON"):
            encode_json({"n": object()}, what="the request to demo/x")
        with self.assertRaisesRegex(TypeError, r"is not JSON"):
            encode_json({"n": float("nan")})
        with self.assertRaisesRegex(PayloadTooLargeError, r"the message is 1200 bytes, over the 1000-byte limit"):
            encode_json("é" * 600, max_bytes=1000, what="the message")
        self.assertEqual(len(encode_json("é" * 300, max_bytes=1000)), 300)
        called = []
        encode_json({"a": 1}, max_bytes=1000, what=lambda: called.append(1) or "x")
        self.assertEqual(called, [], "what is made only when an error names it")

    def test_utf8_length_counts_lone_surrogates_as_the_replacement_sent(self) -> None:
        self.assertEqual(utf8_byte_length("a\u00e9\u20ac\U0001F600"), 1 + 2 + 3 + 4)
        self.assertEqual(utf8_byte_length("a\ud800b"), 5)
        self.assertEqual(wire_bytes("a\ud800"), b"a\xef\xbf\xbd")
        self.assertEqual(wire_bytes("\ud83d\ude00"), "\U0001F600".encode(), "a pair held as two code points is one character")

    def test_base64_round_trips_any_bytes_and_refuses_non_base64(self) -> None:
        rng = random.Random(3)
        for _ in range(200):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
            wire = to_base64(data)
            self.assertTrue(is_base64_value(json.loads(json.dumps(wire))))
            self.assertEqual(from_base64(wire), data)
        with self.assertRaisesRegex(TypeError, "not valid Base64"):
            from_base64("not base64!")
        with self.assertRaisesRegex(TypeError, "not valid Base64"):
            from_base64("QQ==\n")
        with self.assertRaisesRegex(TypeError, "expected a Base64 string"):
            from_base64({"nope": 1})


if __name__ == "__main__":
    unittest.main()
