"""Hypothesis strategies for what a server (or an attacker posing as one) can send.

Each strategy builds whole WebSocket messages as text, by the grammar of Engine.IO v4 and
Socket.IO v5 (socketio-protocol.md §1.2, §2.2), with every field drawn from values that
are valid, at a boundary, or wrong: type digits, attachment counts, namespaces, ack ids,
JSON payloads (``json_texts``), binary placeholders, the handshake's keys. ``mutated``
then damages a message the way a broken peer would (a character inserted, deleted,
replaced, the message cut short).

With ``deep=True`` the JSON values also include documents nested 1000 to 1030 levels deep,
mostly just within ``loads``'s 1024-level limit, where they reach whatever handles the
decoded value (``python -m tests.fuzz --deep-nesting``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

from tether.core._socketio import MAX_ACK_ID, MAX_ATTACHMENTS, RESERVED_EVENTS

from .json_texts import EDGE_INTEGERS, json_documents, json_inputs, nested_texts

__all__ = [
    "binary_frames",
    "decoder_inputs",
    "engine_messages",
    "event_names",
    "handshake_payloads",
    "handshakes",
    "mutated",
    "server_frames",
    "socketio_packets",
]

# --------------------------------------------------------------------------------------------
# JSON pieces
# --------------------------------------------------------------------------------------------

_numbers = st.sampled_from(["0", "1", "-1", "1.5", "-0", "1e3", "1e400", "2.5e-7"]) | (
    st.sampled_from(EDGE_INTEGERS).map(str)
)

#: Event names: usual ones, reserved ones, numbers (Node allows them), and non-names.
event_names = st.one_of(
    st.sampled_from(['"e"', '"message"', '"join"', '"x\\ud800"', '"ü"', '""']),
    st.sampled_from(sorted(RESERVED_EVENTS)).map(json.dumps),
    _numbers,
    st.sampled_from(["true", "false", "null", "[]", "{}", '["e"]', '{"e":1}']),
)


def _placeholder(num: str) -> str:
    return '{"_placeholder":true,"num":' + num + "}"


_placeholder_nums = st.one_of(
    st.integers(0, MAX_ATTACHMENTS + 1).map(str),
    st.sampled_from(["-1", "0.0", "1.5", '"0"', "true", "null", str(2**64), "1e400"]),
)
_placeholders = st.one_of(
    _placeholder_nums.map(_placeholder),
    st.sampled_from(['{"_placeholder":true}', '{"_placeholder":1,"num":0}', '{"num":0}']),
)


#: Nesting for values that sit a level or three deep in a packet: mostly within the limit.
_deep_values = st.one_of(nested_texts((1000, 1022)), nested_texts((1000, 1022)), nested_texts())


def _json_values(deep: bool) -> st.SearchStrategy[str]:
    documents = json_documents(max_leaves=4)
    return st.one_of(documents, _deep_values) if deep else documents


def _arguments(deep: bool) -> st.SearchStrategy[str]:
    return st.one_of(
        _json_values(deep),
        _placeholders,
        st.lists(_placeholders, min_size=1, max_size=3).map(lambda p: "[" + ",".join(p) + "]"),
    )


@st.composite
def event_payloads(draw: st.DrawFn, deep: bool = False) -> str:
    """``[name, *args]``, or now and then something that is not an event array at all."""
    if draw(st.integers(0, 10)) == 0:
        return draw(_json_values(deep))
    names = st.one_of(event_names, _deep_values) if deep else event_names
    parts = [draw(names), *draw(st.lists(_arguments(deep), max_size=3))]
    return "[" + ",".join(parts) + "]"


@st.composite
def _sid_objects(draw: st.DrawFn) -> str:
    """A CONNECT reply's payload: ``{"sid": ...}`` with or without a pid, or not quite."""
    sid = draw(
        st.sampled_from(['"s1"', '""', "1", "null", "[]", '{"a":1}', '"\\ud800"'])
        | st.text(max_size=20).map(json.dumps)
    )
    members = ['"sid":' + sid]
    if draw(st.booleans()):
        members.append('"pid":' + draw(st.sampled_from(['"p1"', "1", "null"])))
    if draw(st.integers(0, 5)) == 0:
        members = []
    return "{" + ",".join(members) + "}"


# --------------------------------------------------------------------------------------------
# Socket.IO packets (the data of an Engine.IO MESSAGE, after the "4")
# --------------------------------------------------------------------------------------------

_namespaces = st.sampled_from(["", "", "", "/,", "/admin,", "/admin", "/a/b,", "/\u00fc,", "x,"])
_attachment_counts = st.one_of(
    st.integers(0, MAX_ATTACHMENTS + 1).map(str),
    st.sampled_from(["01", "", "-1", "x", "²", "9" * 30, "1" + "0" * 5000]),
)
_ack_ids = st.one_of(
    st.just(""),
    st.integers(0, 20).map(str),
    st.sampled_from([MAX_ACK_ID, MAX_ACK_ID + 1, 2**64, 10**16, 10**4000]).map(str),
)


@st.composite
def socketio_packets(draw: st.DrawFn, deep: bool = False) -> str:
    """A Socket.IO packet as text: ``type [N-] [/nsp,] [id] [json]``, fields good or bad."""
    packet_type = draw(st.sampled_from("0123456") | st.sampled_from(["7", "9", "x", ""]))
    text = packet_type
    if packet_type in ("5", "6") or draw(st.integers(0, 20)) == 0:
        text += draw(_attachment_counts) + draw(st.sampled_from(["-", "-", ""]))
    text += draw(_namespaces)
    if packet_type in ("2", "3", "5", "6") or draw(st.integers(0, 10)) == 0:
        text += draw(_ack_ids)
    if packet_type in ("2", "5"):
        payload = draw(event_payloads(deep))
    elif packet_type in ("3", "6"):
        payload = "[" + ",".join(draw(st.lists(_arguments(deep), max_size=3))) + "]"
    elif packet_type == "0":
        payload = draw(_sid_objects())
    elif packet_type in ("1", "4"):
        payload = draw(
            st.sampled_from(["", '{"message":"nope"}', '"refused"', '{"message":1,"data":[2]}'])
        )
    else:
        payload = ""
    if draw(st.integers(0, 8)) == 0:
        payload = draw(_json_values(deep))
    return text + payload


# --------------------------------------------------------------------------------------------
# Engine.IO
# --------------------------------------------------------------------------------------------

_milliseconds: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([0, 1, 999, 1000, 25_000, -1, 2**31, 2**53, 2**63, 2**64 - 1, 2**64]),
    st.sampled_from([1.5, 25000.0, "25000", True, None, [], {}, 10**30]),
)
_missing = object()


@st.composite
def handshakes(draw: st.DrawFn, deep: bool = False) -> str:
    """The Engine.IO OPEN packet: ``0`` and the JSON handshake, its keys good, odd or wrong."""
    fields: dict[str, Any] = {
        "sid": draw(st.sampled_from(["eio", "", "\ud800"]) | st.just(1) | st.just(None)),
        "upgrades": draw(st.sampled_from([[], ["websocket"], "websocket", [1], None])),
        "pingInterval": draw(_milliseconds),
        "pingTimeout": draw(_milliseconds),
        "maxPayload": draw(st.sampled_from([_missing, 1_000_000, 0, 1, 64, -1, 2**64, 1.0])),
    }
    if draw(st.integers(0, 3)) == 0:
        fields = {key: 25_000 if key.startswith("ping") else value for key, value in fields.items()}
        fields.update(sid="eio", upgrades=[])
    for key in list(fields):
        if fields[key] is _missing or draw(st.integers(0, 25)) == 0:
            del fields[key]
    if draw(st.booleans()):
        fields["extra"] = draw(st.sampled_from([1, "x", [None], {"k": []}]))
    text = json.dumps(fields)
    if deep and draw(st.booleans()):
        # A good handshake but for one key, nested deep.
        key = draw(st.sampled_from(["sid", "upgrades", "pingInterval", "pingTimeout", "x"]))
        good = {"sid": "eio", "upgrades": [], "pingInterval": 25_000, "pingTimeout": 20_000}
        text = json.dumps(good)[:-1] + f', "{key}": ' + draw(_deep_values) + "}"
    if draw(st.integers(0, 10)) == 0:
        text = draw(_json_values(deep))
    return "0" + text


@st.composite
def _base64_messages(draw: st.DrawFn) -> str:
    data = draw(st.binary(max_size=16))
    text = base64.b64encode(data).decode()
    if draw(st.booleans()):
        text = draw(st.sampled_from([text[:-1], text + "=", text + "*", "\u00e9", "===="]))
    return "b" + text


#: Binary WebSocket messages: attachments, or stray bytes.
binary_frames = st.binary(max_size=32)


@st.composite
def server_frames(draw: st.DrawFn, deep: bool = False) -> str | bytes:
    """One WebSocket message from the server, of any kind, often well formed."""
    kind = draw(st.integers(0, 12))
    if kind <= 4:
        frame: str | bytes = "4" + draw(socketio_packets(deep))
    elif kind == 5:
        frame = draw(handshakes(deep))
    elif kind == 6:
        frame = draw(st.sampled_from(["2", "2probe", "3", "5", "6", "1"]))
    elif kind == 7:
        frame = draw(_base64_messages())
    elif kind == 8:
        frame = draw(binary_frames)
    elif kind == 9:
        frame = draw(st.sampled_from(["", "7", "a", "4", " 42[]", "\ufeff42[]", "\ud800"]))
    else:
        frame = "4" + draw(socketio_packets(deep))
    if draw(st.integers(0, 6)) == 0:
        frame = draw(mutated(frame))
    return frame


@st.composite
def mutated(draw: st.DrawFn, frame: str | bytes) -> str | bytes:
    """``frame`` with one to three edits: inserted, deleted or replaced units, or cut short."""
    units: list[Any] = list(frame)
    alphabet: st.SearchStrategy[Any]
    if isinstance(frame, str):
        alphabet = st.sampled_from(list('0123456789-/,[]{}":\\b ')) | st.characters()
    else:
        alphabet = st.integers(0, 255)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(units)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if edit == "insert":
            units.insert(where, draw(alphabet))
        elif edit == "cut":
            del units[where:]
        elif where < len(units):
            if edit == "delete":
                del units[where]
            else:
                units[where] = draw(alphabet)
    return "".join(units) if isinstance(frame, str) else bytes(units)


# --------------------------------------------------------------------------------------------
# What each decoder is handed
# --------------------------------------------------------------------------------------------

_any_text = st.text(alphabet=st.characters(codec=None))  # surrogates included


def engine_messages(deep: bool = False) -> st.SearchStrategy[str | bytes | bytearray | memoryview]:
    """For decode_engine_packet: server messages, any text, any bytes-like object."""
    return st.one_of(
        server_frames(deep),
        _any_text,
        st.binary(),
        st.binary().map(bytearray),
        st.binary().map(lambda data: memoryview(data)),
    )


def handshake_payloads(deep: bool = False) -> st.SearchStrategy[str | bytes]:
    """For parse_handshake: handshakes good and bad, JSON texts, any text."""
    return st.one_of(handshakes(deep).map(lambda frame: frame[1:]), json_inputs(), _any_text)


def decoder_inputs(deep: bool = False) -> st.SearchStrategy[list[str | bytes]]:
    """For one PacketDecoder: packets, damaged packets, attachments, any text."""
    packets = socketio_packets(deep)
    message = st.one_of(packets, packets, packets.flatmap(mutated), binary_frames, _any_text)
    return st.lists(message, max_size=12)
