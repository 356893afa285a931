"""One error class per failure (protocol §5), and their wire form (§5.1).

Ports ``src/protocol/errors.ts``. Each class has a stable string ``code``; the errors that
travel in a response have a numeric wire ``response_code``, and ``to_wire`` / ``from_wire``
let a handler's error arrive typed at the caller. Codes 2-8 come back as their own classes
with the ``RemoteError`` as ``cause``; 1 and >= 9 come back as the ``RemoteError`` itself.
"""
from __future__ import annotations

import builtins
from enum import IntEnum
from typing import Any, Optional, TypedDict


class ResponseCode(IntEnum):
    """Numeric response codes (protocol §5.1): 0 ok, 1 generic, 2-99 Relais, >= 100 modules."""

    OK = 0
    ERROR = 1
    INVALID_REQUEST = 2
    NO_HANDLER = 3
    NOT_AUTHORIZED = 4
    CANCELLED = 5
    DEADLINE_EXCEEDED = 6
    PAYLOAD_TOO_LARGE = 7
    BUSY = 8


class WireError(TypedDict, total=False):
    """What an error looks like inside a response envelope (``error`` field): name, message, details."""

    name: str
    message: str
    details: Any


_UNSET: Any = object()


class RelaisError(Exception):
    """Base of every Relais error: ``code`` (stable string), ``response_code``, ``details``, ``cause``."""

    #: Written out per class (as the TS classes write their ``name``): it travels on the wire,
    #: and a subclass of a Relais class keeps it; an application's direct subclass gets its
    #: class name.
    _wire_name: Optional[str] = None

    def __init__(self, code: str, message: str, *, cause: Any = None,
                 response_code: int = ResponseCode.ERROR, details: Any = _UNSET) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.code = code
        self.response_code = int(response_code)
        self.details: Any = None if details is _UNSET else details
        self._has_details = details is not _UNSET
        self.cause = cause
        if isinstance(cause, BaseException):
            self.__cause__ = cause

    @property
    def name(self) -> str:
        """The error's name on the wire (``error.name``, protocol §5)."""
        for klass in type(self).__mro__:
            wire = klass.__dict__.get("_wire_name")
            if wire:
                return wire
            if klass is RelaisError:
                break
        return type(self).__name__

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class TimeoutError(RelaisError, builtins.TimeoutError):  # noqa: A001 - the protocol's name, and catchable as the builtin
    """The request got no final response before its time-out (code 6)."""

    _wire_name = "TimeoutError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        RelaisError.__init__(self, "TIMEOUT", message, cause=cause, response_code=ResponseCode.DEADLINE_EXCEEDED)


class NoHandlerError(RelaisError):
    """No connected client serves the action, or the target is offline (code 3)."""

    _wire_name = "NoHandlerError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        super().__init__("NO_HANDLER", message, cause=cause, response_code=ResponseCode.NO_HANDLER)


class SiteUnreachableError(NoHandlerError):
    """The handler is a client of a site whose link is down (protocol §13.4): code 3, ``details`` ``{site, since?}``."""

    _wire_name = "SiteUnreachableError"

    def __init__(self, message: str, details: dict[str, Any], *, cause: Any = None) -> None:
        super().__init__(message, cause=cause)
        self.code = "SITE_UNREACHABLE"
        self.details = details
        self._has_details = True


class HandlerGoneError(RelaisError):
    """The handler that was serving the request disconnected before answering."""

    _wire_name = "HandlerGoneError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        super().__init__("HANDLER_GONE", message, cause=cause)


class CancelledError(RelaisError):
    """The caller cancelled the request, or the handler was cancelled (code 5, protocol §4.4).

    Not ``asyncio.CancelledError``: this is the protocol's cancel, as an answer.
    """

    _wire_name = "CancelledError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        super().__init__("CANCELLED", message, cause=cause, response_code=ResponseCode.CANCELLED)


class InvalidMessageError(RelaisError):
    """A message does not follow the protocol; ``message`` names the field (code 2)."""

    _wire_name = "InvalidMessageError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET, code: str = "INVALID_MESSAGE") -> None:
        super().__init__(code, message, cause=cause, details=details, response_code=ResponseCode.INVALID_REQUEST)


class UnknownTokenError(InvalidMessageError):
    """A kill named a token the history does not hold (protocol §11.5): code 2, ``details`` ``{token}``."""

    _wire_name = "UnknownTokenError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__(message, cause=cause, details=details, code="UNKNOWN_TOKEN")


class RequestEndedError(InvalidMessageError):
    """A kill named a request that has already ended (protocol §11.5): code 2, ``details`` ``{token, kind, code?}``."""

    _wire_name = "RequestEndedError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__(message, cause=cause, details=details, code="REQUEST_ENDED")


#: The refinements of code 2 a caller tells apart, by their wire ``error.name`` (protocol §5.1).
_INVALID_REQUEST_ERRORS: dict[str, type[InvalidMessageError]] = {
    "UnknownTokenError": UnknownTokenError,
    "RequestEndedError": RequestEndedError,
}


class PayloadTooLargeError(RelaisError):
    """A message is over the size limit (code 7, protocol §3.4)."""

    _wire_name = "PayloadTooLargeError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        super().__init__("PAYLOAD_TOO_LARGE", message, cause=cause, response_code=ResponseCode.PAYLOAD_TOO_LARGE)


class NotAuthorizedError(RelaisError):
    """The broker or the router refused it for this identity (code 4)."""

    _wire_name = "NotAuthorizedError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__("NOT_AUTHORIZED", message, cause=cause, details=details, response_code=ResponseCode.NOT_AUTHORIZED)


class BusyError(RelaisError):
    """The handler serves one such request at a time and another holds it (code 8, protocol §11.4)."""

    _wire_name = "BusyError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__("BUSY", message, cause=cause, details=details, response_code=ResponseCode.BUSY)


class NotSentError(RelaisError):
    """The message could not be sent: client closed, offline queue full, or deadline passed offline."""

    _wire_name = "NotSentError"

    def __init__(self, message: str, *, cause: Any = None) -> None:
        super().__init__("NOT_SENT", message, cause=cause)


class SealingError(RelaisError):
    """A payload could not be sealed or opened (protocol §3.6): no sealing key known for a
    recipient identity (the request is not sent), or a sealed answer that did not open."""

    _wire_name = "SealingError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__("SEALING", message, cause=cause, details=details)


class RemoteError(RelaisError):
    """A handler answered with a non-zero code: ``response_code`` is it, ``remote_name`` the
    error's name on the handler's side, ``payload`` what came with it, ``handler`` who answered."""

    _wire_name = "RemoteError"

    def __init__(self, wire: WireError, response_code: int, handler: str, payload: Any = None) -> None:
        super().__init__("REMOTE", wire.get("message", ""), response_code=response_code,
                         details=wire["details"] if "details" in wire else _UNSET)
        self.remote_name = wire.get("name", "Error")
        self.payload = payload
        self.handler = handler


def _is_response_code(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def to_wire(error: Any) -> tuple[int, WireError]:
    """The part of ``error`` that goes on the wire: ``(response_code, {name, message, details?})``.

    Stack traces stay local. A plain exception is code 1 and never code 0; an exception with an
    integer ``response_code`` (or ``code``) >= 1 keeps it (a module's own codes, protocol §5.1).
    """
    if isinstance(error, RemoteError):
        wire: WireError = {"name": error.remote_name, "message": error.message}
        if error._has_details:
            wire["details"] = error.details
        return error.response_code, wire
    if isinstance(error, BaseException):
        candidate = getattr(error, "response_code", None)
        legacy = getattr(error, "code", None)
        code = candidate if _is_response_code(candidate) else legacy if _is_response_code(legacy) else ResponseCode.ERROR
        name = error.name if isinstance(error, RelaisError) else (getattr(error, "name", None) if isinstance(getattr(error, "name", None), str) else None)
        message = error.message if isinstance(error, RelaisError) else str(error)
        wire = {"name": name or type(error).__name__ or "Error", "message": message}
        if isinstance(error, RelaisError):
            if error._has_details:
                wire["details"] = error.details
        elif getattr(error, "details", None) is not None:
            wire["details"] = getattr(error, "details")
        return int(ResponseCode.ERROR if code == ResponseCode.OK else code), wire
    return int(ResponseCode.ERROR), {"name": "Error", "message": str(error)}


def _site_details(details: Any) -> Optional[dict[str, Any]]:
    if not isinstance(details, dict) or not isinstance(details.get("site"), str):
        return None
    since = details.get("since")
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return {"site": details["site"], "since": since}
    return {"site": details["site"]}


def from_wire(wire: Optional[WireError], response_code: int, handler: str, payload: Any = None) -> RelaisError:
    """The typed error for an error response (protocol §5.1): codes 2-8 as their own classes
    with the ``RemoteError`` as ``cause``; 1 and >= 9 as the ``RemoteError``."""
    shape: WireError = wire if wire is not None else {"name": "Error", "message": f"handler {handler} answered with code {response_code}"}
    cause = RemoteError(shape, response_code, handler, payload)
    message = shape.get("message", "")
    details = shape["details"] if "details" in shape else _UNSET
    if response_code == ResponseCode.NO_HANDLER:
        site = _site_details(shape.get("details")) if shape.get("name") == "SiteUnreachableError" else None
        return SiteUnreachableError(message, site, cause=cause) if site else NoHandlerError(message, cause=cause)
    if response_code == ResponseCode.NOT_AUTHORIZED:
        return NotAuthorizedError(message, cause=cause)
    if response_code == ResponseCode.CANCELLED:
        return CancelledError(message, cause=cause)
    if response_code == ResponseCode.DEADLINE_EXCEEDED:
        return TimeoutError(message, cause=cause)
    if response_code == ResponseCode.PAYLOAD_TOO_LARGE:
        return PayloadTooLargeError(message, cause=cause)
    if response_code == ResponseCode.BUSY:
        return BusyError(message, cause=cause, details=details)
    if response_code == ResponseCode.INVALID_REQUEST:
        name = shape.get("name")
        refined = _INVALID_REQUEST_ERRORS.get(name, InvalidMessageError) if isinstance(name, str) else InvalidMessageError
        return refined(message, cause=cause, details=details)
    return cause
