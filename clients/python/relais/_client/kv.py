"""One bucket of the router's key-value store (protocol §14), a port of `src/client/kv.ts`: get,
put (compare-and-set), delete, keys, history, and a watch that goes on across lost connections
and broker restarts, resuming after the last revision it yielded (§14.9). The wire rules (the
actions, names, values, the typed errors) are in `relais.protocol.kv`.

Times of the API in seconds (a put's `ttl`); entries are the wire's dicts, times in epoch ms.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from ..protocol.errors import BusyError, InvalidMessageError, NotAuthorizedError
from ..protocol.kv import (KV_ACTIONS, KvWatchCursor, bucket_problem, decode_entry, encode_value, key_problem, kv_error_of,
                           prefix_problem)

from .resumable import resumed_steps

if TYPE_CHECKING:
    from .bus import Bus

#: A watch runs until stopped: no time-out of its own (the longest a timer holds, as in TS).
WATCH_TIMEOUT_S = (2**31 - 1) / 1000



class KvBucket:
    """`bus.kv(bucket)`: one bucket of the router's store. Needs a router on the bus (`relais start`)."""

    def __init__(self, bus: "Bus", bucket: str) -> None:
        problem = bucket_problem(bucket)
        if problem:
            raise TypeError(problem)
        self._bus = bus
        self.bucket = bucket

    async def get(self, key: str, *, revision: Optional[int] = None) -> dict:
        """The key's current entry, or the given kept revision (`entry["value"]`, `["revision"]`,
        `["author"]`...); `KeyNotFoundError` when it has none."""
        payload: dict[str, Any] = {"bucket": self.bucket, "key": _key(key)}
        if revision is not None:
            payload["revision"] = revision
        return decode_entry(await self._ask("get", payload))

    async def put(self, key: str, value: Any, *, expect_revision: Optional[int] = None, ttl: Optional[float] = None) -> int:
        """Writes a value (JSON, or `bytes`); returns its revision. `expect_revision` makes it a
        compare-and-set (0: create only): a conflict raises `RevisionConflictError`, whose
        `details["currentRevision"]` is the key's revision now (§14.4). `ttl` (seconds): the
        value expires after it."""
        payload: dict[str, Any] = {"bucket": self.bucket, "key": _key(key), "value": encode_value(value)}
        if expect_revision is not None:
            payload["expectRevision"] = expect_revision
        if ttl is not None:
            payload["ttl"] = round(ttl * 1000)
        return (await self._ask("put", payload))["revision"]

    async def create(self, key: str, value: Any, *, ttl: Optional[float] = None) -> int:
        """`put` only when the key has no value: `RevisionConflictError` otherwise."""
        return await self.put(key, value, expect_revision=0, ttl=ttl)

    async def delete(self, key: str, *, expect_revision: Optional[int] = None) -> int:
        """Writes a tombstone; returns its revision. `KeyNotFoundError` when the key has no value."""
        payload: dict[str, Any] = {"bucket": self.bucket, "key": _key(key)}
        if expect_revision is not None:
            payload["expectRevision"] = expect_revision
        return (await self._ask("delete", payload))["revision"]

    async def keys(self, *, prefix: Optional[str] = None, after: Optional[str] = None, limit: Optional[int] = None) -> dict:
        """A page of the keys that have a value, in order: `{"keys": [...], "more": bool}`; ask
        again with `after=` the last key while `more`."""
        payload: dict[str, Any] = {"bucket": self.bucket}
        if prefix is not None:
            payload["prefix"] = _prefix(prefix)
        if after is not None:
            payload["after"] = _key(after)
        if limit is not None:
            payload["limit"] = limit
        return await self._ask("keys", payload)

    async def history(self, key: str, *, limit: Optional[int] = None) -> list[dict]:
        """The kept revisions of a key, oldest first, tombstones included."""
        payload: dict[str, Any] = {"bucket": self.bucket, "key": _key(key)}
        if limit is not None:
            payload["limit"] = limit
        return [decode_entry(entry) for entry in (await self._ask("history", payload))["entries"]]

    async def watch(self, *, prefix: Optional[str] = None, since: Optional[int] = None) -> AsyncIterator[dict]:
        """The bucket's changes (tombstones included), in revision order, each once: first what
        the router holds (without `since`, each key's current value; with it, every kept change
        after that revision), then the marker `{"upToDate": True, "revision": n}`
        (`relais.is_up_to_date(item)`), then live changes, and the marker again after each
        catch-up that follows a lost connection. Runs until the loop is left (or the task
        cancelled); raises `NotAuthorizedError` when the policy does not (or no longer) let this
        client read, and the client's error once it is closed."""
        bus = self._bus
        if prefix is not None:
            _prefix(prefix)
        cursor = KvWatchCursor(since)

        def fatal(error: Exception) -> bool:
            # Refusals, bad input and too many watches do not get better by asking again.
            return isinstance(kv_error_of(error), (NotAuthorizedError, InvalidMessageError, BusyError))
        steps = resumed_steps(bus, KV_ACTIONS["watch"], lambda: cursor.ask(self.bucket, prefix), lambda: WATCH_TIMEOUT_S,
                              lambda error: not fatal(error), f"kv watch of {self.bucket}")
        try:
            async with contextlib.aclosing(steps):
                async for step in steps:
                    if step.kind == "progress":
                        for item in cursor.step(step.payload):
                            yield item
        except Exception as error:  # noqa: BLE001 - re-raised, typed
            typed = kv_error_of(error)
            if typed is error:
                raise
            raise typed

    async def _ask(self, action: str, payload: dict) -> Any:
        try:
            return await self._bus.request(KV_ACTIONS[action], payload)
        except Exception as error:  # noqa: BLE001 - re-raised, typed
            typed = kv_error_of(error)
            if typed is error:
                raise
            raise typed



def _key(key: Any) -> str:
    problem = key_problem(key)
    if problem:
        raise TypeError(problem)
    return key


def _prefix(prefix: Any) -> str:
    problem = prefix_problem(prefix)
    if problem:
        raise TypeError(problem)
    return prefix
