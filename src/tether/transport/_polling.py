"""The Engine.IO v4 HTTP long-polling transport, behind the same interface as WebSocket.

Layers, from the network up::

    _stream.open_stream            TCP, a proxy's CONNECT tunnel, TLS: as for WebSocket
    _http.HTTPConnection (h11)     HTTP/1.1 requests and answers, kept alive
    _polling_protocol              payload framing, the poll/post cycle (sans-IO)
    PollingTransport               whole Engine.IO packets (str | bytes), one TransportError

The transport has no task of its own: the task that receives drives the long poll (one
``GET`` at a time, on the poll connection; the next one goes out when the last answer's
packets have all been returned), and the tasks that send drive the posts (one ``POST`` at a
time, on the post connection; what other tasks queue meanwhile goes together in the next
one). So a transport nobody reads from polls no more, and the server keeps what it has for
it, which bounds what is buffered here by one poll answer (``max_poll_size``).

``receive()`` returns the packets as the WebSocket transports do (``"4..."``, ``"2"``,
``bytes`` for a binary message), the OPEN packet of the handshake first. The heartbeat is
the core's, as on WebSocket: the server's ``2`` arrives in a poll answer, the core's ``3``
leaves in a post. A poll left unanswered past ``pingInterval + pingTimeout`` and a grace
fails the transport, so it cannot hang even without a driver keeping the heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, NoReturn

import anyio
import anyio.lowlevel

from tether._url import engine_url

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Message,
    ReadDeadline,
    TransportError,
    TransportErrorReason,
)
from ._cookies import SessionCookies, with_cookie
from ._http import HTTPConnection, Response, Route
from ._polling_protocol import OpenPacket, PayloadError, PollingSession
from ._proxy import Proxy, parse_proxy, select_proxy
from ._stream import DEFAULT_CLOSE_TIMEOUT, DEFAULT_READ_SIZE, SendLock, _endpoint

__all__ = ["DEFAULT_MAX_POLL_SIZE", "PollingConnector", "PollingTransport"]

logger = logging.getLogger("tether.transport")

#: The most bytes one poll answer may carry. A server sends everything it has queued in one
#: answer (Node's polling transport does not cut it), so this is larger than any message:
#: it bounds what a client that fell behind buffers at once.
DEFAULT_MAX_POLL_SIZE: Final = 64 * 1024 * 1024
#: A post's answer is ``ok``; anything long is not an Engine.IO server.
_MAX_POST_ANSWER: Final = 4096
_POST_HEADERS: Final = [(b"Content-Type", b"text/plain; charset=UTF-8")]


def _copy(error: TransportError) -> TransportError:
    return TransportError(error.reason, str(error), status=error.status)


class PollingConnector:
    """Opens :class:`PollingTransport` sessions: the handshake ``GET``, then a transport
    whose first message is the server's OPEN packet.

    ``proxy`` (an ``http://[user:pass@]host:port`` URL) and ``trust_env`` (read
    ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``) choose the proxy as described in ``_proxy``;
    a bad ``proxy`` is a ``ValueError`` here. ``max_poll_size`` bounds one poll answer in
    bytes; ``read_size`` and ``close_timeout`` are as for the WebSocket connectors.
    """

    name: Final = "polling"

    def __init__(
        self,
        *,
        proxy: str | Proxy | None = None,
        trust_env: bool = True,
        max_poll_size: int = DEFAULT_MAX_POLL_SIZE,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be positive, not {read_size!r}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {close_timeout!r}")
        if not isinstance(max_poll_size, int) or max_poll_size < 1:
            raise ValueError(f"max_poll_size must be a positive int, not {max_poll_size!r}")
        self._proxy = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        self._trust_env = bool(trust_env)
        self._max_poll_size = max_poll_size
        self._read_size = read_size
        self._close_timeout = close_timeout
        self._default_ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"PollingConnector(proxy={self._proxy!r}, trust_env={self._trust_env})"

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
        cookies: SessionCookies | None = None,
    ) -> PollingTransport:
        """Open a polling session at ``url`` (the WebSocket URL of
        :func:`tether._url.build_websocket_url`, or the same with ``transport=polling``).

        ``headers`` go into every request of the session. ``cookies`` is the session's jar
        (a fresh one when ``None``): what the server sets is sent back on every later request,
        and the caller can pass it on to a WebSocket upgrade. Raises
        :class:`TransportError` as the WebSocket connectors do, with ``status`` for an
        answer other than 200; ``ValueError`` only for a ``max_message_size`` below 1.
        Cancellation is safe at any point.
        """
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        polling_url = engine_url(url, "polling") if isinstance(url, str) else url
        endpoint = _endpoint(polling_url, headers)
        ssl_context = self._ssl_context(ssl_context) if endpoint.secure else None
        try:
            proxy = select_proxy(
                endpoint.host,
                endpoint.port,
                secure=endpoint.secure,
                proxy=self._proxy,
                trust_env=self._trust_env,
            )
        except ValueError as exc:
            raise TransportError(
                TRANSPORT_ERROR, f"cannot connect to {endpoint.where}: {exc}"
            ) from None
        route = Route(
            endpoint.host,
            endpoint.port,
            endpoint.secure,
            endpoint.host_header,
            endpoint.where,
            proxy,
        )
        jar = SessionCookies() if cookies is None else cookies
        session = PollingSession(max_message_size=max_message_size)
        conn = await route.open(ssl_context, read_size=self._read_size)
        try:
            request_headers = with_cookie(list(endpoint.headers), jar.header(polling_url))
            await conn.request(b"GET", endpoint.target, request_headers)
            response = await conn.response(max_body=self._max_poll_size)
            jar.update(polling_url, response.headers)
            if response.status != 200:
                raise TransportError(
                    TRANSPORT_ERROR,
                    f"the polling handshake failed: {route.describe(response.status)}",
                    status=response.status,
                )
            body = await conn.read_all(max_body=self._max_poll_size)
            try:
                messages = session.handshake(body)
            except PayloadError as exc:
                raise TransportError(
                    TRANSPORT_ERROR, f"the polling handshake with {route.where} failed: {exc}"
                ) from None
        except BaseException:
            await conn.aclose()
            raise
        return PollingTransport(
            session,
            conn,
            url=polling_url,
            target=endpoint.target,
            headers=list(endpoint.headers),
            cookies=jar,
            ssl_context=ssl_context,
            received=messages,
            max_poll_size=self._max_poll_size,
            read_size=self._read_size,
            close_timeout=self._close_timeout,
        )

    def _ssl_context(self, ssl_context: ssl.SSLContext | None) -> ssl.SSLContext:
        if ssl_context is not None:
            return ssl_context
        if self._default_ssl_context is None:
            self._default_ssl_context = ssl.create_default_context()
        return self._default_ssl_context


class PollingTransport(ReadDeadline):
    """An open Engine.IO polling session that carries whole packets; see :class:`Transport`.

    Made by :meth:`PollingConnector.connect`, never directly. ``send`` returns once the
    server has answered the post that carried the message (``ok``); several senders share
    posts (one out at a time, the others' messages batched into the next). ``receive`` polls.
    ``aclose`` posts the CLOSE packet (``1``) if that can be done within ``close_timeout``.
    """

    name: Final = "polling"

    def __init__(
        self,
        session: PollingSession,
        conn: HTTPConnection,
        *,
        url: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        cookies: SessionCookies,
        ssl_context: ssl.SSLContext | None,
        received: Iterable[Message],
        max_poll_size: int,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._session = session
        self._route = conn.route
        self._where = conn.route.where
        self._url = url
        self._target = f"{target}&sid={session.sid}"
        self._headers = headers
        self.cookies = cookies
        self._ssl_context = ssl_context
        self._max_poll_size = max_poll_size
        self._read_size = read_size
        self._close_timeout = close_timeout
        self._ready: deque[Message] = deque(received)
        self._poll_conn: HTTPConnection | None = conn  # the handshake's, kept alive
        self._post_conn: HTTPConnection | None = None
        self._post_lock = SendLock()  # FIFO; no checkpoint when nobody else posts
        self._poll_head_read = False  # the poll out has had its answer's head read
        self._poll_size = 0  # bytes of the poll answer so far
        self._poll_deadline = math.inf  # when the poll out counts as unanswered
        self._error: TransportError | None = None
        self._shutdown_done: anyio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._error is not None else "open"
        return f"<PollingTransport {self._where} {state}>"

    # --- what the upgrade needs to know (_engine) ---------------------------------------

    @property
    def open_packet(self) -> OpenPacket:
        """The handshake's OPEN packet: the sid, the upgrades the server offers, timings."""
        assert self._session.open is not None
        return self._session.open

    @property
    def sid(self) -> str:
        """The Engine.IO session id every request after the handshake names."""
        return self._session.sid

    @property
    def url(self) -> str:
        """The session's polling URL (without the sid; with the query: not for logs)."""
        return self._url

    @property
    def where(self) -> str:
        """The redacted URL (no query, no credentials), for logs and error texts."""
        return self._where

    @property
    def idle(self) -> bool:
        """No packet waits to be returned and no poll is out: the moment to upgrade."""
        return not self._ready and not self._session.poll_in_flight

    def pause(self) -> None:
        """Poll no more (Engine.IO v4 §Upgrade: the client pauses polling before ``5``)."""
        self._session.paused = True

    def resume(self) -> None:
        """Poll again (the upgrade failed)."""
        self._session.paused = False

    # --- Transport ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the session has ended (either side) or ``aclose()`` was called."""
        return self._error is not None

    @property
    def read_deadline(self) -> float:
        return self._read_deadline

    @read_deadline.setter
    def read_deadline(self, deadline: float) -> None:
        self._read_deadline = deadline
        scope = self._read_scope
        if scope is not None:  # a receive() is waiting: move its deadline too
            scope.deadline = min(deadline, self._poll_deadline)

    async def receive(self) -> Message | None:
        """The next packet: from the last poll answer, or from a new poll.

        Returns ``None`` once ``read_deadline`` has passed (the poll stays out, and its answer
        is read by the next call). Raises :class:`TransportError` once the session has ended,
        after every packet that arrived before the end.
        """
        ready = self._ready
        if ready:
            return ready.popleft()
        while True:
            if ready:
                return ready.popleft()
            if self._error is not None:
                self._raise_error()
            deadline = self._read_deadline
            if anyio.current_time() >= deadline:
                await anyio.lowlevel.checkpoint()
                return None
            # One scope for every step until a packet is ready (a poll answer is its head, its
            # body, its end: several steps), not one per step.
            with anyio.CancelScope(deadline=min(deadline, self._poll_deadline)) as scope:
                self._read_scope = scope
                try:
                    while not ready and self._error is None:
                        await self._poll_step()
                except TransportError as exc:
                    self._fail(exc)
                finally:
                    self._read_scope = None
            if scope.cancelled_caught and not ready:
                if anyio.current_time() >= self._poll_deadline:
                    self._set_error(
                        TRANSPORT_ERROR,
                        f"{self._where} left a poll unanswered for "
                        f"{self.open_packet.poll_timeout:g} s",
                    )
                    continue
                return None

    async def send(self, message: Message) -> None:
        """Post one packet (batched with what other tasks send meanwhile)."""
        await self.send_many((message,))

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Post several packets, in order, in one post where they fit (``maxPayload``);
        nothing another task sends can land between them."""
        if self._error is not None:
            self._raise_error()
        session = self._session
        before = session.queue(())
        ticket = session.queue(messages)
        if ticket == before:
            await anyio.lowlevel.checkpoint()
            return
        try:
            async with self._post_lock:
                while not session.sent(ticket):
                    if self._error is not None:
                        self._raise_error()
                    body = session.start_post()
                    assert body is not None, "a ticket not sent is queued"
                    await self._post(body)
                    session.post_done()
        except BaseException:
            session.withdraw(before + 1, ticket)  # whatever no post took (if any)
            raise

    async def aclose(self) -> None:
        """Post the CLOSE packet if that can be done within ``close_timeout``, then drop
        both connections. Idempotent, never raises."""
        self._set_error(TRANSPORT_CLOSE, f"the session with {self._where} was closed locally")
        self._ready.clear()
        await self._shutdown(goodbye=True)

    async def detach(self) -> None:
        """Drop the connections without ending the session: it goes on over WebSocket
        (Engine.IO v4 §Upgrade). Idempotent, never raises."""
        self._set_error(TRANSPORT_CLOSE, f"the session with {self._where} moved to WebSocket")
        await self._shutdown(goodbye=False)

    # --- the poll ---------------------------------------------------------------------------

    async def _poll_step(self) -> None:
        """Advance the poll by one read: send it if none is out, then read its answer; the
        packets it completes go onto the ready queue."""
        session = self._session
        if not session.poll_in_flight:
            if session.closed:
                self._set_error(TRANSPORT_CLOSE, f"{self._where} closed the session")
                return
            if session.paused:
                # Only the upgrade pauses, and it does not receive meanwhile.
                await anyio.sleep_forever()  # pragma: no cover
            conn = self._poll_conn
            if conn is None or not conn.reusable:
                if conn is not None:
                    await conn.aclose()
                self._poll_conn = None
                conn = self._poll_conn = await self._route.open(
                    self._ssl_context, read_size=self._read_size
                )
            headers = self._request_headers()
            session.start_poll()
            self._poll_head_read = False
            self._poll_size = 0
            try:
                await conn.request(b"GET", self._target, headers)
            except BaseException:
                # Cut off part-way: the connection is broken, and so is the session (the
                # server may have taken the poll, and would answer it to nobody).
                self._set_error(TRANSPORT_ERROR, f"a poll to {self._where} was cut off")
                raise
            self._poll_deadline = anyio.current_time() + self.open_packet.poll_timeout
            scope = self._read_scope
            if scope is not None:
                scope.deadline = min(scope.deadline, self._poll_deadline)
        conn = self._poll_conn
        assert conn is not None
        if not self._poll_head_read:
            response = await conn.response(max_body=self._max_poll_size)
            self._check(response)
            self._poll_head_read = True
        chunk = await conn.body()
        try:
            if chunk is None:
                self._poll_deadline = math.inf
                messages = session.poll_done()
            else:
                self._poll_size += len(chunk)
                if self._poll_size > self._max_poll_size:
                    raise TransportError(
                        TRANSPORT_ERROR,
                        f"a poll answer from {self._where} exceeds max_poll_size "
                        f"({self._max_poll_size} bytes)",
                    )
                messages = session.poll_data(chunk)
        except PayloadError as exc:
            # Invalid UTF-8 or an oversized packet: a broken stream, as for a WebSocket frame.
            raise TransportError(TRANSPORT_ERROR, f"{self._where}: {exc}") from None
        self._ready.extend(messages)
        if session.close_received and chunk is None:
            self._set_error(TRANSPORT_CLOSE, f"{self._where} closed the session")

    # --- the post ---------------------------------------------------------------------------

    async def _post(self, body: bytes) -> None:
        """One post, answered; the caller holds the post lock. Any failure ends the session."""
        try:
            conn = self._post_conn
            if conn is None or not conn.reusable:
                if conn is not None:
                    await conn.aclose()
                self._post_conn = None
                conn = self._post_conn = await self._route.open(
                    self._ssl_context, read_size=self._read_size
                )
            await conn.request(b"POST", self._target, self._request_headers(_POST_HEADERS), body)
            response = await conn.response(max_body=_MAX_POST_ANSWER)
            self._check(response)
            await conn.read_all(max_body=_MAX_POST_ANSWER)
        except TransportError as exc:
            self._fail(exc)
            self._raise_error()
        except BaseException:
            # Cancelled: the server may or may not have the packets; either way the stream of
            # packets has a hole the core cannot know about.
            self._set_error(TRANSPORT_ERROR, f"a post to {self._where} was cancelled part-way")
            raise

    # --- shared -----------------------------------------------------------------------------

    def _request_headers(
        self, extra: list[tuple[bytes, bytes]] | None = None
    ) -> list[tuple[bytes, bytes]]:
        return with_cookie(self._headers + (extra or []), self.cookies.header(self._url))

    def _check(self, response: Response) -> None:
        """Take an answer's cookies; fail on a status other than 200 (Node answers 400 for a
        session it no longer knows)."""
        self.cookies.update(self._url, response.headers)
        if response.status != 200:
            raise TransportError(
                TRANSPORT_ERROR,
                f"the polling session failed: {self._route.describe(response.status)}",
                status=response.status,
            )

    def _set_error(self, reason: TransportErrorReason, message: str) -> None:
        if self._error is None:
            self._error = TransportError(reason, message)

    def _fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error

    def _raise_error(self) -> NoReturn:
        error = self._error
        assert error is not None
        raise _copy(error) from error.__cause__

    async def _shutdown(self, *, goodbye: bool) -> None:
        if self._shutdown_done is not None:
            with anyio.CancelScope(shield=True):
                await self._shutdown_done.wait()
            return
        self._shutdown_done = anyio.Event()
        try:
            close_packet = self._session.close()
            if goodbye and close_packet is not None:
                # Engine.IO v4 §"Transports/HTTP long-polling": the client ends the session
                # with a CLOSE packet; a server that never hears it keeps the session until
                # its heartbeat expires.
                with anyio.move_on_after(self._close_timeout, shield=True):
                    await self._post_goodbye(close_packet)
        finally:
            for conn in (self._poll_conn, self._post_conn):
                if conn is not None:
                    await conn.aclose()
            self._poll_conn = self._post_conn = None
            self._shutdown_done.set()

    async def _post_goodbye(self, close_packet: bytes) -> None:
        with contextlib.suppress(TransportError):
            async with self._post_lock:
                conn = self._post_conn
                if conn is None or not conn.reusable:
                    if conn is not None:
                        await conn.aclose()
                    conn = self._post_conn = await self._route.open(
                        self._ssl_context, read_size=self._read_size
                    )
                await conn.request(
                    b"POST", self._target, self._request_headers(_POST_HEADERS), close_packet
                )
                await conn.response(max_body=_MAX_POST_ANSWER)
                await conn.read_all(max_body=_MAX_POST_ANSWER)
        logger.debug("tether.transport: posted CLOSE to %s", self._where)
