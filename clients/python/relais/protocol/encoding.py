"""How an envelope is encoded (protocol §3): UTF-8, well formed, with no byte order mark.

Ports ``src/protocol/encoding.ts``. One rule for every reader, so that no two readers can see
two different messages in the same bytes (Python's ``json.loads`` of bytes would guess UTF-16
or drop a BOM: never give it bytes, decode them here first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

# JSON never holds a raw U+0000: a NUL byte is the mark of UTF-16 or UTF-32 text.
NUL_PROBLEM = "it holds a NUL byte (UTF-16 or UTF-32 text, not UTF-8)"


def _byte_order_mark(data: bytes) -> Optional[str]:
    if data[:3] == b"\xef\xbb\xbf":
        return "it starts with a UTF-8 byte order mark"
    if data[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return "it starts with a UTF-16 byte order mark"
    return None


def encoding_problem(data: bytes) -> Optional[str]:
    """Why ``data`` cannot be an envelope's encoding (protocol §3), or None."""
    mark = _byte_order_mark(data)
    if mark:
        return mark
    if b"\x00" in data:
        return NUL_PROBLEM
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not well-formed UTF-8"
    return None


@dataclass(frozen=True)
class EnvelopeText:
    """The text of an envelope's bytes (``ok``), or why they are not one's encoding (``problem``)."""

    ok: bool
    text: str = ""
    problem: str = ""


def envelope_text(data: Union[bytes, bytearray, memoryview, str]) -> EnvelopeText:
    """The text of ``data`` (bytes or already-decoded text), or why it is no envelope's encoding (protocol §3)."""
    if isinstance(data, str):
        # Already decoded by someone: the same rule on what the bytes were.
        if data.startswith("\ufeff"):
            return EnvelopeText(False, problem="it starts with a byte order mark")
        if "\x00" in data:
            return EnvelopeText(False, problem=NUL_PROBLEM)
        return EnvelopeText(True, text=data)
    raw = bytes(data)
    mark = _byte_order_mark(raw)
    if mark:
        return EnvelopeText(False, problem=mark)
    try:
        # Python's strict decoder refuses what a fatal WHATWG decoder refuses (overlongs,
        # surrogates, truncated sequences).
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return EnvelopeText(False, problem="it is not well-formed UTF-8")
    if "\x00" in text:
        return EnvelopeText(False, problem=NUL_PROBLEM)
    return EnvelopeText(True, text=text)
