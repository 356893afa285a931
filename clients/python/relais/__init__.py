"""Relais for Python: a client of the Relais bus over MQTT, held to the same contract as the
TypeScript library (docs/protocol.md; docs/python.md for the tour). asyncio over paho-mqtt
(1.6 or 2.x); `relais.sync` is a blocking facade; `python -m relais call|serve|sub` a CLI.

The public API (times in seconds; deadlines in epoch seconds, like `time.time()`)::

    import relais

    async with relais.connect(
        id="plugin-x",                      # default RELAIS_ID, else py-<host>-<pid>
        broker="mqtt://127.0.0.1:1883",     # default RELAIS_BROKER; mqtt:// mqtts:// ws:// wss:// unix:///path;
                                            #   a comma list or a list: the nodes of one bus (protocol §1.3)
        username=None, password=None,       # password default RELAIS_TOKEN
        ca=None, cert=None, key=None,       # TLS files (mqtts://, wss://)
        timeout=30.0, ack_timeout=2.0, ephemeral=False, info=None,   # info: extra presence fields (§7.1)
        startup="auto",                     # "manual": presence says starting until await bus.mark_ready()
        check_handlers=True, max_message_bytes=1048576, keepalive=30,
        realtime_lane=True, reconnect_grace=10.0, connect_timeout=10.0, directory_settle=0.5,
        directory="full",                   # "on-demand": follow the others' presences only from the first request,
                                            #   call, wait_for_handler, peers() or kill relayed by the router (§7.2)
        presence_repeat=None,               # publish each presence once more after this many seconds (§7.1, "On a
                                            #   cluster"); None: 2.0 when broker names several nodes, else never; False: never
        signing_key=None,                   # protocol §12, needs `cryptography` (relais.signing_available()): sign all
                                            #   this client writes with this Ed25519 key (a key object, PEM text, or
                                            #   the path of the PEM file `relais identity keygen` writes)
        trusted_keys=None,                  # verify all it receives (§12.4) against these keys: the keys file's path
                                            #   (`relais identity keygen` keeps it) or [{"identity", "public_key", "revoked"?}]
        require_signatures=True,            # with trusted_keys: unsigned messages are refused too (needs signing_key)
        max_signature_skew=30.0,            # largest difference between a signature's time and this clock
        sealing_key=None,                   # protocol §3.6, §12.5, needs `cryptography` (relais.sealing_available()):
                                            #   open what is sealed for this client with this X25519 key, or a list
                                            #   (a rotation); a key object, PEM text, or the path of the PEM file
                                            #   `relais identity keygen --seal` writes (<identity>.sealing.key)
        sealing_keys=None,                  # seal for the others with their public keys: the sealing keys file's path
                                            #   (<data-dir>/sealing-keys.json), [{"identity", "public_key", "revoked"?}],
                                            #   or a function identity -> such a list, asked at each seal
        seal_requests=False,                # seal every request to an application action (not relais/...) by default
        logs=True,                          # logs on demand (§11.4): False, or {"max_lines", "max_bytes", "lock_timeout"}
    ) as bus:                               # or: bus = await relais.connect(...); ...; await bus.close()

        result = await bus.request("demo/echo", {"a": 1}, timeout=5.0, target=None, priority="normal",
                                   token=None, check_handlers=None, ack_timeout=None, deadline=None,
                                   wait_for_site=None,   # §13.4: a handler on a site whose link is down fails at once
                                                         #   (SiteUnreachableError), or after this many seconds
                                   seal=None)            # §3.6: sealed for the handler's identity, answers sealed back
        async for step in bus.call("demo/work", {...}):   # relais.Step: kind ("accepted" | "progress" | "final"),
            ...                                           #   source, token, progress, payload, code

        @bus.handle("demo/echo", lane="main", description="...",   # registered in the background;
                    input_schema=None, output_schema=None,          #   contract (§7.6): JSON Schema dicts, announced
                    sealed=None)                                    #   ("require": unsealed commands get code 4, §3.6)
                                                                    #   and served by relais/contracts/get, NOT checked
                                                                    #   (Python has no zod; no validator in the stdlib)
        async def echo(payload, ctx):                               #   await bus.wait_served() to be sure
            # ctx: action, token, source, priority, deadline (epoch s or None), envelope, cancelled, sealed (bool)
            await ctx.progress(0.5, {"n": 1})    # or ctx.progress(...) without await
            return {"echo": payload}             # a plain `def` handler runs inline on the event loop
        reg = await bus.serve("a/b", fn)         # same, awaited (alias: handle_async); await reg.close()

        bus.notify("sensors/temp", {"c": 21.5}, priority="normal", seal_for=None)   # seal_for: identities (§3.6)
        bus.log("plugin/x", "info", "message", data=None)
        bus.publish(topic, message, qos=1, retain=False)
        sub = await bus.subscribe("sensors/+/notification")      # async with / async for; await sub.unsubscribe()
        async for msg in sub: msg.topic, msg.envelope, msg.payload, msg.source, msg.retained,
                              msg.sealed   # None, "opened" or "unopened" (the payload is then the ciphertext)

        bus.directory                 # .get(id), .list(), .providers(action), .settled
        bus.providers(action)         # sorted ids; bus.peers(): [{"id", "status", "actions", ...}]
        bus.sites()                   # the sites' links and rosters (§13.4): [{"site", "status"?, "roster"?}]
        await bus.wait_for_handler(action, target=None, timeout=5.0)
        await bus.clients()           # the router's registry (§11.3): {"revision", "clients": {...}}
        await bus.history(token=..., action=..., limit=..., after_id=...)   # §11.2: {"rows", "more"}
        async for row in bus.follow(token): ...                             # §11.2
        async for event in bus.events(since=cursor): ...  # §11.8, resumes across reconnections; each a dict:
                                                          #   {"cursor", "time", "type", "data"} or a gap
                                                          #   {"type": "gap", "missed": n, "after": cursor}
        kv = bus.kv("rooms")          # the router's key-value store (§14); entries are the wire's dicts (times epoch ms)
        entry = await kv.get("kitchen", revision=None)      # {"value", "revision", "author", ...}; KeyNotFoundError
        revision = await kv.put("kitchen", {"temp": 21}, expect_revision=None, ttl=None)   # bytes as bytes; ttl seconds;
                                                            #   a stale expect_revision: RevisionConflictError (0: create)
        await kv.create(key, value); await kv.delete(key, expect_revision=None)
        await kv.keys(prefix=None, after=None, limit=None)  # {"keys": [...], "more": bool}
        await kv.history(key, limit=None)                   # the kept revisions, oldest first
        async for item in kv.watch(prefix=None, since=None):   # current values (or every change after `since`),
            relais.is_up_to_date(item)                          #   {"upToDate": True, "revision"}, then live;
                                                                #   resumes after the last revision across lost connections
        config = await bus.config(schema, defaults={...}, router_wait=30.0, validate=None)   # §14.6: schema a JSON
                                      #   Schema dict announced in config-schema/<id>; the router checks every write
        config.value, config.revision; async for value in config.changes(): ...; config.on_change(fn)
        await config.set(value); config.close()
        bus.logger                    # logging.Logger "relais.app": its lines are served with the library's
                                      #   by relais/logs/get (§11.4; `relais logs <id>`), password masked
        await bus.mark_ready()        # startup="manual"
        bus.id, bus.connected, bus.broker, bus.starting, bus.in_flight, bus.closed
        bus.signatures                # {"signed", "kid", "verified", "refused": {reason: n}, ...} (§12)
        bus.on_refused.append(fn)     # fn({"topic", "reason", "lane", "source"?}) for each message refused (§12.4)
        bus.sealing                   # {"sealed", "opened", "refused": {"not-for-me", "malformed", "undecryptable"}, "kids"} (§3.6)
        bus.on_replaced.append(fn)    # another client took this id (§7.5); bus.replaced_by
        await bus.close()             # running handlers answer code 5, presence "stopped"
        await bus.kill()              # as a crash: the broker fires the will ("dead")

Every client serves, targeted only (presence `targetedActions`), `relais/contracts/get` (§7.6)
and, unless `logs=False`, `relais/logs/get` (§11.4): the records of the `relais` loggers that
Python's `logging` lets through (set the `relais` logger's level to keep more), kept in memory,
one retrieval at a time. The logging handler is on the shared `relais` logger: two clients in
one process each keep the lines of both.

A handler's cancellation (a cancel §4.4, its deadline §4.5, the client closing) cancels its
task: the handler sees `asyncio.CancelledError`; the answer is code 5 (6 for the deadline). A
requester whose awaiting task is cancelled sends the cancel and re-raises.

Errors (protocol §5.1): `RelaisError` (`response_code`, `details`, `cause`), `RemoteError`
(`remote_name`, `payload`, `handler`), `InvalidMessageError` (`UnknownTokenError`,
`RequestEndedError`), `NoHandlerError` (`SiteUnreachableError`), `NotAuthorizedError`,
`CancelledError` (the protocol's, not asyncio's), `TimeoutError` (also a builtin
`TimeoutError`), `PayloadTooLargeError`, `BusyError`, `HandlerGoneError`, `NotSentError`,
`SealingError` (no sealing key for a recipient, nothing sent; a sealed answer that did not open); the
key-value store's (§14.5) `KeyNotFoundError`, `RevisionConflictError`, `BucketNotFoundError`,
`ValueTooLargeError` (a `PayloadTooLargeError`), `ConfigInvalidError` (an `InvalidMessageError`).
`TypeError` for a bad action, target, id, bucket, key or payload that is not JSON; `ValueError` for a bad
option value.

Logging: the stdlib `logging` module, loggers `relais.*`; no secret is ever logged.
"""
from __future__ import annotations

from ._client.bus import Bus, connect
from ._client.serving import HandlerContext, Registration
from ._client.subscriptions import Message, Subscription
from .protocol.bytes import from_base64, to_base64
from .protocol.envelope import EVERYONE
from .protocol.errors import (
    BusyError, CancelledError, HandlerGoneError, InvalidMessageError, NoHandlerError, NotAuthorizedError, NotSentError,
    PayloadTooLargeError, RelaisError, RemoteError, RequestEndedError, ResponseCode, SealingError, SiteUnreachableError,
    TimeoutError, UnknownTokenError,
)
from .protocol.kv import (
    BucketNotFoundError, ConfigInvalidError, KeyNotFoundError, RevisionConflictError, ValueTooLargeError, is_up_to_date,
)
from .protocol.request_lifecycle import Step
from ._client.config import ClientConfig
from ._client.kv import KvBucket


from .protocol.sealing import sealing_available
from .protocol.signature import signing_available


__all__ = [
    "Bus", "connect", "HandlerContext", "Registration", "Message", "Subscription", "Step", "EVERYONE",
    "to_base64", "from_base64", "signing_available", "sealing_available",
    "RelaisError", "RemoteError", "InvalidMessageError", "UnknownTokenError", "RequestEndedError", "NoHandlerError",
    "SiteUnreachableError", "NotAuthorizedError", "CancelledError", "TimeoutError", "PayloadTooLargeError", "BusyError",
    "HandlerGoneError", "NotSentError", "SealingError", "ResponseCode",
    "KvBucket", "ClientConfig", "is_up_to_date", "KeyNotFoundError", "RevisionConflictError", "BucketNotFoundError",
    "ValueTooLargeError", "ConfigInvalidError",
]
