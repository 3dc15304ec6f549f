"""The connection core: one Socket.IO client session, without I/O.

Theory of operation
-------------------

:class:`Connection` takes three kinds of input and produces two kinds of output::

    user calls       open, close, emit, call, ack, join, leave, send, broadcast, update_profile
    transport        transport_opened, transport_failed, transport_closed, receive
    time             handle_timer(now), with next_deadline() saying when it is due
            │
            ▼
    data_to_send()   whole WebSocket messages (str | bytes) for the current transport
    drain_events()   frozen events (_events.py): instructions for the driver, facts for the user

After **every** call into the core the driver must drain both, in that order: the core may
have queued a pong, a flush or an instruction to close the transport (an outbox is needed
because receiving a ping produces a pong; sans-io "Inputs and Outputs"). Every input that
depends on time takes ``now`` (seconds on any monotonic clock), and the core never reads a
clock or a random source of its own: the backoff jitter comes from the ``random`` callable
given at construction.

The lifecycle (idle, connecting, connected, reconnecting, closed) is owned by the table in
``_lifecycle.py``; this module decides which trigger to fire and does the bookkeeping around
it. Within CONNECTING and RECONNECTING an *attempt* goes through phases that are not
lifecycle states (no transport yet → transport opening → transport open, waiting for the
Engine.IO handshake → namespace CONNECT sent); ``_phase`` tracks them.

Bad input from the network never raises out of the core: a malformed packet becomes the
disconnect reason ``"parse error"`` and, by the rules of contract 2.2, a reconnect. Misuse by
the caller raises at the call site (``ValueError``/``TypeError``, or
:class:`LocalProtocolError` for calls the current state does not allow).
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import _json
from ._backoff import backoff_delay
from ._buffer import BufferedMessage, OfflineBuffer
from ._engineio import decode_engine_packet, parse_handshake
from ._errors import (
    AckTimeout,
    BufferFull,
    ConnectError,
    DecodeError,
    Disconnected,
    LocalProtocolError,
)
from ._events import (
    AckFailed,
    AckReceived,
    CloseTransport,
    ConnectFailed,
    Event,
    EventReceived,
    MessageDropped,
    OpenTransport,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    StateChanged,
)
from ._lifecycle import Lifecycle, State, Trigger
from ._options import CoreOptions, OverflowPolicy
from ._socketio import (
    RESERVED_EVENTS,
    Packet,
    PacketDecoder,
    PacketType,
    _is_event_payload,
    encode_packet,
)

__all__ = ["Connection", "DisconnectReason"]


class DisconnectReason:
    """The disconnect reasons of Socket.IO (contract 2.2), as constants."""

    CLIENT: Final = "io client disconnect"
    SERVER: Final = "io server disconnect"
    PING_TIMEOUT: Final = "ping timeout"
    TRANSPORT_CLOSE: Final = "transport close"
    TRANSPORT_ERROR: Final = "transport error"
    PARSE_ERROR: Final = "parse error"


#: Events the server may send before its CONNECT reply (connection state recovery replays
#: missed packets first, socketio-protocol.md §3.6) are held until the reply. A server that
#: sends more than this many, or more bytes than the offline buffer may hold
#: (``max_buffered_bytes``), before replying is treated as broken ("parse error").
MAX_HELD_EVENTS: Final = 100_000

#: The pingInterval (ms) assumed when a server announces 0. python-engineio advertises
#: ``int(seconds) * 1000``, so a sub-second interval is announced as 0 (socketio-protocol.md
#: §1.3, pitfall 2); the real interval is then below one second, so one second is safe.
ZERO_PING_INTERVAL_MS: Final = 1000


#: The hub's channel-state events: restored by every connect, so never re-sent from a queue.
_CHANNEL_STATE_EVENTS: Final = frozenset({"join", "leave", "update"})


_CONNECTED: Final = State.CONNECTED


class _Phase(enum.Enum):
    """Where the current attempt's transport is. Not a lifecycle state."""

    NONE = "none"  # no transport (waiting, connected-then-lost, closed)
    OPENING = "opening"  # OpenTransport issued, waiting for transport_opened/failed
    OPEN = "open"  # transport open, waiting for the Engine.IO OPEN packet
    ENGINE_OPEN = "engine_open"  # handshake done, namespace CONNECT sent (or connected)


_ENGINE_OPEN: Final = _Phase.ENGINE_OPEN


@dataclass(slots=True)
class _PendingCall:
    #: The buffer key while the packet waits offline; None once it was written.
    buffer_key: int | None


class Connection:
    """One Socket.IO v5 client session over Engine.IO v4, as a pure state machine."""

    def __init__(self, options: CoreOptions | None = None, *, random: Callable[[], float]) -> None:
        # At most 29 attributes: CPython 3.11 stops sharing an instance dict's keys at 30,
        # and an unshared dict costs 1.3 KB more per client.
        self.options = options if options is not None else CoreOptions()
        self._random = random
        self._lifecycle = Lifecycle()
        self._outbox: list[str | bytes] = []
        self._events: list[Event] = []
        self._decoder = PacketDecoder()
        self._nsp = self.options.namespace
        self._phase = _Phase.NONE
        self._token = 0
        self._auth: dict[str, Any] | None = None
        self._attempt = 0  # reconnect attempt number; 0 = first attempt / not reconnecting
        self._attempt_deadline: float | None = None
        self._retry_at: float | None = None
        # Heartbeat (Engine.IO v4 §"Heartbeat"): any inbound message proves the server alive.
        self._heartbeat_window: float | None = None
        self._last_received = 0.0
        self._max_payload = self.options.max_payload
        self._sid: str | None = None
        self._recovered = False
        # Connection state recovery (socketio-protocol.md §3): the private id and last offset.
        self._pid: str | None = None
        self._offset: str | None = None
        self._held: list[Packet] = []
        self._held_bytes = 0
        # Acks we wait for, by id (ids count up from 0 for the client's lifetime: unique per
        # namespace, as Socket.IO v5 requires, and never reused within a session).
        self._next_call_id = 0
        self._calls: dict[int, _PendingCall] = {}
        self._call_deadlines: list[tuple[float, int]] = []
        self._buffer = OfflineBuffer(self.options.max_buffered, self.options.max_buffered_bytes)
        # Channels (contract 2.4/2.5): membership is state, not a queue of messages. What the
        # user wants, and what the server of the current session has been told.
        self._channels: dict[str, bool] = {}
        self._server_channels: dict[str, bool] = {}
        self._profile: tuple[Any, bool] | None = None

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> State:
        return self._lifecycle.state

    @property
    def is_connected(self) -> bool:
        return self._lifecycle.state is State.CONNECTED

    @property
    def sid(self) -> str | None:
        """The namespace's Socket.IO id while connected, else ``None``."""
        return self._sid

    @property
    def recovered(self) -> bool:
        """Whether the last connect restored the previous session (CSR)."""
        return self._recovered

    @property
    def attempt(self) -> int:
        """The current reconnect attempt number; 0 when not reconnecting."""
        return self._attempt

    @property
    def buffered(self) -> int:
        """How many messages wait in the offline buffer."""
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        return self._buffer.bytes

    @property
    def channels(self) -> Mapping[str, bool]:
        """The channels the user has joined, with their echo flags."""
        return dict(self._channels)

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str | bytes]:
        """The messages to write, in order, on the current transport; clears the outbox."""
        out = self._outbox
        self._outbox = []
        return out

    def drain_events(self) -> list[Event]:
        """What happened since the last drain, in order; clears the list."""
        events = self._events
        self._events = []
        return events

    @property
    def attempt_deadline(self) -> float | None:
        """When the connection attempt in flight times out (``timeout``), if one is."""
        return self._attempt_deadline

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None`` for never."""
        deadline: float | None = None
        if self._retry_at is not None:
            deadline = self._retry_at
        if self._attempt_deadline is not None and (
            deadline is None or self._attempt_deadline < deadline
        ):
            deadline = self._attempt_deadline
        if self._heartbeat_window is not None:
            heartbeat = self._last_received + self._heartbeat_window
            if deadline is None or heartbeat < deadline:
                deadline = heartbeat
        deadlines = self._call_deadlines
        while deadlines and deadlines[0][1] not in self._calls:
            heapq.heappop(deadlines)
        if deadlines and (deadline is None or deadlines[0][0] < deadline):
            deadline = deadlines[0][0]
        return deadline

    # ------------------------------------------------------------------ user calls

    def open(self, *, now: float) -> None:
        """Start connecting from IDLE or CLOSED; a no-op in any other state (contract 2.2)."""
        if not self._lifecycle.allows(Trigger.OPEN):
            return
        self._attempt = 0
        self._fire(Trigger.OPEN)
        self._start_attempt(now)

    def close(self, *, now: float) -> None:
        """Close on purpose; nothing reconnects until :meth:`open`. Idempotent.

        Ends the server-side session too (a ``DISCONNECT`` is sent when connected), so the
        next ``open()`` does not ask for connection state recovery.
        """
        state = self._lifecycle.state
        # The user ends the session: no recovery on the next open(), even when the client
        # was already CLOSED (after reconnect_failed, or with reconnection disabled).
        self._pid = self._offset = None
        if state is State.CLOSED:
            return
        if state is State.CONNECTED:
            # Socket.IO v5 §"Disconnection": DISCONNECT for the namespace, then close the
            # transport (socket.io-client sends no Engine.IO close packet on WebSocket, §1.8).
            self._send_packet(Packet(PacketType.DISCONNECT, self._nsp))
            self._lose_session(DisconnectReason.CLIENT)
        self._stop_attempt()
        self._retry_at = None
        self._attempt = 0
        self._fire(Trigger.CLOSE, reason=DisconnectReason.CLIENT)

    def emit(self, event: str, *args: Any, now: float) -> None:
        """Emit ``event`` with ``args``: sent now when connected, else buffered (2.5).

        Raises ``ValueError`` for a reserved or empty event name, ``TypeError``/``ValueError``
        for arguments JSON cannot carry, and :class:`BufferFull` when offline with a full
        buffer and the ``raise`` policy.
        """
        _check_event_name(event)
        self._emit_packet(event, [event, *args], None, now)

    def call(self, event: str, *args: Any, timeout: float | None, now: float) -> int:
        """Emit ``event`` asking for an acknowledgement; returns the call's id.

        The outcome arrives later as :class:`AckReceived` or :class:`AckFailed` with that id,
        exactly once. A call still in the offline buffer when its timeout expires is withdrawn
        and never sent.
        """
        _check_event_name(event)
        if timeout is not None and not (timeout > 0):
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        call_id = self._next_call_id
        self._next_call_id += 1
        # _emit_packet registers the call once its packet is written or buffered, not
        # before: an emit into an expired heartbeat loses the session first, and that must
        # not fail a call whose packet was never written (it is buffered and waits).
        if self._emit_packet(event, [event, *args], call_id, now) and timeout is not None:
            heapq.heappush(self._call_deadlines, (now + timeout, call_id))
        return call_id

    def ack(self, ack_id: int, *args: Any) -> None:
        """Acknowledge the server's event ``ack_id`` with ``args``.

        Acks belong to the session that asked for them: once it is gone, this does nothing.
        """
        if self._lifecycle.state is not State.CONNECTED:
            return
        self._send_packet(Packet(PacketType.ACK, self._nsp, list(args), ack_id))

    # --- channels (contract 2.4): the hub's wire format ---------------------------------

    def join(self, channel: str, echo: bool | None = None, *, now: float) -> None:
        _check_channel(channel)
        flag = self._echo(echo)
        if not self.options.auto_join_channels:
            self.emit("join", {"channel": channel, "echo": flag}, now=now)
            return
        self._channels[channel] = flag
        if self._server_channels.get(channel) != flag and self._connected(now):
            self._server_channels[channel] = flag
            self._send_event("join", {"channel": channel, "echo": flag})

    def leave(self, channel: str, echo: bool | None = None, *, now: float) -> None:
        _check_channel(channel)
        flag = self._echo(echo)
        if not self.options.auto_join_channels:
            self.emit("leave", {"channel": channel, "echo": flag}, now=now)
            return
        self._channels.pop(channel, None)
        if channel not in self._server_channels:
            return
        if self._connected(now):
            del self._server_channels[channel]
            self._send_event("leave", {"channel": channel, "echo": flag})
        else:
            # The leave goes out at the next connect if that session is a recovered one
            # (_restore_channels), with this call's own echo flag, not the join's (2.4).
            self._server_channels[channel] = flag

    def send(
        self, channel: str, event: str, message: Any, echo: bool | None = None, *, now: float
    ) -> None:
        _check_channel(channel)
        _check_event_name(event)
        payload = {
            "channel": channel,
            "eventName": event,
            "message": message,
            "echo": self._echo(echo),
        }
        self.emit("message", payload, now=now)

    def broadcast(self, event: str, message: Any, echo: bool | None = None, *, now: float) -> None:
        _check_event_name(event)
        payload = {"eventName": event, "message": message, "echo": self._echo(echo)}
        self.emit("message", payload, now=now)

    def update_profile(self, data: Any, echo: bool | None = None, *, now: float) -> None:
        flag = self._echo(echo)
        payload = {"data": data, "echo": flag}
        _json.dumps(payload)  # refuse non-JSON data here, at the caller's line
        if not self.options.auto_join_channels:
            self.emit("update", payload, now=now)
            return
        self._profile = (data, flag)
        if self._connected(now):
            self._send_profile()

    # ------------------------------------------------------------------ transport inputs

    def transport_opened(self, token: int, auth: Mapping[str, Any] | None, *, now: float) -> None:
        """The transport for ``token`` is open; ``auth`` is this attempt's auth payload.

        Reports for a token the core no longer waits for are ignored (a connect that finished
        after the core gave up on it).
        """
        if token != self._token or self._phase is not _Phase.OPENING:
            return
        if auth is not None and not isinstance(auth, Mapping):
            raise TypeError(f"auth must be a mapping or None, got {type(auth).__name__}")
        auth = dict(auth) if auth is not None else None
        # Refuse what JSON cannot carry here, not later on the read path (the handshake).
        _json.dumps(auth)
        self._auth = auth
        self._phase = _Phase.OPEN
        self._last_received = now

    def transport_failed(self, token: int, message: str, *, now: float) -> None:
        """The transport for ``token`` could not be opened (refused, TLS, HTTP status ...)."""
        if token != self._token or self._phase is not _Phase.OPENING:
            return
        self._phase = _Phase.NONE
        self._attempt_failed(ConnectError(message), now)

    def transport_closed(
        self, token: int, reason: str, *, now: float, unsent: Sequence[str | bytes] = ()
    ) -> None:
        """The open transport for ``token`` closed (``"transport close"``/``"transport error"``).

        ``unsent`` are messages the driver took from :meth:`data_to_send` but never handed to
        the transport before it died. The user's events and calls among them go back into the
        offline buffer, in order, and leave again after the reconnect (contract 2.5, nothing
        lost; the calls keep waiting instead of failing with ``Disconnected``). The rest
        belonged to the dead session and is dropped: pongs, acks, CONNECT/DISCONNECT, and the
        channel state (``join``/``leave``/``update``), which every connect restores anyway.
        """
        if token != self._token or self._phase in (_Phase.NONE, _Phase.OPENING):
            return
        self._phase = _Phase.NONE
        self._decoder.reset()
        if unsent and self._lifecycle.state is State.CONNECTED:
            self._requeue(unsent)
        self._connection_broken(reason, now, transport_gone=True)

    def receive(self, message: str | bytes, *, now: float) -> None:
        """One whole WebSocket message from the current transport (the hot path)."""
        phase = self._phase
        if phase is _Phase.NONE or phase is _Phase.OPENING:
            raise LocalProtocolError("receive() without an open transport")
        self._last_received = now
        if (
            type(message) is str
            and message[:3] == "42["
            and phase is _ENGINE_OPEN
            and self._nsp == "/"  # (not an attribute of its own: 30 would unshare the dict)
            and self._lifecycle.state is _CONNECTED
            and self._decoder._pending is None  # no binary packet half-received
        ):
            # The fast path for what a busy connection receives most: an EVENT on "/" without
            # an ack id, while connected. One slice, one JSON parse, no Packet. Anything it
            # does not accept falls through to the general path, which reports the error.
            try:
                data = _json.loads(message[2:])
            except ValueError:
                data = None
            if _is_event_payload(data):
                self._deliver(data, None)
                return
        try:
            if type(message) is str:
                kind = message[:1]
                if kind == "4":  # Engine.IO MESSAGE carrying a Socket.IO packet
                    if phase is not _Phase.ENGINE_OPEN:
                        raise DecodeError("message before the Engine.IO handshake")
                    packet = self._decoder.feed_text(message[1:])
                elif kind == "2":  # PING: answer with PONG carrying the same data (§1.4)
                    self._outbox.append("3" + message[1:])
                    return
                elif kind == "0":
                    self._on_handshake(message[1:], phase)
                    return
                elif kind == "1":  # CLOSE from the server: counts as "transport close" (2.2)
                    self._connection_broken(DisconnectReason.TRANSPORT_CLOSE, now)
                    return
                elif kind in ("6", "3", "5"):  # NOOP, stray PONG/UPGRADE
                    return
                elif kind == "b":  # base64 binary MESSAGE (§1.2)
                    if phase is not _Phase.ENGINE_OPEN:
                        raise DecodeError("message before the Engine.IO handshake")
                    data = decode_engine_packet(message).data
                    assert isinstance(data, bytes)
                    packet = self._decoder.feed_binary(data)
                else:
                    raise DecodeError(f"unknown Engine.IO packet type {kind!r}")
            elif isinstance(message, (bytes, bytearray, memoryview)):
                if phase is not _Phase.ENGINE_OPEN:
                    raise DecodeError("binary message before the Engine.IO handshake")
                packet = self._decoder.feed_binary(bytes(message))
            else:
                raise TypeError(f"message must be str or bytes, got {type(message).__name__}")
            if packet is not None:
                self._on_packet(packet, now)
        except DecodeError:
            self._connection_broken(DisconnectReason.PARSE_ERROR, now)

    # ------------------------------------------------------------------ time

    def handle_timer(self, *, now: float) -> None:
        """Do what is due at ``now``: retries, attempt timeouts, heartbeat, ack timeouts."""
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._start_attempt(now)
        if self._attempt_deadline is not None and now >= self._attempt_deadline:
            self._attempt_deadline = None
            self._close_transport()
            self._attempt_failed(ConnectError("timeout"), now)
        if self._heartbeat_expired(now):
            self._connection_broken(DisconnectReason.PING_TIMEOUT, now)
        deadlines = self._call_deadlines
        while deadlines and deadlines[0][0] <= now:
            _, call_id = heapq.heappop(deadlines)
            pending = self._calls.pop(call_id, None)
            if pending is None:
                continue
            if pending.buffer_key is not None:
                self._buffer.withdraw(pending.buffer_key)
            self._events.append(AckFailed(call_id, AckTimeout("no ack within the timeout")))

    # ------------------------------------------------------------------ internals: lifecycle

    def _fire(
        self,
        trigger: Trigger,
        *,
        reason: str | None = None,
        attempt: int = 0,
        retry_in: float | None = None,
    ) -> None:
        previous, current = self._lifecycle.fire(trigger)
        self._events.append(StateChanged(previous, current, reason, attempt, retry_in))

    def _start_attempt(self, now: float) -> None:
        self._token += 1
        self._phase = _Phase.OPENING
        self._attempt_deadline = now + self.options.timeout
        if self._attempt:
            self._events.append(ReconnectAttemptStarted(self._attempt))
        self._events.append(OpenTransport(self._token, self._attempt))

    def _stop_attempt(self) -> None:
        """Forget the attempt in flight, closing its transport if there is one."""
        if self._phase is not _Phase.NONE:
            self._close_transport()
        self._attempt_deadline = None

    def _close_transport(self) -> None:
        self._phase = _Phase.NONE
        self._heartbeat_window = None
        self._decoder.reset()
        self._held.clear()
        self._held_bytes = 0
        self._events.append(CloseTransport(self._token))

    def _on_handshake(self, payload: str, phase: _Phase) -> None:
        # Engine.IO v4 §"Handshake": the server speaks first, once.
        if phase is not _Phase.OPEN:
            raise DecodeError("a second Engine.IO OPEN packet")
        handshake = parse_handshake(payload)
        # A 0 interval can only be python-engineio's truncation of a sub-second one; any other
        # value is taken as announced (Node's are exact).
        interval = handshake.ping_interval or ZERO_PING_INTERVAL_MS
        self._heartbeat_window = (interval + handshake.ping_timeout) / 1000.0
        self._max_payload = handshake.max_payload or self.options.max_payload
        self._phase = _Phase.ENGINE_OPEN
        auth = self._auth
        if self._pid is not None and self._offset is not None:
            # CSR (socketio-protocol.md §3.5): pid and offset ride in the CONNECT payload;
            # the user's auth keys win on a collision, as in socket.io-client.
            auth = {"pid": self._pid, "offset": self._offset, **(auth or {})}
        self._send_packet(Packet(PacketType.CONNECT, self._nsp, auth))

    def _on_packet(self, packet: Packet, now: float) -> None:
        if packet.namespace != self._nsp:
            return  # another namespace of the same server: not ours to handle
        kind = packet.type
        connected = self._lifecycle.state is State.CONNECTED
        if kind is PacketType.EVENT or kind is PacketType.BINARY_EVENT:
            if connected:
                self._deliver(packet.data, packet.id)
            elif len(self._held) < MAX_HELD_EVENTS and self._hold_fits(packet):
                # Socket.IO v5 §2.4 / pitfall 10: events may precede the CONNECT reply.
                self._held.append(packet)
            else:
                raise DecodeError("too many events before the CONNECT reply")
        elif kind is PacketType.ACK or kind is PacketType.BINARY_ACK:
            # While connected the buffer is empty (flushed on connect), so every pending
            # call has been written; an ack for an unknown id is ignored (§2.5).
            if connected and self._calls.pop(packet.id, None) is not None:  # type: ignore[arg-type]
                self._events.append(AckReceived(packet.id, tuple(packet.data)))  # type: ignore[arg-type]
        elif kind is PacketType.CONNECT:
            if connected:
                raise DecodeError("a CONNECT reply while already connected")
            data = packet.data
            if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
                # socket.io-client treats a reply without sid as an error (a v2 server).
                raise DecodeError("CONNECT reply without a sid")
            pid = data.get("pid")
            self._on_connected(data["sid"], pid if isinstance(pid, str) else None, now)
        elif kind is PacketType.CONNECT_ERROR:
            if connected:
                raise DecodeError("CONNECT_ERROR while connected")
            self._refused(packet.data, now)
        elif connected:  # DISCONNECT
            self._server_disconnected()
        else:
            # python-socketio's always_connect mode may refuse with DISCONNECT + payload.
            self._refused(packet.data, now)

    def _hold_fits(self, packet: Packet) -> bool:
        # Only before the CONNECT reply, so measuring by re-encoding costs the hot path nothing.
        text, attachments = _json.dumps_with_binary(packet.data)
        self._held_bytes += len(text) + sum(len(a) for a in attachments)
        return self._held_bytes <= self.options.max_buffered_bytes

    def _on_connected(self, sid: str, pid: str | None, now: float) -> None:
        self._recovered = pid is not None and pid == self._pid and self._offset is not None
        self._pid = pid
        if not self._recovered:
            self._offset = None
            self._server_channels = {}
        # Even a recovered session gets every join and the profile again: CSR replays only
        # server→client packets, so a join written just before the drop may never have
        # arrived (socket.io #5363). Joins and profile updates are idempotent on the hub.
        self._sid = sid
        self._attempt_deadline = None
        attempt = self._attempt
        self._attempt = 0
        self._fire(Trigger.CONNECT_SUCCEEDED, attempt=attempt)
        self._events.append(SocketConnected(sid, self._recovered))
        if attempt:
            self._events.append(Reconnected(attempt))
        # Contract 2.5, after each (re)connect: CONNECT (done) → re-join channels with their
        # own echo flags → restore the last profile → flush the buffer → new emits.
        self._restore_channels()
        if self._profile is not None:
            self._send_profile()
        self._flush_buffer()
        held, self._held = self._held, []
        self._held_bytes = 0
        for packet in held:
            self._deliver(packet.data, packet.id)

    def _restore_channels(self) -> None:
        server = self._server_channels
        for channel in [c for c in server if c not in self._channels]:
            self._send_event("leave", {"channel": channel, "echo": server.pop(channel)})
        for channel, flag in self._channels.items():
            server[channel] = flag
            self._send_event("join", {"channel": channel, "echo": flag})

    def _send_profile(self) -> None:
        assert self._profile is not None
        data, flag = self._profile
        self._send_event("update", {"data": data, "echo": flag})

    def _flush_buffer(self) -> None:
        outbox = self._outbox
        calls = self._calls
        for message in self._buffer.drain():
            outbox.extend(message.frames)
            if message.call_id is not None:
                calls[message.call_id].buffer_key = None

    def _deliver(self, data: list[Any], ack_id: int | None) -> None:
        if self._pid is not None and ack_id is None and len(data) > 1:
            last = data[-1]
            if type(last) is str:
                # CSR: the server appended the packet's offset as the last argument (§3.2).
                self._offset = last
                self._events.append(EventReceived(_event_name(data[0]), tuple(data[1:-1]), None))
                return
        self._events.append(EventReceived(_event_name(data[0]), tuple(data[1:]), ack_id))

    def _refused(self, payload: Any, now: float) -> None:
        # CONNECT_ERROR: Node sends {message, data?}; python-socketio may send a bare string
        # (socketio-protocol.md §2.4, pitfall 12). A refusal is final: no retry (2.2).
        if isinstance(payload, dict):
            message = payload.get("message")
            error = ConnectError(
                message if isinstance(message, str) else "connection refused",
                payload.get("data"),
                refused=True,
            )
        else:
            error = ConnectError(
                payload if isinstance(payload, str) else "connection refused", None, refused=True
            )
        self._stop_attempt()
        self._pid = self._offset = None
        self._events.append(ConnectFailed(error))
        self._end(error.message)

    def _server_disconnected(self) -> None:
        self._lose_session(DisconnectReason.SERVER)
        self._close_transport()
        self._pid = self._offset = None
        self._end(DisconnectReason.SERVER)

    def _end(self, reason: str) -> None:
        self._retry_at = None
        self._attempt = 0
        self._fire(Trigger.END, reason=reason)

    def _lose_session(self, reason: str) -> None:
        """Leave CONNECTED: report the disconnect and fail the calls already written."""
        self._sid = None
        self._events.append(SocketDisconnected(reason))
        for call_id in [c for c, p in self._calls.items() if p.buffer_key is None]:
            del self._calls[call_id]
            self._events.append(AckFailed(call_id, Disconnected(reason)))

    def _connection_broken(self, reason: str, now: float, *, transport_gone: bool = False) -> None:
        """The transport is unusable for ``reason``: reconnect or stop, by the rules of 2.2."""
        if not transport_gone:
            self._close_transport()
        self._heartbeat_window = None
        self._held.clear()
        self._held_bytes = 0
        if self._lifecycle.state is State.CONNECTED:
            self._lose_session(reason)
            if not self.options.reconnection:
                self._end(reason)
                return
            self._attempt = 0
            self._schedule_retry(Trigger.CONNECTION_LOST, reason, now)
        else:
            self._attempt_failed(ConnectError(reason), now)

    def _attempt_failed(self, error: ConnectError, now: float) -> None:
        self._attempt_deadline = None
        self._events.append(ConnectFailed(error))
        if not self.options.reconnection:
            self._end(error.message)
            return
        self._schedule_retry(Trigger.ATTEMPT_FAILED, error.message, now)

    def _schedule_retry(self, trigger: Trigger, reason: str, now: float) -> None:
        limit = self.options.reconnection_attempts
        if limit is not None and self._attempt >= limit:
            self._events.append(ReconnectFailed())
            self._end("reconnect failed")
            return
        self._attempt += 1
        options = self.options
        delay = backoff_delay(
            self._attempt,
            options.reconnection_delay,
            options.reconnection_delay_max,
            options.randomization_factor,
            self._random(),
        )
        self._retry_at = now + delay
        self._fire(trigger, reason=reason, attempt=self._attempt, retry_in=delay)

    # ------------------------------------------------------------------ internals: sending

    def _connected(self, now: float) -> bool:
        """Whether the session is CONNECTED, once a heartbeat that has already expired (the
        timer is late) has had its verdict: channel state is never written into a dead
        connection, where a recovered session would then believe it had arrived."""
        if self._lifecycle.state is not State.CONNECTED:
            return False
        if self._heartbeat_expired(now):
            self.handle_timer(now=now)
            return False
        return True

    def _heartbeat_expired(self, now: float) -> bool:
        """No inbound message for pingInterval + pingTimeout (Engine.IO v4 "Heartbeat")."""
        window = self._heartbeat_window
        return window is not None and now >= self._last_received + window

    def _echo(self, echo: bool | None) -> bool:
        if echo is None:
            return self.options.echo_messages
        if not isinstance(echo, bool):
            raise TypeError(f"echo must be a bool or None, got {type(echo).__name__}")
        return echo

    def _send_packet(self, packet: Packet) -> None:
        text, attachments = encode_packet(packet)
        self._outbox.append("4" + text)
        if attachments:
            self._outbox.extend(attachments)

    def _send_event(self, event: str, payload: Any) -> None:
        self._send_packet(Packet(PacketType.EVENT, self._nsp, [event, payload]))

    def _emit_packet(self, event: str, data: list[Any], call_id: int | None, now: float) -> bool:
        """Write or buffer one EVENT; register ``call_id`` as pending unless it was dropped.

        Returns whether the message was written or buffered (False: dropped and reported).
        """
        text, attachments = encode_packet(Packet(PacketType.EVENT, self._nsp, data, call_id))
        frames: tuple[str | bytes, ...] = ("4" + text, *attachments)
        size = len(frames[0])
        if size * 4 > self._max_payload:
            # maxPayload counts bytes; only measure UTF-8 when characters could exceed it.
            size = len(text.encode()) + 1
        if size > self._max_payload or any(len(a) > self._max_payload for a in attachments):
            raise ValueError(
                f"message of {size} bytes exceeds the server's maxPayload of {self._max_payload}"
            )
        expired = False
        if self._lifecycle.state is State.CONNECTED:
            # The heartbeat may have expired while the timer has not run yet (throttled
            # timers, socket.io-client's _hasPingExpired): don't write into a dead connection.
            expired = self._heartbeat_expired(now)
            if not expired:
                self._outbox.extend(frames)
                if call_id is not None:
                    self._calls[call_id] = _PendingCall(None)
                return True
        size += sum(len(a) for a in attachments)
        buffer = self._buffer
        policy = self.options.overflow
        buffering = self.options.buffer_messages
        if buffering and policy is OverflowPolicy.RAISE and not buffer.fits(size):
            # Refused before anything changed: a call that raises has no other effect.
            raise BufferFull(
                f"the offline buffer is full ({len(buffer)} messages, {buffer.bytes} bytes)"
            )
        if expired:
            self.handle_timer(now=now)  # the timer's verdict lands first, then we buffer
        if not buffering:
            self._report_drop(event, call_id, "not connected")
            return False
        if not buffer.fits(size):
            if policy is OverflowPolicy.DROP_NEWEST or size > buffer.max_bytes:
                # A message larger than the whole buffer can only drop itself.
                self._report_drop(event, call_id, "buffer full")
                return False
            while not buffer.fits(size):
                dropped = buffer.pop_oldest()
                self._report_drop(dropped.event, dropped.call_id, "buffer full")
        key = buffer.push(BufferedMessage(frames, size, event, call_id))
        if call_id is not None:
            self._calls[call_id] = _PendingCall(key)
        return True

    def _requeue(self, frames: Sequence[str | bytes]) -> None:
        """Put the user's messages among never-written ``frames`` back into the buffer."""
        decoder = PacketDecoder()
        group: list[str | bytes] = []
        for frame in frames:
            try:
                if isinstance(frame, str):
                    # "4" + a Socket.IO packet we encoded; anything else (a pong) is dropped.
                    group = [frame] if frame[:1] == "4" else []
                    packet = decoder.feed_text(frame[1:]) if group else None
                elif group:  # an attachment of the binary packet in ``group``
                    group.append(frame)
                    packet = decoder.feed_binary(frame)
                else:
                    continue
            except DecodeError:  # pragma: no cover - we encoded these frames ourselves
                decoder.reset()
                group = []
                continue
            if packet is None or packet.type is not PacketType.EVENT:
                continue  # waiting for attachments, or an ACK/CONNECT/DISCONNECT
            message, group = tuple(group), []
            name = packet.data[0]
            call_id = packet.id
            if self.options.auto_join_channels and name in _CHANNEL_STATE_EVENTS:
                continue
            if call_id is not None and call_id not in self._calls:
                continue  # already resolved (it timed out meanwhile)
            size = sum(len(part) for part in message)
            if not self.options.buffer_messages or not self._buffer.fits(size):
                self._report_drop(
                    name,
                    call_id,
                    "buffer full" if self.options.buffer_messages else "not connected",
                )
                continue
            key = self._buffer.push(BufferedMessage(message, size, name, call_id))
            if call_id is not None:
                self._calls[call_id].buffer_key = key

    def _report_drop(self, event: str, call_id: int | None, reason: str) -> None:
        self._events.append(MessageDropped(event, call_id, reason))
        if call_id is not None:
            # A buffered call being dropped, or a new one that never got registered.
            self._calls.pop(call_id, None)
            error = Disconnected(reason) if reason == "not connected" else BufferFull(reason)
            self._events.append(AckFailed(call_id, error))


def _event_name(name: str | int | float) -> str:
    # Node's validator lets an event be named by a number (socketio-protocol.md §2.8);
    # listeners are keyed by str, so a number is delivered under its JSON spelling.
    return name if type(name) is str else _json.dumps(name)


def _check_event_name(event: object) -> None:
    if not isinstance(event, str):
        raise TypeError(f"event names are str, got {type(event).__name__}")
    if not event:
        raise ValueError("event name must not be empty")
    if event in RESERVED_EVENTS:
        # Socket.IO v5 §2.8: Node closes the whole connection on a reserved name.
        raise ValueError(f"{event!r} is a reserved Socket.IO event name and cannot be emitted")


def _check_channel(channel: object) -> None:
    if not isinstance(channel, str):
        raise TypeError(f"channel names are str, got {type(channel).__name__}")
    if not channel:
        raise ValueError("channel name must not be empty")
