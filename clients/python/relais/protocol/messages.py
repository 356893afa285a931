"""One builder per message kind (protocol §3.2): the only place an envelope is put together.

Ports ``src/protocol/messages.ts``. Keys come in the documented order, ``source`` and ``token``
before ``payload``, so that a receiver refusing an oversized message still finds whom to answer
in its first KiB (protocol §3.4). ``now`` (epoch ms) stamps ``ts``; the current time by default.
"""
from __future__ import annotations

import time
from typing import Any, Optional, Union

from .envelope import EVERYONE, PROTOCOL_VERSION
from .errors import WireError
from .framing import frame, split_frame

_ABSENT: Any = object()

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warn", "error")


def now_ms() -> int:
    """The current time in epoch milliseconds, as the wire has it (protocol §3.1)."""
    return int(time.time() * 1000)


def _ts(now: Optional[int]) -> int:
    return now_ms() if now is None else now


def command_message(*, source: str, destination: str, token: str, payload: Any, priority: str, deadline: int,
                    accept_by: Optional[int] = None, on_behalf_of: Optional[str] = None, now: Optional[int] = None) -> dict:
    """A command (protocol §4.1). ``deadline`` and ``accept_by`` in epoch ms; ``accept_by`` only
    for a handler that acknowledges (§4.7); ``on_behalf_of`` for a trusted intermediary (§3.1)."""
    command: dict = {
        "v": PROTOCOL_VERSION,
        "type": "command",
        "source": source,
        "destination": destination,
        "token": token,
        "payload": {} if payload is None else payload,
        "priority": priority,
        "deadline": deadline,
        "ts": _ts(now),
    }
    if on_behalf_of is not None:
        command["onBehalfOf"] = on_behalf_of
    # Last, so that a command sent again gets a new one without being encoded again.
    if accept_by is not None:
        command["acceptBy"] = accept_by
    return command


_ACCEPT_BY_KEY = ',"acceptBy":'


def restamp_accept_by(body: Union[str, bytes], accept_by: int) -> Union[str, bytes]:
    """A command's wire form with a new ``acceptBy`` (epoch ms); the command was built with one,
    written last (in a binary message, last in its header, protocol §3.5)."""
    if not isinstance(body, str):
        framed = split_frame(body)
        if framed is None:
            raise TypeError("this command carries no acceptBy to renew")
        return frame(str(restamp_accept_by(framed.header_text, accept_by)), framed.body)
    at = body.rfind(_ACCEPT_BY_KEY)
    if at < 0:
        raise TypeError("this command carries no acceptBy to renew")
    return f"{body[:at]}{_ACCEPT_BY_KEY}{accept_by}}}"


def response_message(*, source: str, destination: str, token: str, priority: str, step: str,
                     payload: Any = None, progress: Optional[float] = None, code: Optional[int] = None,
                     error: Optional[WireError] = None, not_run: bool = False, now: Optional[int] = None) -> dict:
    """One step of a command's answer (protocol §4.3, §4.7). ``step``: ``accepted`` (the
    acknowledgement, ``progress`` optional), ``progress`` (``payload``, ``progress`` optional),
    ``result`` (``payload``), ``error`` (``code``, ``error``, ``not_run`` when refused unstarted)."""
    v = PROTOCOL_VERSION
    ts = _ts(now)
    base = {"v": v, "type": "response", "source": source, "destination": destination, "token": token}
    if step == "result":
        return {**base, "final": True, "payload": payload, "code": 0, "priority": priority, "ts": ts}
    if step == "accepted":
        message = {**base, "final": False, "accepted": True, "payload": None}
        if progress is not None:
            message["progress"] = progress
        return {**message, "priority": priority, "ts": ts}
    if step == "progress":
        message = {**base, "final": False, "payload": payload}
        if progress is not None:
            message["progress"] = progress
        return {**message, "priority": priority, "ts": ts}
    if step == "error":
        if code is None or error is None:
            raise TypeError("an error step needs a code and an error")
        message = {**base, "final": True, "payload": None, "code": code, "error": error}
        if not_run:
            message["accepted"] = False
        return {**message, "priority": priority, "ts": ts}
    raise TypeError(f"unknown response step {step!r}")


def cancel_message(*, source: str, destination: str, token: str, reason: str, priority: str,
                   on_behalf_of: Optional[dict] = None, now: Optional[int] = None) -> dict:
    """A cancel (protocol §4.4); ``on_behalf_of`` ``{requester, by}`` when the router kills for someone (§11.5)."""
    payload = {"reason": reason, **on_behalf_of} if on_behalf_of else {"reason": reason}
    return {"v": PROTOCOL_VERSION, "type": "cancel", "source": source, "destination": destination, "token": token,
            "payload": payload, "priority": priority, "ts": _ts(now)}


def notification_message(*, source: str, payload: Any, priority: str, destination: Optional[str] = None,
                         deadline: Optional[int] = None, now: Optional[int] = None) -> dict:
    """A notification (protocol §8.1), to everyone unless ``destination``; ``deadline`` epoch ms."""
    message = {"v": PROTOCOL_VERSION, "type": "notification", "source": source,
               "destination": EVERYONE if destination is None else destination, "payload": payload, "priority": priority}
    if deadline is not None:
        message["deadline"] = deadline
    message["ts"] = _ts(now)
    return message


def log_message(*, source: str, level: str, message: str, data: Any = _ABSENT, now: Optional[int] = None) -> dict:
    """A log line (protocol §8.2): ``level`` one of debug, info, warn, error."""
    payload: dict = {"level": level, "message": message}
    if data is not _ABSENT:
        payload["data"] = data
    return {"v": PROTOCOL_VERSION, "type": "log", "source": source, "destination": EVERYONE, "payload": payload,
            "priority": "normal", "ts": _ts(now)}


def presence_message(source: str, info: dict, now: Optional[int] = None) -> dict:
    """A presence (protocol §7.1): a notification with no priority, retained on ``relais/presence/<id>``."""
    return {"v": PROTOCOL_VERSION, "type": "notification", "source": source, "destination": EVERYONE,
            "payload": info, "ts": _ts(now)}
