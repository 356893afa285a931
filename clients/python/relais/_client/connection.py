"""One MQTT connection (a lane, protocol §6.2), a port of `src/client/connection/connection.ts`
and `held-subscriptions.ts`: its thread running paho's loop, its reconnection with jittered
exponential back-off moving to the next broker of the list at each attempt (protocol §1.1,
§1.3), the subscriptions it holds (made again at every reconnection), and acknowledged
publishes (presence). Knows nothing of envelopes.

Every paho callback hops onto the asyncio loop (`call_soon_threadsafe`); the state below is
only touched there, except the few fields the loop thread owns (marked).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..protocol.errors import NotAuthorizedError, NotSentError
from ..protocol.topics import BROKER_PROBE_FILTER
from .options import ResolvedOptions
from .paho_adapter import MAX_STRIKES, SUBACK_FAILURE, Endpoint, PahoLink
from .reconnect import ReconnectSchedule

log = logging.getLogger("relais.connection")

#: How long `close()` waits for the broker to acknowledge what is in flight.
CLOSE_GRACE_S = 2.0


@dataclass
class _Held:
    qos: int
    confirmed: bool = False
    #: Drops of the connection while its SUBSCRIBE was the only one unanswered (protocol §1.4).
    strikes: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class ConnectionHooks:
    """What a connection tells its transport (on the asyncio loop)."""

    def message(self, topic: str, payload: bytes, retained: bool, qos: int) -> None: ...
    def connected(self, reconnected: bool) -> None: ...
    def disconnected(self) -> None: ...


class Connection:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: ResolvedOptions, client_id: str, lane: str,
                 will: Optional[tuple[str, str]], hooks: ConnectionHooks) -> None:
        self.loop = loop
        self.options = options
        self.client_id = client_id
        self.lane = lane
        self.hooks = hooks
        self.endpoints: list[Endpoint] = options.endpoints
        self._index = 0
        first = self.endpoints[0]
        tls = {"ca": options.ca, "cert": options.cert, "key": options.key} if first.tls else None
        self._link = PahoLink(client_id, first.transport, options.keepalive, will, options.username, options.password,
                              tls, first.path, options.connect_timeout)
        self._link.on_connect = self._thread_connack
        self._link.on_disconnect = lambda: self._hop(self._on_down)
        self._link.on_message = lambda t, p, r, q: self._hop(hooks.message, t, p, r, q)
        self._link.on_publish = lambda mid: self._hop(self._on_puback, mid)
        self._link.on_subscribe = lambda mid, codes: self._hop(self._on_suback, mid, codes)
        self._link.on_unsubscribe = lambda mid: self._hop(self._on_unsuback, mid)
        self._schedule = ReconnectSchedule(options.reconnect_delay, options.reconnect_max_delay)
        # asyncio side
        self.up = False
        self._ever_connected = False
        self._closing = False
        self._held: dict[str, _Held] = {}
        self._suback_waits: dict[int, str] = {}
        # protocol §1.4: after a drop with SUBSCRIBEs unanswered, they are made one at a time, so
        # that a drop then names the filter the broker refuses.
        self._careful = False
        self._waiting: list[str] = []
        self._unsuback_waits: dict[int, asyncio.Future[None]] = {}
        self._probe_waits: dict[int, asyncio.Future[None]] = {}
        self._puback_waits: dict[int, asyncio.Future[None]] = {}
        self._first: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[None] = loop.create_future()
        # loop-thread side
        self._stop = threading.Event()
        self._connack_code: Optional[int] = None
        self._thread = threading.Thread(target=self._run, name=f"relais-{lane}-{client_id}", daemon=True)

    # ---- the loop thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _hop(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the event loop is closed: nobody listens any more

    def _thread_connack(self, code: int) -> None:
        self._connack_code = code
        if code == 0:
            self._schedule.connected()
            self._hop(self._on_up)

    @property
    def broker_label(self) -> str:
        return self.endpoints[self._index].label

    def _run(self) -> None:
        failures: list[str] = []
        ever = False
        while not self._stop.is_set():
            endpoint = self.endpoints[self._index]
            self._connack_code = None
            why: Optional[str] = None
            try:
                self._link.open(endpoint)
            except Exception as error:  # noqa: BLE001 - any socket or TLS failure is an attempt that failed
                why = str(error) or type(error).__name__
            if why is None:
                connack_by = time.monotonic() + self.options.connect_timeout
                while not self._stop.is_set():
                    if not self._link.loop_once(0.2):
                        break
                    if self._connack_code is None and time.monotonic() > connack_by:
                        why = f"no answer within {self.options.connect_timeout * 1000:.0f} ms"
                        self._link.drop()
                if self._connack_code == 0:
                    ever = True
                    failures.clear()
                    culprit = None if self._stop.is_set() else self._link.strike_oldest_unacknowledged()
                    if culprit is not None:
                        log.warning("the broker dropped the connection %d times while a message on %s was unacknowledged: it "
                                    "is given up so that it cannot keep the client off the broker (a topic, size or permission "
                                    "the broker refuses?)", MAX_STRIKES, culprit, extra={"lane": self.lane, "topic": culprit})
                    dropped_young = self._schedule.dropped()
                    if dropped_young and not self._stop.is_set():
                        log.warning("the broker dropped this connection right after accepting it 3 times: another client is "
                                    "probably using the id %s; reconnecting more slowly", self.client_id, extra={"lane": self.lane})
                elif why is None:
                    code = self._connack_code
                    why = "connection closed before CONNACK" if code is None else f"CONNACK refused (return code {code})"
                    if code in (4, 5):
                        error = NotAuthorizedError(f"cannot connect to the broker at {endpoint.label}: {why}", details={"returnCode": code})
                        if not ever:
                            self._hop(self._settle_first, error)
                            return
            if self._stop.is_set():
                break
            if not ever:
                failures.append(f"{endpoint.label} ({why})")
                if len(failures) >= len(self.endpoints):
                    if len(failures) == 1:
                        message = f"cannot connect to the broker at {failures[0].replace(' (', ': ', 1)[:-1]}"
                    else:
                        message = f"cannot connect to any of the {len(failures)} brokers: {'; '.join(failures)}"
                    self._hop(self._settle_first, NotSentError(message))
                    return
                self._index = (self._index + 1) % len(self.endpoints)
                continue
            delay = self._schedule.next_delay()
            if len(self.endpoints) > 1:
                self._index = (self._index + 1) % len(self.endpoints)
            log.debug("reconnecting in %.0f ms to %s", delay * 1000, self.broker_label)
            self._stop.wait(delay)
        self._hop(self._thread_ended)

    # ---- the asyncio side ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.up

    async def ready(self) -> None:
        """The first connection (each broker of the list in turn, protocol §1.3)."""
        await asyncio.shield(self._first)

    def _settle_first(self, error: Optional[BaseException]) -> None:
        if self._first.done():
            return
        if error is None:
            self._first.set_result(None)
        else:
            self._first.set_exception(error)

    def _thread_ended(self) -> None:
        if not self._ended.done():
            self._ended.set_result(None)
        self._settle_first(NotSentError(f"cannot connect to the broker at {self.broker_label}: the client closed"))

    def _on_up(self) -> None:
        if self._closing:
            return
        self.up = True
        reconnected = self._ever_connected
        if reconnected:
            log.info("reconnected to %s", self.broker_label, extra={"lane": self.lane})
        self._ever_connected = True
        self._settle_first(None)
        self._renew_all()
        self.hooks.connected(reconnected)

    def _on_down(self) -> None:
        if not self.up:
            return
        self.up = False
        if not self._closing:
            self._blame_oldest_subscription()
        for filter_, held in self._held.items():
            held.confirmed = False
        self._suback_waits.clear()
        for waiter in self._unsuback_waits.values():
            if not waiter.done():
                waiter.set_result(None)
        self._unsuback_waits.clear()
        for waiter in self._puback_waits.values():
            if not waiter.done():
                waiter.set_exception(NotSentError("the connection closed before the broker acknowledged the message"))
        self._puback_waits.clear()
        self._fail_probes("the connection closed before the broker answered")
        if not self._closing:
            log.warning("connection to %s lost; reconnecting", self.broker_label, extra={"lane": self.lane})
            self.hooks.disconnected()

    # subscriptions (held across reconnections: clean sessions keep none, protocol §1.1)

    def subscribe(self, filter_: str, qos: int = 1) -> "asyncio.Future[None]":
        """Holds `filter_`; resolves on the broker's SUBACK, however many reconnections that takes."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self._closing:
            waiter.set_exception(NotSentError(f"the client closed before subscribing to {filter_}"))
            return waiter
        held = self._held.get(filter_)
        if held is not None and held.confirmed and held.qos == qos:
            waiter.set_result(None)
            return waiter
        if held is None:
            held = self._held[filter_] = _Held(qos)
        held.qos = qos
        held.confirmed = False
        held.waiters.append(waiter)
        if self.up and filter_ not in self._suback_waits.values() and filter_ not in self._waiting:
            if self._careful and (self._suback_waits or self._waiting):
                self._waiting.append(filter_)
            else:
                self._send_subscribe(filter_, held)
        return waiter

    def _send_subscribe(self, filter_: str, held: _Held) -> None:
        mid = self._link.subscribe(filter_, held.qos)
        if mid is not None:
            self._suback_waits[mid] = filter_

    def _renew_all(self) -> None:
        self._suback_waits.clear()
        self._waiting = []
        if not self._careful:
            for filter_, held in self._held.items():
                self._send_subscribe(filter_, held)
            return
        self._waiting = list(self._held)
        self._send_next()

    def _send_next(self) -> None:
        """Careful mode: the next filter once the previous one is answered; back to normal when all are."""
        while self._waiting:
            filter_ = self._waiting.pop(0)
            held = self._held.get(filter_)
            if held is not None:
                self._send_subscribe(filter_, held)
                return
        if not self._suback_waits:
            self._careful = False

    def _blame_oldest_subscription(self) -> None:
        """The connection dropped after a CONNACK: a SUBSCRIBE left unanswered may be the cause
        (protocol §1.4). Which one is only certain with one in flight: the first such drop makes
        the next connections subscribe one at a time; a drop then strikes the one in flight, and
        at MAX_STRIKES it is given up."""
        suspects = list(self._suback_waits.values())
        if not suspects:
            return
        if not self._careful or len(suspects) > 1:
            self._careful = True
            return
        filter_ = suspects[0]
        held = self._held.get(filter_)
        if held is None:
            return
        held.strikes += 1
        if held.strikes < MAX_STRIKES:
            return
        del self._held[filter_]
        error = NotSentError(f"the broker dropped the connection {MAX_STRIKES} times when subscribing to {filter_}: it refuses this filter")
        log.warning("%s", error, extra={"lane": self.lane, "filter": filter_})
        waiters, held.waiters = held.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _on_suback(self, mid: int, codes: list[int]) -> None:
        filter_ = self._suback_waits.pop(mid, None)
        held = self._held.get(filter_) if filter_ is not None else None
        if self._careful and self.up:
            self._send_next()
        if held is None or filter_ is None:
            return
        waiters, held.waiters = held.waiters, []
        if any(code == SUBACK_FAILURE or code < 0 or code > 2 for code in codes):
            del self._held[filter_]
            error = NotAuthorizedError(f"the broker refused the subscription to {filter_} (SUBACK 0x80): its policy does not let "
                                       f"{self.client_id} subscribe to it (the broker's log names the rule that refused it)")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        held.confirmed = True
        held.strikes = 0
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def unsubscribe(self, filter_: str) -> "asyncio.Future[None]":
        """Stops holding `filter_`; resolves on the UNSUBACK (or the connection's end)."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        held = self._held.pop(filter_, None)
        if held is not None:
            for pending in held.waiters:
                if not pending.done():
                    pending.set_exception(NotSentError(f"unsubscribed from {filter_} before the broker confirmed it"))
        mid = self._link.unsubscribe(filter_) if self.up and not self._closing else None
        if mid is None:
            waiter.set_result(None)
        else:
            self._unsuback_waits[mid] = waiter
        return waiter

    def _on_unsuback(self, mid: int) -> None:
        waiter = self._unsuback_waits.pop(mid, None)
        if waiter is None:
            waiter = self._probe_waits.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the broker heard

    @property
    def heard_at(self) -> float:
        """When the broker last sent this connection anything (epoch ms): a silent broker is not
        a silent handler (protocol §4.7)."""
        return self._link.heard_at

    def probe(self) -> "asyncio.Future[None]":
        """Resolves on the broker's answer to an UNSUBSCRIBE of a filter no one holds (protocol
        §4.7): the broker runs and reads this connection. Fails (NotSentError) if the connection
        ends first, or is down."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        mid = self._link.unsubscribe(BROKER_PROBE_FILTER) if self.up and not self._closing else None
        if mid is None:
            waiter.set_exception(NotSentError("not connected: the broker cannot be asked"))
        else:
            # The UNSUBACK's hop runs after this line: call_soon_threadsafe keeps order on this loop.
            self._probe_waits[mid] = waiter
        return waiter

    def _fail_probes(self, why: str) -> None:
        for waiter in self._probe_waits.values():
            if not waiter.done():
                waiter.set_exception(NotSentError(why))
        self._probe_waits.clear()

    # publishing

    def write(self, topic: str, body: bytes | str, qos: int, retain: bool) -> None:
        """Writes a PUBLISH (the caller checked the connection is up)."""
        self._link.publish(topic, body, qos, retain)

    async def publish_now(self, topic: str, body: bytes | str, retain: bool, within: Optional[float] = None) -> None:
        """QoS 1; resolves once the broker has it (PUBACK). NotSentError if the connection ends first or `within` passes."""
        if not self.up:
            raise NotSentError(f"not connected: {topic} not sent")
        waiter: asyncio.Future[None] = self.loop.create_future()
        mid = self._link.publish(topic, body, 1, retain)
        # The PUBACK's hop runs after this line: call_soon_threadsafe keeps order on this loop.
        self._puback_waits[mid] = waiter
        try:
            await asyncio.wait_for(asyncio.shield(waiter), within)
        except asyncio.TimeoutError:
            self._puback_waits.pop(mid, None)
            raise NotSentError(f"the broker did not acknowledge {topic} within {within * 1000 if within else 0:.0f} ms") from None

    def _on_puback(self, mid: int) -> None:
        waiter = self._puback_waits.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the end

    def _reject_all(self, why: str) -> None:
        self._fail_probes(why)
        for filter_, held in self._held.items():
            for waiter in held.waiters:
                if not waiter.done():
                    waiter.set_exception(NotSentError(f"{why} before subscribing to {filter_}"))
            held.waiters = []

    async def close(self) -> None:
        """A clean DISCONNECT (the will does not fire); the loop thread ends."""
        if self._closing:
            await asyncio.shield(self._ended)
            return
        self._closing = True
        self._reject_all("the client closed")
        was_up = self.up
        self.up = False
        self._stop.set()
        if was_up:
            self._link.disconnect()
        else:
            self._link.drop()
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), CLOSE_GRACE_S + 1.0)
        except asyncio.TimeoutError:
            self._link.drop()

    async def kill(self) -> None:
        """Drops the connection without a DISCONNECT, as a crash would (the will fires)."""
        self._closing = True
        self._reject_all("the client was killed")
        self.up = False
        self._stop.set()
        self._link.drop()
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), CLOSE_GRACE_S + 1.0)
        except asyncio.TimeoutError:
            pass

    def drop_socket(self) -> None:
        """Cuts the socket as a network loss would; the connection comes back by itself (tests, tools)."""
        self._link.drop()
