"""The reconnect backoff, as ``specs/backoff.md`` writes it down.

The formula::

    ceiling(n) = min(delay_max, delay * 2 ** min(n - 1, 32))
    delay(n)   = ceiling(n) * (1 - factor * r)        r uniform in [0, 1)
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.core import CoreOptions, StateChanged, backoff_delay, backoff_window

from .helpers import Harness, property_settings

DEFAULTS = {"delay": 1.0, "delay_max": 5.0, "factor": 0.5}


@pytest.mark.parametrize(
    ("attempt", "window"),
    [
        (1, (0.5, 1.0)),
        (2, (1.0, 2.0)),
        (3, (2.0, 4.0)),
        (4, (2.5, 5.0)),  # capped: 8 > 5
        (5, (2.5, 5.0)),
        (1000, (2.5, 5.0)),
    ],
)
def test_the_window_with_the_default_options(attempt: int, window: tuple[float, float]) -> None:
    assert backoff_window(attempt, **DEFAULTS) == window


def test_the_draw_moves_the_delay_down_from_the_ceiling() -> None:
    assert backoff_delay(1, 1.0, 5.0, 0.5, 0.0) == 1.0
    assert backoff_delay(1, 1.0, 5.0, 0.5, 0.5) == 0.75
    assert backoff_delay(3, 1.0, 5.0, 0.5, 0.5) == 3.0


def test_jitter_survives_the_cap() -> None:
    """Clients that lost the same server must not retry in lockstep, however long it lasts."""
    delays = {backoff_delay(50, 1.0, 5.0, 0.5, r / 10) for r in range(10)}
    assert len(delays) == 10
    assert min(delays) == pytest.approx(2.75) and max(delays) == 5.0


@pytest.mark.parametrize("attempt", [33, 1_000, 1_075, 10**6, 2**64])
def test_a_huge_attempt_number_cannot_collapse_the_delay(attempt: int) -> None:
    """JS's ``2 ** attempts`` reaches Infinity near 1024 and turns into zero delays."""
    for draw in (0.0, 0.5, 0.999999):
        delay = backoff_delay(attempt, 1.0, 5.0, 0.5, draw)
        assert 2.5 <= delay <= 5.0
    assert backoff_window(attempt, 1e-9, 5.0, 0.5) == backoff_window(33, 1e-9, 5.0, 0.5)


def test_no_jitter_means_exactly_the_ceiling() -> None:
    assert backoff_window(3, 1.0, 5.0, 0.0) == (4.0, 4.0)
    assert backoff_delay(3, 1.0, 5.0, 0.0, 0.9) == 4.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_window(attempt, **DEFAULTS)
    with pytest.raises(ValueError, match="start at 1"):
        backoff_delay(attempt, 1.0, 5.0, 0.5, 0.0)


@pytest.mark.parametrize("draw", [-0.1, 1.0, 1.5, math.nan])
def test_the_draw_must_lie_in_the_unit_interval(draw: float) -> None:
    with pytest.raises(ValueError, match="draw"):
        backoff_delay(1, 1.0, 5.0, 0.5, draw)


#: Seconds: zero, or at least a microsecond (a subnormal "delay" could round to zero).
bases = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e6))
factors = st.floats(min_value=0.0, max_value=1.0)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
attempts = st.integers(min_value=1, max_value=2**70)


@property_settings(300)
@given(attempts, bases, bases, factors, draws)
def test_every_delay_lies_in_its_window(
    attempt: int, delay: float, extra: float, factor: float, draw: float
) -> None:
    delay_max = delay + extra
    low, high = backoff_window(attempt, delay, delay_max, factor)
    assert high == min(delay_max, delay * 2.0 ** min(attempt - 1, 32))
    assert low == high * (1.0 - factor)
    value = backoff_delay(attempt, delay, delay_max, factor, draw)
    assert math.isfinite(value)
    assert low <= value <= high
    if high > 0 and factor < 1:
        assert value > 0


@property_settings(200)
@given(attempts, bases, bases, factors)
def test_the_ceiling_never_shrinks_as_attempts_grow(
    attempt: int, delay: float, extra: float, factor: float
) -> None:
    delay_max = delay + extra
    assert (
        backoff_window(attempt, delay, delay_max, factor)[1]
        <= backoff_window(attempt + 1, delay, delay_max, factor)[1]
    )


def test_the_core_waits_the_backoff_delay_with_its_own_draws() -> None:
    options = CoreOptions(
        reconnection_delay=0.5, reconnection_delay_max=3.0, randomization_factor=0.4
    )
    h = Harness(options, draw=0.25)
    h.open()
    h.failed()
    for attempt in range(1, 8):
        change = h.last(StateChanged)
        assert change is not None and change.attempt == attempt
        expected = backoff_delay(attempt, 0.5, 3.0, 0.4, 0.25)
        assert change.retry_in == expected
        assert h.conn.next_deadline() == h.now + expected
        h.until_deadline()
        h.failed()
