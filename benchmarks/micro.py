"""Where the receive path's CPU goes, layer by layer, without a profiler's distortion.

``python -m benchmarks.micro [--count 50000]`` times, on the same server frames the blast
sends (built here byte for byte as socket.emit writes them), in one process and no network:

1. ``wsproto``: FrameProtocol.receive_bytes + received_frames() over the frames in 64 KiB
   reads (the layer of wsproto the transport uses once the handshake is done);
2. ``transport``: tether's WebSocketTransport.receive() on a fake byte stream (includes 1);
3. ``core``: tether.core.Connection.receive() for each message, plus what the driver's pump
   calls after it (data_to_send, drain_events, next_deadline);
4. ``json``: decoding the Socket.IO payloads alone (orjson when installed, as the core does).

Each is the best of 5 runs, in CPU µs per event. The end-to-end figure of the receive bench
minus (2) and (3) is what the driver (tasks, queues, listener dispatch) and the event loop
cost.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

import anyio
from wsproto.frame_protocol import FrameProtocol

from tether.core import Connection, CoreOptions, OpenTransport
from tether.transport._websocket import WebSocketTransport

from .clients._harness import PAD_BASE

READ_SIZE = 65536


def payload_for(kind: str) -> Any:
    if kind == "bin1k":
        return bytes(i & 0xFF for i in range(1024))
    size = 64 if kind == "json64" else 1024
    return {"seq": 0, "pad": "x" * (size - PAD_BASE)}


def ws_frame(data: bytes, binary: bool) -> bytes:
    """One unmasked server frame (RFC 6455 5.2), as ws's Sender.frame writes it."""
    opcode = 0x82 if binary else 0x81
    if len(data) < 126:
        return bytes([opcode, len(data)]) + data
    return bytes([opcode, 126]) + len(data).to_bytes(2, "big") + data


def messages_for(kind: str) -> list[str | bytes]:
    """The WebSocket messages of one socket.emit("e", payload) on namespace "/"."""
    payload = payload_for(kind)
    if kind == "bin1k":
        return ['451-["e",{"_placeholder":true,"num":0}]', payload]
    return ["42" + json.dumps(["e", payload], separators=(",", ":"))]


def frames_for(kind: str, count: int) -> bytes:
    one = b"".join(
        ws_frame(m.encode() if isinstance(m, str) else m, isinstance(m, bytes))
        for m in messages_for(kind)
    )
    return one * count


def open_ws() -> FrameProtocol:
    """wsproto's client framing layer, as the connector hands it to the transport."""
    return FrameProtocol(client=True, extensions=[])


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]


def best_of(runs: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def time_wsproto(kind: str, count: int) -> float:
    chunks = chunks_of(frames_for(kind, count))
    expected = count * len(messages_for(kind))

    def run() -> None:
        # The layer the transport uses after the handshake: wsproto's FrameProtocol, whose
        # frames are unpacked straight (no wsproto Event objects).
        frames = FrameProtocol(client=True, extensions=[])
        n = 0
        for chunk in chunks:
            frames.receive_bytes(chunk)
            for frame in frames.received_frames():
                n += frame.message_finished
        assert n == expected, (n, expected)

    return best_of(5, run)


class _FakeStream:
    """Enough of an anyio ByteStream for WebSocketTransport: receive() hands out chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        await anyio.lowlevel.checkpoint()
        try:
            return next(self._chunks)
        except StopIteration:
            raise anyio.EndOfStream from None

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def time_transport(kind: str, count: int, backend: str) -> float:
    chunks = chunks_of(frames_for(kind, count))
    expected = count * len(messages_for(kind))

    async def run_async() -> None:
        transport = WebSocketTransport(
            _FakeStream(chunks),  # type: ignore[arg-type]
            open_ws(),
            max_message_size=1_000_000,
            where="micro",
        )
        receive = transport.receive
        for _ in range(expected):
            await receive()

    return best_of(5, lambda: anyio.run(run_async, backend=backend))


def connected_core() -> Connection:
    core = Connection(CoreOptions(), random=random.Random(0).random)
    core.open(now=0.0)
    token = next(e.token for e in core.drain_events() if isinstance(e, OpenTransport))
    core.transport_opened(token, None, now=0.0)
    handshake = {
        "sid": "s",
        "upgrades": [],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 1000000,
    }
    core.receive("0" + json.dumps(handshake), now=0.0)
    core.receive('40{"sid":"x"}', now=0.0)
    core.data_to_send()
    core.drain_events()
    assert core.is_connected
    return core


def time_core(kind: str, count: int) -> tuple[float, float]:
    """(receive alone, receive + the pump's calls), CPU seconds for ``count`` events."""
    messages = messages_for(kind) * count

    def receive_only() -> None:
        core = connected_core()
        receive = core.receive
        drain = core.drain_events
        for i, message in enumerate(messages):
            receive(message, now=1.0)
            if i % 1000 == 0:
                drain()

    def with_pump() -> None:
        core = connected_core()
        receive = core.receive
        data_to_send, drain, deadline = core.data_to_send, core.drain_events, core.next_deadline
        for message in messages:
            receive(message, now=1.0)
            data_to_send()
            drain()
            deadline()

    return best_of(5, receive_only), best_of(5, with_pump)


def time_json(kind: str, count: int) -> float:
    from tether.core._json import loads

    texts = [m[2:] for m in messages_for(kind) if isinstance(m, str)]
    text = texts[0].split("-", 1)[1] if kind == "bin1k" else texts[0]

    def run() -> None:
        for _ in range(count):
            loads(text)

    return best_of(5, run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro", description=__doc__)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args(argv)
    n = args.count
    print(f"CPU µs per event, best of 5 runs of {n} events (no network, no profiler)\n")
    print(f"{'layer':44} {'json64':>8} {'json1k':>8} {'bin1k':>8}")
    rows: dict[str, list[float]] = {}
    for kind in ("json64", "json1k", "bin1k"):
        core_only, core_pump = time_core(kind, n)
        values = {
            "wsproto FrameProtocol (bytes → frames)": time_wsproto(kind, n),
            "transport on asyncio (incl. FrameProtocol)": time_transport(kind, n, "asyncio"),
            "transport on trio (incl. FrameProtocol)": time_transport(kind, n, "trio"),
            "core.receive": core_only,
            "core.receive + pump calls": core_pump,
            "json decode alone": time_json(kind, n),
        }
        for label, seconds in values.items():
            rows.setdefault(label, []).append(seconds / n * 1e6)
    for label, per_kind in rows.items():
        print(f"{label:44} " + " ".join(f"{v:8.2f}" for v in per_kind))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
