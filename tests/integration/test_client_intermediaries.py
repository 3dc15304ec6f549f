"""The client through real intermediaries, on asyncio and trio: tinyproxy (``proxy=`` and
the proxy variables of the environment, with and without Basic auth, refusing, going away
and coming back), nginx without the ``Upgrade`` lines in front of a server (WebSocket
cannot pass: the client falls back to polling and reconnects through it after a server
restart), nginx with TLS (for ``HTTPS_PROXY``), and HAProxy pinning sessions to one of two
Node servers by cookie (the client connects and upgrades because it sends the cookie back;
a reconnect starts with an empty jar).

Credentials are secrets: no log line at any level, no error and no repr may show them.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import trustme

import tether
from servers.handles import ServerFactory, ServerKind, SocketIOServer
from servers.proxies import HAProxyPinned, NginxTLS, NginxWithoutUpgrade, TinyProxy

from .support import Recorder, until

pytestmark = pytest.mark.anyio

USER, SECRET = "tether-user", "s3cret-pw"
FAST: dict[str, Any] = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def factory() -> Iterator[ServerFactory]:
    with ServerFactory().scope() as servers:
        yield servers


@pytest.fixture(scope="module")
def node(factory: ServerFactory) -> SocketIOServer:
    return factory("node")


@pytest.fixture(scope="module")
def proxy() -> Iterator[TinyProxy]:
    with TinyProxy() as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[TinyProxy]:
    with TinyProxy(credentials=(USER, SECRET)) as running:
        yield running


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine (upper or lower case) reaches the test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def with_credentials(proxy: TinyProxy, password: str = SECRET) -> str:
    return f"http://{USER}:{password}@127.0.0.1:{proxy.port}"


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)
        assert USER not in str(text)


def transport_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tether.transport"]


# ------------------------------------------------------------------------------ tinyproxy


@pytest.mark.parametrize("transports", [("websocket", "polling"), ("polling",)], ids="+".join)
@pytest.mark.parametrize("credentials", [False, True], ids=["open", "basic-auth"])
async def test_through_tinyproxy_with_the_proxy_option(
    node: SocketIOServer,
    proxy: TinyProxy,
    auth_proxy: TinyProxy,
    environment: pytest.MonkeyPatch,
    everything_logged: pytest.LogCaptureFixture,
    transports: tuple[str, ...],
    credentials: bool,
) -> None:
    used = auth_proxy if credentials else proxy
    proxy_url = with_credentials(used) if credentials else used.url
    before = len(used.requests())
    async with tether.RealtimeClient(node.url, proxy=proxy_url, transports=transports) as rt:
        await rt.wait_connected(10)
        assert await rt.call("ack", "through") == "through"
        assert rt.transport_name == transports[0]
        assert_no_secret(repr(rt))
    seen = used.requests()[before:]
    if transports[0] == "websocket":
        assert f"CONNECT 127.0.0.1:{node.port} HTTP/1.1" in seen  # RFC 9110 9.3.6
    else:
        assert any(f"POST http://127.0.0.1:{node.port}/socket.io/" in line for line in seen)
    assert_no_secret(everything_logged.text)


async def test_the_proxy_variables_of_the_environment(
    node: SocketIOServer,
    proxy: TinyProxy,
    auth_proxy: TinyProxy,
    environment: pytest.MonkeyPatch,
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    """``HTTP_PROXY`` serves an ``http`` server (trust_env, the default), ``NO_PROXY`` and
    ``trust_env=False`` bypass it; the ``HTTPS_PROXY`` case is the TLS test below."""
    environment.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # for https only: never used here
    environment.setenv("HTTP_PROXY", with_credentials(auth_proxy))
    before = len(auth_proxy.requests())
    async with tether.RealtimeClient(node.url) as rt:
        await rt.wait_connected(10)
        assert rt.transport_name == "websocket"
    assert f"CONNECT 127.0.0.1:{node.port} HTTP/1.1" in auth_proxy.requests()[before:]
    # Straight to the server: the proxy sees nothing more.
    before = len(auth_proxy.requests())
    async with tether.RealtimeClient(node.url, trust_env=False) as rt:
        await rt.wait_connected(10)
    environment.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with tether.RealtimeClient(node.url) as rt:
        await rt.wait_connected(10)
    assert auth_proxy.requests()[before:] == []
    assert_no_secret(everything_logged.text)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_node(node: SocketIOServer, ca: trustme.CA) -> Iterator[NginxTLS]:
    certificate = ca.issue_cert("127.0.0.1")
    with NginxTLS(
        f"127.0.0.1:{node.port}",
        certificate=b"".join(pem.bytes() for pem in certificate.cert_chain_pems),
        key=certificate.private_key_pem.bytes(),
    ) as front:
        yield front


@pytest.mark.parametrize("transports", [("websocket", "polling"), ("polling",)], ids="+".join)
async def test_https_proxy_tunnels_to_a_tls_server(
    tls_node: NginxTLS,
    auth_proxy: TinyProxy,
    ca: trustme.CA,
    environment: pytest.MonkeyPatch,
    everything_logged: pytest.LogCaptureFixture,
    transports: tuple[str, ...],
) -> None:
    """``HTTPS_PROXY`` for an ``https`` server: a ``CONNECT`` tunnel for WebSocket and for
    polling alike, with TLS to the server inside it, verified."""
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http only: never used here
    environment.setenv("HTTPS_PROXY", with_credentials(auth_proxy))
    before = len(auth_proxy.requests())
    async with tether.RealtimeClient(tls_node.url, ssl=trusted, transports=transports) as rt:
        await rt.wait_connected(10)
        assert rt.transport_name == transports[0]
        assert await rt.call("ack", "tls") == "tls"
    assert f"CONNECT 127.0.0.1:{tls_node.port} HTTP/1.1" in auth_proxy.requests()[before:]
    # NO_PROXY names the host: straight to it.
    environment.setenv("NO_PROXY", "127.0.0.1")
    before = len(auth_proxy.requests())
    async with tether.RealtimeClient(tls_node.url, ssl=trusted, transports=transports) as rt:
        await rt.wait_connected(10)
    assert auth_proxy.requests()[before:] == []
    assert_no_secret(everything_logged.text)


@pytest.mark.parametrize("password", [None, "wrong-" + SECRET], ids=["none", "wrong"])
async def test_a_refusing_proxy_is_a_connect_error_naming_it_then_backoff(
    node: SocketIOServer,
    auth_proxy: TinyProxy,
    environment: pytest.MonkeyPatch,
    everything_logged: pytest.LogCaptureFixture,
    password: str | None,
) -> None:
    """tinyproxy answers 407 without credentials and 401 for wrong ones; each attempt fails
    with a ``ConnectError`` naming the proxy, and the client retries with backoff."""
    proxy_url = auth_proxy.url if password is None else with_credentials(auth_proxy, password)
    async with tether.RealtimeClient(
        node.url, proxy=proxy_url, reconnection_attempts=2, **FAST
    ) as rt:
        events = Recorder(rt)
        with pytest.raises(tether.ConnectError):
            await rt.wait_connected(10)
        await events.wait(lambda e: e.of("reconnect_failed") == [None])
        assert events.of("attempt") == [1, 2]
        errors = events.of("error")
        assert len(errors) == 3  # the first attempt and two reconnect attempts
        status = "407" if password is None else "401"
        for error in errors:
            assert isinstance(error, tether.ConnectError)
            assert error.data is None
            assert f"the proxy {auth_proxy.url}" in error.message
            assert status in error.message
            assert_no_secret(error.message, repr(error))
        assert_no_secret(repr(rt))
    assert_no_secret(everything_logged.text)


async def test_a_proxy_that_goes_away_and_comes_back(
    node: SocketIOServer,
    environment: pytest.MonkeyPatch,
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    """Connected through the proxy, the proxy dies: the tunnel ends (``transport close``, or
    ``transport error``), every attempt fails with ``cannot connect to the proxy
    http://host:port`` (no credentials) while the client backs off, and it reconnects once
    the proxy is back."""
    with TinyProxy(credentials=(USER, SECRET)) as vanishing:
        async with tether.RealtimeClient(node.url, proxy=with_credentials(vanishing), **FAST) as rt:
            events = Recorder(rt)
            await rt.wait_connected(10)
            vanishing.stop()
            # The kernel closes the dead proxy's sockets: a FIN, or a reset if bytes were
            # still unread there.
            await events.wait(lambda e: bool(e.of("disconnect")))
            assert events.of("disconnect")[0] in ("transport close", "transport error")
            await events.wait(lambda e: len(e.of("error")) >= 3)
            for error in events.of("error"):
                assert f"cannot connect to the proxy {vanishing.url}" in error.message
                assert_no_secret(error.message, repr(error))
            attempts = events.of("attempt")
            assert attempts == list(range(1, len(attempts) + 1))
            await anyio.to_thread.run_sync(vanishing.restart)
            await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
            assert events.of("reconnect") == [events.of("attempt")[-1]]
            assert await rt.call("ack", "back") == "back"
    assert_no_secret(everything_logged.text)


# ---------------------------------------------------------------------------------- nginx


async def test_behind_nginx_without_upgrade_the_client_runs_on_polling(
    server_factory: ServerFactory, server_kind: ServerKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether.transport")
    server = server_factory(server_kind)
    with NginxWithoutUpgrade(f"127.0.0.1:{server.port}") as nginx:
        async with tether.RealtimeClient(nginx.url, **FAST) as rt:  # the default transports
            events = Recorder(rt)
            await rt.wait_connected(10)
            assert rt.transport_name == "polling"
            assert await rt.call("ack", "via nginx") == "via nginx"
            # The server dies and starts again behind nginx (502 meanwhile): the client comes
            # back through it, on polling again.
            await server.arestart(kill=True)
            await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
            assert rt.transport_name == "polling"
            assert await rt.call("ack", "again") == "again"
    lines = transport_lines(caplog)
    assert sum("trying polling" in line for line in lines) >= 2
    assert sum(line.endswith(" by polling") for line in lines) == 2


# -------------------------------------------------------------------------------- HAProxy


@pytest.fixture
def pinned(server_factory: ServerFactory) -> Iterator[tuple[HAProxyPinned, list[SocketIOServer]]]:
    upstreams = [server_factory("node") for _ in range(2)]
    with HAProxyPinned([f"127.0.0.1:{s.port}" for s in upstreams]) as haproxy:
        yield haproxy, upstreams


async def test_haproxy_pins_the_session_by_cookie_and_a_reconnect_starts_afresh(
    pinned: tuple[HAProxyPinned, list[SocketIOServer]],
) -> None:
    haproxy, upstreams = pinned
    # Without the cookie a poll lands on the other server, which does not know the sid.
    _, cookie, status = await anyio.to_thread.run_sync(haproxy.handshake_without_cookie)
    assert cookie.startswith("SERVERID=") and status == 400
    async with tether.RealtimeClient(
        haproxy.url, transports=("polling", "websocket"), **FAST
    ) as rt:
        events = Recorder(rt)
        await rt.wait_connected(10)
        # Every poll, post and the upgrade carried the cookie, or they would have hit the
        # other server: the session is on WebSocket.
        await until(lambda: rt.transport_name == "websocket")
        sid = rt.get_socket_id()
        holders = [s for s in upstreams if sid in (await s.state())["connected"]]
        assert len(holders) == 1
        holder, other = holders[0], next(s for s in upstreams if s is not holders[0])
        # The server holding the session dies. A client that kept its cookie would be sent
        # to it for ever (503: no redispatch); a fresh jar is balanced to the other one.
        await holder.akill()
        await events.wait(lambda e: len(e.of("connect")) == 2, timeout=20)
        await until(lambda: rt.transport_name == "websocket")
        assert rt.get_socket_id() in (await other.state())["connected"]
        assert await rt.call("ack", "pinned") == "pinned"
