"""tether as a plain Socket.IO client, against any server (Node socket.io, python-socketio).

    python examples/socketio_server.py http://localhost:3000

Emits an ``echo`` event with a binary attachment, calls ``ack`` and waits for the
acknowledgement, and reads incoming events as an async iterator. Works with the test servers
in ``servers/`` (``node servers/node/server.js --port 3000``), which echo and acknowledge.
"""

from __future__ import annotations

import sys

import anyio

import tether


async def main(url: str) -> None:
    async with tether.RealtimeClient(url, reconnection_delay_max=2.0) as rt:
        await rt.wait_connected(timeout=10)
        print("connected as", rt.get_socket_id())
        async with rt.events("echo") as echoes:
            rt.emit("echo", "hello", {"n": 1}, b"\x00\x01 raw bytes")
            async for name, args in echoes:
                print("server echoed", name, args)
                break
        print("ack:", await rt.call("ack", "ping", 42, timeout=5))
        try:
            await rt.call("no-ack", timeout=0.5)
        except tether.AckTimeout:
            print("no-ack timed out, as it should")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    anyio.run(main, sys.argv[1])
