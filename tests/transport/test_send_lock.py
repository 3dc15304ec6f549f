"""SendLock: the transports' write lock, FIFO, with no queue until two tasks contend."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

from tether.transport._stream import SendLock

pytestmark = pytest.mark.anyio

TIMEOUT = 5


async def test_uncontended_acquire_holds_no_queue_and_does_not_yield() -> None:
    lock = SendLock()
    ran_meanwhile: list[str] = []

    async def other() -> None:
        ran_meanwhile.append("other")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        async with lock:  # must not let `other` run: no checkpoint when free
            held = lock.locked
            assert ran_meanwhile == []
        assert held
        assert not lock.locked
        assert lock.waiting == 0


async def _holder(lock: SendLock, release: anyio.Event, *, task_status: TaskStatus[None]) -> None:
    async with lock:
        task_status.started()
        await release.wait()


async def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock = SendLock()
    release = anyio.Event()
    order: list[int] = []

    async def waiter(n: int) -> None:
        async with lock:
            order.append(n)
            await anyio.lowlevel.checkpoint()  # hold it across a task switch

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(_holder, lock, release)
            for n in range(5):
                tg.start_soon(waiter, n)
                await anyio.wait_all_tasks_blocked()  # n is queued before n + 1 asks
            release.set()
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked
    assert lock._waiters is None  # the queue is dropped once empty


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lock = SendLock()
    release = anyio.Event()
    order: list[str] = []

    async def waiter(name: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            async with lock:
                order.append(name)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(_holder, lock, release)
            cancelled = anyio.CancelScope()
            tg.start_soon(waiter, "a")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter, "b", cancelled)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter, "c")
            await anyio.wait_all_tasks_blocked()
            cancelled.cancel()
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert order == ["a", "c"]
    assert not lock.locked
    assert lock._waiters is None


async def test_the_last_waiter_cancelled_drops_the_queue() -> None:
    lock = SendLock()
    release = anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(_holder, lock, release)
            scope = anyio.CancelScope()

            async def waiter() -> None:
                with scope:
                    async with lock:
                        pytest.fail("a cancelled waiter must not get the lock")

            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert lock.waiting == 1
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert lock.waiting == 0
            assert lock._waiters is None
            release.set()
    assert not lock.locked


async def test_a_waiter_cancelled_as_the_lock_is_handed_to_it_hands_it_on() -> None:
    # The holder hands the lock to the first waiter and cancels it in the same step, before
    # it runs: whether the cancellation lands in its wait (asyncio) or at its next
    # checkpoint (trio), the lock must reach the second waiter and end up free.
    lock = SendLock()
    got: list[str] = []
    first_scope = anyio.CancelScope()

    async def first() -> None:
        with first_scope:
            async with lock:
                got.append("first")
                await anyio.lowlevel.checkpoint()

    async def second() -> None:
        async with lock:
            got.append("second")

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await lock.__aenter__()
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            await lock.__aexit__(None, None, None)  # hands over to `first` ...
            first_scope.cancel()  # ... which is cancelled before it runs
    assert got[-1] == "second"
    assert not lock.locked
    assert lock._waiters is None
