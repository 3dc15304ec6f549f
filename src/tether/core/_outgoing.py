"""The way out: what the client sends, while connected and while not.

Three pieces, in the order a message meets them:

* :func:`encode_event` turns a user's event into an :class:`Outgoing` entry: its Engine.IO
  frames (Socket.IO v5 §"Packet encoding", attachments after the header), its size, and what
  it was. It refuses, at the caller's line, what the server's ``maxPayload`` would refuse.
* :class:`Outbox` holds what is to be written on the transport that is open now. It holds
  typed entries: the session's own frames (pongs, CONNECT, DISCONNECT, acks, channel state)
  as bare ``str``/``bytes``, the user's messages as :class:`Outgoing`. The driver takes frames
  from it only when it writes them, so a transport that dies leaves the never-written user
  messages here, whole, and they go back to the offline buffer without being decoded again.
* :class:`OfflineBuffer` holds user messages while no transport is open, bounded, and
  :class:`BufferPolicy` says what a full one does (``specs/client.md`` "Offline buffer and
  drops"). Entries are already encoded (the emit validated them at the call site), so the
  flush after a reconnect moves them into the outbox as they are; they are keyed by a
  sequence number in an insertion-ordered dict, so flushing keeps their order and
  withdrawing one (a ``call`` whose timeout expired before it was ever sent) is O(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._engineio import EnginePacketType, encode_frame
from ._errors import BufferFull
from ._options import OverflowPolicy
from ._socketio import Packet, PacketType, encode_packet

__all__ = [
    "BufferPolicy",
    "OfflineBuffer",
    "Outbox",
    "Outgoing",
    "encode_event",
    "packet_frames",
]

_MESSAGE = EnginePacketType.MESSAGE
_EVENT = PacketType.EVENT


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One user message on its way: its Engine.IO frames, their size, and what it was.

    ``size`` counts bytes as the buffer bounds and ``maxPayload`` do. ``event`` is the
    Socket.IO event name and ``call_id`` the id of the ACK it asks for, if any. ``seq``
    orders the messages of a client as they were emitted: what goes back to the buffer
    after a disconnect (unwritten, or written and to be tried again) goes back in that order.
    """

    frames: tuple[str | bytes, ...]
    size: int
    event: str
    call_id: int | None = None
    seq: int = 0


def packet_frames(packet: Packet) -> tuple[str | bytes, ...]:
    """The Engine.IO frames of a Socket.IO packet: one MESSAGE for the text, one binary
    MESSAGE per attachment (socketio-protocol.md §2.6)."""
    text, attachments = encode_packet(packet)
    return (encode_frame(_MESSAGE, text), *attachments)


def encode_event(
    namespace: str, data: list[Any], call_id: int | None, max_payload: int, seq: int = 0
) -> Outgoing:
    """Encode the EVENT ``data`` (``[name, *args]``) as an :class:`Outgoing` entry.

    Raises ``ValueError``/``TypeError`` for data Socket.IO or JSON cannot carry, and
    ``ValueError`` for a frame above ``max_payload`` bytes (Engine.IO v4 §"maxPayload": the
    server would close the whole connection on it).
    """
    text, attachments = encode_packet(Packet(_EVENT, namespace, data, call_id))
    head = encode_frame(_MESSAGE, text)
    size = len(head)
    if size * 4 > max_payload:
        # maxPayload counts bytes; only measure UTF-8 when the characters could exceed it.
        size = len(text.encode()) + 1
    if size > max_payload or any(len(a) > max_payload for a in attachments):
        raise ValueError(
            f"message of {size} bytes exceeds the server's maxPayload of {max_payload}"
        )
    size += sum(len(a) for a in attachments)
    return Outgoing((head, *attachments), size, data[0], call_id, seq)


class OfflineBuffer:
    """An ordered, bounded store of :class:`Outgoing` messages.

    The bounds are enforced by :class:`BufferPolicy`, which owns the overflow policy,
    through :meth:`fits`; the buffer only keeps count.
    """

    __slots__ = ("_bytes", "_entries", "_next_key", "max_bytes", "max_messages")

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._entries: dict[int, Outgoing] = {}
        self._next_key = 0
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The total size of the buffered messages."""
        return self._bytes

    def fits(self, size: int) -> bool:
        """Whether one more message of ``size`` bytes stays within both bounds."""
        return len(self._entries) < self.max_messages and self._bytes + size <= self.max_bytes

    def push(self, message: Outgoing) -> int:
        """Append ``message`` and return its key."""
        key = self._next_key
        self._next_key += 1
        self._entries[key] = message
        self._bytes += message.size
        return key

    def pop_oldest(self) -> Outgoing:
        return self.withdraw(next(iter(self._entries)))

    def withdraw(self, key: int) -> Outgoing:
        """Remove the entry ``key``, which must still be buffered."""
        message = self._entries.pop(key)
        self._bytes -= message.size
        return message

    def drain(self) -> list[Outgoing]:
        """Every entry in order; the buffer is empty afterwards."""
        entries = list(self._entries.values())
        self._entries.clear()
        self._bytes = 0
        return entries


class Outbox:
    """What is to be written on the open transport, in order.

    ``on_taken(call_id)`` is told when the driver takes a call's frames (the call is then
    written: its ack may come, or its session's loss fails it); it answers whether the call
    still wants to be sent (one that timed out meanwhile is skipped, never written).
    """

    __slots__ = ("_entries", "_on_taken")

    def __init__(self, on_taken: Callable[[int], bool]) -> None:
        self._entries: list[str | bytes | Outgoing] = []
        self._on_taken = on_taken

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self._entries)

    def add_frame(self, frame: str | bytes) -> None:
        """One frame of the session's own (a pong, CONNECT, an ack): never re-sent."""
        self._entries.append(frame)

    def add_packet(self, packet: Packet) -> None:
        """A Socket.IO packet of the session's own (CONNECT, DISCONNECT, an ack, channel
        state): never re-sent."""
        self._entries.extend(packet_frames(packet))

    def add_message(self, message: Outgoing) -> None:
        self._entries.append(message)

    def add_messages(self, messages: list[Outgoing]) -> None:
        self._entries.extend(messages)

    def take(self) -> list[str | bytes]:
        """Every frame, in order, for the driver to write now; the outbox is empty after."""
        entries = self._entries
        if not entries:
            return []
        self._entries = []
        frames: list[str | bytes] = []
        on_taken = self._on_taken
        for entry in entries:
            if type(entry) is Outgoing:
                if entry.call_id is None or on_taken(entry.call_id):
                    frames.extend(entry.frames)
            else:
                frames.append(entry)  # type: ignore[arg-type]
        return frames

    def take_unsent(self) -> list[Outgoing]:
        """The user messages never written, in order; the session's own frames, which
        belonged to a transport that is gone, are dropped."""
        unsent = [entry for entry in self._entries if type(entry) is Outgoing]
        self._entries = []
        return unsent


class BufferPolicy:
    """The offline buffer and what a full one does (contract 2.5).

    ``report(message, reason)`` is told about every message dropped, with ``"buffer full"``
    or ``"not connected"`` (``buffer_messages=False``).
    """

    __slots__ = ("_report", "buffer", "buffering", "overflow")

    def __init__(
        self,
        buffer: OfflineBuffer,
        *,
        buffering: bool,
        overflow: OverflowPolicy,
        report: Callable[[str, int | None, str], None],
    ) -> None:
        self.buffer = buffer
        self.buffering = buffering
        self.overflow = overflow
        self._report = report

    def check_room(self, message: Outgoing) -> None:
        """Raise :class:`BufferFull` if ``message`` would be refused under the ``raise``
        policy; call it before anything changes, so a call that raises has no effect."""
        buffer = self.buffer
        if (
            self.buffering
            and self.overflow is OverflowPolicy.RAISE
            and not buffer.fits(message.size)
        ):
            raise BufferFull(
                f"the offline buffer is full ({len(buffer)} messages, {buffer.bytes} bytes)"
            )

    def admit(self, message: Outgoing) -> int | None:
        """Buffer ``message`` by the policy; its buffer key, or ``None`` if it was dropped
        (and reported). :meth:`check_room` has already refused it under ``raise``."""
        if not self.buffering:
            self._report(message.event, message.call_id, "not connected")
            return None
        buffer = self.buffer
        size = message.size
        if not buffer.fits(size):
            if self.overflow is not OverflowPolicy.DROP_OLDEST or size > buffer.max_bytes:
                # A message larger than the whole buffer can only drop itself.
                self._report(message.event, message.call_id, "buffer full")
                return None
            while not buffer.fits(size):
                dropped = buffer.pop_oldest()
                self._report(dropped.event, dropped.call_id, "buffer full")
        return buffer.push(message)

    def readmit(self, message: Outgoing) -> int | None:
        """Buffer a message that was never written, at the back; no other message is
        dropped for it (the ones already buffered are newer than nothing it displaced)."""
        if not self.buffering or not self.buffer.fits(message.size):
            self._report(
                message.event, message.call_id, "buffer full" if self.buffering else "not connected"
            )
            return None
        return self.buffer.push(message)
