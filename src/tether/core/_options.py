"""The options the core obeys, validated once, at construction (contract 2.1)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["CoreOptions", "OverflowPolicy", "check_retries"]


class OverflowPolicy(enum.Enum):
    """What a full offline buffer does with one more message (contract 2.5)."""

    #: Refuse it: the call raises :class:`~tether.core.BufferFull`.
    RAISE = "raise"
    #: Drop the oldest buffered message, report it, keep the new one.
    DROP_OLDEST = "drop_oldest"
    #: Drop the new message, report it.
    DROP_NEWEST = "drop_newest"


def _check_seconds(name: str, value: float, *, allow_zero: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_retries(retries: int, ack_timeout: float | None) -> None:
    """Validate ``retries`` and ``ack_timeout`` (options, or one call's overrides)."""
    _check_count("retries", retries, minimum=0)
    if ack_timeout is not None:
        _check_seconds("ack_timeout", ack_timeout, allow_zero=False)


@dataclass(frozen=True, slots=True)
class CoreOptions:
    """Everything the sans-IO core needs to know; the driver adds the I/O options.

    Invalid values raise ``ValueError``/``TypeError`` here, at the caller's line.
    """

    namespace: str = "/"
    reconnection: bool = True
    #: ``None``: unlimited. ``N``: after the first attempt, up to N reconnect attempts.
    reconnection_attempts: int | None = None
    reconnection_delay: float = 1.0
    reconnection_delay_max: float = 5.0
    randomization_factor: float = 0.5
    #: One attempt, from opening the transport to the namespace CONNECT reply.
    timeout: float = 20.0
    buffer_messages: bool = True
    max_buffered: int = 10_000
    max_buffered_bytes: int = 16 * 1024 * 1024
    overflow: OverflowPolicy = OverflowPolicy.RAISE
    echo_messages: bool = True
    auto_join_channels: bool = True
    #: The largest frame we send to a server whose handshake announces no ``maxPayload``.
    max_payload: int = 1_000_000
    #: More tries after the first for every emit and call (``specs/delivery.md`` §2).
    retries: int = 0
    #: How long one try waits for its ACK once written; ``None``: until a disconnect.
    ack_timeout: float | None = None
    #: The client's identity for a hub, sent with every CONNECT (``specs/delivery.md``
    #: §4.1); ``None`` sends none. The driver draws one at random per client.
    client_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not self.namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/', got {self.namespace!r}")
        if "," in self.namespace:
            # Socket.IO v5 §2.2: a namespace runs to the next comma.
            raise ValueError(f"namespace must not contain ',', got {self.namespace!r}")
        if self.reconnection_attempts is not None:
            _check_count("reconnection_attempts", self.reconnection_attempts, minimum=0)
        _check_seconds("reconnection_delay", self.reconnection_delay)
        _check_seconds("reconnection_delay_max", self.reconnection_delay_max)
        if self.reconnection_delay_max < self.reconnection_delay:
            raise ValueError(
                "reconnection_delay_max must be >= reconnection_delay, got "
                f"{self.reconnection_delay_max!r} < {self.reconnection_delay!r}"
            )
        if isinstance(self.randomization_factor, bool) or not isinstance(
            self.randomization_factor, (int, float)
        ):
            raise TypeError("randomization_factor must be a number between 0 and 1")
        if not 0.0 <= self.randomization_factor <= 1.0:
            raise ValueError(
                f"randomization_factor must lie between 0 and 1, got {self.randomization_factor!r}"
            )
        _check_seconds("timeout", self.timeout, allow_zero=False)
        _check_count("max_buffered", self.max_buffered, minimum=1)
        _check_count("max_buffered_bytes", self.max_buffered_bytes, minimum=1)
        _check_count("max_payload", self.max_payload, minimum=1)
        check_retries(self.retries, self.ack_timeout)
        if self.client_id is not None and (
            not isinstance(self.client_id, str) or not 1 <= len(self.client_id) <= 64
        ):
            raise ValueError("client_id must be a str of 1 to 64 characters, or None")
        if not isinstance(self.overflow, OverflowPolicy):
            raise TypeError(f"overflow must be an OverflowPolicy, got {self.overflow!r}")
