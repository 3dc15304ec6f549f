"""``auth``, ``headers`` and ``query``: checked at the call site when static, per attempt when
callables (specs/client.md "Credentials and secrets").

What reaches the server is exercised against Node in
``tests/integration/test_client_bad_input.py``; here the checks themselves, without a peer.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import tether
from tether._driver._credentials import Credentials, CredentialsError

pytestmark = pytest.mark.anyio

URL = "http://rt.example"
SECRET = "hunter2-secret"


def credentials(**sources: Any) -> Credentials:
    return Credentials(
        URL, "/socket.io/", sources.get("auth"), sources.get("headers"), sources.get("query")
    )


def deeply_nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


NOT_JSON = [
    pytest.param({"exp": datetime.datetime.now(), "token": SECRET}, TypeError, id="datetime"),
    pytest.param({"id": uuid.uuid4(), "token": SECRET}, TypeError, id="uuid"),
    pytest.param({"raw": SECRET.encode()}, TypeError, id="bytes"),
    pytest.param({"n": math.nan, "token": SECRET}, ValueError, id="nan"),
    pytest.param({"n": math.inf}, ValueError, id="infinity"),
    pytest.param({"tags": {SECRET}}, TypeError, id="set"),
    pytest.param({"deep": deeply_nested(100_000)}, ValueError, id="nested-too-deeply"),
]


@pytest.mark.parametrize(("auth", "error"), NOT_JSON)
def test_static_auth_that_is_not_json_raises_at_construction(
    auth: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match="auth is not JSON") as info:
        tether.RealtimeClient(URL, auth=auth)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_cyclic_auth_raises_at_construction() -> None:
    auth: dict[str, Any] = {"token": SECRET}
    auth["self"] = auth
    with pytest.raises(ValueError, match="auth is not JSON"):
        tether.RealtimeClient(URL, auth=auth)


async def test_static_auth_is_a_snapshot_of_what_was_checked() -> None:
    tags: list[Any] = ["a"]
    auth = {"token": SECRET, "tags": tags, "big": 2**70}
    source = credentials(auth=auth)
    tags.append(datetime.datetime.now())  # after the check: must not reach the CONNECT
    auth["token"] = "changed"
    resolved = await source.resolve()
    assert resolved.auth == {"token": SECRET, "tags": ["a"], "big": 2**70}
    assert type(resolved.auth["big"]) is int  # exact, not a float


@pytest.mark.parametrize(("auth", "error"), NOT_JSON)
async def test_an_auth_callable_giving_non_json_fails_the_attempt(
    auth: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(CredentialsError, match="auth is not JSON") as info:
        await credentials(auth=lambda: auth).resolve()
    assert SECRET not in str(info.value)


async def test_an_async_auth_callable_is_checked_and_copied() -> None:
    tags: list[Any] = ["a"]

    async def auth() -> dict[str, Any]:
        return {"tags": tags}

    resolved = await credentials(auth=auth).resolve()
    tags.append(b"later")
    assert resolved.auth == {"tags": ["a"]}


class BrokenMapping(Mapping[str, Any]):
    """A mapping whose iteration fails: what a callable might hand back."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError(SECRET)

    def __len__(self) -> int:
        return 1


@pytest.mark.parametrize("name", ["auth", "headers", "query"])
async def test_a_callable_giving_a_broken_mapping_fails_only_the_attempt(name: str) -> None:
    with pytest.raises(CredentialsError, match=f"the {name} callable gave an unusable value"):
        await credentials(**{name: lambda: BrokenMapping()}).resolve()


@pytest.mark.parametrize("name", ["auth", "headers", "query"])
async def test_a_callable_that_raises_fails_the_attempt_without_its_text(name: str) -> None:
    def source() -> Any:
        raise RuntimeError(SECRET)

    with pytest.raises(CredentialsError, match=f"the {name} callable raised RuntimeError") as info:
        await credentials(**{name: source}).resolve()
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({"Host": "evil"}, ValueError, "set by the WebSocket handshake"),
        ({"X-Token": f"{SECRET}\r\nX-Injected: 1"}, ValueError, "control characters"),
        ({"X-Token": f"{SECRET}\u20ac"}, ValueError, "outside Latin-1"),
        ({"bad name": SECRET}, ValueError, "invalid header name"),
        ({"X-Token": [SECRET]}, TypeError, "headers must map str to str"),
    ],
)
def test_static_headers_the_handshake_cannot_send_raise_at_construction(
    headers: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        tether.RealtimeClient(URL, headers=headers)
    assert SECRET not in str(info.value)


async def test_a_headers_callable_giving_a_bad_header_fails_the_attempt() -> None:
    with pytest.raises(CredentialsError, match="control characters") as info:
        await credentials(headers=lambda: {"X-Token": f"{SECRET}\n"}).resolve()
    assert SECRET not in str(info.value)


async def test_good_sources_resolve_every_time() -> None:
    tokens = iter(["one", "two"])
    source = credentials(
        auth=lambda: {"token": next(tokens)},
        headers={"X-Client": "tether", "X-Version": 2},
        query=lambda: {"room": "lobby"},
    )
    first = await source.resolve()
    second = await source.resolve()
    assert (first.auth, second.auth) == ({"token": "one"}, {"token": "two"})
    assert first.headers == [("X-Client", "tether"), ("X-Version", "2")]
    assert first.url.endswith("&room=lobby")
