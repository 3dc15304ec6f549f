"""HTTP/1.1 client connections for the polling transport, on h11 over anyio byte streams.

Why h11: it is sans-IO (so it runs on asyncio and trio through the same anyio streams, TLS
and proxy code as the WebSocket transports, ``_stream.open_stream``), it hands the body over
as it arrives (so ``max_message_size`` holds while a body arrives, with ``Content-Length``
and with chunks), it keeps connections alive between requests, and it is already installed
with wsproto. A general HTTP client (httpx) would bring a second TLS and proxy code path, a
pool we do not need (a polling session holds exactly two connections: the poll's and the
post's) and four more dependencies.

:class:`HTTPConnection` is one connection: a request, then its answer (head, then body
pieces). Reading is resumable: a read cut off by a deadline loses nothing (the socket streams'
reads are cancel-safe and h11 keeps what it has parsed), so the long poll survives the
driver's read deadline. A write cut off part-way breaks the connection (nothing sent on it
afterwards would parse), as for the WebSocket transports.

:class:`Route` says where requests go: straight to the server, or to an HTTP proxy in
absolute form (RFC 9112 3.2.2), or through the proxy's ``CONNECT`` tunnel (TLS inside).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc
import h11

from ._base import TRANSPORT_ERROR, TransportError
from ._proxy import Proxy, describe_status
from ._stream import IO_ERRORS, describe, open_stream

__all__ = ["HTTPConnection", "Response", "Route"]

#: The most bytes a response head may take (h11's default).
MAX_HEAD: Final = 16 * 1024
_READ_SIZE: Final = 65536
_PEEK_FLAGS: Final = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)


@dataclass(frozen=True, slots=True)
class Response:
    """A response head: the status and the headers (names lower-case, Latin-1 bytes)."""

    status: int
    headers: list[tuple[bytes, bytes]]

    def get_all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


@dataclass(frozen=True, slots=True)
class Route:
    """Where the requests of one server go.

    ``host``/``port``/``secure`` are the server's; ``host_header`` is its ``Host`` value
    (RFC 9112 3.2). With a ``proxy``, plain ``http`` requests go to the proxy in absolute
    form (``GET http://host:port/path?query``) with its credentials; ``https`` goes through
    a ``CONNECT`` tunnel, inside which requests look as they would without a proxy.
    """

    host: str
    port: int
    secure: bool
    host_header: str
    where: str
    proxy: Proxy | None = None

    @property
    def absolute_form(self) -> bool:
        return self.proxy is not None and not self.secure

    def target(self, path: str) -> bytes:
        """The request target for ``path`` (``/socket.io/?...``) on this route."""
        if self.absolute_form:
            return f"http://{self.host_header}{path}".encode("ascii")
        return path.encode("ascii")

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``Host``, and the proxy's credentials on an absolute-form route."""
        host = [(b"Host", self.host_header.encode("ascii"))]
        if self.absolute_form:
            assert self.proxy is not None
            host += self.proxy.headers()
        return host

    async def open(
        self, ssl_context: ssl.SSLContext | None, *, read_size: int = _READ_SIZE
    ) -> HTTPConnection:
        """A new connection on this route (TCP, the tunnel, TLS as the route needs)."""
        stream = await open_stream(
            self.host,
            self.port,
            secure=self.secure,
            ssl_context=ssl_context,
            where=self.where,
            proxy=self.proxy,
            tunnel=not self.absolute_form,
        )
        return HTTPConnection(stream, route=self, read_size=read_size)

    def describe(self, status: int) -> str:
        """Whose refusal a status is, for error texts: on an absolute-form route the proxy
        is named too (its 407, or a status it relayed or made up)."""
        if self.proxy is None or not self.absolute_form:
            return f"{self.where} answered {describe_status(status)}"
        if status == 407:
            return f"the proxy {self.proxy.where} answered {describe_status(status)}"
        return (
            f"{self.where} answered {describe_status(status)} through the proxy {self.proxy.where}"
        )


class HTTPConnection:
    """One HTTP/1.1 connection: requests in turn, each answer read before the next request.

    Every failure is a :class:`TransportError` (``"transport error"``) naming the route's
    redacted URL; h11's own exception texts never quote header values.
    """

    __slots__ = (
        "_broken",
        "_conn",
        "_kept_alive",
        "_last_request",
        "_read_size",
        "_socket",
        "_stream",
        "route",
    )

    def __init__(
        self, stream: anyio.abc.ByteStream, *, route: Route, read_size: int = _READ_SIZE
    ) -> None:
        self._stream = stream
        self.route = route
        self._read_size = read_size
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._broken = False
        # Whether the last answer said it keeps the connection (see ``reusable``).
        self._kept_alive = False
        # The socket under the stream, for the look in ``reusable``, found once: the typed
        # attribute lookup builds a dict of lambdas on every call.
        try:
            self._socket: socket.socket | None = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:  # pragma: no cover - our streams have one
            self._socket = None
        # The last request head sent, with what it was made of: a long poll sends the same
        # one again and again, and h11 validates every header of a new one.
        self._last_request: tuple[bytes, str, list[tuple[bytes, bytes]], h11.Request] | None = None

    def __repr__(self) -> str:
        return f"<HTTPConnection {self.route.where} {self._conn.our_state}>"

    @property
    def reusable(self) -> bool:
        """Whether another request may go out on this connection now.

        Not when the last exchange is unfinished or said ``Connection: close``, and not when
        the server has hung up meanwhile (servers close idle keep-alive connections: Node
        after 5 s): a request written into a closed connection would be lost without an
        answer, so the socket is looked at first (RFC 9112 9.3.1, what HTTP clients do).

        Through a proxy in absolute form, only when the answer said ``keep-alive``: proxies
        that strip the hop-by-hop ``Connection`` header and close after every answer exist
        (tinyproxy), and their close arrives just after the answer, too late for the look
        at the socket; a post written into it would be lost, and the session with it.
        """
        conn = self._conn
        if self._broken or conn.our_state is not h11.IDLE or conn.their_state is not h11.IDLE:
            return False
        if self.route.absolute_form and not self._kept_alive:
            return False
        sock = self._socket
        if sock is None:  # pragma: no cover - our streams have one
            return True
        try:
            # EOF (b"") or bytes nobody asked for: either way the connection is done.
            sock.recv(1, _PEEK_FLAGS)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    async def request(
        self,
        method: bytes,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None = None,
    ) -> None:
        """Send a request for ``path`` (``/socket.io/?...``) with ``headers`` besides ``Host``
        and the body's length. Cancelled part-way, the connection is broken."""
        all_headers = self.route.headers() + headers
        if body is not None:
            all_headers.append((b"Content-Length", str(len(body)).encode("ascii")))
        try:
            last = self._last_request
            if (
                last is not None
                and last[0] == method
                and last[1] == path
                and last[2] == all_headers
            ):
                request = last[3]
            else:
                request = h11.Request(
                    method=method, target=self.route.target(path), headers=all_headers
                )
                self._last_request = (method, path, all_headers, request)
            data = self._conn.send(request)
            if body:
                data += self._conn.send(h11.Data(data=body))
            data += self._conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self._broken = True
            raise TransportError(
                TRANSPORT_ERROR, f"cannot send a request to {self.route.where}: {exc}"
            ) from None
        try:
            await self._stream.send(data)
        except IO_ERRORS as exc:
            self._broken = True
            raise self._lost(exc) from exc
        except BaseException:
            self._broken = True  # cancelled: part of the request may be out
            raise

    async def response(self, *, max_body: int | None = None) -> Response:
        """The answer's head. A ``Content-Length`` over ``max_body`` fails at once."""
        while True:
            event = await self._next_event()
            if isinstance(event, h11.InformationalResponse):
                continue  # RFC 9110 15.2: a 1xx before the real answer
            if isinstance(event, h11.Response):
                response = Response(event.status_code, list(event.headers))
                if self.route.absolute_form:
                    self._kept_alive = any(
                        b"keep-alive" in value.lower()
                        for name, value in response.headers
                        if name in (b"connection", b"proxy-connection")
                    )
                if max_body is not None:
                    for value in response.get_all(b"content-length"):
                        if int(value) > max_body:
                            self._broken = True
                            raise TransportError(
                                TRANSPORT_ERROR,
                                f"an answer from {self.route.where} exceeds the size limit "
                                f"({int(value)} > {max_body} bytes)",
                            )
                return response
            raise self._unexpected()  # pragma: no cover - h11 gives a response first

    async def body(self) -> bytes | None:
        """The next piece of the answer's body, or ``None`` once it is complete (then the
        connection is ready for the next request, unless the answer closes it)."""
        event = await self._next_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            conn = self._conn
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            return None
        raise self._unexpected()  # pragma: no cover - h11 gives data, then the end

    async def read_all(self, *, max_body: int) -> bytes:
        """The rest of the answer's body, at most ``max_body`` bytes (else it fails)."""
        chunks = bytearray()
        while (chunk := await self.body()) is not None:
            chunks += chunk
            if len(chunks) > max_body:
                self._broken = True
                raise TransportError(
                    TRANSPORT_ERROR,
                    f"an answer from {self.route.where} exceeds the size limit ({max_body} bytes)",
                )
        return bytes(chunks)

    async def aclose(self) -> None:
        """Drop the connection (no goodbye exists in HTTP/1.1). Never raises."""
        self._broken = True
        with contextlib.suppress(Exception):
            await anyio.aclose_forcefully(self._stream)

    async def _next_event(self) -> h11.Event:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._broken = True
                raise TransportError(
                    TRANSPORT_ERROR, f"{self.route.where} sent an invalid HTTP answer: {exc}"
                ) from None
            if event is h11.NEED_DATA:
                try:
                    data = await self._stream.receive(self._read_size)
                except anyio.EndOfStream:
                    data = b""
                except IO_ERRORS as exc:
                    self._broken = True
                    raise self._lost(exc) from exc
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                self._broken = True
                raise TransportError(
                    TRANSPORT_ERROR,
                    f"{self.route.where} closed the connection before its answer was complete",
                )
            assert isinstance(event, h11.Event)
            return event

    def _lost(self, exc: BaseException) -> TransportError:
        return TransportError(
            TRANSPORT_ERROR, f"the connection to {self.route.where} broke: {describe(exc)}"
        )

    def _unexpected(self) -> TransportError:  # pragma: no cover - see the callers
        self._broken = True
        return TransportError(TRANSPORT_ERROR, f"unexpected HTTP event from {self.route.where}")
