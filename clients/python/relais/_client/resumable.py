"""A router's stream asked again whenever its steps may have been lost (protocol §11.2, §14.9):
after this client's own reconnection (at once), and after an error the caller takes as
passing (a router's `StreamInterruptedError`: its connection was lost; the router away), a
moment later. The kv watch and the history follow are its two users; each knows where it
stands and asks from there (`payload_of`, called for every attempt).
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional

from ..protocol.errors import RemoteError

if TYPE_CHECKING:
    from .bus import Bus

log = logging.getLogger("relais.router")

#: Pause before asking again after an error taken as passing.
RETRY_S = 1.0


def is_stream_interrupted(error: BaseException) -> bool:
    """Whether `error` is a router's `StreamInterruptedError` (code 1): ask again after the last item handled."""
    return isinstance(error, RemoteError) and error.remote_name == "StreamInterruptedError"


class _Restart(Exception):
    """The connection came back: the running request is dropped and asked again."""


async def resumed_steps(bus: "Bus", action: str, payload_of: Callable[[], dict], timeout_of: Callable[[], Optional[float]],
                        may_retry: Callable[[Exception], bool], what: str) -> AsyncIterator[Any]:
    """The steps of `action`, attempt after attempt, until one ends (then returns) or fails with
    an error `may_retry` refuses (raised; so is any error once the client is closed).
    `timeout_of` gives each attempt's time-out (None: the client's default)."""
    while True:
        steps: asyncio.Queue[Any] = asyncio.Queue()
        pump = asyncio.ensure_future(_pump(bus.call(action, payload_of(), timeout=timeout_of()), steps))

        # A lost connection may have lost steps too: ask again once it is back.
        def online(pump: "asyncio.Future[None]" = pump, steps: "asyncio.Queue[Any]" = steps) -> None:
            pump.cancel()
            steps.put_nowait(_Restart())
        bus._on_main_online.append(online)
        try:
            while True:
                step = await steps.get()
                if isinstance(step, BaseException):
                    raise step
                if step is None:
                    return
                yield step
        except _Restart:
            continue
        except Exception as error:  # noqa: BLE001 - sorted by the caller: a passing one is asked again
            if bus.closed or not may_retry(error):
                raise
            log.debug("%s: the router did not answer (%s); asking again", what, error)
            await _pause(steps, RETRY_S)
        finally:
            if online in bus._on_main_online:
                bus._on_main_online.remove(online)
            pump.cancel()


async def _pump(steps: AsyncIterator[Any], into: "asyncio.Queue[Any]") -> None:
    """Hands each step of a call on; None at its end, the error it ends with."""
    try:
        async for step in steps:
            into.put_nowait(step)
        into.put_nowait(None)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - the caller decides what it means
        into.put_nowait(error)
    finally:
        # Sends the cancel (§4.4) when the stream stopped before the router ended it.
        await steps.aclose()  # type: ignore[attr-defined]


async def _pause(steps: "asyncio.Queue[Any]", seconds: float) -> None:
    """Waits `seconds` before asking again, or less when the connection comes back meanwhile (a `_Restart` in `steps`)."""
    try:
        await asyncio.wait_for(steps.get(), seconds)
    except asyncio.TimeoutError:
        pass
