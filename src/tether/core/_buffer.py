"""The offline buffer: messages emitted while not connected, bounded, in order.

Each entry is already encoded (the emit validated its arguments at the call site), so the
flush after a reconnect is a plain copy into the outbox. Entries are keyed by a sequence
number in an insertion-ordered dict: flushing is in order, and withdrawing one (a ``call``
whose timeout expired before it was ever sent, contract 2.5) is O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BufferedMessage", "OfflineBuffer"]


@dataclass(frozen=True, slots=True)
class BufferedMessage:
    """One encoded message: its Engine.IO frames, their size, and what it was."""

    frames: tuple[str | bytes, ...]
    size: int
    event: str
    call_id: int | None


class OfflineBuffer:
    """An ordered, bounded store of :class:`BufferedMessage`.

    The bounds are enforced by the caller (which owns the overflow policy) through
    :meth:`fits`; the buffer only keeps count.
    """

    __slots__ = ("_bytes", "_entries", "_next_key", "max_bytes", "max_messages")

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._entries: dict[int, BufferedMessage] = {}
        self._next_key = 0
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The total size of the buffered frames."""
        return self._bytes

    def fits(self, size: int) -> bool:
        """Whether one more message of ``size`` bytes stays within both bounds."""
        return len(self._entries) < self.max_messages and self._bytes + size <= self.max_bytes

    def push(self, message: BufferedMessage) -> int:
        """Append ``message`` and return its key."""
        key = self._next_key
        self._next_key += 1
        self._entries[key] = message
        self._bytes += message.size
        return key

    def pop_oldest(self) -> BufferedMessage:
        key = next(iter(self._entries))
        return self._remove(key)

    def withdraw(self, key: int) -> BufferedMessage:
        """Remove the entry ``key``, which must still be buffered."""
        return self._remove(key)

    def drain(self) -> list[BufferedMessage]:
        """Every entry in order; the buffer is empty afterwards."""
        entries = list(self._entries.values())
        self._entries.clear()
        self._bytes = 0
        return entries

    def _remove(self, key: int) -> BufferedMessage:
        message = self._entries.pop(key)
        self._bytes -= message.size
        return message
