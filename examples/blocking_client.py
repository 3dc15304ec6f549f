"""The blocking client: tether in code without an event loop (a script, a thread pool).

    python examples/blocking_client.py                   # an embedded hub
    python examples/blocking_client.py --backend trio    # the client's own loop on trio
    python examples/blocking_client.py http://localhost:8765 --token secret   # your own hub

Without a URL it starts an embedded hub (needs ``pip install 'tether[hub]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tether.sync

WORKERS = 3
MESSAGES = 2


def main(url: str, token: str | None, backend: str) -> None:
    auth = {"token": token} if token else None
    with tether.sync.RealtimeClient(url, auth=auth, backend=backend) as rt:
        rt.on_disconnect(lambda reason: print("Disconnected due to", reason))
        received: list[dict[str, Any]] = []
        all_back = threading.Event()

        @rt.on("chat-message")
        def on_chat(payload: dict[str, Any]) -> None:
            # Runs in the client's listener thread, one message at a time: it may block.
            received.append(payload["message"])
            if len(received) == WORKERS * MESSAGES:
                all_back.set()

        rt.wait_connected(timeout=10)  # blocks; raises tether.ConnectError on a refusal
        print("Connected")
        rt.join("technology-chat")

        def worker(n: int) -> None:
            # Any thread may use the client.
            for i in range(MESSAGES):
                rt.send("technology-chat", "chat-message", {"worker": n, "i": i})

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(worker, range(WORKERS)))
        members = rt.get_members("technology-chat")  # blocks until the hub answers
        print("Members:", len(members))
        if not all_back.wait(10):
            raise SystemExit("our messages did not come back")
        for n in range(WORKERS):
            print(f"worker {n}:", [m["i"] for m in received if m["worker"] == n])
    # Here the connection is closed and the client's threads are gone.


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
        main(url, args.token, args.backend)
