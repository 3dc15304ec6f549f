"""What continuity keeps: a bounded history per stream, and the senders whose messages it
has delivered (specs/delivery.md §4.2-§4.5).

A *stream* is one channel, or the broadcasts. Every message the hub delivers in it (a
``send``, ``channel:join``, ``channel:leave``, ``channel:update``, a broadcast) is an
``Entry`` with a position. ``History`` is the interface the hub uses; ``MemoryHistory``
implements it for one process, ``RedisHistory`` (``_redis_history.py``) in Redis Streams.

Positions are opaque to clients. The memory form is ``m:<epoch>:<n>``: the epoch is drawn
when the process starts, so a position from a hub that has since restarted (and forgot its
history) is told apart from one this hub never gave; ``n`` is one counter for every stream
of the process, so it only grows within a stream.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from tether.core import ResumeReason

__all__ = [
    "BROADCASTS",
    "Entry",
    "History",
    "MemoryHistory",
    "Replay",
    "stream_of",
]

#: The stream key of the broadcasts; a channel's key is its name prefixed with ``c:``.
BROADCASTS = "b"


def stream_of(channel: str | None) -> str:
    return BROADCASTS if channel is None else "c:" + channel


@dataclass(frozen=True, slots=True)
class Entry:
    """One delivered message of a stream, as it is replayed.

    ``payload`` already carries ``pos``. ``skip_client`` is the sender that asked for no
    echo (its client identity), so a replay to that client leaves the entry out too.
    """

    event: str
    payload: dict[str, Any]
    skip_client: str | None


@dataclass(frozen=True, slots=True)
class Replay:
    """What a re-join gets: the entries after its position, and the answer about them."""

    entries: list[Entry]
    #: The stream's position after the replay: the last replayed entry's, or the head.
    pos: str
    resumed: bool
    reason: str | None

    def answer(self, replayed: int) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "resumed": self.resumed,
            "replayed": replayed,
            "reason": self.reason,
        }


class History(Protocol):
    """Where continuity lives; the hub's ``Streams`` is its only user."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def append(
        self,
        stream: str,
        event: str,
        payload: dict[str, Any],
        *,
        skip_client: str | None,
        sender: tuple[str, int] | None,
        skip_sid: str | None = None,
    ) -> str | None:
        """Give ``payload`` its position, keep it, and return the position; ``None`` when
        ``sender`` (client identity, message id) was delivered before (a repeat), and
        nothing is kept; ``""`` when the history is off (delivered, with no position).
        ``skip_sid`` is the connection that asked for no echo, for a history that also
        delivers (Redis)."""
        ...

    async def head(self, stream: str) -> str:
        """The stream's current position: what a first join resumes from."""
        ...

    async def replay(self, stream: str, since: str) -> Replay:
        """The entries after ``since``, oldest first, and whether that is all that was
        missed."""
        ...


@dataclass(slots=True)
class _Stream:
    entries: deque[tuple[int, float, Entry]]
    #: The highest position removed because the history was full, or by age.
    trimmed_through: int = 0
    expired_through: int = 0
    #: The counter when the stream was made or last appended to, and when.
    last: int = 0
    touched: float = 0.0


class MemoryHistory:
    """The history of one hub process: a ring of entries per stream, the senders' highest
    delivered message id; both forget after ``ttl`` seconds. ``clock`` is the hub's
    monotonic clock. ``sweep()`` (run every few seconds by the hub) drops what has aged out,
    so idle streams and senders do not accumulate.
    """

    def __init__(self, size: int, ttl: float, clock: Any) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._epoch = secrets.token_hex(4)
        self._prefix = f"m:{self._epoch}:"
        self._counter = 0
        self._streams: dict[str, _Stream] = {}
        #: The highest position of any stream dropped whole (idle and aged out).
        self._dropped_through = 0
        #: client identity -> [highest delivered message id, when last seen]
        self._senders: dict[str, list[float]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def accepts(self, sender: tuple[str, int]) -> bool:
        """Whether ``sender``'s message id is new; remembers it (§4.2)."""
        client, message_id = sender
        now = self._clock()
        record = self._senders.get(client)
        if record is None:
            self._senders[client] = [message_id, now]
            return True
        record[1] = now
        if message_id <= record[0]:
            return False
        record[0] = message_id
        return True

    async def append(
        self,
        stream: str,
        event: str,
        payload: dict[str, Any],
        *,
        skip_client: str | None,
        sender: tuple[str, int] | None,
        skip_sid: str | None = None,
    ) -> str | None:
        if sender is not None and not self.accepts(sender):
            return None
        if self._size == 0:
            return ""
        now = self._clock()
        self._counter += 1
        position = self._prefix + str(self._counter)
        payload["pos"] = position
        kept = self._stream(stream, now)
        kept.entries.append((self._counter, now, Entry(event, payload, skip_client)))
        kept.last = self._counter
        kept.touched = now
        if len(kept.entries) > self._size:
            kept.trimmed_through = kept.entries.popleft()[0]
        return position

    async def head(self, stream: str) -> str:
        kept = self._stream(stream, self._clock())
        return self._prefix + str(kept.last)

    async def replay(self, stream: str, since: str) -> Replay:
        now = self._clock()
        seen = self._read(since)
        if isinstance(seen, str):  # not a position of this process's history
            return Replay([], await self.head(stream), False, seen)
        kept = self._streams.get(stream)
        if kept is None:
            # Dropped whole (idle past the history's age), or never made: whatever it held
            # is gone; it held nothing after ``seen`` only if nothing dropped was newer.
            missed = seen < self._dropped_through
            return Replay(
                [],
                await self.head(stream),
                not missed,
                ResumeReason.EXPIRED if missed else None,
            )
        self._expire(kept, now)
        entries = [entry for n, _, entry in kept.entries if n > seen]
        position = entries[-1].payload["pos"] if entries else self._prefix + str(kept.last)
        if seen < kept.trimmed_through:
            return Replay(entries, position, False, ResumeReason.TRIMMED)
        if seen < kept.expired_through:
            return Replay(entries, position, False, ResumeReason.EXPIRED)
        return Replay(entries, position, True, None)

    def sweep(self) -> None:
        """Forget entries, streams and senders older than the history's age."""
        now = self._clock()
        for key, kept in list(self._streams.items()):
            self._expire(kept, now)
            if not kept.entries and now - kept.touched > self._ttl:
                self._dropped_through = max(self._dropped_through, kept.last)
                del self._streams[key]
        cutoff = now - self._ttl
        for client in [c for c, (_, seen) in self._senders.items() if seen < cutoff]:
            del self._senders[client]

    def entry_count(self) -> int:
        """How many entries all streams hold (for tests and the benchmark)."""
        return sum(len(kept.entries) for kept in self._streams.values())

    def _stream(self, stream: str, now: float) -> _Stream:
        kept = self._streams.get(stream)
        if kept is None:
            kept = self._streams[stream] = _Stream(deque(), last=self._counter, touched=now)
        return kept

    def _expire(self, kept: _Stream, now: float) -> None:
        cutoff = now - self._ttl
        entries = kept.entries
        while entries and entries[0][1] <= cutoff:
            kept.expired_through = entries.popleft()[0]

    def _read(self, since: str) -> int | str:
        """The counter of one of our positions, or the reason it is not one."""
        if since.startswith(self._prefix):
            digits = since[len(self._prefix) :]
            if digits.isdigit() and digits.isascii() and len(digits) < 20:
                n = int(digits)
                if n <= self._counter:
                    return n
            return ResumeReason.UNKNOWN
        parts = since.split(":")
        if len(parts) == 3 and parts[0] == "m":
            return ResumeReason.RESTARTED  # another epoch: this process forgot it
        return ResumeReason.UNKNOWN
