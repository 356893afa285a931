"""The hash of a contract or of a configuration schema (protocol §7.6, §14.6). Ports
``contractHash`` of ``src/client/serving/contracts.ts``.
"""
from __future__ import annotations

import hashlib
from typing import Any

from .envelope import encode_json


def contract_hash(value: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``value``'s JSON (compact, as ``JSON.stringify``
    writes it, so that the TypeScript library computes the same hash of the same schema)."""
    return hashlib.sha256(encode_json(value).encode("utf-8")).hexdigest()[:16]
