"""Values nested a thousand deep, which the JSON decoder accepts (up to 1024 levels) but
which ``repr`` and a re-encode cannot walk: found by the fuzzer's ``--deep-nesting`` run.

Network input never raises out of the core (specs/core.md "Errors"): a bad one is a parse
error, and an event held before the CONNECT reply is measured by what it took on the wire,
not by encoding it again.
"""

from __future__ import annotations

import pytest

from core.helpers import connect_reply

from .test_corpus import Case, handshake, outcome_of, start


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("key", ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"])
def test_a_deeply_nested_handshake_value_is_a_parse_error(key: str) -> None:
    fuzzer = start(Case("", "open", (), "accepted"))
    since = len(fuzzer.h.events)
    fuzzer.receive(handshake()[:-1] + f',"{key}":' + deep(1010) + "}")
    assert outcome_of(fuzzer, since) == "parse error"


@pytest.mark.parametrize(
    "frame",
    [
        "42[" + deep(1010) + "]",
        "42" + deep(1010),
        '451-["e",{"_placeholder":true,"num":5,"x":' + deep(1010) + "}]",
    ],
    ids=["name", "payload", "placeholder"],
)
def test_a_deeply_nested_invalid_packet_is_a_parse_error(frame: str) -> None:
    fuzzer = start(Case("", "connected", (), "accepted"))
    since = len(fuzzer.h.events)
    fuzzer.receive(frame)
    assert outcome_of(fuzzer, since) == "parse error"


def test_a_deeply_nested_event_before_the_connect_reply_is_held_and_delivered() -> None:
    fuzzer = start(Case("", "engine", (), "accepted"))
    since = len(fuzzer.h.events)
    fuzzer.receive('42["e",' + deep(1022) + "]")
    fuzzer.receive(connect_reply())
    assert outcome_of(fuzzer, since) == "accepted" and fuzzer.connected
