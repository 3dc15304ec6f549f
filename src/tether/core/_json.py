"""JSON for the wire: strict, compact encoding and a fast decoder.

Both Socket.IO reference encoders emit compact JSON (``JSON.stringify`` in socket.io-parser,
``json.dumps(separators=(",", ":"))`` in python-socketio), so we do the same
(socketio-protocol.md §2.2). Three decisions are worth explaining:

* **Encoding uses the stdlib** ``json`` **module, never orjson.** orjson silently writes
  ``NaN`` and ``Infinity`` as ``null``, which would change the user's data without telling
  them. The stdlib with ``allow_nan=False`` raises instead; we must not emit ``NaN`` either,
  because Node's ``JSON.parse`` rejects it and the server then closes the whole connection
  (socketio-protocol.md §7, pitfall 14).
* ``ensure_ascii=False``: escaping is valid JSON but inflates byte counts, which matters for
  ``maxPayload`` (§1.6) and for byte-exact golden tests (pitfall 14).
* **Decoding prefers orjson** when it is installed (``tether[fast]``): it is several times
  faster than ``json.loads`` on the receive path. Without it we use ``json.loads`` with the
  same strictness orjson has (no ``NaN``/``Infinity`` literals, no out-of-range floats,
  UTF-8 only), so that the accepted language is the same whichever library is present.

One difference remains between the two decoders and is left alone: an integer wider than 64
bits decodes as a ``float`` under orjson (as in JavaScript) and as an exact ``int`` under the
stdlib.

``loads`` raises ``ValueError`` (and nothing else) for input that is not JSON; callers in the
codecs turn that into :class:`~tether.core._errors.DecodeError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "dumps_with_binary", "loads"]

# One shared encoder: JSONEncoder keeps no per-call state (``iterencode`` builds a fresh C
# encoder with its own circular-reference markers every time), so sharing it is thread-safe
# and saves constructing an encoder on every message.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

_BINARY_TYPES = (bytes, bytearray, memoryview)


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text.

    Raises ``TypeError`` for values JSON cannot represent (``bytes``, sets, arbitrary
    objects) and ``ValueError`` for ``NaN``/``Infinity`` and circular references.
    """
    return _ENCODER.encode(value)


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
    # without building a new JSONEncoder (about 0.6 µs saved per call). Binary values make it
    # raise TypeError, and then we pay for a second, numbering pass.
    try:
        return _ENCODER.encode(value), []
    except TypeError:
        pass
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
    return encoder.encode(value), attachments


def _reject_constant(name: str) -> Any:
    # json.loads accepts the non-standard literals NaN, Infinity and -Infinity by default.
    raise ValueError(f"invalid JSON literal {name}")


def _parse_finite_float(text: str) -> float:
    # json.loads turns 1e400 into inf; orjson (and JSON itself) has no infinity.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _stdlib_loads(text: str | bytes) -> Any:
    """``json.loads`` restricted to what orjson accepts; raises only ``ValueError``."""
    if not isinstance(text, str):
        # json.loads would sniff UTF-16/32 and allow surrogates in bytes; orjson is UTF-8 only.
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_parse_finite_float)
    except RecursionError as exc:
        # Deep nesting exhausts the stack in the pure-Python scanner; orjson stops at 1024.
        raise ValueError("JSON nested too deeply") from exc


#: ``loads(text: str | bytes) -> Any``: decode JSON text, raising only ``ValueError``.
#: It is bound directly to ``orjson.loads`` when available (no wrapper call on the hot path;
#: ``orjson.JSONDecodeError`` subclasses ``json.JSONDecodeError``, hence ``ValueError``).
loads: Callable[[str | bytes], Any]
try:
    from orjson import loads as _orjson_loads
except ImportError:
    loads = _stdlib_loads
else:
    loads = _orjson_loads
