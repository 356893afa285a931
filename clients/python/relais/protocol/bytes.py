"""Byte counts and Base64 for the wire (protocol §3.4, §3.5).

Ports ``src/protocol/bytes.ts`` and ``src/protocol/binary.ts``. A Python ``str`` may hold lone
surrogates (as a JavaScript string may): they count 3 bytes, the bytes of the U+FFFD they are
sent as, and ``wire_bytes`` sends them so, as Node's ``Buffer`` does.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any


def wire_bytes(text: str) -> bytes:
    """The UTF-8 bytes ``text`` is sent as; a lone surrogate becomes U+FFFD (as Node sends it)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16 so that a surrogate pair held as two code points becomes one character.
        repaired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return repaired.encode("utf-8")


def utf8_byte_length(text: str) -> int:
    """Bytes of ``text`` in UTF-8; a lone surrogate counts 3 (the U+FFFD it is sent as)."""
    return len(wire_bytes(text))


def encode_base64(data: bytes) -> str:
    """Standard Base64 (RFC 4648, padded) of ``data``."""
    return base64.b64encode(data).decode("ascii")


_BASE64_PATTERN = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def to_base64(data: bytes) -> dict[str, str]:
    """``{"$base64": ...}``: how a field holding bytes is written (protocol §3.5)."""
    return {"$base64": encode_base64(data)}


def is_base64_value(value: Any) -> bool:
    """Whether ``value`` is exactly ``{"$base64": <str>}`` (protocol §3.5)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$base64"), str)


def from_base64(value: Any) -> bytes:
    """Decodes ``{"$base64"}`` or a bare Base64 string; ``TypeError`` on anything else."""
    text = value if isinstance(value, str) else value["$base64"] if is_base64_value(value) else None
    if text is None:
        raise TypeError('expected a Base64 string or { "$base64": string }')
    if len(text) % 4 != 0 or not _BASE64_PATTERN.fullmatch(text):
        raise TypeError("not valid Base64 (RFC 4648, padded)")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as cause:
        raise TypeError("not valid Base64 (RFC 4648, padded)") from cause
