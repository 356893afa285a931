"""A blocking facade over the asyncio client, for scripts::

    import relais.sync

    with relais.sync.connect(id="script-1", broker="mqtt://127.0.0.1:1883") as bus:
        print(bus.request("demo/echo", {"a": 1}, timeout=5))
        for step in bus.call("demo/work", {}):
            print(step.kind, step.progress, step.payload)
        bus.notify("sensors/temp", {"c": 21.5})
        for message in bus.subscribe("sensors/+/notification"):   # blocks; break to stop
            print(message.topic, message.payload)

        @bus.handle("demo/echo")
        def echo(payload, ctx):        # a plain def runs in a worker thread; ctx.progress() is thread-safe
            return payload
        bus.serve_forever()             # until Ctrl-C, SIGTERM handling is the caller's, or bus.close()

        rooms = bus.kv("rooms")         # the key-value store (protocol §14): get, put, create, delete, keys, history
        rooms.put("kitchen", {"temp": 21}, expect_revision=None)
        for item in rooms.watch():      # blocks; break to stop
            print(item)
        config = bus.config(schema, defaults={"level": 1})   # config.value, config.set(v), for v in config.changes()

One asyncio event loop runs in a background thread; each call hands its coroutine to it and
waits. Every argument is the asyncio API's (`relais.connect`, `Bus.request`...).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from typing import Any, Callable, Iterator, Optional

from ._client.bus import Bus, connect as _connect
from ._client.config import ClientConfig
from ._client.kv import KvBucket
from .protocol.framing import is_bytes
from ._client.serving import HandlerContext, Registration
from ._client.subscriptions import Message, Subscription


class _LoopThread:
    """One event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="relais-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Any, timeout: Optional[float] = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except KeyboardInterrupt:
            future.cancel()
            raise

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs a plain function on the loop's thread (the client's state lives there) and returns its result."""
        async def run() -> Any:
            return fn(*args, **kwargs)
        return self.run(run())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class SyncContext:
    """The handler context of a plain `def` handler running in a worker thread."""

    def __init__(self, ctx: HandlerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop
        self.action, self.token, self.source, self.priority = ctx.action, ctx.token, ctx.source, ctx.priority
        self.deadline, self.envelope = ctx.deadline, ctx.envelope

    @property
    def cancelled(self) -> bool:
        """Poll it: a thread cannot be interrupted; an answer after a cancel is code 5 anyway? No: it is sent as is."""
        return self._ctx.cancelled

    def progress(self, fraction: Optional[float] = None, data: Any = None) -> None:
        # Bytes are copied now: the loop encodes them later, while this thread may reuse its buffer (protocol §3.5).
        self._loop.call_soon_threadsafe(self._ctx.progress, fraction, bytes(data) if is_bytes(data) else data)


def _threaded(handler: Callable[..., Any]) -> Callable[[Any, HandlerContext], Any]:
    """A plain function served without blocking the loop: it runs in a worker thread."""
    if inspect.iscoroutinefunction(handler):
        return handler

    async def run(payload: Any, ctx: HandlerContext) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(handler, payload, SyncContext(ctx, loop)))

    return run


class SyncSubscription:
    """A blocking iterator of `relais.Message`; `close()` (or leaving `with`) unsubscribes."""

    def __init__(self, runner: _LoopThread, subscription: Subscription) -> None:
        self._runner = runner
        self._subscription = subscription
        self.filter = subscription.filter

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        async def next_one() -> Message:
            return await self._subscription.__anext__()
        try:
            return self._runner.run(next_one())
        except StopAsyncIteration:
            raise StopIteration from None

    def get(self, timeout: Optional[float] = None) -> Message:
        """The next message; `TimeoutError` after `timeout` seconds."""
        async def next_one() -> Message:
            return await asyncio.wait_for(self._subscription.__anext__(), timeout)
        return self._runner.run(next_one())

    def close(self) -> None:
        self._runner.run(self._subscription.unsubscribe())

    def __enter__(self) -> "SyncSubscription":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _iterate(runner: _LoopThread, make: Callable[[], Any]) -> Iterator[Any]:
    """The items of an async iterator made now on the loop's thread (a `changes()` queue holds
    what comes from here on), each waited for; leaving early closes it there."""
    items = runner.call(make)

    def each() -> Iterator[Any]:
        try:
            while True:
                try:
                    yield runner.run(items.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            runner.run(items.aclose())
    return each()


class SyncKvBucket:
    """`bus.kv(bucket)` blocking: the `relais.KvBucket` methods, `watch()` a blocking iterator (break to stop)."""

    def __init__(self, runner: _LoopThread, bucket: KvBucket) -> None:
        self._runner = runner
        self._bucket = bucket
        self.bucket = bucket.bucket

    def get(self, key: str, **options: Any) -> dict:
        return self._runner.run(self._bucket.get(key, **options))

    def put(self, key: str, value: Any, **options: Any) -> int:
        return self._runner.run(self._bucket.put(key, bytes(value) if is_bytes(value) else value, **options))

    def create(self, key: str, value: Any, **options: Any) -> int:
        return self._runner.run(self._bucket.create(key, bytes(value) if is_bytes(value) else value, **options))

    def delete(self, key: str, **options: Any) -> int:
        return self._runner.run(self._bucket.delete(key, **options))

    def keys(self, **options: Any) -> dict:
        return self._runner.run(self._bucket.keys(**options))

    def history(self, key: str, **options: Any) -> list[dict]:
        return self._runner.run(self._bucket.history(key, **options))

    def watch(self, **options: Any) -> Iterator[dict]:
        return _iterate(self._runner, lambda: self._bucket.watch(**options))


class SyncConfig:
    """`bus.config(...)` blocking: `value`, `revision`, `changes()` a blocking iterator, `set()`, `close()`."""

    def __init__(self, runner: _LoopThread, config: ClientConfig) -> None:
        self._runner = runner
        self._config = config

    @property
    def value(self) -> Any:
        return self._runner.call(lambda: self._config.value)

    @property
    def revision(self) -> int:
        return self._runner.call(lambda: self._config.revision)

    def changes(self) -> Iterator[Any]:
        return _iterate(self._runner, self._config.changes)

    def set(self, value: Any) -> int:
        return self._runner.run(self._config.set(value))

    def close(self) -> None:
        self._runner.call(self._config.close)

    def __enter__(self) -> "SyncConfig":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class SyncBus:
    def __init__(self, runner: _LoopThread, bus: Bus) -> None:
        self._runner = runner
        self.bus = bus
        self.id = bus.id
        self._stopped = threading.Event()

    def request(self, action: str, payload: Any = None, **options: Any) -> Any:
        return self._runner.run(self.bus.request(action, payload, **options))

    def call(self, action: str, payload: Any = None, **options: Any) -> Iterator[Any]:
        return _iterate(self._runner, lambda: self.bus.call(action, payload, **options))

    def notify(self, category: str, payload: Any = None, **options: Any) -> None:
        self._runner.call(self.bus.notify, category, payload, **options)

    def log(self, category: str, level: str, message: str, data: Any = None) -> None:
        self._runner.call(self.bus.log, category, level, message, data)

    def publish(self, topic: str, message: Any, **options: Any) -> None:
        self._runner.call(self.bus.publish, topic, message, **options)

    def subscribe(self, filter: str, **options: Any) -> SyncSubscription:  # noqa: A002
        return SyncSubscription(self._runner, self._runner.run(self.bus.subscribe(filter, **options)))

    def serve(self, action: str, handler: Callable[..., Any], **options: Any) -> Registration:
        return self._runner.run(self.bus.serve(action, _threaded(handler), **options))

    def handle(self, action: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.serve(action, handler, **options)
            return handler
        return register

    def wait_for_handler(self, action: str, **options: Any) -> None:
        self._runner.run(self.bus.wait_for_handler(action, **options))

    def providers(self, action: str) -> list[str]:
        return self._runner.call(self.bus.providers, action)

    def peers(self) -> list[dict]:
        return self._runner.call(self.bus.peers)

    def clients(self, **options: Any) -> dict:
        return self._runner.run(self.bus.clients(**options))

    def history(self, **query: Any) -> Any:
        return self._runner.run(self.bus.history(**query))

    def kv(self, bucket: str) -> SyncKvBucket:
        return SyncKvBucket(self._runner, self._runner.call(self.bus.kv, bucket))

    def config(self, schema: dict, **options: Any) -> SyncConfig:
        return SyncConfig(self._runner, self._runner.run(self.bus.config(schema, **options)))

    def mark_ready(self) -> None:
        self._runner.run(self.bus.mark_ready())

    def serve_forever(self) -> None:
        """Blocks until `close()` (from another thread or a signal handler) or Ctrl-C."""
        try:
            while not self._stopped.wait(0.5):
                if self.bus.closed:
                    break
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._runner.run(self.bus.close(), timeout=10)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        self._runner.stop()

    def kill(self) -> None:
        self._stopped.set()
        self._runner.run(self.bus.kill(), timeout=10)
        self._runner.stop()

    def __enter__(self) -> "SyncBus":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def connect(*args: Any, **options: Any) -> SyncBus:
    """Connects (blocking) and returns a `SyncBus`; the arguments are `relais.connect`'s."""
    runner = _LoopThread()
    try:
        async def open_bus() -> Bus:
            return await _connect(*args, **options)
        bus = runner.run(open_bus())
    except BaseException:
        runner.stop()
        raise
    return SyncBus(runner, bus)
