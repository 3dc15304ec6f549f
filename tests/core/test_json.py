"""Tests for tether.core._json: strict compact encoding, binary extraction, strict decoding."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core import _json
from tether.core._json import dumps, dumps_with_binary, loads

# --------------------------------------------------------------------------------------------
# dumps
# --------------------------------------------------------------------------------------------


def test_dumps_is_compact_and_keeps_non_ascii() -> None:
    # socketio-protocol.md §2.2: compact like JSON.stringify; §7 pitfall 14: no \u escapes.
    assert dumps(["message", 1, "2", {"3": [True]}]) == '["message",1,"2",{"3":[true]}]'
    assert dumps({"text": "héllo ✓"}) == '{"text":"héllo ✓"}'
    assert dumps(None) == "null"
    assert dumps("x") == '"x"'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"a": math.nan}]])
def test_dumps_refuses_nan_and_infinity(value: Any) -> None:
    # Node's JSON.parse rejects NaN/Infinity and the server then closes the connection.
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps(value)


@pytest.mark.parametrize("value", [b"x", {1, 2}, object(), [bytearray(b"x")]])
def test_dumps_refuses_non_json_values(value: Any) -> None:
    with pytest.raises(TypeError):
        dumps(value)


def test_dumps_refuses_circular_references() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps(loop)


@pytest.mark.parametrize("encode", [dumps, dumps_with_binary])
def test_dumps_refuses_nesting_beyond_the_recursion_limit_with_value_error(
    encode: Callable[[Any], object],
) -> None:
    value: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 100):
        value = [value]
    with pytest.raises(ValueError, match="nested too deeply"):
        encode(value)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("\ud800", '"\\ud800"'),  # a lone high surrogate
        ("a\udfffb", '"a\\udfffb"'),  # a lone low one, inside text
        ("\udc80é", '"\\udc80é"'),  # os.fsdecode's surrogateescape of byte 0x80
        # Two surrogate code points that pair up: JSON.stringify of that UTF-16 string.
        ("\ud83d\ude00", '"\\ud83d\\ude00"'),
        ({"\ud800": ["\udbff"]}, '{"\\ud800":["\\udbff"]}'),  # keys too
        ("é✓😀", '"é✓😀"'),  # other non-ASCII stays as it is (ensure_ascii=False)
    ],
)
def test_dumps_escapes_surrogates_like_json_stringify(value: Any, wire: str) -> None:
    # A Python str may hold surrogate code points that UTF-8 cannot encode; escaped they are
    # ASCII, and Node's JSON.parse gives back the same string (test_json_node.py).
    assert dumps(value) == wire
    assert dumps_with_binary([value, b"x"])[0] == f'[{wire},{{"_placeholder":true,"num":0}}]'
    wire.encode("utf-8")  # what the transport does with it


def test_escaped_surrogates_decode_back_to_the_same_string() -> None:
    for value in ["\ud800", "x\udfffy", {"\udc00": "\udbff\udbff"}]:
        assert loads(dumps(value)) == value
    # A pair decodes as the character it encodes, as in JavaScript.
    assert loads(dumps("\ud83d\ude00")) == "😀"


# --------------------------------------------------------------------------------------------
# dumps_with_binary
# --------------------------------------------------------------------------------------------


def test_dumps_with_binary_without_binary_gives_empty_list() -> None:
    text, attachments = dumps_with_binary(["chat", "hello", {"room": 1}])
    assert text == '["chat","hello",{"room":1}]'
    assert attachments == []
    # A fresh list every time: callers may keep or mutate it.
    assert dumps_with_binary([1])[1] is not dumps_with_binary([1])[1]


def test_dumps_with_binary_golden_from_the_protocol_examples() -> None:
    # socketio-protocol.md §2.3: the `/admin` upload example.
    text, attachments = dumps_with_binary(
        ["upload", b"\xde\xad\xbe\xef", {"meta": bytearray(b"\x00\x01")}]
    )
    assert text == (
        '["upload",{"_placeholder":true,"num":0},{"meta":{"_placeholder":true,"num":1}}]'
    )
    assert attachments == [b"\xde\xad\xbe\xef", b"\x00\x01"]
    assert all(type(a) is bytes for a in attachments)


def test_dumps_with_binary_numbers_depth_first_in_encounter_order() -> None:
    data = [
        b"0",
        {"z": b"1", "a": [b"2", {"k": b"3"}], "m": b"4"},  # insertion order, not sorted
        [[b"5"]],
        memoryview(b"6"),
    ]
    text, attachments = dumps_with_binary(data)
    assert attachments == [b"0", b"1", b"2", b"3", b"4", b"5", b"6"]
    assert text.index('"num":0') < text.index('"num":1') < text.index('"num":6')


def test_dumps_with_binary_top_level_and_repeated_buffers() -> None:
    assert dumps_with_binary(b"ab") == ('{"_placeholder":true,"num":0}', [b"ab"])
    same = b"xy"
    text, attachments = dumps_with_binary([same, same])
    assert attachments == [same, same]
    assert text == '[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'


def test_dumps_with_binary_still_refuses_other_values() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        dumps_with_binary([b"x", {1}])
    with pytest.raises(TypeError):
        dumps_with_binary({1})
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps_with_binary([b"x", math.nan])


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    """A straight port of socket.io-parser's ``_deconstructPacket`` (binary.ts), as oracle."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        placeholder = {"_placeholder": True, "num": len(buffers)}
        buffers.append(bytes(data))
        return placeholder
    if isinstance(data, list):
        return [_deconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers) for key, value in data.items()}
    return data


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.binary(max_size=6)
)
_values_with_binary = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(_values_with_binary)
def test_dumps_with_binary_matches_socket_io_parser_walk(value: Any) -> None:
    expected_buffers: list[bytes] = []
    expected = dumps(_deconstruct(value, expected_buffers))
    assert dumps_with_binary(value) == (expected, expected_buffers)


# --------------------------------------------------------------------------------------------
# loads, with orjson and with the stdlib fallback
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stdlib_json() -> ModuleType:
    """A fresh copy of the module imported while orjson is unavailable."""
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail
    try:
        spec = importlib.util.spec_from_file_location("_tether_json_no_orjson", _json.__file__)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["orjson"]
        else:
            sys.modules["orjson"] = saved
    return module


def test_orjson_is_used_when_installed() -> None:
    # scripts/setup installs the fast extra, so orjson is there: a missing one must fail.
    import orjson

    assert loads is _json._orjson_first
    assert loads('{"a":[1.5]}') == orjson.loads('{"a":[1.5]}')


def test_orjson_decodes_first_and_the_stdlib_only_what_orjson_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    original = _json._stdlib_loads

    def stdlib(text: str | bytes) -> Any:
        calls.append("stdlib")
        return original(text)

    monkeypatch.setattr(_json, "_stdlib_loads", stdlib)
    assert loads('["e",1]') == ["e", 1]
    assert calls == []
    assert loads('["\\ud800"]') == ["\ud800"]  # orjson refuses lone surrogates
    assert calls == ["stdlib"]
    with pytest.raises(ValueError):
        loads("[garbage")  # refused by both
    assert calls == ["stdlib", "stdlib"]


def test_fallback_is_used_without_orjson(stdlib_json: ModuleType) -> None:
    assert stdlib_json.loads is stdlib_json._stdlib_loads


@pytest.fixture(params=["default", "stdlib"])
def any_loads(request: pytest.FixtureRequest) -> Callable[[str | bytes], Any]:
    if request.param == "default":
        return loads
    module: ModuleType = request.getfixturevalue("stdlib_json")
    fallback: Callable[[str | bytes], Any] = module.loads
    return fallback


def test_loads_parses_text_and_utf8_bytes(any_loads: Callable[[str | bytes], Any]) -> None:
    assert any_loads('["message",1,"2",{"3":[true]}]') == ["message", 1, "2", {"3": [True]}]
    assert any_loads('{"t":"é","f":1.5}'.encode()) == {"t": "é", "f": 1.5}
    assert any_loads(" [1] ") == [1]


def test_loads_accepts_lone_surrogates(any_loads: Callable[[str | bytes], Any]) -> None:
    # JSON.parse and json.loads accept them; Node sends exactly these escapes.
    assert any_loads('["e","\\ud800"]') == ["e", "\ud800"]
    assert any_loads(b'{"\\udc00":"\\udbff\\ud800\\udfff"}') == {"\udc00": "\udbff\U000103ff"}
    # Raw in a str (no WebSocket text frame can carry one, an in-memory transport can).
    assert any_loads('["\ud800"]') == ["\ud800"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
        (str(2**64 - 1), 2**64 - 1),  # orjson reads unsigned 64-bit integers exactly too
        (str(2**64), float(2**64)),
        (str(-(2**63) - 1), float(-(2**63) - 1)),
        (str(10**30 + 1), 1e30),  # the nearest double, as JavaScript reads it
        ("9" * 308, float("9" * 308)),
        ("-0", 0),
        ("-0.0", -0.0),
        ("1e-400", 0.0),
    ],
)
def test_loads_reads_integers_exactly_within_64_bits_and_as_doubles_beyond(
    any_loads: Callable[[str | bytes], Any], text: str, value: float
) -> None:
    decoded = any_loads(f"[{text}]")[0]
    assert decoded == value
    assert type(decoded) is type(value)
    assert math.copysign(1, decoded) == math.copysign(1, value)


def test_loads_accepts_1024_levels_of_nesting(any_loads: Callable[[str | bytes], Any]) -> None:
    value = any_loads("[" * 1023 + '{"k":1}' + "]" * 1023)
    for _ in range(1023):
        value = value[0]
    assert value == {"k": 1}


def test_loads_keeps_the_last_of_duplicate_keys_at_the_first_position(
    any_loads: Callable[[str | bytes], Any],
) -> None:
    value = any_loads('{"a":1,"b":2,"a":3}')
    assert list(value.items()) == [("a", 3), ("b", 2)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1,",
        "{}x",
        "NaN",
        "[Infinity]",
        "-Infinity",
        "1e400",
        "[" * 5000 + "]" * 5000,
        "[" * 1025 + "]" * 1025,  # one level more than orjson (and so we) allow
        "\ufeff[1]",  # a BOM: RFC 8259 §8.1, and JSON.parse refuses it
        b"\xef\xbb\xbf[1]",
        "\xa0[1]",  # not JSON whitespace
        "[1e400]",
        "1" * 400,  # an integer beyond any double
        b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 bytes: not UTF-8
        b'"\xff"',
        b"\xff\xfe[\x001\x00]\x00",  # UTF-16 with a BOM: json.loads would sniff it
        b'"\xc3"',  # truncated UTF-8
        "\x00",
    ],
)
def test_loads_raises_only_value_error(
    any_loads: Callable[[str | bytes], Any], text: str | bytes
) -> None:
    with pytest.raises(ValueError):
        any_loads(text)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=30), st.binary(max_size=30)))
def test_loads_fallback_fuzz_raises_only_value_error(text: str | bytes) -> None:
    # Calls the fallback function directly: Hypothesis and function-scoped fixtures don't mix.
    for implementation in (loads, _json._stdlib_loads):
        with contextlib.suppress(ValueError):
            implementation(text)


def test_all() -> None:
    assert sorted(_json.__all__) == [
        "MAX_NESTING_DEPTH",
        "dumps",
        "dumps_with_binary",
        "loads",
        "loads_fast",
    ]
