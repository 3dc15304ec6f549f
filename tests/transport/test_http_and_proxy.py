"""The polling transport's HTTP layer (h11), proxy selection, cookies, the URL for another
transport, and TLS on polling: against a raw socket server in a thread that answers with
scripted bytes (the broken answers no real server sends), on asyncio and trio.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import anyio
import pytest
import trustme

from tether._url import engine_url
from tether.transport import PollingConnector, TransportError, parse_proxy
from tether.transport._cookies import SessionCookies
from tether.transport._http import Route
from tether.transport._proxy import select_proxy

OPEN = b'0{"sid":"S","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100}'
URL_PATH = "/socket.io/?EIO=4&transport=polling"

Handler = Callable[[socket.socket], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and runs ``handler`` on each, in a thread."""

    def __init__(self, handler: Handler, context: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.context = context
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(65536)
    return head


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    started: list[RawServer] = []

    def start(handler: Handler, context: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, context)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def url(server: RawServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{URL_PATH}"


# --- proxies ------------------------------------------------------------------------------


def test_parse_proxy_keeps_credentials_out_of_sight() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.example:3128")
    assert (proxy.host, proxy.port) == ("proxy.example", 3128)
    assert proxy.authorization == b"Basic dXNAZXI6cDpzcw=="  # us@er:p:ss
    assert proxy.where == "http://proxy.example:3128"
    assert "p:ss" not in repr(proxy)
    assert "us" not in repr(proxy).replace("with credentials", "")
    assert parse_proxy("127.0.0.1:8888").where == "http://127.0.0.1:8888"
    assert parse_proxy("http://[::1]").where == "http://[::1]:80"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("https://user:secret@proxy:443", "only http:// proxies"),
        ("socks5://proxy:1080", "only http:// proxies"),
        ("http://user:secret@proxy:99999", "invalid"),
        ("http://:8080", "no host"),
        ("http://proxy:8080/path", "host:port only"),
    ],
)
def test_parse_proxy_refuses(bad: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as refused:
        parse_proxy(bad)
    assert "secret" not in str(refused.value)


def test_select_proxy_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://plain:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:2")
    monkeypatch.setenv("NO_PROXY", "internal.example,.corp")

    def where(host: str, secure: bool, trust_env: bool = True) -> str | None:
        proxy = select_proxy(host, 443, secure=secure, proxy=None, trust_env=trust_env)
        return None if proxy is None else proxy.where

    assert where("a.example", secure=False) == "http://plain:1"
    assert where("a.example", secure=True) == "http://secure:2"
    assert where("internal.example", secure=True) is None
    assert where("x.corp", secure=False) is None
    assert where("a.example", secure=True, trust_env=False) is None
    explicit = parse_proxy("http://mine:3")
    assert select_proxy("internal.example", 1, secure=True, proxy=explicit, trust_env=True) is (
        explicit
    )
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "http://every:4")
    assert where("a.example", secure=True) == "http://every:4"
    monkeypatch.setenv("ALL_PROXY", "ftp://user:secret@x")
    with pytest.raises(ValueError, match="HTTPS_PROXY from the environment") as bad:
        where("a.example", secure=True)
    assert "secret" not in str(bad.value)


def test_route_targets_and_headers() -> None:
    direct = Route("h", 80, False, "h", "http://h/socket.io/")
    assert direct.target("/socket.io/?EIO=4") == b"/socket.io/?EIO=4"
    assert direct.headers() == [(b"Host", b"h")]
    via = Route("h", 8080, False, "h:8080", "http://h:8080/", parse_proxy("http://u:p@px:1"))
    assert via.target("/x?y") == b"http://h:8080/x?y"
    assert via.headers() == [(b"Host", b"h:8080"), (b"Proxy-Authorization", b"Basic dTpw")]
    tunnelled = Route("h", 443, True, "h", "https://h/", parse_proxy("http://px:1"))
    assert tunnelled.target("/x") == b"/x"
    assert "through the proxy http://px:1" in via.describe(502)
    assert "the proxy http://px:1 answered HTTP 407" in via.describe(407)


# --- cookies and URLs ---------------------------------------------------------------------


def test_session_cookies_follow_rfc6265_scope() -> None:
    jar = SessionCookies()
    assert jar.header("http://a.example/socket.io/") is None
    jar.update(
        "http://a.example/socket.io/?EIO=4",
        [
            (b"Set-Cookie", b"SERVERID=s1; Path=/"),
            (b"set-cookie", b"only-tls=1; Secure; Path=/"),
            (b"Content-Type", b"text/plain"),
        ],
    )
    assert jar.header("ws://a.example/socket.io/?sid=1") == b"SERVERID=s1"
    assert jar.header("wss://a.example/socket.io/") in (
        b"SERVERID=s1; only-tls=1",
        b"only-tls=1; SERVERID=s1",
    )
    assert jar.header("http://b.example/") is None
    assert "SERVERID" not in repr(jar)


def test_engine_url_swaps_the_transport_and_keeps_the_query() -> None:
    ws = "wss://h:8443/socket.io/?EIO=4&transport=websocket&token=a%2Bb+c"
    polling = engine_url(ws, "polling")
    assert polling == "https://h:8443/socket.io/?EIO=4&transport=polling&token=a%2Bb+c"
    assert engine_url(polling, "websocket", sid="x/y") == ws + "&sid=x%2Fy"
    assert engine_url("ws://h/p/?EIO=4&sid=old", "polling", sid="new") == (
        "http://h/p/?EIO=4&transport=polling&sid=new"
    )


# --- HTTP ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_handshake_answer_over_the_size_limit_fails_before_its_body(
    raw_server: Callable[..., RawServer],
) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + OPEN)

    server = raw_server(handler)
    with pytest.raises(TransportError, match="exceeds the size limit"):
        await PollingConnector(trust_env=False, max_poll_size=1000).connect(url(server))


@pytest.mark.anyio
async def test_a_chunked_poll_answer_is_bounded_as_it_arrives(
    raw_server: Callable[..., RawServer],
) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer(OPEN))
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):  # never ends: only the limit can stop it
            conn.sendall(b"400\r\n" + b"4" + b"x" * 1023 + b"\r\n")

    server = raw_server(handler)
    transport = await PollingConnector(trust_env=False, max_poll_size=20_000).connect(url(server))
    try:
        assert await transport.receive() == OPEN.decode()
        with anyio.fail_after(10), pytest.raises(TransportError, match="max_poll_size"):
            await transport.receive()
    finally:
        await transport.aclose()


@pytest.mark.anyio
async def test_keep_alive_and_a_new_connection_when_the_server_closes(
    raw_server: Callable[..., RawServer],
) -> None:
    seen: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        while head := read_request(conn):
            seen.append(head.split(b"\r\n")[0])
            if head.startswith(b"GET") and b"sid=" not in head:
                conn.sendall(answer(OPEN, extra=b"Set-Cookie: pin=1\r\n"))
            elif head.startswith(b"POST"):
                assert b"Cookie: pin=1" in head
                # Connection: close: the client must not reuse this connection.
                conn.sendall(answer(b"ok", extra=b"Connection: close\r\n"))
                return
            else:
                conn.sendall(answer(b'42["a"]\x1e42["b"]'))

    server = raw_server(handler)
    transport = await PollingConnector(trust_env=False).connect(url(server))
    try:
        assert await transport.receive() == OPEN.decode()
        assert await transport.receive() == '42["a"]'
        assert await transport.receive() == '42["b"]'
        await transport.send("40")
        await transport.send('42["x"]')  # a new post connection: the last one said close
    finally:
        await transport.aclose()
    posts = [line for line in seen if line.startswith(b"POST")]
    assert len(posts) == 3  # "40", the event and the CLOSE packet
    assert server.connections == 4  # one poll connection kept alive, three post connections


@pytest.mark.parametrize("keep_alive", [False, True], ids=["closes", "keep-alive"])
@pytest.mark.anyio
async def test_through_a_proxy_a_connection_is_reused_only_when_it_says_keep_alive(
    raw_server: Callable[..., RawServer], keep_alive: bool
) -> None:
    """A proxy that strips ``Connection`` and closes after each answer (tinyproxy) gets a
    new connection for every request; one that says ``keep-alive`` keeps them."""
    seen: list[bytes] = []
    extra = b"Connection: keep-alive\r\n" if keep_alive else b""

    def proxy(conn: socket.socket) -> None:  # answers in absolute form, as a proxy relays
        while head := read_request(conn):
            seen.append(head.split(b"\r\n")[0])
            if head.startswith(b"GET") and b"sid=" not in head:
                conn.sendall(answer(OPEN, extra=extra))
            elif head.startswith(b"POST"):
                conn.sendall(answer(b"ok", extra=extra))
            else:
                conn.sendall(answer(b'42["a"]', extra=extra))
            if not keep_alive:
                return  # and closes, without saying so

    server = raw_server(proxy)
    connector = PollingConnector(proxy=f"http://127.0.0.1:{server.port}", trust_env=False)
    transport = await connector.connect("http://server.example/socket.io/?EIO=4")
    try:
        assert await transport.receive() == OPEN.decode()
        assert await transport.receive() == '42["a"]'
        for packet in ("40", '42["x"]', '42["y"]'):
            await transport.send(packet)
        assert await transport.receive() == '42["a"]'
    finally:
        await transport.aclose()
    assert all(b" http://server.example/socket.io/" in line for line in seen)
    assert len(seen) == 7  # the handshake, two polls, three posts and the CLOSE
    # Kept alive: one poll and one post connection; else one per request.
    assert server.connections == (2 if keep_alive else 7)


@pytest.mark.anyio
async def test_an_answer_that_is_not_http_fails_cleanly(
    raw_server: Callable[..., RawServer],
) -> None:
    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

    server = raw_server(handler)
    with pytest.raises(TransportError, match="invalid HTTP answer"):
        await PollingConnector(trust_env=False).connect(url(server))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.anyio
async def test_polling_over_tls_is_verified(
    raw_server: Callable[..., RawServer], ca: trustme.CA
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer(OPEN))
        read_request(conn)

    server = raw_server(handler, server_context)
    with pytest.raises(TransportError, match=r"TLS handshake with https://127\.0\.0\.1"):
        await PollingConnector(trust_env=False).connect(url(server, "https"))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    transport = await PollingConnector(trust_env=False).connect(
        url(server, "wss"), ssl_context=client_context
    )
    try:
        assert await transport.receive() == OPEN.decode()
        assert transport.name == "polling"
    finally:
        with anyio.CancelScope(shield=True):
            await transport.aclose()
