"""Run tether's benchmarks against a local Node socket.io 4.8 server: ``python -m benchmarks.run``.

Measures, in one run, tether on asyncio, tether on trio and python-socketio's AsyncClient
(WebSocket transport), each bench in a fresh subprocess:

* receive throughput (events/s and CPU µs per event): 64 B JSON, 1 KiB JSON, 1 KiB binary;
* echo round trip with an ack, sequential calls: p50 and p99;
* fresh connect time (median);
* memory per idle connection (RSS difference over many connections held in one process);
* a reconnect storm: clients connected, the server restarted on the same port; the time until
  all are back and the most connection attempts the server saw in any 100 ms window.

Prints a table with the ratio to python-socketio for every figure and writes
``benchmarks/results/results.json`` and ``results.png`` (``--quick`` and ``--only`` runs write
``quick.*`` / ``partial.*`` instead, so they never replace the full results).
See benchmarks/README.md for the methodology.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._procs import (
    ROOT,
    SERVER_DIR,
    SRC,
    STARTED,
    BenchError,
    ClientRun,
    NodeServer,
    run_main,
)
from .clients import _harness as h

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE = "python-socketio"
CLIENTS: dict[str, list[str]] = {
    "python-socketio": ["-m", "benchmarks.clients.psio_client"],
    "tether-asyncio": ["-m", "benchmarks.clients.tether_client", "--backend", "asyncio"],
    "tether-trio": ["-m", "benchmarks.clients.tether_client", "--backend", "trio"],
}
#: ``--compare-with TREE``: clients that import tether from another checkout's ``src`` (the
#: code before a change), measured in the same run as today's.
CLIENT_PYTHONPATH: dict[str, str] = {}
#: Receive-only ceilings: anyio + wsproto with the minimal protocol (no Socket.IO layer).
CEILINGS: dict[str, list[str]] = {
    "bare-asyncio": ["-m", "benchmarks.clients.bare_client", "--backend", "asyncio"],
    "bare-trio": ["-m", "benchmarks.clients.bare_client", "--backend", "trio"],
}
TETHER_CLIENTS = ("tether-asyncio", "tether-trio")
#: The clients ``--compare-with`` adds: tether-asyncio and tether-trio of the other tree.
BEFORE = tuple(f"before-{name}" for name in TETHER_CLIENTS)
KINDS = {"recv64": "json64", "recv1k": "json1k", "recvbin": "bin1k"}
BENCHES = (*KINDS, "echo", "connect", "memory", "storm")
WINDOW_MS = 100.0


@dataclass(frozen=True)
class Plan:
    recv_counts: dict[str, int]
    recv_warmup: int
    rounds: int
    echo_calls: int
    echo_warmup: int
    connects: int
    connect_warmup: int
    memory_clients: int
    memory_hold: float
    storm_clients: int
    concurrency: int
    timeout: float


FULL = Plan(
    recv_counts={"json64": 50_000, "json1k": 50_000, "bin1k": 20_000},
    recv_warmup=2_000,
    rounds=3,
    echo_calls=2_000,
    echo_warmup=100,
    connects=20,
    connect_warmup=2,
    memory_clients=1_000,
    memory_hold=2.0,
    storm_clients=500,
    concurrency=50,
    timeout=90.0,
)
QUICK = Plan(
    recv_counts={"json64": 5_000, "json1k": 5_000, "bin1k": 2_000},
    recv_warmup=500,
    rounds=1,
    echo_calls=200,
    echo_warmup=20,
    connects=5,
    connect_warmup=1,
    memory_clients=100,
    memory_hold=0.5,
    storm_clients=50,
    concurrency=50,
    timeout=30.0,
)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 0


FIGURES = [
    Figure("recv_json64_eps", "receive 64 B JSON", "events/s", True),
    Figure("recv_json1k_eps", "receive 1 KiB JSON", "events/s", True),
    Figure("recv_bin1k_eps", "receive 1 KiB binary", "events/s", True),
    Figure("recv_json64_cpu", "CPU per event, 64 B JSON", "µs", False, 1),
    Figure("recv_json1k_cpu", "CPU per event, 1 KiB JSON", "µs", False, 1),
    Figure("recv_bin1k_cpu", "CPU per event, 1 KiB binary", "µs", False, 1),
    Figure("echo_p50", "echo round trip p50", "µs", False),
    Figure("echo_p99", "echo round trip p99", "µs", False),
    Figure("echo_cpu", "CPU per echo call", "µs", False, 1),
    Figure("connect_ms", "fresh connect, median", "ms", False, 2),
    Figure("connect_cpu_ms", "CPU per fresh connect, median", "ms", False, 2),
    Figure("memory_kib", "memory per idle connection", "KiB", False, 1),
    Figure("storm_back_s", "storm: all clients back", "s", False, 2),
    Figure("storm_peak", "storm: most attempts in 100 ms", "attempts", False),
    Figure("storm_peak_pct", "storm: that, % of clients", "%", False, 1),
]

#: Issue 5's targets, as (figure, test on the ratio or value, description).
TARGETS = [
    ("recv_json64_eps", "ratio", 2.5, ">=", "receive 64 B ≥ 2.5× python-socketio"),
    ("recv_json1k_eps", "ratio", 2.3, ">=", "receive 1 KiB ≥ 2.3×"),
    ("recv_bin1k_eps", "ratio", 2.3, ">=", "receive binary ≥ 2.3×"),
    # The same three on CPU per event (python-socketio's / tether's): what the events/s
    # ratios converge to when the machine is quiet, and much steadier when it is not.
    ("recv_json64_cpu", "inverse", 2.5, ">=", "(CPU) receive 64 B ≥ 2.5×"),
    ("recv_json1k_cpu", "inverse", 2.3, ">=", "(CPU) receive 1 KiB ≥ 2.3×"),
    ("recv_bin1k_cpu", "inverse", 2.3, ">=", "(CPU) receive binary ≥ 2.3×"),
    ("echo_p50", "ratio", 1.0, "<=", "echo p50 no worse"),
    ("connect_ms", "ratio", 1.0, "<=", "connect time no worse"),
    ("memory_kib", "ratio", 0.5, "<=", "memory per idle connection ≤ ½"),
    ("storm_peak_pct", "value", 25.0, "<=", "storm: no 100 ms window > ¼ of the attempts"),
]


# ------------------------------------------------------------------------------ benches


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


#: What went wrong, one entry per failed bench run; the other runs carry on.
ERRORS: list[str] = []


def record_error(message: str) -> None:
    ERRORS.append(message)
    log(f"error: {message}")


#: Said by a run on the stock asyncio loop of CPython < 3.12, where python-engineio's read
#: loop pays a task and event-loop round trips per message in ``asyncio.wait_for`` (3.12
#: rebuilt it on ``asyncio.timeout``; uvloop makes both cheap).
BELOW_ITS_BEST = (
    "the stock asyncio loop on CPython < 3.12: python-socketio runs below its best here "
    "(asyncio.wait_for makes a task per message); the reference figures use uvloop "
    "(benchmarks/README.md, 'The baseline')"
)


def below_its_best(python: str, loop: str) -> bool:
    return loop == "asyncio" and tuple(int(x) for x in python.split(".")[:2]) < (3, 12)


#: The event loop every asyncio client runs on (``--loop``); set by main().
LOOP = {"asyncio": h.LOOPS[0]}


def check_event_loop(name: str, result: dict[str, Any]) -> None:
    """Every client must have run on the loop the run asked for: the comparison is only fair
    when python-socketio and tether-asyncio share one."""
    expected = "trio" if name.endswith("-trio") else LOOP["asyncio"]
    if result.get("event_loop") != expected:
        record_error(f"{name} ran on {result.get('event_loop')!r}, not {expected!r}")
    check_tether_source(name, result)


#: Where each tether client imported tether from, as the clients report it (in the JSON).
TETHER_SOURCES: dict[str, str] = {}


def check_tether_source(name: str, result: dict[str, Any]) -> None:
    """A tether client must have imported the tree it stands for: this checkout's ``src``, or
    for a ``before-`` client the ``--compare-with`` tree's."""
    if "tether" not in name:
        return
    expected = str(Path(CLIENT_PYTHONPATH.get(name) or SRC).resolve())
    source = result.get("tether_source")
    if source is not None and str(Path(source).resolve()) != expected:
        record_error(f"{name} imported tether from {source!r}, not {expected!r}")
    TETHER_SOURCES.setdefault(name, source or "not reported")


def run_client(name: str, bench_args: list[str], timeout: float) -> dict[str, Any] | None:
    """One bench in a fresh subprocess; None (and an entry in ERRORS) if it failed."""
    module = CLIENTS.get(name) or CEILINGS[name]
    run = ClientRun(module, bench_args, timeout, python_path=CLIENT_PYTHONPATH.get(name))
    try:
        result = run.wait_for("RESULT")
    except BenchError as exc:
        record_error(str(exc))
        return None
    except BaseException:
        run.finish(wait=False)
        raise
    run.finish()
    check_event_loop(name, result)
    return result


def bench_recv(
    server: NodeServer, clients: list[str], kinds: list[str], plan: Plan
) -> dict[str, Any]:
    """Rounds of (kind × client), the client order rotating, so that a change in machine load
    during the run spreads over every client instead of landing on one."""
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    for round_no in range(plan.rounds):
        order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
        for kind in kinds:
            for name in order:
                count = plan.recv_counts[kind]
                log(f"  recv {kind} {name} (round {round_no + 1}/{plan.rounds}, {count} events)")
                args = [
                    "--bench", "recv", "--url", server.url, "--kind", kind, "--count", str(count),
                    "--reps", "1", "--warmup", str(plan.recv_warmup),
                ]  # fmt: skip
                result = run_client(name, args, plan.timeout)
                if result is None:
                    continue
                samples.setdefault(name, {}).setdefault(kind, []).extend(result["samples"])
    out: dict[str, Any] = {}
    for name, by_kind in samples.items():
        for kind, runs in by_kind.items():
            rates = [s["events"] / s["wall"] for s in runs]
            cpu = [s["cpu"] / s["events"] * 1e6 for s in runs]
            out.setdefault(name, {})[kind] = {
                "events_per_s": statistics.median(rates),
                "cpu_us_per_event": statistics.median(cpu),
                "samples": runs,
            }
    return out


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal counts: split(20, 3) == [7, 7, 6]."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def bench_rounds(server: NodeServer, clients: list[str], bench: str, plan: Plan) -> dict[str, Any]:
    """Echo or connect in ``plan.rounds`` rounds (client order rotating), samples pooled."""
    total, warmup = (
        (plan.echo_calls, plan.echo_warmup)
        if bench == "echo"
        else (plan.connects, plan.connect_warmup)
    )
    pooled: dict[str, dict[str, list[float]]] = {}
    for round_no, count in enumerate(split(total, plan.rounds)):
        order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
        for name in order:
            log(f"  {bench} {name} (round {round_no + 1}/{plan.rounds}, {count})")
            args = ["--bench", bench, "--url", server.url, "--count", str(count)]
            result = run_client(name, [*args, "--warmup", str(warmup)], plan.timeout)
            if result is None:
                continue
            into = pooled.setdefault(name, {})
            for key in ("latencies_us", "times_ms", "cpu_ms"):
                if key in result:
                    into.setdefault(key, []).extend(result[key])
            if "cpu_s" in result:
                into.setdefault("cpu_s", []).append(result["cpu_s"])
    out = {}
    for name, samples in pooled.items():
        if bench == "echo":
            out[name] = h.latency_summary(
                [x / 1e6 for x in samples["latencies_us"]], sum(samples["cpu_s"])
            )
        else:
            out[name] = h.connect_summary(
                [x / 1e3 for x in samples["times_ms"]], [x / 1e3 for x in samples["cpu_ms"]]
            )
    return out


def bench_memory(server: NodeServer, clients: list[str], plan: Plan) -> dict[str, Any]:
    out = {}
    for name in clients:
        log(f"  memory {name} ({plan.memory_clients} connections)")
        args = ["--bench", "memory", "--url", server.url, "--count", str(plan.memory_clients)]
        args += ["--concurrency", str(plan.concurrency), "--hold", str(plan.memory_hold)]
        result = run_client(name, args, plan.timeout)
        if result is not None:
            out[name] = result
    return out


def sliding_max(times: list[float], window: float) -> int:
    """The most timestamps inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def listen_on_port(server: NodeServer, port: int, attempts: int = 40) -> NodeServer:
    """Make a deferred server listen on a port that was just freed; retry briefly if the
    kernel has not released it yet (a failed listen ends that Node process)."""
    error: BenchError | None = None
    for _ in range(attempts):
        try:
            return server.listen()
        except BenchError as exc:
            error = exc
            server.stop()
            time.sleep(0.01)
            server = NodeServer(port=port).start(deferred=True)
    assert error is not None
    raise error


def bench_storm(clients: list[str], plan: Plan) -> dict[str, Any]:
    out = {}
    for name in clients:
        log(f"  storm {name} ({plan.storm_clients} clients)")
        try:
            out[name] = storm_one(name, plan)
        except BenchError as exc:
            record_error(f"storm {name}: {exc}")
    return out


def storm_one(name: str, plan: Plan) -> dict[str, Any]:
    """Connect the clients, SIGKILL the server, start it again on the same port, and watch.

    Attempts are counted where the brief asks, at the restarted server (its HTTP upgrade
    events), and also where each client starts one (its own clock, before any queueing in the
    network or in Node): a burst seen only by the server is the server catching up, not the
    clients retrying in lockstep.
    """
    first = NodeServer().start()
    # The replacement is loaded before the kill and only has to listen: the restart takes
    # milliseconds whatever Node's start-up time under load, so what is measured is the
    # clients' retry schedule, not how long Node takes to boot.
    second: NodeServer | None = NodeServer(port=first.port).start(deferred=True)
    bench_args = ["--bench", "storm", "--url", first.url, "--count", str(plan.storm_clients)]
    bench_args += ["--concurrency", str(plan.concurrency)]
    run = ClientRun(
        CLIENTS[name], bench_args, plan.timeout, python_path=CLIENT_PYTHONPATH.get(name)
    )
    try:
        ready = run.wait_for("READY")
        time.sleep(0.5)  # let the last connects settle
        assert second is not None
        killed_at = time.time()
        first.kill()
        second = listen_on_port(second, first.port)
        up_at = time.time()
        result = run.wait_for("RESULT")
        check_event_loop(name, result)
        seen = second.get("/control/attempts")
    except BaseException:
        run.finish(wait=False)
        raise
    finally:
        run.finish()
        first.stop()
        if second is not None:
            second.stop()
    back = [times[1] for times in result["connect_times"] if len(times) >= 2]
    at_server = sorted(t / 1000.0 - killed_at for t in seen["attempts"])
    at_clients = sorted(t - killed_at for t in result["attempt_times"] if t > killed_at)
    peak = sliding_max(at_server, WINDOW_MS / 1000.0)
    return {
        "clients": plan.storm_clients,
        "connected_before": ready["clients"],
        "back": len(back),
        "all_back_s": (max(back) - killed_at) if len(back) == plan.storm_clients else None,
        "median_back_s": statistics.median(back) - killed_at if back else None,
        "server_down_s": up_at - killed_at,
        "attempts_seen": len(at_server),
        "connections_seen": len(seen["connections"]),
        "peak_attempts_100ms": peak,
        "peak_pct_of_clients": 100.0 * peak / plan.storm_clients,
        "client_attempts": len(at_clients),
        "client_peak_attempts_100ms": sliding_max(at_clients, WINDOW_MS / 1000.0),
        "client_gc": result.get("gc"),
        "attempt_offsets_s": [round(a, 4) for a in at_server],
        "client_attempt_offsets_s": [round(a, 4) for a in at_clients],
    }


# ------------------------------------------------------------------------------ figures


def figures_from(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    figures: dict[str, dict[str, float | None]] = {f.key: {} for f in FIGURES}
    for name, by_kind in results.get("recv", {}).items():
        for kind, r in by_kind.items():
            figures[f"recv_{kind}_eps"][name] = r["events_per_s"]
            figures[f"recv_{kind}_cpu"][name] = r["cpu_us_per_event"]
    for name, r in results.get("echo", {}).items():
        figures["echo_p50"][name] = r["p50_us"]
        figures["echo_p99"][name] = r["p99_us"]
        figures["echo_cpu"][name] = r["cpu_us_per_call"]
    for name, r in results.get("connect", {}).items():
        figures["connect_ms"][name] = r["median_ms"]
        figures["connect_cpu_ms"][name] = r["cpu_median_ms"]
    for name, r in results.get("memory", {}).items():
        figures["memory_kib"][name] = r["bytes_per_connection"] / 1024
    for name, r in results.get("storm", {}).items():
        figures["storm_back_s"][name] = r["all_back_s"]
        figures["storm_peak"][name] = r["peak_attempts_100ms"]
        figures["storm_peak_pct"][name] = r["peak_pct_of_clients"]
    return {k: v for k, v in figures.items() if v}


def ratios_from(figures: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    ratios: dict[str, dict[str, float | None]] = {}
    for key, values in figures.items():
        reference = values.get(REFERENCE)
        for name, value in values.items():
            if name == REFERENCE:
                continue
            ratio = None if not reference or value is None else value / reference
            ratios.setdefault(key, {})[name] = ratio
    return ratios


def targets_from(
    figures: dict[str, dict[str, float | None]], ratios: dict[str, dict[str, float | None]]
) -> list[dict[str, Any]]:
    checks = []
    for key, on, limit, op, text in TARGETS:
        if key not in figures:
            continue
        for name in figures[key]:
            if not name.startswith("tether"):
                continue
            if on == "value":
                value = figures[key][name]
            else:
                value = ratios.get(key, {}).get(name)
                if on == "inverse" and value is not None:
                    value = 1.0 / value if value else None
            ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
            checks.append({"target": text, "client": name, "value": value, "met": ok})
    return checks


def fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def table(figures: dict[str, Any], ratios: dict[str, Any], clients: list[str]) -> str:
    others = [c for c in clients if c != REFERENCE]
    head = ["figure", "unit", REFERENCE] + [x for c in others for x in (c, "×")]
    rows = [head]
    for f in FIGURES:
        if f.key not in figures:
            continue
        values = figures[f.key]
        row = [
            f.label + (" ↑" if f.higher_is_better else " ↓"),
            f.unit,
            fmt(values.get(REFERENCE), f.digits),
        ]
        for c in others:
            ratio = ratios.get(f.key, {}).get(c)
            row += [fmt(values.get(c), f.digits), "—" if ratio is None else f"{ratio:.2f}×"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [cell.rjust(w) for cell, w in zip(r[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: dict[str, Any], ratios: dict[str, Any], clients: list[str]) -> str:
    others = [c for c in clients if c != REFERENCE]
    lines = [
        "| figure | " + REFERENCE + " | " + " | ".join(others) + " |",
        "|---|---:|" + "---:|" * len(others),
    ]
    for f in FIGURES:
        if f.key not in figures:
            continue
        values = figures[f.key]
        arrow = "↑" if f.higher_is_better else "↓"
        cells = [f"{f.label} ({f.unit}) {arrow}", fmt(values.get(REFERENCE), f.digits)]
        for c in others:
            ratio = ratios.get(f.key, {}).get(c)
            r = "" if ratio is None else f" ({ratio:.2f}×)"
            cells.append(fmt(values.get(c), f.digits) + r)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(data: dict[str, Any]) -> str:
    """The run as markdown, ready to paste into a README: machine, table, targets."""
    m = data["machine"]
    lines = [
        f"Run {data['date']} with `{data['command'].strip()}` ({data['mode']}, "
        f"{data['runtime_s']} s); tether transport: {data['tether_transport']}; "
        f"asyncio clients on {data.get('loop', 'asyncio')}; python-socketio with "
        f"{'json=orjson' if data.get('psio_json', 'default') == 'orjson' else 'its default JSON'}.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}, {m['implementation']} "
        f"{m['python']}, Node {m['node']} with socket.io {m['socket.io (node)']}; "
        f"python-socketio {m['python-socketio']} (aiohttp {m['aiohttp']}), anyio {m['anyio']}, "
        f"trio {m['trio']}, wsproto {m['wsproto']}, orjson {m['orjson']}, "
        f"uvloop {m.get('uvloop', 'not recorded')}; tether at "
        f"{m['tether commit']}"
        + (
            f" (before-* clients: {data['compare_with']['commit']}, {data['compare_with']['tree']})"
            if data.get("compare_with")
            else ""
        )
        + f". Load average before/after: {data['loadavg_before'][0]} / "
        f"{data['loadavg_after'][0]}.",
        "",
        data["table_markdown"],
        "",
        "↑ higher is better, ↓ lower is better; (×) is the ratio to python-socketio.",
    ]
    if below_its_best(m["python"], data.get("loop", "asyncio")):
        lines += ["", f"Note: {BELOW_ITS_BEST}."]
    ceiling = data["results"].get("ceiling")
    if ceiling:
        lines += ["", "Receive ceiling, anyio + wsproto with the minimal protocol:", ""]
        for name, by_kind in ceiling.items():
            cells = [
                f"{kind} {r['events_per_s']:,.0f}/s ({r['cpu_us_per_event']:.1f} µs CPU)"
                for kind, r in by_kind.items()
            ]
            lines.append(f"- {name}: " + ", ".join(cells))
    if data["targets"]:
        lines += ["", "| target (issue 5) | client | value | met |", "|---|---|---:|---|"]
        for t in data["targets"]:
            value = "—" if t["value"] is None else f"{t['value']:.2f}"
            met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
            lines.append(f"| {t['target']} | {t['client']} | {value} | {met} |")
    checks = data.get("server_checks")
    if checks:
        lines += [
            "",
            f"Blast frames checked byte-identical to socket.emit: "
            f"{checks['verified_byte_identical']}/{checks['blasts']}.",
        ]
    for error in data["errors"]:
        lines += ["", f"Error: {error.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    model = ""
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()

    def version(package: str) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(package)
        except PackageNotFoundError:
            return "not installed"

    socketio_js = json.loads((SERVER_DIR / "node_modules/socket.io/package.json").read_text())[
        "version"
    ]
    commit = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "node": run(["node", "--version"]),
        "socket.io (node)": socketio_js,
        "python-socketio": version("python-socketio"),
        "python-engineio": version("python-engineio"),
        "aiohttp": version("aiohttp"),
        "anyio": version("anyio"),
        "trio": version("trio"),
        "wsproto": version("wsproto"),
        "orjson": version("orjson"),
        "uvloop": version("uvloop"),
        "tether commit": commit,
    }


def compare_info(tree: Path | None) -> dict[str, str] | None:
    """The ``--compare-with`` tree: its path and the commit it is at (with ``+dirty`` if its
    files differ from that commit)."""
    if tree is None:
        return None

    def git(*cmd: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tree), *cmd], capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return {"tree": str(tree.resolve()), "commit": commit + dirty}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------ chart


def chart(data: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no chart (pip install matplotlib)")
        return False
    figures = data["figures"]
    clients = data["clients"]
    colours = {
        "python-socketio": "#8c8c8c",
        "tether-asyncio": "#1f77b4",
        "tether-trio": "#2ca02c",
        "before-tether-asyncio": "#9ecae1",
        "before-tether-trio": "#a1d99b",
    }
    panels = [
        (
            "receive throughput (events/s, higher is better)",
            ["recv_json64_eps", "recv_json1k_eps", "recv_bin1k_eps"],
            ["64 B", "1 KiB", "bin 1 KiB"],
        ),
        (
            "CPU per received event (µs, lower is better)",
            ["recv_json64_cpu", "recv_json1k_cpu", "recv_bin1k_cpu"],
            ["64 B", "1 KiB", "bin 1 KiB"],
        ),
        ("echo round trip (µs, lower is better)", ["echo_p50", "echo_p99"], ["p50", "p99"]),
        ("fresh connect, median (ms)", ["connect_ms", "connect_cpu_ms"], ["wall", "CPU"]),
        ("memory per idle connection (KiB)", ["memory_kib"], [""]),
        ("storm: all back after restart (s)", ["storm_back_s"], [""]),
    ]
    panels = [p for p in panels if any(k in figures for k in p[1])]
    storm = data["results"].get("storm", {})
    n = len(panels) + (1 if storm else 0)
    cols = 2
    rows = (n + 1) // 2
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.4 * rows), squeeze=False)
    for ax, (title, keys, labels) in zip(axes.flat, panels, strict=False):
        width = 0.8 / len(clients)
        for i, client in enumerate(clients):
            xs = [j + i * width for j in range(len(keys))]
            ys = [figures.get(k, {}).get(client) or 0 for k in keys]
            bars = ax.bar(xs, ys, width, label=client, color=colours.get(client))
            for bar, k in zip(bars, keys, strict=True):
                ratio = data["ratios"].get(k, {}).get(client)
                if ratio:
                    ax.annotate(
                        f"{ratio:.2f}×",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], labels)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.12)
    if storm:
        ax = axes.flat[len(panels)]
        for client, r in storm.items():
            offsets = r["attempt_offsets_s"]
            if offsets:
                top = max(offsets)
                bins = [i * 0.1 for i in range(int(top / 0.1) + 2)]
                ax.hist(
                    offsets,
                    bins=bins,
                    histtype="step",
                    label=f"{client} (peak {r['peak_attempts_100ms']})",
                    color=colours.get(client),
                    linewidth=1.5,
                )
        quarter = next(iter(storm.values()))["clients"] / 4
        ax.axhline(quarter, color="red", linestyle="--", linewidth=0.8, label="¼ of the clients")
        ax.set_title(
            "storm: attempts at the restarted server, 100 ms bins (s after the kill)", fontsize=10
        )
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    m = data["machine"]
    fig.suptitle(
        f"tether vs python-socketio — {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"Node socket.io {m['socket.io (node)']} — {data['date'][:10]}\n"
        f"asyncio clients on {data.get('loop', 'asyncio')}, python-socketio with "
        f"json={data.get('psio_json', 'default')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------ main


def finish(data: dict[str, Any], out_dir: Path, stem: str) -> None:
    """Figures, ratios and targets from the raw results; write JSON, PNG and MD; print."""
    results = data["results"]
    clients = data["clients"]
    figures = figures_from(results)
    ratios = ratios_from(figures)
    data["figures"] = figures
    data["ratios"] = ratios
    data["targets"] = targets_from(figures, ratios)
    data["table_markdown"] = markdown_table(figures, ratios, clients)

    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    png_path = out_dir / f"{stem}.png"
    has_chart = chart(data, png_path)
    (out_dir / f"{stem}.md").write_text(markdown_report(data))

    print()
    print(table(figures, ratios, clients))
    ceiling = results.get("ceiling")
    if ceiling:
        print("\nreceive ceiling, anyio + wsproto with the minimal protocol (no Socket.IO layer):")
        for name, by_kind in ceiling.items():
            cells = [
                f"{k} {r['events_per_s']:,.0f}/s ({r['cpu_us_per_event']:.1f} µs CPU)"
                for k, r in by_kind.items()
            ]
            print(f"  {name}: " + ", ".join(cells))
    if data["targets"]:
        print("\ntargets (issue 5):")
        for t in data["targets"]:
            mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            value = "—" if t["value"] is None else f"{t['value']:.2f}"
            print(f"  {mark:6}  {t['client']:15} {t['target']}  ({value})")
    checks = data.get("server_checks")
    if checks:
        verified = checks["verified_byte_identical"]
        print(
            f"\nblast frames checked byte-identical to socket.emit: {verified}/{checks['blasts']}"
        )
    for error in data["errors"]:
        print(f"\nERROR: {error}")
    print(
        f"\nload average before {data['loadavg_before']}, after {data['loadavg_after']}; "
        f"runtime {data['runtime_s']} s"
    )
    print(
        f"wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}"
        + (f" and {png_path.name}" if has_chart else "")
    )


def ensure_server_installed() -> None:
    if (SERVER_DIR / "node_modules" / "socket.io").is_dir():
        return
    log("installing the Node server from its lockfile (npm ci) ...")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR, check=True, timeout=300
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts: a smoke test under a minute"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated benches of {','.join(BENCHES)} (recv = the three recv*)",
    )
    parser.add_argument("--clients", default="", help=f"comma-separated of {','.join(CLIENTS)}")
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip the bare anyio+wsproto receive ceiling"
    )
    parser.add_argument("--out", type=Path, default=None, help="where results.json/.png go")
    parser.add_argument(
        "--rerender",
        type=Path,
        default=None,
        help="measure nothing: recompute table, targets, chart and .md from a results JSON",
    )
    parser.add_argument(
        "--tether-transport",
        default="",
        help="RealtimeClient(transport=NAME) for the tether clients (default: tether's default)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        default=None,
        metavar="TREE",
        help="also measure tether as it is in another checkout (its src/), in the same run: "
        "the clients before-tether-asyncio and before-tether-trio",
    )
    parser.add_argument(
        "--loop",
        choices=h.LOOPS,
        default=h.LOOPS[0],
        help="the event loop of every asyncio client (python-socketio, tether-asyncio, "
        "bare-asyncio); default uvloop",
    )
    parser.add_argument(
        "--psio-json",
        choices=("orjson", "default"),
        default="orjson",
        help="python-socketio's JSON: AsyncClient(json=orjson) (default) or its own default",
    )
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    expanded: list[str] = []
    for b in only:
        expanded += list(KINDS) if b == "recv" else [b]
    unknown = set(expanded) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench {sorted(unknown)}; choose from {BENCHES}")
    args.benches = [b for b in BENCHES if not expanded or b in expanded]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    # --compare-with adds the before- clients (in main(), once the tree is known): they are
    # valid names here only with it.
    known = [*CLIENTS, *(BEFORE if args.compare_with is not None else ())]
    unknown_clients = sorted(set(clients) - set(known))
    if unknown_clients:
        hint = (
            "" if args.compare_with is not None else f" ({', '.join(BEFORE)} need --compare-with)"
        )
        parser.error(f"unknown client {unknown_clients}; choose from {known}{hint}")
    args.client_list = [c for c in known if not clients or c in clients]
    if args.compare_with is not None and not (args.compare_with / "src" / "tether").is_dir():
        parser.error(f"--compare-with {args.compare_with}: no src/tether there")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rerender:
        stored: dict[str, Any] = json.loads(args.rerender.read_text())
        finish(stored, args.rerender.parent, args.rerender.stem)
        return 1 if stored["errors"] else 0
    plan = QUICK if args.quick else FULL
    if args.compare_with is not None:
        source = str((args.compare_with / "src").resolve())
        for name in TETHER_CLIENTS:
            before = f"before-{name}"
            CLIENTS[before] = list(CLIENTS[name])
            CLIENT_PYTHONPATH[before] = source
    if args.tether_transport:
        for name in [c for c in CLIENTS if "tether" in c]:  # the before- clients too
            CLIENTS[name] = [*CLIENTS[name], "--transport", args.tether_transport]
    LOOP["asyncio"] = args.loop
    for module in (*CLIENTS.values(), *CEILINGS.values()):
        module += ["--loop", args.loop]
    CLIENTS[REFERENCE] += ["--json", args.psio_json]
    partial = bool(
        args.only
        or args.clients
        or args.tether_transport
        or args.loop != h.LOOPS[0]
        or args.psio_json != "orjson"
    )
    # A full run with --compare-with (and nothing else) is the before/after record of a
    # change (issue 10.5): compare.*, beside results.* rather than over it.
    full = "compare" if args.compare_with is not None else "results"
    stem = "quick" if args.quick else ("partial" if partial else full)
    out_dir = args.out or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(plan.memory_clients, plan.storm_clients) * 2 + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(want, hard), hard)
        )  # the children inherit it

    started = time.monotonic()
    ensure_server_installed()
    data: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": stem,
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "loadavg_before": loadavg(),
        "plan": asdict(plan),
        "clients": args.client_list,
        "tether_transport": args.tether_transport or "default",
        "loop": args.loop,
        "psio_json": args.psio_json,
        "compare_with": compare_info(args.compare_with),
        "tether_sources": TETHER_SOURCES,
        "results": {},
        "errors": ERRORS,
    }
    log(
        f"machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, "
        f"load {data['loadavg_before']}"
    )
    if below_its_best(platform.python_version(), args.loop):
        log(f"warning: {BELOW_ITS_BEST}")
    if data["loadavg_before"][0] > 1.0:
        log("warning: the machine is busy (load average > 1): wall-time figures will be noisy")
    results = data["results"]
    server = NodeServer().start()
    try:
        kinds = [KINDS[b] for b in args.benches if b in KINDS]
        if kinds:
            log("receive throughput")
            names = args.client_list + ([] if args.no_ceiling else list(CEILINGS))
            recv = bench_recv(server, names, kinds, plan)
            results["recv"] = {k: v for k, v in recv.items() if k in CLIENTS}
            results["ceiling"] = {k: v for k, v in recv.items() if k in CEILINGS}
        for bench in ("echo", "connect"):
            if bench in args.benches:
                log(bench)
                results[bench] = bench_rounds(server, args.client_list, bench, plan)
        if "memory" in args.benches:
            log("memory")
            results["memory"] = bench_memory(server, args.client_list, plan)
        stats = server.get("/control/stats")
        data["server_checks"] = {
            "blasts": stats["blasts"],
            "verified_byte_identical": stats["verified"],
            "mismatches": stats["mismatches"],
            "errors": stats["errors"],
        }
        if stats["mismatches"] or stats["verified"] != stats["blasts"] or stats["errors"]:
            record_error("blast mode: see server_checks (mismatch with socket.emit or an error)")
    finally:
        server.stop()
    if "storm" in args.benches:
        log("reconnect storm")
        results["storm"] = bench_storm(args.client_list, plan)
    STARTED.stop_all()

    data["loadavg_after"] = loadavg()
    data["runtime_s"] = round(time.monotonic() - started, 1)
    finish(data, out_dir, stem)
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    run_main(main)
