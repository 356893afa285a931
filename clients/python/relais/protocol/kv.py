"""The router's key-value store on the wire (protocol §14, docs/kv.md): the actions, the names a
bucket, key and prefix may have, the typed errors a caller tells apart and how an error response
becomes one, and how a value crosses the wire (bytes as ``{"$base64"}``, §3.5). Ports
``src/protocol/kv.ts`` (what a library needs of it). Pure: no I/O.

An entry is a dict with the wire's keys (protocol §14.3): ``{"bucket", "key", "value",
"revision", "created", "updated", "operation", "author", "bytes"?, "ttl"?, "expires"?}``, times
in epoch ms like the history's rows and the events.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from .bytes import from_base64, to_base64
from .contracts import contract_hash
from .errors import InvalidMessageError, PayloadTooLargeError, RelaisError, RemoteError, _UNSET
from .framing import is_bytes

#: Every action is served by the router (protocol §14.1).
KV_ACTIONS = {
    "get": "relais/kv/get",
    "put": "relais/kv/put",
    "delete": "relais/kv/delete",
    "keys": "relais/kv/keys",
    "history": "relais/kv/history",
    "watch": "relais/kv/watch",
    "buckets": "relais/kv/buckets",
}

#: The bucket of each client's own configuration: key = the client's id (protocol §14.6).
CONFIG_BUCKET = "config"
#: Where each client announces the JSON Schema of its configuration: key = its id, value
#: ``{"schema", "hash"}`` (protocol §14.6), so that the router checks writes while it is offline.
CONFIG_SCHEMA_BUCKET = "config-schema"

#: Bucket settings when the router's configuration says nothing of a bucket (protocol §14.2).
KV_DEFAULTS = {"history_depth": 10, "max_value_bytes": 64 * 1024}
#: Page sizes of ``keys`` and ``history`` (protocol §14.1).
KV_KEYS_LIMIT = {"default": 1000, "max": 10_000}
KV_HISTORY_LIMIT = {"default": 64, "max": 64}

#: What happened at a revision: a value written, a key deleted, or its time to live ran out.
KV_OPERATIONS: tuple[str, ...] = ("put", "delete", "expire")

#: A bucket: like NATS (letters, digits, ``_``, ``-``), 1-64 characters.
BUCKET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A key: letters, digits and ``_ . : @ = + / -``, 1-256 characters; a superset of client ids
#: (§2.1), so that a client's id is its ``config`` key.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:@=+/-]{1,256}")
#: A key prefix: a key's first characters, possibly none (every key).
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:@=+/-]{0,256}")


def bucket_problem(bucket: Any) -> Optional[str]:
    """Why ``bucket`` is not a bucket name (protocol §14.1), or None."""
    if isinstance(bucket, str) and BUCKET_PATTERN.fullmatch(bucket):
        return None
    return f"bucket {bucket!r}: a bucket is 1-64 letters, digits, _ or -"


def key_problem(key: Any) -> Optional[str]:
    """Why ``key`` is not a key (protocol §14.1), or None."""
    if isinstance(key, str) and KEY_PATTERN.fullmatch(key):
        return None
    return f"key {key!r}: a key is 1-256 letters, digits or _ . : @ = + / -"


def prefix_problem(prefix: Any) -> Optional[str]:
    """Why ``prefix`` is not a key prefix (protocol §14.1), or None."""
    if isinstance(prefix, str) and PREFIX_PATTERN.fullmatch(prefix):
        return None
    return f"prefix {prefix!r}: a prefix is 0-256 key characters"


# ---- Values (protocol §3.5, §14.3) -------------------------------------------------------

def encode_value(value: Any) -> Any:
    """A value as the wire carries it: bytes as ``{"$base64": ...}`` (§3.5), JSON as it is."""
    return to_base64(bytes(value)) if is_bytes(value) else value


def decode_entry(entry: dict) -> dict:
    """A wire entry as the library gives it: a bytes value (``"bytes": true``) as ``bytes``."""
    if not entry.get("bytes"):
        return entry
    return {**entry, "value": from_base64(entry["value"])}


def is_up_to_date(item: Any) -> bool:
    """Whether a watch item is the marker ``{"upToDate": True, "revision": n}`` (the replay has
    ended, live changes follow) rather than a change."""
    return isinstance(item, dict) and item.get("upToDate") is True


# ---- Typed errors (protocol §5.1, §14.5) -------------------------------------------------

class KeyNotFoundError(RelaisError):
    """The key has no value (never written, deleted, expired), or the revision asked for is not
    kept: code 1, ``details`` ``{bucket, key, revision?}``."""

    _wire_name = "KeyNotFoundError"

    def __init__(self, message: str, details: dict, *, cause: Any = None) -> None:
        super().__init__("KEY_NOT_FOUND", message, cause=cause, details=details)


class RevisionConflictError(RelaisError):
    """A compare-and-set found another revision (protocol §14.4): code 1, ``details`` ``{bucket,
    key, expectedRevision, currentRevision}``, ``currentRevision`` 0 when the key has no value."""

    _wire_name = "RevisionConflictError"

    def __init__(self, message: str, details: dict, *, cause: Any = None) -> None:
        super().__init__("REVISION_CONFLICT", message, cause=cause, details=details)


class BucketNotFoundError(RelaisError):
    """The bucket does not exist and the router's configuration forbids making it
    (``createOnPut: false``): code 1, ``details`` ``{bucket}``."""

    _wire_name = "BucketNotFoundError"

    def __init__(self, message: str, details: dict, *, cause: Any = None) -> None:
        super().__init__("BUCKET_NOT_FOUND", message, cause=cause, details=details)


class ValueTooLargeError(PayloadTooLargeError):
    """A value larger than its bucket's ``maxValueBytes``: code 7 (§5.1), ``details`` ``{bucket, key, size, max}``."""

    _wire_name = "ValueTooLargeError"

    def __init__(self, message: str, details: dict, *, cause: Any = None) -> None:
        super().__init__(message, cause=cause)
        self.details = details
        self._has_details = True


class ConfigInvalidError(InvalidMessageError):
    """A client's configuration that breaks the schema it announced (protocol §14.6): code 2,
    ``details.issues`` ``[{path, message}]`` as for a contract (§7.6)."""

    _wire_name = "ConfigInvalidError"

    def __init__(self, message: str, *, cause: Any = None, details: Any = _UNSET) -> None:
        super().__init__(message, cause=cause, details=details, code="CONFIG_INVALID")


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def kv_error_of(error: BaseException) -> BaseException:
    """The typed KV error a failed KV request stands for: the router's error response arrives as
    a ``RemoteError`` (code 1) or as the class of its code with the ``RemoteError`` as ``cause``
    (2, 7), whose ``remote_name`` says which (protocol §14.5). Anything else is returned as is."""
    remote = error if isinstance(error, RemoteError) else getattr(error, "cause", None)
    if not isinstance(remote, RemoteError):
        return error
    details = remote.details if isinstance(remote.details, dict) else {}
    bucket, key = str(details.get("bucket", "")), str(details.get("key", ""))
    name = remote.remote_name
    if name == "KeyNotFoundError":
        found = {"bucket": bucket, "key": key}
        if isinstance(details.get("revision"), int):
            found["revision"] = details["revision"]
        return KeyNotFoundError(remote.message, found, cause=remote)
    if name == "RevisionConflictError":
        return RevisionConflictError(remote.message, {"bucket": bucket, "key": key, "expectedRevision": _number(details.get("expectedRevision")),
                                                      "currentRevision": _number(details.get("currentRevision"))}, cause=remote)
    if name == "BucketNotFoundError":
        return BucketNotFoundError(remote.message, {"bucket": bucket}, cause=remote)
    if name == "ValueTooLargeError":
        return ValueTooLargeError(remote.message, {"bucket": bucket, "key": key, "size": _number(details.get("size")),
                                                   "max": _number(details.get("max"))}, cause=remote)
    if name == "ConfigInvalidError":
        return ConfigInvalidError(remote.message, cause=remote, details=remote.details if remote._has_details else _UNSET)
    return error


# ---- Configuration (protocol §14.6) ------------------------------------------------------

def config_schema_announcement(schema: dict) -> dict:
    """What ``config-schema/<id>`` holds: the JSON Schema (draft 7) of the client's
    ``config/<id>`` value and its hash, the form of a contract's (§7.6)."""
    if not isinstance(schema, dict):
        raise TypeError(f"a configuration schema is a JSON Schema dict, got {type(schema).__name__}")
    return {"schema": schema, "hash": contract_hash(schema)}


# ---- Watch (protocol §14.9) --------------------------------------------------------------

class KvWatchCursor:
    """Where a watch stands, so that a new ``relais/kv/watch`` after a lost connection resumes
    after the last revision handled: nothing missed, nothing yielded twice (protocol §14.9). The
    rules of ``KvBucket.watch`` in ``src/client/kv.ts``; the client feeds it each progress step."""

    def __init__(self, since: Optional[int] = None) -> None:
        #: The last revision yielded, or known to hold nothing for this watch: the next ask starts after it.
        self.last = since
        # While the first answer of a watch without `since` replays current values, a step's
        # `revision` is the bucket's at the start, not where the replay stands.
        self._replaying_current = since is None

    def ask(self, bucket: str, prefix: Optional[str] = None) -> dict:
        """The payload of the next ``relais/kv/watch``: ``since`` the last revision handled, once there is one."""
        payload: dict[str, Any] = {"bucket": bucket}
        if prefix is not None:
            payload["prefix"] = prefix
        if self.last is not None:
            payload["since"] = self.last
        return payload

    def step(self, step: Any) -> list[dict]:
        """The items one progress step gives, in order: each change not handled yet (decoded),
        then ``{"upToDate": True, "revision": n}`` when the step ends a replay."""
        if not isinstance(step, dict):
            return []
        items: list[dict] = []
        for change in step.get("changes") or []:
            if self.last is not None and change["revision"] <= self.last:
                continue
            self.last = change["revision"]
            items.append(decode_entry(change))
        revision = step.get("revision", 0)
        if not self._replaying_current:
            self.last = max(self.last or 0, revision)
        if step.get("upToDate") is True:
            self._replaying_current = False
            self.last = max(self.last or 0, revision)
            items.append({"upToDate": True, "revision": revision})
        return items
