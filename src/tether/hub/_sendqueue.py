"""A bounded send queue for one Engine.IO session.

python-engineio queues every packet for a client in an unbounded ``asyncio.Queue`` until the
session's writer has written it (``_compat._CompatEngineIO``). A client that does not read
stops the writer (the transport stays paused) while other members keep publishing, so the hub
would keep every message for it: hundreds of megabytes within a minute. This queue counts the
packets and their bytes; the packet that would pass either bound is not queued, everything
queued is released, and ``on_overflow`` is called once, to disconnect the client
(specs/hub-wire-format.md §4.2).

``put_nowait``/``get_nowait`` are overridden because ``asyncio.Queue.put``/``get`` end in them;
the ``None`` sentinel (python-engineio's "close the writer") always passes and is not counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["SendQueue", "packet_size"]


def packet_size(pkt: Any) -> int:
    """Wire size of an ``engineio.packet.Packet`` in bytes (its text or binary data).

    ``isascii`` is constant time in CPython and true for almost every packet (python-socketio
    writes JSON with ``ensure_ascii``); only other text is encoded to count its bytes.
    """
    data = getattr(pkt, "data", None)
    if isinstance(data, str):
        return len(data) + 1 if data.isascii() else len(data.encode()) + 1
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    return 16  # OPEN (a dict), PING, NOOP, CLOSE: a handful of bytes


class SendQueue(asyncio.Queue[Any]):
    """An ``asyncio.Queue`` that refuses to hold more than ``max_packets`` / ``max_bytes``."""

    def __init__(
        self, max_packets: int, max_bytes: int, on_overflow: Callable[[SendQueue], None]
    ) -> None:
        super().__init__()
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = False
        self._on_overflow = on_overflow
        self._sizes: deque[int] = deque()

    @property
    def packets(self) -> int:
        """Packets waiting (the ``None`` sentinel not counted)."""
        return len(self._sizes)

    def put_nowait(self, item: Any) -> None:
        if item is None:
            super().put_nowait(None)
            return
        if self.overflowed:
            return  # the session is being closed: nothing more will be written
        size = packet_size(item)
        if len(self._sizes) >= self.max_packets or self.bytes + size > self.max_bytes:
            self.overflowed = True
            self._release()
            self._on_overflow(self)
            return
        self._sizes.append(size)
        self.bytes += size
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None:
            self.bytes -= self._sizes.popleft()
        return item

    def _release(self) -> None:
        """Drop every queued packet (keeping sentinels), so the memory is freed now."""
        sentinels = 0
        while True:
            try:
                item = super().get_nowait()
            except asyncio.QueueEmpty:
                break
            self.task_done()  # AsyncSocket.close(wait=True) joins the queue
            if item is None:
                sentinels += 1
        self._sizes.clear()
        self.bytes = 0
        for _ in range(sentinels):
            super().put_nowait(None)
