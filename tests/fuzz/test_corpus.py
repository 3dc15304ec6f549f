"""Malformed and malicious server input, kept as regression tests, with the documented outcome.

Each case starts a connection at a stage (``open``: the transport is open, no handshake yet;
``engine``: the Engine.IO handshake is done and our namespace CONNECT sent; ``connected``),
feeds the server's messages through ``CoreFuzzer`` (which checks the invariant of
``driver.py`` at every step) and compares the outcome with the one specs/core.md documents:
``accepted`` (nothing lost, nothing closed), a disconnect reason, or ``refused``.

The files in ``corpus/`` are fuzzer inputs in the format of ``harness.py`` (seeds, and
whatever a long run found); each is replayed through the core and the decoders.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.helpers import connect_reply, engine_open
from tether.core import (
    ConnectFailed,
    CoreOptions,
    EventReceived,
    LocalProtocolError,
    SocketDisconnected,
    State,
)
from tether.core._socketio import MAX_ACK_ID, RESERVED_EVENTS

from .driver import CoreFuzzer
from .harness import play_core, play_decoders

CORPUS = Path(__file__).parent / "corpus"
MB = 1024 * 1024


def handshake(**fields: object) -> str:
    """An Engine.IO OPEN packet with these keys changed (``None`` value: key left out)."""
    import json

    handshake: dict[str, object] = {
        "sid": "eio",
        "upgrades": [],
        "pingInterval": 25000,
        "pingTimeout": 20000,
    }
    handshake.update(fields)
    return "0" + json.dumps({k: v for k, v in handshake.items() if v is not None})


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


PH0 = '{"_placeholder":true,"num":0}'


@dataclass(frozen=True)
class Case:
    name: str
    start: str  # "open", "engine" or "connected"
    frames: tuple[str | bytes, ...]
    outcome: str  # "accepted", "refused", or the disconnect reason
    options: CoreOptions = field(default_factory=CoreOptions)
    received: int | None = None  # events delivered, when it matters


CASES = [
    # -- the handshake: sid, ping interval and timeout, payload limit ---------------------
    Case("10 MB engine sid", "open", (handshake(sid="s" * (10 * MB)),), "accepted"),
    Case("10 MB socket sid", "engine", ('40{"sid":"' + "s" * (10 * MB) + '"}',), "accepted"),
    Case("ping interval 0", "open", (handshake(pingInterval=0),), "accepted"),
    Case("ping interval negative", "open", (handshake(pingInterval=-1),), "parse error"),
    Case("ping interval 2**64-1", "open", (handshake(pingInterval=2**64 - 1),), "accepted"),
    Case("ping interval 2**64 (a double)", "open", (handshake(pingInterval=2**64),), "parse error"),
    Case("ping interval 1e30", "open", (handshake(pingInterval=10**30),), "parse error"),
    Case("ping interval 1.5", "open", (handshake(pingInterval=1.5),), "parse error"),
    Case("ping interval string", "open", (handshake(pingInterval="25000"),), "parse error"),
    Case("ping interval true", "open", (handshake(pingInterval=True),), "parse error"),
    Case("ping timeout negative", "open", (handshake(pingTimeout=-5),), "parse error"),
    Case("ping timeout missing", "open", (handshake(pingTimeout=None),), "parse error"),
    Case("max payload 0", "open", (handshake(maxPayload=0),), "accepted"),
    Case("max payload negative", "open", (handshake(maxPayload=-1),), "parse error"),
    Case("sid not a string", "open", (handshake(sid=1),), "parse error"),
    Case("upgrades not strings", "open", (handshake(upgrades=[1]),), "parse error"),
    Case("handshake not an object", "open", ("0[]",), "parse error"),
    Case("handshake not JSON", "open", ("0{",), "parse error"),
    Case("handshake twice", "engine", (engine_open(),), "parse error"),
    Case("handshake while connected", "connected", (engine_open(),), "parse error"),
    Case("handshake with a BOM", "open", ("0\ufeff" + handshake()[1:],), "parse error"),
    # -- before the handshake -------------------------------------------------------------
    Case("event before the handshake", "open", ('42["e"]',), "parse error"),
    Case("binary before the handshake", "open", (b"\x00",), "parse error"),
    Case("base64 before the handshake", "open", ("bAA==",), "parse error"),
    Case("ping before the handshake", "open", ("2",), "accepted"),
    # -- Engine.IO types ------------------------------------------------------------------
    Case("empty message", "connected", ("",), "parse error"),
    Case("unknown engine type", "connected", ("7",), "parse error"),
    Case("a letter", "connected", ("x42",), "parse error"),
    Case("a leading space", "connected", (' 42["e"]',), "parse error"),
    Case("engine close", "connected", ("1",), "transport close"),
    Case("noop, pong, upgrade", "connected", ("6", "3", "5"), "accepted"),
    Case("ping probe", "connected", ("2probe",), "accepted"),
    Case("bad base64", "connected", ("b*",), "parse error"),
    # -- text that is not UTF-8 on the wire (only a lossy driver could hand it over) --------
    Case("raw lone surrogate", "connected", ('42["e","\udc80"]',), "accepted", received=1),
    Case("binary that is not UTF-8", "connected", (b'\xff42["e"]',), "parse error"),
    # -- JSON -----------------------------------------------------------------------------
    Case(
        "lone surrogate then another event",  # issue 12: both arrive, with or without orjson
        "connected",
        ('42["e","\\ud800"]', '42["next"]'),
        "accepted",
        received=2,
    ),
    Case("1024 levels", "connected", ('42["e",' + deep(1023) + "]",), "accepted", received=1),
    Case("1025 levels", "connected", ('42["e",' + deep(1024) + "]",), "parse error"),
    Case("100 000 levels", "connected", ("42" + "[" * 100_000,), "parse error"),
    Case("NaN", "connected", ('42["e",NaN]',), "parse error"),
    Case("Infinity", "connected", ('42["e",-Infinity]',), "parse error"),
    Case("huge exponent", "connected", ('42["e",1e400]',), "parse error"),
    Case("huge integer", "connected", ('42["e",' + "9" * 400 + "]",), "parse error"),
    Case("integer past 64 bits", "connected", ('42["e",' + str(2**64) + "]",), "accepted"),
    Case("duplicate keys", "connected", ('42["e",{"a":1,"a":2}]',), "accepted", received=1),
    Case("a BOM", "connected", ('42\ufeff["e"]',), "parse error"),
    Case("trailing garbage", "connected", ('42["e"]x',), "parse error"),
    # -- event names ----------------------------------------------------------------------
    *[
        Case(f"reserved name {name}", "connected", (f'42["{name}"]',), "parse error")
        for name in sorted(RESERVED_EVENTS)
    ],
    Case("number names", "connected", ("42[1]", "42[1.5]", "42[-0]"), "accepted", received=3),
    Case("name past 64 bits", "connected", ("42[18446744073709551616]",), "accepted"),
    Case("name true", "connected", ("42[true]",), "parse error"),
    Case("name null", "connected", ("42[null]",), "parse error"),
    Case("name a list", "connected", ('42[["e"]]',), "parse error"),
    Case("no name", "connected", ("42[]",), "parse error"),
    Case("not a list", "connected", ('42{"e":1}',), "parse error"),
    Case("no payload", "connected", ("42",), "parse error"),
    # -- ack ids --------------------------------------------------------------------------
    Case("largest ack id", "connected", (f'42{MAX_ACK_ID}["e"]',), "accepted", received=1),
    Case("ack id past 2**53", "connected", (f'42{MAX_ACK_ID + 1}["e"]',), "parse error"),
    Case("5000-digit ack id", "connected", ("42" + "9" * 5000 + '["e"]',), "parse error"),
    Case("ack past 2**53", "connected", (f"43{MAX_ACK_ID + 1}[]",), "parse error"),
    Case("ack of an unknown call", "connected", ("437[1]",), "accepted"),
    Case("ack not a list", "connected", ('431"x"',), "parse error"),
    # -- binary attachments ---------------------------------------------------------------
    Case("11 attachments", "connected", ('4511-["e"]',), "parse error"),
    Case("0 attachments", "connected", (f'450-["e",{PH0}]',), "parse error"),
    Case("5000-digit count", "connected", ("45" + "9" * 5000 + f'-["e",{PH0}]',), "parse error"),
    Case("count with leading zeros", "connected", (f'4501-["e",{PH0}]', b"x"), "accepted"),
    Case(
        "placeholder out of range",
        "connected",
        ('451-["e",{"_placeholder":true,"num":1}]',),
        "parse error",
    ),
    Case(
        "placeholder num a float",
        "connected",
        ('451-["e",{"_placeholder":true,"num":0.0}]',),
        "parse error",
    ),
    Case(
        "text between attachments",
        "connected",
        (f'452-["e",{PH0}]', b"a", '42["x"]'),
        "parse error",
    ),
    Case(
        "ping between attachments",
        "connected",
        (f'452-["e",{PH0},{{"_placeholder":true,"num":1}}]', b"a", "2", b"b"),
        "accepted",
        received=1,
    ),
    Case("attachment with none awaited", "connected", (b"\x00\x01",), "parse error"),
    Case("base64 attachment", "connected", (f'451-["e",{PH0}]', "bAAE="), "accepted", received=1),
    Case(
        "attachment count never reached",
        "connected",
        (f'453-["e",{PH0}]', b"a", b"b"),
        "accepted",
        received=0,
    ),
    # -- CONNECT, CONNECT_ERROR and DISCONNECT in every state -----------------------------
    Case("CONNECT before the handshake", "open", ('40{"sid":"s"}',), "parse error"),
    Case("CONNECT_ERROR before the handshake", "open", ('44{"message":"no"}',), "parse error"),
    Case("DISCONNECT before the handshake", "open", ("41",), "parse error"),
    Case("CONNECT reply", "engine", ('40{"sid":"s"}',), "accepted"),
    Case("CONNECT reply without payload", "engine", ("40",), "parse error"),
    Case("CONNECT reply without sid", "engine", ("40{}",), "parse error"),
    Case("CONNECT reply with a number sid", "engine", ('40{"sid":1}',), "parse error"),
    Case("CONNECT reply not an object", "engine", ('40["s"]',), "parse error"),
    Case("CONNECT_ERROR object", "engine", ('44{"message":"no","data":[1]}',), "refused"),
    Case("CONNECT_ERROR string", "engine", ('44"no"',), "refused"),
    Case("CONNECT_ERROR without payload", "engine", ("44",), "parse error"),
    Case("DISCONNECT before the reply", "engine", ("41",), "refused"),
    Case("DISCONNECT with payload before the reply", "engine", ('41{"message":"x"}',), "refused"),
    Case("CONNECT while connected", "connected", ('40{"sid":"t"}',), "parse error"),
    Case("CONNECT_ERROR while connected", "connected", ('44{"message":"x"}',), "parse error"),
    Case("DISCONNECT while connected", "connected", ("41",), "io server disconnect"),
    Case("DISCONNECT not an object", "connected", ("41[]",), "parse error"),
    # -- other namespaces ---------------------------------------------------------------
    Case("event for another namespace", "connected", ('42/other,["e"]',), "accepted", received=0),
    Case("refusal for another namespace", "engine", ('44/other,{"message":"x"}',), "accepted"),
    Case("DISCONNECT for another namespace", "connected", ("41/other,",), "accepted"),
    # -- events before the CONNECT reply are held, within limits ------------------------
    Case(
        "held events are delivered",
        "engine",
        ('42["a"]', '42["b"]', '40{"sid":"s"}'),
        "accepted",
        received=2,
    ),
    Case(
        "held events past max_buffered_bytes",
        "engine",
        ('42["a","' + "x" * 100 + '"]',) * 3,
        "parse error",
        options=CoreOptions(max_buffered_bytes=250),
    ),
]


def start(case: Case) -> CoreFuzzer:
    fuzzer = CoreFuzzer(case.options)
    fuzzer.advance()  # open
    fuzzer.advance()  # the transport opens
    if case.start in ("engine", "connected"):
        fuzzer.receive(engine_open())
    if case.start == "connected":
        fuzzer.receive(connect_reply())
        assert fuzzer.connected
    assert fuzzer.open_token is not None
    return fuzzer


def outcome_of(fuzzer: CoreFuzzer, since: int) -> str:
    for e in fuzzer.h.events[since:]:
        if type(e) is SocketDisconnected:
            return e.reason
        if type(e) is ConnectFailed:
            return "refused" if e.error.refused else e.error.message
    return "accepted"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_malformed_input_has_its_documented_outcome(case: Case) -> None:
    fuzzer = start(case)
    since = len(fuzzer.h.events)
    for frame in case.frames:
        assert fuzzer.open_token is not None, "the case goes on after the transport closed"
        fuzzer.receive(frame)
    assert outcome_of(fuzzer, since) == case.outcome
    if case.received is not None:
        received = [e for e in fuzzer.h.events[since:] if type(e) is EventReceived]
        assert len(received) == case.received


def test_a_zero_ping_interval_is_read_as_one_second() -> None:
    # python-engineio announces a sub-second interval as 0 (socketio-protocol.md §1.3).
    fuzzer = start(Case("", "open", (), "accepted"))
    fuzzer.receive(handshake(pingInterval=0, pingTimeout=500))
    assert fuzzer.h.conn.next_deadline() == fuzzer.h.now + 1.5


def test_a_huge_ping_interval_still_leaves_a_finite_deadline() -> None:
    fuzzer = start(Case("", "open", (), "accepted"))
    fuzzer.receive(handshake(pingInterval=2**64 - 1))
    deadline = fuzzer.h.conn.next_deadline()
    assert deadline is not None and deadline < float("inf")


def test_a_binary_packet_that_never_completes_ends_in_a_ping_timeout() -> None:
    fuzzer = start(Case("", "connected", (), "accepted"))
    fuzzer.receive(f'451-["e",{PH0}]')
    fuzzer.until_deadline()
    assert fuzzer.h.last(SocketDisconnected) == SocketDisconnected("ping timeout")
    # The next connection starts afresh: its first message is not taken for the attachment.
    fuzzer.until_deadline()  # the retry
    fuzzer.advance()
    fuzzer.receive(engine_open())
    fuzzer.receive(connect_reply())
    fuzzer.receive(b"\x00")
    assert fuzzer.h.last(SocketDisconnected) == SocketDisconnected("parse error")


@pytest.mark.parametrize("state", [State.IDLE, State.RECONNECTING, State.CLOSED])
def test_without_a_transport_receive_is_the_drivers_mistake(state: State) -> None:
    # specs/core.md: receive() without an open transport raises LocalProtocolError; the
    # driver feeds only the messages of the current transport.
    fuzzer = CoreFuzzer()
    if state is not State.IDLE:
        fuzzer.advance()
        fuzzer.advance()
        fuzzer.receive("1")  # the server closes
        if state is State.CLOSED:
            fuzzer.user(fuzzer.h.close)
    assert fuzzer.h.state is state
    for frame in ('40{"sid":"s"}', '44{"message":"no"}', "41", b"\x00"):
        with pytest.raises(LocalProtocolError):
            fuzzer.h.conn.receive(frame, now=fuzzer.h.now)


def test_nothing_grows_on_a_stream_of_ignored_and_refused_input() -> None:
    # Pings, NOOPs, events for other namespaces, acks for unknown calls, and connections
    # broken by bad input and made again: the core's memory stays flat.
    fuzzer = start(Case("", "connected", (), "accepted"))
    frames: tuple[str | bytes, ...] = ("2", "6", '42/other,["e",1]', "439[1]", '452-["e"]')
    tracemalloc.start()
    try:
        for round_number in range(3000):
            if round_number == 200:
                baseline = tracemalloc.get_traced_memory()[0]
            for frame in frames:
                if fuzzer.open_token is None:
                    fuzzer.h.events.clear()
                    fuzzer.h.sent.clear()
                    fuzzer.until_deadline()
                    fuzzer.advance()
                    fuzzer.receive(engine_open())
                    fuzzer.receive(connect_reply())
                fuzzer.receive(frame)
        fuzzer.h.events.clear()
        fuzzer.h.sent.clear()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"{grown} bytes more after 2800 rounds"


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda path: path.name)
def test_corpus_file(path: Path) -> None:
    data = path.read_bytes()
    play_core(data)
    play_decoders(data)
