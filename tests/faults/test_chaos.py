"""The seeded fault schedule: deterministic, within its ranges, and playable on a live proxy."""

from __future__ import annotations

import dataclasses
import itertools

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faults import CHAOS_FAULTS, ChaosStep, Fault, FaultProxy, chaos, play
from faults.chaos import LASTING, LATENCY_RANGE, MID_WRITE_RANGE, THROTTLE_RANGE

from .peers import TcpPeer, connect, receive_exactly, until


def first(steps: object, count: int) -> list[ChaosStep]:
    assert hasattr(steps, "__next__")
    return list(itertools.islice(steps, count))  # type: ignore[call-overload]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(),
    st.tuples(st.floats(0, 5), st.floats(0, 5)).map(sorted).map(tuple),
    st.lists(st.sampled_from(CHAOS_FAULTS), min_size=1, unique=True) | st.none(),
)
def test_a_seed_gives_one_schedule_within_its_ranges(
    seed: int, every: tuple[float, float], faults: list[Fault] | None
) -> None:
    steps = first(chaos(seed, every=every, faults=faults), 60)
    assert steps == first(chaos(seed, every=every, faults=faults), 60)
    allowed = set(CHAOS_FAULTS if faults is None else faults)
    low, high = every
    for step in steps:
        assert step.fault in allowed
        assert low <= step.delay <= high
        if step.fault in LASTING:
            assert low <= step.duration <= high
        else:
            assert step.duration == 0
        if step.fault is Fault.LATENCY:
            assert LATENCY_RANGE[0] <= step.seconds <= LATENCY_RANGE[1]
        if step.fault is Fault.THROTTLE:
            assert THROTTLE_RANGE[0] <= step.bytes_per_second <= THROTTLE_RANGE[1]
        if step.fault is Fault.RESET_MID_WRITE:
            assert MID_WRITE_RANGE[0] <= step.larger_than <= MID_WRITE_RANGE[1]


def test_seeds_differ_and_every_fault_comes_up() -> None:
    a = first(chaos(1), 200)
    b = first(chaos(2), 200)
    assert a != b
    assert {step.fault for step in a} == set(CHAOS_FAULTS)


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="every"):
        next(chaos(1, every=(2.0, 1.0)))
    with pytest.raises(ValueError, match="at least one"):
        next(chaos(1, faults=[]))


@pytest.mark.anyio
async def test_every_fault_played_on_a_live_proxy_then_healed() -> None:
    """Each kind of step, applied and lifted on a proxy with a connection through it: the
    proxy survives all of them and forwards again afterwards."""
    one_of_each: dict[Fault, ChaosStep] = {}
    for step in chaos(3):
        one_of_each.setdefault(step.fault, step)
        if len(one_of_each) == len(CHAOS_FAULTS):
            break
    steps = [
        dataclasses.replace(step, delay=0.0, duration=min(step.duration, 0.01))
        for fault, step in one_of_each.items()
        if fault not in (Fault.FIN, Fault.RESET)
    ]
    steps += [one_of_each[Fault.FIN], one_of_each[Fault.RESET]]
    steps[-2:] = [dataclasses.replace(step, delay=0.0) for step in steps[-2:]]
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        clients = []
        for _ in range(2):  # one for fin(), one for reset()
            client = await connect(proxy)
            clients.append(client)
            await client.send(b"x")
            assert await receive_exactly(client, 1) == b"x"
        played: list[tuple[float, ChaosStep]] = []
        await play(proxy, steps, played)
        assert [step for _, step in played] == steps
        await until(lambda: proxy.live == 0)
        for client in clients:
            await client.aclose()
        proxy.heal()
        async with await connect(proxy) as client:
            await client.send(b"after")
            assert await receive_exactly(client, 5) == b"after"


@pytest.mark.anyio
async def test_the_chaos_block_plays_in_the_background_and_heals_on_exit() -> None:
    async with TcpPeer() as peer, FaultProxy(peer) as proxy:
        async with proxy.chaos(7, every=(0.0, 0.01), faults=[Fault.BLACKHOLE]) as played:
            await until(lambda: len(played) >= 3)
        assert all(step.fault is Fault.BLACKHOLE for _, step in played)
        with anyio.fail_after(5):
            async with await connect(proxy) as client:
                await client.send(b"healed")
                assert await receive_exactly(client, 6) == b"healed"
