"""build_websocket_url and redact_url: the Engine.IO v4 URL shape, and what is refused."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether._url import build_websocket_url, redact_url

BASE = "EIO=4&transport=websocket"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com", f"ws://example.com/socket.io/?{BASE}"),
        ("https://example.com", f"wss://example.com/socket.io/?{BASE}"),
        ("ws://example.com/", f"ws://example.com/socket.io/?{BASE}"),
        ("wss://example.com", f"wss://example.com/socket.io/?{BASE}"),
        ("HTTPS://Example.COM", f"wss://example.com/socket.io/?{BASE}"),
        ("http://localhost:3000", f"ws://localhost:3000/socket.io/?{BASE}"),
        ("https://example.com:443/", f"wss://example.com:443/socket.io/?{BASE}"),
        ("http://127.0.0.1:8080", f"ws://127.0.0.1:8080/socket.io/?{BASE}"),
        ("http://[::1]:8080", f"ws://[::1]:8080/socket.io/?{BASE}"),
        ("https://[2001:db8::1]", f"wss://[2001:db8::1]/socket.io/?{BASE}"),
        ("  https://example.com  ", f"wss://example.com/socket.io/?{BASE}"),
        ("https://bücher.example", f"wss://bücher.example/socket.io/?{BASE}"),
    ],
)
def test_schemes_hosts_and_ports(url: str, expected: str) -> None:
    assert build_websocket_url(url) == expected


@pytest.mark.parametrize(
    ("path", "expected_path"),
    [
        ("/socket.io/", "/socket.io/"),
        ("/socket.io", "/socket.io/"),  # trailing slash added, as socket.io-client does
        ("socket.io", "/socket.io/"),  # python-socketio style, both slashes added
        ("/custom/rt", "/custom/rt/"),
        ("/engine.io/", "/engine.io/"),
        ("/my app/io/", "/my%20app/io/"),
        ("/a%20b/", "/a%20b/"),  # already encoded stays as is
        ("/", "/"),
    ],
)
def test_path_option(path: str, expected_path: str) -> None:
    built = build_websocket_url("https://example.com", path=path)
    assert built == f"wss://example.com{expected_path}?{BASE}"


def test_user_query_is_appended_and_encoded() -> None:
    built = build_websocket_url(
        "https://example.com", query={"token": "a b&c=d/é", "room": "x+y", "empty": ""}
    )
    assert built.startswith(f"wss://example.com/socket.io/?{BASE}&")
    assert " " not in built
    assert parse_qsl(urlsplit(built).query, keep_blank_values=True) == [
        ("EIO", "4"),
        ("transport", "websocket"),
        ("token", "a b&c=d/é"),
        ("room", "x+y"),
        ("empty", ""),
    ]


def test_url_query_is_kept_and_the_option_wins() -> None:
    built = build_websocket_url("https://example.com/?a=1&b=2", query={"b": "3", "c": "4"})
    assert parse_qsl(urlsplit(built).query) == [
        ("EIO", "4"),
        ("transport", "websocket"),
        ("a", "1"),
        ("b", "3"),
        ("c", "4"),
    ]


@pytest.mark.parametrize("key", ["EIO", "transport"])
def test_reserved_keys_refused_in_query_option(key: str) -> None:
    with pytest.raises(ValueError, match="set by tether"):
        build_websocket_url("https://example.com", query={key: "3"})


@pytest.mark.parametrize("key", ["EIO", "transport"])
def test_reserved_keys_refused_in_url_query(key: str) -> None:
    with pytest.raises(ValueError, match="set by tether"):
        build_websocket_url(f"https://example.com/?{key}=3")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://example.com", "unsupported URL scheme"),
        ("example.com", "unsupported URL scheme"),
        ("//example.com", "no scheme"),
        ("http://", "has no host"),
        ("http:///socket.io/", "has no host"),
        ("http://example.com:0", "invalid port"),
        ("http://example.com:65536", "invalid port"),
        ("http://example.com:abc", "invalid port"),
        ("http://[::1", "invalid URL"),
        ("http://exa mple.com", "invalid host"),
        ("http://a..b", "invalid host name"),
        ("http://" + "x" * 64 + ".com", "invalid host name"),  # DNS labels are <= 63
        ("https://example.com/chat", "path='/chat'"),
        ("https://example.com/socket.io/", "path="),
        ("https://user:pw@example.com", "credentials"),
        ("https://user@example.com", "credentials"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com#", "fragment"),
    ],
)
def test_bad_urls_are_value_errors(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_websocket_url(url)


def test_error_messages_never_repeat_secrets() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        build_websocket_url("https://user:hunter2@example.com/?token=SECRET")
    assert "hunter2" not in str(info.value)
    assert "SECRET" not in str(info.value)
    with pytest.raises(ValueError, match="scheme") as info:
        build_websocket_url("ftp://example.com/?token=SECRET")
    assert "SECRET" not in str(info.value)
    with pytest.raises(ValueError, match="path") as info:
        build_websocket_url("https://example.com/x?token=SECRET")
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("path", ["/socket.io/?x=1", "/socket.io/#x"])
def test_path_cannot_carry_query_or_fragment(path: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        build_websocket_url("https://example.com", path=path)


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="url must be a str"):
        build_websocket_url(b"https://example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be a str"):
        build_websocket_url("https://example.com", path=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query values must be str"):
        build_websocket_url("https://example.com", query={"v": 2})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="query keys must be str"):
        build_websocket_url("https://example.com", query={2: "v"})  # type: ignore[dict-item]


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in ("EIO", "transport")),
        st.text(),
        max_size=5,
    )
)
def test_any_text_query_round_trips(query: dict[str, str]) -> None:
    built = build_websocket_url("https://example.com", query=query)
    parts = urlsplit(built)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "example.com", "/socket.io/")
    assert not parts.fragment
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert pairs[:2] == [("EIO", "4"), ("transport", "websocket")]
    assert dict(pairs[2:]) == query


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("wss://example.com/socket.io/?EIO=4&token=SECRET", "wss://example.com/socket.io/"),
        ("https://user:pw@example.com:8443/x?y#z", "https://example.com:8443/x"),
        ("ws://[::1]:80/", "ws://[::1]:80/"),
        ("http://example.com:99999/", "http://example.com:99999/"),
        ("not a url", "<invalid URL>"),
        ("http://[::1", "<invalid URL>"),
        ("", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_raises_on_non_strings() -> None:
    assert redact_url(None) == "<invalid URL>"  # type: ignore[arg-type]
