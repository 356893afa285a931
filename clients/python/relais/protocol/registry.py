"""The client registry's wire contract (protocol §11.3): its action and notification names, the
statuses, and the check of a request's payload. Ports ``src/protocol/registry.ts``. Payloads are
dicts: ``{"revision", "total", "clients": {id: summary or detail}, "next"}``, one page each.
"""
from __future__ import annotations

import json
from typing import Any

from .errors import InvalidMessageError, RelaisError
from .topics import check_client_id

REGISTRY_ACTIONS = {"list_get": "relais/clients/list/get", "detail_get": "relais/clients/detail/get"}
REGISTRY_CATEGORIES = {"list": "relais/clients/list", "detail": "relais/clients/detail"}

#: Most clients one page may ask for (``limit``, protocol §11.3); without it a page holds as many as fit in one message.
MAX_REGISTRY_PAGE_LIMIT = 1000

#: A client's statuses (protocol §11.3), Domogik MQ's plugin statuses in lower case.
CLIENT_STATUSES: tuple[str, ...] = ("starting", "alive", "stopped", "dead", "unknown")


class UnknownClientError(RelaisError):
    """``relais/clients/detail/get`` named a client the registry has never seen (or has forgotten)."""

    _wire_name = "UnknownClientError"

    def __init__(self, client_id: str) -> None:
        super().__init__("UNKNOWN_CLIENT", f"the registry knows no client {json.dumps(client_id)}", details={"id": client_id})


def _problems(payload: Any, allowed: tuple[str, ...]) -> list[str]:
    if payload is None:
        return []
    if not isinstance(payload, dict):
        return ["field '(payload)': expected an object"]
    problems = [f"field '{key}': unknown field" for key in payload if key not in allowed]
    for field in ("id", "after"):
        if field in allowed and field in payload and (not isinstance(payload[field], str) or check_client_id(payload[field])):
            problems.append(f"field '{field}': must be a client id (1-128 of letters, digits, _ . : @ -)")
    limit = payload.get("limit")
    if "limit" in payload and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REGISTRY_PAGE_LIMIT):
        problems.append(f"field 'limit': must be an integer from 1 to {MAX_REGISTRY_PAGE_LIMIT}")
    if payload.get("id") is not None and ("after" in payload or "limit" in payload):
        problems.append("field 'id': 'id' names one client: it takes no 'after' or 'limit'")
    return problems


def parse_list_request(payload: Any) -> dict:
    """``relais/clients/list/get`` takes ``after`` and ``limit`` (a page); None reads as {} (protocol §11.3, §5.2)."""
    return _parse(payload, ("after", "limit"), REGISTRY_ACTIONS["list_get"])


def parse_detail_request(payload: Any) -> dict:
    """``relais/clients/detail/get`` takes a page (``after``, ``limit``) or an ``id``; None reads as {} (protocol §11.3, §5.2)."""
    return _parse(payload, ("id", "after", "limit"), REGISTRY_ACTIONS["detail_get"])


def _parse(payload: Any, allowed: tuple[str, ...], action: str) -> dict:
    problems = _problems(payload, allowed)
    if problems:
        raise InvalidMessageError(f"invalid {action} payload: {'; '.join(problems)}", details={"issues": problems})
    return dict(payload or {})
