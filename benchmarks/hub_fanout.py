"""The hub's fan-out: one sender, a channel of 1, 100 or 1000 members, history on and off.

``python -m benchmarks.hub_fanout`` starts, for every configuration, a fresh embedded hub
(``tether.hub.Hub(HubConfig(port=0, history=H))`` on asyncio, in a process of its own, so its
memory and CPU are its own) and a fresh load process: ``--members`` tether clients
(``RealtimeClient(url)``, asyncio) that join one channel, and one more tether client, not a
member, that sends to it. Both import tether from this checkout's ``src``.

* **joins**: 50 members at a time, each batch's ``channel:join`` announcements delivered
  before the next (every join is announced to the members already in: k(k-1)/2 for k).
* **fan-out**: the sender sends ``--deliveries / members`` messages of 64 B JSON per round, in
  batches of ``--batch``; each batch is sent only once every member has every message before
  it, so no member falls more than a batch behind (the hub's send queue bound is 10,000
  packets). Delivered messages per second = members × messages / the time from the first send
  to the last member's last delivery. Every member must get every message once, in order.
  Measured alongside: the hub process's CPU per delivered message (``os.times()`` in the hub),
  and its RSS after the joins and after the rounds.
* **memory per channel**: ``--channels`` channels, each with one member (one client joined
  to all of them) and ``--per-channel`` messages sent to each (by default as many as the
  history keeps, so a history is full); the hub's memory (RSS, and tracemalloc's traced
  bytes: that hub runs under tracemalloc) after the clients connected and after the channels
  were made and filled, divided by the channels.

History on is ``HubConfig(history=1000)`` (the default), off is ``history=0``; the two
alternate, each in its own hub process. Loopback only; every process has a watchdog and is
killed by pid when the run ends (benchmarks/_procs.py).

    python -m benchmarks.hub_fanout [--quick] [--members 1,100,1000] [--history 1000,0]
                                    [--rounds 3] [--only fanout,memory]

Writes ``results/hub-fanout.{json,md}`` (``--quick``: ``hub-fanout-quick.*``, git-ignored).
Figures: benchmarks/README.md, "Hub fan-out".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ._procs import ROOT, STARTED, BenchError, LineReader, client_env, run_main, stop_process

if TYPE_CHECKING:
    import tether

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EVENT = "m"
CHANNEL = "fanout"
#: Pads each message so that its JSON (``{"i":…,"pad":…}``) is 64 bytes for i < 100,000.
PAD = "x" * 44
#: Per-client connect bound, seconds.
CONNECT_TIMEOUT = 20.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_watchdog(seconds: float) -> None:
    """SIGALRM's default action ends this process if it is still running after ``seconds``."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(seconds) + 1)


# ------------------------------------------------------------------------------ the hub


def hub_stat() -> dict[str, Any]:
    """The hub process's memory and CPU now, after a full garbage collection."""
    gc.collect()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    times = os.times()
    return {
        "rss": int(status["VmRSS"].split()[0]) * 1024,
        "hwm": int(status["VmHWM"].split()[0]) * 1024,
        "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        "cpu": times.user + times.system,
    }


async def serve_hub(history: int, trace: bool) -> None:
    """The hub child: ``HUB {port}`` on stdout, then ``STAT {…}`` for every ``stat`` line on
    stdin, until stdin closes."""
    if trace:
        tracemalloc.start()
    from tether.hub import Hub, HubConfig

    config = HubConfig(host="127.0.0.1", port=0, history=history)
    async with Hub(config) as hub:
        print(f"HUB {json.dumps({'port': hub.port, 'history': config.history})}", flush=True)
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        pending = b""

        def on_stdin() -> None:
            nonlocal pending
            chunk = os.read(0, 4096)
            if not chunk:
                loop.remove_reader(0)
                closed.set()
                return
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                if line.strip() == b"stat":
                    print(f"STAT {json.dumps(hub_stat())}", flush=True)

        loop.add_reader(0, on_stdin)
        await closed.wait()


# ------------------------------------------------------------------------------ the load


class Checkpoints:
    """The load child's side of a checkpoint: ``AT {name}`` on stdout, then wait for the
    runner's ``ok`` on stdin (it reads the hub's memory and CPU meanwhile)."""

    def __init__(self) -> None:
        self.reader = LineReader(sys.stdin.buffer)
        self.timeout = 30.0

    async def at(self, name: str) -> None:
        import anyio

        print(f"AT {name}", flush=True)
        deadline = time.monotonic() + self.timeout
        line = await anyio.to_thread.run_sync(self.reader.readline, deadline)
        if line != "ok":
            raise RuntimeError(f"checkpoint {name}: the runner answered {line!r}")


async def connect_all(
    stack: AsyncExitStack, url: str, count: int, concurrency: int
) -> list[tether.RealtimeClient]:
    """``count`` connected clients, entered in ``stack``, ``concurrency`` at a time."""
    import tether

    clients: list[tether.RealtimeClient] = []
    for first in range(0, count, concurrency):
        batch = [
            await stack.enter_async_context(tether.RealtimeClient(url))
            for _ in range(first, min(count, first + concurrency))
        ]
        for rt in batch:
            await rt.wait_connected(timeout=CONNECT_TIMEOUT)
        clients.extend(batch)
    return clients


async def wait_members(sender: tether.RealtimeClient, channel: str, count: int) -> None:
    """Until the hub lists ``count`` members in ``channel`` (the joins are fire-and-forget)."""
    import anyio

    with anyio.fail_after(60):
        while len(await sender.get_members(channel)) < count:
            await anyio.sleep(0.05)


class Members:
    """Counts every member's deliveries and checks they come once each, in order."""

    def __init__(self, count: int) -> None:
        import anyio

        self.count = count
        self.received = [0] * count
        self.last = [-1] * count
        self.misordered = 0
        self.disconnects = 0
        self.reasons: dict[str, int] = {}
        self.join_events = 0
        self.total = 0
        self.target = 0
        self.done = anyio.Event()

    def listener(self, i: int) -> Any:
        received, last = self.received, self.last

        def on_message(payload: Any) -> None:
            seq = payload["message"]["i"]
            if seq != last[i] + 1:
                self.misordered += 1
            last[i] = seq
            received[i] += 1
            self.total += 1
            if self.total == self.target:
                self.done.set()

        return on_message

    def watch(self, rt: tether.RealtimeClient) -> None:
        """Count the member's disconnects and the ``channel:join`` announcements it gets."""

        def on_disconnect(reason: Any) -> None:
            self.disconnects += 1
            why = str(reason)[:200]
            self.reasons[why] = self.reasons.get(why, 0) + 1

        def on_join(payload: Any) -> None:
            self.join_events += 1

        rt.on_disconnect(on_disconnect)
        rt.on_join(on_join)

    async def wait_joins(self, total: int, timeout: float) -> None:
        """Until the members got ``total`` channel:join announcements in all."""
        import anyio

        with anyio.move_on_after(timeout):
            while self.join_events < total:
                await anyio.sleep(0.01)
        if self.join_events < total:
            message = f"{self.join_events} of {total} channel:join announcements after {timeout} s"
            log(message)
            raise TimeoutError(message)

    async def wait_for(self, total: int, timeout: float) -> None:
        import anyio

        self.target = total
        if self.total < total:
            self.done = anyio.Event()
            with anyio.move_on_after(timeout):
                await self.done.wait()
        if self.total < total:
            each = total // self.count
            short = [i for i, n in enumerate(self.received) if n < each]
            # Said at once: unwinding closes every client, which may outlast the watchdog.
            message = (
                f"{self.total} of {total} deliveries after {timeout} s: {len(short)} of "
                f"{self.count} members short of {each} (e.g. member {short[0]}: "
                f"{self.received[short[0]]}); {self.disconnects} disconnects {self.reasons}, "
                f"{self.join_events} channel:join events of {self.count * (self.count - 1) // 2}"
            )
            log(message)
            raise TimeoutError(message)


async def load_fanout(args: argparse.Namespace) -> dict[str, Any]:
    """Members join, the sender sends rounds of batches; checkpoints around every round."""
    import anyio

    points = Checkpoints()
    members = Members(int(args.members))
    messages, batch = args.messages, args.batch
    seq = 0

    async def send(count: int) -> None:
        nonlocal seq
        sent = 0
        while sent < count:
            n = min(batch, count - sent)
            for _ in range(n):
                sender.send(CHANNEL, EVENT, {"i": seq, "pad": PAD})
                seq += 1
            sent += n
            await members.wait_for(seq * members.count, args.timeout / 2)

    rounds = []
    async with AsyncExitStack() as stack:
        t0 = time.perf_counter()
        clients = await connect_all(stack, args.url, members.count + 1, args.concurrency)
        connect_s = time.perf_counter() - t0
        sender, joined = clients[0], clients[1:]
        await points.at("connected")
        for i, rt in enumerate(joined):
            rt.on(EVENT, members.listener(i))
            members.watch(rt)
        # Joined ``--join-batch`` at a time, each batch's announcements delivered before the
        # next: every join is announced to the members already in (channel:join; echo off,
        # so not to the joiner), k(k-1)/2 in all for k members. All at once, 1000 members
        # make 499,500 announcements that queue in the hub until the members' pings time out
        # and they are dropped, rejoin and announce again (benchmarks/README.md, "Hub
        # fan-out").
        t0 = time.perf_counter()
        for first in range(0, len(joined), args.join_batch):
            for rt in joined[first : first + args.join_batch]:
                rt.join(CHANNEL, echo=False)
            k = min(len(joined), first + args.join_batch)
            await wait_members(sender, CHANNEL, k)
            await members.wait_joins(k * (k - 1) // 2, args.timeout / 2)
        join_s = time.perf_counter() - t0
        await points.at("joined")
        await send(args.warmup)  # not measured
        for round_no in range(args.rounds):
            await points.at(f"round-{round_no}-start")
            t0, c0 = time.perf_counter(), time.process_time()
            await send(messages)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            await points.at(f"round-{round_no}-end")
            rounds.append({"messages": messages, "wall": wall, "load_cpu": cpu})
            await anyio.sleep(0)
        expected = seq
        complete = all(n == expected for n in members.received)
        # Before the clients close (each close is a disconnect of its own).
        disconnects, reasons = members.disconnects, dict(members.reasons)
        join_events = members.join_events
    return {
        "members": members.count,
        "connect_s": connect_s,
        "join_s": join_s,
        "rounds": rounds,
        "every_member_got_everything": complete,
        "misordered": members.misordered,
        "disconnects": disconnects,
        "disconnect_reasons": reasons,
        "join_events": join_events,
        "join_events_expected": members.count * (members.count - 1) // 2,
        "received_min": min(members.received),
        "received_max": max(members.received),
        "sent": expected,
    }


async def load_memory(args: argparse.Namespace) -> dict[str, Any]:
    """One client joins ``--channels`` channels; ``--per-channel`` messages go to each."""
    points = Checkpoints()
    channels = [f"ch-{n}" for n in range(args.channels)]
    members = Members(1)
    async with AsyncExitStack() as stack:
        sender, member = await connect_all(stack, args.url, 2, 2)
        member.on(EVENT, members.listener(0))
        await points.at("connected")
        for name in channels:
            member.join(name)
        for name in channels:
            await wait_members(sender, name, 1)
        await points.at("joined")
        seq = 0
        # As in the fan-out: a wait for the member every ``--batch`` messages or so.
        sweeps_per_wait = max(1, args.batch // len(channels))
        for sweep in range(args.per_channel):
            for name in channels:
                sender.send(name, EVENT, {"i": seq, "pad": PAD})
                seq += 1
            if (sweep + 1) % sweeps_per_wait == 0:
                await members.wait_for(seq, args.timeout)
        await members.wait_for(seq, args.timeout)
        await points.at("filled")
    return {"channels": len(channels), "per_channel": args.per_channel, "sent": seq}


def run_load(args: argparse.Namespace) -> None:
    import anyio

    from .clients._harness import raise_nofile

    raise_nofile(max(int(m) for m in args.members.split(",")) + 256)

    async def main() -> None:
        bench = load_fanout if args.role == "fanout" else load_memory
        result = await bench(args)
        print(f"RESULT {json.dumps(result)}", flush=True)

    anyio.run(main, backend="asyncio")


# ------------------------------------------------------------------------------ runner


class Child:
    """A child process of this module (hub or load) with line I/O and a deadline."""

    def __init__(self, role_args: list[str], timeout: float) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="tether-fanout-", suffix=".log", delete=False
        )
        cmd = [sys.executable, "-m", "benchmarks.hub_fanout", *role_args]
        cmd += ["--timeout", str(timeout)]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
            env=client_env(),
        )
        STARTED.add(self.proc)
        assert self.proc.stdout is not None
        self.reader = LineReader(self.proc.stdout)
        self.deadline = time.monotonic() + timeout + 10.0

    def read(self) -> str:
        line = self.reader.readline(self.deadline)
        if line is None:
            self.log.flush()
            tail = Path(self.log.name).read_text(errors="replace")[-2000:]
            raise BenchError(f"{' '.join(self.cmd[3:])}: no answer; stderr:\n{tail}")
        return line

    def expect(self, tag: str) -> dict[str, Any]:
        while True:
            line = self.read()
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])  # type: ignore[no-any-return]

    def write(self, line: str) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    def stop(self) -> None:
        self.reader.close()
        stop_process(self.proc)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def run_config(role: str, history: int, load_args: list[str], timeout: float) -> dict[str, Any]:
    """A fresh hub and a fresh load process; the hub's stats at every checkpoint."""
    hub_args = ["--role", "hub", "--history", str(history)]
    if role == "memory":
        hub_args.append("--trace")
    hub = Child(hub_args, timeout)
    load: Child | None = None
    try:
        port = hub.expect("HUB")["port"]
        hub.write("stat")
        stats = {"start": hub.expect("STAT")}
        url = f"http://127.0.0.1:{port}"
        load = Child(["--role", role, "--url", url, *load_args], timeout)
        while True:
            line = load.read()
            if line.startswith("AT "):
                hub.write("stat")
                stats[line[3:]] = hub.expect("STAT")
                load.write("ok")
            elif line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                break
    finally:
        if load is not None:
            load.stop()
        hub.stop()
    return {"history": history, "hub": stats, **result}


def summarise_fanout(run: dict[str, Any]) -> dict[str, Any]:
    members = run["members"]
    rates, hub_cpu, load_cpu = [], [], []
    for n, r in enumerate(run["rounds"]):
        deliveries = members * r["messages"]
        rates.append(deliveries / r["wall"])
        spent = run["hub"][f"round-{n}-end"]["cpu"] - run["hub"][f"round-{n}-start"]["cpu"]
        hub_cpu.append(spent / deliveries * 1e6)
        load_cpu.append(r["load_cpu"] / deliveries * 1e6)
    hub = run["hub"]
    start, connected, joined = hub["start"], hub["connected"], hub["joined"]
    last = hub[f"round-{len(run['rounds']) - 1}-end"]
    return {
        "members": members,
        "history": run["history"],
        "messages_per_round": run["rounds"][0]["messages"],
        "delivered_per_s": statistics.median(rates),
        "delivered_per_s_rounds": rates,
        "hub_cpu_us_per_delivery": statistics.median(hub_cpu),
        "load_cpu_us_per_delivery": statistics.median(load_cpu),
        "hub_rss_start_mb": start["rss"] / 2**20,
        "hub_rss_joined_mb": joined["rss"] / 2**20,
        # Connections (the members and the sender) and then the joins: every join is
        # announced to the members already in (channel:join), n(n-1)/2 deliveries in all.
        "hub_rss_kib_per_connection": (connected["rss"] - start["rss"]) / (members + 1) / 1024,
        "hub_rss_kib_per_join": (joined["rss"] - connected["rss"]) / members / 1024,
        "hub_cpu_s_joins": joined["cpu"] - connected["cpu"],
        "hub_rss_end_mb": last["rss"] / 2**20,
        "hub_rss_peak_mb": last["hwm"] / 2**20,
        "join_s": run["join_s"],
        "disconnects": run["disconnects"],
        "ok": run["every_member_got_everything"]
        and not run["misordered"]
        and not run["disconnects"],
    }


def summarise_memory(run: dict[str, Any]) -> dict[str, Any]:
    hub: dict[str, dict[str, float]] = run["hub"]
    channels: int = run["channels"]

    def per_channel(key: str, start: str, end: str) -> float:
        return (hub[end][key] - hub[start][key]) / channels / 1024

    return {
        "history": run["history"],
        "channels": channels,
        "per_channel_messages": run["per_channel"],
        "rss_kib_per_channel_empty": per_channel("rss", "connected", "joined"),
        "rss_kib_per_channel_filled": per_channel("rss", "connected", "filled"),
        "traced_kib_per_channel_empty": per_channel("traced", "connected", "joined"),
        "traced_kib_per_channel_filled": per_channel("traced", "connected", "filled"),
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"Run {data['date']} with `{data['command']}` ({data['runtime_s']} s); tether at "
        f"{data['commit']}, CPython {data['python']}, {data['cores']} cores; load average "
        f"before/after {data['loadavg_before'][0]} / {data['loadavg_after'][0]}.",
        "",
    ]
    fanout = data.get("fanout", [])
    if fanout:
        lines += [
            "| members | history | messages × rounds | delivered/s | hub CPU µs/delivery "
            "| load CPU µs/delivery | hub RSS KiB per connection / per join "
            "| hub RSS joined → end (peak), MB | all delivered once, in order |",
            "|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in fanout:
            lines.append(
                f"| {r['members']:,} | {r['history']} | {r['messages_per_round']:,} × "
                f"{len(r['delivered_per_s_rounds'])} | {r['delivered_per_s']:,.0f} "
                f"({min(r['delivered_per_s_rounds']):,.0f}–"
                f"{max(r['delivered_per_s_rounds']):,.0f}) | {r['hub_cpu_us_per_delivery']:.1f} "
                f"| {r['load_cpu_us_per_delivery']:.1f} | {r['hub_rss_kib_per_connection']:.1f} / "
                f"{r['hub_rss_kib_per_join']:.1f} "
                f"| {r['hub_rss_joined_mb']:.1f} → "
                f"{r['hub_rss_end_mb']:.1f} ({r['hub_rss_peak_mb']:.1f}) | "
                f"{'yes' if r['ok'] else '**no**'} |"
            )
    memory = data.get("memory", [])
    if memory:
        lines += [
            "",
            "| history | channels × messages | RSS KiB/channel, empty → filled "
            "| traced KiB/channel, empty → filled |",
            "|---:|---:|---:|---:|",
        ]
        for r in memory:
            lines.append(
                f"| {r['history']} | {r['channels']} × {r['per_channel_messages']:,} | "
                f"{r['rss_kib_per_channel_empty']:.1f} → {r['rss_kib_per_channel_filled']:.1f} | "
                f"{r['traced_kib_per_channel_empty']:.1f} → "
                f"{r['traced_kib_per_channel_filled']:.1f} |"
            )
    for error in data["errors"]:
        lines += ["", f"Error: {error.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def run_all(args: argparse.Namespace, argv: list[str]) -> int:
    started = time.monotonic()
    data: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.hub_fanout " + " ".join(argv),
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "errors": [],
        "raw": [],
    }
    histories = [int(h) for h in args.history.split(",")]

    def measure(
        kind: str, history: int, load_args: list[str], summarise: Callable[[Any], Any]
    ) -> None:
        """One configuration: its raw run and summary kept, or its error."""
        try:
            run = run_config(kind, history, load_args, args.timeout)
        except BenchError as exc:
            data["errors"].append(str(exc))
            log(f"error: {exc}")
            return
        data["raw"].append(run)
        data[kind].append(summarise(run))

    if "fanout" in args.only:
        data["fanout"] = []
        for n, members in enumerate(int(m) for m in args.members.split(",")):
            # Alternate which history setting goes first, so that a change in the machine's
            # load does not always land on the same one.
            for history in histories[n % 2 :] + histories[: n % 2]:
                messages = max(1, args.deliveries // members)
                warmup = max(1, min(args.batch, messages // 10))
                log(f"fan-out: {members} members, history {history}, {messages} messages")
                load_args = ["--members", str(members), "--messages", str(messages)]
                load_args += ["--warmup", str(warmup)]
                load_args += ["--rounds", str(args.rounds), "--batch", str(args.batch)]
                measure("fanout", history, load_args, summarise_fanout)
    if "memory" in args.only:
        data["memory"] = []
        for history in histories:
            per_channel = args.per_channel or max(history, 1000)
            log(f"memory: {args.channels} channels × {per_channel} messages, history {history}")
            load_args = ["--channels", str(args.channels), "--per-channel", str(per_channel)]
            load_args += ["--batch", str(args.batch)]
            measure("memory", history, load_args, summarise_memory)
    STARTED.stop_all()
    data["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    data["runtime_s"] = round(time.monotonic() - started, 1)
    stem = "hub-fanout-quick" if args.quick else "hub-fanout"
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    report = markdown(data)
    (RESULTS_DIR / f"{stem}.md").write_text(report)
    print(report)
    print(f"wrote benchmarks/results/{stem}.json and .md")
    return 1 if data["errors"] else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hub_fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test")
    parser.add_argument("--members", default="1,100,1000", help="channel sizes, comma-separated")
    parser.add_argument("--history", default="1000,0", help="HubConfig(history=) values")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per configuration")
    parser.add_argument(
        "--deliveries", type=int, default=30_000, help="deliveries per round (÷ members)"
    )
    parser.add_argument("--batch", type=int, default=500, help="messages sent before a wait")
    parser.add_argument("--channels", type=int, default=20, help="channels, memory bench")
    parser.add_argument(
        "--per-channel",
        type=int,
        default=0,
        help="messages sent to each channel, memory bench (default: max(history, 1000))",
    )
    parser.add_argument("--only", default="fanout,memory", help="fanout, memory or both")
    parser.add_argument("--timeout", type=float, default=180.0, help="per process, seconds")
    # The children's roles (not for the command line).
    parser.add_argument(
        "--role", choices=("run", "hub", "fanout", "memory"), default="run", help=argparse.SUPPRESS
    )
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--join-batch", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.url and not args.url.startswith("http://127.0.0.1:"):
        parser.error("only loopback hubs")
    if args.quick and args.role == "run":
        args.rounds = 1
        args.deliveries = 3_000
        args.channels = 5
        args.per_channel = args.per_channel or 200
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.role == "run":
        return run_all(args, argv)
    start_watchdog(args.timeout + 5.0)
    if args.role == "hub":
        asyncio.run(serve_hub(int(args.history), args.trace))
    else:
        run_load(args)
    return 0


if __name__ == "__main__":
    run_main(main)
