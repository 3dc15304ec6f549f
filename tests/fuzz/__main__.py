"""Long fuzzing runs, by command: ``python -m tests.fuzz --minutes 10``.

Two engines, the same invariants as the CI tests (``driver.py``, ``test_decoders.py``,
``tests/core/test_json_differential.py``):

``--engine hypothesis`` (the default)
    Runs the CI properties over and over with fresh randomness (not ``derandomize``), each
    round a few hundred histories per target, until the time is up. Failures are shrunk,
    printed and counted; the run goes on with the other targets.

``--engine atheris``
    Coverage-guided fuzzing of the byte harnesses of ``harness.py`` (``pip install
    atheris``), with tether's modules instrumented and ``corpus/`` as the seeds. libFuzzer
    keeps what it learns in ``--workdir`` and writes a failing input there as
    ``crash-<sha1>``: add it to ``corpus/`` once fixed, and ``test_corpus.py`` replays it
    from then on. One target per run (``--target core`` or ``decoders``).

Targets: ``core`` (whole Connection histories), ``decoders`` (Engine.IO and Socket.IO),
``json`` (the differential properties, and Node's JSON.parse when ``node`` is on PATH).
``--deep-nesting`` adds JSON nested 1010 to 1030 levels deep to the frames.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"

# Words libFuzzer splices into its inputs: the grammar's tokens and the handshake's keys.
DICTIONARY = [
    "\x1et",
    "\x1eb",
    "\x1eo",
    "\x1eu",
    "\x1ed",
    "0{",
    "40",
    "42[",
    "43",
    "44",
    "41",
    "451-",
    "/admin,",
    '"sid":',
    '"pid":',
    '"upgrades":[]',
    '"pingInterval":',
    '"pingTimeout":',
    '"maxPayload":',
    '{"_placeholder":true,"num":0}',
    "\\ud800",
    "9007199254740991",
    "18446744073709551616",
    "1e400",
    "NaN",
]


def _hypothesis_targets(deep: bool) -> dict[str, list[tuple[str, Callable[[], None]]]]:
    """Each target's properties, as callables that run one Hypothesis round each."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from core import test_json_differential
    from fuzz.driver import run_history
    from fuzz.frames import decoder_inputs, engine_messages, handshake_payloads
    from fuzz.harness import check_engine_message, check_handshake_payload, feed_decoders
    from fuzz.json_texts import json_inputs

    explore = settings(
        max_examples=300,
        derandomize=False,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )

    def history(data: st.DataObject) -> None:
        run_history(data, max_steps=80, deep=deep)

    differential = test_json_differential.same_outcome_on_every_path
    json_tests = [("json differential", explore(given(json_inputs())(differential)))]
    if shutil.which("node") is None:
        print("node is not on PATH: the comparisons with JSON.parse are left out")
    else:
        from core import test_json_node

        node = test_json_node.NodeJSON()

        def node_accepts(text: str | bytes) -> None:
            test_json_node.same_as_json_parse(node, text)

        def node_reads(value: object) -> None:
            test_json_node.json_parse_reads_what_we_write(node, value)

        json_tests += [
            ("json vs JSON.parse", explore(given(json_inputs(allow_bytes=False))(node_accepts))),
            (
                "JSON.parse of dumps",
                explore(given(test_json_node.values_with_surrogates)(node_reads)),
            ),
        ]
    return {
        "core": [("core histories", explore(given(st.data())(history)))],
        "decoders": [
            ("engine packets", explore(given(engine_messages(deep))(check_engine_message))),
            ("handshakes", explore(given(handshake_payloads(deep))(check_handshake_payload))),
            ("packet decoder", explore(given(decoder_inputs(deep))(feed_decoders))),
        ],
        "json": json_tests,
    }


def _findings(exc: BaseException) -> list[str]:
    """One line per distinct failure: the exception and where in tether it was raised."""
    inner = getattr(exc, "exceptions", None)  # an ExceptionGroup: Hypothesis found several
    if isinstance(inner, tuple):
        return [line for one in inner for line in _findings(one)]
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/tether/" in f.filename] or frames[-1:]
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else "?"
    message = str(exc).splitlines()[0][:120] if str(exc) else ""
    return [f"{type(exc).__name__} at {where}: {message}"]


def run_hypothesis(targets: list[str], seconds: float, deep: bool, log: Path) -> int:
    properties = [p for name in targets for p in _hypothesis_targets(deep)[name]]
    findings: Counter[str] = Counter()
    rounds: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    with log.open("w") as details:
        while time.monotonic() < deadline:
            for name, run_round in properties:
                if time.monotonic() >= deadline:
                    break
                rounds[name] += 1
                try:
                    run_round()
                except Exception as exc:
                    for line in _findings(exc):
                        findings[f"{name}: {line}"] += 1
                    traceback.print_exception(exc, file=details)
    print("rounds of 300 examples:", dict(rounds))
    if not findings:
        print("no failure")
        return 0
    print(f"failures (tracebacks and failing examples in {log}):")
    for line, count in findings.most_common():
        print(f"  {count} x {line}")
    return 1


def run_atheris(target: str, seconds: float, workdir: Path) -> int:
    try:
        atheris = importlib.import_module("atheris")  # untyped; an optional tool
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["tether"]):
        import tether.core  # noqa: F401  (instrumented before the harness imports it)
    from fuzz.harness import play_core, play_decoders

    play = {"core": play_core, "decoders": play_decoders}[target]
    work = workdir / target
    work.mkdir(parents=True, exist_ok=True)
    dictionary = workdir / "tokens.dict"
    dictionary.write_text("".join(f"{_escape(token)}\n" for token in DICTIONARY))
    argv = [
        sys.argv[0],
        str(work),
        str(CORPUS),
        f"-max_total_time={int(seconds)}",
        f"-artifact_prefix={workdir}/",
        f"-dict={dictionary}",
        "-max_len=8192",
        "-timeout=20",
        "-rss_limit_mb=4096",
        "-print_final_stats=1",
    ]
    print("libFuzzer", " ".join(argv[1:]))

    def one_input(data: bytes) -> None:
        play(data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


def _escape(token: str) -> str:
    body = "".join(
        f"\\x{b:02x}" if b < 0x20 or b >= 0x7F or b in b'"\\' else chr(b) for b in token.encode()
    )
    return f'"{body}"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    parser.add_argument("--target", choices=["core", "decoders", "json", "all"], default="all")
    parser.add_argument("--deep-nesting", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, help="where libFuzzer keeps its corpus, and the failure log"
    )
    args = parser.parse_args(argv)
    # The test packages import each other as tests/ lays them out (core.helpers, fuzz.*),
    # as pytest does: tests/ goes on the path.
    sys.path.insert(0, str(TESTS))
    seconds = args.minutes * 60
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tether-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.engine == "atheris":
        if args.target not in ("core", "decoders"):
            parser.error("atheris fuzzes --target core or --target decoders")
        return run_atheris(args.target, seconds, workdir)
    targets = ["core", "decoders", "json"] if args.target == "all" else [args.target]
    return run_hypothesis(targets, seconds, args.deep_nesting, workdir / "failures.log")


if __name__ == "__main__":
    raise SystemExit(main())
