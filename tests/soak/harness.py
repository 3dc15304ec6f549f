"""A bounded chaos soak: a producer and a consumer through fault proxies, counted.

A **producer** emits numbered messages with tether's own retries (``retries``, ``ack_timeout``;
no retries of the application's), and a **consumer** receives what the server sends, both
through a :class:`~faults.FaultProxy` playing a seeded schedule of every fault (FIN, RST,
black holes, latency, throttling, 1-byte splits, corrupted frames, dropped acks, refused
connections; one every 0.2-2 s), while the consumer also ``close()``s and ``open()``s now and
then. At the end the faults are healed, the clients catch up, and the figures are counted:

* ``sent``, ``delivered`` (once at least), ``lost``, ``twice`` (delivered more than once) for
  each direction;
* ``reconnects``, ``attempts while closed`` (must be 0: a closed client never reconnects by
  itself), ``peak memory`` (the process's peak RSS).

Scenarios (``SCENARIOS``):

* ``node``: Node socket.io 4.8 with connection state recovery. The producer's messages are
  ``record`` events the server counts (at least once: a plain server may see one twice); the
  consumer gets the server's ``tick`` broadcasts at 20/s, replayed by recovery after a drop,
  and after a ``close()`` made while reconnecting. A ``close()`` made while connected says
  goodbye, so the ticks the server emits until the next connect are not owed to it
  (``specs/delivery.md`` §3): they are left out of ``lost``. Frames toward the server are
  never corrupted in this scenario: Node closes such a session with "parse error", which its
  recovery never keeps (only transport and ping-timeout closes are recoverable), so what it
  emitted meanwhile is lost whatever the client does.

* ``hub``: tether's hub, one process. The producer ``send``s numbered messages to a channel
  (its retries and the hub's message ids: exactly once); the consumer is a member of it and
  gets them, replayed from the hub's history after a drop and after ``close()`` + ``open()``.
  Targets: nothing lost, **nothing twice**.
* ``hub-redis``: two hub processes on Redis; the producer talks to one, and at every
  ``close()`` + ``open()`` the consumer's proxy switches to the other process (as a load
  balancer would): it resumes there. Same targets.

In the hub scenarios frames are corrupted toward the clients only, like the Node one: the hub
drops a malformed packet and keeps the connection (specs/hub-wire-format.md §4.1), so a
corrupted ``join`` would leave the member outside its channel until its next reconnect, a
fault TCP and TLS never cause.

Run a long one by command from ``tests/``: ``python -m soak --seconds 90 --seed 7
--scenario hub``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

import tether
from faults import ChaosStep, Direction, Fault, FaultProxy, chaos, play
from servers.handles import NodeServer, ServerOptions

__all__ = ["SCENARIOS", "Figures", "running_hubs", "soak_hub", "soak_node"]

FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.5}


@dataclass
class Flow:
    """One direction's count."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    twice: int = 0

    def count(self, sent: int, received: Counter[int], owed: set[int]) -> None:
        self.sent = sent
        self.delivered = sum(1 for n in owed if received[n] >= 1)
        self.lost = len(owed) - self.delivered
        self.twice = sum(1 for n, times in received.items() if times > 1)


@dataclass
class Figures:
    """What a soak run counted."""

    scenario: str
    seconds: float
    seed: int
    produced: Flow = field(default_factory=Flow)
    consumed: Flow = field(default_factory=Flow)
    reconnects: int = 0
    attempts_while_closed: int = 0
    faults: int = 0
    peak_memory_mb: float = 0.0

    def lines(self) -> list[str]:
        p, c = self.produced, self.consumed
        return [
            f"soak {self.scenario} for {self.seconds:.0f} s, seed {self.seed}, "
            f"{self.faults} faults",
            f"  producer → server: sent {p.sent}, delivered {p.delivered}, lost {p.lost}, "
            f"delivered twice {p.twice}",
            f"  server → consumer: sent {c.sent}, delivered {c.delivered}, lost {c.lost}, "
            f"delivered twice {c.twice}",
            f"  reconnects {self.reconnects}, attempts while closed "
            f"{self.attempts_while_closed}, peak memory {self.peak_memory_mb:.0f} MB",
        ]


class ClosedWatch:
    """Counts connection attempts a client makes while its user has closed it."""

    def __init__(self, rt: tether.RealtimeClient) -> None:
        self.closed = False
        self.violations = 0
        self.reconnects = 0
        rt.on_reconnect_attempt(self._attempt)
        rt.on_reconnect(lambda attempt: self._reconnected())
        rt.on_state_change(self._changed)

    def _attempt(self, attempt: int) -> None:
        if self.closed:
            self.violations += 1

    def _reconnected(self) -> None:
        self.reconnects += 1

    def _changed(self, change: tether.StateChanged) -> None:
        if change.current is tether.State.CONNECTING and self.closed:
            self.violations += 1


async def soak_node(server: NodeServer, *, seconds: float, seed: int) -> Figures:
    """The ``node`` scenario against a running Node server started with ``csr=True``."""
    figures = Figures("node", seconds, seed)
    received: Counter[int] = Counter()
    await server.reset()
    async with (
        FaultProxy(server) as to_producer,
        FaultProxy(server) as to_consumer,
        tether.RealtimeClient(
            to_producer.url, retries=1000, ack_timeout=1.0, timeout=2.0, **FAST
        ) as producer,
        tether.RealtimeClient(
            to_consumer.url, auth={"role": "consumer"}, timeout=2.0, **FAST
        ) as consumer,
    ):
        watch = ClosedWatch(consumer)
        consumer.on("tick", lambda n: received.update([n]))
        await producer.wait_connected(10)
        await consumer.wait_connected(10)
        await server.control("POST", "ticks?interval=50")
        sent = 0

        async def produce() -> None:
            nonlocal sent
            while True:
                producer.emit("record", sent)
                sent += 1
                await anyio.sleep(0.02)

        figures.faults = await _chaos(
            to_producer, to_consumer, consumer, watch, produce, seed=seed, seconds=seconds
        )
        # Healed: let both catch up, then stop the ticks and count.
        await _settle(lambda: producer.is_connected() and consumer.is_connected(), 30)
        state = await server.control("POST", "ticks?interval=0")
        ticks = int(state["ticks"])
        await _settle(lambda: bool(received) and max(received) >= ticks, 30)

        async def all_recorded() -> bool:
            records = {int(n) for n in (await server.state())["records"]}
            return len(records) >= sent

        await _settle_async(all_recorded, 60)
        recorded: Counter[int] = Counter(int(n) for n in (await server.state())["records"])
        figures.produced.count(sent, recorded, set(range(sent)))
        owed = set(range(1, ticks + 1)) - _goodbye_windows(await server.state())
        figures.consumed.count(ticks, received, owed)
        figures.reconnects = watch.reconnects
        figures.attempts_while_closed = watch.violations
    figures.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def _recoverable(steps: Iterator[ChaosStep]) -> Iterator[ChaosStep]:
    """The schedule with every corruption aimed at the client (see the module doc)."""
    for step in steps:
        if step.fault is Fault.CORRUPT and step.direction is not Direction.TO_CLIENT:
            yield replace(step, direction=Direction.TO_CLIENT)
        else:
            yield step


def _goodbye_windows(state: Any) -> set[int]:
    """The ticks emitted while the consumer had said goodbye (a ``close()`` while connected,
    so Node dropped its session): from that disconnect to its next connection."""
    consumer_sids = {
        h["sid"] for h in state["history"] if (h.get("auth") or {}).get("role") == "consumer"
    }
    events: list[tuple[float, int, str]] = []
    for h in state["history"]:
        if h["sid"] in consumer_sids:
            events.append((h["time"], h["ticks"], "connect"))
    gone: set[int] = set()
    goodbyes = [
        d["ticks"]
        for d in state["disconnects"]
        if d["sid"] in consumer_sids and d["reason"] == "client namespace disconnect"
    ]
    connects = sorted(t for _, t, _ in events)
    for start in goodbyes:
        later = [t for t in connects if t >= start]
        end = later[0] if later else start
        gone.update(range(start + 1, end + 1))
    return gone


class _Rng:
    """The cycle's own seeded draws (random.Random, kept apart from the proxies')."""

    def __init__(self, seed: int) -> None:
        import random

        self._random = random.Random(seed * 7919)

    def uniform(self, low: float, high: float) -> float:
        return self._random.uniform(low, high)


async def _settle(predicate: Callable[[], bool], timeout: float) -> None:
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


async def _settle_async(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    with anyio.move_on_after(timeout):
        while not await predicate():
            await anyio.sleep(0.1)


async def soak_hub(
    hubs: list[tuple[str, int]], *, seconds: float, seed: int, scenario: str = "hub"
) -> Figures:
    """The ``hub`` scenarios: ``hubs`` are the (host, port) of one or two hub processes; the
    producer uses the first, the consumer moves between them at every close and open."""
    figures = Figures(scenario, seconds, seed)
    room = f"soak-{seed}"
    received: Counter[int] = Counter()
    first = hubs[0]
    async with (
        FaultProxy(first) as to_producer,
        FaultProxy(first) as to_consumer,
        tether.RealtimeClient(
            to_producer.url, retries=1000, ack_timeout=1.0, timeout=2.0, **FAST
        ) as producer,
        tether.RealtimeClient(to_consumer.url, timeout=2.0, **FAST) as consumer,
    ):
        watch = ClosedWatch(consumer)
        resumes: list[tether.StreamResumed] = []
        consumer.on_resume(resumes.append)
        consumer.on("m", lambda payload: received.update([payload["message"]]))
        await producer.wait_connected(10)
        await consumer.wait_connected(10)
        consumer.join(room)
        await consumer.get_members(room, timeout=10)  # the join is done
        sent = 0

        async def produce() -> None:
            nonlocal sent
            while True:
                producer.send(room, "m", sent)
                sent += 1
                await anyio.sleep(0.02)

        turn = 0

        def next_hub() -> None:
            # As a load balancer would: the consumer's next connection goes elsewhere.
            nonlocal turn
            turn += 1
            to_consumer.upstream_host, to_consumer.upstream_port = hubs[turn % len(hubs)]

        figures.faults = await _chaos(
            to_producer,
            to_consumer,
            consumer,
            watch,
            produce,
            seed=seed,
            seconds=seconds,
            before_open=next_hub,
        )
        await _settle(lambda: producer.is_connected() and consumer.is_connected(), 30)
        # Everything sent has been acknowledged once a last call comes back (one connection
        # keeps the order); then the consumer catches up.
        with anyio.move_on_after(60):
            await producer.call("members", {"channel": room}, timeout=60)
        await _settle(lambda: len(received) >= sent, 60)
        figures.produced.count(sent, received, set(range(sent)))
        figures.consumed.count(sent, received, set(range(sent)))
        figures.reconnects = watch.reconnects
        figures.attempts_while_closed = watch.violations
    figures.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


async def _chaos(
    to_producer: FaultProxy,
    to_consumer: FaultProxy,
    consumer: tether.RealtimeClient,
    watch: ClosedWatch,
    produce: Callable[[], Coroutine[Any, Any, None]],
    *,
    seed: int,
    seconds: float,
    before_open: Callable[[], None] | None = None,
) -> int:
    """For ``seconds``: the producer runs, the consumer is closed and opened again every
    2-4 s, and both proxies play their faults. Then heal, open the consumer for good, and
    return how many faults were played."""

    async def cycle() -> None:
        rng = _Rng(seed)
        while True:
            await anyio.sleep(rng.uniform(2.0, 4.0))
            watch.closed = True
            consumer.close()
            await anyio.sleep(rng.uniform(0.1, 0.6))
            if before_open is not None:
                before_open()
            watch.closed = False
            consumer.open()

    played_p: list[Any] = []
    played_c: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        group.start_soon(cycle)
        async with anyio.create_task_group() as faults:
            faults.start_soon(play, to_producer, _recoverable(chaos(seed)), played_p)
            faults.start_soon(play, to_consumer, _recoverable(chaos(seed + 1)), played_c)
            await anyio.sleep(seconds)
            faults.cancel_scope.cancel()
        to_producer.heal()
        to_consumer.heal()
        group.cancel_scope.cancel()
    watch.closed = False
    consumer.open()
    return len(played_p) + len(played_c)


SCENARIOS = ("node", "hub", "hub-redis")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--scenario", choices=SCENARIOS, default="node")
    args = parser.parse_args(argv)
    if args.scenario == "node":
        server = NodeServer(ServerOptions(csr=True, ping_interval=1000, ping_timeout=2000))
        server.start()
        try:
            figures = anyio.run(
                lambda: soak_node(server, seconds=args.seconds, seed=args.seed),
                backend=args.backend,
            )
        finally:
            server.kill()
    else:
        with running_hubs(2 if args.scenario == "hub-redis" else 1) as hubs:
            figures = anyio.run(
                lambda: soak_hub(
                    hubs, seconds=args.seconds, seed=args.seed, scenario=args.scenario
                ),
                backend=args.backend,
            )
    print("\n".join(figures.lines()))
    ok = figures.produced.lost == 0 and figures.consumed.lost == 0
    if args.scenario != "node":
        ok = ok and figures.consumed.twice == 0
    return 0 if ok and figures.attempts_while_closed == 0 else 1


@contextlib.contextmanager
def running_hubs(count: int) -> Iterator[list[tuple[str, int]]]:
    """``count`` ``tether serve`` processes (on a throw-away Redis when more than one)."""
    with tempfile.TemporaryDirectory() as tmp:
        from hub.conftest import HubProcess, RedisServer

        redis = RedisServer.start(Path(tmp)) if count > 1 else None
        args: tuple[str, ...] = ("--ping-interval", "1", "--ping-timeout", "2")
        if redis is not None:
            args += ("--redis", redis.url, "--redis-prefix", f"soak-{os.getpid()}:")
        hubs = [HubProcess.start(*args, tmp=Path(tmp)) for _ in range(count)]
        try:
            yield [(hub.host, hub.port) for hub in hubs]
        finally:
            for hub in hubs:
                hub.stop()
            if redis is not None:
                redis.stop()


if __name__ == "__main__":
    sys.exit(main())
