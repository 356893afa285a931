"""Ports test/unit/recent-tokens.test.ts and test/unit/ack-clock.test.ts (its pure part, the
silent broker included), and checks the handler choice (protocol §4.6, §4.7, §4.8, §13.4)."""
from __future__ import annotations

import math
import unittest

from relais.protocol.ack_clock import AckClock
from relais.protocol.failure_detector import FailureDetector
from relais.protocol.handler_choice import HandlerChoice
from relais.protocol.recent_tokens import REMEMBER_AT_MOST_MS, REMEMBER_WITHOUT_DEADLINE_MS, RecentTokens


class RecentTokensTest(unittest.TestCase):
    def test_a_finished_command_is_remembered_until_its_deadline_then_forgotten(self) -> None:
        recent = RecentTokens()
        recent.remember("vm-x t1", '{"final":true}', 5000, 1000)
        self.assertEqual(recent.get("vm-x t1", 4999).body, '{"final":true}')
        self.assertIsNone(recent.get("vm-x t1", 5000))
        self.assertEqual(recent.size, 0)

    def test_without_a_deadline_for_a_minute_never_longer_than_ten(self) -> None:
        recent = RecentTokens()
        recent.remember("a t", "x", None, 0)
        recent.remember("b t", "y", 10**12, 0)
        self.assertIsNotNone(recent.get("a t", REMEMBER_WITHOUT_DEADLINE_MS - 1))
        self.assertIsNone(recent.get("a t", REMEMBER_WITHOUT_DEADLINE_MS))
        self.assertIsNone(recent.get("b t", REMEMBER_AT_MOST_MS))

    def test_bounded_in_entries_the_oldest_is_forgotten_first(self) -> None:
        recent = RecentTokens(3, 1_000_000)
        for token in ("t1", "t2", "t3", "t4"):
            recent.remember(f"s {token}", token, 10_000, 0)
        self.assertEqual(recent.size, 3)
        self.assertIsNone(recent.get("s t1", 1))
        self.assertEqual(recent.get("s t4", 1).body, "t4")

    def test_bounded_in_bytes_the_oldest_results_are_dropped_but_their_tokens_kept(self) -> None:
        recent = RecentTokens(100, 10)
        recent.remember("s t1", "123456", 10_000, 0)
        recent.remember("s t2", "789012", 10_000, 0)
        first = recent.get("s t1", 1)
        self.assertIsNotNone(first, "still known")
        self.assertIsNone(first.body, "but its text is gone")
        self.assertEqual(recent.get("s t2", 1).body, "789012")

    def test_remembered_again_a_key_counts_once_in_entries_and_bytes(self) -> None:
        recent = RecentTokens(2, 12)
        recent.remember("s t1", "123456", 10_000, 0)
        recent.remember("s t1", "abcdef", 10_000, 0)
        recent.remember("s t2", "789012", 10_000, 0)
        self.assertEqual((recent.size, recent.get("s t1", 1).body, recent.get("s t2", 1).body), (2, "abcdef", "789012"))


class Waiter:
    def __init__(self, events: list[str], name: str, lane: str = "main") -> None:
        self.lane = lane
        self.ack_retry_at = 0.0
        self.ack_expire_at = 0.0
        self.ack_wait_ms = 0.0
        self.ack_asked = False
        self._events, self._name = events, name

    def retry(self) -> None:
        self._events.append(f"{self._name} retry")

    def expire(self) -> None:
        self._events.append(f"{self._name} expire")


class AckClockTest(unittest.TestCase):
    def test_a_request_still_waiting_is_written_again_half_way_then_expires_one_answered_is_left_alone(self) -> None:
        clock = AckClock()
        events: list[str] = []
        waiting, answered = Waiter(events, "waiting"), Waiter(events, "answered")
        self.assertEqual(clock.start(waiting, 2000, 0), 500, "a sweep every quarter of the wait")
        self.assertIsNone(clock.start(answered, 2000, 0), "the running sweep will do")
        clock.stop(answered)
        clock.tick(999)
        self.assertEqual(events, [])
        clock.tick(1000)
        clock.tick(1500)
        self.assertEqual(events, ["waiting retry"], "written again once")
        clock.tick(2000)
        self.assertEqual(events, ["waiting retry"], "given up only after the pending I/O is read")
        clock.give_up()
        clock.tick(3000)
        clock.give_up()
        self.assertEqual(events, ["waiting retry", "waiting expire"], "expired once")
        self.assertFalse(clock.tick(4000), "nobody waits: the sweep stops")
        self.assertEqual(clock.period, math.inf)

    def test_an_answer_read_before_the_give_up_stops_the_expiry(self) -> None:
        clock = AckClock()
        events: list[str] = []
        request = Waiter(events, "r")
        clock.start(request, 20, 0)
        clock.tick(100)  # woke late: the wait is over, but what arrived is not read yet
        self.assertTrue(clock.expiring)
        clock.stop(request)  # the answer, read
        clock.give_up()
        self.assertEqual(events, [])

    def test_a_shorter_wait_makes_the_sweep_faster_never_under_10_ms(self) -> None:
        clock = AckClock()
        events: list[str] = []
        clock.start(Waiter(events, "a"), 2000, 0)
        self.assertEqual(clock.start(Waiter(events, "b"), 400, 0), 100)
        self.assertEqual(clock.start(Waiter(events, "c"), 8, 0), 10)


class Broker:
    """The connections as the clock sees them: when the broker was last heard, and the questions asked."""

    def __init__(self) -> None:
        self.heard = 0.0
        self.probes: list[str] = []

    def heard_at(self, lane: str) -> float:
        return self.heard

    def probe(self, lane: str) -> None:
        self.probes.append(lane)


class SilentBrokerTest(unittest.TestCase):
    """Ports test/unit/ack-clock.test.ts's silent broker case (protocol §4.7)."""

    def test_a_wait_over_while_the_broker_was_silent_asks_it_first_the_handler_then_has_a_quarter_of_the_wait_more_and_a_broker_heard_lately_is_not_asked(self) -> None:
        broker = Broker()
        clock = AckClock(broker)
        events: list[str] = []
        # Heard in the wait's last quarter: the handler's silence counts at once.
        heard = Waiter(events, "heard")
        clock.start(heard, 1000, 0)
        broker.heard = 800
        clock.tick(1000)
        clock.give_up()
        self.assertEqual(events, ["heard expire"])
        self.assertEqual(broker.probes, [])
        # Silent since the wait began (a frozen broker): asked, and nothing expires while it does not answer.
        frozen, answered = Waiter(events, "frozen"), Waiter(events, "answered")
        clock.start(frozen, 1000, 2000)
        clock.start(answered, 1000, 2000)
        clock.tick(3000)
        clock.give_up()
        self.assertEqual(broker.probes, ["main"], "one question for the lane")
        clock.tick(9000)
        clock.give_up()
        self.assertEqual(events, ["heard expire"], "nothing given up while the broker is silent")
        # It answers; meanwhile one handler's answer came through (the one it held).
        clock.stop(answered)
        self.assertEqual(clock.broker_answered("main", 10_000), 62.5, "the sweep is armed again for the quarter")
        clock.tick(10_249)
        clock.give_up()
        self.assertEqual(events, ["heard expire"], "a quarter of the wait more")
        clock.tick(10_250)
        clock.give_up()
        self.assertEqual(events, ["heard expire", "frozen expire"], "then its end counts, without asking again")
        self.assertEqual(broker.probes, ["main"])

    def test_heard_before_the_last_quarter_is_not_heard_each_lane_asks_its_own_question_and_a_connection_lost_meanwhile_lets_its_requests_go(self) -> None:
        broker = Broker()
        clock = AckClock(broker)
        events: list[str] = []
        main, realtime = Waiter(events, "main"), Waiter(events, "realtime", "realtime")
        clock.start(main, 1000, 0)
        clock.start(realtime, 1000, 0)
        broker.heard = 749  # the command's own PUBACK, say: before the last quarter began
        clock.tick(1000)
        clock.give_up()
        self.assertEqual(sorted(broker.probes), ["main", "realtime"])
        self.assertEqual(events, [])
        # The real-time connection drops before its broker answers: its request leaves the
        # clock (written again when the lane is back, and waiting from then).
        clock.broker_lost("realtime")
        clock.broker_answered("realtime", 1100)
        clock.broker_answered("main", 1100)
        clock.tick(1350)
        clock.give_up()
        self.assertEqual(events, ["main expire"])
        clock.start(realtime, 1000, 2000)  # the lane is back, the command written again
        self.assertFalse(realtime.ack_asked, "a new wait asks again if it must")
        broker.heard = 2900
        clock.tick(3000)
        clock.give_up()
        self.assertEqual(events, ["main expire", "realtime expire"])


class Directory:
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def providers(self, action: str) -> list[str]:
        return self._providers


class Sites:
    def __init__(self, down: set[str]) -> None:
        self.any_down = bool(down)
        self._down = down

    def down(self, client_id: str) -> bool:
        return client_id in self._down


class HandlerChoiceTest(unittest.TestCase):
    def test_the_fewest_pending_taking_turns_among_equals(self) -> None:
        fd = FailureDetector(lambda h: None)
        choice = HandlerChoice(Directory(["a", "b", "c"]), fd, clock=lambda: 0)
        self.assertEqual([choice.pick("x", lambda: {}) for _ in range(4)], ["a", "b", "c", "a"])
        self.assertEqual(choice.pick("x", lambda: {"a": 2, "b": 1, "c": 3}), "b")
        self.assertIsNone(HandlerChoice(Directory([]), fd).pick("x", lambda: {}))
        self.assertEqual(HandlerChoice(Directory(["a"]), fd).pick("x", lambda: {}), "a")

    def test_suspected_and_down_site_clients_are_passed_over_while_others_remain(self) -> None:
        fd = FailureDetector(lambda h: None)
        fd.missed("a", 100, 0)
        choice = HandlerChoice(Directory(["a", "b"]), fd, clock=lambda: 1)
        self.assertEqual([choice.pick("x", lambda: {}) for _ in range(3)], ["b", "b", "b"])
        self.assertEqual(choice.pick("x", lambda: {}, exclude={"b"}), "a", "a suspected one when nobody else is left")
        self.assertIsNone(choice.pick("x", lambda: {}, exclude={"b"}, unsuspected_only=True))
        sites = HandlerChoice(Directory(["a", "b", "c"]), FailureDetector(lambda h: None), Sites({"a", "b"}), clock=lambda: 0)
        self.assertEqual({sites.pick("x", lambda: {}) for _ in range(3)}, {"c"})
        every_down = HandlerChoice(Directory(["a", "b"]), FailureDetector(lambda h: None), Sites({"a", "b"}), clock=lambda: 0)
        self.assertIn(every_down.pick("x", lambda: {}), {"a", "b"}, "all down: one of them (protocol §13.4)")


if __name__ == "__main__":
    unittest.main()
