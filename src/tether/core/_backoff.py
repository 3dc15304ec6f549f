"""Reconnect delays: a pure function of the attempt number and one random draw.

The formula (``specs/backoff.md``)::

    ceiling(n) = min(delay_max, delay * 2 ** min(n - 1, MAX_EXPONENT))
    delay(n)   = ceiling(n) * (1 - factor * r)          r drawn uniformly from [0, 1)

so ``delay(n)`` lies in ``(ceiling(n) * (1 - factor), ceiling(n)]``.

Why not socket.io-client's formula: backo2 adds ``±factor`` jitter *before* capping, so from
the fourth attempt on every client waits exactly ``delay_max`` and a fleet that lost its
server retries in lockstep; and ``2 ** attempts`` overflows to Infinity after ~1000
attempts, which JS turns into zero delays half of the time (peers.md, "Defects" 1). Here the
cap applies to the ceiling and the jitter to what is under it, so at the cap the delays still
spread over ``[delay_max * (1 - factor), delay_max]``; the exponent is clamped, so the delay
never collapses, however many attempts fail.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_EXPONENT", "backoff_delay", "backoff_window"]

#: 2**32 times any sane base delay is far above any cap; past it the ceiling cannot grow.
MAX_EXPONENT: Final = 32


def backoff_window(
    attempt: int, delay: float, delay_max: float, factor: float
) -> tuple[float, float]:
    """The interval ``(low, high]`` the delay before reconnect attempt ``attempt`` lies in.

    ``low`` is exclusive unless ``factor`` is 0 (then the delay is exactly ``high``).
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    ceiling = min(delay_max, delay * 2.0 ** min(attempt - 1, MAX_EXPONENT))
    return ceiling * (1.0 - factor), ceiling


def backoff_delay(
    attempt: int, delay: float, delay_max: float, factor: float, draw: float
) -> float:
    """The delay in seconds before reconnect attempt ``attempt`` (1, 2, 3 ...).

    ``draw`` is a uniform random number in ``[0, 1)`` supplied by the caller: the core owns
    no random source.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must lie in [0, 1), got {draw!r}")
    _, ceiling = backoff_window(attempt, delay, delay_max, factor)
    return ceiling * (1.0 - factor * draw)
