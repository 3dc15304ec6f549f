"""``auth``, ``headers`` and ``query``: what each connection attempt presents.

Each is a dict, or a sync or async callable returning one, evaluated afresh before **every**
attempt so a refreshed token reaches the server on reconnect (``specs/client.md``
"Credentials and secrets"). A plain value is checked once, at construction, and a bad one is
a ``TypeError``/``ValueError`` at the caller's line. A callable that raises or returns
something unusable fails that attempt only, with a message that names the problem but never
quotes the value or the exception's text: either may hold a secret.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tether._url import build_websocket_url, redact_url
from tether.core._json import dumps as json_dumps

__all__ = ["AttemptCredentials", "AuthSource", "Credentials", "CredentialsError", "StrMapSource"]

AuthSource = Mapping[str, Any] | Callable[[], Any] | None
StrMapSource = Mapping[str, str] | Callable[[], Any] | None


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
        static_query = None if callable(query) else _str_map(query, "query", TypeError)
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
        self._headers = headers if callable(headers) else _str_map(headers, "headers", TypeError)

    async def resolve(self) -> AttemptCredentials:
        """Evaluate the sources for one attempt; :class:`CredentialsError` if one fails."""
        auth: Any = self._auth
        if callable(auth):
            auth = _auth_payload(await _call(auth, "auth"), CredentialsError, CredentialsError)
        headers: Any = self._headers
        if callable(headers):
            headers = _str_map(await _call(headers, "headers"), "headers", CredentialsError)
        url = self._static_url
        if url is None:
            query = _str_map(await _call(self._query, "query"), "query", CredentialsError)
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


def _auth_payload(
    value: Any, type_error: type[Exception], value_error: type[Exception]
) -> dict[str, Any] | None:
    """The auth payload as the CONNECT packet carries it: a JSON object (Socket.IO v5 §2.4)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise type_error(f"auth must be a dict or None, got {type(value).__name__}")
    payload = dict(value)
    try:
        json_dumps(payload)
    except (TypeError, ValueError) as exc:
        # Name the problem, not the value: auth holds secrets.
        raise value_error(
            f"auth must be JSON (no NaN, bytes or objects): {type(exc).__name__}"
        ) from None
    return payload


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
