"""A seeded fault schedule for soak tests: which fault, when, for how long, with what value.

``chaos(seed)`` is pure: the same seed gives the same steps (``random.Random(seed)``, nothing
else), so a failing soak can be replayed with its seed. What the faults then do to the
connections still depends on timing (which frame is next when a fault is armed), so a replay
is the same schedule, not necessarily the same byte stream.

``play(proxy, steps)`` applies them: wait ``step.delay``, apply the fault, and for a lasting
one (black hole, latency, throttle, split, refuse) hold it ``step.duration`` seconds and lift
it, then the next step. ``FaultProxy.chaos(seed)`` runs ``play`` in the background of a
``with`` block and heals the proxy on exit.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from .kinds import Corruption, Direction, Fault

if TYPE_CHECKING:
    from .proxy import FaultProxy

__all__ = ["CHAOS_FAULTS", "LASTING", "ChaosStep", "chaos", "play"]

#: What a schedule picks from by default: every fault the proxy has.
CHAOS_FAULTS: Final = tuple(Fault)

#: The faults that last until lifted; the others act once.
LASTING: Final = frozenset(
    {Fault.BLACKHOLE, Fault.LATENCY, Fault.THROTTLE, Fault.SPLIT, Fault.REFUSE}
)

#: The values a step draws from. Latency in seconds, throttle in bytes per second, the
#: frame size over which a mid-write reset fires, in bytes.
LATENCY_RANGE: Final = (0.005, 0.2)
THROTTLE_RANGE: Final = (2_000, 200_000)
MID_WRITE_RANGE: Final = (256, 64 * 1024)


@dataclass(frozen=True)
class ChaosStep:
    """One fault of a schedule."""

    delay: float  # seconds to wait before applying it
    fault: Fault
    duration: float = 0.0  # how long a lasting fault holds; 0 for the others
    seconds: float = 0.0  # LATENCY
    bytes_per_second: int = 0  # THROTTLE
    larger_than: int = 0  # RESET_MID_WRITE
    direction: Direction = Direction.BOTH  # BLACKHOLE, LATENCY, THROTTLE, SPLIT, CORRUPT
    corruption: Corruption = Corruption.PACKET_TYPE  # CORRUPT
    reset: bool = False  # REFUSE: with RST instead of FIN


def chaos(
    seed: int,
    *,
    every: tuple[float, float] = (0.2, 2.0),
    faults: Iterable[Fault] | None = None,
) -> Iterator[ChaosStep]:
    """An endless schedule: each step waits a delay drawn uniformly from ``every`` (seconds),
    picks one of ``faults`` (all by default) uniformly, and draws its values; a lasting fault
    holds for a duration drawn from ``every`` too."""
    low, high = every
    if not 0 <= low <= high:
        raise ValueError(f"every must be (low, high) with 0 <= low <= high, got {every!r}")
    choices = tuple(CHAOS_FAULTS if faults is None else faults)
    if not choices:
        raise ValueError("faults must name at least one fault")
    rng = random.Random(seed)
    directions = (Direction.TO_SERVER, Direction.TO_CLIENT, Direction.BOTH)
    while True:
        delay = rng.uniform(low, high)
        fault = rng.choice(choices)
        duration = rng.uniform(low, high) if fault in LASTING else 0.0
        if fault is Fault.LATENCY:
            yield ChaosStep(delay, fault, duration, seconds=rng.uniform(*LATENCY_RANGE))
        elif fault is Fault.THROTTLE:
            rate = rng.randint(*THROTTLE_RANGE)
            yield ChaosStep(delay, fault, duration, bytes_per_second=rate)
        elif fault is Fault.RESET_MID_WRITE:
            yield ChaosStep(delay, fault, larger_than=rng.randint(*MID_WRITE_RANGE))
        elif fault is Fault.CORRUPT:
            direction = rng.choice((Direction.TO_SERVER, Direction.TO_CLIENT))
            how = rng.choice(tuple(Corruption))
            yield ChaosStep(delay, fault, direction=direction, corruption=how)
        elif fault in (Fault.BLACKHOLE, Fault.SPLIT):
            yield ChaosStep(delay, fault, duration, direction=rng.choice(directions))
        elif fault is Fault.REFUSE:
            yield ChaosStep(delay, fault, duration, reset=rng.random() < 0.5)
        else:  # FIN, RESET, DROP_ACK: no values
            yield ChaosStep(delay, fault)


async def apply(proxy: FaultProxy, step: ChaosStep) -> None:
    """Apply one step's fault (a lasting one stays until :func:`lift`)."""
    fault = step.fault
    if fault is Fault.FIN:
        await proxy.fin()
    elif fault is Fault.RESET:
        await proxy.reset()
    elif fault is Fault.BLACKHOLE:
        proxy.blackhole(direction=step.direction)
    elif fault is Fault.LATENCY:
        proxy.latency(step.seconds)
    elif fault is Fault.THROTTLE:
        proxy.throttle(step.bytes_per_second)
    elif fault is Fault.SPLIT:
        proxy.split(direction=step.direction)
    elif fault is Fault.CORRUPT:
        proxy.corrupt_next_frame(step.direction, step.corruption)
    elif fault is Fault.DROP_ACK:
        proxy.drop_next_ack()
    elif fault is Fault.RESET_MID_WRITE:
        proxy.reset_mid_write(step.larger_than)
    else:
        proxy.refuse(reset=step.reset)


def lift(proxy: FaultProxy, step: ChaosStep) -> None:
    """End a lasting step's fault."""
    fault = step.fault
    if fault is Fault.BLACKHOLE:
        proxy.blackhole(False)
    elif fault is Fault.LATENCY:
        proxy.latency(0)
    elif fault is Fault.THROTTLE:
        proxy.throttle(None)
    elif fault is Fault.SPLIT:
        proxy.split(False)
    elif fault is Fault.REFUSE:
        proxy.refuse(False)


async def play(
    proxy: FaultProxy,
    steps: Iterable[ChaosStep],
    played: list[tuple[float, ChaosStep]] | None = None,
) -> None:
    """Apply ``steps`` one after the other (see the module doc); each is appended to
    ``played`` with the time (``anyio.current_time()``) it was applied. Runs until ``steps``
    ends (never, for a :func:`chaos` schedule) or the caller cancels it."""
    for step in steps:
        await anyio.sleep(step.delay)
        if played is not None:
            played.append((anyio.current_time(), step))
        await apply(proxy, step)
        if step.fault in LASTING:
            try:
                await anyio.sleep(step.duration)
            finally:
                lift(proxy, step)
