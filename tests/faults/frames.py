"""Where the WebSocket frames are in one direction of a proxied TCP stream, and the frame faults.

Pure (no I/O, no clock): :class:`FrameFilter` is fed the bytes one side sent, in whatever
chunks the socket gave them, and returns what to forward. It follows the stream as HTTP/1.1
then RFC 6455 framing:

- First the HTTP head (request or response) up to its blank line, passed on as it comes.
  Towards the server, a request that asks for ``Upgrade: websocket`` is followed by frames;
  towards the client, a ``101`` status is. Anything else (HTTP long-polling, a refused
  upgrade, a head longer than 16 KiB) makes the rest of the stream opaque: forwarded
  untouched and never parsed.
- Then frames (RFC 6455 §5.2): a 2-byte header, a 16- or 64-bit extended length, a 4-byte
  masking key on client frames (§5.3), the payload.

A frame's header is held back until it is whole (at most 14 bytes), so that a fault can
still change or drop it; when an ACK is to be dropped, a text frame's first payload bytes
(at most 32) are held too, until they tell whether it is one. Everything else is forwarded as
soon as it is fed, so the filter holds at most 46 bytes per direction.

The faults are armed in a :class:`FrameFaults` that every connection's filter of that
direction shares, and are taken by the first frame they fit (each is applied once):

- ``drop_acks``: a text frame whose Engine.IO packet is a Socket.IO ACK (``43...``) or
  BINARY_ACK (``46<n>-...``, socketio-protocol.md §Packet encoding) is removed whole, with
  its continuation frames and, for a BINARY_ACK, the ``n`` binary messages that carry its
  attachments. Control frames between them pass.
- ``corrupt``: see :class:`Corruption`.
- ``reset_larger_than``: on the first frame whose payload is larger, forward its header and
  ``reset_after`` payload bytes (half the payload by default), drop the rest of the stream
  and ask for a reset (:attr:`Filtered.reset`).

Frames with RSV1 set (permessage-deflate, RFC 7692) are never taken for ACKs, since their
payload is compressed; neither tether nor the test servers negotiate compression.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Final

from .kinds import Corruption, Direction, Fault

__all__ = ["Filtered", "FrameFaults", "FrameFilter", "build_frame"]

# RFC 6455 §5.2 opcodes.
CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
RESERVED_OPCODE: Final = 0x3  # §5.2: "%x3-7 are reserved for further non-control frames"

MAX_HEAD: Final = 16 * 1024
#: How many payload bytes of a text frame are held to tell whether it is an ACK: "46", the
#: attachment count and its "-" (socketio-protocol.md §Packet encoding).
ACK_PREFIX: Final = 32

_HEAD_END: Final = b"\r\n\r\n"


@dataclass
class FrameFaults:
    """The frame faults armed for one direction, shared by every connection's filter."""

    drop_acks: int = 0
    corrupt: Corruption | None = None
    reset_larger_than: int | None = None
    reset_after: int | None = None  # payload bytes forwarded before the reset; None: half

    def clear(self) -> None:
        self.drop_acks = 0
        self.corrupt = None
        self.reset_larger_than = None
        self.reset_after = None


@dataclass(frozen=True)
class Filtered:
    """What one ``feed`` produced."""

    data: bytes  # forward these bytes, in order
    dropped: int  # bytes removed (dropped frames; everything after a reset point)
    applied: tuple[Fault, ...]  # DROP_ACK, CORRUPT, RESET_MID_WRITE: one per application
    reset: bool  # reset the connection once ``data`` is forwarded


@dataclass
class _Frame:
    header: bytearray
    fin: bool
    rsv1: bool
    opcode: int
    mask: bytes | None
    length: int
    seen: int = 0  # payload bytes fed so far
    held: bytearray = field(default_factory=bytearray)  # payload held while deciding
    deciding: bool = False  # holding header and payload until the ACK question is settled
    drop: bool = False
    corrupt_first: int | None = None  # the value the first payload byte must carry
    cut_after: int | None = None  # forward this many payload bytes, then reset

    def unmasked(self, data: bytes | bytearray, offset: int) -> bytes:
        """``data`` (payload bytes from ``offset`` on) with the §5.3 mask removed."""
        mask = self.mask
        if mask is None:
            return bytes(data)
        return bytes(b ^ mask[(offset + i) % 4] for i, b in enumerate(data))


class _Mode(enum.Enum):
    HEAD = "head"
    FRAMES = "frames"
    OPAQUE = "opaque"
    CUT = "cut"  # after a reset point: nothing more is forwarded


class FrameFilter:
    """One direction of one connection: follows the framing and applies the armed faults."""

    def __init__(self, direction: Direction, faults: FrameFaults) -> None:
        if direction is Direction.BOTH:
            raise ValueError("a filter watches one direction")
        self.direction = direction
        self.faults = faults
        self.frames = 0  # frame headers seen
        self._mode = _Mode.HEAD
        self._head = bytearray()
        self._header = bytearray()
        self._frame: _Frame | None = None
        self._dropping_message = False  # continuation frames of a dropped message follow
        self._attachments_to_drop = 0  # binary messages of a dropped BINARY_ACK follow
        # Per feed:
        self._out = bytearray()
        self._dropped = 0
        self._applied: list[Fault] = []
        self._reset = False

    @property
    def in_frames(self) -> bool:
        """Whether the HTTP head is behind and frames are being followed."""
        return self._mode is _Mode.FRAMES

    def feed(self, data: bytes) -> Filtered:
        self._out = bytearray()
        self._dropped = 0
        self._applied = []
        self._reset = False
        pos = 0
        end = len(data)
        while pos < end:
            mode = self._mode
            if mode is _Mode.HEAD:
                pos = self._feed_head(data, pos)
            elif mode is _Mode.OPAQUE:
                self._out += data[pos:]
                pos = end
            elif mode is _Mode.CUT:
                self._dropped += end - pos
                pos = end
            elif self._frame is None or self._frame.deciding:
                pos = self._feed_header(data, pos)
            else:
                pos = self._feed_payload(data, pos)
        return Filtered(bytes(self._out), self._dropped, tuple(self._applied), self._reset)

    # -- HTTP head --------------------------------------------------------------------------

    def _feed_head(self, data: bytes, pos: int) -> int:
        before = len(self._head)
        take = data[pos : pos + MAX_HEAD - before + len(_HEAD_END)]
        self._head += take
        found = self._head.find(_HEAD_END, max(0, before - len(_HEAD_END) + 1))
        if found < 0:
            self._out += take
            if len(self._head) > MAX_HEAD:
                self._mode = _Mode.OPAQUE
                self._head.clear()
            return pos + len(take)
        used = found + len(_HEAD_END) - before
        self._out += data[pos : pos + used]
        self._mode = _Mode.FRAMES if self._upgraded(bytes(self._head[:found])) else _Mode.OPAQUE
        self._head.clear()
        return pos + used

    def _upgraded(self, head: bytes) -> bool:
        """Whether frames follow this head (RFC 6455 §4.1: the 101 answer to an upgrade)."""
        first, _, rest = head.partition(b"\r\n")
        if self.direction is Direction.TO_CLIENT:
            parts = first.split()
            return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.1") and parts[1] == b"101"
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"upgrade" and value.strip().lower() == b"websocket":
                return True
        return False

    # -- frame headers and the decisions ------------------------------------------------------

    def _feed_header(self, data: bytes, pos: int) -> int:
        frame = self._frame
        if frame is not None:  # deciding: hold payload bytes until the ACK question is settled
            want = min(frame.length, ACK_PREFIX) - len(frame.held)
            take = data[pos : pos + want]
            frame.held += take
            pos += len(take)
            self._try_decide(frame)
            return pos
        header = self._header
        need = _header_length(header)
        take = data[pos : pos + need - len(header)]
        header += take
        pos += len(take)
        if len(header) < 2 or len(header) < _header_length(header):
            return pos
        frame = _parse_header(header)
        self._header = bytearray()
        self._frame = frame
        self.frames += 1
        if (
            self.faults.drop_acks > 0
            and frame.opcode == TEXT
            and not frame.rsv1
            and frame.length >= 2
            and not self._attachments_to_drop
        ):
            frame.deciding = True
        else:
            self._decide(frame, ack_attachments=None)
        return pos

    def _try_decide(self, frame: _Frame) -> None:
        prefix = frame.unmasked(frame.held, 0)
        attachments: int | None = None
        if len(prefix) >= 2 and prefix[:2] == b"43":
            attachments = 0
        elif len(prefix) >= 2 and prefix[:2] == b"46":
            digits = prefix[2:]
            count = len(digits) - len(digits.lstrip(b"0123456789"))
            if count == len(digits) and len(prefix) < min(frame.length, ACK_PREFIX):
                return  # the attachment count may go on in the next bytes
            number = digits[:count]
            has_dash = digits[count : count + 1] == b"-"
            attachments = int(number) if number and has_dash else 0
        elif len(prefix) < 2:
            return  # one byte so far: wait for the second
        frame.deciding = False
        self._decide(frame, ack_attachments=attachments)

    def _decide(self, frame: _Frame, ack_attachments: int | None) -> None:
        """Settle what happens to ``frame``, then forward what was held of it."""
        faults = self.faults
        opcode = frame.opcode
        if opcode in (TEXT, BINARY):
            self._dropping_message = False  # a new message starts
        if opcode == CONTINUATION and self._dropping_message:
            frame.drop = True
            self._dropping_message = not frame.fin
        elif opcode == BINARY and self._attachments_to_drop:
            frame.drop = True
            self._attachments_to_drop -= 1
            self._dropping_message = not frame.fin
        elif ack_attachments is not None and faults.drop_acks > 0:
            frame.drop = True
            faults.drop_acks -= 1
            self._applied.append(Fault.DROP_ACK)
            self._dropping_message = not frame.fin
            self._attachments_to_drop = ack_attachments
        if frame.drop:
            self._dropped += len(frame.header)
        else:
            self._arm_frame(frame)
            self._out += frame.header
            if frame.cut_after == 0:
                self._cut()
                return
        held, frame.held = bytes(frame.held), bytearray()
        if held:
            self._forward_payload(frame, held)
        elif frame.length == 0:
            self._frame = None

    def _arm_frame(self, frame: _Frame) -> None:
        """Take the faults that fit a frame that is forwarded."""
        faults = self.faults
        threshold = faults.reset_larger_than
        if threshold is not None and frame.length > threshold:
            after = faults.reset_after if faults.reset_after is not None else frame.length // 2
            frame.cut_after = min(after, frame.length - 1)
            faults.reset_larger_than = None
            faults.reset_after = None
            self._applied.append(Fault.RESET_MID_WRITE)
        corruption = faults.corrupt
        if corruption is Corruption.OPCODE:
            frame.header[0] = (frame.header[0] & 0xF0) | RESERVED_OPCODE
            faults.corrupt = None
            self._applied.append(Fault.CORRUPT)
        elif corruption is not None and frame.opcode == TEXT and frame.length >= 1:
            frame.corrupt_first = ord("X") if corruption is Corruption.PACKET_TYPE else 0xFF
            faults.corrupt = None
            self._applied.append(Fault.CORRUPT)

    # -- payload ------------------------------------------------------------------------------

    def _feed_payload(self, data: bytes, pos: int) -> int:
        frame = self._frame
        assert frame is not None
        take = data[pos : pos + frame.length - frame.seen]
        self._forward_payload(frame, take)
        return pos + len(take)

    def _forward_payload(self, frame: _Frame, chunk: bytes) -> None:
        start = frame.seen
        frame.seen += len(chunk)
        if frame.seen >= frame.length:
            self._frame = None
        if frame.drop:
            self._dropped += len(chunk)
            return
        if frame.corrupt_first is not None and start == 0 and chunk:
            first = frame.corrupt_first
            if frame.mask is not None:
                first ^= frame.mask[0]
            chunk = bytes([first]) + chunk[1:]
        if frame.cut_after is not None and frame.seen >= frame.cut_after:
            keep = frame.cut_after - start
            self._out += chunk[:keep]
            self._dropped += len(chunk) - keep
            self._cut()
            return
        self._out += chunk

    def _cut(self) -> None:
        self._mode = _Mode.CUT
        self._frame = None
        self._reset = True


def _header_length(header: bytes | bytearray) -> int:
    """The whole header's length once its first 2 bytes are known (RFC 6455 §5.2)."""
    if len(header) < 2:
        return 2
    length7 = header[1] & 0x7F
    extended = 2 if length7 == 126 else 8 if length7 == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


def _parse_header(header: bytearray) -> _Frame:
    b0, b1 = header[0], header[1]
    length = b1 & 0x7F
    offset = 2
    if length == 126:
        (length,) = struct.unpack_from("!H", header, 2)
        offset = 4
    elif length == 127:
        (length,) = struct.unpack_from("!Q", header, 2)
        offset = 10
    mask = bytes(header[offset : offset + 4]) if b1 & 0x80 else None
    return _Frame(
        header=header,
        fin=bool(b0 & 0x80),
        rsv1=bool(b0 & 0x40),
        opcode=b0 & 0x0F,
        mask=mask,
        length=length,
    )


def build_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One RFC 6455 §5.2 frame; ``mask`` (4 bytes) for a client frame (§5.3)."""
    if mask is not None and len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if mask is None:
        return header + payload
    return header + mask + _xor(payload, mask)


def _xor(data: bytes, mask: bytes) -> bytes:
    """``data`` masked with the 4-byte key (§5.3), as one big-integer XOR: fast for MBs."""
    if not data:
        return b""
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")
