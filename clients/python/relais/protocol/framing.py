"""Binary messages (protocol §3.5), ported from ``src/protocol/framing.ts``.

A message whose payload is bytes travels as its header (the envelope as UTF-8 JSON text, without
``payload``, with ``"body": <byte count>`` in its place), one LF byte (0x0A), then the body. A JSON
writer never writes a raw LF, so the first 0x0A of a binary message ends its header. Pure: no I/O.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union

#: Ends a binary message's header (protocol §3.5).
HEADER_END = 0x0A

#: The header member that gives the body's length in bytes.
BODY_MEMBER = "body"

BytesLike = Union[bytes, bytearray, memoryview]


def is_bytes(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def binary_header(message: dict, body_length: int) -> dict:
    """The header of a binary message: the members of ``message`` in their order, with
    ``"body": <n>`` where ``payload`` was (so a trailing ``acceptBy`` or ``sig`` stays last)."""
    header: dict = {}
    for key, value in message.items():
        if key == "payload":
            header[BODY_MEMBER] = body_length
        elif key != BODY_MEMBER:
            header[key] = value
    return header


def frame(header_text: str, body: BytesLike) -> bytes:
    """Header text + LF + body: what is published."""
    return header_text.encode("utf-8") + b"\n" + bytes(body)


@dataclass
class Framed:
    """A binary message split at its first LF."""

    header_text: str
    header: dict
    body: bytes
    #: The ``body`` member as written (checked against ``len(body)`` by ``body_length_problem``).
    declared: Any


def split_frame(raw: BytesLike) -> Optional[Framed]:
    """``raw`` read as a binary message, or None when it is not one: it is one when the text before
    its first LF is a JSON object with a ``body`` member and no ``payload`` member (a JSON envelope,
    pretty-printed or followed by a newline, is not). The rule every reader applies."""
    data = bytes(raw)
    end = data.find(b"\n")
    if end < 0:
        return None
    try:
        header_text = data[:end].decode("utf-8")
        header = json.loads(header_text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or BODY_MEMBER not in header or "payload" in header:
        return None
    return Framed(header_text, header, data[end + 1:], header[BODY_MEMBER])


def body_length_problem(framed: Framed) -> Optional[str]:
    """Why a binary message's ``body`` member does not describe its body, or None (protocol §3.5)."""
    declared = framed.declared
    if isinstance(declared, bool) or not isinstance(declared, (int, float)) or declared != int(declared) or declared < 0 or declared > 2**53 - 1:
        return "field 'body' must be the byte length of what follows the header's LF, a non-negative integer (protocol §3.5)"
    if int(declared) != len(framed.body):
        return f"binary message: its header says 'body' is {int(declared)} bytes, {len(framed.body)} follow the LF (protocol §3.5)"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
