"""Connection attempts: which one runs, when it times out, when the next one starts.

Contract 2.2 (``specs/reconnect.md``): ``reconnection_attempts=N`` means the first attempt
after ``open()`` plus up to N reconnect attempts, numbered 1, 2, 3 ...; a successful connect
starts the count again. Each attempt has ``timeout`` seconds from opening its transport to
the namespace CONNECT reply. The delay before reconnect attempt ``n`` is
:func:`~tether.core.backoff_delay` of ``n`` and a draw from the ``random`` callable the core
was given (``specs/backoff.md``).
"""

from __future__ import annotations

from collections.abc import Callable

from ._backoff import backoff_delay
from ._options import CoreOptions

__all__ = ["Attempts"]


class Attempts:
    """The attempt counter and the two deadlines of reconnection."""

    __slots__ = ("_options", "_random", "deadline", "number", "retry_at")

    def __init__(self, options: CoreOptions, random: Callable[[], float]) -> None:
        self._options = options
        self._random = random
        #: 0 for the first attempt after ``open()`` (and when not reconnecting), then the
        #: reconnect attempt number.
        self.number = 0
        #: When the attempt in flight times out, if one is in flight.
        self.deadline: float | None = None
        #: When the next attempt starts, while waiting out a backoff delay.
        self.retry_at: float | None = None

    def started(self, now: float) -> None:
        """An attempt starts now: its timeout runs, no retry is pending."""
        self.retry_at = None
        self.deadline = now + self._options.timeout

    def finished(self) -> None:
        """The attempt in flight ended (connected, failed or abandoned)."""
        self.deadline = None

    def reset(self) -> None:
        """No attempt in flight, none pending, the count back at 0."""
        self.number = 0
        self.deadline = None
        self.retry_at = None

    def exhausted(self) -> bool:
        """Whether ``reconnection_attempts`` allows no further attempt."""
        limit = self._options.reconnection_attempts
        return limit is not None and self.number >= limit

    def schedule(self, now: float) -> float:
        """Schedule the next reconnect attempt; its delay in seconds (``exhausted()`` first)."""
        self.number += 1
        options = self._options
        delay = backoff_delay(
            self.number,
            options.reconnection_delay,
            options.reconnection_delay_max,
            options.randomization_factor,
            self._random(),
        )
        self.retry_at = now + delay
        self.deadline = None
        return delay

    def next_deadline(self) -> float | None:
        retry_at, deadline = self.retry_at, self.deadline
        if retry_at is None:
            return deadline
        return retry_at if deadline is None or retry_at < deadline else deadline
