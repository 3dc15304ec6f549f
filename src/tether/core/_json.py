"""JSON for the wire: one strict language, whichever decoder is installed.

Both Socket.IO reference encoders emit compact JSON (``JSON.stringify`` in socket.io-parser,
``json.dumps(separators=(",", ":"))`` in python-socketio), so we do the same
(socketio-protocol.md §2.2).

Encoding
--------

* **The stdlib** ``json`` **module, never orjson.** orjson silently writes ``NaN`` and
  ``Infinity`` as ``null``, which would change the user's data without telling them. The
  stdlib with ``allow_nan=False`` raises instead; we must not emit ``NaN`` either, because
  Node's ``JSON.parse`` rejects it and the server then closes the whole connection
  (socketio-protocol.md §7, pitfall 14).
* ``ensure_ascii=False``: escaping is valid JSON but inflates byte counts, which matters for
  ``maxPayload`` (§1.6) and for byte-exact golden tests (pitfall 14).
* **Lone surrogates are written as** ``\\uXXXX`` **escapes**, as ``JSON.stringify`` does
  (ECMAScript 2019, "well-formed JSON.stringify"). A Python ``str`` may hold a surrogate code
  point (``"\\ud800"``, ``os.fsdecode`` output, a string a server sent us); UTF-8 cannot
  encode one, so unescaped it would make the transport fail later, far from the call. The
  escape is plain ASCII, Node's ``JSON.parse`` turns it back into the same JavaScript string,
  and python-socketio's ``json.loads`` into the same ``str``. Two surrogates that form a pair
  arrive as the one character they encode, as in JavaScript (UTF-16).
* A value nested too deeply for the encoder raises ``ValueError`` (not ``RecursionError``).

Decoding
--------

One language and one result, with or without orjson (``tether[fast]``); the property tests
in ``tests/core/test_json_differential.py`` hold the two paths to it:

* **RFC 8259 JSON, nothing more**: no ``NaN``/``Infinity`` literals, no number that
  overflows a double (``1e400``), no byte order mark (RFC 8259 §8.1; ``JSON.parse`` refuses
  it too), only RFC whitespace, UTF-8 only for ``bytes``.
* **Lone surrogates are accepted**: ``"\\ud800"`` decodes to a ``str`` holding U+D800, as
  ``JSON.parse`` and ``json.loads`` read it (Node sends exactly that escape for a lone
  surrogate in a JavaScript string). orjson refuses it; we then decode with the stdlib.
* **Integers are exact while they fit in 64 bits** (``-2**63`` to ``2**64 - 1``), **wider
  ones become the nearest** ``float``, as orjson reads them, and as JavaScript reads every
  number. No JavaScript peer can send a wider integer exactly (Node has only doubles), and
  keeping the fast path means taking orjson's reading, which cannot be undone afterwards.
* **At most** :data:`MAX_NESTING_DEPTH` **(1024) levels of arrays and objects**, orjson's
  limit; deeper input is refused. The stdlib path enforces the same limit itself, and
  decodes nesting its C scanner cannot reach on the current stack without recursion.
* **Duplicate keys: the last value wins**, at the key's first position (orjson, the stdlib
  and ``JSON.parse`` agree).

orjson decodes first; the stdlib runs only when orjson refuses a text. What orjson accepts,
the stdlib path accepts with the same value, so the result never depends on which one ran.

``loads`` raises ``ValueError`` (and nothing else) for ``str`` or ``bytes`` input that is
not JSON; callers in the codecs turn that into :class:`~tether.core._errors.DecodeError`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from itertools import accumulate
from typing import Any

__all__ = ["MAX_NESTING_DEPTH", "dumps", "dumps_with_binary", "loads", "loads_fast"]

# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

# One shared encoder: JSONEncoder keeps no per-call state (``iterencode`` builds a fresh C
# encoder with its own circular-reference markers every time), so sharing it is thread-safe
# and saves constructing an encoder on every message.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

_BINARY_TYPES = (bytes, bytearray, memoryview)

# With ensure_ascii=False the encoder copies a str's code points as they are, surrogates
# included; they can only be inside JSON strings, where an escape means the same.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"  # lower-case hex, as JSON.stringify writes it


def _encodable(text: str) -> str:
    """``text`` with every surrogate code point escaped, so that it is valid UTF-8."""
    # isascii() reads a flag; for other text, a trial UTF-8 encoding (which the transport
    # will do anyway) is the quickest search there is.
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, text)
    return text


def _encode(encoder: json.JSONEncoder, value: Any) -> str:
    try:
        return _encodable(encoder.encode(value))
    except RecursionError:
        raise ValueError("value nested too deeply to encode as JSON") from None


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text that UTF-8 can encode.

    Raises ``TypeError`` for values JSON cannot represent (``bytes``, sets, arbitrary
    objects) and ``ValueError`` for ``NaN``/``Infinity``, circular references and nesting
    deeper than the interpreter's recursion limit allows.
    """
    return _encode(_ENCODER, value)


def dumps_with_binary(value: Any) -> tuple[str, list[bytes]]:
    """Encode ``value``, moving every binary value out into a list of attachments.

    Each ``bytes``, ``bytearray`` or ``memoryview`` is replaced by
    ``{"_placeholder":true,"num":N}`` and appended (as ``bytes``) to the returned list, so
    ``attachments[N]`` is the value that placeholder ``N`` stands for. Numbers are assigned
    depth-first in encounter order, lists by index and dicts in insertion order — the walk of
    socket.io-parser's ``deconstructPacket`` (Socket.IO v5 §2.6; socketio-protocol.md §2.6).
    Because the stdlib encoder calls its ``default`` hook exactly in that order, the
    placeholder numbers also appear in ascending order in the text.

    Without binary the list is empty. Raises like :func:`dumps` for anything else that is not
    JSON.
    """
    # Fast path: almost every message has no binary, and the shared encoder handles it
    # without building a new JSONEncoder. Binary values make it raise TypeError, and then we
    # pay for a second, numbering pass.
    try:
        text = _ENCODER.encode(value)
    except TypeError:
        pass
    except RecursionError:
        raise ValueError("value nested too deeply to encode as JSON") from None
    else:
        # _encodable(), its ASCII case inlined.
        return (text if text.isascii() else _encodable(text)), []
    attachments: list[bytes] = []

    def replace_binary(obj: object) -> object:
        if isinstance(obj, _BINARY_TYPES):
            placeholder = {"_placeholder": True, "num": len(attachments)}
            attachments.append(bytes(obj))
            return placeholder
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    encoder = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=replace_binary
    )
    return _encode(encoder, value), attachments


# --------------------------------------------------------------------------------------------
# Decoding: the stdlib, held to the language described above
# --------------------------------------------------------------------------------------------

#: The deepest nesting of arrays and objects ``loads`` accepts: orjson's limit.
MAX_NESTING_DEPTH = 1024

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


def _reject_constant(name: str) -> Any:
    # json.loads accepts the non-standard literals NaN, Infinity and -Infinity by default.
    raise ValueError(f"invalid JSON literal {name}")


def _parse_finite_float(text: str) -> float:
    # json.loads turns 1e400 into inf; orjson (and JSON itself) has no infinity.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _parse_int(digits: str) -> int | float:
    # orjson's reading: exact within 64 bits (signed or unsigned), the nearest double beyond.
    # JSON forbids leading zeros, so 18 characters always fit and 21 or more never do; the
    # length test also keeps int() away from huge digit strings (slow; an error past 4300).
    if len(digits) < 19:
        return int(digits)
    if len(digits) <= 20:
        value = int(digits)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    return _parse_finite_float(digits)


# Shared decoders, as json.loads shares one when called without options (with options it
# builds a decoder and a scanner per call). An integer is read by int() in C, unless the text
# may hold one of 19 digits or more: only then is each integer read by _parse_int, in Python.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_finite_float)
_WIDE_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_finite_float, parse_int=_parse_int
)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _decoder_for(text: str) -> json.JSONDecoder:
    # Bytes translate and search in C: far cheaper than a Python call per integer. Digits in
    # strings or fractions can only make us choose the wide decoder when it is not needed.
    if _NINETEEN_DIGITS in text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO):
        return _WIDE_DECODER
    return _DECODER


_WHITESPACE = re.compile(r"[ \t\n\r]*")  # RFC 8259 §2: the only whitespace there is

_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_DEPTH_STEP = tuple(1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256))


def _nesting_depth(text: str) -> int:
    """How deeply the arrays and objects of ``text`` nest (exact for valid JSON)."""
    # Outside its strings JSON has no backslash, so dropping the escaped backslashes, then the
    # escaped quotes, leaves only the quotes that open and close strings; every other piece
    # of the split is structure.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    structure = "".join(unescaped.split('"')[::2])
    brackets = structure.encode("ascii", "ignore").translate(None, _NOT_A_BRACKET)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _scanner_may_nest_too_deeply() -> bool:
    """Whether the stdlib's C scanner could decode more than MAX_NESTING_DEPTH levels.

    It recurses once per level. Up to CPython 3.11 that counts against the recursion limit
    (1000 unless raised), so it raises RecursionError first; from 3.12 on it counts against a
    separate, higher C limit.
    """
    return (
        sys.implementation.name != "cpython"
        or sys.version_info >= (3, 12)
        or sys.getrecursionlimit() > MAX_NESTING_DEPTH
    )


def _skip_whitespace(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string too
    return match.end()


def _read_key(text: str, pos: int, keys: list[str]) -> int:
    """Read ``"key" :`` at ``pos`` onto ``keys``; return where the value starts."""
    if text[pos : pos + 1] != '"':
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
    key, pos = _WIDE_DECODER.raw_decode(text, pos)  # a string: the scanner reads it whole
    pos = _skip_whitespace(text, pos)
    if text[pos : pos + 1] != ":":
        raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
    keys.append(key)
    return _skip_whitespace(text, pos + 1)


def _decode_without_recursion(text: str) -> Any:
    """Decode like ``_WIDE_DECODER`` with a stack of open containers instead of recursion.

    For the nesting the C scanner cannot reach from the current stack depth (it recurses once
    per level, against the interpreter's recursion limit). Scalars and keys are still read by
    the scanner (``raw_decode``), which does not recurse for them.
    """
    value: Any
    containers: list[Any] = []  # the open arrays and objects, innermost last
    keys: list[str] = []  # for each open object, the key whose value is being read
    pos = _skip_whitespace(text, 0)
    while True:
        # A value starts at pos.
        char = text[pos : pos + 1]
        if char in ("[", "{"):
            if len(containers) == MAX_NESTING_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels")
            pos = _skip_whitespace(text, pos + 1)
            closing = "]" if char == "[" else "}"
            if text[pos : pos + 1] != closing:
                if char == "[":
                    containers.append([])
                else:
                    containers.append({})
                    pos = _read_key(text, pos, keys)
                continue
            value = [] if char == "[" else {}
            pos += 1
        else:
            value, pos = _WIDE_DECODER.raw_decode(text, pos)
        # The value is complete: store it in its container, then read what follows it.
        while containers:
            container = containers[-1]
            is_list = type(container) is list
            if is_list:
                container.append(value)
            else:
                container[keys.pop()] = value
            pos = _skip_whitespace(text, pos)
            char = text[pos : pos + 1]
            if char == ",":
                pos = _skip_whitespace(text, pos + 1)
                if not is_list:
                    pos = _read_key(text, pos, keys)
                break
            if char != ("]" if is_list else "}"):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            value = containers.pop()
            pos += 1
        else:
            if _skip_whitespace(text, pos) != len(text):
                raise json.JSONDecodeError("Extra data", text, pos)
            return value


def _stdlib_loads(text: str | bytes) -> Any:
    """``json.loads`` held to the language described above; raises only ``ValueError``."""
    if not isinstance(text, str):
        # json.loads would sniff UTF-16/32 and skip a BOM in bytes; orjson is UTF-8 only.
        text = str(text, "utf-8")  # UnicodeDecodeError is a ValueError
    # Nesting cannot exceed the number of opening brackets: count them first (fast), and
    # measure the depth only where it could be too deep and the scanner would not notice.
    if (
        text.count("[") + text.count("{") > MAX_NESTING_DEPTH
        and _scanner_may_nest_too_deeply()
        and _nesting_depth(text) > MAX_NESTING_DEPTH
    ):
        raise ValueError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels")
    try:
        return _decoder_for(text).decode(text)
    except RecursionError:
        return _decode_without_recursion(text)


# --------------------------------------------------------------------------------------------
# Decoding: orjson first
# --------------------------------------------------------------------------------------------

#: ``loads(text: str | bytes) -> Any``: decode JSON text, raising only ``ValueError``.
loads: Callable[[str | bytes], Any]
#: ``loads`` without the fallback: the faster decoder alone, for a fast path that sends
#: what it refuses to a general path which calls ``loads`` (so one behaviour either way).
loads_fast: Callable[[str | bytes], Any]
try:
    from orjson import loads as _orjson_loads
except ImportError:
    loads = loads_fast = _stdlib_loads
else:
    loads_fast = _orjson_loads

    def _orjson_first(text: str | bytes) -> Any:
        """Decode JSON ``text`` with orjson, or with the stdlib where orjson refuses it."""
        try:
            return _orjson_loads(text)
        except ValueError:  # orjson.JSONDecodeError subclasses json.JSONDecodeError
            # Lone surrogates, which orjson refuses and JSON allows; anything else the
            # stdlib refuses too, and its ValueError is the answer.
            return _stdlib_loads(text)

    loads = _orjson_first
