"""Ports test/unit/event-cursor.test.ts: a consumer's place in the router's event stream
(protocol §11.8): resume, replay after a gap or a reconnection, the gap retention made told with
its count; then any interleaving (a seeded loop for the fast-check property)."""
from __future__ import annotations

import random
import unittest
from typing import Optional

from relais.protocol.event_cursor import EVENTS_PAGE, MAX_HELD_EVENTS, EventCatchUp, EventCursor, EventGap


def event(cursor: int) -> dict:
    return {"cursor": cursor, "time": cursor, "type": "notification", "data": {}}


class Router:
    """The router's side: a log of events 1..latest, the oldest removed by retention up to ``retained_from``."""

    def __init__(self, latest: int = 0, retained_from: int = 1) -> None:
        self.latest, self.retained_from = latest, retained_from

    def answer(self, ask: dict, limit: int = EVENTS_PAGE) -> dict:
        if "since" not in ask:
            return {"events": [], "more": False, "latest": self.latest}
        first = max(ask["since"] + 1, self.retained_from)
        missed = first - (ask["since"] + 1)
        last = min(self.latest, first + min(limit, ask["limit"]) - 1)
        page = {"events": [event(c) for c in range(first, last + 1)], "more": last < self.latest, "latest": self.latest}
        if missed > 0:
            page["missed"] = missed
        return page


def catch_up(cursor: EventCursor, router: Router, limit: int = EVENTS_PAGE) -> list:
    out: list = []
    ask = cursor.ask()
    while ask:
        out += cursor.answered(router.answer(ask, limit)).items
        ask = cursor.ask()
    return out + cursor.live()


def cursors(items: list) -> list:
    return [f"gap {item.missed} after {item.after}" if isinstance(item, EventGap) else item["cursor"] for item in items]


class EventCursorTest(unittest.TestCase):
    def test_from_now_on_asks_the_latest_cursor_then_yields_only_what_comes_after(self) -> None:
        router = Router(latest=7)
        cursor = EventCursor()
        self.assertEqual(cursor.ask(), {"limit": 1})
        self.assertEqual(cursor.answered(router.answer({"limit": 1})).items, [])
        self.assertEqual(cursor.cursor, 7)
        cursor.pushed([event(7), event(8), event(9)])
        self.assertEqual(cursors(cursor.live()), [8, 9])

    def test_from_a_cursor_the_stored_events_in_pages_then_the_live_ones_each_once(self) -> None:
        router = Router(latest=25)
        cursor = EventCursor(3)
        cursor.pushed([event(24), event(25), event(26)])  # live events arrive while it catches up
        self.assertEqual(cursors(catch_up(cursor, router, 10)), list(range(4, 26)) + [26])

    def test_a_gap_in_the_pushed_cursors_waits_for_a_replay(self) -> None:
        router = Router(latest=5)
        cursor = EventCursor(5)
        self.assertEqual(catch_up(cursor, router), [])
        cursor.pushed([event(6), event(8), event(9)])  # 7 was lost on the way
        self.assertEqual(cursors(cursor.live()), [6])
        router.latest = 9
        self.assertEqual(cursors(catch_up(cursor, router)), [7, 8, 9])

    def test_retention_removed_events_before_they_were_read_a_gap_with_their_count(self) -> None:
        router = Router(latest=20, retained_from=15)
        self.assertEqual(cursors(catch_up(EventCursor(10), router)), ["gap 4 after 10", 15, 16, 17, 18, 19, 20])

    def test_a_reconnection_replays_what_was_pushed_while_away_a_silent_router_is_asked_again(self) -> None:
        router = Router(latest=2)
        cursor = EventCursor(0)
        self.assertEqual(cursors(catch_up(cursor, router)), [1, 2])
        router.latest = 4
        cursor.reconnected()
        self.assertFalse(cursor.idle)
        self.assertEqual(cursor.ask(), {"since": 2, "limit": EVENTS_PAGE})
        cursor.failed()
        self.assertEqual(cursors(catch_up(cursor, router)), [3, 4])
        self.assertTrue(cursor.idle)

    def test_more_live_events_than_it_holds_are_dropped_and_replayed(self) -> None:
        router = Router(latest=MAX_HELD_EVENTS + 5)
        cursor = EventCursor(0)
        cursor.pushed([event(i + 1) for i in range(MAX_HELD_EVENTS + 5)])
        self.assertEqual(cursors(catch_up(cursor, router)), list(range(1, MAX_HELD_EVENTS + 6)))

    def test_a_pushed_event_without_a_number_for_cursor_is_skipped(self) -> None:
        cursor = EventCursor(0)
        catch_up(cursor, Router())
        cursor.pushed([{"cursor": "x"}, event(1)])
        self.assertEqual(cursors(cursor.live()), [1])


def replays(cursor: EventCursor, router: Router, down: bool = False) -> list[EventCatchUp]:
    """Runs the replays that are due, returning what each one reported."""
    reports = []
    cursor.live()  # reading the live events finds a jump in their cursors
    ask = cursor.ask()
    while ask:
        if down:
            cursor.failed()
            break
        caught_up = cursor.answered(router.answer(ask, 2)).caught_up
        if caught_up:
            reports.append(caught_up)
        ask = cursor.ask()
    cursor.live()
    return reports


class CatchUpReportsTest(unittest.TestCase):
    def test_each_replay_reports_why_where_from_and_what_it_found_once_done(self) -> None:
        router = Router(latest=5, retained_from=3)
        cursor = EventCursor(0)
        self.assertEqual(replays(cursor, router), [EventCatchUp("start", 0, 3, 2)])
        router.latest = 7
        cursor.pushed([event(7)])  # 6 missed live
        self.assertEqual(replays(cursor, router), [EventCatchUp("gap", 5, 2, 0)])
        router.latest = 8
        cursor.pushed([event(9)])  # a gap, then the connection dropped: the reconnection says why
        cursor.live()
        cursor.reconnected()
        router.latest = 9
        self.assertEqual(replays(cursor, router, True), [], "the router did not answer")
        self.assertEqual(replays(cursor, router), [EventCatchUp("reconnection", 7, 2, 0)], "asked again for the same reason")

    def test_a_feed_started_from_now_reports_nothing_for_its_first_answer(self) -> None:
        self.assertEqual(replays(EventCursor(), Router(latest=3)), [])


class AnyInterleavingTest(unittest.TestCase):
    def test_each_event_yielded_once_in_order_every_event_after_the_start_yielded_or_counted(self) -> None:
        rng = random.Random(31)
        for _ in range(500):
            since = rng.randint(0, 5)
            router = Router(latest=since)
            cursor = EventCursor(since)
            yielded: list = []
            state = {"down": False}

            def read() -> None:
                ask = cursor.ask()
                while ask:
                    if state["down"]:
                        cursor.failed()
                        return
                    yielded.extend(cursor.answered(router.answer(ask, 4)).items)
                    ask = cursor.ask()
                yielded.extend(cursor.live())

            script = []
            for _ in range(rng.randint(0, 40)):
                kind = rng.randrange(5)
                if kind == 0:
                    count = rng.randint(1, 6)
                    script.append(("append", count, [rng.random() < 0.5 for _ in range(count)]))
                elif kind == 1:
                    script.append(("retain", rng.randint(0, 30)))
                elif kind == 2:
                    script.append(("reconnect",))
                elif kind == 3:
                    script.append(("down", rng.random() < 0.5))
                else:
                    script.append(("read",))
            for step in script:
                if step[0] == "append":
                    batch = [event(router.latest + 1 + i) for i in range(step[1])]
                    router.latest += step[1]
                    cursor.pushed([e for e, delivered in zip(batch, step[2]) if delivered])
                elif step[0] == "retain":
                    router.retained_from = max(router.retained_from, min(step[1], router.latest + 1))
                elif step[0] == "reconnect":
                    cursor.reconnected()
                elif step[0] == "down":
                    state["down"] = step[1]
                else:
                    read()
            state["down"] = False
            cursor.reconnected()  # the last pushes may have been lost: caught up at the next reconnection
            read()
            at: Optional[int] = since
            for item in yielded:
                if isinstance(item, EventGap):
                    self.assertEqual(item.after, at, (since, script))
                    at += item.missed
                else:
                    self.assertEqual(item["cursor"], at + 1, (since, script))
                    at = item["cursor"]
            self.assertEqual(at, router.latest, (since, script))
            self.assertEqual(cursor.cursor, router.latest, (since, script))


if __name__ == "__main__":
    unittest.main()
