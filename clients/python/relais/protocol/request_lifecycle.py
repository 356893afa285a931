"""The life of one request on the requesting side, from the command to its end (protocol §4.1,
§4.3-§4.7, §7.3), as a state machine.

Ports ``src/protocol/request-lifecycle.ts`` event for event. Events in (the method calls:
written, a response, a timer that fired, a presence that changed, the directory settled, a
cancel...), effects out (the ``RequestEffects`` it is given: write the command, wait for an
answer, yield a step, settle, send a cancel, suspect a handler). It reads the world around it
through ``RequestWorld`` and is told the time with each event (epoch ms): no timer, no socket,
no clock, no asyncio. The runtime's pending request is a thin shell around it.

Every request ends exactly once (one ``succeeded`` or ``failed``), yields each handler's
``accepted`` step once, and is moved to another handler once at most, and never after it was
taken. Late is never taken for gone: a handler that does not answer within its wait is
suspected, and the request moves once to a provider that is not, or goes on waiting for it (its
own time-out ends it). Only the handler's presence says it is gone (§7.3): ``stopped``, its will
(then ``reconnect_grace`` to come back), or another instance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

from .envelope import encode_message
from .errors import HandlerGoneError, NoHandlerError, RelaisError, ResponseCode, SiteUnreachableError, TimeoutError, from_wire
from .messages import command_message, restamp_accept_by
from .topics import request_topic

#: How many handlers a request the library chose a handler for is offered to, at most (protocol §4.7).
MAX_OFFERS = 2

#: Which MQTT connection of a client carries a subscription or a message (protocol §6.2).
LANES: tuple[str, ...] = ("main", "realtime")


def js_round(value: float) -> int:
    """``Math.round``: halves go up (Python's ``round`` goes to the even one)."""
    return math.floor(value + 0.5)


def _ms(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Step:
    """One step of a streamed call (protocol §4.3, §4.7): ``accepted`` (the handler ``source``
    took the command), then ``progress`` steps, then the ``final`` one (``payload``, ``code``)."""

    kind: str
    source: str
    token: str
    progress: Optional[float] = None
    payload: Any = None
    code: Optional[int] = None


@dataclass
class RequestPlan:
    """What a request is, checked (protocol §4.1). Times in ms.

    ``target``: an id, ``*`` for every provider, or None to let the library pick one (§4.6).
    ``lane``: the lane of its priority, where its answers come (§6.2). ``check_handlers``: fail
    fast when the directory knows nobody who serves it (§7.3). ``wait_for_site``: how long
    (within ``timeout``) a request whose handler is on a site whose link is down waits for it
    to come back (§13.4); 0 or None: it fails at once.
    """

    action: str
    payload: Any
    token: str
    priority: str
    lane: str
    timeout: float
    ack_timeout: float
    target: Optional[str]
    check_handlers: bool
    on_behalf_of: Optional[str] = None
    wait_for_site: Optional[float] = None
    #: Seals the command's envelope (protocol §3.6), called at each encoding: a command moved to
    #: another handler is sealed again for it. Raises what makes it impossible (no key).
    seal: Optional[Callable[[dict], dict]] = None


@runtime_checkable
class RequestWorld(Protocol):
    """What the request reads of the requester around it. Queries only: nothing here has an effect.

    ``self_id``: this client's id (the command's ``source``); ``reconnect_grace`` (ms) how long a
    handler whose connection was lost has to come back (§4.7); ``directory_settled`` (§7.2).
    An optional ``unreachable(handler) -> SiteUnreachableError | None`` says a handler is on a
    site whose link is down (§13.4).
    """

    self_id: str
    max_message_bytes: float
    reconnect_grace: float
    directory_settled: bool

    def presence(self, handler: str) -> Optional[dict]:
        """The presence (a parsed dict, §7.1) the directory holds for ``handler``."""

    def has_provider(self, action: str) -> bool:
        """Whether some alive client announces ``action``."""

    def missing(self, action: str, target: Optional[str]) -> Optional[NoHandlerError]:
        """Why nobody takes a command for ``action`` (at ``target``), or None when someone does (§7.3)."""

    def pick(self, action: str, exclude: Optional[set[str]], unsuspected_only: bool = False) -> Optional[str]:
        """The provider of ``action`` to offer it to, outside ``exclude`` (§4.6)."""

    def ack_deadline(self, handler: str, ack_timeout: float, misses: int = 0) -> float:
        """How long (ms) to wait for ``handler``'s first answer, after ``misses`` waits in vain (§4.7)."""


@runtime_checkable
class RequestEffects(Protocol):
    """What the request asks of its shell. Each is an effect; none calls back into the request
    (but ``write``, which reads ``command_text(now)`` and calls ``was_written``). An optional
    ``arm_site_wait(ms)`` arms the wait for a site (§13.4): ``site_wait_over()`` then."""

    def arm_deadline(self, ms: float) -> None:
        """Arm the request's own time-out: ``timed_out()`` in ``ms``."""

    def write(self) -> None:
        """Hand the command to the transport (again): its text is ``command_text(now)``, then
        ``was_written(now, lane_up)``. Raises (``NotSentError``) when it cannot: the request fails with it."""

    def await_answer(self, wait: float, now: float) -> None:
        """Wait ``wait`` ms from ``now`` for the first answer: ``ack_halfway()`` half-way, ``ack_expired(now)`` at the end."""

    def stop_awaiting_answer(self) -> None: ...

    def arm_grace(self, ms: float) -> None:
        """The handler has ``ms`` to come back (§4.7): ``grace_over()`` then."""

    def clear_grace(self) -> None: ...

    def send_cancel(self, destination: str, reason: str) -> None:
        """Publish a cancel for the command (§4.4); best effort."""

    def step(self, step: Step) -> None:
        """Yield a step that is not the final one."""

    def succeeded(self, payload: Any, code: int, source: str) -> None: ...

    def failed(self, error: BaseException) -> None: ...

    def suspect(self, handler: str, waited: float) -> None:
        """``handler`` gave no first answer within ``waited`` ms (§4.7)."""

    def answered(self, handler: str, rtt: float) -> None:
        """``handler`` gave its first answer ``rtt`` ms after the command was first written to it."""

    def log(self, level: str, fields: dict, message: str) -> None: ...


class RequestLifecycle:
    """One request's state machine (protocol §4.1, §4.3-§4.7). Construct it (it raises what
    makes the request impossible), then ``start()``, ``subscribed()``, and feed it events."""

    def __init__(self, plan: RequestPlan, world: RequestWorld, effects: RequestEffects, now: float) -> None:
        """The request, its handler chosen and its command encoded, at ``now`` (epoch ms).

        Raises before anything is sent: ``NoHandlerError`` when the settled directory knows
        nobody who takes it (with ``check_handlers``), ``SiteUnreachableError`` (§13.4),
        ``TypeError`` or ``PayloadTooLargeError`` for its payload.
        """
        self._plan = plan
        self._world = world
        self._effects = effects
        self.token = plan.token
        self.action = plan.action
        self.lane = plan.lane
        self.priority = plan.priority
        #: Epoch ms after which nobody waits for it (protocol §4.5).
        self.deadline = now + plan.timeout
        #: Where the command goes: targeted at the assignee, or untargeted.
        self.topic = ""
        self._assignee: Optional[str] = None
        self._responder: Optional[str] = None
        self._awaiting_directory = False
        self._waiting_for_provider = False
        self._site_blocked: Optional[SiteUnreachableError] = None
        self._ready = False
        self._picked = plan.target is None
        self._previous: Optional[set[str]] = None
        self._assignee_instance: Any = None
        #: Written to a target the directory did not know yet (protocol §7.2): at QoS 1, without
        #: acknowledgements, perhaps before the target subscribed. Offered again once its presence
        #: announces the action, if it acknowledges (its memory of tokens, §4.8, makes a copy harmless).
        self._sent_blind = False
        self._acks = False
        self._accepted = False
        self._accepted_by: Optional[set[str]] = None
        self._status_asked = False
        self._handed = False
        self._written = False
        self._finished = False
        self._text = ""
        self._accept_by: Optional[int] = None
        self._offered_again = False
        self._ack_wait: float = 0
        self._misses = 0
        self._offered_at: float = 0
        self._grace_reason: Optional[str] = None
        self._mode = "offer"

        self._assign(world.pick(plan.action, None) if self._picked else None if plan.target == "*" else plan.target)
        # A handler on a site whose link is down cannot get it (protocol §13.4).
        unreachable = None if self._assignee is None else self._unreachable(self._assignee)
        if unreachable:
            if not (plan.wait_for_site or 0) > 0:
                raise unreachable
            self._site_blocked = unreachable
        elif self._picked and self._assignee is None and not world.directory_settled:
            # Sent untargeted, it would run on every handler (protocol §4.6): it waits for one to be known.
            self._waiting_for_provider = True
        elif plan.check_handlers:
            missing = world.missing(plan.action, self._assignee)
            # Once settled the directory is trusted; while it loads a targeted command goes anyway, judged at settle time.
            if missing and world.directory_settled:
                raise missing
            self._awaiting_directory = missing is not None
        self._encode(now)

    # --- what the shell reads ---

    @property
    def assignee(self) -> Optional[str]:
        """The handler the command went to; None when sent untargeted, or not sent yet."""
        return self._assignee

    @property
    def ended(self) -> bool:
        return self._finished

    @property
    def qos(self) -> int:
        """QoS 0 to a handler that acknowledges, 1 otherwise (protocol §1.3)."""
        return 0 if self._acks else 1

    def command_text(self, now: float) -> Union[str, bytes]:
        """The command's wire text for a write at ``now`` (ms). To a handler that acknowledges, a
        first offer carries ``acceptBy`` = now + 3/4 of its wait; a retry half-way, the same;
        once taken, ``acceptBy`` 0, a status query (protocol §4.7)."""
        if not self._acks:
            return self._text
        wanted = 0 if self._accepted else self._accept_by if self._mode == "retry" else self._accept_by_from(now)
        if wanted == 0:
            self._status_asked = True
        # Renewed only when it carries another acceptBy: not on a first write, made within the
        # millisecond of its encoding.
        current = self._accept_by
        if wanted != current and not (wanted > 0 and current > 0 and wanted - current <= 2):
            self._text = restamp_accept_by(self._text, wanted)
            self._accept_by = wanted
        return self._text

    # --- events ---

    def start(self) -> None:
        """Event: the request is registered; its own time-out starts."""
        self._effects.arm_deadline(self._plan.timeout)
        if not self._site_blocked:
            return
        site_wait = self._plan.wait_for_site or 0
        if site_wait < self._plan.timeout:
            arm = getattr(self._effects, "arm_site_wait", None)
            if arm is not None:
                arm(site_wait)
        self._effects.log("info", {"action": self.action, "token": self.token, "handler": self._assignee, "waitMs": min(site_wait, self._plan.timeout)},
                          f"request waits for its handler's site to come back: {self._site_blocked.message}")

    def subscribed(self) -> None:
        """Event: the response subscription is in place (protocol §4.1 step 5): the command can go."""
        if self._finished or self._ready:
            return
        self._ready = True
        if not self._waiting_for_provider and not self._site_blocked:
            self._send("offer")

    def was_written(self, now: float, lane_up: bool) -> None:
        """Event: the command was written to a connection at ``now``. Its answers come on its
        lane: the wait for an answer starts only with the lane up (``reconnected()`` otherwise)."""
        self._written = True
        if self._mode == "offer" and self._acks and not self._accepted and lane_up:
            if self._offered_at == 0:
                self._offered_at = now
            self._effects.await_answer(self._ack_wait, now)

    def ack_halfway(self) -> None:
        """Event: half-way through the wait, the command is written once more (a QoS 0 copy may be lost, §4.7)."""
        self._send("retry")

    def ack_expired(self, now: float) -> None:
        """Event: no first answer within the handler's wait (protocol §4.7). One whose presence
        says it is away has ``reconnect_grace`` to come back; one still alive is suspected: the
        request moves once to a provider that is not, or goes on waiting for it."""
        if self._finished or self._accepted or self._assignee is None:
            return
        handler = self._assignee
        if not self._is_alive(handler):
            # Its connection was lost (its will): it may have taken the command just before, its
            # acknowledgement lost with the connection. Its return within `reconnect_grace` says
            # (asked again, §4.8), or the end of that wait moves the command: not its silence here.
            if self._grace_reason is not None:
                return
            following = self._alternative(False)
            if following is not None:
                self._move_to(following, "lost its connection before taking it", now)
            return
        self._effects.suspect(handler, self._ack_wait)
        self._misses += 1
        following = self._alternative(True)
        if following is not None:
            return self._move_to(following, f"did not answer within {js_round(self._ack_wait)} ms (busy, stopped or unreachable)", now)
        self._offer_again(now)

    def response(self, envelope: dict, lane: str, now: float) -> bool:
        """Event: a response with our token arrived on ``lane`` (protocol §4.3). Returns whether
        it was taken as a step of this request; a copy on the other connection is not (§6.2)."""
        # Before the command was handed over nobody can answer it: an earlier request's token, or forged.
        if self._finished or lane != self.lane or not self._handed:
            return False
        source = envelope.get("source")
        # Only the handler the command went to answers it; another one is late, or forged.
        if self._assignee is not None and source != self._assignee:
            self._effects.log("debug", {"token": self.token, "source": source, "assignee": self._assignee},
                              "response from another client than the one the request went to; ignored")
            return False
        code = envelope.get("code")
        code = ResponseCode.OK if code is None else code
        final = envelope.get("final")
        if final is not False and code != ResponseCode.OK and envelope.get("accepted") is False and self._acks:
            # It did not run it: it came after its acceptance deadline, or, asked after a lost
            # connection, it no longer knows the command (restarted, or forgot it; §4.7).
            if not self._accepted:
                self._refused(envelope, code, now)
            elif self._status_asked:
                self.fail(HandlerGoneError(f"handler {source} of {self.action} no longer knows the request (restarted, or forgot it): {_error_message(envelope)}"))
            else:
                self._effects.log("debug", {"action": self.action, "token": self.token, "handler": source},
                                  "a copy of the request refused after it was taken; ignored")
            return False
        self._heard_from(source, now)
        if final is False:
            progress = envelope.get("progress")
            if envelope.get("accepted") is True:
                # A repeated acknowledgement (the answer to a command written again, §4.8) says nothing new.
                if self._accepted_by is not None and source in self._accepted_by:
                    return True
                if self._accepted_by is None:
                    self._accepted_by = set()
                self._accepted_by.add(source)
                self._effects.step(Step("accepted", source, self.token, progress=progress))
            else:
                self._effects.step(Step("progress", source, self.token, progress=progress, payload=envelope.get("payload")))
        elif code == ResponseCode.OK:
            self._finished = True
            self._effects.succeeded(envelope.get("payload"), code, source)
        else:
            self.fail(from_wire(envelope.get("error"), code, source, envelope.get("payload")))
        return True

    def presence_back(self, client_id: str, info: dict, now: float) -> None:
        """Event: ``client_id`` is alive again (or anew), or appeared; ``info`` its presence."""
        if self._finished:
            return
        # Another provider, not on a down site, may take a request the library chose the handler of.
        if self._site_blocked:
            if self._picked:
                self.sites_changed(now)
            return
        if self._waiting_for_provider:
            following = self._world.pick(self.action, None)
            if following is not None:
                self._offer_first(following, now)
            return
        if client_id != self._assignee:
            return
        if self._sent_blind:
            # The target appears: the copy sent before may have reached nobody, and nothing would send it again.
            if info.get("acks") is not True or self._responder is not None or self._accepted:
                self._sent_blind = False
                return
            # Once it announces the action: it subscribes before it announces (protocol §7.4).
            if self._world.missing(self.action, client_id) is not None:
                return
            self._sent_blind = False
            # Not written yet (its response subscription on its way): _send waits for it, and that first write takes the new text.
            return self._offer_first(client_id, now)
        if self._assignee_instance is not None and info.get("instance") != self._assignee_instance:
            # Another instance: what the one we offered it to had taken is lost with it.
            following = None if self._accepted else self._alternative(False)
            if following is not None:
                return self._move_to(following, "restarted before taking it", now)
            return self.fail(HandlerGoneError(f"handler {client_id} of {self.action} restarted before answering"))
        # Our handler back from a lost connection: ask what became of the command.
        if self._grace_reason is not None:
            self._reoffer()

    def presence_gone(self, client_id: str, info: Optional[dict], now: float) -> None:
        """Event: ``client_id`` left ``alive`` (stopped, dead, or forgotten when ``info`` is None). protocol §7.3"""
        if self._finished or self._waiting_for_provider or self._site_blocked:
            return
        handler = self._assignee if self._assignee is not None else self._responder
        if handler is None:
            # Sent untargeted to nobody known: it fails when no provider is left.
            if not self._awaiting_directory and not self._world.has_provider(self.action):
                self.fail(HandlerGoneError(f"handler {client_id} of {self.action} disconnected before answering"))
            return
        if client_id != handler:
            return
        stopped = info is not None and info.get("status") == "stopped"
        if not self._acks or stopped:
            # A handler that left cleanly answered what it had taken; one that does not acknowledge cannot be asked again.
            following = self._alternative(False) if self._acks and not self._accepted else None
            if following is not None:
                return self._move_to(following, "stopped before taking it", now)
            return self.fail(HandlerGoneError(f"handler {client_id} of {self.action} {'stopped' if stopped else 'disconnected'} before answering"))
        # Dead or forgotten: its connection may come back within `reconnect_grace`. Before it took
        # the command, the end of its wait moves it to another provider if there is one.
        grace = _ms(self._world.reconnect_grace)
        self._await_return(f"lost its connection and did not come back within {grace} ms" if self._accepted
                           else f"lost its connection before taking the request and did not come back within {grace} ms")

    def grace_over(self, now: float) -> None:
        """Event: the handler's ``reconnect_grace`` passed without its return: moved if it had
        not taken it and another can, else ``HandlerGoneError``."""
        if self._finished or self._grace_reason is None:
            return
        following = None if self._accepted else self._alternative(False)
        if following is not None:
            return self._move_to(following, self._grace_reason, now)
        self.fail(HandlerGoneError(f"handler {self._assignee} of {self.action} {self._grace_reason}"))

    def disconnected(self) -> None:
        """Event: our connection for this request dropped: nothing can come back, the wait for an answer is off."""
        self._effects.stop_awaiting_answer()

    def reconnected(self) -> None:
        """Event: our connection is back and its response subscription made again: what may have been lost is sent again (§4.7)."""
        if self._finished or not self._written or not self._acks:
            return
        if self._accepted:
            self._await_return(f"did not answer within {_ms(self._world.reconnect_grace)} ms after the connection came back")
        self._reoffer()

    def directory_settled(self, now: float) -> None:
        """Event: the directory has settled (protocol §7.2)."""
        if self._finished or self._site_blocked:
            return
        if self._waiting_for_provider:
            following = self._world.pick(self.action, None)
            if following is not None:
                return self._offer_first(following, now)
            if self._plan.check_handlers:
                return self.fail(self._world.missing(self.action, None) or NoHandlerError(f"no connected client serves {self.action}"))
            # Peers that publish no presence (check_handlers off) are reached untargeted (§4.6).
            self._waiting_for_provider = False
            if self._ready:
                self._send("offer")
            return
        if not self._awaiting_directory:
            return
        self._awaiting_directory = False
        if self._responder is not None:
            return
        error = self._world.missing(self.action, self._assignee) if self._plan.check_handlers else None
        if error:
            self.cancel(error, "no handler")

    def sites_changed(self, now: float) -> None:
        """Event: a site's link status or roster changed (protocol §13.4): a request waiting for
        its handler's site goes once it is up, or (handler chosen by the library) to a provider
        that can be reached."""
        if self._finished or not self._site_blocked:
            return
        following = self._world.pick(self.action, None) if self._picked else self._assignee
        if following is None:
            return
        unreachable = self._unreachable(following)
        if unreachable:
            self._site_blocked = unreachable
            return
        self._site_blocked = None
        missing = self._world.missing(self.action, following) if self._plan.check_handlers and self._world.directory_settled else None
        if missing:
            return self.fail(missing)
        # The handler it waited for was never offered it: it does not count among the offers (MAX_OFFERS).
        self._assignee = None
        self._offer_first(following, now)

    def site_wait_over(self) -> None:
        """Event: the request's ``wait_for_site`` passed with its handler's site still down: it fails, nothing was sent."""
        if self._finished or not self._site_blocked:
            return
        self.fail(self._site_blocked)

    def timed_out(self) -> None:
        """Event: the request's own time-out fired (protocol §4.5)."""
        if self._finished:
            return
        # Its whole time-out spent waiting for a site: the site is why.
        if self._site_blocked:
            return self.fail(self._site_blocked)
        timeout = _ms(self._plan.timeout)
        why = (f"no handler of {self.action} appeared within {timeout} ms; nothing was sent" if self._waiting_for_provider
               else f"no final response to {self.action} within {timeout} ms")
        self.cancel(TimeoutError(why), "requester time-out")

    def cancel(self, error: RelaisError, reason: str) -> None:
        """Event: the caller gives up: fails with ``error``, and tells the handler to stop (protocol §4.4)."""
        if self._finished:
            return
        # Never handed over, no handler has it: nothing to cancel.
        if self._handed:
            destination = self._responder if self._responder is not None else self._assignee if self._assignee is not None else "*"
            self._effects.send_cancel(destination, reason)
        self.fail(error)

    def fail(self, error: BaseException) -> None:
        """Event: the request cannot go on (never written, the client closing...): it fails with ``error``."""
        if self._finished:
            return
        self._finished = True
        self._effects.failed(error)

    # --- inside ---

    def _unreachable(self, handler: str) -> Optional[SiteUnreachableError]:
        check = getattr(self._world, "unreachable", None)
        return check(handler) if check is not None else None

    def _assign(self, handler: Optional[str]) -> None:
        if self._assignee is not None and handler != self._assignee:
            if self._previous is None:
                self._previous = set()
            self._previous.add(self._assignee)
        self._assignee = handler
        self.topic = request_topic(self.action, handler)
        info = None if handler is None else self._world.presence(handler)
        self._acks = info is not None and info.get("acks") is True and info.get("status") == "alive"
        self._assignee_instance = None if info is None else info.get("instance")
        self._sent_blind = handler is not None and info is None
        self._offered_at = 0
        self._misses = 0
        self._offered_again = False

    def _encode(self, now: float) -> None:
        """The command's wire text, checked (JSON, size); raises what makes it impossible."""
        if self._acks:
            self._ack_wait = self._world.ack_deadline(self._assignee, self._plan.ack_timeout)
        self._accept_by = self._accept_by_from(now) if self._acks else None
        envelope = command_message(
            source=self._world.self_id,
            destination=self._assignee if self._assignee is not None else "*",
            token=self.token,
            payload=self._plan.payload,
            priority=self.priority,
            deadline=_wire_int(self.deadline),
            accept_by=self._accept_by,
            on_behalf_of=self._plan.on_behalf_of,
        )
        if self._plan.seal is not None:
            envelope = self._plan.seal(envelope)
        self._text = encode_message(envelope, self._world.max_message_bytes, lambda: f"the request to {self.action}")

    def _accept_by_from(self, now: float) -> int:
        """When a handler must have taken the command written at ``now``: the last quarter of the wait is for its acknowledgement to travel back."""
        return js_round(now + self._ack_wait * 3 / 4)

    def _send(self, mode: str) -> None:
        """Writes the command (again), protocol §4.7: an offer, a retry half-way with the same
        ``acceptBy``, or once accepted a status query (``acceptBy`` 0)."""
        if self._finished or not self._ready:
            return
        self._mode = mode
        self._handed = True
        try:
            self._effects.write()
        except Exception as error:  # noqa: BLE001 - whatever the transport raises ends the request
            self.fail(error)

    def _offer_first(self, handler: str, now: float) -> None:
        """A provider is known at last for a request that waited for one, or a target unknown when it was sent: an offer as to any known handler."""
        self._waiting_for_provider = False
        self._assign(handler)
        try:
            self._encode(now)
        except Exception as error:  # noqa: BLE001
            return self.fail(error)
        self._send("offer")

    def _refused(self, envelope: dict, code: int, now: float) -> None:
        """The handler refused the command as arriving after its acceptBy (§4.7): it never ran there."""
        if not self._offered_again and now < self._accept_by:
            # The only acceptBy we sent it has not passed by our clock: its clock is ahead of ours.
            following = self._alternative(False)
            if following is not None:
                return self._move_to(following, f"refused it before its acceptance deadline (check that the clocks agree): {_error_message(envelope)}", now)
            return self.fail(from_wire(envelope.get("error"), code, envelope.get("source"), envelope.get("payload")))
        if now < self._accept_by:
            self._effects.log("debug", {"action": self.action, "token": self.token, "handler": envelope.get("source")},
                              "an earlier copy of the request was refused as late; a later one may still be taken")
            return
        # Alive but slow: the time it took teaches its wait, and it is offered again.
        if self._offered_at != 0:
            self._effects.answered(envelope.get("source"), now - self._offered_at)
        following = self._alternative(True)
        if following is not None:
            return self._move_to(following, f"took it after its acceptance deadline: {_error_message(envelope)}", now)
        self._offer_again(now)

    def _alternative(self, unsuspected_only: bool) -> Optional[str]:
        """Another provider for a request the library chose the handler of, not offered it yet,
        while it has been offered to fewer than MAX_OFFERS; not suspected when ``unsuspected_only``."""
        if not self._picked or 1 + (len(self._previous) if self._previous else 0) >= MAX_OFFERS:
            return None
        exclude = set(self._previous or ())
        exclude.add(self._assignee)
        following = self._world.pick(self.action, exclude, unsuspected_only)
        # Never moved to a client of a site whose link is down (§13.4): it would not get it.
        return None if following is not None and self._unreachable(following) else following

    def _move_to(self, following: str, why: str, now: float) -> None:
        """Offers the command to ``following`` instead (same token, a new acceptBy)."""
        origin = self._assignee
        self._effects.log("info", {"action": self.action, "token": self.token, "from": origin, "to": following},
                          f"request sent to another handler: {origin} {why}")
        self._effects.stop_awaiting_answer()
        self._clear_grace()
        self._assign(following)
        try:
            self._encode(now)
        except Exception as error:  # noqa: BLE001
            return self.fail(error)
        self._send("offer")

    def _offer_again(self, _now: float) -> None:
        """The same handler is offered the command again with a new acceptBy, and its (longer) wait."""
        self._offered_again = True
        self._ack_wait = self._world.ack_deadline(self._assignee, self._plan.ack_timeout, self._misses)
        self._effects.log("debug", {"action": self.action, "token": self.token, "handler": self._assignee, "waitMs": js_round(self._ack_wait)},
                          "request offered again to its handler")
        self._send("offer")

    def _reoffer(self) -> None:
        """After a lost connection: a status query when it had taken the command, else a new
        offer; its round trip is measured afresh (the outage is not its latency)."""
        if not self._accepted:
            self._offered_again = True
            self._offered_at = 0
            self._misses = 0
            self._ack_wait = self._world.ack_deadline(self._assignee, self._plan.ack_timeout)
        self._send("offer")

    def _is_alive(self, handler: str) -> bool:
        """The handler, by its presence: alive, and the instance the command was offered to."""
        info = self._world.presence(handler)
        return (info is not None and info.get("status") == "alive"
                and (self._assignee_instance is None or info.get("instance") == self._assignee_instance))

    def _heard_from(self, source: str, now: float) -> None:
        if self._responder is None:
            self._responder = source
        if self._assignee is None:
            return
        # Its first answer: the round trip that teaches its wait (and lifts a suspicion).
        if not self._accepted and self._offered_at != 0:
            self._effects.answered(source, now - self._offered_at)
        self._accepted = True
        self._effects.stop_awaiting_answer()
        self._clear_grace()

    def _await_return(self, why: str) -> None:
        if self._grace_reason is not None:
            return
        self._grace_reason = why
        self._effects.arm_grace(self._world.reconnect_grace)

    def _clear_grace(self) -> None:
        if self._grace_reason is None:
            return
        self._grace_reason = None
        self._effects.clear_grace()


def _error_message(envelope: dict) -> str:
    error = envelope.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return message if message is not None else "refused"


def _wire_int(value: float) -> int:
    """An epoch-ms time as the wire's integer (``deadline`` is one, §3.1), whatever the caller's ``now``."""
    return js_round(value)
