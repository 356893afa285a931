"""What a handler does with a message on one of its request topics (protocol §4.2).

Ports ``src/protocol/command-admission.ts``: the checks of the protocol's table, in its order,
as one pure function of the message, the time and what the handler serves and remembers. Its
verdict: drop it (with a log line, and an error answer when the sender can be answered, the
handler not run), answer a duplicate from what is remembered (§4.8), or run the handler.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from .envelope import EVERYONE, DecodeResult
from .errors import ResponseCode, WireError, to_wire
from .topics import check_client_id

#: How an action is served here: not at all, not yet (the client is starting, §7.1), on every
#: request topic, or only when targeted (§11.4).
SERVING_VALUES: tuple[str, ...] = ("no", "starting", "yes", "targeted-only")


@dataclass(frozen=True)
class ReplyTo:
    """Where the answers to one command go, and how (protocol §4.3): at the command's QoS (§1.3)."""

    action: str
    requester: str
    token: str
    priority: str
    qos: int
    #: The command came sealed: its answers' payloads go back sealed for the requester (protocol §3.6).
    sealed: bool = False


class ServingView(Protocol):
    """What the handler knows, read by the checks: ``self_id`` (this client's id)."""

    @property
    def self_id(self) -> str: ...

    def serving(self, action: str) -> str:
        """``no``, ``starting``, ``yes`` or ``targeted-only``."""

    def knows(self, key: str) -> bool:
        """Whether the command ``key`` (``"<requester> <token>"``) runs here, or finished and is remembered (§4.8)."""


@dataclass(frozen=True)
class AdmissionLog:
    level: str  # "warn" or "debug"
    message: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AdmissionAnswer:
    """The error response to send for a dropped command; ``not_run``: refused unstarted (``accepted: false``, §4.7)."""

    to: ReplyTo
    code: int
    error: WireError
    not_run: bool = False


@dataclass(frozen=True)
class Admission:
    """``kind``: ``drop`` (``log``, ``answer`` when the sender can be answered), ``duplicate``
    (``to``, ``key``, ``wants_acks``: answered from what is remembered, §4.8) or ``run`` (``to``,
    ``key``, ``command``, ``wants_acks``: the command carries ``acceptBy``, §4.7)."""

    kind: str
    log: Optional[AdmissionLog] = None
    answer: Optional[AdmissionAnswer] = None
    to: Optional[ReplyTo] = None
    key: Optional[str] = None
    command: Optional[dict] = None
    wants_acks: bool = False


def _self_id(view: Any) -> str:
    return view.self_id


def admit_command(action: str, targeted: bool, decoded: DecodeResult, qos: int, now: float, view: ServingView,
                  new_token: Callable[[], str]) -> Admission:
    """The checks of protocol §4.2, in order, for what arrived on ``<action>/request``
    (``targeted``: on ``<action>/request/<me>``) at QoS ``qos``, at ``now`` (epoch ms).
    ``new_token()`` names the answers of a command that carries no token."""
    if not decoded.ok:
        log = AdmissionLog("warn", "invalid request", {"action": action, "err": decoded.error.message,
                                                        "source": decoded.sender.source if decoded.sender else None})
        if decoded.sender is None:
            return Admission("drop", log=log)
        code, error = to_wire(decoded.error)
        to = ReplyTo(action, decoded.sender.source, decoded.sender.token or "none", "normal", qos)
        return Admission("drop", log=log, answer=AdmissionAnswer(to, code, error))
    command = decoded.envelope
    me = _self_id(view)
    if command["type"] != "command":
        return _drop("warn", "ignored a non-command message on a request topic", {"action": action, "type": command["type"], "source": command["source"]})
    if not targeted and command["destination"] != EVERYONE and command["destination"] != me:
        return _drop("debug", "command for another destination ignored", {"action": action, "destination": command["destination"]})
    bad_source = check_client_id(command["source"])
    if bad_source:
        return _drop("warn", f"command refused, no response possible: {bad_source}", {"action": action, "source": command["source"]})
    token = command.get("token")
    to = ReplyTo(action, command["source"], token if token is not None else new_token(), command.get("priority") or "normal", qos)
    # A starting client serves nothing yet but its built-in actions.
    serving = view.serving(action)
    if serving in ("no", "starting"):
        return _refuse(to, ResponseCode.NO_HANDLER, {"name": "NoHandlerError", "message": f"{me} does not serve {action}{' yet: it is starting' if serving == 'starting' else ''}"})
    if serving == "targeted-only" and not targeted:
        return _drop("debug", "untargeted command for a built-in action ignored (protocol §11.4)", {"action": action, "source": command["source"]})
    key = f"{to.requester} {to.token}"
    accept_by = command.get("acceptBy")
    wants_acks = accept_by is not None
    if view.knows(key):
        return Admission("duplicate", to=to, key=key, wants_acks=wants_acks)
    deadline = command.get("deadline")
    if deadline is not None and deadline <= now:
        return _refuse(to, ResponseCode.DEADLINE_EXCEEDED, {"name": "TimeoutError", "message": f"request {to.token} arrived after its deadline"})
    if accept_by is not None and accept_by < now:
        # The requester has sent it elsewhere by now, or asks about a command not known here
        # (acceptBy 0): running it could run it twice (protocol §4.7).
        late = now - accept_by
        message = (f"request {to.token} is not known here (finished and forgotten, or never received); it was not run" if accept_by == 0
                   else f"request {to.token} reached {me} {_ms(late)} ms after its acceptance deadline; it was not run (if this keeps happening, check that the clocks agree)")
        return Admission("drop",
                         log=AdmissionLog("warn", "command not accepted", {"action": action, "token": to.token, "requester": to.requester, "lateMs": late}),
                         answer=AdmissionAnswer(to, int(ResponseCode.DEADLINE_EXCEEDED), {"name": "TimeoutError", "message": message}, not_run=True))
    return Admission("run", to=to, key=key, command=command, wants_acks=wants_acks)


def _ms(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _drop(level: str, message: str, fields: dict) -> Admission:
    return Admission("drop", log=AdmissionLog(level, message, fields))


def _refuse(to: ReplyTo, code: int, error: WireError) -> Admission:
    return Admission("drop", log=AdmissionLog("warn", "request refused", {"action": to.action, "token": to.token, "requester": to.requester, "err": error["message"]}),
                     answer=AdmissionAnswer(to, int(code), error))
