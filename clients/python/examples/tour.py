#!/usr/bin/env python3
"""The API tour of docs/python.md, runnable: a handler and a requester in one process, each
with its own connection, on a running `relais start` (its router answers `clients()`,
`history()`, `events()`, `kv()` and `config()`).

    PYTHONPATH=clients/python python3 clients/python/examples/tour.py [--broker mqtt://127.0.0.1:1883]

It prints what each step gives and exits 0 when every step did what the tour says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import relais


async def tour(broker: str | None) -> None:
    # --- a handler: an action with progress, cancellation and a typed error -----------------
    async with relais.connect(id="tour-handler", broker=broker) as service:

        @service.handle("tour/install", description='install a package: {"name": str}')
        async def install(payload: Any, ctx: relais.HandlerContext) -> dict[str, Any]:
            name = payload.get("name") if isinstance(payload, dict) else None
            if not isinstance(name, str):
                raise relais.InvalidMessageError("field 'name': a string is required")  # code 2 to the caller
            for fraction in (0.2, 0.5, 0.8):
                await asyncio.sleep(0.05)  # a cancel or the deadline raises asyncio.CancelledError here
                await ctx.progress(fraction, {"name": name})
            return {"installed": name, "by": ctx.source}

        await service.wait_served()

        # --- a requester --------------------------------------------------------------------
        async with relais.connect(id="tour-ui", broker=broker) as ui:
            await ui.wait_for_handler("tour/install", timeout=5.0)

            # One answer.
            result = await ui.request("tour/install", {"name": "weather"}, timeout=10.0)
            print("request:", result)
            assert result == {"installed": "weather", "by": "tour-ui"}, result

            # Every step: accepted, progress 0.2 / 0.5 / 0.8, final.
            kinds = []
            async for step in ui.call("tour/install", {"name": "weather"}, timeout=10.0):
                print(f"call: {step.kind:9} {step.progress if step.progress is not None else '':4} {step.payload}")
                kinds.append(step.kind)
            assert kinds[-1] == "final" and kinds.count("progress") == 3, kinds

            # Failures are typed (protocol §5.1).
            try:
                await ui.request("tour/install", {"name": 42}, timeout=10.0)
            except relais.InvalidMessageError as error:
                print("typed error:", type(error).__name__, error.response_code, error)
            try:
                await ui.request("tour/nobody-serves-this", {}, timeout=10.0)
            except relais.NoHandlerError as error:
                print("typed error:", type(error).__name__, error)
            try:
                await ui.request("tour/install", {"name": "slow"}, timeout=0.1)
            except TimeoutError as error:  # relais.TimeoutError is also the builtin one
                print("typed error:", type(error).__name__, error)

            # Cancelling the awaiting task sends a cancel: the handler's task is cancelled too.
            task = asyncio.create_task(ui.request("tour/install", {"name": "cancelled"}, timeout=10.0))
            await asyncio.sleep(0.08)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            print("cancelled:", task.cancelled())

            # Notifications: subscribe first, then publish.
            async with await ui.subscribe("tour/sensors/+/notification") as sensors:
                service.notify("tour/sensors/cellar", {"c": 12.5})
                message = await asyncio.wait_for(sensors.__anext__(), 5.0)
                print("notification:", message.topic, message.payload, "from", message.source)
                assert message.payload == {"c": 12.5}

            # Presence and the router's registry (protocol §7, §11.3).
            print("providers of tour/install:", ui.providers("tour/install"))
            registry = await ui.clients()
            print("registry:", {cid: c["status"] for cid, c in registry["clients"].items() if cid.startswith("tour-")})

            # History of one request (protocol §11.2) and the event stream from a cursor (§11.8).
            steps = [step async for step in ui.call("tour/install", {"name": "history"}, timeout=10.0)]
            token = steps[-1].token
            rows = []
            async for row in ui.follow(token):
                rows.append(row["kind"])
            print("follow", token, rows)
            assert rows[0] == "command" and rows[-1] == "final", rows

            events = ui.events(since=0)
            first = await asyncio.wait_for(events.__anext__(), 10.0)
            print("first event since 0:", {key: first[key] for key in ("type", "cursor") if key in first})
            await events.aclose()

            # The key-value store (§14): a compare-and-set that loses, and a watch.
            rooms = ui.kv("tour-rooms")
            revision = await rooms.put("kitchen", {"temp": 21})
            entry = await rooms.get("kitchen")
            print("kv get:", entry["value"], "revision", entry["revision"], "by", entry["author"])
            await service.kv("tour-rooms").put("kitchen", {"temp": 22})
            try:
                await rooms.put("kitchen", {"temp": 23}, expect_revision=revision)
                raise AssertionError("a stale expect_revision must conflict")
            except relais.RevisionConflictError as conflict:
                print("kv conflict: now at", conflict.details["currentRevision"])
            watch = rooms.watch()
            async for item in watch:
                print("kv watch:", item)
                if relais.is_up_to_date(item):
                    break
            await watch.aclose()

            # The configuration (§14.6): the defaults the first time, then what is stored.
            config = await service.config({"type": "object", "properties": {"workers": {"type": "integer"}}}, defaults={"workers": 2})
            print("config:", config.value, "revision", config.revision)
            config.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The API tour of docs/python.md against a running relais start.")
    parser.add_argument("--broker", default=None, help="default: RELAIS_BROKER, else mqtt://127.0.0.1:1883")
    asyncio.run(tour(parser.parse_args().broker))


if __name__ == "__main__":
    main()
