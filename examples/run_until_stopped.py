"""A client that runs until it is stopped: Ctrl-C (SIGINT) or SIGTERM closes it cleanly.

    python examples/run_until_stopped.py                 # an embedded hub, asyncio
    python examples/run_until_stopped.py --backend trio  # the same code on trio
    python examples/run_until_stopped.py http://localhost:8765 --token secret

The client reconnects by itself for as long as it runs; the signal ends the wait, and leaving
``async with`` closes the connection (the server sees a clean disconnect). Without a URL it
starts an embedded hub (needs ``pip install 'tether[hub]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator

import anyio

import tether


async def main(url: str, token: str | None) -> None:
    async with tether.RealtimeClient(url, auth={"token": token} if token else None) as rt:
        rt.on_connect(lambda: print("connected", rt.get_socket_id(), flush=True))
        rt.on_disconnect(lambda reason: print("disconnected:", reason, flush=True))
        rt.on("chat-message", lambda payload: print("got", payload, flush=True))
        rt.join("technology-chat")
        # Signals as an async iterator: works on asyncio and trio, with no thread and no
        # KeyboardInterrupt in the middle of the client's work (POSIX; see the docs for Windows).
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                print("stopping on", signal.Signals(signum).name, flush=True)
                break
    print("closed", flush=True)  # the client is closed and its tasks are gone


@contextlib.contextmanager
def hub_for(url: str | None, token: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tether.hub import HubConfig, start_hub_in_thread

    with start_hub_in_thread(HubConfig(port=0, token=token)) as hub:
        yield hub.url


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--token")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    with hub_for(args.url, args.token) as url:
        anyio.run(main, url, args.token, backend=args.backend)
