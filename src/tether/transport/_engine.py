"""Choosing the transport: WebSocket or HTTP long-polling, the fallback and the upgrade.

This sits above the transports and below the core: the core sees one :class:`Transport`
whatever happens here, and never the probe's ping and pong. specs/transports.md has the
whole story; in short:

* ``transports`` lists what to try, in order (socket.io-client's ``transports`` with
  ``tryAllTransports``). ``("websocket", "polling")``, the default: WebSocket first; when it
  cannot be opened (a proxy strips ``Upgrade``, the server allows only polling), polling.
  ``("polling", "websocket")``: start on polling and upgrade. One name forces that transport.
* A polling session upgrades to WebSocket when the server offers it (``upgrades`` in the
  OPEN packet), ``websocket`` is in ``transports`` and WebSocket has not just failed to open
  (Engine.IO v4 §Upgrade; socketio-protocol.md 1.7)::

      polling session S is open, every packet polled so far returned, no poll out
      -> open ws ...&transport=websocket&sid=S   (cookies of the session, same proxy)
      -> 2probe              <- 3probe
      hold new sends; wait for the post that is out
      -> 5                   then the held sends, in order, over WebSocket
      polling connections dropped (no CLOSE: the session goes on)

  It runs in the task that receives, at the moment it would otherwise send the next poll,
  so every packet that came by polling has been returned before any that comes by
  WebSocket. A probe that fails (refused, wrong answer, no answer within
  :data:`PROBE_TIMEOUT`) leaves the session on polling for good; one cut off by the read
  deadline is tried again at the next ``receive()``, at most :data:`PROBE_TRIES` times.
* One cookie jar per session: cookies set on the polling answers go with every later
  request, the WebSocket upgrade included; a new ``connect()`` starts with an empty jar.
* The proxy (explicit or from the environment) applies to every connection of the session.

``transport.name`` (``"websocket"`` or ``"polling"``) says what carries the session now; the
``tether.transport`` logger says at INFO level which transport each session opened on, and
when a fallback or an upgrade happens.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Sequence
from typing import Final

import anyio
import anyio.lowlevel

from tether._url import engine_url, redact_url

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Connector,
    Message,
    ReadDeadline,
    Transport,
    TransportError,
)
from ._cookies import SessionCookies
from ._polling import DEFAULT_MAX_POLL_SIZE, PollingConnector, PollingTransport
from ._proxy import Proxy, parse_proxy, select_proxy
from ._stream import StreamConnector, parse_url
from ._websocket import WebSocketConnector

__all__ = ["PROBE_TIMEOUT", "PROBE_TRIES", "TRANSPORT_NAMES", "EngineConnector", "EngineTransport"]

logger = logging.getLogger("tether.transport")

#: The transports a client may name, in the default order of ``transports``.
TRANSPORT_NAMES: Final = ("websocket", "polling")
#: How often a probe cut off by the read deadline is tried again.
PROBE_TRIES: Final = 3
#: The longest a probe may take (the WebSocket opened, ``2probe`` answered): polling waits
#: meanwhile, so a network that lets polling through but neither refuses nor answers a
#: WebSocket would otherwise stall the session until its heartbeat failed (python-engineio's
#: client bounds its upgrade by the same 5 s, its ``request_timeout``).
PROBE_TIMEOUT: Final = 5.0
#: The longest the switch waits for the post that is out (Node's ``upgradeTimeout``, 10 s,
#: is how long the server waits for our ``5``).
SWITCH_TIMEOUT: Final = 5.0


def check_transports(transports: Iterable[str]) -> tuple[str, ...]:
    """``transports`` as a tuple; ``ValueError`` unless it is non-empty, known names, each
    once. A bare string is refused (``"polling"`` is not ``("polling",)``)."""
    if isinstance(transports, str):
        raise TypeError(f"transports must be a sequence of names, like ({transports!r},)")
    names = tuple(transports)
    if not names:
        raise ValueError("transports must name at least one transport")
    for name in names:
        if name not in TRANSPORT_NAMES:
            raise ValueError(f"unknown transport {name!r}: use 'websocket' or 'polling'")
    if len(set(names)) != len(names):
        raise ValueError(f"transports names one twice: {names!r}")
    return names


class EngineConnector:
    """Opens a session on the first of ``transports`` that works; see the module docstring.

    ``websocket`` is the WebSocket connector (default: a :class:`WebSocketConnector`); to go
    through a proxy it must be a ``StreamConnector`` (both of tether's are). ``proxy`` is an
    ``http://[user:pass@]host:port`` URL or ``None``; ``trust_env`` reads the proxy
    variables of the environment when ``proxy`` is ``None``. Bad options are a
    ``ValueError`` (or ``TypeError``) here, never at connect.
    """

    def __init__(
        self,
        *,
        transports: Iterable[str] = TRANSPORT_NAMES,
        websocket: Connector | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        max_poll_size: int = DEFAULT_MAX_POLL_SIZE,
    ) -> None:
        self.transports = check_transports(transports)
        self._websocket: Connector = websocket if websocket is not None else WebSocketConnector()
        self._proxy: Proxy | None = None if proxy is None else parse_proxy(proxy)
        self._trust_env = bool(trust_env)
        self._polling = PollingConnector(
            proxy=self._proxy, trust_env=self._trust_env, max_poll_size=max_poll_size
        )

    def __repr__(self) -> str:
        return (
            f"EngineConnector(transports={self.transports!r}, proxy={self._proxy!r}, "
            f"trust_env={self._trust_env})"
        )

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 1_000_000,
    ) -> Transport:
        """Open a session at ``url`` (from :func:`tether._url.build_websocket_url`).

        Returns the WebSocket transport itself when the session starts on WebSocket, and an
        :class:`EngineTransport` (which may upgrade) when it starts on polling. Raises the
        :class:`TransportError` of the only transport tried, or one that names each
        transport's failure; ``ValueError`` only for a ``max_message_size`` below 1.
        """
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ValueError(f"max_message_size must be a positive int, not {max_message_size!r}")
        cookies = SessionCookies()
        failures: list[tuple[str, TransportError]] = []
        for position, name in enumerate(self.transports):
            try:
                if name == "websocket":
                    websocket = await self.open_websocket(
                        url, headers, ssl_context, max_message_size, cookies
                    )
                    if logger.isEnabledFor(logging.INFO):
                        logger.info(
                            "tether.transport: connected to %s by websocket", redact_url(url)
                        )
                    return websocket
                polling = await self._polling.connect(
                    url,
                    headers=headers,
                    ssl_context=ssl_context,
                    max_message_size=max_message_size,
                    cookies=cookies,
                )
            except TransportError as exc:
                failures.append((name, exc))
                if position + 1 < len(self.transports):
                    logger.info(
                        "tether.transport: %s failed (%s); trying %s",
                        name,
                        exc,
                        self.transports[position + 1],
                    )
                    continue
                raise _combined(failures) from exc
            upgrade = (
                "websocket" in self.transports
                and "websocket" in polling.open_packet.upgrades
                and not failures
            )
            logger.info("tether.transport: connected to %s by polling", polling.where)
            return EngineTransport(
                polling,
                self if upgrade else None,
                headers=headers,
                ssl_context=ssl_context,
                max_message_size=max_message_size,
            )
        raise AssertionError("unreachable: transports is never empty")  # pragma: no cover

    async def open_websocket(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
        cookies: SessionCookies,
        *,
        sid: str | None = None,
    ) -> Transport:
        """A WebSocket at ``url`` (``sid``: the polling session to upgrade), with the
        session's cookies and through the proxy that applies."""
        ws_url = engine_url(url, "websocket", sid=sid)
        cookie = cookies.header(ws_url)
        if cookie is not None:
            headers = _with_cookie(headers, cookie.decode("latin-1"))
        try:
            scheme, host, port, _, _ = parse_url(ws_url)
            proxy = select_proxy(
                host, port, secure=scheme == "wss", proxy=self._proxy, trust_env=self._trust_env
            )
        except (ValueError, TypeError):
            proxy = None  # a URL the connector refuses with a TransportError of its own
        connector = self._websocket
        if proxy is None:
            return await connector.connect(
                ws_url, headers=headers, ssl_context=ssl_context, max_message_size=max_message_size
            )
        if not isinstance(connector, StreamConnector):
            raise TransportError(
                TRANSPORT_ERROR,
                f"the WebSocket connector {type(connector).__name__} cannot go through a proxy",
            )
        transport: Transport = await connector.connect(
            ws_url,
            headers=headers,
            ssl_context=ssl_context,
            max_message_size=max_message_size,
            proxy=proxy,
        )
        return transport


def _with_cookie(headers: Sequence[tuple[str, str]], cookie: str) -> list[tuple[str, str]]:
    """The headers with the session's cookies added to the caller's own ``Cookie``, if any
    (RFC 6265 5.4: one ``Cookie`` header)."""
    out = []
    for name, value in headers:
        if isinstance(name, str) and name.lower() == "cookie":
            cookie = f"{value}; {cookie}"
        else:
            out.append((name, value))
    out.append(("Cookie", cookie))
    return out


def _combined(failures: list[tuple[str, TransportError]]) -> TransportError:
    """One error for an attempt every transport failed: the last one's, naming all."""
    last = failures[-1][1]
    if len(failures) == 1:
        return TransportError(last.reason, str(last), status=last.status)
    text = "; ".join(f"{name}: {error}" for name, error in failures)
    return TransportError(TRANSPORT_ERROR, text, status=last.status)


class EngineTransport(ReadDeadline):
    """A session that started on polling and may move to WebSocket; see :class:`Transport`.

    ``name`` is the transport carrying it now. Made by :meth:`EngineConnector.connect`.
    """

    def __init__(
        self,
        polling: PollingTransport,
        upgrader: EngineConnector | None,
        *,
        headers: Sequence[tuple[str, str]],
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
    ) -> None:
        self._current: Transport = polling
        self._polling: PollingTransport | None = polling
        self._upgrader = upgrader
        self._probe_tries = PROBE_TRIES
        self._headers = headers
        self._ssl_context = ssl_context
        self._max_message_size = max_message_size
        self._probe: Transport | None = None  # the WebSocket being probed
        self._held: list[Message] | None = None  # sends made while switching
        self._switched: anyio.Event | None = None  # set when the held sends are out
        self._switch_error: TransportError | None = None
        self._sending = 0  # sends under way on the current transport
        self._sends_done: anyio.Event | None = None  # set when _sending drops to 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<EngineTransport {self.name} {self._current!r}>"

    @property
    def name(self) -> str:
        """``"polling"`` or ``"websocket"``: what carries the session now."""
        return "polling" if self._polling is not None else "websocket"

    @property
    def closed(self) -> bool:
        """True once the session has ended or ``aclose()`` was called."""
        return self._closed or self._current.closed

    @property
    def read_deadline(self) -> float:
        return self._read_deadline

    @read_deadline.setter
    def read_deadline(self, deadline: float) -> None:
        self._read_deadline = deadline
        self._current.read_deadline = deadline
        scope = self._read_scope
        if scope is not None:  # a probe is under way: it keeps the deadline too
            scope.deadline = deadline

    async def receive(self) -> Message | None:
        """The next packet; the upgrade runs here when its moment has come."""
        polling = self._polling
        if (
            polling is not None
            and self._upgrader is not None
            and polling.idle
            and not polling.closed
            and not self._closed
        ):
            if anyio.current_time() >= self._read_deadline:
                await anyio.lowlevel.checkpoint()
                return None
            with anyio.CancelScope(deadline=self._read_deadline) as scope:
                self._read_scope = scope
                try:
                    await self._upgrade(polling, self._upgrader)
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                self._probe_tries -= 1
                if self._probe_tries <= 0:
                    self._upgrader = None
                return None
        return await self._current.receive()

    async def send(self, message: Message) -> None:
        """Send one message on the transport that carries the session now."""
        await self.send_many((message,))

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send several messages, in order; during the switch to WebSocket they are held
        and go over the WebSocket after ``5`` (specs/transports.md §The upgrade)."""
        held = self._held
        if held is not None:
            # The switch is under way: these go over WebSocket after "5", in order.
            held.extend(messages)
            switched = self._switched
            assert switched is not None
            await switched.wait()
            if self._switch_error is not None:
                error = self._switch_error
                raise TransportError(error.reason, str(error), status=error.status)
            return
        self._sending += 1
        try:
            await self._current.send_many(messages)
        finally:
            self._sending -= 1
            if not self._sending and self._sends_done is not None:
                self._sends_done.set()

    async def aclose(self) -> None:
        """End the session (a probe under way too); held sends fail. Never raises."""
        self._closed = True
        self._upgrader = None
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.aclose()
        await self._current.aclose()
        self._release_held(
            TransportError(TRANSPORT_CLOSE, "the session was closed locally"), sent=False
        )

    # --- the upgrade ----------------------------------------------------------------------

    async def _upgrade(self, polling: PollingTransport, upgrader: EngineConnector) -> None:
        """Probe a WebSocket for the polling session and switch to it; a failed probe
        leaves the session on polling (and says so). The caller bounds the probe with
        the read deadline."""
        where = polling.where
        try:
            with anyio.move_on_after(PROBE_TIMEOUT) as probing:
                probe = self._probe = await upgrader.open_websocket(
                    polling.url,
                    self._headers,
                    self._ssl_context,
                    self._max_message_size,
                    polling.cookies,
                    sid=polling.sid,
                )
                # Engine.IO v4 §Upgrade: the only ping a v4 client ever sends.
                await probe.send("2probe")
                answer = await probe.receive()
                while answer is None:  # pragma: no cover - no read deadline is set on the probe
                    answer = await probe.receive()
                if answer != "3probe":
                    raise TransportError(TRANSPORT_ERROR, "the server did not answer the probe")
            if probing.cancelled_caught:
                raise TransportError(
                    TRANSPORT_ERROR, f"no answer to the probe within {PROBE_TIMEOUT:g} s"
                )
        except TransportError as exc:
            self._upgrader = None
            await self._drop_probe()
            logger.info(
                "tether.transport: upgrade of %s to websocket failed (%s); staying on polling",
                where,
                exc,
            )
            return
        except BaseException:
            await self._drop_probe()  # cut off (the read deadline): tried again later
            raise
        with anyio.CancelScope(shield=True):
            await self._switch(polling, probe)

    async def _switch(self, polling: PollingTransport, probe: Transport) -> None:
        """Pause polling, send ``5`` and what was sent meanwhile over the WebSocket, and
        carry on there. Shielded: bounded by :data:`SWITCH_TIMEOUT` instead."""
        self._held = []
        self._switched = anyio.Event()
        polling.pause()
        with anyio.move_on_after(SWITCH_TIMEOUT) as waiting:
            while self._sending:
                self._sends_done = anyio.Event()
                await self._sends_done.wait()
        self._sends_done = None
        if waiting.cancelled_caught or polling.closed:
            # A post that does not end: give up the upgrade, send what was held by polling.
            polling.resume()
            self._upgrader = None
            await self._drop_probe()
            held, self._held = self._held, None
            try:
                if held:
                    await polling.send_many(held)
            except TransportError as exc:
                self._release_held(exc, sent=False)
            else:
                self._release_held(None, sent=True)
            return
        held = self._held
        try:
            await probe.send("5")
            while held:
                batch = held[:]
                held.clear()
                await probe.send_many(batch)
        except TransportError as exc:
            # "5" is out, or may be: the session cannot go back to polling.
            self._current = probe
            self._probe = None
            self._polling = None
            self._upgrader = None
            self._held = None
            await polling.detach()
            self._release_held(exc, sent=False)
            return
        self._held = None
        self._current = probe
        self._probe = None
        self._polling = None
        self._upgrader = None
        probe.read_deadline = self._read_deadline
        self._release_held(None, sent=True)
        await polling.detach()
        logger.info("tether.transport: %s upgraded: polling -> websocket", polling.where)

    async def _drop_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with anyio.CancelScope(shield=True):
                await probe.aclose()

    def _release_held(self, error: TransportError | None, *, sent: bool) -> None:
        switched, self._switched = self._switched, None
        self._held = None
        if switched is not None:
            self._switch_error = None if sent else error
            switched.set()
