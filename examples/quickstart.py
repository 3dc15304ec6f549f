"""The README's quickstart: connect, listen to the lifecycle, join a channel, talk.

    python examples/quickstart.py                 # an embedded hub, asyncio
    python examples/quickstart.py --backend trio  # the same code on trio
    python examples/quickstart.py http://localhost:8765 --token secret   # your own hub

Without a URL it starts an embedded hub (needs ``pip install 'tether[hub]'``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import anyio

import tether


async def main(url: str, token: str | None) -> None:
    async with tether.RealtimeClient(url, auth={"token": token} if token else None) as rt:
        rt.on_connect(lambda: print("Connected"))
        rt.on_disconnect(lambda reason: print("Disconnected due to", reason, rt.get_socket_id()))
        rt.on_reconnect_attempt(lambda n: print("Reconnecting attempt#", n))
        rt.on_error(lambda err: print("Connection error", err, err.data))
        got_it = anyio.Event()

        def on_chat(payload: dict[str, object]) -> None:
            print("Got", payload["message"], "in", payload["channel"])
            got_it.set()

        rt.on("chat-message", on_chat)

        await rt.wait_connected(timeout=10)
        rt.join("technology-chat")
        rt.send("technology-chat", "chat-message", {"text": "hi"})
        members = await rt.get_members("technology-chat")
        print("Members:", [member.id for member in members])
        with anyio.fail_after(10):
            await got_it.wait()  # our own message comes back (echo is on by default)


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
