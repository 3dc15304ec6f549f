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

    assert loads is orjson.loads


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
    assert sorted(_json.__all__) == ["dumps", "dumps_with_binary", "loads"]
