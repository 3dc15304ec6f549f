"""Node's ``JSON.parse`` and ``JSON.stringify`` as the oracle for tether's JSON.

A Socket.IO server or client in JavaScript reads our text with ``JSON.parse`` and writes its
own with ``JSON.stringify``. One Node process (the one the integration tests use) answers
for the whole module, over a pipe: each request is a text, each answer what ``JSON.parse``
made of it, written back with ``JSON.stringify``.

Where we differ from ``JSON.parse`` on purpose (``tether.core._json``'s docstring):

* nesting deeper than 1024 levels is refused (V8 goes much deeper);
* a number beyond the range of a double is refused, wherever it is (``JSON.parse`` gives
  ``Infinity``, which ``JSON.stringify`` would send back as ``null``);
* integers that fit in 64 bits are exact (JavaScript rounds them to the nearest double), so
  numbers are compared as doubles.

Everything else must match: what is accepted, and the values.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz.json_texts import json_inputs
from tether.core import _json

from .helpers import property_settings
from .test_json_differential import text_depth

# Reads one JSON-encoded text per line, answers one line: {"ok": true, "value": <the
# JSON.stringify of JSON.parse(text)>} or {"ok": false}. Non-finite numbers are marked (as
# JSON.stringify would turn them into null), so that they can never compare equal.
ORACLE = r"""
const readline = require("readline");
const marked = (key, value) =>
  typeof value === "number" && !Number.isFinite(value) ? { $nonfinite: String(value) } : value;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let reply;
  try {
    reply = { ok: true, value: JSON.stringify(JSON.parse(JSON.parse(line)), marked) };
  } catch (error) {
    reply = { ok: false, error: String(error.message).slice(0, 100) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
"""


class NodeJSON:
    def __init__(self) -> None:
        node = shutil.which("node")
        assert node is not None, "node is not on PATH (.ci/run expects Node 18+)"
        self.process = subprocess.Popen(
            [node, "-e", ORACLE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def parse(self, text: str) -> tuple[bool, Any]:
        """(accepted, the value as JSON.stringify wrote it, read back by json.loads)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        # json.dumps escapes lone surrogates, so any str travels as UTF-8; JSON.parse of the
        # line gives Node back exactly the same code units.
        self.process.stdin.write(json.dumps(text) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        if not reply["ok"]:
            return False, None
        return True, _decode_deep(reply["value"])

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()  # the end of its input ends the script
        self.process.wait(timeout=10)
        self.process.stdout.close()


TOO_DEEP = object()


def _decode_deep(text: str) -> Any:
    # Node's answer may nest 1024 deep, which the non-recursive decoder reads at any stack
    # depth; deeper ones it refuses, and so do we (the test checks that).
    try:
        return _json._decode_without_recursion(text)
    except ValueError:
        return TOO_DEEP


@pytest.fixture(scope="module")
def node_json() -> Iterator[NodeJSON]:
    oracle = NodeJSON()
    yield oracle
    oracle.close()


_STRING_OR_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')


def has_out_of_range_number(text: str) -> bool:
    """Whether a number in ``text`` overflows a double: JSON.parse reads it as Infinity
    (which a duplicate key may then overwrite), we refuse the text."""
    return any(
        token[0] != '"' and math.isinf(float(token)) for token in _STRING_OR_NUMBER.findall(text)
    )


def utf16(text: str) -> str:
    """``text`` as JavaScript holds it: UTF-16 code units, where two surrogates that pair up
    are one character (a str can hold them separately; no UTF-8 frame can)."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def same_as_javascript(ours: Any, theirs: Any) -> bool:
    """Equal as JavaScript sees values: numbers as doubles, strings as UTF-16, objects without
    key order."""
    stack = [(ours, theirs)]
    while stack:
        a, b = stack.pop()
        if type(a) is bool or type(b) is bool or a is None or b is None:
            if not (type(a) is type(b) and a == b):
                return False
        elif type(a) in (int, float):
            if type(b) not in (int, float) or float(a) != float(b):
                return False
        elif type(a) is str:
            if type(b) is not str or utf16(a) != utf16(b):
                return False
        elif type(a) is list:
            if type(b) is not list or len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        else:
            assert type(a) is dict
            if type(b) is not dict:
                return False
            a = {utf16(key): value for key, value in a.items()}
            b = {utf16(key): value for key, value in b.items()}
            if a.keys() != b.keys():
                return False
            stack.extend((a[key], b[key]) for key in a)
    return True


@property_settings(max_examples=400)
@given(json_inputs(allow_bytes=False))
@example('"\\ud800"')
@example('["\ud800","\\udfff\\ud800"]')
@example(str(2**64))
@example("12345678901234567890123")
@example("[1e400]")
@example("1" * 400)
@example("[" * 1024 + "]" * 1024)
@example("[" * 1025 + "]" * 1025)
@example('{"a":1,"2":0,"__proto__":3,"a":4}')
@example("\ufeff[1]")
@example("\xa0[1]")
@example("[NaN]")
@example('{"a":1e400,"a":true}')  # JSON.parse's Infinity is overwritten; we refuse the text
@example("[" * 1023 + "2e308" + "]" * 1023)
def test_we_accept_what_json_parse_accepts_and_read_the_same_values(
    node_json: NodeJSON, text: str | bytes
) -> None:
    same_as_json_parse(node_json, text)


def same_as_json_parse(node_json: NodeJSON, text: str | bytes) -> None:
    assert isinstance(text, str)
    accepted, theirs = node_json.parse(text)
    try:
        ours = _json.loads(text)
    except ValueError:
        # Refused: JSON.parse refused it too, or it is one of our two deliberate limits.
        assert not accepted or text_depth(text) > 1024 or has_out_of_range_number(text)
        return
    assert accepted, "JSON.parse refuses what we accept"
    assert theirs is not TOO_DEEP
    assert same_as_javascript(ours, theirs)


_text_with_surrogates = st.text(
    alphabet=st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=8
)
values_with_surrogates = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text_with_surrogates,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_text_with_surrogates, children, max_size=4)
    ),
    max_leaves=12,
)


@property_settings(max_examples=300)
@given(values_with_surrogates)
@example("\ud800")
@example({"\udc00": ["\ud83d\ude00", "\ud83d", "x\udfff"]})
def test_json_parse_reads_what_we_write(node_json: NodeJSON, value: Any) -> None:
    json_parse_reads_what_we_write(node_json, value)


def json_parse_reads_what_we_write(node_json: NodeJSON, value: Any) -> None:
    text = _json.dumps(value)
    accepted, theirs = node_json.parse(text)
    assert accepted
    # A JavaScript string is UTF-16: a surrogate pair is the character it encodes, a lone
    # surrogate stays itself. The stdlib reads escaped surrogates that way too.
    assert same_as_javascript(json.loads(json.dumps(value)), theirs)
    # And what Node would send back (JSON.stringify escapes lone surrogates), we read back.
    assert same_as_javascript(_json.loads(json.dumps(theirs)), theirs)
