"""Sites (protocol §13): what a library needs to know of them (§13.4): the names and topics of
link statuses and rosters, the ``site:<name>`` address, the check of their payloads, and the
``SiteUnreachableError`` of a request whose handler is behind a link that is down.
Ports the library's part of ``src/protocol/sites.ts`` and ``siteUnreachable`` of
``src/client/presence/sites.ts``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from .errors import SiteUnreachableError
from .request_lifecycle import js_round
from .topics import SYSTEM_ROOT, check_client_id

#: The site name of a ``relais start`` without ``--site``: the central.
CENTRAL_SITE = "central"
SITES_ROOT = f"{SYSTEM_ROOT}/sites"
SITES_FILTER = f"{SITES_ROOT}/#"
#: What a library subscribes (§13.4): statuses and rosters, not the probes.
SITE_DIRECTORY_FILTERS: tuple[str, ...] = (f"{SITES_ROOT}/+", f"{SITES_ROOT}/+/clients")
SITE_ADDRESS_PREFIX = "site:"
SITES_ACTION = "relais/sites/get"
LINK_MODES: tuple[str, ...] = ("pull", "push")


def check_site_name(name: str) -> Optional[str]:
    """Why ``name`` is not a valid site name, or None: a client id (§2.1) without ``:``."""
    problem = check_client_id(name)
    if problem:
        return problem.replace("client id", "site name")
    if ":" in name:
        return f"site name {json.dumps(name)} may not contain ':'"
    return None


def site_status_topic(site: str) -> str:
    """The retained status of the link to ``site``."""
    return f"{SITES_ROOT}/{site}"


def site_clients_topic(site: str) -> str:
    """The retained roster of ``site``."""
    return f"{SITES_ROOT}/{site}/clients"


def site_address(site: str) -> str:
    """``site:<name>``: the target that reaches a site's own router (§13.3)."""
    return f"{SITE_ADDRESS_PREFIX}{site}"


def site_of_address(client_id: str) -> Optional[str]:
    """The site a ``site:<name>`` target names, or None for any other id."""
    if not client_id.startswith(SITE_ADDRESS_PREFIX):
        return None
    site = client_id[len(SITE_ADDRESS_PREFIX):]
    return None if check_site_name(site) else site


@dataclass(frozen=True)
class SiteTopic:
    kind: str  # "status", "clients" or "probe"
    site: str


def parse_site_topic(topic: str) -> Optional[SiteTopic]:
    """What a topic under ``relais/sites/`` is, or None."""
    if not topic.startswith(f"{SITES_ROOT}/"):
        return None
    parts = topic[len(SITES_ROOT) + 1:].split("/")
    site, tail = parts[0], parts[1] if len(parts) > 1 else None
    if check_site_name(site) or len(parts) > 2:
        return None
    if tail is None:
        return SiteTopic("status", site)
    if tail in ("clients", "probe"):
        return SiteTopic(tail, site)
    return None


def _epoch_ms(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def site_status_problem(payload: Any) -> Optional[str]:
    """Why ``payload`` is not a valid link status (``relais/sites/<site>``, §13.4), or None."""
    if not isinstance(payload, dict):
        return "a site status must be an object"
    if not isinstance(payload.get("site"), str) or check_site_name(payload["site"]):
        return "field 'site': a site name"
    if payload.get("status") not in ("up", "down"):
        return "field 'status': expected \"up\" or \"down\""
    if "since" in payload and not _epoch_ms(payload["since"]):
        return "field 'since': expected epoch ms"
    if payload.get("mode") not in LINK_MODES:
        return "field 'mode': expected \"pull\" or \"push\""
    rtt = payload.get("rttMs")
    if "rttMs" in payload and not (isinstance(rtt, (int, float)) and not isinstance(rtt, bool) and rtt >= 0):
        return "field 'rttMs': expected a non-negative number"
    return None


def site_clients_problem(payload: Any) -> Optional[str]:
    """Why ``payload`` is not a valid roster (``relais/sites/<site>/clients``, §13.4), or None."""
    if not isinstance(payload, dict):
        return "a site roster must be an object"
    if not isinstance(payload.get("site"), str) or check_site_name(payload["site"]):
        return "field 'site': a site name"
    clients = payload.get("clients")
    if not isinstance(clients, list) or len(clients) > 100_000 or not all(isinstance(c, str) for c in clients):
        return "field 'clients': expected a list of ids"
    return None


def iso_second(ms: float) -> str:
    """ISO time to the second (``2026-12-06T04:12:03Z``): what a person reads in a message."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def site_unreachable(site: str, since: Optional[float], handler: str, waited_ms: Optional[float] = None) -> SiteUnreachableError:
    """The error of a request whose handler is on a site whose link is down (§13.4):
    ``site poller-1 is unreachable since 2026-12-06T04:12:03Z (its link is down): agent-p1 cannot be reached``."""
    when = "" if since is None else f" since {iso_second(since)}"
    waited = "" if waited_ms is None else f" (waited {js_round(waited_ms)} ms for it)"
    details = {"site": site} if since is None else {"site": site, "since": since}
    return SiteUnreachableError(f"site {site} is unreachable{when} (its link is down): {handler} cannot be reached{waited}", details)
