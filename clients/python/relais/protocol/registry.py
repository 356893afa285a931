"""The client registry's wire contract (protocol §11.3): its action and notification names, the
statuses, and the check of a request's payload. Ports ``src/protocol/registry.ts``. Payloads are
dicts: ``{"revision", "clients": {id: summary or detail}}``.
"""
from __future__ import annotations

import json
from typing import Any

from .errors import InvalidMessageError, RelaisError
from .topics import check_client_id

REGISTRY_ACTIONS = {"list_get": "relais/clients/list/get", "detail_get": "relais/clients/detail/get"}
REGISTRY_CATEGORIES = {"list": "relais/clients/list", "detail": "relais/clients/detail"}

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
    if "id" in allowed and "id" in payload and (not isinstance(payload["id"], str) or check_client_id(payload["id"])):
        problems.append("field 'id': must be a client id (1-128 of letters, digits, _ . : @ -)")
    return problems


def parse_list_request(payload: Any) -> dict:
    """``relais/clients/list/get`` takes no field; None reads as {} (protocol §11.3, §5.2)."""
    return _parse(payload, (), REGISTRY_ACTIONS["list_get"])


def parse_detail_request(payload: Any) -> dict:
    """``relais/clients/detail/get`` takes an optional ``id``; None reads as {} (protocol §11.3, §5.2)."""
    return _parse(payload, ("id",), REGISTRY_ACTIONS["detail_get"])


def _parse(payload: Any, allowed: tuple[str, ...], action: str) -> dict:
    problems = _problems(payload, allowed)
    if problems:
        raise InvalidMessageError(f"invalid {action} payload: {'; '.join(problems)}", details={"issues": problems})
    return dict(payload or {})
