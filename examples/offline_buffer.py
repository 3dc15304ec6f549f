"""Nothing sent while offline is lost: a client keeps talking while its connection is cut.

    python examples/offline_buffer.py [--backend trio]

An embedded hub drops the sender's transport; the sender keeps sending; after the automatic
reconnect the channel is re-joined first, then the buffered messages arrive, in order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import anyio

import tether
from tether.hub import HubConfig, start_hub_in_thread


async def main(url: str, drop: Callable[[str], bool]) -> None:
    received: list[int] = []
    async with (
        tether.RealtimeClient(url) as reader,
        tether.RealtimeClient(url, reconnection_delay=0.5) as writer,
    ):
        reader.on("count", lambda payload: received.append(payload["message"]))
        writer.on_disconnect(lambda reason: print("writer disconnected:", reason))
        writer.on_reconnect(lambda n: print("writer reconnected after", n, "attempt(s)"))
        await reader.wait_connected(10)
        await writer.wait_connected(10)
        joined = anyio.Event()
        reader.on_join(lambda payload: joined.set())  # the reader hears its own join
        reader.join("counting")
        writer.join("counting")
        with anyio.fail_after(5):
            await joined.wait()
        for i in range(3):
            writer.send("counting", "count", i)
        with anyio.fail_after(5):  # delivered while online
            while len(received) < 3:
                await anyio.sleep(0.01)
        sid = writer.get_socket_id()
        assert sid is not None
        drop(sid)  # cut the writer's network
        with anyio.fail_after(5):
            while writer.is_connected():
                await anyio.sleep(0.01)
        for i in range(3, 6):
            writer.send("counting", "count", i)  # buffered while offline
        print("buffered while offline:", writer.buffered)
        with anyio.fail_after(10):
            while len(received) < 6:
                await anyio.sleep(0.01)
        print("received, in order:", received)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    with start_hub_in_thread(HubConfig(port=0)) as hub:
        anyio.run(main, hub.url, hub.drop, backend=args.backend)
