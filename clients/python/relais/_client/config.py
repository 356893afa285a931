"""`await bus.config(schema, defaults=...)`: a client's own configuration in the router's key-value
store, as Domogik's plugins get theirs (protocol §14.6), a port of `src/client/config.ts`. The
client announces the JSON Schema of its configuration in `config-schema/<id>` (the router checks
every write to `config/<id>` against it, code 2 naming the field; the page draws its form from
it), reads `config/<id>` (writing the defaults when there is none), and follows the changes
written while it runs.

Python has no zod: the schema is a JSON Schema (draft 7) dict, as a handler's `input_schema`.
The router checks the writes; this side checks nothing unless given `validate` (the standard
library has no JSON Schema validator; `jsonschema.validate` bound to the schema does).
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional

from ..protocol.errors import NoHandlerError, TimeoutError
from ..protocol.kv import (CONFIG_BUCKET, CONFIG_SCHEMA_BUCKET, KV_ACTIONS, ConfigInvalidError, KeyNotFoundError, RevisionConflictError,
                           config_schema_announcement, is_up_to_date)
from .async_queue import AsyncQueue
from .kv import KvBucket
from .options import check_seconds

if TYPE_CHECKING:
    from .bus import Bus

log = logging.getLogger("relais.config")

#: How long to wait for a router serving the store when none is known yet (seconds): a plugin
#: started before the router, or while its directory still loads the retained presences (§7.2).
CONFIG_ROUTER_WAIT_S = 30.0
#: Changes queued for a slow reader of `changes()`; beyond, the oldest are dropped (the newest is what counts).
MAX_QUEUED_CHANGES = 100

Validate = Callable[[Any], Any]


class ClientConfig:
    """This client's configuration: `value` (the newest valid one seen) and `revision` (of
    `config/<id>` it was read from); `changes()`, `on_change()`, `set()`, `close()`."""

    def __init__(self, bus: "Bus", client_id: str, defaults: Any, check: Callable[[Any, str], Any], value: Any, revision: int) -> None:
        self._values = KvBucket(bus, CONFIG_BUCKET)
        self._id = client_id
        self._defaults = defaults
        self._check = check
        self.value = value
        self.revision = revision
        self._listeners: list[Callable[[Any, int], None]] = []
        self._queues: set[AsyncQueue[Any]] = set()
        self._following = asyncio.ensure_future(self._follow())
        self._following.add_done_callback(self._followed)

    def changes(self) -> AsyncIterator[Any]:
        """Each new configuration, as the router stores it (a deleted one: the defaults), until `close()`."""
        queue: AsyncQueue[Any] = AsyncQueue(MAX_QUEUED_CHANGES, lambda: self._queues.discard(queue))
        if self._following.done():
            queue.end()
        else:
            self._queues.add(queue)
        return queue

    def on_change(self, listener: Callable[[Any, int], None]) -> Callable[[], None]:
        """Calls `listener(value, revision)` with each new configuration; returns a function that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return stop

    async def set(self, value: Any) -> int:
        """Writes a new configuration (checked here first with `validate`, then by the router); returns its revision."""
        return await self._values.put(self._id, self._check(value, f"the configuration of {self._id}"))

    def close(self) -> None:
        """Stops following the changes; `changes()` iterators end."""
        self._following.cancel()

    async def __aenter__(self) -> "ClientConfig":
        return self

    async def __aexit__(self, *_: Any) -> None:
        self.close()

    async def _follow(self) -> None:
        async for item in self._values.watch(prefix=self._id, since=self.revision):
            if is_up_to_date(item) or item["key"] != self._id or item["revision"] <= self.revision:
                continue
            if item["operation"] == "put":
                try:
                    value = self._check(item["value"], f"config/{self._id} revision {item['revision']}")
                except ConfigInvalidError as error:
                    # Written before the schema was announced, or by a peer that skipped the router's check: the previous value stays.
                    log.debug("config: a new value does not match the schema; the previous one stays (%s)", error)
                    continue
            else:
                value = self._defaults
            self.value, self.revision = value, item["revision"]
            for listener in list(self._listeners):
                try:
                    listener(value, item["revision"])
                except Exception:  # noqa: BLE001 - one listener never stops the others
                    log.exception("a configuration listener failed")
            for queue in list(self._queues):
                queue.push(value)

    def _followed(self, following: "asyncio.Future[None]") -> None:
        error = None if following.cancelled() else following.exception()
        if error is not None:
            log.debug("config: following the changes ended: %s", error)
        for queue in list(self._queues):
            queue.end(error)
        self._queues.clear()


async def open_config(bus: "Bus", client_id: str, schema: dict, defaults: Any, router_wait: Optional[float],
                      validate: Optional[Validate]) -> ClientConfig:
    """The configuration of client `client_id`; returns once read (or written with the defaults) and followed."""
    announcement = config_schema_announcement(schema)
    wait = CONFIG_ROUTER_WAIT_S if router_wait is None else check_seconds(router_wait, "router_wait")

    def check(value: Any, what: str) -> Any:
        if validate is None:
            return value
        try:
            checked = validate(value)
        except Exception as error:  # noqa: BLE001 - whatever the validator raises refuses the value
            raise ConfigInvalidError(f"{what}: {error}", details={"issues": [{"path": [], "message": str(error)}]}) from error
        return value if checked is None else checked

    checked_defaults = check(defaults, f"the defaults of {client_id}'s configuration")
    try:
        await bus.wait_for_handler(KV_ACTIONS["get"], timeout=wait)
    except TimeoutError:
        raise NoHandlerError(f"no router serves the key-value store ({KV_ACTIONS['get']}) after {wait:g} s: "
                             f"{client_id}'s configuration is kept there (start one: relais start)") from None

    # The schema first: the router checks the defaults written below against it.
    schemas = KvBucket(bus, CONFIG_SCHEMA_BUCKET)
    try:
        announced = (await schemas.get(client_id))["value"]
    except KeyNotFoundError:
        announced = None
    if not isinstance(announced, dict) or announced.get("hash") != announcement["hash"]:
        await schemas.put(client_id, announcement)

    values = KvBucket(bus, CONFIG_BUCKET)
    try:
        entry = await values.get(client_id)
        value = check(entry["value"], f"the stored configuration of {client_id} (config/{client_id}, revision {entry['revision']})")
        revision = entry["revision"]
    except KeyNotFoundError:
        try:
            revision = await values.create(client_id, checked_defaults)
            value = checked_defaults
        except RevisionConflictError:
            # Written meanwhile (by an admin, or another instance): that one stands.
            entry = await values.get(client_id)
            value = check(entry["value"], f"the stored configuration of {client_id}")
            revision = entry["revision"]
    return ClientConfig(bus, client_id, checked_defaults, check, value, revision)
