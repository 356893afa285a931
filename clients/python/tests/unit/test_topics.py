"""Ports test/unit/topics.test.ts (protocol §2)."""
from __future__ import annotations

import random
import string
import unittest

from relais.protocol.topics import (
    MAX_PATH_LEVELS, MAX_TOPIC_LEVELS, ClientIdParts, ParsedTopic, cancel_topic, check_client_id, identity_of_client_id, parse_client_id, check_filter, check_path,
    check_topic_name, notification_topic, parse_topic, presence_topic, request_topic, response_topic, topic_matches,
)

RESERVED = {"request", "response", "notification", "cancel", "log"}


class TopicsTest(unittest.TestCase):
    def test_builds_the_psec_scheme_exactly(self) -> None:
        self.assertEqual(request_topic("system/disks/list_disks"), "system/disks/list_disks/request")
        self.assertEqual(request_topic("system/disks/list_disks", "sys-usb"), "system/disks/list_disks/request/sys-usb")
        self.assertEqual(request_topic("system/disks/list_disks", "*"), "system/disks/list_disks/request")
        self.assertEqual(response_topic("system/disks/list_disks", "vm-gui"), "system/disks/list_disks/response/vm-gui")
        self.assertEqual(notification_topic("system/disk/new_file"), "system/disk/new_file/notification")
        self.assertEqual(cancel_topic("system/misc/benchmark"), "system/misc/benchmark/cancel")
        self.assertEqual(presence_topic("vm-gui"), "relais/presence/vm-gui")

    def test_parses_each_kind_back(self) -> None:
        table = [
            ("system/disks/list_disks/request", ParsedTopic("request", action="system/disks/list_disks")),
            ("system/disks/list_disks/request/sys-usb", ParsedTopic("request", action="system/disks/list_disks", target="sys-usb")),
            ("system/disks/list_disks/response/vm-gui", ParsedTopic("response", action="system/disks/list_disks", requester="vm-gui")),
            ("system/events/error/notification", ParsedTopic("notification", category="system/events/error")),
            ("a/cancel", ParsedTopic("cancel", action="a")),
            ("a/cancel/h1", ParsedTopic("cancel", action="a", target="h1")),
            ("a/b/log", ParsedTopic("log", category="a/b")),
            ("relais/presence/vm-1", ParsedTopic("presence", client_id="vm-1")),
            ("relais/presence/bad id", ParsedTopic("other")),
            ("just/some/topic", ParsedTopic("other")),
            ("request", ParsedTopic("other")),
            ("/request", ParsedTopic("other")),
            ("a/response/bad id", ParsedTopic("other")),
        ]
        for topic, parsed in table:
            with self.subTest(topic=topic):
                self.assertEqual(parse_topic(topic), parsed)

    def test_refuses_wildcards_empty_segments_and_reserved_words_with_the_reason(self) -> None:
        table = [
            (lambda: request_topic("a/+/b"), "wildcards"),
            (lambda: request_topic("a//b"), "empty segment"),
            (lambda: request_topic("a/request/b"), "reserved segment 'request'"),
            (lambda: request_topic("$SYS/x"), r"may not start with '\$'"),
            (lambda: response_topic("a", "bad id"), "client id"),
            (lambda: request_topic("relais/presence"), "reserved"),
            (lambda: request_topic("a", "log"), "reserved topic word"),
        ]
        for build, reason in table:
            with self.subTest(reason=reason):
                with self.assertRaisesRegex(TypeError, reason):
                    build()

    def test_build_then_parse_is_the_identity_for_any_valid_action_and_ids(self) -> None:
        rng = random.Random(4)
        id_chars = string.ascii_letters + string.digits + "_.:@-"

        def segment() -> str:
            while True:
                s = "".join(rng.choice(string.ascii_lowercase + string.digits + "_") for _ in range(rng.randint(1, 8)))
                if s not in RESERVED:
                    return s

        for _ in range(300):
            action = "/".join(segment() for _ in range(rng.randint(1, 5)))
            if action.startswith("relais/presence"):
                continue
            who = "".join(rng.choice(id_chars) for _ in range(rng.randint(1, 20)))
            if who in RESERVED:
                continue
            self.assertEqual(parse_topic(request_topic(action)), ParsedTopic("request", action=action))
            self.assertEqual(parse_topic(request_topic(action, who)), ParsedTopic("request", action=action, target=who))
            self.assertEqual(parse_topic(response_topic(action, who)), ParsedTopic("response", action=action, requester=who))

    def test_parse_topic_never_raises_on_any_string(self) -> None:
        rng = random.Random(5)
        alphabet = "ab/+#$\x00\ud800 requstpnc"
        for _ in range(2000):
            parse_topic("".join(rng.choice(alphabet) for _ in range(rng.randrange(30))))

    def test_matches_mqtt_filters_like_a_broker(self) -> None:
        self.assertTrue(topic_matches("a/+/c", "a/b/c"))
        self.assertFalse(topic_matches("a/+/c", "a/b/d"))
        self.assertTrue(topic_matches("a/#", "a"))
        self.assertTrue(topic_matches("a/#", "a/b/c"))
        self.assertTrue(topic_matches("#", "x/y"))
        self.assertFalse(topic_matches("#", "$SYS/x"))
        self.assertFalse(topic_matches("a/+", "a/b/c"))
        self.assertEqual(check_filter("a/#/b"), "filter \"a/#/b\": '#' must be a whole last level")
        self.assertEqual(check_filter("a/b+"), "filter \"a/b+\": '+' must be a whole level")
        self.assertIsNone(check_filter("a/+/#"))

    def test_answers_stay_the_same_past_the_bound_of_remembered_valid_paths(self) -> None:
        for i in range(10_000):
            self.assertIsNone(check_path(f"fleet/unit{i}/reboot"))
        self.assertIsNone(check_path("fleet/unit1/reboot"))
        for _ in range(2):
            self.assertRegex(check_path("fleet/request") or "", "reserved segment 'request'")
            self.assertRegex(check_path("fleet//reboot") or "", "empty segment")

    def test_limits_brokers_enforce_by_dropping_the_connection_are_refused_before_sending(self) -> None:
        def levels(n: int) -> str:
            return "/".join(f"l{i}" for i in range(n))

        self.assertEqual(MAX_TOPIC_LEVELS, 100)
        self.assertIsNone(check_topic_name(levels(100)))
        self.assertRegex(check_topic_name(levels(101)) or "", "has 101 levels; brokers accept at most 100")
        self.assertRegex(check_filter(levels(101)) or "", "has 101 levels")
        self.assertRegex(check_path(levels(121)) or "", "has 121 levels; at most 98")
        self.assertIsNone(check_path(levels(MAX_PATH_LEVELS)), "the longest action still makes a topic within 100 levels")
        with self.assertRaisesRegex(TypeError, "at most 98"):
            response_topic(levels(MAX_PATH_LEVELS + 1), "vm-x")
        self.assertRegex(check_topic_name("x/+/y") or "", "a topic name has no wildcards")
        self.assertRegex(check_topic_name("x/#") or "", "no wildcards")
        self.assertRegex(check_topic_name("$SYS/broker") or "", "reserved for the broker")
        self.assertIsNone(check_filter("$SYS/#"), "reading $SYS is fine")
        self.assertRegex(check_topic_name("a\x00b") or "", r"U\+0000")
        self.assertRegex(check_topic_name("a\ud800b") or "", "lone surrogate")
        self.assertRegex(check_topic_name("x" * 65_536) or "", "65536 bytes of UTF-8; at most 65535")
        self.assertRegex(check_topic_name("é" * 40_000) or "", "80000 bytes")
        self.assertRegex(check_topic_name("") or "", "non-empty")
        self.assertIsNone(check_topic_name("sensors/Field Devices/temp"), "MQTT allows spaces in topics")
        self.assertRegex(check_path("Field Devices/temp") or "", "spaces or control characters")
        self.assertRegex(check_path("a/b\tc") or "", "spaces or control characters")
        self.assertRegex(check_path("a/b\u00a0c") or "", "spaces or control characters", "JavaScript's \\s has the no-break space")
        self.assertRegex(check_path("a" * 513) or "", "longer than 512")
        self.assertIsNone(check_client_id("poller.site-2"))
        self.assertIsNotNone(check_client_id("vm~rt"), "'~' is the real-time connection's mark")
        self.assertIsNotNone(check_client_id("vm\n"), "no trailing newline slips through")

    def test_client_ids_follow_the_session_grammar_of_topics_ts(self) -> None:
        # protocol §2.1: <identity>[~<session>], and a lane's MQTT client id adds ~rt.
        self.assertEqual(parse_client_id("alice"), ClientIdParts("alice"))
        self.assertEqual(parse_client_id("alice~tab1"), ClientIdParts("alice", "tab1"))
        self.assertEqual(parse_client_id("alice~rt"), ClientIdParts("alice", None, "rt"))
        self.assertEqual(parse_client_id("alice~web-3f_x~rt"), ClientIdParts("alice", "web-3f_x", "rt"))
        self.assertEqual(identity_of_client_id("alice~tab1~rt"), "alice")
        self.assertIsNone(check_client_id("alice~tab1"))
        self.assertIsNone(check_client_id("alice~" + "s" * 32))
        self.assertRegex(check_client_id("alice~tab1~rt") or "", "real-time lane")
        self.assertRegex(check_client_id("alice~rt") or "", "real-time lane")
        self.assertRegex(check_client_id("alice~" + "s" * 33) or "", "1-32 characters")
        self.assertRegex(check_client_id("alice~tab.1") or "", "1-32 characters")
        self.assertRegex(check_client_id("alice~") or "", "1-32 characters")
        self.assertRegex(check_client_id("~tab1") or "", "1-128 characters")
        self.assertRegex(check_client_id("alice~a~b") or "", "more than one")
        self.assertRegex(check_client_id("response~tab1") or "", "reserved")


if __name__ == "__main__":
    unittest.main()
