"""The Python side of the peers benchmark: the same line protocol as every other peer
(bench/peers/protocol.ts: commands on stdin, one JSON reply per line on stdout) and the same
requester loops as bench/peers/drive.ts, through the Python package's public asyncio API
(clients/python, docs/python.md) at its defaults: `bus.handle("bench/echo")` returning the
payload, and after `wait_for_handler`, `await bus.request("bench/echo", payload)`.

    /usr/bin/python3 bench/peers/python-peer.py requester|handler --url URL [--id ID] [--peer ID] [--action A]

PYTHONPATH must reach clients/python (bench/scenarios/python.ts sets it, and adds paho 2.x's
folder for the paho-2 rows). CPU per phase is `time.process_time()`: every thread of this
process, paho's network thread included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from typing import Any, Awaitable, Callable

import relais

# The echoed payload of bench/peers/protocol.ts makePayload, byte for byte.
TEXT = "relais peers benchmark: a payload of about one hundred bytes, echoed back"
# A phase fails when no answer came for this long (drive.ts STALL_MS).
STALL_S = 5.0
# Closing must end, even when the library hangs on it (child.ts CLOSE_MS).
CLOSE_S = 3.0

Send = Callable[[dict[str, Any]], Awaitable[Any]]


def reply(message: dict[str, Any]) -> None:
    # `{"peer":` first and without spaces: the parent's parseReply tells protocol lines by it.
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Driver:
    """drive.ts's Driver: warm-up, sequential and load phases around one `send`."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.totals = {"sent": 0, "received": 0, "bad": 0}

    async def warmup(self, count: int, cap_ms: float, in_flight: int, load_ms: float) -> dict[str, Any]:
        async def work() -> tuple[list[float], int, float]:
            end = time.perf_counter() + cap_ms / 1000
            done = 0
            while done < count and time.perf_counter() < end:
                await self.one()
                done += 1
            if load_ms > 0:
                samples, _, _ = await self.loop(in_flight, load_ms)
                done += len(samples)
            return [], done, 0

        return await self.phase("warmup", work)

    async def sequential(self, count: int, cap_ms: float) -> dict[str, Any]:
        async def work() -> tuple[list[float], int, float]:
            samples: list[float] = []
            end = time.perf_counter() + cap_ms / 1000
            while len(samples) < count and time.perf_counter() < end:
                samples.append(await self.one())
            return samples, len(samples), 0

        return await self.phase("sequential", work)

    async def load(self, in_flight: int, duration_ms: float) -> dict[str, Any]:
        return await self.phase("load", lambda: self.loop(in_flight, duration_ms))

    async def loop(self, in_flight: int, duration_ms: float) -> tuple[list[float], int, float]:
        samples: list[float] = []
        end = time.perf_counter() + duration_ms / 1000
        in_window = 0

        async def worker() -> None:
            nonlocal in_window
            while time.perf_counter() < end:
                samples.append(await self.one())
                if time.perf_counter() <= end:
                    in_window += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return samples, in_window, duration_ms

    async def one(self) -> float:
        n = self.totals["sent"]
        self.totals["sent"] += 1
        payload = {"n": n, "text": TEXT}
        start = time.perf_counter()
        answer = await self.send(payload)
        took = (time.perf_counter() - start) * 1000
        self.totals["received"] += 1
        if not (isinstance(answer, dict) and answer.get("n") == n and answer.get("text") == TEXT):
            self.totals["bad"] += 1
        return took

    async def phase(self, cmd: str, work: Callable[[], Awaitable[tuple[list[float], int, float]]]) -> dict[str, Any]:
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        samples, completed, window_ms = await self.watched(work(), cmd)
        elapsed_ms = (time.perf_counter() - wall0) * 1000
        return {
            "peer": "done",
            "cmd": cmd,
            "samples": [round(value, 4) for value in samples],
            "completed": completed,
            "windowMs": window_ms,
            "elapsedMs": elapsed_ms,
            "cpuMs": (time.process_time() - cpu0) * 1000,
            "totals": dict(self.totals),
        }

    async def watched(self, work: Awaitable[Any], label: str) -> Any:
        """Fails when `received` has not moved for STALL_S: a request was lost and would wait forever."""
        task = asyncio.ensure_future(work)
        seen = self.totals["received"]
        quiet_since = time.perf_counter()
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if self.totals["received"] != seen:
                seen = self.totals["received"]
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since > STALL_S:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                missing = self.totals["sent"] - self.totals["received"]
                raise RuntimeError(f"{label}: no answer for {STALL_S * 1000:.0f} ms, {missing} request(s) unanswered (lost?)")


async def start_requester(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> Driver:
    bus = await stack.enter_async_context(relais.connect(id=args.id, broker=args.url))
    await bus.wait_for_handler(args.action, timeout=15.0)
    return Driver(lambda payload: bus.request(args.action, payload))


async def start_handler(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> list[int]:
    bus = await stack.enter_async_context(relais.connect(id=args.id, broker=args.url))
    served = [0]

    async def echo(payload: Any, ctx: Any) -> Any:
        served[0] += 1
        return payload

    await bus.serve(args.action, echo)
    return served


async def execute(command: dict[str, Any], driver: Driver | None, served: list[int] | None) -> None:
    cmd = command.get("cmd")
    try:
        if cmd == "count":
            if served is None:
                raise RuntimeError("count is a handler command")
            reply({"peer": "done", "cmd": "count", "served": served[0]})
            return
        if driver is None:
            raise RuntimeError(f"{cmd} is a requester command")
        if cmd == "warmup":
            reply(await driver.warmup(command["count"], command["capMs"], command["inFlight"], command["loadMs"]))
        elif cmd == "sequential":
            reply(await driver.sequential(command["count"], command["capMs"]))
        elif cmd == "load":
            reply(await driver.load(command["inFlight"], command["durationMs"]))
        else:
            raise RuntimeError(f"unknown command {cmd}")
    except Exception as error:  # every command gets one reply, an error included
        message: dict[str, Any] = {"peer": "error", "cmd": cmd, "message": f"{type(error).__name__}: {error}"}
        if driver is not None:
            message["totals"] = dict(driver.totals)
        reply(message)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["requester", "handler"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", default=f"peer-{os.getpid()}")
    parser.add_argument("--peer", default="")
    parser.add_argument("--action", default="bench/echo")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async with contextlib.AsyncExitStack() as stack:
        driver: Driver | None = None
        served: list[int] | None = None
        try:
            if args.role == "requester":
                driver = await start_requester(stack, args)
            else:
                served = await start_handler(stack, args)
        except Exception as error:
            reply({"peer": "error", "message": f"start failed: {type(error).__name__}: {error}"})
            return 1
        reply({"peer": "ready", "pid": os.getpid()})

        # One command at a time, in order: the parent waits for each reply before the next.
        while line := await stdin.readline():
            try:
                command = json.loads(line)
            except ValueError:
                command = None
            if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
                reply({"peer": "error", "message": f"not a command: {line[:200]!r}"})
                continue
            await execute(command, driver, served)

        # stdin closed: close the connections (bounded), then the last line.
        forced = threading.Timer(CLOSE_S, lambda: os._exit(0))
        forced.daemon = True
        forced.start()
        with contextlib.suppress(Exception):
            await stack.aclose()
        last: dict[str, Any] = {"peer": "result"}
        if driver is not None:
            last["totals"] = dict(driver.totals)
        if served is not None:
            last["served"] = served[0]
        reply(last)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
