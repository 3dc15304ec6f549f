"""What the WebSocket transports share: the byte stream below the WebSocket protocol, and the
message-level machinery above it.

Two transports speak RFC 6455 through different sans-IO libraries (wsproto in
``_websocket``, websockets in ``_websockets``). Everything that does not depend on the library
lives here, once:

- :class:`StreamConnector`: checking the URL and headers, TCP (``_socket.open_tcp``, with
  ``TCP_NODELAY``) and TLS through anyio, the opening handshake (``_upgrade``, the same
  request and the same checks for both), and closing the socket whenever an attempt fails
  or is cancelled. A subclass adds only how its library takes over the upgraded stream.
- :class:`StreamTransport`: the queue of decoded messages and its fast path, the send lock,
  control frames owed to the peer (pongs, the close echo) riding along with the next write,
  the first-reason-wins error, a write cancelled part-way poisoning the stream, and the
  bounded, idempotent close. A subclass adds how messages become frames and bytes become
  messages (``_encode``, ``_encode_many``, ``_feed``, ``_closing_frame``).

Error texts name the endpoint with :func:`tether._url.redact_url` and describe low-level
failures with :func:`describe`; header values and query strings never appear in them.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Final, Generic, NamedTuple, NoReturn, TypeVar
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from anyio.streams.tls import TLSStream

from tether._url import redact_url

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Message,
    ReadDeadline,
    TransportError,
    TransportErrorReason,
    encode_headers,
)
from ._proxy import Proxy, ProxyRefused, open_tunnel
from ._socket import open_tcp, quick_ack
from ._upgrade import (
    UpgradeFailed,
    UpgradeRefused,
    UpgradeResponse,
    new_key,
    refusal_text,
    upgrade_request,
)

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_READ_SIZE",
    "IO_ERRORS",
    "NORMAL_CLOSURE",
    "Endpoint",
    "SendLock",
    "StreamConnector",
    "StreamTransport",
    "describe",
    "open_stream",
    "parse_url",
]

#: Bytes asked of the socket per read. Large enough that a burst of small messages costs one
#: read (and one trip through the event loop) per ~1000 messages.
DEFAULT_READ_SIZE: Final = 65536
#: How long ``aclose()`` spends trying to send a close frame before it just drops the socket.
DEFAULT_CLOSE_TIMEOUT: Final = 1.0
#: How long the rest of a refused upgrade's body is read for (it says why: ``_upgrade``).
REFUSAL_BODY_TIMEOUT: Final = 1.0
#: RFC 6455 7.4.1: the close code of a connection that ends normally.
NORMAL_CLOSURE: Final = 1000

#: What an anyio byte stream raises when the network or the peer misbehaves. OSError covers
#: socket.gaierror, ssl.SSLError and anyio's ConnectionFailed.
IO_ERRORS: Final[tuple[type[Exception], ...]] = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
#: ...and, while connecting, an answer to the upgrade that is not a valid acceptance.
_CONNECT_ERRORS: Final[tuple[type[Exception], ...]] = (*IO_ERRORS, UpgradeFailed)
#: ...and, while a proxy opens a tunnel, an answer that is not HTTP.
_TUNNEL_ERRORS: Final[tuple[type[Exception], ...]] = (*IO_ERRORS, h11.ProtocolError)

_DEFAULT_PORTS: Final = {"ws": 80, "wss": 443}
_SECURE: Final = {"ws": False, "http": False, "wss": True, "https": True}

_T = TypeVar("_T", bound="StreamTransport")


class Endpoint(NamedTuple):
    """Where a connection attempt goes, checked and ready for the handshake."""

    where: str  #: the redacted URL, for error texts
    secure: bool
    host: str
    port: int
    host_header: str  #: RFC 6455 4.1: host (ASCII; bracketed if IPv6), non-default port
    target: str  #: path and query, ASCII
    headers: list[tuple[bytes, bytes]]  #: extra headers, checked, Latin-1


class StreamConnector(Generic[_T]):
    """Opens WebSocket connections; a subclass makes the transport in ``_open``.

    Works on whatever event loop anyio runs on (asyncio or trio). For ``wss``/``https`` URLs
    without an ``ssl_context`` it uses one ``ssl.create_default_context()``, made on first
    use and shared by later attempts, so certificates and host names are verified by default.
    An ``ssl_context`` given for a plain ``ws`` URL is ignored.

    ``read_size`` is the most bytes asked of the socket per read; ``close_timeout`` bounds
    the polite part of closing (sending a close frame) before the socket is dropped.
    """

    def __init__(
        self,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be positive, not {read_size!r}")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {close_timeout!r}")
        self._read_size = read_size
        self._close_timeout = close_timeout
        self._default_ssl_context: ssl.SSLContext | None = None

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
        proxy: Proxy | None = None,
    ) -> _T:
        """Open a TCP (and TLS) connection to ``url`` and perform the WebSocket upgrade.

        ``url`` is a ``ws``/``wss`` URL (``http``/``https`` are accepted as synonyms), usually
        from :func:`tether._url.build_websocket_url`. ``headers`` are added to the upgrade
        request. Raises :class:`TransportError` (``"transport error"``, with ``status`` set
        when the server answered the upgrade with an HTTP error) if the connection cannot be
        opened, a malformed URL or header included; ``ValueError`` only for a
        ``max_message_size`` below 1. Cancellation is safe at any point: the socket is closed
        before the cancellation propagates.

        ``proxy``: reach the server through that HTTP proxy's ``CONNECT`` tunnel (TLS runs
        inside it); ``None`` connects directly. Choosing a proxy (the environment,
        ``NO_PROXY``) is the caller's business: ``_proxy.select_proxy``.
        """
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        endpoint = _endpoint(url, headers)
        if endpoint.secure and ssl_context is None:
            if self._default_ssl_context is None:
                self._default_ssl_context = ssl.create_default_context()
            ssl_context = self._default_ssl_context

        where = endpoint.where
        stream = await open_stream(
            endpoint.host,
            endpoint.port,
            secure=endpoint.secure,
            ssl_context=ssl_context,
            where=where,
            proxy=proxy,
        )
        try:
            trailing = await _upgrade(stream, endpoint, self._read_size)
            return self._open(stream, endpoint, trailing, max_message_size)
        except _CONNECT_ERRORS as exc:
            await anyio.aclose_forcefully(stream)
            raise TransportError(
                TRANSPORT_ERROR, f"WebSocket handshake with {where} failed: {describe(exc)}"
            ) from exc
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise

    def _open(
        self, stream: anyio.abc.ByteStream, endpoint: Endpoint, trailing: bytes, max_size: int
    ) -> _T:
        """Make the transport over ``stream``, whose upgrade the server has just accepted.

        ``trailing`` is what the server sent right behind its 101 response (frames, already
        read from the socket); ``max_size`` is the caller's ``max_message_size``.
        """
        raise NotImplementedError


async def open_stream(
    host: str,
    port: int,
    *,
    secure: bool,
    ssl_context: ssl.SSLContext | None,
    where: str,
    proxy: Proxy | None = None,
    tunnel: bool = True,
) -> anyio.abc.ByteStream:
    """A byte stream to ``host``:``port``: TCP, through ``proxy``'s ``CONNECT`` tunnel when
    there is one, then TLS when ``secure`` (verified with ``ssl_context``, which must be set
    then). Both WebSocket transports and the polling transport's HTTP connections open
    their connections here, so TLS and proxies behave the same for all of them.

    ``tunnel=False`` with a proxy returns the plain connection to the proxy itself (for
    absolute-form HTTP requests, polling over ``http``). ``where`` is the redacted URL the
    error texts name. Raises :class:`TransportError`; the socket is closed whenever this
    fails or is cancelled.
    """
    address = (host, port) if proxy is None else (proxy.host, proxy.port)
    try:
        # An IP address gets a bare socket stream (see _socket: no asyncio transport and
        # protocol per connection, no happy eyeballs for one address); a host name goes
        # through anyio.connect_tcp.
        tcp = await open_tcp(*address)
    except OSError as exc:
        if proxy is None:
            text = f"cannot connect to {where}: {describe(exc)}"
        else:
            text = f"cannot connect to the proxy {proxy.where} (for {where}): {describe(exc)}"
        raise TransportError(TRANSPORT_ERROR, text) from exc
    if proxy is not None:
        # Proxies that relay without TCP_NODELAY stall on delayed ACKs (see QuickAckStream).
        tcp = quick_ack(tcp)
    stream: anyio.abc.ByteStream = tcp
    try:
        if proxy is not None:
            if not tunnel:
                return tcp
            await _tunnel(tcp, proxy, host, port, where)
        if secure:
            if ssl_context is None:  # pragma: no cover - the connectors always pass one
                raise ValueError("a secure stream needs an ssl_context")
            # standard_compatible=False: many servers drop TLS without close_notify, and
            # WebSocket framing (and HTTP's Content-Length or chunks) already tells a complete
            # message from a truncated one.
            stream = await TLSStream.wrap(
                tcp, hostname=host, ssl_context=ssl_context, standard_compatible=False
            )
        return stream
    except IO_ERRORS as exc:
        await anyio.aclose_forcefully(tcp)
        raise TransportError(
            TRANSPORT_ERROR, f"TLS handshake with {where} failed: {describe(exc)}"
        ) from exc
    except BaseException:
        await anyio.aclose_forcefully(tcp)
        raise


async def _tunnel(
    tcp: anyio.abc.ByteStream, proxy: Proxy, host: str, port: int, where: str
) -> None:
    """``CONNECT`` through ``proxy`` to ``host``:``port``; a failure names the proxy."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:  # pragma: no cover - parse_url checked the host already
        ascii_host = host
    authority = f"[{ascii_host}]:{port}" if ":" in ascii_host else f"{ascii_host}:{port}"
    try:
        await open_tunnel(tcp, proxy, authority)
    except ProxyRefused as refused:
        raise TransportError(
            TRANSPORT_ERROR,
            f"the proxy {proxy.where} refused the tunnel to {authority} (for {where}) "
            f"with {refused}",
            status=refused.status,
        ) from None
    except _TUNNEL_ERRORS as exc:
        raise TransportError(
            TRANSPORT_ERROR,
            f"the proxy {proxy.where} failed to open a tunnel to {authority} (for {where}): "
            f"{describe(exc)}",
        ) from exc


async def _upgrade(stream: anyio.abc.ByteStream, endpoint: Endpoint, read_size: int) -> bytes:
    """The opening handshake (RFC 6455 4.1): send the request, read and check the answer.

    Returns what came right behind the 101 response. Raises :class:`TransportError` with the
    status for a refusal, ``UpgradeFailed`` for an answer that is not a valid acceptance (EOF
    before a whole one included).
    """
    key = new_key()
    await stream.send(upgrade_request(endpoint.target, endpoint.host_header, endpoint.headers, key))
    response = UpgradeResponse(key)
    try:
        while True:
            try:
                data = await stream.receive(read_size)
            except anyio.EndOfStream:
                data = b""  # EOF, which UpgradeResponse reports as a failed answer
            if response.receive_data(data):
                return response.trailing
    except UpgradeRefused as refused:
        # Engine.IO 1.9: Node answers a refused upgrade with 400 (bad EIO, unknown sid,
        # a transport it does not serve...) or 403, and says which in the body;
        # socket.io-client reports it as a connect_error and retries.
        text = await _refusal_text(stream, refused, endpoint, read_size)
        raise TransportError(
            TRANSPORT_ERROR,
            f"{endpoint.where} refused the WebSocket upgrade with HTTP {refused.status}"
            + (f': "{text}"' if text else ""),
            status=refused.status,
        ) from None


async def _refusal_text(
    stream: anyio.abc.ByteStream, refused: UpgradeRefused, endpoint: Endpoint, read_size: int
) -> str | None:
    """What the refusal's body says (``_upgrade.refusal_text``): the rest of it is read
    for at most :data:`REFUSAL_BODY_TIMEOUT`, so a body that trickles cannot turn the
    refusal into a timeout."""
    body = refused.body
    with anyio.move_on_after(REFUSAL_BODY_TIMEOUT):
        while not body.done:
            try:
                data = await stream.receive(read_size)
            except anyio.EndOfStream:
                data = b""
            except IO_ERRORS:
                break
            body.receive_data(data)
    query = urlsplit(endpoint.target).query
    secrets = [value for _, value in parse_qsl(query, keep_blank_values=True)]
    secrets += [item.partition("=")[2] for item in query.split("&")]  # as sent, encoded
    secrets += [value.decode("latin-1") for _, value in endpoint.headers]
    return refusal_text(body.data, secrets)


class SendLock:
    """A FIFO lock that holds no queue until two tasks contend for it.

    What ``anyio.Lock(fast_acquire=True)`` does for the transports' writes (an uncontended
    acquire does not checkpoint; waiters get the lock in the order they asked), without the
    deque every ``anyio.Lock`` keeps from birth, which each idle connection would hold for
    nothing. Contention is rare here: one task writes at a time as a rule, the transport's
    own pong the exception.
    """

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[anyio.Event] | None = None  # made on contention, dropped when empty

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def waiting(self) -> int:
        """How many tasks wait for the lock."""
        return len(self._waiters) if self._waiters else 0

    async def __aenter__(self) -> None:
        if not self._locked:
            self._locked = True
            return
        waiter = anyio.Event()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            if waiter.is_set():
                self._release()  # handed over as we were cancelled: hand it on
            else:
                waiters.remove(waiter)
                if not waiters and self._waiters is waiters:
                    self._waiters = None
            raise
        # The releasing task handed the lock over to us: it stayed locked.

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._waiters
        if waiters:
            waiter = waiters.pop(0)
            if not waiters:
                self._waiters = None
            waiter.set()
        else:
            self._locked = False


class StreamTransport(ReadDeadline):
    """An open WebSocket connection over an anyio byte stream; see :class:`Transport`.

    Subclasses bind a WebSocket library: ``_encode``/``_encode_many`` turn messages into
    frames, ``_feed`` hands received bytes (``None`` at EOF) to the library and turns what it
    decodes into queued messages (``self._ready``), owed control frames (``self._reply``) or
    an ending (``self._set_error``), and ``_closing_frame`` says goodbye.
    """

    #: Transport.name: both libraries speak RFC 6455.
    name: Final = "websocket"

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        *,
        where: str,
        read_size: int = DEFAULT_READ_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._stream = stream
        self._where = where
        self._read_size = read_size
        self._close_timeout = close_timeout
        # Decoded messages not yet returned, as a stack: the next one is last. Only an empty
        # stack is fed (a whole read's messages), then reversed; a list rather than a deque,
        # which is much larger empty, and an idle connection would hold it for nothing.
        self._ready: list[Message] = []
        self._reply = bytearray()  # control frames owed to the peer: pongs, the close echo
        self._send_lock = SendLock()
        self._error: TransportError | None = None
        self._close_code: int = NORMAL_CLOSURE
        self._poisoned = False  # a write was cancelled part-way: send nothing more
        self._shutdown_done: anyio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._error is not None else "open"
        return f"<{type(self).__name__} {self._where} {state}>"

    @property
    def closed(self) -> bool:
        """True once the connection ended (close, EOF, error) or ``aclose()`` was called."""
        return self._error is not None

    async def receive(self) -> Message | None:
        """Return the next message: ``str`` for a text frame, ``bytes`` for a binary frame.

        Messages decoded from an earlier read are returned straight from the queue, without
        a trip through the event loop; the call checkpoints whenever it has to read. Returns
        ``None`` instead of reading once ``read_deadline`` has passed, or when it passes
        while waiting for the socket. Raises :class:`TransportError` once the connection has
        ended, after every message that arrived before the end has been returned. Only one
        task may receive at a time.
        """
        ready = self._ready
        if ready:
            return ready.pop()
        return await self._receive_slow()

    async def send(self, message: Message) -> None:
        """Send one message as a single text (``str``) or binary (``bytes``) frame."""
        async with self._send_lock:
            if self._error is not None:
                self._raise_error()
            # The WebSocket libraries only refuse a message once the connection is closing,
            # and every way there sets self._error first (checked above).
            data = self._encode(message)
            if self._reply:  # a pong is owed: it rides along with this write
                data = bytes(self._reply) + data
                self._reply.clear()
            await self._write(data)

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send several messages, in order, in one write, with nothing in between."""
        async with self._send_lock:
            if self._error is not None:
                self._raise_error()
            chunks = [bytes(self._reply)] if self._reply else []
            chunks += self._encode_many(messages)
            if not chunks:
                await anyio.lowlevel.checkpoint()
                return
            self._reply.clear()
            await self._write(b"".join(chunks))

    async def aclose(self) -> None:
        """Send a close frame if that can be done within ``close_timeout``, then close.

        Idempotent; a second caller waits for the first close to finish. Never raises.
        Messages received but not yet returned are dropped: whoever closes is done reading.
        """
        self._set_error(TRANSPORT_CLOSE, f"the connection to {self._where} was closed locally")
        self._ready.clear()
        await self._shutdown()

    # --- what a subclass provides ------------------------------------------------------

    def _encode(self, message: Message) -> bytes:
        """One message as one frame, ready for the wire."""
        raise NotImplementedError

    def _encode_many(self, messages: Iterable[Message]) -> list[bytes]:
        """Several messages as frames, in order."""
        raise NotImplementedError

    def _feed(self, data: bytes | None) -> None:
        """Decode ``data`` (``None``: EOF) into messages, owed replies or an error."""
        raise NotImplementedError

    def _closing_frame(self, code: int) -> bytes:
        """A close frame with ``code``, or ``b""`` if the protocol has already sent one."""
        raise NotImplementedError

    # --- reading -----------------------------------------------------------------------

    async def _receive_slow(self) -> Message | None:
        ready = self._ready
        while True:
            if self._error is not None:
                await self._shutdown()
                if ready:
                    return ready.pop()
                self._raise_error()
            if ready:
                return ready.pop()
            # The read deadline is checked once per socket read, not per message: a busy
            # connection still sees its deadlines. It bounds everything this call waits
            # for: the owed pong's turn at the send lock and its write, then the read. A
            # writer stuck on a peer that stopped reading can then never hold up the
            # deadlines (the heartbeat would not fire), and a pong cut off part-way fails the
            # connection (see _write) rather than leaving half a frame.
            deadline = self._read_deadline
            if deadline == math.inf:  # nobody keeps time on this read: no scope to pay for
                await self._flush_and_read()
                continue
            if anyio.current_time() >= deadline:
                await anyio.lowlevel.checkpoint()  # a caller looping on None still yields
                return None
            with anyio.CancelScope(deadline=deadline) as scope:
                self._read_scope = scope
                try:
                    await self._flush_and_read()
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                # Cut off waiting (nothing lost: the socket streams' reads are cancel-safe;
                # anyio's TLS stream writes inside a read only for TLS post-handshake
                # messages) or writing the pong (then the connection has failed).
                return None

    async def _flush_and_read(self) -> None:
        """Write the control frames owed to the peer, then read once and decode what came:
        messages onto the ready stack, the end into ``self._error``."""
        if self._reply:
            await self._flush_reply()
            if self._error is not None:
                return
        try:
            data: bytes | None = await self._stream.receive(self._read_size)
        except anyio.EndOfStream:
            data = None
        except IO_ERRORS as exc:
            self._lost(exc)
            return
        self._feed(data)  # None: EOF
        self._ready.reverse()

    # --- writing -----------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        """Write ``data``; the caller holds the send lock."""
        try:
            await self._stream.send(data)
        except IO_ERRORS as exc:
            self._lost(exc)
            self._raise_error()
        except BaseException:
            # Cancelled: on trio a cancelled send may have written part of a frame, after
            # which nothing sent on this stream would parse. Refuse to send anything more.
            self._poisoned = True
            self._set_error(TRANSPORT_ERROR, f"a write to {self._where} was cancelled part-way")
            raise

    async def _flush_reply(self) -> None:
        async with self._send_lock:
            if not self._reply or self._error is not None:
                return  # a send() took the reply along, or the connection ended meanwhile
            data = bytes(self._reply)
            self._reply.clear()
            # A failure is recorded; receive() reports it after the messages already queued.
            with contextlib.suppress(TransportError):
                await self._write(data)

    # --- ending ------------------------------------------------------------------------

    def _set_error(
        self,
        reason: TransportErrorReason,
        message: str,
        *,
        code: int = NORMAL_CLOSURE,
        cause: BaseException | None = None,
    ) -> None:
        """Record why the transport ended; the first reason wins."""
        if self._error is None:
            error = TransportError(reason, message)
            error.__cause__ = cause
            self._error = error
            self._close_code = code

    def _lost(self, exc: BaseException) -> None:
        self._set_error(
            TRANSPORT_ERROR,
            f"the connection to {self._where} broke: {describe(exc)}",
            cause=exc,
        )

    def _raise_error(self) -> NoReturn:
        error = self._error
        assert error is not None
        # A fresh exception each time, so that tracebacks do not pile up on one object.
        raise TransportError(error.reason, str(error), status=error.status) from error.__cause__

    async def _shutdown(self) -> None:
        """Say goodbye if it can be done quickly, then drop the socket. Idempotent."""
        if self._shutdown_done is not None:
            with anyio.CancelScope(shield=True):  # bounded: the first caller is
                await self._shutdown_done.wait()
            return
        self._shutdown_done = anyio.Event()
        try:
            with anyio.move_on_after(self._close_timeout, shield=True):
                async with self._send_lock:
                    if not self._poisoned:
                        # RFC 6455 7.1.2 (start the closing handshake) or 7.1.7 (fail the
                        # connection, with the code that says why). We do not wait for the
                        # server's answer: the transport is over either way.
                        data = bytes(self._reply) + self._closing_frame(self._close_code)
                        self._reply.clear()
                        if data:
                            await self._stream.send(data)
        except IO_ERRORS:
            pass  # the socket is going away regardless
        finally:
            await anyio.aclose_forcefully(self._stream)
            self._shutdown_done.set()


def _endpoint(url: str, headers: Iterable[tuple[str, str]]) -> Endpoint:
    """Check ``url`` and ``headers``; a bad one fails the attempt with a TransportError."""
    where = redact_url(url)
    try:
        scheme, host, port, host_header, target = parse_url(url)
        extra_headers = encode_headers(headers)
    except (ValueError, TypeError) as exc:
        # Headers may come from a callable run for every attempt: a bad one fails the
        # attempt like any other, instead of escaping into the driver.
        raise TransportError(TRANSPORT_ERROR, f"cannot connect to {where}: {exc}") from None
    return Endpoint(where, _SECURE[scheme], host, port, host_header, target, extra_headers)


def parse_url(url: str) -> tuple[str, str, int, str, str]:
    """Split a ws/wss URL into (scheme, host, port, Host header, request target)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SECURE:
        raise ValueError(f"not a WebSocket URL: {redact_url(url)}")
    scheme = "wss" if _SECURE[scheme] else "ws"
    host = parts.hostname
    if not host:
        raise ValueError(f"the URL {redact_url(url)} has no host")
    try:
        explicit_port = parts.port
    except ValueError:
        explicit_port = 0
    if explicit_port == 0:
        raise ValueError(f"the URL {redact_url(url)} has an invalid port")
    try:
        ascii_host = host.encode("idna").decode("ascii")  # what the Host header carries
    except UnicodeError:
        raise ValueError(f"the URL {redact_url(url)} has an invalid host name") from None
    port = explicit_port or _DEFAULT_PORTS[scheme]
    # RFC 6455 4.1: Host names the port too unless it is the scheme's default; IPv6 literals
    # keep their brackets; an internationalized name is in its ASCII (punycode) form.
    host_header = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port != _DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.isascii():  # build_websocket_url percent-encodes; a hand-made URL may not
        raise ValueError(f"the URL {redact_url(url)} must be percent-encoded (ASCII only)")
    return scheme, host, port, host_header, target


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a low-level failure, for TransportError texts."""
    cause: BaseException | None = exc
    # anyio wraps the real reason: ConnectionFailed("All connection attempts failed") from
    # the OSError (or a group of them, one per address), BrokenResourceError from the OSError.
    while cause is not None and (not str(cause) or "connection attempts" in str(cause)):
        inner = cause.__cause__
        group = getattr(inner, "exceptions", None)
        cause = group[0] if group else inner
    if cause is None:
        if isinstance(exc, anyio.EndOfStream):
            return "the peer closed the connection"
        return type(exc).__name__
    number = getattr(cause, "errno", None)
    if (
        isinstance(number, int)
        and number > 0
        and not isinstance(cause, (ssl.SSLError, socket.gaierror))
    ):
        # Backends word socket errors differently (asyncio: "Connect call failed"); the errno
        # says the same thing everywhere.
        return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
    return str(cause)
