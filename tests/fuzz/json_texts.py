"""Hypothesis strategies for JSON texts, valid or nearly so, aimed at where decoders differ.

The texts are written character by character, not produced by an encoder, so that they hold
what encoders never write: lone surrogates (escaped, and raw where the text stays a ``str``),
integers beyond 64 bits, huge exponents, ``NaN``/``Infinity`` literals, duplicate keys, every
kind of whitespace (RFC 8259's four and a few that are not), nesting around the 1024-level
limit, a byte order mark, and bytes that are not UTF-8.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["EDGE_INTEGERS", "json_documents", "json_inputs", "nested_texts", "typed_tokens"]

#: Where 64-bit and double readings of an integer part ways.
EDGE_INTEGERS = (
    0,
    2**53 - 1,
    2**53,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    -(2**64),
    10**20,
    10**308,
    10**309,
)

_whitespace = st.text(alphabet=" \t\n\r", max_size=2)
_odd_whitespace = st.sampled_from(["\x0b", "\x0c", "\xa0", "\u2028", "\ufeff", "\x00"])

_high = st.integers(0xD800, 0xDBFF)
_low = st.integers(0xDC00, 0xDFFF)
_hex4 = st.sampled_from(["{:04x}", "{:04X}"])


@st.composite
def _unicode_escape(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["bmp", "high", "low", "pair", "reversed"]))
    if kind == "bmp":
        units = [draw(st.integers(0, 0xFFFF))]
    elif kind == "high":
        units = [draw(_high)]
    elif kind == "low":
        units = [draw(_low)]
    elif kind == "pair":
        units = [draw(_high), draw(_low)]
    else:
        units = [draw(_low), draw(_high)]
    return "".join("\\u" + draw(_hex4).format(unit) for unit in units)


_plain_char = st.characters(exclude_characters='"\\', min_codepoint=0x20)
_control_char = st.characters(max_codepoint=0x1F)
_raw_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
_short_escape = st.sampled_from(['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
_bad_escape = st.sampled_from(["\\x41", "\\u12", "\\U0001f600", "\\", "\\a", "\\u{41}"])


@st.composite
def _string(draw: st.DrawFn, raw_surrogates: bool) -> str:
    pieces = [_plain_char, _plain_char, _short_escape, _unicode_escape()]
    if raw_surrogates:
        pieces.append(_raw_surrogate)
    body = draw(st.lists(st.one_of(pieces), max_size=6))
    if draw(st.integers(0, 30)) == 0:
        body.append(draw(_control_char | _bad_escape))
    return '"' + "".join(body) + '"'


@st.composite
def _number(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["small", "edge", "integer", "fraction", "exponent"]))
    if kind == "small":
        return str(draw(st.integers(-1000, 1000)))
    if kind == "edge":
        return str(draw(st.sampled_from(EDGE_INTEGERS)) + draw(st.integers(-1, 1)))
    sign = draw(st.sampled_from(["", "-"]))
    integer = draw(st.sampled_from("0123456789"))
    if integer != "0":
        integer += draw(st.text("0123456789", max_size=30))
    if kind == "integer":
        return sign + integer
    fraction = "." + draw(st.text("0123456789", min_size=1, max_size=20))
    if kind == "fraction":
        return sign + integer + fraction
    exponent = draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+", "-"]))
    exponent += str(draw(st.sampled_from([0, 1, 22, 307, 308, 309, 324, 400, 10000])))
    return sign + integer + draw(st.sampled_from(["", fraction])) + exponent


_literal = st.sampled_from(["true", "false", "null"])
_bad_literal = st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "True", "undefined"])
_key_names = st.sampled_from(['"a"', '"b"', '"a"', '"__proto__"', '"0"', '""'])


@st.composite
def json_documents(draw: st.DrawFn, *, raw_surrogates: bool = True, max_leaves: int = 12) -> str:
    """One JSON text, valid most of the time (a bad literal or a bad escape now and then)."""

    def ws() -> str:
        if draw(st.integers(0, 40)) == 0:
            return draw(_odd_whitespace)
        return draw(_whitespace)

    leaves = st.one_of(_string(raw_surrogates), _number(), _literal)
    budget = [max_leaves]

    def value(depth: int) -> str:
        budget[0] -= 1
        choice = draw(st.integers(0, 9)) if depth < 6 and budget[0] > 0 else 0
        if choice <= 5:
            if draw(st.integers(0, 60)) == 0:
                return draw(_bad_literal)
            return draw(leaves)
        if choice <= 7:
            items = [ws() + value(depth + 1) + ws() for _ in range(draw(st.integers(0, 3)))]
            return "[" + ",".join(items) + "]" if items else "[" + ws() + "]"
        members = [
            ws() + draw(_key_names | _string(raw_surrogates)) + ws() + ":" + ws() + value(depth + 1)
            for _ in range(draw(st.integers(0, 3)))
        ]
        return "{" + ",".join(members) + "}" if members else "{" + ws() + "}"

    return ws() + value(0) + ws()


@st.composite
def nested_texts(draw: st.DrawFn, levels: tuple[int, int] = (1010, 1030)) -> str:
    """A small document inside 1010 to 1030 ``levels`` of arrays and objects (the limit is
    1024)."""
    depth = draw(st.integers(*levels))
    # A short pattern of arrays (True) and objects, repeated: drawing a thousand choices
    # would make every example slow and find nothing more.
    pattern = draw(st.lists(st.booleans(), min_size=1, max_size=5))
    kinds = (pattern * depth)[:depth]
    inner = draw(json_documents(max_leaves=3))
    opening = "".join("[" if is_array else '{"k":' for is_array in kinds)
    closing = "".join("]" if is_array else "}" for is_array in reversed(kinds))
    return opening + inner + closing


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(chars)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        new = draw(st.sampled_from(list('[]{}",:\\0-eE. \ufeff\ud800')) | st.characters())
        if edit == "insert":
            chars.insert(where, new)
        elif edit == "delete" and where < len(chars):
            del chars[where]
        elif edit == "replace" and where < len(chars):
            chars[where] = new
        elif edit == "truncate":
            del chars[where:]
    return "".join(chars)


@st.composite
def json_inputs(draw: st.DrawFn, *, allow_bytes: bool = True) -> str | bytes:
    """What a decoder may be handed: a document, a deep one, a mutated one; str or bytes."""
    text = draw(
        st.one_of(
            json_documents(),
            json_documents(),
            json_documents(raw_surrogates=False),
            nested_texts(),
        )
    )
    if draw(st.integers(0, 4)) == 0:
        text = draw(_mutated(text))
    if draw(st.integers(0, 20)) == 0:
        text = "\ufeff" + text
    if not allow_bytes or draw(st.booleans()):
        return text
    # surrogatepass writes a raw surrogate as three bytes that are not UTF-8.
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 10)) == 0:
        where = draw(st.integers(0, len(data)))
        data = (
            data[:where] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[where:]
        )
    return data


def typed_tokens(value: Any) -> list[tuple[str, object]]:
    """``value`` as a flat list of typed tokens (iterative: values may nest 1024 deep).

    Tokens keep what ``==`` would blur: ``True`` vs ``1`` vs ``1.0``, ``-0.0`` vs ``0.0``,
    and the order of keys.
    """
    tokens: list[tuple[str, object]] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is tuple:  # a key marker pushed below
            tokens.append(item)
        elif kind is list:
            tokens.append(("list", len(item)))
            stack.extend(reversed(item))
        elif kind is dict:
            tokens.append(("dict", len(item)))
            for key, member in reversed(item.items()):
                stack.append(member)
                stack.append(("key", key))
        elif kind is float:
            tokens.append(("float", item.hex()))
        else:
            tokens.append((kind.__name__, item))
    return tokens
