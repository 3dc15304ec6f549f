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

from dataclasses import dataclass
from typing import Any, Protocol

from ._engineio import EnginePacketType, encode_frame
from ._errors import BufferFull, Disconnected, MessageTooLarge, TetherError
from ._events import MessageDropped
from ._options import OverflowPolicy
from ._socketio import Packet, PacketType, encode_packet

__all__ = [
    "BufferPolicy",
    "OfflineBuffer",
    "Outbox",
    "Outgoing",
    "check_size",
    "encode_event",
    "packet_frames",
    "too_large",
]

_MESSAGE = EnginePacketType.MESSAGE
_EVENT = PacketType.EVENT


class _Acks(Protocol):
    """What the way out needs of the acks (``_acks.Acks``)."""

    def taken(self, call_id: int) -> bool: ...

    def refuse(self, call_id: int, error: TetherError) -> None: ...


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
    namespace: str,
    data: list[Any],
    call_id: int | None,
    max_payload: int | None,
    seq: int = 0,
) -> Outgoing:
    """Encode the EVENT ``data`` (``[name, *args]``) as an :class:`Outgoing` entry.

    Raises ``ValueError``/``TypeError`` for data Socket.IO or JSON cannot carry, and
    :class:`MessageTooLarge` for a frame above ``max_payload`` bytes (Engine.IO v4
    §"maxPayload": the server would close the whole connection on it); ``None``: no server
    has announced its limit yet, so nothing is refused for its size here (a connect's flush
    checks, :func:`too_large`).
    """
    text, attachments = encode_packet(Packet(_EVENT, namespace, data, call_id))
    head = encode_frame(_MESSAGE, text)
    size = len(head)
    if not attachments:  # the common case: one text frame
        # Under a quarter of max_payload in characters is under it in UTF-8 bytes too.
        if max_payload is not None and size * 4 > max_payload:
            check_size(head, attachments, max_payload)
        return Outgoing((head,), size, data[0], call_id, seq)
    if max_payload is not None:
        check_size(head, attachments, max_payload)
    size += sum(len(a) for a in attachments)
    return Outgoing((head, *attachments), size, data[0], call_id, seq)


def check_size(head: str | bytes, attachments: list[bytes], max_payload: int) -> None:
    """Raise :class:`MessageTooLarge` if a frame of a message is above ``max_payload``."""
    size = len(head)
    if size * 4 > max_payload and isinstance(head, str):
        # maxPayload counts bytes; only measure UTF-8 when the characters could exceed it.
        size = len(head.encode())
    if size > max_payload or any(len(a) > max_payload for a in attachments):
        raise MessageTooLarge(
            f"message of {size} bytes exceeds the server's maxPayload of {max_payload}"
        )


def too_large(message: Outgoing, max_payload: int) -> bool:
    """Whether a frame of ``message`` is above ``max_payload`` (a buffered message, once a
    server announced its limit)."""
    head, *attachments = message.frames
    try:
        check_size(head, attachments, max_payload)  # type: ignore[arg-type]
    except MessageTooLarge:
        return True
    return False


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

    ``acks.taken(call_id)`` is told when the driver takes a call's frames (the call is then
    written: its ack may come, or its session's loss fails it); it answers whether the call
    still wants to be sent (one that timed out meanwhile is skipped, never written). The
    outbox counts the user's messages in it, so the buffer's bounds hold while connected too:
    a server that stops reading makes them pile up here (``specs/bounds.md``).
    """

    __slots__ = ("_acks", "_bytes", "_entries", "_messages")

    def __init__(self, acks: _Acks) -> None:
        self._entries: list[str | bytes | Outgoing] = []
        self._acks = acks
        self._messages = 0
        self._bytes = 0

    @property
    def message_count(self) -> int:
        """How many user messages wait to be written."""
        return self._messages

    @property
    def message_bytes(self) -> int:
        """How many bytes the user messages waiting to be written take."""
        return self._bytes

    def fits(self, size: int, max_messages: int, max_bytes: int) -> bool:
        """Whether one more user message of ``size`` bytes stays within the bounds."""
        return self._messages < max_messages and self._bytes + size <= max_bytes

    def pop_oldest(self) -> Outgoing:
        """Take the oldest user message out (the ``drop_oldest`` policy); there is one."""
        entries = self._entries
        index, oldest = next((i, e) for i, e in enumerate(entries) if type(e) is Outgoing)
        del entries[index]
        self._messages -= 1
        self._bytes -= oldest.size
        return oldest

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

    def add_frames(self, frames: tuple[str | bytes, ...]) -> None:
        """Frames of the session's own, already encoded: never re-sent."""
        self._entries.extend(frames)

    def add_message(self, message: Outgoing) -> None:
        self._entries.append(message)
        self._messages += 1
        self._bytes += message.size

    def add_messages(self, messages: list[Outgoing]) -> None:
        self._entries.extend(messages)
        self._messages += len(messages)
        self._bytes += sum(message.size for message in messages)

    def take(self) -> list[str | bytes]:
        """Every frame, in order, for the driver to write now; the outbox is empty after."""
        entries = self._entries
        if not entries:
            return []
        self._entries = []
        self._messages = self._bytes = 0
        frames: list[str | bytes] = []
        on_taken = self._acks.taken
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
    """The offline buffer, what a full one does (``specs/client.md`` "Offline buffer and
    drops"), and the report of every message dropped: a :class:`MessageDropped` in
    ``events``, and for a call its failure (``acks.refuse``) with the error that says why."""

    __slots__ = ("_acks", "_events", "buffer", "buffering", "overflow")

    def __init__(
        self,
        buffer: OfflineBuffer,
        *,
        buffering: bool,
        overflow: OverflowPolicy,
        acks: _Acks,
        events: list[Any],
    ) -> None:
        self.buffer = buffer
        self.buffering = buffering
        self.overflow = overflow
        self._acks = acks
        self._events = events

    def report(self, event: str, call_id: int | None, reason: str) -> None:
        """A message was dropped for ``reason``: ``"buffer full"``, ``"not connected"``
        (``buffer_messages=False``) or ``"too large"`` (a smaller ``maxPayload``)."""
        self._events.append(MessageDropped(event, call_id, reason))
        if call_id is not None:
            error: TetherError
            if reason == "not connected":
                error = Disconnected(reason)
            elif reason == "too large":
                error = MessageTooLarge(
                    "dropped from the buffer: larger than the server's maxPayload"
                )
            else:
                error = BufferFull(reason)
            self._acks.refuse(call_id, error)

    def check_room(self, message: Outgoing, outbox: Outbox | None = None) -> None:
        """Raise :class:`BufferFull` if ``message`` would be refused under the ``raise``
        policy, in the buffer or, while connected, in ``outbox``, which it does not fit in
        (:meth:`admit_to_outbox` asks only then); call it before anything changes, so a call
        that raises has no effect."""
        if not self.buffering or self.overflow is not OverflowPolicy.RAISE:
            return
        buffer = self.buffer
        if message.size > buffer.max_bytes:
            raise BufferFull(
                f"the message ({message.size} bytes) is larger than max_buffered_bytes "
                f"({buffer.max_bytes}): no buffer can hold it"
            )
        if outbox is None:
            if not buffer.fits(message.size):
                raise BufferFull(
                    f"the offline buffer is full ({len(buffer)} messages, {buffer.bytes} bytes)"
                )
        else:
            raise BufferFull(
                f"{outbox.message_count} messages ({outbox.message_bytes} bytes) wait for the "
                "server to read them: it reads slower than they are sent"
            )

    def admit_to_outbox(self, outbox: Outbox, message: Outgoing) -> bool:
        """Queue ``message`` for the open transport within the buffer's bounds, by the
        policy; ``False`` if it was dropped (and reported). Raises :class:`BufferFull` under
        ``raise`` (:meth:`check_room`) before anything changed."""
        buffer = self.buffer
        max_messages, max_bytes = buffer.max_messages, buffer.max_bytes
        size = message.size
        if not outbox.fits(size, max_messages, max_bytes):
            self.check_room(message, outbox)
            if self.overflow is not OverflowPolicy.DROP_OLDEST or size > max_bytes:
                self.report(message.event, message.call_id, "buffer full")
                return False
            # Some message is in the outbox: an empty one fits anything up to max_bytes.
            while not outbox.fits(size, max_messages, max_bytes):
                dropped = outbox.pop_oldest()
                self.report(dropped.event, dropped.call_id, "buffer full")
        outbox.add_message(message)
        return True

    def admit(self, message: Outgoing) -> int | None:
        """Buffer ``message`` by the policy; its buffer key, or ``None`` if it was dropped
        (and reported). :meth:`check_room` has already refused it under ``raise``."""
        if not self.buffering:
            self.report(message.event, message.call_id, "not connected")
            return None
        buffer = self.buffer
        size = message.size
        if not buffer.fits(size):
            if self.overflow is not OverflowPolicy.DROP_OLDEST or size > buffer.max_bytes:
                # A message larger than the whole buffer can only drop itself.
                self.report(message.event, message.call_id, "buffer full")
                return None
            while not buffer.fits(size):
                dropped = buffer.pop_oldest()
                self.report(dropped.event, dropped.call_id, "buffer full")
        return buffer.push(message)

    def readmit(self, message: Outgoing) -> int | None:
        """Buffer a message that was never written, at the back; no other message is
        dropped for it (the ones already buffered are newer than nothing it displaced)."""
        if not self.buffering or not self.buffer.fits(message.size):
            self.report(
                message.event, message.call_id, "buffer full" if self.buffering else "not connected"
            )
            return None
        return self.buffer.push(message)
