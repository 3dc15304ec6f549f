"""The names the fault proxy, its frame filter and the chaos schedule share."""

from __future__ import annotations

import enum

__all__ = ["Corruption", "Direction", "Fault"]


class Direction(enum.Enum):
    """Which way bytes flow through the proxy. ``BOTH`` is for the controls only."""

    TO_SERVER = "to server"  # client → upstream: masked frames (RFC 6455 §5.3)
    TO_CLIENT = "to client"  # upstream → client: unmasked frames
    BOTH = "both"

    def each(self) -> tuple[Direction, ...]:
        """The one or two real directions this names."""
        if self is Direction.BOTH:
            return (Direction.TO_SERVER, Direction.TO_CLIENT)
        return (self,)


class Corruption(enum.Enum):
    """How ``corrupt_next_frame`` breaks a frame, and what the receiving peer makes of it."""

    #: The first payload byte of the next text frame (the Engine.IO packet type) becomes
    #: ``X``: still valid UTF-8, but no Engine.IO packet. tether reports ``"parse error"``;
    #: a Node server closes the session (Engine.IO v4 §Packet encoding).
    PACKET_TYPE = "packet type"
    #: The first payload byte of the next text frame becomes ``0xFF``, which is never valid
    #: UTF-8: the peer's WebSocket layer fails the connection (RFC 6455 §8.1, close 1007).
    #: tether reports ``"transport error"``.
    UTF8 = "utf8"
    #: The next frame of any kind gets the reserved opcode 0x3: a WebSocket protocol error
    #: (RFC 6455 §5.2, close 1002). tether reports ``"transport error"``.
    OPCODE = "opcode"


class Fault(enum.Enum):
    """Every fault the proxy can apply; ``ProxyStats.faults`` counts them by these names."""

    FIN = "fin"  # orderly close of live connections, both ways
    RESET = "reset"  # RST of live connections, both ways
    BLACKHOLE = "blackhole"  # nothing forwarded either way, sockets kept open
    LATENCY = "latency"  # every chunk forwarded a fixed time after it arrived
    THROTTLE = "throttle"  # at most N bytes per second per direction and connection
    SPLIT = "split"  # one byte per write
    CORRUPT = "corrupt"  # the next frame broken (see Corruption)
    DROP_ACK = "drop ack"  # the next Socket.IO ACK removed from the server's stream
    RESET_MID_WRITE = "reset mid-write"  # RST part-way into the next large frame
    REFUSE = "refuse"  # new connections accepted, then closed or reset at once
