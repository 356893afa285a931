"""The message envelope (protocol §3): one UTF-8 JSON object per MQTT message.

Ports ``src/protocol/envelope.ts``: encoding, decoding and validation, no I/O. An envelope is
a plain ``dict`` (``Envelope``); unknown fields are kept as they came (§3.3). Validation
follows the TS schema (zod is its authority there) and names the faulty field in the same
words: ``field 'code': Invalid input: expected int, received number``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from .bytes import utf8_byte_length
from .encoding import envelope_text
from .errors import InvalidMessageError, PayloadTooLargeError
from .framing import binary_header, body_length_problem, frame, is_bytes, split_frame

PROTOCOL_VERSION = 1

MESSAGE_TYPES: tuple[str, ...] = ("command", "response", "notification", "log", "cancel")

#: Highest first: the order queued messages leave in (protocol §6.1).
PRIORITIES: tuple[str, ...] = ("realtime", "high", "normal", "low")

#: ``normal`` unless told otherwise (protocol §6.1).
DEFAULT_PRIORITY = "normal"

#: Destination meaning "every client".
EVERYONE = "*"

#: Default largest encoded message accepted, in bytes (protocol §3.4).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

#: A validated message: a JSON object (protocol §3.1). Keys as on the wire (``acceptBy``...).
Envelope = dict

MAX_SAFE_INTEGER = 2**53 - 1


def priority_of(value: Any) -> str:
    """The priority ``value`` names, or the default when it names none (a field of an unchecked message)."""
    return value if isinstance(value, str) and value in PRIORITIES else DEFAULT_PRIORITY


@dataclass(frozen=True)
class Sender:
    """What could be read of a refused message's sender, so that an error can go back to it."""

    source: str
    token: Optional[str] = None


@dataclass(frozen=True)
class DecodeResult:
    """``ok`` with ``envelope``, or not ``ok`` with ``error`` (and ``sender`` when it could be read)."""

    ok: bool
    envelope: Optional[dict] = None
    error: Optional[Union[InvalidMessageError, PayloadTooLargeError]] = None
    sender: Optional[Sender] = None


def _refuse_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; JavaScript's parser refuses them, so must this one.
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """``json.loads`` as strict as JavaScript's ``JSON.parse`` (no NaN/Infinity literals)."""
    return json.loads(text, parse_constant=_refuse_constant)


def decode(raw: Union[bytes, bytearray, memoryview, str], max_bytes: float = DEFAULT_MAX_MESSAGE_BYTES) -> DecodeResult:
    """Reads and validates one message: UTF-8 JSON without a BOM (protocol §3). Never raises.

    ``max_bytes`` is the largest encoded size accepted (§3.4); an oversized message is not
    parsed, its sender is looked for in its first KiB only.
    """
    if isinstance(raw, str):
        size = utf8_byte_length(raw) if len(raw) * 3 > max_bytes else 0
    else:
        size = len(raw)
    if size > max_bytes:
        error = PayloadTooLargeError(f"message of {size} bytes is over the {_number(max_bytes)}-byte limit")
        head = raw[:HEAD_BYTES] if isinstance(raw, str) else bytes(raw[:HEAD_BYTES]).decode("utf-8", "replace")
        return DecodeResult(False, error=error, sender=_sender_from_head(head))
    # A binary message (protocol §3.5): only a message holding an LF can be one.
    if not isinstance(raw, str) and b"\n" in bytes(raw):
        framed = split_frame(raw)
        if framed is not None:
            problem = body_length_problem(framed)
            if problem:
                return DecodeResult(False, error=InvalidMessageError(problem), sender=_sender_of(framed.header))
            # The header's members, the body bytes as ``payload`` where ``body`` was.
            envelope = {("payload" if key == "body" else key): (framed.body if key == "body" else value) for key, value in framed.header.items()}
            return validate(envelope)
    text = envelope_text(raw)
    if not text.ok:
        return DecodeResult(False, error=InvalidMessageError(f"message is not UTF-8 JSON: {text.problem} (protocol §3)"))
    try:
        parsed = parse_json(text.text)
    except (ValueError, RecursionError) as cause:
        return DecodeResult(False, error=InvalidMessageError(f"message is not valid JSON: {cause}", cause=cause))
    return validate(parsed)


def validate(value: Any) -> DecodeResult:
    """Validates an already-parsed value as an envelope (protocol §3.1, §3.2). Never raises.

    The very object is returned, so that unknown fields survive (§3.3).
    """
    if not isinstance(value, dict):
        return DecodeResult(False, error=InvalidMessageError(f"message must be a JSON object, got {_describe(value)}"))
    sender = _sender_of(value)
    if "payload" not in value:
        # A binary message's header without its LF and body is the likely mistake (protocol §3.5).
        why = "field 'payload' is required (a binary message's header is followed by one LF and its 'body' bytes, protocol §3.5)" if "body" in value else "field 'payload' is required"
        return DecodeResult(False, error=InvalidMessageError(why), sender=sender)
    problems = envelope_problems(value)
    if problems:
        return DecodeResult(
            False,
            error=InvalidMessageError(f"invalid message: {'; '.join(problems)}", details={"issues": problems}),
            sender=sender,
        )
    return DecodeResult(True, envelope=value)


HEAD_BYTES = 1024
_HEAD_SOURCE = re.compile(r'"source"\s*:\s*"([A-Za-z0-9_.:@-]{1,128})"')
_HEAD_TOKEN = re.compile(r'"token"\s*:\s*"([^"\\]{1,256})"')


def _sender_from_head(head: str) -> Optional[Sender]:
    """An oversized message's sender and token, from its first KiB (protocol §3.4)."""
    source = _HEAD_SOURCE.search(head)
    if not source:
        return None
    token = _HEAD_TOKEN.search(head)
    return Sender(source.group(1), token.group(1) if token else None)


def _sender_of(value: dict) -> Optional[Sender]:
    source = value.get("source")
    if not isinstance(source, str) or not source:
        return None
    token = value.get("token")
    return Sender(source, token if isinstance(token, str) and token else None)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


# --- The schema of protocol §3.1, field by field, in the words of the TS schema's errors. ---

_MISSING: Any = object()


def _received(value: Any) -> str:
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float) -> str:
    """A number as JavaScript writes it (1024, not 1024.0)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _check_int(value: Any, minimum: int, exclusive: bool = False) -> Optional[str]:
    # JSON has one number type: 1.0 is the integer 1 (as JSON.parse reads it). Safe integers only.
    if not _is_number(value):
        return f"Invalid input: expected number, received {_received(value)}"
    if isinstance(value, float) and not value.is_integer():
        return "Invalid input: expected int, received number"
    if value > MAX_SAFE_INTEGER:
        return f"Too big: expected int to be <={MAX_SAFE_INTEGER}"
    if (value <= minimum) if exclusive else (value < minimum):
        return f"Too small: expected number to be {'>' if exclusive else '>='}{minimum}"
    return None


def _check_string(value: Any, minimum: int, maximum: int) -> Optional[str]:
    if not isinstance(value, str):
        return f"Invalid input: expected string, received {_received(value)}"
    # The TS schema counts characters (code points), as len() does.
    if len(value) < minimum:
        return f"Too small: expected string to have >={minimum} characters"
    if len(value) > maximum:
        return f"Too big: expected string to have <={maximum} characters"
    return None


def _check_enum(value: Any, options: tuple[str, ...]) -> Optional[str]:
    if isinstance(value, str) and value in options:
        return None
    return "Invalid option: expected one of " + "|".join(f'"{option}"' for option in options)


def _check_bool(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else f"Invalid input: expected boolean, received {_received(value)}"


def _check_progress(value: Any) -> Optional[str]:
    if not _is_number(value):
        return f"Invalid input: expected number, received {_received(value)}"
    if value < 0:
        return "Too small: expected number to be >=0"
    if value > 1:
        return "Too big: expected number to be <=1"
    return None


def _check_ts(value: Any) -> Optional[str]:
    if not _is_number(value):
        return f"Invalid input: expected number, received {_received(value)}"
    return "Too small: expected number to be >=0" if value < 0 else None


_FIELDS: tuple[tuple[str, bool, Callable[[Any], Optional[str]]], ...] = (
    # (name, required, check) in the order of the TS schema, which is the order problems are named in.
    ("v", False, lambda v: _check_int(v, 0, exclusive=True)),
    ("type", True, lambda v: _check_enum(v, MESSAGE_TYPES)),
    ("source", True, lambda v: _check_string(v, 1, 256)),
    ("destination", True, lambda v: _check_string(v, 1, 256)),
    ("token", False, lambda v: _check_string(v, 1, 256)),
    ("code", False, lambda v: _check_int(v, 0)),
    ("final", False, _check_bool),
    ("progress", False, _check_progress),
    ("error", False, None),  # checked below: an object with name and message
    ("priority", False, lambda v: _check_enum(v, PRIORITIES)),
    ("deadline", False, lambda v: _check_int(v, 0)),
    ("acceptBy", False, lambda v: _check_int(v, 0)),
    ("accepted", False, _check_bool),
    ("ts", False, _check_ts),
)


def _error_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"field 'error': Invalid input: expected object, received {_received(value)}"]
    problems = []
    for field, maximum in (("name", 200), ("message", 64 * 1024)):
        problem = _check_string(value.get(field, _MISSING), 0, maximum)
        if problem:
            problems.append(f"field 'error.{field}': {problem}")
    return problems


def envelope_problems(message: dict) -> list[str]:
    """Every problem of ``message`` against protocol §3.1-§3.2, each naming its field; [] when valid."""
    problems: list[str] = []
    for field, required, check in _FIELDS:
        if field not in message:
            if required and check is not None:
                problems.append(f"field '{field}': {check(_MISSING)}")
            continue
        value = message[field]
        if check is None:
            problems.extend(_error_problems(value))
            continue
        problem = check(value)
        if problem:
            problems.append(f"field '{field}': {problem}")
    # As in the TS schema, the token rule is looked at only once every field is well formed.
    if not problems and message["type"] in ("response", "cancel") and "token" not in message:
        problems.append(f"field 'token': a {message['type']} must carry the token of its command")
    return problems


# --- Encoding ---

What = Union[str, Callable[[], str], None]


def encode_message(envelope: dict, max_bytes: Optional[float] = None, what: What = None) -> Union[str, bytes]:
    """An envelope's wire form: its text, or the bytes of a binary message (protocol §3.5) when its
    payload is bytes (header + LF + body, the size limit counting all three, §3.4)."""
    stamped = envelope if "v" in envelope else {"v": PROTOCOL_VERSION, **envelope}
    payload = stamped.get("payload")
    if not is_bytes(payload):
        return encode_json(stamped, max_bytes, what)
    body = bytes(payload)
    header_text = encode_json(binary_header(stamped, len(body)), None, what)
    size = utf8_byte_length(header_text) + 1 + len(body)
    if max_bytes is not None and size > max_bytes:
        named = what() if callable(what) else (what if what is not None else "the message")
        raise PayloadTooLargeError(f"{named} is {size} bytes, over the {_number(max_bytes)}-byte limit")
    return frame(header_text, body)


def encode(envelope: dict, max_bytes: Optional[float] = None, what: What = None) -> str:
    """An envelope's wire text (stamping the protocol version ``v`` when absent), the one place a
    message is serialised and measured.

    Raises ``TypeError`` when it is not JSON, ``PayloadTooLargeError`` when its UTF-8 form is
    over ``max_bytes`` (protocol §3.4); ``what`` (text, or a function called only then) names
    the message in both. Returns text; send ``bytes.wire_bytes(text)``. A bytes payload is a
    binary message: ``encode_message`` makes it.
    """
    if is_bytes(envelope.get("payload")):
        raise TypeError("this message has a bytes payload: it is a binary message, made by encode_message (protocol §3.5)")
    return encode_json(envelope if "v" in envelope else {"v": PROTOCOL_VERSION, **envelope}, max_bytes, what)


def encode_json(value: Any, max_bytes: Optional[float] = None, what: What = None) -> str:
    """Any JSON value (or a ``str``, sent as is) as wire text, with the checks of ``encode``."""

    def named() -> str:
        return what() if callable(what) else (what if what is not None else "the message")

    if isinstance(value, str):
        body = value
    else:
        try:
            # No NaN/Infinity (not JSON), compact, and non-ASCII as itself: sizes as the TS library's.
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as cause:
            raise TypeError(f"{named()} is not JSON: {cause}") from cause
    if max_bytes is not None and len(body) * 3 > max_bytes:
        size = utf8_byte_length(body)
        if size > max_bytes:
            raise PayloadTooLargeError(f"{named()} is {size} bytes, over the {_number(max_bytes)}-byte limit")
    return body
