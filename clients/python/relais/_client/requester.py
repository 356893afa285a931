"""The requesting side (protocol §4), a port of `src/client/requesting/requester.ts` and
`pending-request.ts`: checks a request before anything is sent, keeps the table of pending
requests, each the asyncio shell (timers, the transport, the failure detector) of a
`RequestLifecycle` (`relais.protocol.request_lifecycle`, where every rule of §4.1-§4.7 lives),
and tells them what concerns them: responses, presence changes, the directory settling, the
connection dropping and coming back. The waits for a handler's first answer are one sweep for
all of them (`relais.protocol.ack_clock`), which asks the broker before it takes a handler's
silence for the handler's (§4.7).

Times: this API takes seconds; the lifecycle, like the wire, takes epoch ms.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, AsyncIterator, Callable, Optional

from ..protocol.ack_clock import AckClock
from ..protocol.envelope import EVERYONE, encode
from ..protocol.errors import CancelledError, NoHandlerError, NotSentError, SealingError, TimeoutError
from ..protocol.failure_detector import FailureDetector
from ..protocol.handler_choice import HandlerChoice
from ..protocol.messages import cancel_message
from ..protocol.request_lifecycle import RequestLifecycle, RequestPlan
from ..protocol.topics import cancel_topic, check_client_id, check_path, is_system_action, response_topic
from .directory import Directory
from .options import ResolvedOptions
from .sealing import ClientSealing
from .sites import SiteDirectory
from .tokens import new_token
from .transport import Outbound, Transport

log = logging.getLogger("relais.requester")

#: How long a cancel may wait in the offline queue (protocol §4.4).
CANCEL_QUEUE_S = 5.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Sink:
    """Where a request's steps go: `call()` wants each one, `request()` only the end."""

    def __init__(self, on_step: Callable[[Any], None], on_result: Optional[Callable[[Any], None]], fail: Callable[[BaseException], None]) -> None:
        self.on_step = on_step
        self.on_result = on_result
        self.fail = fail


class PendingRequest:
    """One request: the lifecycle's effects (RequestEffects) on asyncio, and its outbound message."""

    def __init__(self, requester: "Requester", plan: RequestPlan, sink: _Sink) -> None:
        self.requester = requester
        self.loop = requester.loop
        self.sink = sink
        self.ack_timeout_ms = plan.ack_timeout
        self._deadline_timer: Optional[asyncio.TimerHandle] = None
        self._grace_timer: Optional[asyncio.TimerHandle] = None
        self._site_timer: Optional[asyncio.TimerHandle] = None
        # The ack clock's times for this request (AwaitingAck).
        self.ack_retry_at = math.inf
        self.ack_expire_at = math.inf
        self.ack_wait_ms = 0.0
        self.ack_asked = False
        #: The command goes sealed (protocol §3.6): its answers must come sealed too.
        self.sealed = plan.seal is not None
        self.lifecycle = RequestLifecycle(plan, requester.world, self, _now_ms())

    @property
    def token(self) -> str:
        return self.lifecycle.token

    @property
    def action(self) -> str:
        return self.lifecycle.action

    @property
    def lane(self) -> str:
        return self.lifecycle.lane

    @property
    def assignee(self) -> Optional[str]:
        return self.lifecycle.assignee

    def begin(self) -> None:
        self.requester.pending[self.token] = self
        self.lifecycle.start()

    # ---- RequestEffects ------------------------------------------------------------------

    def arm_deadline(self, ms: float) -> None:
        self._deadline_timer = self.loop.call_later(ms / 1000, self.lifecycle.timed_out)

    def write(self) -> None:
        lifecycle = self.lifecycle
        transport = self.requester.transport

        def written() -> None:
            lifecycle.was_written(_now_ms(), transport.connection(self.lane).connected)

        def dropped(error: NotSentError) -> None:
            lifecycle.fail(error)

        # The text is made when written, with the acceptBy the write needs (§4.7).
        transport.send(Outbound(lifecycle.topic, lambda: lifecycle.command_text(_now_ms()), qos=lifecycle.qos,
                                priority=lifecycle.priority, deadline=lifecycle.deadline / 1000,
                                on_written=written, on_dropped=dropped))

    def await_answer(self, wait: float, now: float) -> None:
        self.requester.await_first_answer(self, wait, now)

    def stop_awaiting_answer(self) -> None:
        self.requester.ack_clock.stop(self)

    # ---- AwaitingAck (the ack clock's) -----------------------------------------------------

    def retry(self) -> None:
        self.lifecycle.ack_halfway()

    def expire(self) -> None:
        self.lifecycle.ack_expired(_now_ms())

    def arm_site_wait(self, ms: float) -> None:
        self._site_timer = self.loop.call_later(ms / 1000, self.lifecycle.site_wait_over)

    def arm_grace(self, ms: float) -> None:
        self._grace_timer = self.loop.call_later(ms / 1000, lambda: self.lifecycle.grace_over(_now_ms()))

    def clear_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def send_cancel(self, destination: str, reason: str) -> None:
        requester = self.requester
        envelope = cancel_message(source=requester.options.id, destination=destination, token=self.token, reason=reason,
                                  priority=self.lifecycle.priority)
        try:
            requester.transport.send(Outbound(cancel_topic(self.action), encode(envelope), qos=1, priority=self.lifecycle.priority,
                                              deadline=time.time() + CANCEL_QUEUE_S))
        except Exception:  # noqa: BLE001 - offline or closed: the handler's own deadline stops it
            pass

    def step(self, step: Any) -> None:
        self.sink.on_step(step)

    def succeeded(self, payload: Any, code: int, source: str) -> None:
        self._end()
        if self.sink.on_result is not None:
            self.sink.on_result(payload)
        else:
            from ..protocol.request_lifecycle import Step
            self.sink.on_step(Step(kind="final", payload=payload, code=code, source=source, token=self.token))

    def failed(self, error: BaseException) -> None:
        self._end()
        self.sink.fail(error)

    def suspect(self, handler: str, waited: float) -> None:
        if self.requester.detector.missed(handler, self.ack_timeout_ms, _now_ms()):
            log.info("handler %s gave no answer within %.0f ms: suspected (busy, stopped or unreachable); requests go to "
                     "other providers while there are, else wait for it", handler, waited)

    def answered(self, handler: str, rtt: float) -> None:
        self.requester.detector.answered(handler, rtt)

    def log(self, level: str, fields: Any, message: str) -> None:
        getattr(log, "info" if level == "info" else "debug")("%s %s", message, fields)

    def _end(self) -> None:
        for timer in (self._deadline_timer, self._site_timer):
            if timer is not None:
                timer.cancel()
        self.clear_grace()
        self.stop_awaiting_answer()
        self.requester.pending.pop(self.token, None)


class _World:
    """What a request reads of this client (RequestWorld): its directory, the choice of a handler, the waits."""

    def __init__(self, requester: "Requester") -> None:
        self._requester = requester
        options = requester.options
        self.self = options.id
        self.self_id = options.id
        self.max_message_bytes = options.max_message_bytes
        self.reconnect_grace = options.reconnect_grace * 1000

    @property
    def directory_settled(self) -> bool:
        return self._requester.directory.settled

    def presence(self, handler: str) -> Any:
        return self._requester.directory.get(handler)

    def has_provider(self, action: str) -> bool:
        return len(self._requester.directory.providers(action)) > 0

    def pick(self, action: str, exclude: Any = None, unsuspected_only: bool = False) -> Optional[str]:
        return self._requester.choice.pick(action, self._requester.load_by_handler, exclude, unsuspected_only)

    def ack_deadline(self, handler: str, ack_timeout: float, misses: int = 0) -> float:
        return self._requester.detector.deadline(handler, ack_timeout, misses)

    def missing(self, action: str, target: Optional[str]) -> Optional[NoHandlerError]:
        """protocol §7.3: a target absent, not alive or not serving the action; or nobody announcing it."""
        directory = self._requester.directory
        if target is not None:
            if directory.serves(target, action):
                return None
            info = directory.get(target)
            if info is None:
                why = "is not connected"
            elif info.get("status") != "alive":
                why = f"is {info.get('status')}"
            else:
                why = f"does not serve it (serves: {', '.join(info.get('actions') or []) or 'nothing'})"
            return NoHandlerError(f"no handler for {action}: target {target} {why}")
        if directory.providers(action):
            return None
        failure = "" if directory.failure is None else f" (this client {directory.failure})"
        return NoHandlerError(f"no connected client serves {action}{failure}")

    def unreachable(self, handler: str) -> Any:
        """protocol §13.4: a client of a site whose link is down."""
        return self._requester.sites.unreachable(handler)


class _BrokerHearing:
    """What the ack clock asks of the connections (protocol §4.7): when the broker was last heard
    on a lane, and a round trip to it, whose answer goes back to the clock."""

    def __init__(self, requester: "Requester") -> None:
        self._requester = requester

    def heard_at(self, lane: str) -> float:
        return self._requester.transport.connection(lane).heard_at

    def probe(self, lane: str) -> None:
        requester = self._requester

        def answered(future: "asyncio.Future[None]") -> None:
            if future.cancelled() or future.exception() is not None:
                requester.ack_clock.broker_lost(lane)
            else:
                requester.sweep_every(requester.ack_clock.broker_answered(lane, _now_ms()))

        # Its answer is a done callback, never within this call (asyncio schedules them).
        requester.transport.connection(lane).probe().add_done_callback(answered)


class Requester:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: ResolvedOptions, transport: Transport, directory: Directory,
                 sites: SiteDirectory, sealing: ClientSealing) -> None:
        self.loop = loop
        #: What seals commands (`seal=True`) and opened their answers (protocol §3.6).
        self.sealing = sealing
        self.sites = sites
        self.options = options
        self.transport = transport
        self.directory = directory
        self.pending: dict[str, PendingRequest] = {}
        self._response_subscriptions: dict[str, dict[str, "asyncio.Future[None]"]] = {"main": {}, "realtime": {}}
        self.detector = FailureDetector(lambda handler: directory.get(handler))
        self.choice = HandlerChoice(directory, self.detector, sites)
        self.world = _World(self)
        self.ack_clock = AckClock(_BrokerHearing(self))
        self._sweep: Optional[asyncio.TimerHandle] = None
        self._giving_up = False
        directory.on_gone.append(self._on_gone)
        directory.on_change.append(self._on_change)
        directory.on_settled.append(self._on_settled)
        sites.on_change.append(self._on_sites_changed)

    def load_by_handler(self) -> dict[str, int]:
        load: dict[str, int] = {}
        for request in self.pending.values():
            assignee = request.assignee
            if assignee is not None:
                load[assignee] = load.get(assignee, 0) + 1
        return load

    def _on_gone(self, client_id: str, info: Any) -> None:
        now = _now_ms()
        for request in list(self.pending.values()):
            request.lifecycle.presence_gone(client_id, info, now)

    def _on_change(self, client_id: str, info: Any) -> None:
        self.detector.presence_changed(client_id, info)
        if info is None or info.get("status") != "alive":
            return
        now = _now_ms()
        for request in list(self.pending.values()):
            request.lifecycle.presence_back(client_id, info, now)

    def _on_sites_changed(self, _site: str) -> None:
        now = _now_ms()
        for request in list(self.pending.values()):
            request.lifecycle.sites_changed(now)

    def _on_settled(self) -> None:
        now = _now_ms()
        for request in list(self.pending.values()):
            request.lifecycle.directory_settled(now)

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    # ---- the waits for a first answer (protocol §4.7) ------------------------------------

    def await_first_answer(self, request: PendingRequest, wait: float, now: float) -> None:
        self.sweep_every(self.ack_clock.start(request, wait, now))

    def sweep_every(self, period_ms: Optional[float]) -> None:
        """(Re)arms the ack clock's sweep when it says so (a period in ms), else leaves it be."""
        if period_ms is None:
            return
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep = self.loop.call_later(period_ms / 1000, self._sweep_tick)

    def _sweep_tick(self) -> None:
        self._sweep = None
        if not self.ack_clock.tick(_now_ms()):
            return
        if self.ack_clock.expiring and not self._giving_up:
            # A wait ends only after what has arrived is read: the waits over are given up behind
            # the messages already handed to this loop (paho's thread queues them as callbacks).
            self._giving_up = True
            self.loop.call_soon(self._give_up)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.ack_clock.period / 1000, self._sweep_tick)

    def _give_up(self) -> None:
        self._giving_up = False
        self.ack_clock.give_up()

    # ---- the two ways to ask -------------------------------------------------------------

    async def request(self, action: str, payload: Any, **options: Any) -> Any:
        """Resolves with the final response's payload; raises a typed error. A bytes payload (either
        way) travels as a binary message and arrives as `bytes` (§3.5). A cancelled
        awaiting task sends the cancel (§4.4) and re-raises."""
        result: asyncio.Future[Any] = self.loop.create_future()
        # Read even when nobody awaits it any more (a cancelled caller): no "never retrieved" warning.
        result.add_done_callback(lambda f: f.cancelled() or f.exception())

        def on_result(value: Any) -> None:
            if not result.done():
                result.set_result(value)

        def fail(error: BaseException) -> None:
            if not result.done():
                result.set_exception(error)

        request = self._start(action, payload, options, _Sink(lambda step: None, on_result, fail))
        try:
            return await asyncio.shield(result)
        except asyncio.CancelledError:
            if request is not None:
                request.lifecycle.cancel(CancelledError(f"request to {action} cancelled by the caller"), "cancelled by the requester")
            raise

    async def call(self, action: str, payload: Any, **options: Any) -> AsyncIterator[Any]:
        """Yields each step: `accepted` (when the handler acknowledged, §4.7), progress, then the
        final one; an error response raises. Leaving early sends a cancel (§4.4)."""
        from .async_queue import AsyncQueue

        queue: AsyncQueue[Any] = AsyncQueue()

        def on_step(step: Any) -> None:
            queue.push(step)
            if getattr(step, "kind", None) == "final":
                queue.end()

        request = self._start(action, payload, options, _Sink(on_step, None, lambda error: queue.end(error)))
        try:
            async for step in queue:
                yield step
        finally:
            if request is not None and not request.lifecycle.ended:
                request.lifecycle.cancel(CancelledError(f"call to {action} stopped by its consumer"), "consumer stopped reading")

    # ---- starting one --------------------------------------------------------------------

    def _start(self, action: str, payload: Any, options: dict[str, Any], sink: _Sink) -> Optional[PendingRequest]:
        # Choosing a handler and noticing it gone need every presence (an on-demand directory starts following them, §7.2).
        self.directory.want()
        try:
            request = self._prepare(action, payload, options, sink)
        except BaseException as error:  # noqa: BLE001 - what makes it impossible fails it, nothing sent
            sink.fail(error)
            return None
        request.begin()
        subscribed = self._ensure_response_subscription(action, request.lane)
        if subscribed.done() and not subscribed.cancelled() and subscribed.exception() is None:
            request.lifecycle.subscribed()
        else:
            def done(future: "asyncio.Future[None]") -> None:
                if not future.cancelled() and future.exception() is None:
                    request.lifecycle.subscribed()
                else:
                    why = "cancelled" if future.cancelled() else str(future.exception())
                    request.lifecycle.fail(NotSentError(f"request to {action} not sent: subscribing to its responses failed: {why}"))
            subscribed.add_done_callback(done)
        return request

    def _prepare(self, action: str, payload: Any, options: dict[str, Any], sink: _Sink) -> PendingRequest:
        unknown = set(options) - {"timeout", "deadline", "ack_timeout", "target", "priority", "token", "check_handlers", "on_behalf_of",
                                   "wait_for_site", "seal"}
        if unknown:
            raise TypeError(f"unknown request option(s): {', '.join(sorted(unknown))}")
        timeout_s = options.get("timeout")
        timeout_s = self.options.timeout if timeout_s is None else timeout_s
        deadline = options.get("deadline")
        # A caller's deadline earlier than the time-out wins: nobody waits past it (§4.1).
        if deadline is not None:
            timeout_s = min(timeout_s, deadline - time.time())
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool):
            raise ValueError(f"timeout must be a number of seconds, got {timeout_s!r}")
        if timeout_s <= 0:
            raise TimeoutError(f"the deadline of the request to {action} has already passed; nothing was sent")
        ack_timeout = options.get("ack_timeout")
        ack_timeout = self.options.ack_timeout if ack_timeout is None else ack_timeout
        target = options.get("target")
        problem = check_path(action)
        if problem is None and target is not None and target != EVERYONE:
            problem = check_client_id(target)
        on_behalf_of = options.get("on_behalf_of")
        if problem is None and on_behalf_of is not None:
            problem = check_client_id(on_behalf_of)
        if problem:
            raise TypeError(problem)
        token = options.get("token") or new_token()
        if not isinstance(token, str) or not 1 <= len(token) <= 256:
            raise TypeError("token must be a string of 1 to 256 characters")
        # Two pending requests with one token would each take the other's responses.
        if token in self.pending:
            raise TypeError(f"token {token} is already used by a pending request; tokens must be unique")
        priority = options.get("priority") or "normal"
        check = options.get("check_handlers")
        wait_for_site = options.get("wait_for_site")
        if wait_for_site is not None and (isinstance(wait_for_site, bool) or not isinstance(wait_for_site, (int, float)) or wait_for_site < 0):
            raise ValueError(f"wait_for_site must be a number of seconds, 0 or more, got {wait_for_site!r}")
        # `seal_requests` is for the application's actions: the router and the built-in ones (`relais/...`) hold no sealing key.
        seal = options.get("seal")
        if seal is None:
            seal = self.sealing.requests_by_default and not is_system_action(action)
        plan = RequestPlan(
            action=action,
            payload=payload,
            token=token,
            priority=priority,
            lane=self.transport.lane_of(priority),
            timeout=timeout_s * 1000,
            ack_timeout=ack_timeout * 1000,
            target=target,
            check_handlers=self.options.check_handlers if check is None else bool(check),
            on_behalf_of=on_behalf_of,
            wait_for_site=wait_for_site * 1000 if wait_for_site is not None else None,
            seal=(lambda command: self._seal_command(command, action, target)) if seal else None,
        )
        return PendingRequest(self, plan, sink)

    def _seal_command(self, command: dict, action: str, target: Optional[str]) -> dict:
        """A command sealed for its handler (protocol §3.6): the target's identity; else the handler
        it goes to, and every identity the directory says serves the action that has a key, so that
        a retry elsewhere (§4.7) reaches a handler that can open it; and this client's own identity
        when it has a key, so that it reads its own command in the history (§11.2)."""
        me = self.options.id
        if target is not None and target != EVERYONE:
            return self.sealing.seal(command, [target], [me])
        destination = command.get("destination")
        return self.sealing.seal(command, [] if destination == EVERYONE else [destination], [*sorted(self.directory.providers(action)), me])

    def _ensure_response_subscription(self, action: str, lane: str) -> "asyncio.Future[None]":
        known = self._response_subscriptions[lane]
        existing = known.get(action)
        if existing is not None and not (existing.done() and (existing.cancelled() or existing.exception() is not None)):
            return existing
        future = self.transport.subscribe(response_topic(action, self.options.id), lane)
        known[action] = future
        return future

    # ---- what arrives --------------------------------------------------------------------

    def on_response(self, envelope: dict, lane: str) -> None:
        token = envelope.get("token")
        request = self.pending.get(token) if isinstance(token, str) else None
        if request is None:
            log.debug("response for no pending request (late, or answered already): token %s from %s", token, envelope.get("source"))
            return
        # A sealed command's answers come sealed (protocol §3.6): a plaintext one is not its handler's.
        if request.sealed and envelope.get("seal") is None and envelope.get("error") is None and envelope.get("accepted") is not True:
            log.warning("answer to a sealed request came unsealed: refused (token %s, from %s)", token, envelope.get("source"))
            request.lifecycle.fail(SealingError(f"the answer of {envelope.get('source')} to the sealed request {token} came unsealed: "
                                                "refused (protocol §3.6)"))
            return
        request.lifecycle.response(envelope, lane, _now_ms())

    def on_unopened_response(self, envelope: dict, why: str) -> None:
        """A sealed answer for us that did not open (protocol §3.6): its request fails, nothing else could read it."""
        token = envelope.get("token")
        request = self.pending.get(token) if isinstance(token, str) else None
        if request is not None:
            request.lifecycle.fail(SealingError(f"the sealed answer of {envelope.get('source')} to request {token} did not open: {why}"))

    def on_disconnected(self, lane: str) -> None:
        for request in list(self.pending.values()):
            if request.lane == lane:
                request.lifecycle.disconnected()

    def on_reconnected(self, lane: str) -> None:
        """A lane is back: once its response subscriptions are made again, what may have been lost is sent again."""
        for request in list(self.pending.values()):
            if request.lane != lane:
                continue
            future = self.transport.subscribe(response_topic(request.action, self.options.id), lane)

            def done(f: "asyncio.Future[None]", request: PendingRequest = request) -> None:
                if not f.cancelled() and f.exception() is None:
                    request.lifecycle.reconnected()
            future.add_done_callback(done)

    def fail_all(self, make_error: Callable[[], BaseException]) -> None:
        for request in list(self.pending.values()):
            request.lifecycle.fail(make_error())
