"""Logs on demand (protocol §11.4), a port of `src/client/serving/log-buffer.ts`,
`log-service.ts` and the request check of `src/protocol/logs.ts`: the client keeps its recent
log lines in memory (a ring bounded in lines and in bytes, each line numbered) and serves them
on the built-in action `relais/logs/get`, targeted only, one retrieval at a time under a lock
with a time-out.

A Python client's log lines are the records of the `relais` loggers (the library's own, and
`bus.logger`, a child the application may log through) that pass their level: what Python's
`logging` lets through is kept (configure the `relais` logger's level to keep more). Each line is
served as the TS library serves pino's: `{"level": <pino number>, "time": <epoch ms>, "pid",
"hostname", "name", "msg", ...the record's extra fields}`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..protocol.errors import BusyError, InvalidMessageError, RelaisError
from .paho_adapter import Endpoint

LOGS_ACTION = "relais/logs/get"
#: pino's levels, lowest first, with the numbers pino writes in a line's `level` field (§11.4).
LOG_LINE_LEVELS = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60}
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 10_000
MAX_LOG_PATTERN = 1000
#: A follow sends what was written within this many seconds in one progress step.
FOLLOW_BATCH_S = 0.1
#: Room left in an answer for the envelope and the `kept` summary (§3.4 size limit).
ANSWER_OVERHEAD_BYTES = 2048
DEFAULTS = {"max_lines": 1000, "max_bytes": 256 * 1024, "lock_timeout": 60.0}

#: LogRecord attributes that are not the caller's `extra` fields.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def pino_level(levelno: int) -> int:
    """A Python level as pino's number: DEBUG 20, INFO 30, WARNING 40, ERROR 50, CRITICAL 60 (below DEBUG: trace)."""
    if levelno >= logging.CRITICAL:
        return 60
    if levelno >= logging.ERROR:
        return 50
    if levelno >= logging.WARNING:
        return 40
    if levelno >= logging.INFO:
        return 30
    if levelno >= logging.DEBUG:
        return 20
    return 10


@dataclass
class LogsRequest:
    lines: int = DEFAULT_LOG_LINES
    level: Optional[str] = None
    since: Optional[int] = None
    after: Optional[int] = None
    follow: bool = False
    pattern: Optional[str] = None
    source: Optional[str] = None


def _count(value: Any, minimum: int, maximum: Optional[int] = None) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return "Invalid input: expected int"
    if value < minimum:
        return f"Too small: expected number to be >={minimum}"
    if maximum is not None and value > maximum:
        return f"Too big: expected number to be <={maximum}"
    return None


def parse_logs_request(payload: Any) -> LogsRequest:
    """The checked request (§11.4); `InvalidMessageError` naming each bad field. None = every default."""
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        problems = ["field '(payload)': Invalid input: expected object"]
    else:
        problems = []
        for name, value in payload.items():
            if name == "lines":
                problem = _count(value, 1, MAX_LOG_LINES)
            elif name in ("since", "after"):
                problem = _count(value, 0)
            elif name == "level":
                problem = None if value in LOG_LINE_LEVELS else f"Invalid option: expected one of {'|'.join(json.dumps(k) for k in LOG_LINE_LEVELS)}"
            elif name == "follow":
                problem = None if isinstance(value, bool) else "Invalid input: expected boolean"
            elif name == "pattern":
                problem = None if isinstance(value, str) and 1 <= len(value) <= MAX_LOG_PATTERN else \
                    f"expected a string of 1 to {MAX_LOG_PATTERN} characters"
            elif name == "source":
                ok = isinstance(value, str) and 1 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.:@-") for c in value)
                problem = None if ok else "must be 1-64 characters of A-Z a-z 0-9 _ . : @ -"
            else:
                problem = f'Unrecognized key: "{name}"'
                name = "(payload)"
            if problem is not None:
                problems.append(f"field '{name}': {problem}")
    if problems:
        raise InvalidMessageError(f"invalid {LOGS_ACTION} request: {'; '.join(problems)}", details={"issues": problems})
    return LogsRequest(lines=int(payload.get("lines", DEFAULT_LOG_LINES)), level=payload.get("level"),
                       since=payload.get("since"), after=payload.get("after"), follow=bool(payload.get("follow", False)),
                       pattern=payload.get("pattern"), source=payload.get("source"))


@dataclass
class KeptLine:
    seq: int
    time: int
    level: int
    text: str
    bytes: int


class LogBuffer:
    """The recent lines: at most `max_lines` and `max_bytes` of UTF-8 text, oldest dropped first."""

    def __init__(self, max_lines: int, max_bytes: int, masks: list[tuple[str, str]]) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._masks = masks
        self._lines: list[KeptLine] = []
        self._start = 0
        self.bytes = 0
        self.newest = 0
        self._followers: list[Callable[[KeptLine], None]] = []

    @property
    def lines(self) -> int:
        return len(self._lines) - self._start

    def add(self, level: int, text: str) -> None:
        for secret, mask in self._masks:
            if secret in text:
                text = text.replace(secret, mask)
        size = len(text.encode("utf-8"))
        now = int(time.time() * 1000)
        if size > self.max_bytes:
            # Kept as a short line saying so: a reader learns that something was written then.
            text = json.dumps({"level": level, "time": now,
                               "msg": f"relais: a log line of {size} bytes was not kept (over the {self.max_bytes}-byte log buffer)"})
            size = len(text.encode("utf-8"))
        while self.lines > 0 and (self.lines >= self.max_lines or self.bytes + size > self.max_bytes):
            self.bytes -= self._lines[self._start].bytes
            self._start += 1
        if self._start > 1024 and self._start * 2 > len(self._lines):
            del self._lines[:self._start]
            self._start = 0
        self.newest += 1
        line = KeptLine(self.newest, now, level, text, size)
        self._lines.append(line)
        self.bytes += size
        for follower in list(self._followers):
            follower(line)

    def select(self, level: Optional[int], since: Optional[int], after: Optional[int], pattern: Optional[str], most: int,
               max_bytes: int) -> tuple[list[KeptLine], bool]:
        """The newest lines that pass the filter, at most `most` and `max_bytes` of text, oldest
        first; True when the byte budget, not `most` or the buffer, stopped it."""
        picked: list[KeptLine] = []
        used = 0
        for index in range(len(self._lines) - 1, self._start - 1, -1):
            if len(picked) >= most:
                break
            line = self._lines[index]
            if after is not None and line.seq <= after:
                break
            if since is not None and line.time < since:
                break
            if not _passes(line, level, pattern):
                continue
            if used + line.bytes > max_bytes:
                picked.reverse()
                return picked, True
            used += line.bytes + 1
            picked.append(line)
        picked.reverse()
        return picked, False

    def follow(self, follower: Callable[[KeptLine], None]) -> Callable[[], None]:
        self._followers.append(follower)
        return lambda: follower in self._followers and self._followers.remove(follower)


def _passes(line: KeptLine, level: Optional[int], pattern: Optional[str]) -> bool:
    return (level is None or line.level >= level) and (pattern is None or pattern in line.text)


def _parsed(line: KeptLine) -> dict:
    try:
        value = json.loads(line.text)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    return {"level": line.level, "time": line.time, "msg": line.text}


def broker_secrets(endpoints: list[Endpoint]) -> list[tuple[str, str]]:
    """What of the broker URLs must never be served (§11.4): the password, as written and
    decoded, between `:` and `@`, and the query (a WebSocket token)."""
    masks: list[tuple[str, str]] = []
    for endpoint in endpoints:
        if endpoint.password:
            for secret in {endpoint.password, endpoint.password_as_written or endpoint.password}:
                masks.append((f":{secret}@", ":***@"))
        if "?" in endpoint.path:
            masks.append((endpoint.path[endpoint.path.index("?"):], "?***"))
    return masks


class _Capture(logging.Handler):
    """Keeps each record of the `relais` loggers in the buffer, as a pino-like JSON line."""

    def __init__(self, buffer: LogBuffer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.NOTSET)
        self._buffer = buffer
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._base = {"pid": os.getpid(), "hostname": socket.gethostname()}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = pino_level(record.levelno)
            line: dict[str, Any] = {"level": level, "time": int(record.created * 1000), **self._base, "name": record.name}
            for key, value in vars(record).items():
                if key not in _RECORD_FIELDS and not key.startswith("_"):
                    line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                line["err"] = {"type": type(record.exc_info[1]).__name__, "message": str(record.exc_info[1])}
            line["msg"] = message
            text = json.dumps(line, ensure_ascii=False, default=str)
            if threading.get_ident() == self._loop_thread:
                self._buffer.add(level, text)
            else:
                # A line of a connection's network thread: the buffer and its followers live on the loop.
                self._loop.call_soon_threadsafe(self._buffer.add, level, text)
        except Exception:  # noqa: BLE001 - logging never breaks the client
            pass


@dataclass
class _Holder:
    requester: str
    token: str
    since: int
    until: int


class LogService:
    """The handler of `relais/logs/get` (§11.4) and what it serves from."""

    def __init__(self, client_id: str, settings: dict, masks: list[tuple[str, str]], max_message_bytes: int,
                 logger: logging.Logger) -> None:
        self.id = client_id
        self.lock_timeout = float(settings["lock_timeout"])
        self.buffer = LogBuffer(int(settings["max_lines"]), int(settings["max_bytes"]), masks)
        self._answer_bytes = max(1024, max_message_bytes - ANSWER_OVERHEAD_BYTES)
        self._logger = logger
        self._capture = _Capture(self.buffer, asyncio.get_running_loop())
        self._holder: Optional[_Holder] = None

    def start(self) -> None:
        self._logger.addHandler(self._capture)

    def stop(self) -> None:
        self._logger.removeHandler(self._capture)

    def _kept(self) -> dict:
        level = pino_level(self._logger.getEffectiveLevel())
        name = next(name for name, number in LOG_LINE_LEVELS.items() if number == level)
        return {"level": name, "lines": self.buffer.lines, "bytes": self.buffer.bytes, "maxLines": self.buffer.max_lines,
                "maxBytes": self.buffer.max_bytes}

    async def serve(self, payload: Any, ctx: Any) -> dict:
        """Bad input is an error answer (code 2), never a crash; another retrieval running: code 8."""
        request = parse_logs_request(payload)
        if request.source is not None:
            raise RelaisError("NO_SUCH_LOG", f"{self.id} serves only its own log lines: it has no log source {request.source}",
                              details={"reason": "unknown-source"})
        self._lock(ctx)
        try:
            if not request.follow:
                return self._answer(request)
            return await self._follow(request, ctx)
        finally:
            self._holder = None

    def _lock(self, ctx: Any) -> None:
        now = int(time.time() * 1000)
        holder = self._holder
        if holder is not None:
            raise BusyError(
                f"the logs of {self.id} are being read by {holder.requester} (request {holder.token}, for {now - holder.since} ms); "
                f"one retrieval at a time: try again when it ends, at the latest in {max(0, holder.until - now)} ms",
                details={"holder": holder.requester, "token": holder.token, "since": holder.since, "until": holder.until})
        self._holder = _Holder(ctx.source, ctx.token, now, now + int(self.lock_timeout * 1000))

    def _filter(self, request: LogsRequest) -> tuple[Optional[int], Optional[int], Optional[int], Optional[str]]:
        return (LOG_LINE_LEVELS[request.level] if request.level else None), request.since, request.after, request.pattern

    def _answer(self, request: LogsRequest) -> dict:
        level, since, after, pattern = self._filter(request)
        lines, truncated = self.buffer.select(level, since, after, pattern, request.lines, self._answer_bytes)
        answer: dict[str, Any] = {"lines": [_parsed(line) for line in lines],
                                  "next": lines[-1].seq if lines else (request.after if request.after is not None else self.buffer.newest),
                                  "kept": self._kept()}
        if truncated:
            answer["truncated"] = True
        return answer

    async def _follow(self, request: LogsRequest, ctx: Any) -> dict:
        """The backlog, then each new matching line in progress steps, until the caller cancels
        or its deadline passes (the task is cancelled: the answer says which), or the lock times
        out: the final answer then says `ended: "lock-timeout"`."""
        level, since, after, pattern = self._filter(request)
        backlog, _ = self.buffer.select(level, since, after, pattern, request.lines, self._answer_bytes)
        next_seq = backlog[-1].seq if backlog else (request.after if request.after is not None else self.buffer.newest)
        if backlog:
            ctx.progress(None, {"lines": [_parsed(line) for line in backlog], "next": next_seq})
        loop = asyncio.get_running_loop()
        batch: list[KeptLine] = []
        batch_bytes = 0
        timer: Optional[asyncio.TimerHandle] = None

        def flush() -> None:
            nonlocal batch, batch_bytes, timer, next_seq
            if timer is not None:
                timer.cancel()
                timer = None
            if not batch:
                return
            next_seq = batch[-1].seq
            lines, batch, batch_bytes = [_parsed(line) for line in batch], [], 0
            ctx.progress(None, {"lines": lines, "next": next_seq})

        def on_line(line: KeptLine) -> None:
            nonlocal batch_bytes, timer
            if not _passes(line, level, pattern):
                return
            # A batch over the message budget goes at once, before this line joins the next one.
            if batch_bytes + line.bytes > self._answer_bytes:
                flush()
            batch.append(line)
            batch_bytes += line.bytes + 1
            if timer is None:
                timer = loop.call_later(FOLLOW_BATCH_S, flush)

        stop_following = self.buffer.follow(on_line)
        try:
            await asyncio.sleep(self.lock_timeout)
        finally:
            stop_following()
            if timer is not None:
                timer.cancel()
        rest = [_parsed(line) for line in batch]
        if batch:
            next_seq = batch[-1].seq
        return {"lines": rest, "next": next_seq, "kept": self._kept(), "ended": "lock-timeout"}
