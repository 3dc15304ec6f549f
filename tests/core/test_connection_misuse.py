"""The connection core, part 7: misuse raises at the call site, and leaves nothing behind.

Bad values from the caller raise ``ValueError``/``TypeError`` where they are passed, whether
the client is connected or not (a buffered message was validated when it was emitted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tether.core import (
    AckFailed,
    Connection,
    CoreOptions,
    MessageDropped,
    MessageTooLarge,
    OverflowPolicy,
    State,
)

from .helpers import Harness, connect_reply, decode_sent, engine_open

RESERVED = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
]


@pytest.fixture(params=["offline", "connected"])
def harness(request: pytest.FixtureRequest) -> Harness:
    h = Harness()
    if request.param == "connected":
        h.connect()
    return h


def assert_untouched(h: Harness, sent_before: int, buffered_before: int) -> None:
    assert h.conn.buffered == buffered_before
    assert h.conn.data_to_send() == []
    assert len(h.sent) == sent_before


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_event_names_are_refused(harness: Harness, name: str) -> None:
    h = harness
    before = len(h.sent)
    with pytest.raises(ValueError, match="reserved"):
        h.emit(name)
    with pytest.raises(ValueError, match="reserved"):
        h.call(name)
    with pytest.raises(ValueError, match="reserved"):
        h.send("ch", name, 1)
    with pytest.raises(ValueError, match="reserved"):
        h.broadcast(name, 1)
    assert_untouched(h, before, 0)


MISUSE: dict[str, tuple[Callable[[Harness], object], type[Exception]]] = {
    "emit-set": (lambda h: h.emit("e", {1, 2}), TypeError),
    "emit-object": (lambda h: h.emit("e", object()), TypeError),
    "emit-nan": (lambda h: h.emit("e", float("nan")), ValueError),
    "emit-infinity": (lambda h: h.emit("e", [float("inf")]), ValueError),
    "emit-empty-name": (lambda h: h.emit(""), ValueError),
    "emit-int-name": (lambda h: h.emit(5), TypeError),  # type: ignore[arg-type]
    "call-set": (lambda h: h.call("e", {1}), TypeError),
    "call-bad-timeout": (lambda h: h.call("e", timeout=-1), ValueError),
    "send-bad-message": (lambda h: h.send("c", "e", {1}), TypeError),
    "send-empty-channel": (lambda h: h.send("", "e", 1), ValueError),
    "send-channel-not-str": (lambda h: h.send(1, "e", 1), TypeError),  # type: ignore[arg-type]
    "send-echo-not-bool": (lambda h: h.send("c", "e", 1, echo=1), TypeError),  # type: ignore[arg-type]
    "broadcast-nan": (lambda h: h.broadcast("e", float("nan")), ValueError),
    "join-empty": (lambda h: h.join(""), ValueError),
    "join-not-str": (lambda h: h.join(None), TypeError),  # type: ignore[arg-type]
    "join-echo-not-bool": (lambda h: h.join("c", echo="no"), TypeError),  # type: ignore[arg-type]
    "leave-empty": (lambda h: h.leave(""), ValueError),
    "profile-set": (lambda h: h.update_profile({"s": {1}}), TypeError),
    "profile-bytes": (lambda h: h.update_profile(b"raw"), TypeError),
    "profile-nan": (lambda h: h.update_profile(float("nan")), ValueError),
    "profile-echo": (lambda h: h.update_profile({}, echo=0), TypeError),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", list(MISUSE))
def test_misuse_raises_at_the_call_site(harness: Harness, case: str) -> None:
    misuse, error = MISUSE[case]
    h = harness
    state = h.state
    before = len(h.sent)
    with pytest.raises(error):
        misuse(h)
    assert_untouched(h, before, 0)
    assert h.state is state
    assert h.conn.channels == {}


@pytest.mark.parametrize("offline", [False, True], ids=["connected", "offline-after-a-connect"])
def test_a_message_above_max_payload_is_refused(offline: bool) -> None:
    # Once a server has announced its maxPayload (1 MB here), the limit is known, connected
    # or not: a larger frame is refused at the call site.
    h = Harness(draw=0.0)
    h.connect()
    if offline:
        h.closed()
    with pytest.raises(MessageTooLarge, match="maxPayload"):
        h.emit("big", "x" * 1_000_000)
    with pytest.raises(ValueError, match="maxPayload"):
        h.emit("big", "é" * 500_000)  # counted in UTF-8 bytes
    with pytest.raises(ValueError, match="maxPayload"):
        h.emit("big", b"x" * 1_000_001)  # one attachment too large
    h.emit("fits", "é" * 200_000)


def test_before_the_first_connect_the_server_announces_the_limit() -> None:
    # specs/bounds.md: before any server spoke, nothing is refused for its size; a connect's
    # flush drops (and reports) what that server's maxPayload would refuse.
    h = Harness(draw=0.0)
    h.emit("fits", "x" * 2_000_000)
    h.call("asks", "x" * 2_000_000, timeout=None)
    h.update_profile({"blob": "x" * 2_000_000})
    h.open()
    h.opened()
    h.receive(engine_open(max_payload=3_000_000))
    step = h.receive(connect_reply())
    assert [decode_sent(f)[1][0] for f in step.sent] == ["update", "fits", "asks"]
    h.closed()
    h.emit("offline big", "x" * 2_000_000)  # within the last server's 3 MB
    call_id, _ = h.call("offline call", "x" * 2_000_000, timeout=None)
    h.until_deadline()
    h.opened()
    h.receive(engine_open(max_payload=1_000_000))  # this server takes less
    step = h.receive(connect_reply())
    assert step.of(MessageDropped) == [
        MessageDropped("update", None, "too large"),
        MessageDropped("offline big", None, "too large"),
        MessageDropped("offline call", call_id, "too large"),
    ]
    [failed] = step.of(AckFailed)
    assert failed.call_id == call_id and isinstance(failed.error, MessageTooLarge)
    with pytest.raises(MessageTooLarge):
        h.emit("now refused", "x" * 2_000_000)


def test_a_failed_call_does_not_register_a_timer() -> None:
    h = Harness()
    with pytest.raises(TypeError):
        h.call("e", {1}, timeout=1.0)
    assert h.conn.next_deadline() is None


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"namespace": "admin"}, ValueError),
        ({"namespace": "/a,b"}, ValueError),
        ({"reconnection_attempts": -1}, ValueError),
        ({"reconnection_attempts": 1.5}, TypeError),
        ({"reconnection_attempts": True}, TypeError),
        ({"reconnection_delay": -1.0}, ValueError),
        ({"reconnection_delay": float("nan")}, ValueError),
        ({"reconnection_delay": float("inf")}, ValueError),
        ({"reconnection_delay": "1"}, TypeError),
        ({"reconnection_delay_max": -0.5}, ValueError),
        ({"reconnection_delay": 5.0, "reconnection_delay_max": 1.0}, ValueError),
        ({"randomization_factor": 1.5}, ValueError),
        ({"randomization_factor": -0.1}, ValueError),
        ({"randomization_factor": float("nan")}, ValueError),
        ({"randomization_factor": "0.5"}, TypeError),
        ({"randomization_factor": False}, TypeError),
        ({"timeout": 0}, ValueError),
        ({"timeout": True}, TypeError),
        ({"max_buffered": 0}, ValueError),
        ({"max_buffered_bytes": 0}, ValueError),
        ({"max_payload": 0}, ValueError),
        ({"overflow": "drop_oldest"}, TypeError),
    ],
)
def test_bad_options_raise_at_construction(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CoreOptions(**options)


def test_edge_values_that_are_allowed() -> None:
    options = CoreOptions(
        namespace="/admin",
        reconnection_attempts=0,
        reconnection_delay=0,
        reconnection_delay_max=0,
        randomization_factor=1,
        max_buffered=1,
        overflow=OverflowPolicy.DROP_NEWEST,
    )
    conn = Connection(options, random=lambda: 0.0)
    assert conn.state is State.IDLE
