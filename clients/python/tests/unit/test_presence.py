"""Ports test/unit/presence-order.test.ts: reading a presence and its ordering (protocol §7.1)."""
from __future__ import annotations

import random
import unittest
from typing import Any, Optional

from relais.protocol.presence import PresenceOrder, is_older_presence, judge_presence, order_after, parse_presence


def presence(status: str, since: int, seq: int, instance: Optional[str] = None, **extra: Any) -> dict:
    fields: dict = {"status": status, "actions": ["a/b"] if status == "alive" else [], "since": since, "seq": seq}
    if instance is not None:
        fields["instance"] = instance
    return {**fields, **extra}


class PresenceReadingTest(unittest.TestCase):
    def test_only_status_is_required_the_rest_takes_its_default(self) -> None:
        self.assertEqual(parse_presence({"status": "alive", "actions": ["x", 3, None, "y"], "role": "router"}), {
            "status": "alive", "actions": ["x", "y"], "realtimeActions": [], "targetedActions": [], "since": 0, "seq": 0, "role": "router",
        })

    def test_a_status_other_than_alive_stopped_or_dead_or_no_object_is_invalid(self) -> None:
        for payload in ({"status": "starting"}, {"actions": []}, None, "alive", [{"status": "alive"}], 42, {"status": ["alive"]}):
            self.assertIsNone(parse_presence(payload), repr(payload))

    def test_an_instance_that_is_not_a_string_is_ignored(self) -> None:
        self.assertNotIn("instance", parse_presence({"status": "alive", "instance": 7}))
        self.assertEqual(parse_presence({"status": "alive", "instance": "i-1"})["instance"], "i-1")


class PresenceOrderingTest(unittest.TestCase):
    known = PresenceOrder(since=100, seq=5, instance="a")

    def test_a_smaller_since_is_ignored_a_larger_since_applies_whatever_the_status(self) -> None:
        for status in ("alive", "stopped", "dead"):
            self.assertTrue(is_older_presence(presence(status, 99, 50, "z"), self.known), f"{status} of an earlier instance")
            self.assertFalse(is_older_presence(presence(status, 101, 0, "z"), self.known), f"{status} of a later instance")

    def test_same_since_dead_always_applies_and_the_known_counter_is_kept(self) -> None:
        self.assertFalse(is_older_presence(presence("dead", 100, 0, "a"), self.known))
        self.assertEqual(order_after(presence("dead", 100, 0, "a"), self.known), PresenceOrder(100, 5, "a"))

    def test_same_since_other_status_applies_only_with_a_larger_seq(self) -> None:
        self.assertTrue(is_older_presence(presence("alive", 100, 5, "a"), self.known))
        self.assertTrue(is_older_presence(presence("stopped", 100, 4, "a"), self.known))
        self.assertFalse(is_older_presence(presence("alive", 100, 6, "a"), self.known))
        self.assertTrue(is_older_presence({"status": "alive", "since": 100, "instance": "a"}, PresenceOrder(100, 0)))

    def test_two_instances_started_in_the_same_millisecond(self) -> None:
        self.assertTrue(is_older_presence(presence("dead", 100, 0, "b"), self.known))
        self.assertFalse(is_older_presence(presence("alive", 100, 1, "b"), self.known))
        self.assertFalse(is_older_presence(presence("stopped", 100, 1, "b"), self.known))

    def test_a_new_instance_starts_from_its_own_counter_even_after_its_will(self) -> None:
        self.assertEqual(order_after(presence("dead", 200, 0, "b"), self.known), PresenceOrder(200, 0, "b"))
        self.assertFalse(is_older_presence(presence("alive", 200, 1, "b"), order_after(presence("dead", 200, 0, "b"), self.known)))

    def test_a_gone_ephemeral_client_is_forgotten_unless_older_than_what_is_known(self) -> None:
        self.assertEqual(judge_presence(presence("dead", 100, 0, "a", ephemeral=True), self.known), "forget")
        self.assertEqual(judge_presence(presence("dead", 99, 0, "z", ephemeral=True), self.known), "older")
        self.assertEqual(judge_presence(presence("alive", 101, 1, "z", ephemeral=True), self.known), "apply")
        self.assertEqual(judge_presence(presence("stopped", 1, 1, "z"), None), "apply")

    def test_presences_of_one_client_delivered_in_any_order_end_on_the_newest(self) -> None:
        # A client's history: instances with growing `since`, each publishing seq 1..n; the
        # receiver's rule (judge, then order_after) is the directory's and the registry's.
        rng = random.Random(6)
        for _ in range(500):
            sent = []
            for i in range(rng.randint(1, 4)):
                count, stops = rng.randint(1, 4), rng.random() < 0.5
                sent += [presence("stopped" if stops and n == count - 1 else "alive", 1000 + i, n + 1, f"i{i}") for n in range(count)]
            delivered = sent[:]
            rng.shuffle(delivered)
            held: Optional[PresenceOrder] = None
            held_status = None
            for payload in delivered:
                read = parse_presence(payload)
                if judge_presence(read, held) == "apply":
                    held, held_status = order_after(read, held), read["status"]
            newest = sent[-1]
            self.assertEqual((held.since, held.seq, held_status), (newest["since"], newest["seq"], newest["status"]))


if __name__ == "__main__":
    unittest.main()
