"""The transports through real intermediaries: tinyproxy (CONNECT tunnels for WebSocket,
absolute-form requests for polling, Basic auth, refusals), nginx without the ``Upgrade``
lines (WebSocket fails, the fallback to polling connects) and HAProxy pinning sessions to one
of two Node servers by cookie (polling works only because the cookie comes back, and the
upgrade reaches the right server for the same reason). Both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from servers.handles import ServerFactory, ServerKind, SocketIOServer
from servers.proxies import HAProxyPinned, NginxWithoutUpgrade, TinyProxy
from tether._url import build_websocket_url
from tether.transport import EngineConnector, Transport, TransportError

pytestmark = pytest.mark.anyio

TIMEOUT = 10.0
USER, SECRET = "tether", "s3cret-pw"


@pytest.fixture(scope="module")
def factory() -> Iterator[ServerFactory]:
    with ServerFactory().scope() as servers:
        yield servers


@pytest.fixture(scope="module")
def node(factory: ServerFactory) -> SocketIOServer:
    return factory("node")


@pytest.fixture(scope="module")
def python(factory: ServerFactory) -> SocketIOServer:
    return factory("python")


@pytest.fixture(params=["node", "python"])
def server(request: pytest.FixtureRequest) -> SocketIOServer:
    kind: ServerKind = request.param
    peer: SocketIOServer = request.getfixturevalue(kind)
    return peer


@pytest.fixture(scope="module")
def proxy() -> Iterator[TinyProxy]:
    with TinyProxy() as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[TinyProxy]:
    with TinyProxy(credentials=(USER, SECRET)) as running:
        yield running


async def session(transport: Transport) -> None:
    """OPEN, the namespace CONNECT and one echo: the session works end to end."""
    with anyio.fail_after(TIMEOUT):
        first = await transport.receive()
        assert isinstance(first, str)
        assert first.startswith("0{")
        await transport.send("40")
        while True:
            message = await transport.receive()
            if isinstance(message, str) and message.startswith("40"):
                break
        await transport.send('42["echo","through"]')
        while (message := await transport.receive()) in ("2", "6", None):
            if message == "2":
                await transport.send("3")
        assert message == '42["echo","through"]'


@pytest.mark.parametrize(
    "choice", [("websocket",), ("polling",), ("polling", "websocket")], ids="+".join
)
async def test_through_tinyproxy(
    server: SocketIOServer, proxy: TinyProxy, choice: tuple[str, ...]
) -> None:
    before = len(proxy.requests())
    connector = EngineConnector(transports=choice, proxy=proxy.url, trust_env=False)
    transport = await connector.connect(build_websocket_url(server.url))
    try:
        await session(transport)
        assert transport.name == ("polling" if choice == ("polling",) else "websocket")
    finally:
        await transport.aclose()
    seen = proxy.requests()[before:]
    port = server.url.rsplit(":", 1)[1]
    if "websocket" in choice:
        # WebSocket: a CONNECT tunnel to the server (RFC 9110 9.3.6).
        assert f"CONNECT 127.0.0.1:{port} HTTP/1.1" in seen
    if "polling" in choice:
        # Plain-http polling: absolute-form requests (RFC 9112 3.2.2).
        assert any(line.startswith(f"GET http://127.0.0.1:{port}/socket.io/") for line in seen)
        assert any(line.startswith(f"POST http://127.0.0.1:{port}/socket.io/") for line in seen)


@pytest.mark.parametrize("choice", [("websocket",), ("polling",)], ids="+".join)
async def test_proxy_basic_auth(
    node: SocketIOServer, auth_proxy: TinyProxy, choice: tuple[str, ...]
) -> None:
    url = build_websocket_url(node.url)
    good = f"http://{USER}:{SECRET}@127.0.0.1:{auth_proxy.port}"
    transport = await EngineConnector(transports=choice, proxy=good, trust_env=False).connect(url)
    try:
        await session(transport)
    finally:
        await transport.aclose()
    for proxy_url in (f"http://{USER}:wrong-{SECRET}@127.0.0.1:{auth_proxy.port}", auth_proxy.url):
        connector = EngineConnector(transports=choice, proxy=proxy_url, trust_env=False)
        with pytest.raises(TransportError) as refused:
            await connector.connect(url)
        # tinyproxy: 407 without credentials, 401 for wrong ones.
        assert refused.value.status == (407 if proxy_url == auth_proxy.url else 401)
        text = str(refused.value) + repr(refused.value) + repr(connector)
        assert auth_proxy.url in text
        assert SECRET not in text
        assert USER not in text


async def test_proxy_refusals_and_an_unreachable_proxy(node: SocketIOServer) -> None:
    url = build_websocket_url(node.url)
    with TinyProxy(connect_ports=(1,)) as strict:
        connector = EngineConnector(transports=("websocket",), proxy=strict.url, trust_env=False)
        with pytest.raises(TransportError) as forbidden:
            await connector.connect(url)
        assert forbidden.value.status == 403
        assert f"the proxy {strict.url} refused the tunnel" in str(forbidden.value)
        # A tunnel to a port nobody listens on: tinyproxy answers 500.
        with pytest.raises(TransportError) as unreachable_target:
            await EngineConnector(
                transports=("websocket",), proxy=strict.url, trust_env=False
            ).connect("ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket")
        assert unreachable_target.value.status in (403, 500, 502)
        gone = strict.url
    for choice in (("websocket",), ("polling",)):
        with anyio.fail_after(TIMEOUT), pytest.raises(TransportError) as down:
            await EngineConnector(transports=choice, proxy=gone, trust_env=False).connect(url)
        assert f"cannot connect to the proxy {gone}" in str(down.value)


async def test_proxy_from_the_environment_and_no_proxy(
    node: SocketIOServer, proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = build_websocket_url(node.url)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    before = len(proxy.requests())
    transport = await EngineConnector().connect(url)  # trust_env=True is the default
    try:
        await session(transport)
    finally:
        await transport.aclose()
    assert len(proxy.requests()) > before
    # trust_env=False, or NO_PROXY naming the host: straight to the server.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    for no_proxy, connector in (
        (None, EngineConnector(trust_env=False)),
        ("127.0.0.1", EngineConnector()),
    ):
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        transport = await connector.connect(url)
        try:
            await session(transport)
        finally:
            await transport.aclose()
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(TransportError, match=r"cannot connect to the proxy http://127\.0\.0\.1:9"):
        await EngineConnector().connect(url)


async def test_nginx_without_upgrade_falls_back_to_polling(server: SocketIOServer) -> None:
    upstream = server.url.removeprefix("http://")
    with NginxWithoutUpgrade(upstream) as nginx:
        url = build_websocket_url(nginx.url)
        with pytest.raises(TransportError) as refused:
            await EngineConnector(transports=("websocket",), trust_env=False).connect(url)
        assert refused.value.status == 400 or refused.value.status == 403
        for choice in (("websocket", "polling"), ("polling", "websocket")):
            transport = await EngineConnector(transports=choice, trust_env=False).connect(url)
            try:
                await session(transport)
                # The upgrade is refused as well: the session stays on polling.
                assert transport.name == "polling"
            finally:
                await transport.aclose()


@pytest.fixture(scope="module")
def pinned(factory: ServerFactory) -> Iterator[HAProxyPinned]:
    upstreams = [factory("node").url.removeprefix("http://") for _ in range(2)]
    with HAProxyPinned(upstreams) as haproxy:
        yield haproxy


@pytest.mark.parametrize("choice", [("polling",), ("polling", "websocket")], ids="+".join)
async def test_haproxy_pins_the_session_by_cookie(
    pinned: HAProxyPinned, choice: tuple[str, ...]
) -> None:
    _, cookie, status = await anyio.to_thread.run_sync(pinned.handshake_without_cookie)
    assert cookie.startswith("SERVERID=")
    assert status == 400  # round robin sent it to the other server: "Session ID unknown"
    for _ in range(2):  # the second session starts with an empty jar and is pinned anew
        connector = EngineConnector(transports=choice, trust_env=False)
        transport = await connector.connect(build_websocket_url(pinned.url))
        try:
            await session(transport)
            # The upgrade carried the cookie too, or it would have hit the other server.
            assert transport.name == choice[-1]
        finally:
            await transport.aclose()
