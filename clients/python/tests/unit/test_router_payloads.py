"""The router's payloads a library reads and sends: history queries and rows (protocol §11.2),
the registry's requests (§11.3), and what a library knows of sites (§13.4)."""
from __future__ import annotations

import unittest

from relais.protocol.errors import InvalidMessageError, NoHandlerError, SiteUnreachableError
from relais.protocol.history import ends_lifecycle, history_query_problems, matches_query, parse_history_query
from relais.protocol.registry import UnknownClientError, parse_detail_request, parse_list_request
from relais.protocol.sites import (
    SiteTopic, check_site_name, parse_site_topic, site_address, site_clients_problem, site_of_address, site_status_problem,
    site_unreachable,
)


class HistoryTest(unittest.TestCase):
    def test_a_query_gets_its_defaults_and_a_bad_field_is_named(self) -> None:
        self.assertEqual(parse_history_query({"token": "t1"}), {"order": "oldest", "limit": 100, "token": "t1"})
        self.assertEqual(parse_history_query(None), {"order": "oldest", "limit": 100})
        for query, field in (({"limit": 0}, "limit"), ({"kind": "done"}, "kind"), ({"tokn": "x"}, "tokn"), ({"afterId": -1}, "afterId"),
                             ({"token": ""}, "token"), ({"digests": 1}, "digests"), ({"order": "latest"}, "order")):
            with self.assertRaisesRegex(InvalidMessageError, f"field '{field}'"):
                parse_history_query(query)
        self.assertEqual(history_query_problems({"order": "oldest"}, follow=True), ["field 'order': unknown field"], "follow takes no order")

    def test_rows_are_filtered_as_the_store_does_and_final_error_put_end_a_lifecycle(self) -> None:
        row = {"id": 5, "token": "t", "kind": "final", "action": "a/b", "source": "h", "code": 0, "etime": 100, "ctime": 110}
        self.assertTrue(matches_query(row, {"token": "t", "afterId": 4, "ctimeFrom": 110, "ctimeTo": 111}))
        self.assertFalse(matches_query(row, {"afterId": 5}))
        self.assertFalse(matches_query(row, {"ctimeTo": 110}), "the upper bound is excluded")
        self.assertFalse(matches_query(row, {"code": 1}))
        self.assertEqual([ends_lifecycle({"kind": k}) for k in ("final", "error", "put", "progress", "kill")], [True, True, True, False, False])


class RegistryTest(unittest.TestCase):
    def test_requests_are_checked_naming_the_field(self) -> None:
        self.assertEqual(parse_list_request(None), {})
        self.assertEqual(parse_detail_request({"id": "vm-1"}), {"id": "vm-1"})
        with self.assertRaisesRegex(InvalidMessageError, "field 'x'"):
            parse_list_request({"x": 1})
        with self.assertRaisesRegex(InvalidMessageError, "field 'id'"):
            parse_detail_request({"id": "bad id"})
        self.assertEqual(UnknownClientError("z").details, {"id": "z"})

    def test_pages_are_checked_naming_the_field(self) -> None:
        self.assertEqual(parse_list_request({"after": "vm-1", "limit": 10}), {"after": "vm-1", "limit": 10})
        self.assertEqual(parse_detail_request({"after": "vm-1"}), {"after": "vm-1"})
        for bad in ({"limit": 0}, {"limit": 1001}, {"limit": 2.5}, {"limit": True}, {"limit": "10"}):
            with self.assertRaisesRegex(InvalidMessageError, "field 'limit'"):
                parse_list_request(bad)
        with self.assertRaisesRegex(InvalidMessageError, "field 'after'"):
            parse_detail_request({"after": "bad id"})
        with self.assertRaisesRegex(InvalidMessageError, "field 'id'"):
            parse_detail_request({"id": "vm-1", "limit": 5})


class SitesTest(unittest.TestCase):
    def test_names_addresses_and_topics(self) -> None:
        self.assertIsNone(check_site_name("poller-1"))
        self.assertRegex(check_site_name("a:b") or "", "may not contain ':'")
        self.assertRegex(check_site_name("a b") or "", "site name")
        self.assertEqual(site_of_address(site_address("poller-1")), "poller-1")
        self.assertIsNone(site_of_address("site:a:b"))
        self.assertIsNone(site_of_address("poller-1"))
        self.assertEqual(parse_site_topic("relais/sites/p1"), SiteTopic("status", "p1"))
        self.assertEqual(parse_site_topic("relais/sites/p1/clients"), SiteTopic("clients", "p1"))
        self.assertIsNone(parse_site_topic("relais/sites/p1/clients/x"))
        self.assertIsNone(parse_site_topic("relais/presence/p1"))

    def test_statuses_and_rosters_are_checked(self) -> None:
        self.assertIsNone(site_status_problem({"site": "p1", "status": "down", "mode": "pull"}))
        self.assertIsNone(site_status_problem({"site": "p1", "status": "up", "mode": "push", "since": 5, "rttMs": 1.5, "extra": 1}))
        self.assertRegex(site_status_problem({"site": "p1", "status": "gone", "mode": "pull"}) or "", "status")
        self.assertRegex(site_status_problem({"site": "p1", "status": "up", "mode": "pull", "since": -1}) or "", "since")
        self.assertIsNone(site_clients_problem({"site": "p1", "clients": ["a", "site:p1"]}))
        self.assertRegex(site_clients_problem({"site": "p1", "clients": [1]}) or "", "clients")

    def test_the_error_of_a_handler_behind_a_down_link(self) -> None:
        error = site_unreachable("poller-1", 1796530323000, "agent-p1")
        self.assertIsInstance(error, NoHandlerError)
        self.assertIsInstance(error, SiteUnreachableError)
        self.assertEqual(error.message, "site poller-1 is unreachable since 2026-12-06T04:12:03Z (its link is down): agent-p1 cannot be reached")
        self.assertEqual((error.response_code, error.details), (3, {"site": "poller-1", "since": 1796530323000}))
        self.assertEqual(site_unreachable("p", None, "h", 1500.4).message, "site p is unreachable (its link is down): h cannot be reached (waited 1500 ms for it)")


if __name__ == "__main__":
    unittest.main()
