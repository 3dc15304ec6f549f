"""A ceiling, not a client: anyio + wsproto speaking only the minimal protocol (recv only).

It opens the WebSocket, answers the Engine.IO handshake with a Socket.IO CONNECT, asks for a
blast and counts the frames that carry events (``42...`` text frames; for binary events the
attachment frames), answering Engine.IO pings. No JSON decoding, no listener dispatch, no
tasks: what the same I/O stack as tether's transport costs per event, on asyncio or trio.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage

from . import _harness as h


async def bench_recv(args: Any) -> Any:
    url, kind, count, reps, warmup, timeout = (
        args.url,
        args.kind,
        args.count,
        args.reps,
        args.warmup,
        args.timeout,
    )
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    stream = await anyio.connect_tcp(host.strip("[]"), int(port))
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send(
        ws.send(Request(host=f"{host}:{port}", target="/socket.io/?EIO=4&transport=websocket"))
    )
    binary = kind == "bin1k"
    samples = []
    pending: list[Any] = []

    async def next_events() -> list[Any]:
        while True:
            events = list(ws.events())
            if events:
                return events
            ws.receive_data(await stream.receive(65536))

    async with stream:
        accepted = False
        while not accepted:
            for event in await next_events():
                if isinstance(event, AcceptConnection):
                    accepted = True
                else:
                    pending.append(event)
        await stream.send(ws.send(TextMessage(data="40")))
        # Wait for the Socket.IO CONNECT reply before asking for anything.
        connected = any(isinstance(e, TextMessage) and e.data.startswith("40") for e in pending)
        while not connected:
            for event in await next_events():
                connected = connected or (
                    isinstance(event, TextMessage) and event.data.startswith("40")
                )
        for rep, n in enumerate([warmup] * bool(warmup) + [count] * reps):
            request = "42" + json.dumps(
                ["blast", {"kind": kind, "count": n}], separators=(",", ":")
            )
            t0, c0 = time.perf_counter(), time.process_time()
            await stream.send(ws.send(TextMessage(data=request)))
            received = 0
            head = ""  # the first characters of the text message being received
            with anyio.fail_after(timeout):
                while received < n:
                    ws.receive_data(await stream.receive(65536))
                    out = b""
                    # wsproto hands out a frame split across reads in pieces: count a message
                    # once, when it is finished, by what it started with.
                    for event in ws.events():
                        if isinstance(event, BytesMessage):
                            received += binary and event.message_finished
                        elif isinstance(event, TextMessage):
                            if len(head) < 2:
                                head += event.data[: 2 - len(head)]
                            if event.message_finished:
                                if head == "42":
                                    received += not binary
                                elif head == "2":
                                    out += ws.send(TextMessage(data="3"))
                                head = ""
                    if out:
                        await stream.send(out)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if rep or not warmup:
                samples.append({"events": n, "wall": wall, "cpu": cpu})
    return h.recv_summary(samples)


async def main(args: Any) -> None:
    if args.bench != "recv":
        raise SystemExit("bare_client only measures recv")
    result = await bench_recv(args)
    h.report("RESULT", result)


if __name__ == "__main__":
    arguments = h.parse_args(backends=("asyncio", "trio"))
    anyio.run(
        main,
        arguments,
        backend=arguments.backend,
        backend_options=h.anyio_backend_options(arguments.backend, arguments.loop),
    )
