"""Reconnect delays: a pure function of the attempt number and one random draw.

The formula (``specs/backoff.md``)::

    base(n)  = delay * 2 ** min(n - 1, MAX_EXPONENT)
    low(n)   = min(base(n), delay_max) * (1 - factor)
    high(n)  = min(base(n) * (1 + factor), delay_max)
    delay(n) = low(n) + (high(n) - low(n)) * r          r drawn uniformly from [0, 1)

so ``delay(n)`` lies in ``[low(n), high(n))``: jitter on both sides of ``base(n)``, as
socket.io-client and python-socketio draw it, which spreads a fleet's first retries over
``[0.5, 1.5)`` s with the defaults instead of half of that.

Why not socket.io-client's formula as it stands: backo2 adds ``±factor`` jitter *before*
capping, so from the fourth attempt on every client waits exactly ``delay_max`` and a fleet
that lost its server retries in lockstep; and ``2 ** attempts`` overflows to Infinity after
~1000 attempts, which JS turns into zero delays half of the time (peers.md, "Defects" 1).
Here the cap bounds both ends of the window, so at the cap the delays still spread over
``[delay_max * (1 - factor), delay_max)`` and never exceed ``delay_max``; the exponent is
clamped, so the delay never collapses, however many attempts fail.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_EXPONENT", "backoff_delay", "backoff_window"]

#: 2**32 times any sane base delay is far above any cap; past it the window cannot grow.
MAX_EXPONENT: Final = 32


def backoff_window(
    attempt: int, delay: float, delay_max: float, factor: float
) -> tuple[float, float]:
    """The interval ``[low, high)`` the delay before reconnect attempt ``attempt`` lies in.

    ``high`` is exclusive unless ``low == high`` (``factor`` 0, or a zero delay).
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    base = delay * 2.0 ** min(attempt - 1, MAX_EXPONENT)
    return min(base, delay_max) * (1.0 - factor), min(base * (1.0 + factor), delay_max)


def backoff_delay(
    attempt: int, delay: float, delay_max: float, factor: float, draw: float
) -> float:
    """The delay in seconds before reconnect attempt ``attempt`` (1, 2, 3 ...).

    ``draw`` is a uniform random number in ``[0, 1)`` supplied by the caller: the core owns
    no random source.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must lie in [0, 1), got {draw!r}")
    low, high = backoff_window(attempt, delay, delay_max, factor)
    # low + (high - low) * draw can round up past high; it never rounds below low.
    return min(high, low + (high - low) * draw)
