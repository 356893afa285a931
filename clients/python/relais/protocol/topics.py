"""Every topic string Relais uses is built and parsed here (protocol §2).

Ports ``src/protocol/topics.ts``: the naming rules (§2.1), the builders, and how a received
topic is recognised (§2.2). Nobody else concatenates topic strings. The ``check_*`` functions
return why a name is refused, or None; the builders raise ``TypeError`` with that reason.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Optional, Union

from .bytes import utf8_byte_length

#: Topic segments with a meaning in the scheme; an action or category may not contain them.
RESERVED_SEGMENTS: tuple[str, ...] = ("request", "response", "notification", "cancel", "log")

#: Root of the topics Relais itself owns (presence); actions may not start with it.
SYSTEM_ROOT = "relais"
PRESENCE_PREFIX = f"{SYSTEM_ROOT}/presence/"

#: Limits every topic respects (protocol §2.1): a packet a broker refuses drops the connection.
MAX_TOPIC_LEVELS = 100
MAX_TOPIC_BYTES = 65_535
#: An action or category: ``<path>/response/<id>`` must stay within MAX_TOPIC_LEVELS.
MAX_PATH_LEVELS = MAX_TOPIC_LEVELS - 2
MAX_PATH_LENGTH = 512

#: Filter matching every client's presence.
PRESENCE_FILTER = f"{PRESENCE_PREFIX}+"

#: A filter no one subscribes to: a requester that has not heard its broker lately when a
#: handler's first answer is overdue unsubscribes from it, and the UNSUBACK says the broker runs
#: (protocol §4.7). An UNSUBSCRIBE changes nothing and is answered whatever the filter (MQTT 3.1.1 §3.10).
BROKER_PROBE_FILTER = f"{SYSTEM_ROOT}/probe"

# A base id has no '~': `~` separates a session (`<identity>~<session>`) and the real-time lane (`~rt`).
_BASE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_SESSION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: The suffix of a client's real-time connection: its MQTT client id is ``<client id>~rt`` (protocol §6.2).
REALTIME_LANE = "rt"
# JavaScript's \s (Unicode spaces and line ends, BOM included) and the C0 controls and DEL: the
# NATS MQTT gateway drops a connection on whitespace in a topic.
_CONTROL_OR_SPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\x00-\x1f\x7f]")


def is_system_action(action: str) -> bool:
    """An action of Relais itself (under ``relais/``): the history does not record it (protocol §11.1)."""
    return action.startswith(f"{SYSTEM_ROOT}/")


def _quote(text: str) -> str:
    """``text`` quoted as JSON.stringify writes it (non-ASCII kept, lone surrogates escaped)."""
    shown = json.dumps(text, ensure_ascii=False)
    try:
        shown.encode("utf-8")
        return shown
    except UnicodeEncodeError:
        return json.dumps(text)


def _js_length(text: str) -> int:
    """Length in UTF-16 units, as a JavaScript string counts it (the TS limits are in those)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _shown(text: str) -> str:
    return _quote(f"{text[:77]}..." if len(text) > 80 else text)


class ClientIdParts(NamedTuple):
    """An MQTT client id read by the grammar of protocol §2.1: ``<identity>[~<session>][~rt]``."""

    identity: str
    session: Optional[str] = None
    #: ``"rt"`` when this is the real-time lane's MQTT client id (protocol §6.2).
    lane: Optional[str] = None


def parse_client_id(mqtt_id: str) -> Union[ClientIdParts, str]:
    """The parts of ``mqtt_id``, or why it is not ``<base>[~<session>][~rt]`` (a string). Same grammar as topics.ts."""
    if not isinstance(mqtt_id, str):
        return f"client id {json.dumps(mqtt_id, default=str)} must be 1-128 characters among letters, digits and _ . : @ -, optionally followed by ~<session>"
    parts = mqtt_id.split("~")
    lane = REALTIME_LANE if len(parts) > 1 and parts[-1] == REALTIME_LANE else None
    if lane:
        parts.pop()
    identity, session, rest = parts[0], (parts[1] if len(parts) > 1 else None), parts[2:]
    shown = _quote(mqtt_id)
    if not _BASE_ID_PATTERN.fullmatch(identity):
        return f"client id {shown} must be 1-128 characters among letters, digits and _ . : @ -, optionally followed by ~<session>"
    if identity in RESERVED_SEGMENTS:
        return f"client id {shown} is a reserved topic word"
    if rest:
        return f"client id {shown} has more than one ~<session>"
    if session is not None:
        if session == REALTIME_LANE:
            return f"client id {shown}: ~rt is the real-time lane, not a session"
        if not _SESSION_PATTERN.fullmatch(session):
            return f"client id {shown}: a session (after ~) must be 1-32 characters among letters, digits, _ and -"
    return ClientIdParts(identity, session, lane)


def identity_of_client_id(mqtt_id: str) -> str:
    """The identity behind a client id or a lane's MQTT client id (``alice~tab1~rt`` is ``alice``)."""
    parts = parse_client_id(mqtt_id)
    return parts.identity if isinstance(parts, ClientIdParts) else mqtt_id


def check_client_id(client_id: str) -> Optional[str]:
    """Why ``client_id`` is not a valid client id, or None (protocol §2.1). A lane's ``<id>~rt`` is not one."""
    parts = parse_client_id(client_id)
    if isinstance(parts, str):
        return parts
    if parts.lane:
        return f"client id {_quote(client_id)} ends with ~rt: that is the MQTT client id of a real-time lane (protocol §6.2), not a client id"
    return None


# Paths already found valid: a client checks the same few actions on every message. Bounded.
_known_valid_paths: set[str] = set()
_KNOWN_VALID_PATHS_KEPT = 4096


def check_path(name: str, what: str = "action") -> Optional[str]:
    """Why ``name`` is not a valid action (or category, ``what="category"``) path, or None (protocol §2.1)."""
    if isinstance(name, str) and name in _known_valid_paths:
        return None
    problem = _find_path_problem(name, what)
    if problem is None:
        if len(_known_valid_paths) >= _KNOWN_VALID_PATHS_KEPT:
            _known_valid_paths.clear()
        _known_valid_paths.add(name)
    return problem


def _find_path_problem(name: str, what: str) -> Optional[str]:
    if not isinstance(name, str) or len(name) == 0:
        return f"{what} must be a non-empty string"
    if _js_length(name) > MAX_PATH_LENGTH:
        return f"{what} is longer than {MAX_PATH_LENGTH} characters"
    shown = _shown(name)
    if name.startswith("$"):
        return f"{what} {shown} may not start with '$' (broker-reserved)"
    if _CONTROL_OR_SPACE.search(name):
        return f"{what} {shown} may not contain spaces or control characters"
    segments = name.split("/")
    if len(segments) > MAX_PATH_LEVELS:
        return f"{what} {shown} has {len(segments)} levels; at most {MAX_PATH_LEVELS}"
    text_problem = _check_topic_text(name, what)
    if text_problem:
        return text_problem
    for segment in segments:
        if len(segment) == 0:
            return f"{what} {shown} has an empty segment"
        if "+" in segment or "#" in segment:
            return f"{what} {shown} may not contain the MQTT wildcards + or #"
        if segment in RESERVED_SEGMENTS:
            return f"{what} {shown} may not contain the reserved segment '{segment}'"
    if segments[0] == SYSTEM_ROOT and len(segments) > 1 and segments[1] == "presence":
        return f"{what} {shown} is inside the reserved {PRESENCE_PREFIX} tree"
    return None


def _is_well_formed(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _check_topic_text(text: str, what: str) -> Optional[str]:
    """What every topic name and filter must respect, whatever the broker: bytes, levels, characters."""
    if not isinstance(text, str) or len(text) == 0:
        return f"a {what} must be a non-empty string"
    shown = _shown(text)
    if "\x00" in text:
        return f"{what} {shown} contains the character U+0000"
    if not _is_well_formed(text):
        return f"{what} {shown} is not valid Unicode (a lone surrogate has no UTF-8 form)"
    if len(text) * 3 > MAX_TOPIC_BYTES:
        size = utf8_byte_length(text)
        if size > MAX_TOPIC_BYTES:
            return f"{what} is {size} bytes of UTF-8; at most {MAX_TOPIC_BYTES}"
    levels = text.count("/") + 1
    if levels > MAX_TOPIC_LEVELS:
        return f"{what} {shown} has {levels} levels; brokers accept at most {MAX_TOPIC_LEVELS}"
    return None


def check_topic_name(topic: str) -> Optional[str]:
    """Why ``topic`` cannot be published on, or None (protocol §2.1): no wildcards, no ``$``, within the limits."""
    problem = _check_topic_text(topic, "topic")
    if problem:
        return problem
    if "+" in topic or "#" in topic:
        return f"cannot publish on {_quote(topic)}: a topic name has no wildcards (+ and # are for subscriptions)"
    if topic.startswith("$"):
        return f"cannot publish on {_quote(topic)}: topics starting with '$' are reserved for the broker"
    return None


def check_filter(filter: str) -> Optional[str]:  # noqa: A002 - MQTT's word
    """Why ``filter`` is not a valid MQTT subscription filter, or None (protocol §2.1)."""
    problem = _check_topic_text(filter, "topic filter")
    if problem:
        return problem
    parts = filter.split("/")
    for index, part in enumerate(parts):
        if "#" in part and (part != "#" or index != len(parts) - 1):
            return f"filter {_quote(filter)}: '#' must be a whole last level"
        if "+" in part and part != "+":
            return f"filter {_quote(filter)}: '+' must be a whole level"
    return None


def _assert_valid(problem: Optional[str]) -> None:
    if problem:
        raise TypeError(problem)


def request_topic(action: str, target: Optional[str] = None) -> str:
    """``<action>/request`` or, for a target other than ``*``, ``<action>/request/<target>`` (protocol §2)."""
    _assert_valid(check_path(action))
    if target is None or target == "*":
        return f"{action}/request"
    _assert_valid(check_client_id(target))
    return f"{action}/request/{target}"


def response_topic(action: str, requester: str) -> str:
    """``<action>/response/<requester>`` (protocol §2)."""
    _assert_valid(check_path(action))
    _assert_valid(check_client_id(requester))
    return f"{action}/response/{requester}"


def cancel_topic(action: str) -> str:
    """``<action>/cancel`` (protocol §2, §4.4)."""
    _assert_valid(check_path(action))
    return f"{action}/cancel"


def notification_topic(category: str) -> str:
    """``<category>/notification`` (protocol §2, §8.1)."""
    _assert_valid(check_path(category, "category"))
    return f"{category}/notification"


def log_topic(category: str) -> str:
    """``<category>/log`` (protocol §2, §8.2)."""
    _assert_valid(check_path(category, "category"))
    return f"{category}/log"


def presence_topic(client_id: str) -> str:
    """``relais/presence/<id>`` (protocol §7.1)."""
    _assert_valid(check_client_id(client_id))
    return f"{PRESENCE_PREFIX}{client_id}"


@dataclass(frozen=True)
class ParsedTopic:
    """What a topic is (protocol §2.2). ``kind``: request, response, cancel, notification, log,
    presence or other; the other fields as the kind has them (``target`` only when targeted)."""

    kind: str
    action: Optional[str] = None
    target: Optional[str] = None
    requester: Optional[str] = None
    category: Optional[str] = None
    client_id: Optional[str] = None


_OTHER = ParsedTopic("other")


@lru_cache(maxsize=4096)
def parse_topic(topic: str) -> ParsedTopic:
    """Reads what a topic is (protocol §2.2). Never raises: anything outside the scheme is kind ``other``."""
    if not isinstance(topic, str):
        return _OTHER
    if topic.startswith(PRESENCE_PREFIX):
        client_id = topic[len(PRESENCE_PREFIX):]
        return _OTHER if check_client_id(client_id) else ParsedTopic("presence", client_id=client_id)
    segments = topic.split("/")
    n = len(segments)
    last = segments[-1]
    before_last = segments[-2] if n >= 2 else None

    def head(count: int) -> Optional[str]:
        path = "/".join(segments[: n - count])
        return path if path and not check_path(path) else None

    if last in ("request", "cancel"):
        action = head(1)
        if action:
            return ParsedTopic(last, action=action)
    elif last in ("notification", "log"):
        category = head(1)
        if category:
            return ParsedTopic(last, category=category)
    elif before_last in ("request", "response", "cancel"):
        action = head(2)
        if action and not check_client_id(last):
            if before_last == "response":
                return ParsedTopic("response", action=action, requester=last)
            return ParsedTopic(before_last, action=action, target=last)
    return _OTHER


def topic_matches(filter: str, topic: str) -> bool:  # noqa: A002 - MQTT's word
    """MQTT topic filter matching (``+`` one level, ``#`` the rest), as brokers do it [MQTT-4.7]."""
    if filter == topic:
        return True
    # [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'
    if topic.startswith("$") and (filter.startswith("+") or filter.startswith("#")):
        return False
    f = filter.split("/")
    t = topic.split("/")
    for index, part in enumerate(f):
        if part == "#":
            return True
        if index >= len(t):
            return False
        if part != "+" and part != t[index]:
            return False
    return len(f) == len(t)
