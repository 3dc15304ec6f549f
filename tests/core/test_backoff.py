"""The reconnect backoff, as ``specs/backoff.md`` writes it down.

The formula::

    base(n)  = delay * 2 ** min(n - 1, 32)
    low(n)   = min(base(n), delay_max) * (1 - factor)
    high(n)  = min(base(n) * (1 + factor), delay_max)
    delay(n) = low(n) + (high(n) - low(n)) * r        r uniform in [0, 1)
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
        (1, (0.5, 1.5)),  # jitter on both sides of the base, like socket.io-client's
        (2, (1.0, 3.0)),
        (3, (2.0, 5.0)),  # the upper end is capped: 6 > 5
        (4, (2.5, 5.0)),  # both ends capped: 8 > 5
        (5, (2.5, 5.0)),
        (1000, (2.5, 5.0)),
    ],
)
def test_the_window_with_the_default_options(attempt: int, window: tuple[float, float]) -> None:
    assert backoff_window(attempt, **DEFAULTS) == window


def test_the_draw_moves_the_delay_up_through_the_window() -> None:
    assert backoff_delay(1, 1.0, 5.0, 0.5, 0.0) == 0.5
    assert backoff_delay(1, 1.0, 5.0, 0.5, 0.5) == 1.0  # the middle is the base
    assert backoff_delay(1, 1.0, 5.0, 0.5, 0.75) == 1.25
    assert backoff_delay(3, 1.0, 5.0, 0.5, 0.5) == 3.5


def test_the_first_retries_spread_as_wide_as_socket_io_clients() -> None:
    """base * (1 +- factor): a fleet's first retries cover a whole second with the defaults."""
    low, high = backoff_window(1, 1.0, 5.0, 0.5)
    assert high - low == 1.0


def test_a_delay_never_rounds_past_the_cap() -> None:
    """low + (high - low) * r may round up past high in floating point; it is clamped."""
    draw = 1.0 - 2.0**-53  # the largest float below 1
    for delay, delay_max, factor in [(0.1, 0.3, 1.0), (0.7, 0.9, 0.3), (3.0, 3.3, 0.1)]:
        for attempt in (1, 2, 40):
            value = backoff_delay(attempt, delay, delay_max, factor, draw)
            assert value <= backoff_window(attempt, delay, delay_max, factor)[1] <= delay_max


def test_jitter_survives_the_cap() -> None:
    """Clients that lost the same server must not retry in lockstep, however long it lasts."""
    delays = {backoff_delay(50, 1.0, 5.0, 0.5, r / 10) for r in range(10)}
    assert len(delays) == 10
    assert min(delays) == 2.5 and max(delays) == pytest.approx(4.75)


@pytest.mark.parametrize("attempt", [33, 1_000, 1_075, 10**6, 2**64])
def test_a_huge_attempt_number_cannot_collapse_the_delay(attempt: int) -> None:
    """JS's ``2 ** attempts`` reaches Infinity near 1024 and turns into zero delays."""
    for draw in (0.0, 0.5, 0.999999):
        delay = backoff_delay(attempt, 1.0, 5.0, 0.5, draw)
        assert 2.5 <= delay <= 5.0
    assert backoff_window(attempt, 1e-9, 5.0, 0.5) == backoff_window(33, 1e-9, 5.0, 0.5)


def test_no_jitter_means_exactly_the_capped_base() -> None:
    assert backoff_window(3, 1.0, 5.0, 0.0) == (4.0, 4.0)
    assert backoff_delay(3, 1.0, 5.0, 0.0, 0.9) == 4.0
    assert backoff_delay(4, 1.0, 5.0, 0.0, 0.9) == 5.0


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
    base = delay * 2.0 ** min(attempt - 1, 32)
    assert high == min(delay_max, base * (1.0 + factor))
    assert low == min(delay_max, base) * (1.0 - factor)
    value = backoff_delay(attempt, delay, delay_max, factor, draw)
    assert math.isfinite(value)
    assert low <= value <= high <= delay_max
    if high > 0 and factor < 1:
        assert value > 0


@property_settings(200)
@given(attempts, bases, bases, factors)
def test_the_window_never_shrinks_as_attempts_grow(
    attempt: int, delay: float, extra: float, factor: float
) -> None:
    delay_max = delay + extra
    low, high = backoff_window(attempt, delay, delay_max, factor)
    next_low, next_high = backoff_window(attempt + 1, delay, delay_max, factor)
    assert low <= next_low and high <= next_high


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
