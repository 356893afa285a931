"""The presence a client keeps retained on ``relais/presence/<id>`` (protocol §7.1).

Ports ``src/protocol/presence.ts``: how a receiver reads one, and the ordering rule that tells
a newer presence from an older one arriving late. A presence is a ``dict`` with the wire's keys
(``status``, ``actions``, ``realtimeActions``, ``targetedActions``, ``since``, ``seq``,
``instance``, ``acks``, ``ephemeral``, ``lifecycle``, ``contracts``, and free-form ``info``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

STATUSES: tuple[str, ...] = ("alive", "stopped", "dead")

#: Fields of the presence payload that protocol §7.1 defines; the rest is the client's free-form info.
PRESENCE_FIELDS: frozenset[str] = frozenset({
    "status", "actions", "realtimeActions", "targetedActions", "since", "seq", "instance", "acks",
    "ephemeral", "lifecycle", "host", "pid",
})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def parse_presence(payload: Any) -> Optional[dict]:
    """Reads a presence payload (protocol §7.1): None when ``status`` is not alive, stopped or
    dead (an invalid presence, read as a cleared one); otherwise every list present (non-strings
    dropped), ``since`` and ``seq`` numbers (0 by default), a non-string ``instance`` dropped,
    and the other fields kept."""
    if not isinstance(payload, dict):
        return None
    status = payload.get("status")
    if status not in STATUSES or not isinstance(status, str):
        return None
    read = {key: value for key, value in payload.items() if key != "instance"}
    read.update({
        "status": status,
        "actions": _strings(payload.get("actions")),
        "realtimeActions": _strings(payload.get("realtimeActions")),
        "targetedActions": _strings(payload.get("targetedActions")),
        "since": payload["since"] if _is_number(payload.get("since")) else 0,
        "seq": payload["seq"] if _is_number(payload.get("seq")) else 0,
    })
    if isinstance(payload.get("instance"), str):
        read["instance"] = payload["instance"]
    return read


@dataclass(frozen=True)
class PresenceOrder:
    """A presence's place in its client's sequence (protocol §7.1): ``since`` (epoch ms), ``seq``, ``instance``."""

    since: float
    seq: float
    instance: Optional[str] = None


def is_older_presence(incoming: Mapping[str, Any], known: PresenceOrder) -> bool:
    """Protocol §7.1 ordering of ``incoming`` (a presence dict) against ``known``: a presence of an
    earlier instance (smaller ``since``) is older, so is one without a larger ``seq`` of the same
    instance; a will (``dead``) of the same instance always applies. A will of another instance
    started in the same millisecond never displaces this one; its other presences apply."""
    since = incoming.get("since")
    if since != known.since:
        return since < known.since
    instance = incoming.get("instance")
    other_instance = instance is not None and known.instance is not None and instance != known.instance
    if other_instance:
        return incoming.get("status") == "dead"
    if incoming.get("status") == "dead":
        return False
    seq = incoming.get("seq")
    return (0 if seq is None else seq) <= known.seq


OLDER = "older"
FORGET = "forget"
APPLY = "apply"


def judge_presence(incoming: Mapping[str, Any], known: Optional[PresenceOrder]) -> str:
    """What a receiver does with ``incoming`` holding ``known`` (None: none or cleared):
    ``"older"`` (ignore it), ``"forget"`` (a gone ephemeral client leaves no trace, §7.1) or ``"apply"``."""
    if known is not None and is_older_presence(incoming, known):
        return OLDER
    if incoming.get("ephemeral") is True and incoming.get("status") != "alive":
        return FORGET
    return APPLY


def order_after(incoming: Mapping[str, Any], known: Optional[PresenceOrder]) -> PresenceOrder:
    """The order to hold once ``incoming`` applies: a will carries ``seq`` 0 (made at connection
    time), so after the will of the instance it knows a receiver keeps that instance's counter
    (§7.1); a new instance starts from its own."""
    seq = incoming.get("seq")
    seq = 0 if seq is None else seq
    instance = incoming.get("instance")
    keep_counter = (known is not None and incoming.get("status") == "dead" and incoming.get("since") == known.since
                    and instance == known.instance)
    return PresenceOrder(since=incoming.get("since"), seq=max(seq, known.seq) if keep_counter and known else seq, instance=instance)
