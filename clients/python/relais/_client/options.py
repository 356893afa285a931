"""The connect options with every default in one place (the TS `src/client/options.ts`
`DEFAULTS`), in seconds at this API (the wire is in ms, protocol §3), and the broker URLs
parsed (protocol §1.2, §1.3: a comma list names the nodes of one bus).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union
from urllib.parse import unquote, urlsplit

from ..protocol.envelope import DEFAULT_MAX_MESSAGE_BYTES
from .paho_adapter import Endpoint

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883, "tls": 8883, "ws": 80, "wss": 443}
_FORM = "mqtt://, mqtts://, ws://, wss:// or unix:// followed by [user:password@]host:port (or a path for unix)"


@dataclass
class ResolvedOptions:
    id: str
    endpoints: list[Endpoint]
    username: Optional[str] = None
    password: Optional[str] = None
    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    timeout: float = 30.0
    ack_timeout: float = 2.0
    reconnect_grace: float = 10.0
    realtime_lane: bool = True
    max_offline_messages: int = 1000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    reconnect_delay: float = 0.1
    reconnect_max_delay: float = 5.0
    connect_timeout: float = 10.0
    keepalive: int = 30
    check_handlers: bool = True
    directory_settle: float = 0.5
    #: Each presence published once more this many seconds after the broker took it, 0 for never
    #: (protocol §7.1, "On a cluster"): by default 2.0 when `broker` names several nodes, else 0.
    presence_repeat: float = 0.0
    #: When it starts following every presence (protocol §7.2): "full" at connect, "on-demand"
    #: from its first request, call, wait_for_handler, peers() or a kill relayed by the router.
    directory: str = "full"
    ephemeral: bool = False
    startup: str = "auto"
    info: dict[str, Any] = field(default_factory=dict)
    signing_key: Any = None
    trusted_keys: Any = None
    require_signatures: bool = True
    max_signature_skew: float = 30.0
    #: Sealed payloads (protocol §3.6, §12.5): this client's X25519 private key(s), the others'
    #: public keys (a sealing keys file's path, a list, or a function of an identity), and whether
    #: every request to an application action is sealed by default.
    sealing_key: Any = None
    sealing_keys: Any = None
    seal_requests: bool = False
    #: Logs on demand (protocol §11.4): max_lines, max_bytes, lock_timeout (s); None: off.
    logs: Optional[dict] = None
    host_facts: dict[str, Any] = field(default_factory=dict)


def redact(url: str) -> str:
    """The URL with its password and query masked: no secret in a log (protocol §1.3)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{userinfo}@{host}"
    query = "?***" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def parse_brokers(broker: Union[str, Sequence[str]]) -> list[Endpoint]:
    """One endpoint per URL; a bad one is named by its place, never repeated (it may hold a password)."""
    urls = [u.strip() for u in (broker.split(",") if isinstance(broker, str) else list(broker))]
    if not urls or urls == [""]:
        raise TypeError("broker: the list of broker URLs is empty")
    endpoints: list[Endpoint] = []
    for place, url in enumerate(urls, 1):
        endpoint = _endpoint(url)
        if endpoint is None:
            what = "is empty" if url == "" else f"must be {_FORM}; it is not repeated here as it may hold a password"
            raise TypeError(f"the broker URL {what}" if len(urls) == 1 else f"broker URL {place} of {len(urls)} {what}")
        endpoints.append(endpoint)
    transports = {e.transport for e in endpoints}
    if len(transports) > 1:
        raise TypeError("broker: every URL of the list must use WebSocket, or none (this client keeps one paho transport)")
    return endpoints


def _endpoint(url: str) -> Optional[Endpoint]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme in ("unix", "mqtt+unix"):
        path = unquote(parts.path)
        if not path:
            return None
        return Endpoint("unix", "", 0, path, redact(url), username, password, parts.password)
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    normal = {"tcp": "mqtt", "ssl": "mqtts", "tls": "mqtts"}.get(scheme, scheme)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Endpoint(normal, parts.hostname, port, path or "/", redact(url), username, password, parts.password)


def host_facts() -> dict[str, Any]:
    """Where this client runs, first in every presence (protocol §7.1)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def env_broker() -> str:
    return os.environ.get("RELAIS_BROKER") or DEFAULT_BROKER


DIRECTORIES = ("full", "on-demand")


def check_directory(value: Any) -> str:
    if value not in DIRECTORIES:
        raise ValueError(f"directory must be 'full' or 'on-demand', got {value!r}")
    return value


#: A cluster's nodes copy a retained presence to each other after its PUBACK (protocol §7.1).
CLUSTER_PRESENCE_REPEAT_S = 2.0


def presence_repeat_of(asked: Union[float, bool, None], endpoints: Sequence[Endpoint]) -> float:
    """`presence_repeat` resolved: False is never, None is the default (several brokers: a cluster)."""
    if asked is False:
        return 0.0
    if asked is None:
        return CLUSTER_PRESENCE_REPEAT_S if len(endpoints) > 1 else 0.0
    return check_seconds(asked, "presence_repeat")


def check_seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0) or value > 2**31 / 1000:
        raise ValueError(f"{what} must be a number of seconds, 0 or more, got {value!r}")
    return float(value)
