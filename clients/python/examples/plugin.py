#!/usr/bin/env python3
"""A Domogik-style plugin on Relais: a small home-automation plugin with two sensors and a lamp.

What a Domogik plugin does, and how it maps onto the bus (docs/python.md, "The plugin example"):

- it reports **starting** while it loads its configuration, then **alive** (protocol §11.3:
  `startup="manual"`, then `await bus.mark_ready()`): `relais clients` shows the change;
- its **configuration** is in the router's key-value store (protocol §14.6, `bus.config()`):
  `config/<plugin>`, written with the defaults the first time, checked by the router against
  the JSON Schema the plugin announces, and followed while it runs (a new `interval` applies at
  the next notification);
- it **serves its actions**: `<plugin>/devices/get` (the devices and their last values),
  `<plugin>/lamp/set` (a command with an answer), `<plugin>/devices/scan` (a longer command
  that reports progress and stops when the caller cancels it, or its deadline passes);
- it **publishes sensor values** as notifications, every `--interval` seconds, on
  `sensor/<plugin>/<device>/notification`;
- it **stops cleanly** on SIGTERM or SIGINT: the actions go, the presence says `stopped`
  (not `dead`), and the process exits 0;
- its **log lines can be read on demand** from anywhere (protocol §11.4, `relais logs <id>`):
  it logs through `bus.logger` while connected.

Try it with `relais start` running (`node bin/relais.js start`, or `npx relais start`):

    PYTHONPATH=clients/python python3 clients/python/examples/plugin.py --id plugin-demo &
    npx relais clients                                          # plugin-demo: starting, then alive
    npx relais call plugin-demo/devices/get
    npx relais call plugin-demo/lamp/set '{"on": true}'
    npx relais call plugin-demo/devices/scan '{"seconds": 2}'   # progress, then the devices found
    npx relais sub 'sensor/plugin-demo/#'                       # a value per sensor every interval
    npx relais kv put config plugin-demo '{"interval": 1}' --json   # the plugin follows it at once
    npx relais kv put config plugin-demo '{"interval": "fast"}' --json   # refused: interval: expected number
    npx relais logs plugin-demo                                 # its log lines, fetched from the plugin
    kill %1                                                     # SIGTERM: relais clients shows stopped

Only the standard library and `relais` (paho-mqtt underneath).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import relais

@dataclass
class Sensor:
    """A simulated sensor: a value that drifts around `base`."""

    unit: str
    base: float
    spread: float
    value: float = 0.0

    def read(self) -> float:
        self.value = round(self.base + random.uniform(-self.spread, self.spread), 2)
        return self.value


@dataclass
class Devices:
    """What the plugin manages: its sensors and a lamp it can switch."""

    sensors: dict[str, Sensor] = field(default_factory=dict)
    lamp_on: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "sensors": {name: {"value": sensor.value, "unit": sensor.unit} for name, sensor in self.sensors.items()},
            "lamp": {"on": self.lamp_on},
        }


#: The plugin's configuration (`config/<id>`), as JSON Schema: announced in `config-schema/<id>`,
#: the router refuses any write that breaks it (code 2, naming the field).
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {"interval": {"type": "number", "minimum": 0.1, "description": "seconds between two sensor notifications"}},
    "required": ["interval"],
    "additionalProperties": False,
}


async def load_configuration(bus: relais.Bus, plugin_id: str, interval: float, log: logging.Logger) -> tuple[Devices, relais.ClientConfig]:
    """What a plugin does while `starting`: read its configuration (the defaults written the
    first time: `--interval`), open its devices."""
    config = await bus.config(CONFIG_SCHEMA, defaults={"interval": interval})
    log.info("%s: configuration loaded (revision %d): %s", plugin_id, config.revision, config.value)
    return Devices(sensors={"living-room": Sensor("°C", 21.0, 0.5), "cellar": Sensor("%RH", 64.0, 3.0)}), config


async def log_changes(config: relais.ClientConfig, plugin_id: str, log: logging.Logger) -> None:
    """Each new configuration, as an operator writes it (`relais kv put config <id> ...`)."""
    async for value in config.changes():
        log.info("%s: configuration changed (revision %d): %s", plugin_id, config.revision, value)


async def publish_sensors(bus: relais.Bus, plugin_id: str, devices: Devices, config: relais.ClientConfig) -> None:
    """Every `interval` seconds (the configuration's, as it is now), one notification per sensor (§8.1)."""
    while True:
        for name, sensor in devices.sensors.items():
            bus.notify(f"sensor/{plugin_id}/{name}", {"device": name, "value": sensor.read(), "unit": sensor.unit, "at": time.time()})
        await asyncio.sleep(config.value["interval"])


async def run(plugin_id: str, broker: str | None, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # startup="manual": connected but `starting` (served by nobody yet) until mark_ready().
    async with relais.connect(id=plugin_id, broker=broker, startup="manual", info={"role": "plugin", "version": "1.0.0"}) as bus:
        # bus.logger's lines are kept and served by relais/logs/get (`relais logs <id>`), as well as printed.
        log = bus.logger
        log.info("%s: connected, starting", plugin_id)
        devices, config = await load_configuration(bus, plugin_id, interval, log)

        @bus.handle(f"{plugin_id}/devices/get", description="the devices and their last values")
        async def devices_get(payload: Any, ctx: relais.HandlerContext) -> dict[str, Any]:
            return devices.snapshot()

        @bus.handle(f"{plugin_id}/lamp/set", description='switch the lamp: {"on": true|false}')
        async def lamp_set(payload: Any, ctx: relais.HandlerContext) -> dict[str, Any]:
            if not isinstance(payload, dict) or not isinstance(payload.get("on"), bool):
                # Code 2 to the caller, naming the field (protocol §5.1).
                raise relais.InvalidMessageError("field 'on': a boolean is required")
            devices.lamp_on = payload["on"]
            log.info("%s: lamp %s (asked by %s)", plugin_id, "on" if devices.lamp_on else "off", ctx.source)
            bus.notify(f"sensor/{plugin_id}/lamp", {"device": "lamp", "on": devices.lamp_on, "at": time.time()})
            return {"lamp": {"on": devices.lamp_on}}

        @bus.handle(f"{plugin_id}/devices/scan", description='look for new devices for {"seconds": n}, with progress')
        async def devices_scan(payload: Any, ctx: relais.HandlerContext) -> dict[str, Any]:
            seconds = float(payload.get("seconds", 2)) if isinstance(payload, dict) else 2.0
            steps = 4
            # A cancel from the caller (or `relais kill`), or the request's deadline, cancels this
            # task: the sleep raises asyncio.CancelledError and the library answers for us.
            for step in range(1, steps + 1):
                await asyncio.sleep(seconds / steps)
                await ctx.progress(step / steps, {"scanned": step, "of": steps})
            return {"found": [{"device": "hall-door", "type": "contact"}]}

        await bus.wait_served()  # the three subscriptions in place (the decorators make them in the background)
        await bus.mark_ready()  # presence: alive, with the actions
        log.info("%s: alive", plugin_id)

        sensors = asyncio.create_task(publish_sensors(bus, plugin_id, devices, config))
        changes = asyncio.create_task(log_changes(config, plugin_id, log))
        await stop.wait()
        log.info("%s: stopping", plugin_id)
        config.close()
        sensors.cancel()
        for task in (sensors, changes):
            try:
                await task
            except asyncio.CancelledError:
                pass
    # Leaving `async with` closed the bus: handlers finished or cancelled, presence `stopped`.
    logging.getLogger("plugin").info("%s: stopped", plugin_id)


def main() -> None:
    parser = argparse.ArgumentParser(description="A Domogik-style plugin on Relais (starting → alive, actions, sensor notifications, clean stop).")
    parser.add_argument("--id", default="plugin-demo", help="client id, and the first level of its actions (default plugin-demo)")
    parser.add_argument("--broker", default=None, help="broker URL (default: RELAIS_BROKER, else mqtt://127.0.0.1:1883)")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between two sensor notifications, the configuration's default when none is stored (default 5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run(args.id, args.broker, args.interval))


if __name__ == "__main__":
    main()
