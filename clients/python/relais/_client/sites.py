"""The sites this client's broker is linked to (protocol §13.4), a port of
`src/client/presence/sites.ts`: each link's status (`relais/sites/<site>`) and each site's
roster (`relais/sites/<site>/clients`), both retained. What a request reads to fail at once
(`SiteUnreachableError`), or wait (`wait_for_site`), when its handler is on a site whose link is
down, and what the handler choice reads to avoid such a handler. A bus with no `relais/sites/`
topics has no site here, and nothing changes for its requests. The payload checks and the
error's text are `relais.protocol.sites`.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

from ..protocol.envelope import DecodeResult
from ..protocol.errors import SiteUnreachableError
from ..protocol.sites import SiteTopic, site_clients_problem, site_of_address, site_status_problem, site_unreachable

log = logging.getLogger("relais.sites")

#: More sites than any deployment has: past it, new ones are ignored with a log line (a flood of
#: made-up topics must not grow memory).
MAX_SITES = 10_000


class SiteDirectory:
    def __init__(self) -> None:
        #: site -> {"site", "status"?: dict, "roster"?: dict}
        self._sites: dict[str, dict] = {}
        self._site_of_client: dict[str, str] = {}
        self._down_count = 0
        self._unconfirmed: Optional[set[str]] = None
        #: Listeners: change(site).
        self.on_change: list[Callable[[str], None]] = []

    @property
    def any_down(self) -> bool:
        """True while some known site's link is down: the only case where requests look further."""
        return self._down_count > 0

    def update(self, topic: SiteTopic, payload_length: int, decoded: Callable[[], DecodeResult]) -> None:
        """A message on `relais/sites/...`: a status or roster replaces the one held; an empty
        (cleared) one forgets it; an invalid one is logged and ignored. Probes are not read."""
        if topic.kind == "probe":
            return
        if self._unconfirmed is not None:
            self._unconfirmed.discard(f"{topic.kind} {topic.site}")
        if payload_length == 0:
            self._set(topic.site, topic.kind, None)
            return
        result = decoded()
        payload = result.envelope.get("payload") if result.ok else None
        if not result.ok:
            problem: Optional[str] = str(result.error)
        else:
            problem = (site_status_problem if topic.kind == "status" else site_clients_problem)(payload)
            if problem is None and payload.get("site") != topic.site:
                problem = f"it names site {payload.get('site')!r}"
        if problem is not None:
            log.warning("invalid site %s on relais/sites/; ignored (site %s: %s)", topic.kind, topic.site, problem[:300])
            return
        self._set(topic.site, topic.kind, payload)

    def _set(self, site: str, kind: str, value: Optional[dict]) -> None:
        view = self._sites.get(site)
        if view is None:
            if value is None:
                return
            if len(self._sites) >= MAX_SITES:
                log.warning("too many sites on relais/sites/; this one is ignored (site %s, max %d)", site, MAX_SITES)
                return
            view = self._sites[site] = {"site": site}
        if kind == "status":
            if (view.get("status") or {}).get("status") == "down":
                self._down_count -= 1
            if value is not None:
                view["status"] = value
            else:
                view.pop("status", None)
            if (view.get("status") or {}).get("status") == "down":
                self._down_count += 1
        else:
            for client_id in (view.get("roster") or {}).get("clients", []):
                if self._site_of_client.get(client_id) == site:
                    del self._site_of_client[client_id]
            if value is not None:
                view["roster"] = value
            else:
                view.pop("roster", None)
            # A client listed by two sites stays with the first (the link refuses the duplicate, §13.2).
            for client_id in (view.get("roster") or {}).get("clients", []):
                self._site_of_client.setdefault(client_id, site)
        if "status" not in view and "roster" not in view:
            del self._sites[site]
        for listener in list(self.on_change):
            listener(site)

    def site_of(self, client_id: str) -> Optional[str]:
        """The site `client_id` is a client of (from the rosters), or the site a `site:<name>` address names."""
        return self._site_of_client.get(client_id) or site_of_address(client_id)

    def down_site(self, client_id: str) -> Optional[tuple[str, Optional[float]]]:
        """`(site, since)` when `client_id` belongs to a site whose link is down, else None."""
        if self._down_count == 0:
            return None
        site = self.site_of(client_id)
        status = (self._sites.get(site) or {}).get("status") if site is not None else None
        if site is None or status is None or status.get("status") != "down":
            return None
        return site, status.get("since")

    def down(self, client_id: str) -> bool:
        """Whether `client_id` is on a site whose link is down (what the handler choice asks)."""
        return self.down_site(client_id) is not None

    def unreachable(self, handler: str) -> Optional[SiteUnreachableError]:
        """The error of a request to `handler` while its site's link is down (§13.4), or None."""
        down = self.down_site(handler)
        return None if down is None else site_unreachable(down[0], down[1], handler)

    def list(self) -> list[dict]:
        """Every site known, by name: `{"site", "status"?, "roster"?}`."""
        return [dict(self._sites[name]) for name in sorted(self._sites)]

    def begin_reload(self) -> None:
        """After a reconnection: what the broker holds is sent again; what it no longer holds is
        forgotten once the directory settles."""
        self._unconfirmed = {f"{kind} {view['site']}" for view in self._sites.values()
                             for kind, field in (("status", "status"), ("clients", "roster")) if field in view}

    def end_reload(self) -> None:
        stale, self._unconfirmed = self._unconfirmed, None
        for key in sorted(stale or ()):
            kind, site = key.split(" ", 1)
            self._set(site, kind, None)
