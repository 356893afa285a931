"""The serving side (protocol §4.2), a port of `src/client/serving/handlers.ts`,
`command-context.ts` and `running-request.ts`: the actions served, the commands running and
those recently finished. Which command runs is decided by `admit_command`
(`relais.protocol.command_admission`); duplicates are answered from `RecentTokens` (§4.8).

A handler is an `async def handler(payload, ctx)` (or a plain `def`, run inline). A cancel (§4.4),
its deadline (§4.5) or the client closing cancel the handler's task: it sees
`asyncio.CancelledError`; if that ends it, the answer is code 5 (cancel, close) or 6 (deadline).
A handler's failure becomes an error response; it never reaches the process.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Optional, Union

from ..protocol.command_admission import admit_command
from ..protocol.contracts import contract_hash
from ..protocol.envelope import DecodeResult, encode, encode_json, encode_message
from ..protocol.errors import CancelledError, PayloadTooLargeError, ResponseCode, SealingError, TimeoutError, to_wire
from ..protocol.messages import response_message
from ..protocol.recent_tokens import RecentTokens
from ..protocol.sealing import is_sealed
from ..protocol.topics import cancel_topic, identity_of_client_id, request_topic, response_topic
from .options import ResolvedOptions
from .tokens import new_token
from .transport import Outbound, Transport

log = logging.getLogger("relais.handler")

Handler = Callable[[Any, "HandlerContext"], Union[Any, Awaitable[Any]]]


@dataclass
class _Served:
    handler: Handler
    lane: str
    #: What `relais/contracts/get` serves of it (protocol §7.6), with its hash.
    contract: Optional[dict] = None
    targeted_only: bool = False
    #: `sealed="require"`: unsealed commands are refused (protocol §3.6).
    sealed_only: bool = False


def describe_contract(input_schema: Optional[dict], output_schema: Optional[dict], description: Optional[str]) -> dict:
    """A contract as it travels (protocol §7.6): the JSON Schemas and description given, and the
    first 16 hex digits of the SHA-256 of their JSON, the hash presence announces."""
    body: dict[str, Any] = {}
    if input_schema is not None:
        body["input"] = input_schema
    if output_schema is not None:
        body["output"] = output_schema
    if description is not None:
        body["description"] = description
    return {**body, "hash": contract_hash(body)}


class HandlerContext:
    """What a handler reads of the command it runs (protocol §4.2)."""

    def __init__(self, serving: "Serving", to: Any, envelope: dict, key: str) -> None:
        self._serving = serving
        self.to = to
        #: The command's envelope as received, unknown fields kept (§3.3); a sealed one opened
        #: (`payload` the plaintext, `seal` kept, §3.6).
        self.envelope = envelope
        self.key = key
        self.action: str = to.action
        self.token: str = to.token
        #: Id of the requester.
        self.source: str = to.requester
        self.priority: str = to.priority
        deadline_ms = envelope.get("deadline")
        #: Epoch seconds after which nobody waits for the answer (§4.5), or None.
        self.deadline: Optional[float] = deadline_ms / 1000 if isinstance(deadline_ms, (int, float)) else None
        self.abort_reason: Optional[BaseException] = None
        self.ended = False
        #: A progress response was sent: it told the requester the command was taken (§4.7).
        self.answered = False
        self.last_progress: Optional[float] = None
        self.task: Optional[asyncio.Task[Any]] = None
        self._deadline_timer: Optional[asyncio.TimerHandle] = None

    @property
    def sealed(self) -> bool:
        """The command came sealed (protocol §3.6): its answers go back sealed for the requester."""
        return self.envelope.get("seal") is not None

    @property
    def cancelled(self) -> bool:
        """Cancelled, closing, or past its deadline."""
        if self.abort_reason is None and self.deadline is not None and time.time() >= self.deadline:
            self.abort(TimeoutError(f"deadline of request {self.token} passed"))
        return self.abort_reason is not None

    def progress(self, fraction: Optional[float] = None, data: Any = None) -> "asyncio.Future[None]":
        """Sends a progress response (`fraction` in [0, 1], optional; `data` JSON, or bytes sent as a
        binary message, §3.5). Returns a done future, so
        `ctx.progress(...)` and `await ctx.progress(...)` both work. Nothing is sent once the
        command has ended or was cancelled (§4.3)."""
        done: asyncio.Future[None] = self._serving.loop.create_future()
        done.set_result(None)
        if self.ended or self.abort_reason is not None:
            return done
        if fraction is not None and not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
            raise ValueError(f"progress must be a fraction between 0 and 1, got {fraction!r}")
        if fraction is not None:
            self.last_progress = fraction
        self.answered = True
        self._serving.reply(self.to, "progress", payload=data, progress=fraction)
        return done

    def abort(self, reason: BaseException) -> None:
        if self.abort_reason is not None or self.ended:
            return
        self.abort_reason = reason
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _arm_deadline(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.deadline is None:
            return
        delay = self.deadline - time.time()
        if delay < 2**31 / 1000:
            self._deadline_timer = loop.call_later(max(0.0, delay), self.abort, TimeoutError(f"deadline of request {self.token} passed"))

    def end(self) -> None:
        self.ended = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()


class Registration:
    """An action served; `await reg.close()` stops serving it."""

    def __init__(self, close: Callable[[], Awaitable[None]], action: str) -> None:
        self._close = close
        self.action = action

    async def close(self) -> None:
        await self._close()


class Serving:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: ResolvedOptions, transport: Transport,
                 announce: Callable[[], Awaitable[None]], accepting: Callable[[], bool],
                 is_router: Callable[[str], Union[bool, Awaitable[bool]]], sealing: Any = None) -> None:
        self.loop = loop
        #: What seals the answers to sealed commands for their requesters (protocol §3.6).
        self._sealing = sealing
        self.options = options
        self.transport = transport
        self._announce = announce
        self._accepting = accepting
        self._is_router = is_router
        self._served: dict[str, _Served] = {}
        self._running: dict[str, HandlerContext] = {}
        self._finished = RecentTokens()
        #: Relayed cancels waiting for the directory to say whether their sender is a router (§11.5).
        self._router_checks: set[asyncio.Task[None]] = set()

    # ---- what the presence and admission read ----------------------------------------

    @property
    def self_id(self) -> str:
        return self.options.id

    # ServingView (protocol/command_admission): the id, how an action is served, known tokens.
    @property
    def self(self) -> str:  # noqa: A003 - the view's name
        return self.options.id

    def serving(self, action: str) -> str:
        entry = self._served.get(action)
        if entry is None:
            return "no"
        if entry.targeted_only:
            return "targeted-only"
        return "yes" if self._accepting() else "starting"

    def knows(self, key: str) -> bool:
        return key in self._running or self._finished.get(key) is not None

    def serves(self, action: str) -> bool:
        return action in self._served and self._accepting()

    def actions(self, lane: str) -> list[str]:
        return [a for a, s in self._served.items() if s.lane == lane and not s.targeted_only]

    def targeted_actions(self) -> list[str]:
        return [a for a, s in self._served.items() if s.targeted_only]

    def contracts(self) -> dict[str, dict]:
        """The declared contracts, by action (protocol §7.6): what `relais/contracts/get` answers."""
        return {a: s.contract for a, s in self._served.items() if s.contract is not None}

    def contract_hashes(self) -> dict[str, str]:
        """The hash of each declared contract, by action: what presence announces (§7.6)."""
        return {action: contract["hash"] for action, contract in self.contracts().items()}

    # ---- registering -----------------------------------------------------------------

    async def handle(self, action: str, handler: Handler, lane: Optional[str] = None, description: Optional[str] = None,
                     input_schema: Optional[dict] = None, output_schema: Optional[dict] = None, sealed: Optional[str] = None) -> Registration:
        if action in self._served:
            raise ValueError(f"{action} is already handled by this client")
        if sealed is not None and sealed != "require":
            raise ValueError(f"sealed must be 'require' or None, got {sealed!r}")
        if not callable(handler):
            raise TypeError("the handler must be a function (payload, ctx)")
        for name, schema in (("input_schema", input_schema), ("output_schema", output_schema)):
            if schema is not None and not isinstance(schema, dict):
                raise TypeError(f"{name} must be a JSON Schema (a dict), got {type(schema).__name__}")
        if description is not None and not isinstance(description, str):
            raise TypeError("description must be a string")
        typed = input_schema is not None or output_schema is not None or description is not None
        contract = describe_contract(input_schema, output_schema, description) if typed else None
        chosen = self.transport.lane_of(lane)
        topics = [request_topic(action), request_topic(action, self.options.id), cancel_topic(action)]
        self._served[action] = _Served(handler, chosen, contract, sealed_only=sealed == "require")
        try:
            await asyncio.gather(*(self.transport.subscribe(t, chosen) for t in topics))
            await self._announce()
        except BaseException:
            # Not served: nothing of it may stay held (a refused filter would be retried at each reconnection).
            self._served.pop(action, None)
            await asyncio.gather(*(self.transport.unsubscribe(t, chosen) for t in topics), return_exceptions=True)
            raise

        async def close() -> None:
            if self._served.pop(action, None) is None:
                return
            await asyncio.gather(*(self.transport.unsubscribe(t, chosen) for t in topics), return_exceptions=True)
            await self._announce()

        return Registration(close, action)

    def serve_targeted(self, action: str, handler: Handler) -> None:
        """A built-in action served on `<action>/request/<me>` only (protocol §11.4, §7.6)."""
        self._served[action] = _Served(handler, "main", targeted_only=True)
        for topic in (request_topic(action, self.options.id), cancel_topic(action)):
            waiter = self.transport.subscribe(topic, "main")
            waiter.add_done_callback(lambda f, t=topic: f.cancelled() or f.exception() is None or
                                     log.warning("built-in action %s not served: subscribing to %s failed: %s", action, t, f.exception()))

    # ---- commands --------------------------------------------------------------------

    def on_request(self, action: str, targeted: bool, decoded: DecodeResult, qos: int, unopened: Optional[str] = None) -> None:
        """A message on `<action>/request[/<me>]`: the checks of protocol §4.2, then what they
        decide. `unopened`: it came sealed and did not open here, why (protocol §3.6)."""
        admission = admit_command(action, targeted, decoded, qos, int(time.time() * 1000), self, new_token)
        if admission.kind != "drop" and decoded.ok and is_sealed(decoded.envelope):
            admission = replace(admission, to=replace(admission.to, sealed=True))
        if admission.kind == "run":
            refusal = self._sealing_refusal(action, admission.command, admission.to, unopened)
            if refusal is not None:
                code, name, message = refusal
                log.warning("sealed command refused: %s (action %s, token %s, requester %s)", message, action, admission.to.token,
                            admission.to.requester)
                # Not `accepted: false`: that says "came after its acceptBy" (§4.7), which a requester meets by offering it again.
                self.reply(replace(admission.to, sealed=False), "error", code=code, error={"name": name, "message": message})
                return
        if admission.kind == "drop":
            entry = admission.log
            getattr(log, "warning" if entry.level == "warn" else "debug")("%s %s", entry.message, _fields(entry.fields))
            answer = admission.answer
            if answer is not None:
                self.reply(answer.to, "error", code=answer.code, error=answer.error, not_run=bool(getattr(answer, "not_run", False)))
            return
        if admission.kind == "duplicate":
            self._answer_duplicate(admission.key, admission.to, admission.wants_acks)
            return
        self._run(self._served[action].handler, admission.command, admission.to, admission.key, admission.wants_acks)

    def _sealing_refusal(self, action: str, command: dict, to: Any, unopened: Optional[str]) -> Optional[tuple[int, str, str]]:
        """Why a command may not run for sealing's sake (protocol §3.6), or None: it did not open
        here (code 2, the requester sealed it for other keys), it came unsealed to an action that
        takes sealed commands only (code 4), or its answer could not be sealed back (code 1: no
        sealing key for the requester's identity; never a plaintext answer to a sealed command)."""
        if unopened is not None:
            return int(ResponseCode.INVALID_REQUEST), "SealingError", f"cannot open the sealed command: {unopened}"
        served = self._served.get(action)
        if served is not None and served.sealed_only and not is_sealed(command):
            return int(ResponseCode.NOT_AUTHORIZED), "NotAuthorizedError", "this action takes sealed commands only (protocol §3.6)"
        if to.sealed and not (self._sealing is not None and self._sealing.can_seal_for(to.requester)):
            return int(ResponseCode.ERROR), "SealingError", _cannot_seal_answer(to.requester)
        return None

    def _answer_duplicate(self, key: str, to: Any, wants_acks: bool) -> None:
        running = self._running.get(key)
        if running is not None:
            if wants_acks:
                self.reply(to, "accepted", progress=running.last_progress)
            return
        done = self._finished.get(key)
        if done is None:
            return
        body = getattr(done, "body", done)
        if body is not None:
            self._send(to, body)
        else:
            self.reply(to, "error", code=int(ResponseCode.ERROR),
                       error={"name": "Error", "message": f"request {to.token} already ran here; its result is no longer kept"})

    def _run(self, handler: Handler, command: dict, to: Any, key: str, wants_acks: bool) -> None:
        ctx = HandlerContext(self, to, command, key)
        self._running[key] = ctx
        try:
            outcome = handler(command.get("payload"), ctx)
        except BaseException as error:  # noqa: BLE001 - a handler's failure is an answer
            self._fail(ctx, error)
            return
        if not inspect.isawaitable(outcome):
            # A plain value is answered at once: no acknowledgement needed (§4.7).
            self._finish(ctx, "result", payload=outcome)
            return
        ctx._arm_deadline(self.loop)
        task = asyncio.ensure_future(outcome)
        ctx.task = task
        task.add_done_callback(lambda t: self._task_done(ctx, t))
        if ctx.abort_reason is not None:
            task.cancel()
        if wants_acks:
            # After the task's first step: one that answered within it needs no acknowledgement.
            self.loop.call_soon(self._acknowledge, ctx, task)

    def _acknowledge(self, ctx: HandlerContext, task: "asyncio.Task[Any]") -> None:
        if not ctx.ended and not ctx.answered and not task.done():
            self.reply(ctx.to, "accepted")

    def _task_done(self, ctx: HandlerContext, task: "asyncio.Task[Any]") -> None:
        if task.cancelled():
            self._fail(ctx, ctx.abort_reason or CancelledError(f"request {ctx.token} cancelled"))
            return
        error = task.exception()
        if error is not None:
            self._fail(ctx, error)
        else:
            self._finish(ctx, "result", payload=task.result())

    def _fail(self, ctx: HandlerContext, error: BaseException) -> None:
        reason = ctx.abort_reason
        if isinstance(error, asyncio.CancelledError):
            error = reason or CancelledError(f"request {ctx.token} cancelled")
        elif reason is not None and not isinstance(error, (CancelledError, TimeoutError)):
            error = reason
        code, wire = to_wire(error)
        if reason is None:
            log.warning("handler failed: %s (action %s, token %s)", wire.get("message"), ctx.action, ctx.token)
        self._finish(ctx, "error", code=code, error=wire)

    def _finish(self, ctx: HandlerContext, step: str, **answer: Any) -> None:
        """The final answer: sent once, and remembered for duplicates (§4.8)."""
        if ctx.ended:
            return
        ctx.end()
        self._running.pop(ctx.key, None)
        body = self.reply(ctx.to, step, **answer)
        if body is not None:
            deadline = ctx.envelope.get("deadline")
            self._finished.remember(ctx.key, body, deadline if isinstance(deadline, (int, float)) else None)

    def on_cancel(self, decoded: DecodeResult) -> None:
        """A message on `<action>/cancel`: abort the matching command, if it runs here (§4.4)."""
        if not decoded.ok or decoded.envelope.get("type") != "cancel":
            log.warning("invalid cancel ignored: %s", decoded.error if not decoded.ok else f"type {decoded.envelope.get('type')}")
            return
        envelope = decoded.envelope
        source, token = envelope.get("source"), envelope.get("token")
        payload = envelope.get("payload")
        fields = payload if isinstance(payload, dict) else {}
        reason = fields.get("reason") if isinstance(fields.get("reason"), str) else "cancelled"
        running = self._running.get(f"{source} {token}")
        if running is not None:
            running.abort(CancelledError(f"request {token} cancelled: {reason}"))
            return
        # A kill relayed by the router names the requester it acts for (§11.5).
        requester = fields.get("requester")
        if isinstance(requester, str) and f"{requester} {token}" in self._running:
            def relayed(by_router: bool) -> None:
                relayed_to = self._running.get(f"{requester} {token}")
                if by_router and relayed_to is not None:
                    relayed_to.abort(CancelledError(f"request {token} cancelled: {reason}"))
                elif not by_router:
                    log.info("cancel on behalf of a requester ignored: its sender %s is not a router (token %s, requester %s)",
                             source, token, requester)

            # Known only once the directory has settled (an on-demand one starts following the presences then).
            by_router = self._is_router(str(source))
            if isinstance(by_router, bool):
                relayed(by_router)
            else:
                async def once_known(answer: Awaitable[bool] = by_router) -> None:
                    relayed(await answer)
                task = self.loop.create_task(once_known())
                # asyncio keeps only a weak reference to a task: held here until it is done.
                self._router_checks.add(task)
                task.add_done_callback(self._router_checks.discard)
            return
        # A cancel for a request this client does not run (over, or never here) is the sender's mistake or a race.
        log.debug("cancel for no running request ignored (token %s, from %s)", token, source)

    def reply(self, to: Any, step: str, **answer: Any) -> Optional[str]:
        """Sends one answer; returns its wire text."""
        envelope = response_message(source=self.options.id, destination=to.requester, token=to.token, priority=to.priority,
                                    step=step, **{k: v for k, v in answer.items() if v is not None or k == "payload"})
        try:
            # The payload of an answer to a sealed command goes back sealed for its requester (protocol §3.6).
            if to.sealed and step in ("progress", "result"):
                envelope = self._seal_answer(envelope, to.requester)
            body = encode_message(envelope, self.options.max_message_bytes, lambda: f"the response of {to.action}")
        except (PayloadTooLargeError, SealingError, TypeError) as problem:
            # One that is not JSON, too large or not sealable becomes an error answer (§3.4, §3.6, §5.1).
            code, wire = to_wire(problem if isinstance(problem, (PayloadTooLargeError, SealingError)) else TypeError(str(problem)))
            log.warning("%s (action %s, token %s)", wire.get("message"), to.action, to.token)
            body = encode(response_message(source=self.options.id, destination=to.requester, token=to.token,
                                           priority=to.priority, step="error", code=code, error=wire))
        self._send(to, body)
        return body

    def _seal_answer(self, envelope: dict, requester: str) -> dict:
        if self._sealing is None or not self._sealing.can_seal_for(requester):
            raise SealingError(_cannot_seal_answer(requester))
        return self._sealing.seal(envelope, [requester])

    def _send(self, to: Any, body: str) -> None:
        try:
            self.transport.send(Outbound(response_topic(to.action, to.requester), body, qos=to.qos, priority=to.priority))
        except Exception as error:  # noqa: BLE001
            log.warning("response not sent (action %s, token %s): %s", to.action, to.token, error)

    def abort_all(self) -> None:
        """Aborts every running handler (the client is closing): code 5."""
        for ctx in list(self._running.values()):
            ctx.abort(CancelledError("the serving client is closing"))
        for check in list(self._router_checks):
            check.cancel()


def _cannot_seal_answer(requester: str) -> str:
    return f"cannot seal the answer: no sealing key for identity {identity_of_client_id(requester)}"


def _fields(fields: Any) -> str:
    if not isinstance(fields, dict):
        return ""
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
