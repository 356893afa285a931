"""What `bus.events()` yields (protocol §11.8): every item a dict, an event as the router sent it
and a gap as `{"type": "gap", "missed", "after"}`, the shape of the TS `EventGap`. No broker: the
page goes through the event cursor and the runtime's conversion as a router's answer would."""
from __future__ import annotations

import unittest

from relais._client.router import _items_and_catch_up
from relais.protocol.event_cursor import EventCursor


class EventItems(unittest.TestCase):
    def test_a_gap_is_yielded_as_a_dict_before_the_events_after_it(self) -> None:
        cursor = EventCursor(5)
        self.assertEqual(cursor.ask(), {"since": 5, "limit": 1000})
        event = {"cursor": 9, "time": 1796518934000, "type": "notification", "data": {"topic": "a/notification"}}
        items, _ = _items_and_catch_up(cursor.answered({"events": [event], "more": False, "latest": 9, "missed": 3}))
        self.assertEqual(items, [{"type": "gap", "missed": 3, "after": 5}, event])
        self.assertTrue(all(isinstance(item, dict) for item in items))


if __name__ == "__main__":
    unittest.main()
