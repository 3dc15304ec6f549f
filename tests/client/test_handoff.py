"""Handing a call from another thread to the client's event loop never leaves the calling
thread waiting for a loop that is gone (``tether._driver._handoff``).

Not ``async`` tests: each one owns the event loop's life, to end it at the wrong moment.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import tether
from tether._driver._handoff import LOOP_CHECK_INTERVAL, run_in_loop
from tether.transport import MemoryConnector

from .helpers import in_thread


def test_a_call_handed_to_an_asyncio_loop_closed_before_it_ran_raises() -> None:
    # A loop driven by run_until_complete: the client is entered, then the loop is not run
    # again and is closed. A call handed over in between is scheduled in a loop that never
    # runs it; anyio.from_thread.run_sync would wait for it for ever.
    loop = asyncio.new_event_loop()
    rt = tether.RealtimeClient(
        "http://example.test", transport=MemoryConnector(), auto_connect=False
    )
    loop.run_until_complete(rt.__aenter__())
    thread, outcome = in_thread(lambda: rt.emit("never"))
    time.sleep(2 * LOOP_CHECK_INTERVAL)
    assert thread.is_alive()  # waiting: the loop is not running
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()
    thread.join(10 * LOOP_CHECK_INTERVAL)
    assert not thread.is_alive()
    [(kind, error)] = outcome
    assert kind == "error" and isinstance(error, RuntimeError) and "has finished" in str(error)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_call_handed_to_a_finished_loop_raises(backend: str) -> None:
    async def token() -> anyio.lowlevel.EventLoopToken:
        return anyio.lowlevel.current_token()

    finished = anyio.run(token, backend=backend)
    with pytest.raises(RuntimeError, match="has finished"):
        run_in_loop(finished, lambda: None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_handed_over_call_returns_its_result_and_raises_its_errors(backend: str) -> None:
    results: list[Any] = []

    async def main() -> None:
        token = anyio.lowlevel.current_token()

        def from_thread() -> None:
            results.append(run_in_loop(token, lambda x: x * 2, 21))
            try:
                run_in_loop(token, _raise_timeout)  # not mistaken for the wait's own timeout
            except TimeoutError as exc:
                results.append(exc)

        await anyio.to_thread.run_sync(from_thread)

    anyio.run(main, backend=backend)
    assert results[0] == 42 and isinstance(results[1], TimeoutError)


def _raise_timeout() -> None:
    raise TimeoutError("fn's own")
