"""Ports test/unit/failure-detector.test.ts (protocol §4.7): the acknowledgement deadline
learnt per handler, suspicion, and what lifts it; fast-check properties as seeded loops."""
from __future__ import annotations

import random
import unittest

from relais.protocol.failure_detector import CEILING_IN_ACK_TIMEOUTS, SUSPICION_IN_ACK_TIMEOUTS, FailureDetector

presences: dict[str, dict] = {}


def detector() -> FailureDetector:
    return FailureDetector(lambda handler: presences.get(handler, {"since": 1, "seq": 1}))


def random_history(rng: random.Random) -> list[tuple]:
    events = []
    for _ in range(rng.randint(0, 60)):
        kind = rng.randrange(3)
        events.append(("answered", rng.randint(0, 400_000)) if kind == 0 else ("missed",) if kind == 1 else ("wait", rng.randint(0, 100_000)))
    return events


def play(fd: FailureDetector, history: list[tuple], ack_timeout: int, each=None) -> None:
    now = 0
    for event in history:
        if event[0] == "answered":
            fd.answered("h", event[1])
        elif event[0] == "missed":
            fd.missed("h", ack_timeout, now)
        else:
            now += event[1]
        if each:
            each()


class FailureDetectorTest(unittest.TestCase):
    def test_a_handler_not_heard_from_yet_is_given_ack_timeout(self) -> None:
        self.assertEqual(detector().deadline("h", 2000), 2000)

    def test_the_deadline_always_lies_between_ack_timeout_and_its_ceiling(self) -> None:
        rng = random.Random(21)
        for _ in range(300):
            ack_timeout, misses, fd = rng.randint(10, 20_000), rng.randint(0, 40), detector()

            def check() -> None:
                deadline = fd.deadline("h", ack_timeout, misses)
                self.assertTrue(ack_timeout <= deadline <= CEILING_IN_ACK_TIMEOUTS * ack_timeout, (deadline, ack_timeout))

            play(fd, random_history(rng), ack_timeout, check)

    def test_estimates_converge_after_a_run_of_equal_round_trips(self) -> None:
        rng = random.Random(22)
        for _ in range(300):
            ack_timeout, rtt, fd = rng.randint(10, 20_000), rng.randint(0, 400_000), detector()
            play(fd, random_history(rng), ack_timeout)
            for _ in range(150):
                fd.answered("h", rtt)
            expected = min(CEILING_IN_ACK_TIMEOUTS * ack_timeout, max(ack_timeout, rtt))
            self.assertLessEqual(abs(fd.deadline("h", ack_timeout) - expected), 0.01 * expected)

    def test_after_a_slow_first_answer_the_next_wait_covers_it(self) -> None:
        rng = random.Random(23)
        for _ in range(300):
            ack_timeout, rtt, fd = rng.randint(10, 20_000), rng.randint(0, 400_000), detector()
            fd.answered("h", rtt)
            self.assertGreaterEqual(fd.deadline("h", ack_timeout), min(rtt, CEILING_IN_ACK_TIMEOUTS * ack_timeout))

    def test_a_jittery_handler_gets_more_room_than_a_steady_one_with_the_same_mean(self) -> None:
        steady, jittery = detector(), detector()
        for n in range(50):
            steady.answered("h", 1000)
            jittery.answered("h", 200 if n % 2 == 0 else 1800)
        self.assertLess(abs(steady.deadline("h", 500) - 1000), 1)
        self.assertGreater(jittery.deadline("h", 500), 3000)

    def test_each_wait_spent_in_vain_doubles_the_next_up_to_the_ceiling_misses_of_others_do_not_compound(self) -> None:
        fd = detector()
        fd.answered("h", 400)  # SRTT 400, RTTVAR 200: 1200 ms
        self.assertEqual([fd.deadline("h", 1000, misses) for misses in range(5)], [1200, 2400, 4800, 8000, 8000])
        for _ in range(10):
            fd.missed("h", 1000, 0)
        self.assertEqual(fd.deadline("h", 1000), 1200, "a new request starts from the estimate")

    def test_a_handler_slower_than_the_floor_stops_being_suspected_once_it_answers(self) -> None:
        rng = random.Random(24)
        for _ in range(200):
            ack_timeout, slowness, misses, fd = rng.randint(10, 20_000), rng.randint(1, 50), rng.randint(1, 10), detector()
            for _ in range(misses):
                fd.missed("h", ack_timeout, 0)
            self.assertTrue(fd.is_suspected("h", 1))
            fd.answered("h", ack_timeout * (1 + slowness))
            self.assertFalse(fd.is_suspected("h", 1))

    def test_a_suspicion_lapses_after_a_while(self) -> None:
        fd = detector()
        self.assertTrue(fd.missed("h", 100, 1000), "newly suspected")
        self.assertFalse(fd.missed("h", 100, 1000), "already suspected")
        self.assertTrue(fd.is_suspected("h", 1000 + SUSPICION_IN_ACK_TIMEOUTS * 100 - 1))
        self.assertFalse(fd.is_suspected("h", 1000 + SUSPICION_IN_ACK_TIMEOUTS * 100))
        self.assertFalse(fd.is_suspected("other", 1000))

    def test_a_newer_presence_of_the_same_instance_lifts_the_suspicion_another_instance_starts_afresh(self) -> None:
        presences["p"] = {"since": 10, "seq": 1}
        try:
            fd = detector()
            fd.answered("p", 1500)  # SRTT 1500, RTTVAR 750: 4500 ms
            fd.missed("p", 1000, 0)
            fd.presence_changed("p", {"since": 10, "seq": 1})  # the same presence again: nothing new
            self.assertTrue(fd.is_suspected("p", 1))
            fd.presence_changed("p", {"since": 10, "seq": 2})  # it came back
            self.assertFalse(fd.is_suspected("p", 1))
            self.assertEqual(fd.deadline("p", 1000), 4500, "the estimate stays")
            fd.presence_changed("p", {"since": 11, "seq": 1})  # restarted
            self.assertEqual(fd.deadline("p", 1000), 1000)
            fd.answered("p", 5000)
            fd.presence_changed("p", None)  # forgotten
            self.assertEqual(fd.deadline("p", 1000), 1000)
        finally:
            del presences["p"]


if __name__ == "__main__":
    unittest.main()
