"""``auth``, ``headers`` and ``query``: what each connection attempt presents.

Each is a dict, or a sync or async callable returning one, evaluated afresh before **every**
attempt so a refreshed token reaches the server on reconnect (``specs/client.md``
"Credentials and secrets"). A plain value is checked once, at construction, and a bad one is
a ``TypeError``/``ValueError`` at the caller's line. A callable that raises or returns
something unusable fails that attempt only, with a message that names the problem but never
quotes the value or the exception's text: either may hold a secret.

The auth payload is checked by encoding it, and what is kept is a copy decoded from that
encoding: the CONNECT packet (Socket.IO v5 §2.4) carries exactly what was checked, even if
the caller later changes a list or dict nested in the value it gave.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tether._url import build_websocket_url, redact_url
from tether.core._json import dumps as json_dumps
from tether.transport import encode_headers

__all__ = ["AttemptCredentials", "AuthSource", "Credentials", "CredentialsError", "StrMapSource"]

AuthSource = Mapping[str, Any] | Callable[[], Any] | None
StrMapSource = Mapping[str, str] | Callable[[], Any] | None


#: A checker: ``check(value, type_error, value_error)`` raises those for a bad value.
_Check = Callable[[Any, type[Exception], type[Exception]], Any]


class CredentialsError(Exception):
    """A callable gave nothing usable for this attempt; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class AttemptCredentials:
    """What one attempt presents: the URL (with the query), the extra headers, the auth."""

    url: str
    headers: list[tuple[str, str]]
    auth: dict[str, Any] | None


class Credentials:
    """The client's ``auth``/``headers``/``query`` sources and the URL they complete."""

    __slots__ = ("_auth", "_headers", "_path", "_query", "_static_url", "_url", "where")

    def __init__(
        self, url: str, path: str, auth: AuthSource, headers: StrMapSource, query: StrMapSource
    ) -> None:
        static_query = None if callable(query) else _query(query, TypeError, ValueError)
        # Validates the URL and the path, at the caller's line.
        ws_url = build_websocket_url(url, path=path, query=static_query)
        self._url = url
        self._path = path
        #: The server for log lines: scheme, host, port and path, never a query or userinfo.
        self.where = redact_url(url)
        # Without a query callable the URL is the same for every attempt: built once.
        self._static_url = None if callable(query) else ws_url
        self._query = query
        self._auth = auth if callable(auth) else _auth_payload(auth, TypeError, ValueError)
        self._headers = headers if callable(headers) else _headers(headers, TypeError, ValueError)

    async def resolve(self) -> AttemptCredentials:
        """Evaluate the sources for one attempt; :class:`CredentialsError` if one fails."""
        auth: Any = self._auth
        if callable(auth):
            auth = _checked(_auth_payload, await _call(auth, "auth"), "auth")
        headers: Any = self._headers
        if callable(headers):
            headers = _checked(_headers, await _call(headers, "headers"), "headers")
        url = self._static_url
        if url is None:
            query = _checked(_query, await _call(self._query, "query"), "query")
            try:
                url = build_websocket_url(self._url, path=self._path, query=query)
            except (TypeError, ValueError):
                raise CredentialsError("the query callable gave an unusable query") from None
        return AttemptCredentials(url, list((headers or {}).items()), auth)


async def _call(source: Any, name: str) -> Any:
    try:
        value = source()
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        # Its text may quote a secret: only the type is shown.
        raise CredentialsError(f"the {name} callable raised {type(exc).__name__}") from None
    return value


def _checked(check: _Check, value: Any, name: str) -> Any:
    """``check(value, CredentialsError, CredentialsError)`` for what a callable gave: any
    failure fails the attempt, even one of a strange mapping's own ``items()``."""
    try:
        return check(value, CredentialsError, CredentialsError)
    except CredentialsError:
        raise
    except Exception as exc:
        raise CredentialsError(
            f"the {name} callable gave an unusable value ({type(exc).__name__})"
        ) from None


def _auth_payload(
    value: Any, type_error: type[Exception], value_error: type[Exception]
) -> dict[str, Any] | None:
    """The auth payload as the CONNECT packet carries it: a JSON object (Socket.IO v5 §2.4),
    as a copy of its own (the module docstring)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise type_error(f"auth must be a dict or None, got {type(value).__name__}")
    try:
        text = json_dumps(dict(value))
    except (TypeError, ValueError, RecursionError) as exc:
        # Name the problem, not the value: auth holds secrets. TypeError: bytes, a datetime,
        # any object; ValueError: NaN, infinity, a cycle; RecursionError: nested too deeply.
        error = type_error if isinstance(exc, TypeError) else value_error
        raise error(
            f"auth is not JSON ({type(exc).__name__}): only dicts, lists, str, finite "
            "numbers, bools and None can be sent"
        ) from None
    try:
        # The stdlib decoder, not orjson: it keeps integers wider than 64 bits exact.
        payload: dict[str, Any] = json.loads(text)
    except RecursionError:
        # Only at the very edge of the recursion limit, which the encoder just missed.
        raise value_error("auth must be JSON: nested too deeply") from None
    return payload


def _headers(
    value: Any, type_error: type[Exception], value_error: type[Exception]
) -> dict[str, str] | None:
    """Extra handshake headers, checked as the transports will send them (RFC 9110 5.5)."""
    headers = _str_map(value, "headers", type_error)
    if headers:
        try:
            encode_headers(headers.items())
        except TypeError as exc:
            raise type_error(str(exc)) from None
        except ValueError as exc:
            # encode_headers names the header, never its value.
            raise value_error(str(exc)) from None
    return headers


def _query(
    value: Any, type_error: type[Exception], value_error: type[Exception]
) -> dict[str, str] | None:
    return _str_map(value, "query", type_error)


def _str_map(value: Any, name: str, error: type[Exception]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise error(f"{name} must be a dict of str to str, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int, float)):
            raise error(f"{name} must map str to str")
        result[key] = str(item)
    return result
