"""paho-mqtt 1.6 and 2.x behind one interface (the MQTT.js `MqttClient` the TS
`src/client/connection/connection.ts` drives).

paho 2.x wants `Client(CallbackAPIVersion.VERSION2, ...)` and calls its callbacks with
reason-code objects; 1.6 has no `CallbackAPIVersion` and calls them with integers. This module
is the only one that knows: the rest of the client sees `PahoLink`, whose callbacks take plain
ints and bools. MQTT 3.1.1, clean session (protocol §1.1).

Threading: paho's network loop runs in one thread per connection (the one that runs `run()`);
`publish`, `subscribe` and `unsubscribe` may be called from another thread, as with paho's own
`loop_start()`: the packet is queued and the loop thread is woken to write it. Every callback
runs on the loop thread: the caller hops to its asyncio loop.
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt

log = logging.getLogger("relais.connection")

#: True with paho-mqtt 2.x (its callback API version 2 is used).
PAHO_2 = hasattr(mqtt, "CallbackAPIVersion")

#: A SUBACK return code saying the subscription was refused (MQTT 3.1.1 §3.9.3).
SUBACK_FAILURE = 0x80

#: Drops of the connection with a packet unacknowledged before it is given up (protocol §1.4).
MAX_STRIKES = 2


@dataclass(frozen=True)
class Endpoint:
    """One broker URL, parsed: `mqtt`, `mqtts`, `ws`, `wss` or `unix` (protocol §1.2)."""

    scheme: str
    host: str
    port: int
    path: str
    label: str
    username: Optional[str] = None
    password: Optional[str] = None
    #: The password as the URL writes it (percent-encoded): what logs on demand mask too (§11.4).
    password_as_written: Optional[str] = None

    @property
    def transport(self) -> str:
        return "websockets" if self.scheme in ("ws", "wss") else "tcp"

    @property
    def tls(self) -> bool:
        return self.scheme in ("mqtts", "wss")


def _int(value: Any) -> int:
    """A reason code of paho 2.x (ReasonCode, MQTTErrorCode) or 1.6 (int) as an int."""
    if isinstance(value, int):
        return int(value)
    number = getattr(value, "value", None)
    if isinstance(number, int):
        return number
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class _UnixAwareClient(mqtt.Client):  # type: ignore[misc]
    """A paho client that opens a Unix socket for `unix://` brokers (paho 1.6 cannot), and notes
    when the broker last sent it anything."""

    relais_unix_path: Optional[str] = None
    #: Epoch ms of the last whole packet read from the broker (written on the loop thread).
    #: paho's own `_last_msg_in` will not do: it is also set when paho sends a PINGREQ.
    relais_heard_at: float = 0.0

    def _packet_handle(self):  # type: ignore[override]
        self.relais_heard_at = time.time() * 1000
        return super()._packet_handle()

    def _create_socket_connection(self):  # type: ignore[override]
        if self.relais_unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._connect_timeout)
            sock.connect(self.relais_unix_path)
            return sock
        return super()._create_socket_connection()


class PahoLink:
    """One MQTT connection made with paho. The owner (`Connection`) sets the `on_*` hooks
    before `run()`; they are called on the loop thread with plain values."""

    def __init__(
        self,
        client_id: str,
        transport: str,
        keepalive: int,
        will: Optional[tuple[str, str]],
        username: Optional[str],
        password: Optional[str],
        tls: Optional[dict[str, Optional[str]]],
        ws_path: str,
        connect_timeout: float,
    ) -> None:
        self.keepalive = keepalive
        kwargs: dict[str, Any] = dict(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311, transport=transport)
        if PAHO_2:
            self._client = _UnixAwareClient(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            self._client = _UnixAwareClient(**kwargs)
        client = self._client
        client._connect_timeout = connect_timeout
        # Unbounded in flight and queued: the outbound queue and the protocol bound what we send (§6.3).
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        if username is not None or password is not None:
            client.username_pw_set(username or "", password)
        if tls is not None:
            client.tls_set(ca_certs=tls.get("ca"), certfile=tls.get("cert"), keyfile=tls.get("key"), cert_reqs=ssl.CERT_REQUIRED)
        if transport == "websockets":
            client.ws_set_options(path=ws_path or "/", headers=None)
        self.on_connect: Callable[[int], None] = lambda rc: None
        self.on_disconnect: Callable[[], None] = lambda: None
        self.on_message: Callable[[str, bytes, bool, int], None] = lambda t, p, r, q: None
        self.on_publish: Callable[[int], None] = lambda mid: None
        self.on_subscribe: Callable[[int, list[int]], None] = lambda mid, codes: None
        self.on_unsubscribe: Callable[[int], None] = lambda mid: None
        #: The oldest unacknowledged PUBLISH and its strikes (protocol §1.4); loop thread only.
        self._struck: Optional[tuple[Any, int]] = None
        self._wire_callbacks()

    def _wire_callbacks(self) -> None:
        client = self._client
        if PAHO_2:
            client.on_connect = lambda c, u, flags, rc, props: self.on_connect(_int(rc))
            client.on_disconnect = lambda c, u, flags, rc, props: self.on_disconnect()
            client.on_publish = lambda c, u, mid, rc, props: self.on_publish(mid)
            client.on_subscribe = lambda c, u, mid, codes, props: self.on_subscribe(mid, [_int(code) for code in codes])
            client.on_unsubscribe = lambda c, u, mid, codes, props: self.on_unsubscribe(mid)
        else:
            client.on_connect = lambda c, u, flags, rc: self.on_connect(_int(rc))
            client.on_disconnect = lambda c, u, rc: self.on_disconnect()
            client.on_publish = lambda c, u, mid: self.on_publish(mid)
            client.on_subscribe = lambda c, u, mid, granted: self.on_subscribe(mid, [_int(code) for code in granted])
            client.on_unsubscribe = lambda c, u, mid: self.on_unsubscribe(mid)
        client.on_message = lambda c, u, message: self.on_message(message.topic, message.payload, bool(message.retain), 1 if message.qos else 0)

    # ---- the loop thread ----------------------------------------------------------------

    def open(self, endpoint: Endpoint) -> None:
        """Opens the socket and sends CONNECT (blocking, on the loop thread). Raises OSError
        (and paho's websocket errors, which are OSErrors too) when the socket cannot be made."""
        client = self._client
        # publish() from the asyncio thread then queues and wakes this loop instead of writing
        # itself (paho checks `_thread`, as its own loop_start() sets it): one writer per socket.
        client._thread = threading.current_thread()
        client.relais_unix_path = endpoint.path if endpoint.scheme == "unix" else None
        if endpoint.username is not None or endpoint.password is not None:
            client.username_pw_set(endpoint.username or "", endpoint.password)
        host = "localhost" if endpoint.scheme == "unix" else endpoint.host
        rc = client.connect(host, endpoint.port, self.keepalive)
        if _int(rc) != 0:
            raise OSError(f"connect failed ({_int(rc)})")
        sock = client.socket()
        try:
            if sock is not None and endpoint.scheme != "unix" and hasattr(sock, "setsockopt"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def strike_oldest_unacknowledged(self) -> Optional[str]:
        """The connection dropped after its CONNACK (loop thread, before reconnecting). paho, as
        MQTT.js, writes every unacknowledged QoS 1 PUBLISH again first thing after a reconnection;
        one the broker refuses by dropping the connection would keep the client off it for ever
        (protocol §1.4). The broker reads packets in order, so the oldest unacknowledged one is
        the likely culprit: it gets a strike, and at MAX_STRIKES it is taken out of paho's store.
        Returns its topic then (for the warning), else None."""
        client = self._client
        with client._out_message_mutex:
            oldest = next(iter(client._out_messages.values()), None)
            if oldest is None:
                self._struck = None
                return None
            strikes = self._struck[1] + 1 if self._struck is not None and self._struck[0] is oldest else 1
            if strikes < MAX_STRIKES:
                self._struck = (oldest, strikes)
                return None
            self._struck = None
            client._out_messages.pop(oldest.mid, None)
            topic = oldest.topic
            return topic.decode("utf-8", "replace") if isinstance(topic, bytes) else str(topic)

    def loop_once(self, timeout: float) -> bool:
        """One turn of paho's loop; False once the connection has ended."""
        return _int(self._client.loop(timeout=timeout)) == 0

    # ---- any thread ---------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> int:
        """Queues a PUBLISH; returns its message id (meaningful for QoS 1)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.mid)

    def subscribe(self, topic: str, qos: int) -> Optional[int]:
        rc, mid = self._client.subscribe(topic, qos)
        return None if _int(rc) != 0 else int(mid)

    def unsubscribe(self, topic: str) -> Optional[int]:
        rc, mid = self._client.unsubscribe(topic)
        return None if _int(rc) != 0 else int(mid)

    def disconnect(self) -> None:
        """A clean DISCONNECT (the broker does not fire the will)."""
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def drop(self) -> None:
        """Cuts the socket without a DISCONNECT, as a crash or a network loss would (the will fires)."""
        sock = self._client.socket()
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected())

    @property
    def heard_at(self) -> float:
        """When the broker last sent this connection anything, any packet (epoch ms; 0 never)."""
        return self._client.relais_heard_at
