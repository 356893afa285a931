"""The key-value store's wire rules (protocol §14, ``relais.protocol.kv``, a port of
``src/protocol/kv.ts``): the names a bucket, key and prefix may have (the patterns of
``BUCKET_PATTERN``, ``KEY_PATTERN``, ``prefixSchema``), the typed errors an error response
becomes (``kvErrorOf``), bytes values as ``{"$base64"}``, the schema announcement's hash (the
same as the TS ``contractHash`` of the same JSON), and where a watch resumes (§14.9)."""
from __future__ import annotations

import json
import unittest

from relais.protocol.errors import (
    InvalidMessageError, NotAuthorizedError, PayloadTooLargeError, RelaisError, RemoteError, from_wire,
)
from relais.protocol.kv import (
    CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET, KV_ACTIONS, BucketNotFoundError, ConfigInvalidError, KeyNotFoundError, KvWatchCursor,
    RevisionConflictError, ValueTooLargeError, bucket_problem, config_schema_announcement, decode_entry, encode_value,
    is_up_to_date, key_problem, kv_error_of, prefix_problem,
)


def router_error(code: int, name: str, message: str, details: dict) -> RelaisError:
    """An error response of the router as the requester raises it (protocol §5.1), through JSON as on the wire."""
    wire = json.loads(json.dumps({"name": name, "message": message, "details": details}))
    return from_wire(wire, code, "relais-router")


def entry(revision: int, key: str = "k", value: object = 1, operation: str = "put", **extra: object) -> dict:
    return {"bucket": "b", "key": key, "value": value, "revision": revision, "created": 1, "updated": 2, "operation": operation,
            "author": "a", **extra}


class NamesTest(unittest.TestCase):
    def test_the_actions_and_the_configuration_buckets_are_the_wire_s(self) -> None:
        self.assertEqual(KV_ACTIONS, {"get": "relais/kv/get", "put": "relais/kv/put", "delete": "relais/kv/delete", "keys": "relais/kv/keys",
                                      "history": "relais/kv/history", "watch": "relais/kv/watch", "buckets": "relais/kv/buckets"})
        self.assertEqual((CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET), ("config", "config-schema"))

    def test_buckets_keys_and_prefixes_take_the_characters_of_protocol_14_1(self) -> None:
        table = [
            (bucket_problem, "rooms", True), (bucket_problem, "config-schema", True), (bucket_problem, "a_B-9", True),
            (bucket_problem, "x" * 64, True), (bucket_problem, "x" * 65, False), (bucket_problem, "", False),
            (bucket_problem, "a.b", False), (bucket_problem, "a/b", False), (bucket_problem, "é", False), (bucket_problem, 3, False),
            (key_problem, "kitchen", True), (key_problem, "py-host-12", True), (key_problem, "floor1/lamp.2:on@x=y+z", True),
            (key_problem, "k" * 256, True), (key_problem, "k" * 257, False), (key_problem, "", False), (key_problem, "a b", False),
            (key_problem, "a#", False), (key_problem, "a\n", False), (key_problem, None, False),
            (prefix_problem, "", True), (prefix_problem, "floor1/", True), (prefix_problem, "p" * 256, True),
            (prefix_problem, "p" * 257, False), (prefix_problem, "a*", False),
        ]
        for check, name, valid in table:
            with self.subTest(check=check.__name__, name=name):
                problem = check(name)
                self.assertEqual(problem is None, valid, problem)
                if problem:
                    self.assertIn(repr(name), problem, "the problem names what was given")


class ErrorsTest(unittest.TestCase):
    def test_each_error_of_protocol_14_5_comes_back_as_its_own_class_with_its_details(self) -> None:
        table = [
            (1, "KeyNotFoundError", {"bucket": "b", "key": "k", "revision": 3}, KeyNotFoundError, RelaisError,
             {"bucket": "b", "key": "k", "revision": 3}),
            (1, "KeyNotFoundError", {"bucket": "b", "key": "k"}, KeyNotFoundError, RelaisError, {"bucket": "b", "key": "k"}),
            (1, "RevisionConflictError", {"bucket": "b", "key": "k", "expectedRevision": 2, "currentRevision": 5}, RevisionConflictError,
             RelaisError, {"bucket": "b", "key": "k", "expectedRevision": 2, "currentRevision": 5}),
            (1, "RevisionConflictError", {"bucket": "b", "key": "k", "expectedRevision": 0}, RevisionConflictError, RelaisError,
             {"bucket": "b", "key": "k", "expectedRevision": 0, "currentRevision": 0}),
            (1, "BucketNotFoundError", {"bucket": "b"}, BucketNotFoundError, RelaisError, {"bucket": "b"}),
            (7, "ValueTooLargeError", {"bucket": "b", "key": "k", "size": 200, "max": 100}, ValueTooLargeError, PayloadTooLargeError,
             {"bucket": "b", "key": "k", "size": 200, "max": 100}),
            (2, "ConfigInvalidError", {"issues": [{"path": ["level"], "message": "expected number"}]}, ConfigInvalidError,
             InvalidMessageError, {"issues": [{"path": ["level"], "message": "expected number"}]}),
        ]
        for code, name, details, klass, base, expected in table:
            with self.subTest(name=name, details=details):
                typed = kv_error_of(router_error(code, name, f"{name} happened", details))
                self.assertIs(type(typed), klass)
                self.assertIsInstance(typed, base)
                self.assertEqual((typed.message, typed.response_code, typed.name), (f"{name} happened", code, name))
                self.assertEqual(typed.details, expected)
                self.assertIsInstance(typed.cause, RemoteError)
                self.assertIs(typed.__cause__, typed.cause)

    def test_other_errors_are_left_as_they_are(self) -> None:
        for error in (router_error(4, "NotAuthorizedError", "no", {"bucket": "config"}), router_error(2, "InvalidMessageError", "bad", {}),
                      router_error(1, "Error", "boom", {}), ValueError("not the router's")):
            with self.subTest(error=repr(error)):
                self.assertIs(kv_error_of(error), error)
        self.assertIsInstance(kv_error_of(router_error(4, "NotAuthorizedError", "no", {})), NotAuthorizedError)


class ValuesTest(unittest.TestCase):
    def test_bytes_travel_as_base64_and_come_back_as_bytes_json_stays_json(self) -> None:
        self.assertEqual(encode_value(b"\x00\xffhi"), {"$base64": "AP9oaQ=="})
        self.assertEqual(encode_value(bytearray(b"ab")), {"$base64": "YWI="})
        self.assertEqual(encode_value(memoryview(b"ab")), {"$base64": "YWI="})
        for value in ({"temp": 21}, [1, "x"], "text", 3, None, {"$note": "plain JSON"}):
            self.assertEqual(encode_value(value), value)
        self.assertEqual(decode_entry(entry(1, value={"$base64": "AP9oaQ=="}, bytes=True))["value"], b"\x00\xffhi")
        # Without `bytes: true` a value is JSON, even one that looks like bytes.
        self.assertEqual(decode_entry(entry(1, value={"$base64": "AP9oaQ=="}))["value"], {"$base64": "AP9oaQ=="})

    def test_the_schema_announcement_hash_is_the_typescript_contract_hash_of_the_same_json(self) -> None:
        # Hashes computed by Node: createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 16).
        self.assertEqual(config_schema_announcement({"type": "object"}), {"schema": {"type": "object"}, "hash": "a2c799262a3ce3c1"})
        schema = {"type": "object", "properties": {"name": {"type": "string", "description": "é"}}}
        self.assertEqual(config_schema_announcement(schema)["hash"], "acfb666f63ee33fc")
        with self.assertRaises(TypeError):
            config_schema_announcement("not a schema")  # type: ignore[arg-type]


class WatchCursorTest(unittest.TestCase):
    def test_without_since_the_current_values_then_up_to_date_then_a_resume_after_the_last_revision(self) -> None:
        cursor = KvWatchCursor()
        self.assertEqual(cursor.ask("b", "floor1/"), {"bucket": "b", "prefix": "floor1/"})
        # The replay of current values: the step's revision is the bucket's at the start, past the values sent so far.
        items = cursor.step({"changes": [entry(2, "a"), entry(5, "b")], "revision": 9})
        self.assertEqual([item["revision"] for item in items], [2, 5])
        self.assertEqual(cursor.ask("b"), {"bucket": "b", "since": 5}, "a resume mid-replay asks after the last value, not after 9")
        self.assertEqual(cursor.step({"changes": [], "revision": 9, "upToDate": True}), [{"upToDate": True, "revision": 9}])
        self.assertTrue(is_up_to_date({"upToDate": True, "revision": 9}))
        self.assertEqual(cursor.ask("b"), {"bucket": "b", "since": 9})
        # Live: a change, then a step past keys of other prefixes.
        self.assertEqual([item["revision"] for item in cursor.step({"changes": [entry(11)], "revision": 11})], [11])
        self.assertEqual(cursor.step({"changes": [], "revision": 14}), [])
        self.assertEqual(cursor.ask("b"), {"bucket": "b", "since": 14})

    def test_with_since_after_a_reconnection_nothing_is_yielded_twice(self) -> None:
        cursor = KvWatchCursor(since=0)
        self.assertEqual(cursor.ask("b"), {"bucket": "b", "since": 0})
        self.assertEqual([i["revision"] for i in cursor.step({"changes": [entry(1), entry(2)], "revision": 2, "upToDate": True})
                          if not is_up_to_date(i)], [1, 2])
        # The new watch after a lost connection may repeat what the old one sent last.
        items = cursor.step({"changes": [entry(2), entry(3, operation="delete", value=None)], "revision": 3, "upToDate": True})
        self.assertEqual([(i.get("revision"), i.get("operation")) for i in items], [(3, "delete"), (3, None)])
        self.assertFalse(is_up_to_date(items[0]))
        self.assertEqual(cursor.ask("b"), {"bucket": "b", "since": 3})

    def test_bytes_changes_are_decoded(self) -> None:
        cursor = KvWatchCursor(since=0)
        [change] = cursor.step({"changes": [entry(1, value={"$base64": "YWI="}, bytes=True)], "revision": 1})
        self.assertEqual(change["value"], b"ab")


if __name__ == "__main__":
    unittest.main()
