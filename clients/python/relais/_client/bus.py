"""`connect()` and the Bus, the facade (the TS `src/client/bus.ts`, `inbound.ts`, `startup.ts`):
wires the transport, the directory, the presence, the requester, the handlers and the
subscriptions, hands each incoming message to the part its topic names (protocol §2.2, §4.2),
and stops them together.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Sequence, Union

from ..protocol.envelope import DEFAULT_MAX_MESSAGE_BYTES, DecodeResult, decode, encode, encode_json, encode_message
from ..protocol.errors import InvalidMessageError, NotSentError, PayloadTooLargeError
from ..protocol.messages import log_message, notification_message
from ..protocol.framing import is_bytes
from ..protocol.sealing import SEAL_MEMBER
from ..protocol.topics import (PRESENCE_FILTER, check_client_id, check_path, check_topic_name, log_topic,
                               notification_topic, parse_topic, presence_topic)
from .config import ClientConfig, open_config
from .directory import Directory
from .kv import KvBucket
from .options import ResolvedOptions, check_directory, check_seconds, env_broker, host_facts, parse_brokers, presence_repeat_of
from .presence import Presence
from .requester import Requester
from .sealing import make_sealing
from .serving import Handler, Registration, Serving
from .sites import SiteDirectory
from .log_service import LOGS_ACTION, LogService, broker_secrets
from ..protocol.sites import SITE_DIRECTORY_FILTERS, SITES_ROOT, parse_site_topic
from .subscriptions import Subscription, Subscriptions
from .transport import Outbound, Transport

log = logging.getLogger("relais")

_EMPTY = DecodeResult(False, error=InvalidMessageError("empty message (a cleared retained topic)"))
LOG_LEVELS = ("debug", "info", "warn", "error")
SITES_PREFIX = f"{SITES_ROOT}/"
CONTRACTS_ACTION = "relais/contracts/get"


class Bus:
    """A connected client. Use `relais.connect(...)` (an async context manager)."""

    def __init__(self, options: ResolvedOptions) -> None:
        self.loop = asyncio.get_running_loop()
        self.options = options
        self.id = options.id
        self._closed = False
        self._closed_because = "the client is closed"
        self._ending: Optional[asyncio.Future[None]] = None
        self._stopped: asyncio.Future[str] = self.loop.create_future()
        #: Called with the other client's presence when another client took this id (§7.5).
        self.on_replaced: list[Callable[[dict], None]] = []
        #: Called when the main connection is back after a loss (subscriptions and presence being restored).
        self._on_main_online: list[Callable[[], None]] = []
        self.replaced_by: Optional[dict] = None
        self._no_verifier_listeners: list[Callable[[dict], None]] = []
        # On demand (protocol §7.2): every presence only once something needs them, through the same held subscription.
        self.directory = Directory(self.loop, options.directory_settle,
                                   (lambda: self._transport.subscribe(PRESENCE_FILTER, "main")) if options.directory == "on-demand" else None)
        self._serving: Serving
        self._presence = Presence(self.loop, options, lambda lane: self._serving.actions(lane),
                                  lambda: self._serving.targeted_actions(), self._give_way)
        self._signer, self._verifier = _make_signatures(options)
        # Sealed payloads (protocol §3.6): without the options, one that holds no key (sealed messages stay unopened, counted).
        self._sealing = make_sealing(options.sealing_key, options.sealing_keys, options.seal_requests)
        self._transport = Transport(self.loop, options, self._presence.will(), self._on_message, self._on_connected,
                                    self._on_disconnected, self._signer.sign if self._signer is not None else None)
        self._presence.transport = self._transport
        #: The sites' links and rosters (protocol §13.4); `bus.sites()` lists them.
        self.site_directory = SiteDirectory()
        self.directory.on_settled.append(self.site_directory.end_reload)
        self._requester = Requester(self.loop, options, self._transport, self.directory, self.site_directory, self._sealing)
        self._serving = Serving(self.loop, options, self._transport, self._presence.announce,
                                lambda: not self._presence.starting,
                                self._is_router, self._sealing)
        self._subscriptions = Subscriptions(self._transport)
        self._presence.contract_hashes = self._serving.contract_hashes
        # Built-in actions every library client serves, targeted only (protocol §7.6, §11.4).
        self._serving.serve_targeted(CONTRACTS_ACTION, lambda payload, ctx: {"actions": self._serving.contracts()})
        self._logs: Optional[LogService] = None
        if options.logs is not None:
            self._logs = LogService(options.id, options.logs, broker_secrets(options.endpoints), options.max_message_bytes, log)
            self._logs.start()
            self._serving.serve_targeted(LOGS_ACTION, self._logs.serve)
        #: The application's logger: its lines are kept and served with the library's (protocol §11.4).
        self.logger = log.getChild("app")
        self._ready: asyncio.Future[None] = self.loop.create_future()
        self._startup_failed: asyncio.Future[BaseException] = self.loop.create_future()

    # ---- starting (protocol §7.2) ----------------------------------------------------------

    async def _start(self) -> None:
        self._transport.start()
        try:
            await self._transport.ready()
            loaded = self.directory.loaded
            done, _ = await asyncio.wait({loaded, self._startup_failed}, timeout=self.options.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if self._startup_failed in done:
                raise self._startup_failed.result()
            if loaded not in done:
                raise NotSentError(f"connected to {self._transport.broker_label}, but our presence did not come back within "
                                   f"{self.options.connect_timeout * 1000:.0f} ms (does the broker's ACL allow relais/presence/#?)")
        except BaseException:
            self._stop_locally("the client could not connect")
            await self._transport.close()
            raise

    def _begin(self) -> None:
        """The main lane's first CONNACK: subscribe to the presences (only our own for an on-demand
        directory), then announce ours (§7.2)."""
        presence_filter = PRESENCE_FILTER if self.directory.following else presence_topic(self.id)

        def subscribed(future: "asyncio.Future[None]") -> None:
            if future.cancelled() or future.exception() is not None:
                self._fail_start(NotSentError(f"cannot subscribe to {presence_filter}: {future.exception() if not future.cancelled() else 'cancelled'}"))
                return
            task = self.loop.create_task(self._presence.announce())
            task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or
                                   self._fail_start(NotSentError(f"cannot publish our presence: {t.exception()}")))

        # The sites' filters go first, so their retained statuses are in before the directory
        # settles; one the broker refuses (a policy older than sites) costs only the fast failure
        # for a site that is down (protocol §13.4).
        for filter_ in SITE_DIRECTORY_FILTERS:
            self._transport.subscribe(filter_, "main").add_done_callback(
                lambda f, filter_=filter_: f.cancelled() or f.exception() is None or log.info(
                    "not subscribed to %s: requests to the clients of a site whose link is down are not failed at once (%s)",
                    filter_, f.exception()))
        self._transport.subscribe(presence_filter, "main").add_done_callback(subscribed)

    def _fail_start(self, error: BaseException) -> None:
        if not self._startup_failed.done():
            self._startup_failed.set_result(error)

    # ---- properties ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the main connection is up."""
        return self._transport.connected

    @property
    def broker(self) -> str:
        """The broker the main connection uses now (password masked)."""
        return self._transport.broker_label

    @property
    def starting(self) -> bool:
        """True while a client connected with `startup="manual"` has not called `mark_ready()` (§7.1)."""
        return self._presence.starting

    @property
    def in_flight(self) -> int:
        """Requests waiting for their final response."""
        return self._requester.in_flight

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def signatures(self) -> dict:
        """Signed envelopes (protocol §12): `signed` and `kid` with `signing_key`; with
        `trusted_keys`, `verified`, `refused` (by reason), `senders_tracked`, `unsafe_evictions`."""
        stats: dict = {}
        if self._signer is not None:
            stats.update(signed=self._signer.signed, kid=self._signer.kid)
        if self._verifier is not None:
            stats.update(self._verifier.stats)
        return stats

    @property
    def sealing(self) -> dict:
        """Sealed payloads (protocol §3.6): how many messages this client `sealed` and `opened`, and
        how many sealed messages it received but did not open, by why (`refused`: `not-for-me`,
        `malformed`, `undecryptable`); `kids`, the ids of the keys it opens with."""
        return {**self._sealing.stats, "kids": self._sealing.kids}

    @property
    def on_refused(self) -> list:
        """Listeners called with each received message the verifier refused (protocol §12.4):
        `{"topic", "reason", "lane", "source"?}`; empty and unused without `trusted_keys`."""
        return self._verifier.on_refused if self._verifier is not None else self._no_verifier_listeners

    def _check_open(self) -> None:
        if self._closed:
            raise NotSentError(self._closed_because)

    # ---- requesting (protocol §4) ------------------------------------------------------------

    async def request(self, action: str, payload: Any = None, *, timeout: Optional[float] = None, target: Optional[str] = None,
                      priority: Optional[str] = None, token: Optional[str] = None, check_handlers: Optional[bool] = None,
                      ack_timeout: Optional[float] = None, deadline: Optional[float] = None,
                      on_behalf_of: Optional[str] = None, wait_for_site: Optional[float] = None, seal: Optional[bool] = None) -> Any:
        """Sends a command and returns the final response's payload. Raises `RemoteError` (the
        handler's error code), `TimeoutError`, `NoHandlerError`, `HandlerGoneError`,
        `CancelledError`, `NotSentError`... (protocol §5.1). Always ends. `timeout` in seconds,
        `deadline` in epoch seconds. A handler on a site whose link is down (protocol §13.4)
        fails it at once with `SiteUnreachableError`, or, with `wait_for_site` (seconds), after
        that long unless the link comes back. `seal=True` (default `seal_requests`) seals the
        payload for the handler's identity and its answers come back sealed for this client's
        (protocol §3.6); no sealing key known for the handler's identity: `SealingError`, nothing sent."""
        self._check_open()
        return await self._requester.request(action, payload, timeout=timeout, target=target, priority=priority, token=token,
                                             check_handlers=check_handlers, ack_timeout=ack_timeout, deadline=deadline,
                                             on_behalf_of=on_behalf_of, wait_for_site=wait_for_site, seal=seal)

    def call(self, action: str, payload: Any = None, *, timeout: Optional[float] = None, target: Optional[str] = None,
             priority: Optional[str] = None, token: Optional[str] = None, check_handlers: Optional[bool] = None,
             ack_timeout: Optional[float] = None, deadline: Optional[float] = None,
             on_behalf_of: Optional[str] = None, wait_for_site: Optional[float] = None, seal: Optional[bool] = None) -> AsyncIterator[Any]:
        """Sends a command and yields its steps (`relais.Step`): `accepted`, each progress, then
        the final one (protocol §4.3); an error response raises. Leaving the loop early sends a
        cancel (wrap in `contextlib.aclosing` to have it sent at once)."""
        self._check_open()
        return self._requester.call(action, payload, timeout=timeout, target=target, priority=priority, token=token,
                                    check_handlers=check_handlers, ack_timeout=ack_timeout, deadline=deadline,
                                    on_behalf_of=on_behalf_of, wait_for_site=wait_for_site, seal=seal)

    # ---- serving (protocol §4.2) -----------------------------------------------------------

    async def serve(self, action: str, handler: Handler, *, lane: Optional[str] = None, description: Optional[str] = None,
                    input_schema: Optional[dict] = None, output_schema: Optional[dict] = None,
                    sealed: Optional[str] = None) -> Registration:
        """Serves `action`: subscribes to its request topics and announces it in the presence.
        Returns a `Registration`; `await reg.close()` stops serving it.

        The contract (protocol §7.6): `description` (one line for people), `input_schema` and
        `output_schema` as JSON Schema (draft 7) dicts. Python has no zod: the schemas are given
        as JSON Schema directly, announced (presence `contracts`, a hash) and served whole by
        `relais/contracts/get` (`relais contracts`), but NOT checked against payloads or results
        here (no JSON Schema validator in the standard library): a handler checks its input itself.

        `sealed="require"`: an unsealed command is refused with code 4, the handler not run
        (protocol §3.6). A sealed command is opened before the handler runs (`ctx.sealed`), and
        its progress and result go back sealed for the requester."""
        self._check_open()
        problem = check_path(action)
        if problem:
            raise TypeError(problem)
        return await self._serving.handle(action, handler, lane=lane, description=description, input_schema=input_schema,
                                          output_schema=output_schema, sealed=sealed)

    handle_async = serve

    def handle(self, action: str, *, lane: Optional[str] = None, description: Optional[str] = None,
               input_schema: Optional[dict] = None, output_schema: Optional[dict] = None,
               sealed: Optional[str] = None) -> Callable[[Handler], Handler]:
        """Decorator: `@bus.handle("a/b")` serves the function. The subscription is made in the
        background; `await bus.wait_served()` (or a later `await`) lets it finish. Prefer
        `await bus.serve(action, fn)` to know it is served."""
        def register(handler: Handler) -> Handler:
            task = self.loop.create_task(self.serve(action, handler, lane=lane, description=description, input_schema=input_schema,
                                                    output_schema=output_schema, sealed=sealed))
            self._pending_registrations.append(task)
            task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or
                                   log.error("serving %s failed: %s", action, t.exception()))
            return handler
        return register

    @property
    def _pending_registrations(self) -> list["asyncio.Task[Registration]"]:
        if not hasattr(self, "_registrations"):
            self._registrations: list[asyncio.Task[Registration]] = []
        return self._registrations

    async def wait_served(self) -> None:
        """Waits for the registrations made with `@bus.handle` to be in place (raises the first failure)."""
        tasks, self._registrations = list(self._pending_registrations), []
        for task in tasks:
            await task

    # ---- publishing (protocol §8) ------------------------------------------------------------

    def notify(self, category: str, payload: Any = None, *, priority: str = "normal", destination: Optional[str] = None,
               deadline: Optional[float] = None, seal_for: Optional[Sequence[str]] = None) -> None:
        """Publishes a notification on `<category>/notification` (§8.1); a bytes payload is a binary
        message (§3.5). With `seal_for` (identities), its payload is sealed for every key of each
        (§3.6): `SealingError` when one has no sealing key, nothing sent. Raises `TypeError` for a bad
        category, `PayloadTooLargeError` past `max_message_bytes`, `NotSentError` when closed."""
        self._check_open()
        topic = notification_topic(category)
        envelope = notification_message(source=self.id, payload=payload, priority=priority, destination=destination,
                                        deadline=None if deadline is None else int(deadline * 1000))
        if seal_for is not None:
            if isinstance(seal_for, str) or not seal_for or not all(isinstance(identity, str) for identity in seal_for):
                raise TypeError("seal_for must be a non-empty list of identities")
            envelope = self._sealing.seal(envelope, seal_for)
        body = encode_message(envelope, self.options.max_message_bytes, lambda: f"the notification for {topic}")
        self._transport.send(Outbound(topic, body, qos=1, priority=priority, deadline=deadline))

    def log(self, category: str, level: str, message: str, data: Any = None) -> None:
        """Publishes a log record on `<category>/log` (§8.2); `level` debug, info, warn or error."""
        self._check_open()
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        topic = log_topic(category)
        envelope = log_message(source=self.id, level=level, message=message, **({} if data is None else {"data": data}))
        body = encode(envelope, self.options.max_message_bytes, lambda: f"the log for {topic}")
        self._transport.send(Outbound(topic, body, qos=1, priority="normal"))

    def publish(self, topic: str, message: Any, *, qos: int = 1, retain: bool = False, priority: str = "normal") -> None:
        """Publishes a ready-made envelope (or any JSON, or a string as is) on any topic. Bytes are
        sent as they are (a raw MQTT payload, unsigned); an envelope whose `payload` is bytes is
        framed as a binary message (protocol §3.5)."""
        self._check_open()
        problem = check_topic_name(topic)
        if problem:
            raise TypeError(problem)
        what = lambda: f"the message for {topic}"  # noqa: E731
        body: Union[str, bytes]
        if is_bytes(message):
            body = bytes(message)
            if len(body) > self.options.max_message_bytes:
                raise PayloadTooLargeError(f"{what()} is {len(body)} bytes, over the {self.options.max_message_bytes}-byte limit")
        elif isinstance(message, dict) and is_bytes(message.get("payload")):
            body = encode_message(message, self.options.max_message_bytes, what)
        else:
            body = encode_json(message, self.options.max_message_bytes, what)
        self._transport.send(Outbound(topic, body, qos=qos, priority=priority, retain=retain))

    async def subscribe(self, filter: str, *, qos: int = 1, lane: Optional[str] = None, include_invalid: bool = False,  # noqa: A002
                        buffer_size: int = 10_000) -> Subscription:
        """Subscribes to an MQTT filter (§8.3); returns an async iterator of `relais.Message`
        (`topic`, `envelope`, `payload`, `retained`). Resolves once the broker confirmed it."""
        self._check_open()
        return await self._subscriptions.subscribe(filter, qos=qos, lane=lane, include_invalid=include_invalid, buffer_size=buffer_size)

    # ---- presence and directory (protocol §7) -----------------------------------------------

    def providers(self, action: str) -> list[str]:
        """Ids of the alive clients that announce `action` (an on-demand directory starts following the presences)."""
        self.directory.want()
        return sorted(self.directory.providers(action))

    def sites(self) -> list[dict]:
        """The sites this broker is linked to (protocol §13.4), by name: `{"site", "status"?: {"status":
        "up"|"down", "since", "mode", "rttMs"...}, "roster"?: {"clients": [...]}}`; empty on a bus without sites."""
        return self.site_directory.list()

    def peers(self) -> list[dict]:
        """Clients known from presence: `{"id", "status", "actions", ...}`. With `directory="on-demand"`,
        the first call starts following the presences and returns what is known yet (this client)."""
        self.directory.want()
        return [{"id": client_id, **info} for client_id, info in self.directory.list()]

    async def wait_for_handler(self, action: str, *, target: Optional[str] = None, timeout: Optional[float] = None) -> None:
        """Returns once some alive client (or `target`) announces `action`; `TimeoutError` after `timeout` s."""
        self._check_open()
        wait = self.options.timeout if timeout is None else check_seconds(timeout, "timeout")
        self.directory.want()
        await self.directory.wait_for_provider(action, target, wait, self._stopped)

    async def mark_ready(self) -> None:
        """Ends the `starting` phase of a client connected with `startup="manual"` (§7.1)."""
        self._check_open()
        await self._presence.mark_ready()

    def _is_router(self, client_id: str) -> Union[bool, Awaitable[bool]]:
        """Whether `client_id` is a router, whose relayed cancels this client's handlers take (§11.5).
        Asked of a client the directory does not know while it settles (or of an on-demand one that
        does not follow the presences yet, which starts to): answered once settled."""
        known = self.directory.get(client_id)
        if known is not None or (self.directory.following and self.directory.settled):
            return (known or {}).get("role") == "router"
        self.directory.want()

        async def once_settled() -> bool:
            await self.directory.when_settled(self.options.timeout)
            return (self.directory.get(client_id) or {}).get("role") == "router"
        return once_settled()

    # ---- the router (protocol §11) ----------------------------------------------------------

    async def clients(self, *, timeout: Optional[float] = None) -> dict:
        """The router's client registry (§11.3): `{"revision", "clients": {id: {...}}}`."""
        from .router import registry
        return await registry(self, timeout)

    async def history(self, **query: Any) -> Any:
        """Rows of the router's history (§11.2): `history(token=...)` or a search (`action`, `since`, ...).
        Sealed rows this client holds a key for come opened (`open_rows`)."""
        from .router import history
        page = await history(self, query)
        return {**page, "rows": self.open_rows(page.get("rows", []))} if isinstance(page, dict) else page

    async def follow(self, token: str, **options: Any) -> AsyncIterator[dict]:
        """One request's rows as the router recorded them, replayed then live until its end (§11.2);
        sealed rows this client holds a key for come opened."""
        from .router import follow
        async with contextlib.aclosing(follow(self, token, options)) as rows:
            async for row in rows:
                yield self._sealing.open_row(row)

    def open_rows(self, rows: Any) -> list:
        """History rows with the sealed ones this client can open opened (protocol §3.6, §11.1):
        `opened: True`, `seal` kept, `data`/`size`/`sha256` the plaintext's. Rows not sealed,
        truncated, or not sealed for this client's keys: unchanged."""
        return [self._sealing.open_row(row) for row in rows]

    def events(self, since: Any = None, **options: Any) -> AsyncIterator[dict]:
        """The router's event stream (§11.8) from `since` (a cursor) or from now, across lost
        connections and broker restarts: each event once, in cursor order. Items are dicts: an
        event `{"cursor", "time", "type", "data"}`, or a gap `{"type": "gap", "missed": n,
        "after": cursor}` when retention removed `n` events before they could be read."""
        from .router import events
        return events(self, since, options)

    # ---- the key-value store (protocol §14) ------------------------------------------------

    def kv(self, bucket: str) -> KvBucket:
        """One bucket of the router's key-value store (protocol §14): get, put (compare-and-set
        with `expect_revision`), delete, keys, history, and a watch that goes on across lost
        connections. Needs a router on the bus (`relais start` runs one)."""
        return KvBucket(self, bucket)

    async def config(self, schema: dict, *, defaults: Any, router_wait: Optional[float] = None,
                     validate: Optional[Callable[[Any], Any]] = None) -> ClientConfig:
        """This client's configuration, `config/<its id>` in the key-value store (protocol §14.6):
        `schema` (a JSON Schema dict) is announced in `config-schema/<id>`, and the router checks
        every write against it (`ConfigInvalidError`, code 2, naming the field); the defaults are
        written when there is none; the changes are followed while the client runs. Waits up to
        `router_wait` seconds (default 30) for a router, then `NoHandlerError`. `validate(value)`,
        when given, checks values here too (raise to refuse; a value returned replaces it)."""
        self._check_open()
        return await open_config(self, self.id, schema, defaults, router_wait, validate)

    # ---- inbound (protocol §2.2, §4.2) ------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retained: bool, qos: int, lane: str) -> None:
        cached: list[DecodeResult] = []
        # A sealed message (protocol §3.6) is opened where it is decoded, once, before anyone reads
        # it: None (not sealed), "" (opened), or why it did not open.
        unopened: list[Optional[str]] = [None]

        def decoded() -> DecodeResult:
            if not cached:
                result = _EMPTY if len(payload) == 0 else decode(payload, self.options.max_message_bytes)
                if result.ok and result.envelope.get(SEAL_MEMBER) is not None:
                    opening = self._sealing.open(result.envelope)
                    if opening.ok:
                        result, unopened[0] = DecodeResult(True, envelope=opening.envelope), ""
                    else:
                        unopened[0] = f"{opening.reason}: {opening.why}"
                cached.append(result)
            return cached[0]

        try:
            parsed = parse_topic(topic)
            # protocol §12.4: before any part of the client or any subscription sees it (signatures cover the sealed bytes, §12.2).
            if self._verifier is not None and not self._verifier.admitted(topic, payload, parsed.kind == "presence", retained, lane, decoded):
                return
            kind = parsed.kind
            if kind == "response":
                if parsed.requester == self.id:
                    result = decoded()
                    if result.ok and result.envelope.get("type") == "response":
                        if unopened[0]:
                            self._requester.on_unopened_response(result.envelope, unopened[0])
                        else:
                            self._requester.on_response(result.envelope, lane)
                    elif not result.ok:
                        log.warning("invalid response on %s: %s", topic, result.error)
            elif kind == "request":
                # A client that merely subscribes to '#' must not answer other clients' commands.
                if parsed.target == self.id:
                    result = decoded()
                    self._serving.on_request(parsed.action, True, result, qos, unopened[0] or None)
                elif parsed.target is None and self._serving.serves(parsed.action):
                    result = decoded()
                    self._serving.on_request(parsed.action, False, result, qos, unopened[0] or None)
            elif kind == "cancel":
                if self._serving.serves(parsed.action):
                    self._serving.on_cancel(decoded())
            elif kind == "presence":
                self._on_presence(parsed.client_id, decoded())
            elif topic.startswith(SITES_PREFIX):
                # `relais/sites/...` is outside the scheme of protocol §2.2.
                site = parse_site_topic(topic)
                if site is not None:
                    self.site_directory.update(site, len(payload), decoded)
            self._subscriptions.dispatch(topic, lane, payload, decoded, retained, qos,
                                         lambda: None if unopened[0] is None else "unopened" if unopened[0] else "opened")
        except Exception:  # noqa: BLE001 - one message never stops the client
            log.exception("error while handling a message on %s", topic)

    def _on_presence(self, client_id: str, result: DecodeResult) -> None:
        self.directory.update(client_id, result.envelope if result.ok else None)
        if client_id != self.id or not result.ok:
            return
        payload = result.envelope.get("payload")
        info = payload if isinstance(payload, dict) else {}
        # Our own presence back: the loading barrier (§7.2); another instance's: a twin (§7.5).
        if self._presence.on_own_topic(info):
            self.directory.own_presence_back()

    def _on_connected(self, lane: str, reconnected: bool) -> None:
        if lane == "main" and not reconnected:
            self._begin()
        elif lane == "main":
            self.directory.begin_reload()
            self.site_directory.begin_reload()
            self._presence.reannounce_soon()
            for listener in list(self._on_main_online):
                listener()
        if reconnected:
            self._requester.on_reconnected(lane)

    def _on_disconnected(self, lane: str) -> None:
        self._requester.on_disconnected(lane)
        if lane == "main":
            self._presence.knocked_off()

    # ---- the end ---------------------------------------------------------------------------

    def _give_way(self, other: dict, message: str) -> None:
        """Another client holds our id (§7.5): fail what is pending and leave without a farewell."""
        self._fail_start(NotSentError(message))
        if not self._stop_locally(message, f"the client is closed: {message}"):
            return
        self.replaced_by = other
        self._ending = asyncio.ensure_future(self._transport.close())
        for listener in list(self.on_replaced):
            try:
                listener(other)
            except Exception:  # noqa: BLE001
                log.exception("a replaced listener failed")

    def _stop_locally(self, reason: str, closed_because: str = "the client is closed") -> bool:
        if self._closed:
            return False
        self._closed = True
        self._closed_because = closed_because
        if self._logs is not None:
            self._logs.stop()
        self._presence.stop()
        self.directory.stop()
        if not self._stopped.done():
            self._stopped.set_result(closed_because)
        self._serving.abort_all()
        self._requester.fail_all(lambda: NotSentError(reason))
        self._subscriptions.close_all()
        return True

    async def close(self) -> None:
        """Stops serving (running handlers answer code 5), announces `stopped`, fails what is
        pending and disconnects."""
        if self._stop_locally("the client closed before the response came"):
            async def end() -> None:
                # The aborted handlers' answers leave before the farewell and the DISCONNECT.
                await asyncio.sleep(0)
                await self._presence.farewell()
                await self._transport.close()
            self._ending = asyncio.ensure_future(end())
        if self._ending is not None:
            await asyncio.shield(self._ending)

    async def kill(self) -> None:
        """Drops the connections as a crash would: no `stopped` presence, the broker fires the will."""
        if self._stop_locally("the client was killed"):
            self._ending = asyncio.ensure_future(self._transport.kill())
        if self._ending is not None:
            await asyncio.shield(self._ending)

    def drop_connection(self) -> None:
        """Cuts the main socket as a network loss would; the client reconnects by itself (tests)."""
        self._transport.main.drop_socket()

    async def __aenter__(self) -> "Bus":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()


def _make_signatures(options: ResolvedOptions) -> tuple[Any, Any]:
    """The signer and verifier of signed envelopes (protocol §12), when asked for."""
    if options.signing_key is None and options.trusted_keys is None:
        return None, None
    from .signing import ClientSigner, ClientVerifier, read_private_key, read_trusted_keys
    signer = ClientSigner(read_private_key(options.signing_key)) if options.signing_key is not None else None
    verifier = None
    if options.trusted_keys is not None:
        verifier = ClientVerifier(read_trusted_keys(options.trusted_keys), signer, options.id, options.require_signatures,
                                  options.max_signature_skew)
    return signer, verifier


def _logs_settings(logs: Union[bool, dict]) -> Optional[dict]:
    """`logs` (protocol §11.4): True (defaults), False (nothing kept or served), or a dict of
    `max_lines`, `max_bytes`, `lock_timeout` (seconds)."""
    from .log_service import DEFAULTS
    if logs is False:
        return None
    if logs is True:
        return dict(DEFAULTS)
    if not isinstance(logs, dict) or set(logs) - set(DEFAULTS):
        raise ValueError(f"logs must be True, False or a dict of {', '.join(DEFAULTS)}, got {logs!r}")
    settings = {**DEFAULTS, **logs}
    for name in ("max_lines", "max_bytes"):
        if isinstance(settings[name], bool) or not isinstance(settings[name], int) or settings[name] <= 0:
            raise ValueError(f"logs.{name} must be a positive integer, got {settings[name]!r}")
    if check_seconds(settings["lock_timeout"], "logs.lock_timeout") <= 0:
        raise ValueError("logs.lock_timeout must be a positive number of seconds")
    return settings


class _Connecting:
    """What `connect()` returns: awaitable (`bus = await relais.connect(...)`) and an async
    context manager (`async with relais.connect(...) as bus:`)."""

    def __init__(self, options: ResolvedOptions) -> None:
        self._options = options
        self._bus: Optional[Bus] = None

    async def _open(self) -> Bus:
        bus = Bus(self._options)
        await bus._start()
        self._bus = bus
        return bus

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._open().__await__()

    async def __aenter__(self) -> Bus:
        return await self._open()

    async def __aexit__(self, *_: Any) -> None:
        if self._bus is not None:
            await self._bus.close()


def connect(id: Optional[str] = None, broker: Union[str, Sequence[str], None] = None, *,  # noqa: A002 - the protocol's word
            username: Optional[str] = None, password: Optional[str] = None,
            ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None,
            timeout: float = 30.0, ack_timeout: Optional[float] = None, ephemeral: bool = False,
            info: Optional[dict] = None, startup: str = "auto", check_handlers: bool = True,
            max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, signing_key: Any = None, trusted_keys: Any = None,
            require_signatures: bool = True, max_signature_skew: float = 30.0, sealing_key: Any = None,
            sealing_keys: Any = None, seal_requests: bool = False, logs: Union[bool, dict] = True,
            keepalive: int = 30, realtime_lane: bool = True, reconnect_grace: float = 10.0,
            connect_timeout: float = 10.0, directory_settle: float = 0.5, directory: str = "full", max_offline_messages: int = 1000,
            reconnect_delay: float = 0.1, reconnect_max_delay: float = 5.0,
            presence_repeat: Union[float, bool, None] = None) -> _Connecting:
    """Connects a client (see the module docstring of `relais` for the whole API). Times in seconds.
    `broker` defaults to `RELAIS_BROKER`, else `mqtt://127.0.0.1:1883`; `password` to `RELAIS_TOKEN`."""
    import os
    import socket as _socket

    client_id = id if id is not None else os.environ.get("RELAIS_ID") or f"py-{_socket.gethostname().replace('.', '-')}-{os.getpid()}"
    problem = check_client_id(client_id)
    if problem:
        raise TypeError(problem)
    if startup not in ("auto", "manual"):
        raise ValueError(f"startup must be 'auto' or 'manual', got {startup!r}")
    if not (isinstance(max_message_bytes, int) and max_message_bytes > 0):
        raise ValueError(f"max_message_bytes must be a positive integer, got {max_message_bytes!r}")
    endpoints = parse_brokers(broker if broker is not None else env_broker())
    options = ResolvedOptions(
        id=client_id,
        endpoints=endpoints,
        username=username,
        password=password if password is not None else os.environ.get("RELAIS_TOKEN") or None,
        ca=ca, cert=cert, key=key,
        timeout=check_seconds(timeout, "timeout"),
        ack_timeout=check_seconds(2.0 if ack_timeout is None else ack_timeout, "ack_timeout"),
        reconnect_grace=check_seconds(reconnect_grace, "reconnect_grace"),
        realtime_lane=realtime_lane,
        max_offline_messages=max_offline_messages,
        max_message_bytes=max_message_bytes,
        reconnect_delay=check_seconds(reconnect_delay, "reconnect_delay"),
        reconnect_max_delay=check_seconds(reconnect_max_delay, "reconnect_max_delay"),
        connect_timeout=check_seconds(connect_timeout, "connect_timeout"),
        keepalive=keepalive,
        check_handlers=check_handlers,
        directory_settle=check_seconds(directory_settle, "directory_settle"),
        directory=check_directory(directory),
        presence_repeat=presence_repeat_of(presence_repeat, endpoints),
        ephemeral=ephemeral,
        startup=startup,
        info=dict(info or {}),
        signing_key=signing_key,
        trusted_keys=trusted_keys,
        require_signatures=bool(require_signatures),
        sealing_key=sealing_key,
        sealing_keys=sealing_keys,
        seal_requests=bool(seal_requests),
        logs=_logs_settings(logs),
        max_signature_skew=check_seconds(max_signature_skew, "max_signature_skew"),
        host_facts=host_facts(),
    )
    if not any(e.tls for e in options.endpoints) and (ca or cert or key):
        log.debug("TLS files given for a broker URL that is not mqtts:// or wss://: ignored")
    return _Connecting(options)
