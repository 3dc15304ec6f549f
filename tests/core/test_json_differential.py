"""One JSON behaviour with or without orjson: differential properties.

``tether.core._json``'s docstring says what the language is. Here every way the module can
decode (orjson first, the stdlib path alone as it runs without orjson, and the stdlib's
decoder without recursion) must give the same outcome for every generated input
(``tests/fuzz/json_texts.py``): the same value, types and key order included, or a
``ValueError``, and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz.json_texts import json_documents, json_inputs, nested_texts, typed_tokens
from fuzz.stack import process_recursion_limit
from tether.core import _json

from .helpers import property_settings


def _import_without_orjson() -> ModuleType:
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail
    try:
        spec = importlib.util.spec_from_file_location("_tether_json_stdlib", _json.__file__)
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


STDLIB_ONLY = _import_without_orjson()


Outcome = list[tuple[str, object]] | None  # None: refused with ValueError


def outcome(decode: Callable[[Any], Any], text: str | bytes) -> Outcome:
    try:
        value = decode(text)
    except ValueError:
        return None
    return typed_tokens(value)


def depth_of(value: Any) -> int:
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if type(item) is list:
            stack.extend((member, depth + 1) for member in item)
        elif type(item) is dict:
            stack.extend((member, depth + 1) for member in item.values())
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def test_the_module_imported_without_orjson_decodes_with_the_stdlib() -> None:
    assert STDLIB_ONLY.loads is STDLIB_ONLY._stdlib_loads
    assert _json.loads is _json._orjson_first


@property_settings(max_examples=700)
@given(json_inputs())
@example('"\\ud800"')  # a lone surrogate: orjson refuses it, JSON.parse accepts it
@example('["\\udc00\\ud800",{"\\udbff":1}]')
@example('["\ud800"]')  # raw, in a str
@example(b'["\xed\xa0\x80"]')  # raw, in bytes: not UTF-8
@example(str(2**64 - 1))
@example(str(2**64))
@example(str(-(2**63) - 1))
@example("1" * 400)
@example("1" * 5000)
@example("[1e400]")
@example("-1e-400")
@example("[" * 1024 + "]" * 1024)
@example("[" * 1025 + "]" * 1025)
@example('{"a":' * 1024 + "1" + "}" * 1024)
@example('{"a":1,"b":2,"a":3}')
@example("[NaN]")
@example("-Infinity")
@example("\ufeff[1]")
@example(b"\xef\xbb\xbf[1]")
@example(" \t\n\r[1] \t\n\r")
@example("\x0c[1]")
def test_every_decoding_path_gives_the_same_outcome(text: str | bytes) -> None:
    same_outcome_on_every_path(text)


def same_outcome_on_every_path(text: str | bytes) -> None:
    # Under the process's recursion limit, the stdlib path meets deep texts as it does in
    # production: its C scanner gives up, and the stack decoder takes over.
    with process_recursion_limit():
        _same_outcome_on_every_path(text)


def _same_outcome_on_every_path(text: str | bytes) -> None:
    expected = outcome(_json.loads, text)
    assert outcome(_json._stdlib_loads, text) == expected
    assert outcome(STDLIB_ONLY.loads, text) == expected
    try:
        as_str = text if isinstance(text, str) else str(text, "utf-8")
    except UnicodeDecodeError:
        assert expected is None
    else:
        assert outcome(_json._decode_without_recursion, as_str) == expected
    # What orjson accepts, we accept with orjson's value: the fast path is never overruled.
    with contextlib.suppress(orjson.JSONDecodeError):
        assert typed_tokens(orjson.loads(text)) == expected


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def text_depth(text: str) -> int:
    """The nesting of valid JSON ``text``, by a tokenizer of its own (duplicate keys count)."""
    depth = deepest = 0
    for token in _STRING_OR_BRACKET.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


@pytest.mark.parametrize(
    "text",
    [
        *['{"a" 1}', "{1:2}", '{"a":1 "b":2}', "[1 2]", "[1,]", '{"a":1,}', "[,1]", '{"a":}'],
        *["[", "{", "[1]x", "[1", '{"a":1', "[tru]", '["\\x"]', '["\x01"]'],
    ],
)
@pytest.mark.parametrize("depth", [0, 1000])  # 1000: past the C scanner, on the stack path
def test_every_path_refuses_malformed_json(text: str, depth: int) -> None:
    text = "[" * depth + text + "]" * depth
    for decode in (_json.loads, _json._stdlib_loads, _json._decode_without_recursion):
        with pytest.raises(ValueError):
            decode(text)


@property_settings(max_examples=200)
@given(st.one_of(json_documents(), nested_texts()))
def test_the_depth_measure_is_exact_for_valid_json(text: str) -> None:
    try:
        _json._decode_without_recursion(text)
    except ValueError:
        return
    assert _json._nesting_depth(text) == text_depth(text)


@pytest.mark.parametrize("decode", [_json.loads, _json._stdlib_loads])
def test_1024_levels_hold_where_the_scanner_could_nest_deeper(
    decode: Callable[[str], Any],
) -> None:
    # With a raised recursion limit (or on CPython 3.12+) the C scanner itself would go past
    # 1024 levels; the depth measure stops it there.
    with recursion_limit(20_000):
        assert _json._scanner_may_nest_too_deeply()
        assert depth_of(decode("[" * 1024 + "]" * 1024)) == 1024
        with pytest.raises(ValueError, match="deeper than 1024"):
            decode("[" * 1025 + "]" * 1025)
        with pytest.raises(ValueError, match="deeper than 1024"):
            decode('["[[[",' * 1025 + '"]]]"' + "]" * 1025)  # brackets in strings don't count


def test_where_the_depth_measure_is_skipped_the_scanner_stops_by_itself() -> None:
    # The premise of _scanner_may_nest_too_deeply on this interpreter: when it says no, the
    # C scanner raises RecursionError before level 1025.
    if _json._scanner_may_nest_too_deeply():
        assert sys.version_info >= (3, 12) or sys.getrecursionlimit() > 1024
        return
    with pytest.raises(RecursionError):
        json.JSONDecoder().decode("[" * 1025 + "]" * 1025)


def test_a_deep_document_with_many_strings_is_measured_exactly() -> None:
    # Escaped quotes and backslashes inside strings must not be taken for structure.
    text = "[" * 1000 + ",".join(['"\\\\"', '"\\""', '"\\\\\\""', '"[{"']) + "]" * 1000
    assert _json._nesting_depth(text) == 1000
    assert _json._nesting_depth('{"a":[1,{"b":"]]]]"}],"c":{}}') == 3
    assert _json._nesting_depth("1") == 0


_surrogate_text = st.text(
    alphabet=st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=8
)
_values_with_surrogates = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _surrogate_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_surrogate_text, children, max_size=4)
    ),
    max_leaves=12,
)


@property_settings(max_examples=300)
@given(_values_with_surrogates)
def test_dumps_always_gives_text_utf8_can_encode_and_loads_reads_it_back(value: Any) -> None:
    text = _json.dumps(value)
    text.encode("utf-8")
    # What JSON (and JavaScript, in UTF-16) reads back: surrogate pairs become one character.
    expected = json.loads(json.dumps(value))
    assert typed_tokens(_json.loads(text)) == typed_tokens(expected)
    assert typed_tokens(STDLIB_ONLY.loads(text)) == typed_tokens(expected)
    # Only surrogates are escaped: every other character is written as it is.
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in plain):
        assert text == plain


def test_big_integers_read_as_javascript_reads_them() -> None:
    for digits in ["18446744073709551616", "123456789012345678901234567890", "9" * 300]:
        assert _json.loads(digits) == float(digits)
        assert math.isfinite(_json.loads(digits))
