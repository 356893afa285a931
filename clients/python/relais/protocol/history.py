"""The router's request history on the wire (protocol §11.1, §11.2, §11.5): the actions, what a
row holds and what a query may filter on. Ports ``src/protocol/history.ts`` (what a library
needs: the names, the query check, the row filter, the end of a lifecycle). Rows are dicts with
the wire's keys (``id``, ``token``, ``kind``, ``action``, ``source``, ``etime``, ``ctime``...).
"""
from __future__ import annotations

from typing import Any, Mapping

from .errors import InvalidMessageError

HISTORY_ACTIONS = {"get": "relais/history/get", "put": "relais/history/put", "follow": "relais/history/follow"}

#: What a row records: one step of a request's lifecycle (protocol §11.1).
HISTORY_KINDS: tuple[str, ...] = ("command", "accepted", "progress", "final", "error", "cancel", "put", "kill")

#: Cancels a running request by its token, through the router (protocol §11.5).
KILL_ACTION = "relais/requests/kill"
KILL_OUTCOMES: tuple[str, ...] = ("cancelled", "handler-gone", "finished", "unconfirmed")
#: How long a kill waits for the handler to confirm, by default and at most (ms; protocol §11.5).
KILL_WAIT_MS = {"default": 5000, "max": 60_000}

_TEXT_FIELDS = ("token", "action", "source", "target", "site")
_TIME_FIELDS = ("ctimeFrom", "ctimeTo", "etimeFrom", "etimeTo", "afterId", "beforeId")
_QUERY_FIELDS = frozenset(_TEXT_FIELDS + _TIME_FIELDS + ("kind", "code", "order", "limit", "digests"))
_FOLLOW_OMITS = frozenset(("order", "limit", "beforeId", "digests"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


def history_query_problems(query: Any, follow: bool = False) -> list[str]:
    """Why ``query`` is not a valid ``relais/history/get`` (or, ``follow``, ``relais/history/follow``)
    payload (protocol §11.2), each problem naming its field; [] when valid."""
    if query is None:
        return []
    if not isinstance(query, Mapping):
        return ["field '(payload)': expected an object"]
    allowed = _QUERY_FIELDS - _FOLLOW_OMITS if follow else _QUERY_FIELDS
    problems = [f"field '{key}': unknown field" for key in query if key not in allowed]
    for key, value in query.items():
        if key not in allowed:
            continue
        if key in _TEXT_FIELDS and not (isinstance(value, str) and 1 <= len(value) <= 1024):
            problems.append(f"field '{key}': expected a string of 1 to 1024 characters")
        elif key in _TIME_FIELDS and not (_is_int(value) and 0 <= value <= 2**53 - 1):
            problems.append(f"field '{key}': expected a non-negative integer")
        elif key == "kind" and value not in HISTORY_KINDS:
            problems.append("field 'kind': expected one of " + "|".join(f'"{kind}"' for kind in HISTORY_KINDS))
        elif key == "code" and not _is_int(value):
            problems.append("field 'code': expected an integer")
        elif key == "order" and value not in ("oldest", "newest"):
            problems.append("field 'order': expected \"oldest\" or \"newest\"")
        elif key == "limit" and not (_is_int(value) and 1 <= value <= 10_000):
            problems.append("field 'limit': expected an integer from 1 to 10000")
        elif key == "digests" and not isinstance(value, bool):
            problems.append("field 'digests': expected a boolean")
    return problems


def parse_history_query(query: Any) -> dict:
    """A history query (protocol §11.2) with its defaults (``order`` oldest, ``limit`` 100);
    raises ``InvalidMessageError`` naming the bad field."""
    problems = history_query_problems(query)
    if problems:
        raise InvalidMessageError(f"invalid {HISTORY_ACTIONS['get']} payload: {'; '.join(problems)}", details={"issues": problems})
    return {"order": "oldest", "limit": 100, **(query or {})}


def matches_query(row: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Whether ``row`` passes the filters of ``query`` (what the router's store selects), for rows followed live."""
    def equal(field: str) -> bool:
        return field not in query or query[field] is None or row.get(field) == query[field]

    def at_least(field: str, bound: str) -> bool:
        return query.get(bound) is None or row.get(field, 0) >= query[bound]

    def below(field: str, bound: str) -> bool:
        return query.get(bound) is None or row.get(field, 0) < query[bound]

    return (all(equal(field) for field in ("site", "token", "action", "source", "target", "kind", "code"))
            and at_least("ctime", "ctimeFrom") and below("ctime", "ctimeTo")
            and at_least("etime", "etimeFrom") and below("etime", "etimeTo")
            and (query.get("afterId") is None or row.get("id", 0) > query["afterId"])
            and below("id", "beforeId"))


def ends_lifecycle(row: Mapping[str, Any]) -> bool:
    """A row that ends a request's lifecycle (``final``, ``error``, ``put``): following a token stops after it (§11.2)."""
    return row.get("kind") in ("final", "error", "put")
