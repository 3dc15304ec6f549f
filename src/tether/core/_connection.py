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

The Connection composes parts that each own one concern and its state::

    _lifecycle.Lifecycle        the state table (idle, connecting, connected, ...)
    _attempts.Attempts          the attempt count, its timeout, the next retry
    _engine.EngineSession       the Engine.IO session: phases, handshake, heartbeat, pongs
    _namespace.NamespaceSession CONNECT and its answer, the sid, held events, recovery
    _acks.Acks                  the calls waiting for their ACK, and their deadlines
    _outgoing                   the outbox, the offline buffer and its overflow policy
    _channels.Channels          the channels and the profile, against what the hub was told

and it is the only place that moves the lifecycle. Each trigger of the table is fired by
one method here, which does all of its row's effects (``specs/lifecycle.md``):

    OPEN               _open                  CLOSE   _close
    CONNECT_SUCCEEDED  _connect_succeeded     END     _end
    CONNECTION_LOST    _lose_connection       ATTEMPT_FAILED  _fail_attempt

and whatever leaves a transport goes through :meth:`Connection._leave_transport`, the one
place that undoes a session and a transport, so no reset can be forgotten.

Bad input from the network never raises out of the core: a malformed packet becomes the
disconnect reason ``"parse error"`` and, by the rules of ``specs/reconnect.md``, a
reconnect. Misuse by the caller raises at the call site (``ValueError``/``TypeError``, or
:class:`LocalProtocolError` for calls the current state does not allow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from . import _json
from ._acks import Acks, Answered
from ._attempts import Attempts
from ._channels import HUB_RESUME, Channels, Notice, check_channel
from ._engine import EngineSession, EngineSignal, Phase
from ._errors import (
    BufferFull,
    ConnectError,
    DecodeError,
    MessageTooLarge,
)
from ._events import (
    CloseTransport,
    ConnectFailed,
    Event,
    EventReceived,
    OpenTransport,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    StateChanged,
    StreamResumed,
)
from ._lifecycle import Lifecycle, State, Trigger
from ._namespace import UNANSWERED_CONNECT, NamespaceSession
from ._options import CoreOptions, check_retries
from ._outgoing import BufferPolicy, OfflineBuffer, Outbox, Outgoing, encode_event, too_large
from ._socketio import Packet, PacketType, check_event_name

__all__ = ["Connection", "DisconnectReason"]


class DisconnectReason:
    """The disconnect reasons (``specs/reconnect.md``), as constants: Socket.IO's six, and
    one of tether's for a client whose listeners cannot keep up (``specs/bounds.md``)."""

    CLIENT: Final = "io client disconnect"
    SERVER: Final = "io server disconnect"
    PING_TIMEOUT: Final = "ping timeout"
    TRANSPORT_CLOSE: Final = "transport close"
    TRANSPORT_ERROR: Final = "transport error"
    PARSE_ERROR: Final = "parse error"
    LISTENERS_BEHIND: Final = "listeners fell behind"


_CONNECTED: Final = State.CONNECTED
#: What _send returns for a message the buffer policy dropped (buffer keys are >= 0).
_DROPPED: Final = -1
_EVENT: Final = PacketType.EVENT
_ACK: Final = PacketType.ACK


class Connection:
    """One Socket.IO v5 client session over Engine.IO v4, as a pure state machine."""

    __slots__ = (
        "_acks",
        "_attempts",
        "_buffer",
        "_channels",
        "_engine",
        "_events",
        "_lifecycle",
        "_namespace",
        "_offered_broadcast",
        "_outbox",
        "_seq",
        "options",
    )

    def __init__(self, options: CoreOptions | None = None, *, random: Callable[[], float]) -> None:
        self.options = options = options if options is not None else CoreOptions()
        self._lifecycle = Lifecycle()
        self._events: list[Event] = []
        self._attempts = Attempts(options, random)
        self._acks = Acks(self._events)
        self._outbox = Outbox(self._acks)
        self._buffer = BufferPolicy(
            OfflineBuffer(options.max_buffered, options.max_buffered_bytes),
            buffering=options.buffer_messages,
            overflow=options.overflow,
            acks=self._acks,
            events=self._events,
        )
        self._engine = EngineSession(options.max_payload, self._outbox)
        self._namespace = NamespaceSession(options.namespace, options.max_buffered_bytes)
        self._channels = Channels()
        #: Counts the user's messages as they are emitted (``Outgoing.seq``).
        self._seq = 0
        #: The broadcast position the current session's CONNECT offered.
        self._offered_broadcast: str | None = None

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> State:
        """The lifecycle state (``specs/lifecycle.md``)."""
        return self._lifecycle.state

    @property
    def is_connected(self) -> bool:
        """``True`` exactly while the state is ``CONNECTED``."""
        return self._lifecycle.state is _CONNECTED

    @property
    def sid(self) -> str | None:
        """The namespace's Socket.IO id while connected, else ``None``."""
        return self._namespace.sid

    @property
    def recovered(self) -> bool:
        """Whether the last connect restored the previous session (connection state recovery)."""
        return self._namespace.recovered

    @property
    def attempt(self) -> int:
        """The current reconnect attempt number; 0 when not reconnecting."""
        return self._attempts.number

    @property
    def buffered(self) -> int:
        """How many messages wait in the offline buffer."""
        return len(self._buffer.buffer)

    @property
    def buffered_bytes(self) -> int:
        """How many bytes the messages in the offline buffer take."""
        return self._buffer.buffer.bytes

    @property
    def channels(self) -> Mapping[str, bool]:
        """The channels the user has joined, with their echo flags (a copy)."""
        return dict(self._channels.wanted)

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str | bytes]:
        """The messages to write, in order, on the current transport; clears the outbox.

        What the driver takes counts as written: a call among them now waits for its ACK,
        and is failed with ``Disconnected`` if the session is lost first. What it has not
        taken when the transport dies stays in the core, which buffers the user's messages
        among it again.
        """
        return self._outbox.take()

    @property
    def data_pending(self) -> bool:
        """Whether :meth:`data_to_send` has something (cheaper than taking it)."""
        return self._outbox.pending

    def drain_events(self) -> list[Event]:
        """What happened since the last drain, in order; clears the list."""
        events = self._events
        if not events:  # after most calls into the core
            return []
        drained = events[:]
        events.clear()
        return drained

    @property
    def attempt_deadline(self) -> float | None:
        """When the connection attempt in flight times out (``timeout``), if one is."""
        return self._attempts.deadline

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None`` for never."""
        deadline = self._attempts.next_deadline()
        heartbeat = self._engine.heartbeat_deadline()
        if heartbeat is not None and (deadline is None or heartbeat < deadline):
            deadline = heartbeat
        acks = self._acks.next_deadline()
        if acks is not None and (deadline is None or acks < deadline):
            deadline = acks
        return deadline

    # ------------------------------------------------------------------ user calls

    def open(self, *, now: float) -> None:
        """Start connecting from IDLE or CLOSED; a no-op in any other state."""
        if self._lifecycle.allows(Trigger.OPEN):
            self._open(now)

    def close(self, *, now: float) -> None:
        """Close on purpose; nothing reconnects until :meth:`open`. Idempotent.

        A connected session says goodbye (a ``DISCONNECT``), so the server drops it. The pid
        and offset of connection state recovery are kept either way and offered with the
        next CONNECT, as socket.io-client does: after a close made while reconnecting the
        server still holds the session and replays what was missed (specs/delivery.md §3).
        """
        if self._lifecycle.state is not State.CLOSED:
            self._close()

    def emit(self, event: str, *args: Any, now: float) -> None:
        """Emit ``event`` with ``args``: sent now when connected, else buffered.

        With ``retries > 0`` the emit asks for an ack and is tried again until it gets one
        (``specs/delivery.md`` §2); an emit that runs out of tries is reported as
        :class:`MessageDropped` ``"retries exhausted"``.

        Raises ``ValueError`` for a reserved or empty event name, ``TypeError``/``ValueError``
        for arguments JSON cannot carry, and :class:`BufferFull` when offline with a full
        buffer and the ``raise`` policy.
        """
        check_event_name(event)
        self._send_event([event, *args], now, user=False)

    def call(
        self,
        event: str,
        *args: Any,
        timeout: float | None,
        now: float,
        retries: int | None = None,
        ack_timeout: float | None = None,
    ) -> int:
        """Emit ``event`` asking for an acknowledgement; returns the call's id.

        The outcome arrives later as :class:`AckReceived` or :class:`AckFailed` with that id,
        exactly once. ``timeout`` bounds the whole call, buffered time included; a call still
        in the offline buffer when it expires is withdrawn and never sent. ``retries`` and
        ``ack_timeout`` override the options for this call; after the last try the call
        fails with that try's error (``AckTimeout`` or ``Disconnected``).
        """
        check_event_name(event)
        if timeout is not None and not (timeout > 0):
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        options = self.options
        if retries is None and ack_timeout is None:
            # The options' own, validated when they were made.
            retries, ack_timeout = options.retries, options.ack_timeout
        else:
            retries = options.retries if retries is None else retries
            if ack_timeout is None:
                ack_timeout = options.ack_timeout
            check_retries(retries, ack_timeout)
        call_id = self._send_event(
            [event, *args],
            now,
            user=True,
            retries=retries,
            ack_timeout=ack_timeout,
            deadline=None if timeout is None else now + timeout,
        )
        assert call_id is not None
        return call_id

    def abandon_call(self, call_id: int) -> None:
        """The caller of ``call_id`` stopped waiting (it was cancelled): the call ends with no
        outcome. Still in the offline buffer, it is withdrawn and never sent; queued, it is
        not written; written, no try follows and its ACK is ignored (specs/delivery.md §2).
        Does nothing for a call that has ended already."""
        key = self._acks.abandon(call_id)
        if key is not None:
            self._buffer.buffer.withdraw(key)

    def ack(self, ack_id: int, *args: Any) -> None:
        """Acknowledge the server's event ``ack_id`` with ``args``.

        Acks belong to the session that asked for them: once it is gone, this does nothing.
        """
        if self._lifecycle.state is _CONNECTED:
            self._outbox.add_packet(self._namespace.ack_packet(ack_id, args))

    # --- channels: the hub's wire format (specs/hub-wire-format.md) -----------------------

    def join(self, channel: str, echo: bool | None = None, *, now: float) -> None:
        """Want ``channel``: the hub is told now when connected, else at the next connect
        (and again after every reconnect). ``echo=None`` takes ``echo_messages``."""
        check_channel(channel)
        flag = self._echo(echo)
        if not self.options.auto_join_channels:
            self.emit("join", {"channel": channel, "echo": flag}, now=now)
            return
        self._tell_hub(self._channels.join(channel, flag, self._connected(now)))

    def leave(self, channel: str, echo: bool | None = None, *, now: float) -> None:
        """Stop wanting ``channel``; a hub that had it is told, with this call's echo flag."""
        check_channel(channel)
        flag = self._echo(echo)
        if not self.options.auto_join_channels:
            self.emit("leave", {"channel": channel, "echo": flag}, now=now)
            return
        self._tell_hub(self._channels.leave(channel, flag, self._connected(now)))

    def send(
        self, channel: str, event: str, message: Any, echo: bool | None = None, *, now: float
    ) -> None:
        """Ask the hub to emit ``event`` with ``message`` to the members of ``channel`` (a
        ``message`` event of the hub's wire format, buffered like any emit). It carries a
        message id, the same across its tries, so the hub delivers it once
        (``specs/delivery.md`` §4.2)."""
        check_channel(channel)
        check_event_name(event)  # the hub emits it to the channel's members as is
        flag = self._echo(echo)
        payload = {"channel": channel, "eventName": event, "message": message, "echo": flag}
        payload["id"] = self._channels.message_id()
        self.emit("message", payload, now=now)

    def broadcast(self, event: str, message: Any, echo: bool | None = None, *, now: float) -> None:
        """Ask the hub to emit ``event`` with ``message`` to every client it serves (with a
        message id, as :meth:`send`)."""
        check_event_name(event)
        flag = self._echo(echo)
        payload = {"eventName": event, "message": message, "echo": flag}
        payload["id"] = self._channels.message_id()
        self.emit("message", payload, now=now)

    def update_profile(self, data: Any, echo: bool | None = None, *, now: float) -> None:
        """Share ``data`` (JSON) as this member's profile: state, restored at every connect."""
        flag = self._echo(echo)
        _json.dumps(data)  # refuse non-JSON data here, at the caller's line
        if not self.options.auto_join_channels:
            self.emit("update", {"data": data, "echo": flag}, now=now)
            return
        self._tell_hub(self._channels.set_profile(data, flag, self._connected(now)))

    # ------------------------------------------------------------------ transport inputs

    def transport_opened(self, token: int, auth: Mapping[str, Any] | None, *, now: float) -> None:
        """The transport for ``token`` is open; ``auth`` is this attempt's auth payload.

        Reports for a token the core no longer waits for are ignored (a connect that finished
        after the core gave up on it).
        """
        if not self._engine.opening(token):
            return
        if auth is not None and not isinstance(auth, Mapping):
            raise TypeError(f"auth must be a mapping or None, got {type(auth).__name__}")
        payload = dict(auth) if auth is not None else None
        # Refuse what JSON cannot carry here, not later on the read path (the handshake).
        _json.dumps(payload)
        self._namespace.auth = payload
        self._engine.transport_opened(now)

    def transport_failed(self, token: int, message: str, *, now: float) -> None:
        """The transport for ``token`` could not be opened (refused, TLS, HTTP status ...)."""
        if self._engine.opening(token):
            self._fail_attempt(ConnectError(message), now, transport_gone=True)

    def transport_closed(self, token: int, reason: str, *, now: float) -> None:
        """The open transport for ``token`` closed (``"transport close"``/``"transport error"``).

        The user's events and calls that the driver had not taken from :meth:`data_to_send`
        go back into the offline buffer, in order, and leave again after the reconnect
        (nothing lost; the calls keep waiting instead of failing with ``Disconnected``). The
        rest belonged to the dead session and is dropped: pongs, acks, CONNECT/DISCONNECT,
        and the channel state, which every connect restores anyway.
        """
        if self._engine.carried_by(token):
            self._break(reason, now, transport_gone=True)

    def receive(self, message: str | bytes, *, now: float) -> None:
        """One whole WebSocket message from the current transport (the hot path)."""
        try:
            received = self._engine.receive(message, now)
            if type(received) is Packet:
                if (
                    received.type is _EVENT
                    and self._lifecycle.state is _CONNECTED
                    and received.namespace == self._namespace.name
                ):
                    # What a busy connection receives most, dispatched first.
                    event = self._namespace.event(received.data, received.id)
                    if self._channels.tracking or event.name == HUB_RESUME:
                        self._hub_event(event)
                    else:
                        self._events.append(event)
                else:
                    self._on_packet(received, message, now)
            elif received is None:
                return
            elif received is EngineSignal.HANDSHAKE:
                self._outbox.add_packet(self._namespace.connect_packet(self._identity()))
            else:  # CLOSE from the server counts as "transport close" (specs/reconnect.md)
                self._break(DisconnectReason.TRANSPORT_CLOSE, now)
        except DecodeError:
            self._break(DisconnectReason.PARSE_ERROR, now)

    # ------------------------------------------------------------------ time

    def handle_timer(self, *, now: float) -> None:
        """Do what is due at ``now``: retries, attempt timeouts, heartbeat, ack timeouts."""
        attempts = self._attempts
        if attempts.retry_at is not None and now >= attempts.retry_at:
            self._start_attempt(now)
        if attempts.deadline is not None and now >= attempts.deadline:
            self._fail_attempt(ConnectError("timeout"), now)
        if self._engine.heartbeat_expired(now):
            self._break(DisconnectReason.PING_TIMEOUT, now)
        withdrawn, again = self._acks.expire(now)
        buffer = self._buffer.buffer
        for key in withdrawn:
            buffer.withdraw(key)
        if again:
            self._send_again(again, now)

    # ------------------------------------------------------------------ the lifecycle
    # One method per trigger of the table (specs/lifecycle.md): each fires its trigger and
    # does all of its row's effects.

    def _open(self, now: float) -> None:
        """OPEN: IDLE/CLOSED → CONNECTING, and the first attempt starts."""
        self._attempts.reset()
        self._fire(Trigger.OPEN)
        self._start_attempt(now)

    def _connect_succeeded(self, reply: Any, now: float) -> None:
        """CONNECT_SUCCEEDED: the namespace CONNECT reply arrived."""
        namespace = self._namespace
        namespace.accept(reply)  # raises DecodeError before anything changed
        attempt = self._attempts.number
        self._attempts.reset()
        self._fire(Trigger.CONNECT_SUCCEEDED, attempt=attempt)
        assert namespace.sid is not None
        self._events.append(SocketConnected(namespace.sid, namespace.recovered))
        if attempt:
            self._events.append(Reconnected(attempt))
        # specs/reconnect.md, after each (re)connect: CONNECT (done) → re-join channels with
        # their own echo flags → restore the last profile → flush the buffer → new emits.
        for notice in self._channels.session_started(namespace.recovered):
            try:
                self._tell_hub(notice)
            except MessageTooLarge:
                # A profile set before this server said what it accepts (specs/bounds.md).
                self._buffer.report(notice[0], None, "too large")
        acks = self._acks
        limit = self._engine.max_payload
        assert limit is not None  # the handshake announced it
        flushed = []
        for message in self._buffer.buffer.drain():
            if too_large(message, limit):
                # Buffered before this server said what it accepts: it would close the
                # whole connection on this one.
                self._buffer.report(message.event, message.call_id, "too large")
                continue
            if message.call_id is not None:
                acks.queued(message.call_id, now)
            flushed.append(message)
        self._outbox.add_messages(flushed)
        for packet in namespace.take_held():
            event = namespace.event(packet.data, packet.id)
            if self._channels.tracking or event.name == HUB_RESUME:
                self._hub_event(event)
            else:
                self._events.append(event)

    def _lose_connection(self, reason: str, now: float, *, transport_gone: bool) -> None:
        """CONNECTION_LOST: a connected session ended for a retryable reason (or END, when
        reconnection is off or allows no attempt)."""
        self._leave_transport(reason, transport_gone=transport_gone)
        if not self.options.reconnection:
            self._end(reason)
        elif self._attempts.exhausted():
            self._give_up()
        else:
            delay = self._attempts.schedule(now)
            self._fire(
                Trigger.CONNECTION_LOST,
                reason=reason,
                attempt=self._attempts.number,
                retry_in=delay,
            )

    def _fail_attempt(
        self, error: ConnectError, now: float, *, transport_gone: bool = False
    ) -> None:
        """ATTEMPT_FAILED: an attempt failed for a retryable reason (or END, when
        reconnection is off or the attempts are exhausted)."""
        self._leave_transport(error.message, transport_gone=transport_gone)
        self._events.append(ConnectFailed(error))
        if not self.options.reconnection:
            self._end(error.message)
        elif self._attempts.exhausted():
            self._give_up()
        else:
            delay = self._attempts.schedule(now)
            self._fire(
                Trigger.ATTEMPT_FAILED,
                reason=error.message,
                attempt=self._attempts.number,
                retry_in=delay,
            )

    def _close(self) -> None:
        """CLOSE: the user's ``close()``; a connected session says goodbye first."""
        self._leave_transport(DisconnectReason.CLIENT, goodbye=True)
        self._attempts.reset()
        self._fire(Trigger.CLOSE, reason=DisconnectReason.CLIENT)

    def _end(self, reason: str) -> None:
        """END: the session ended for a reason that must not be retried."""
        self._leave_transport(reason)
        self._attempts.reset()
        self._fire(Trigger.END, reason=reason)

    def _give_up(self) -> None:
        self._events.append(ReconnectFailed())
        self._end("reconnect failed")

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

    def _leave_transport(
        self, reason: str, *, transport_gone: bool = False, goodbye: bool = False
    ) -> None:
        """Undo the session and the transport, whichever trigger follows. Idempotent.

        The namespace session ends (``disconnect``, and the written calls fail); the
        transport is closed (unless it reported its own end), after a goodbye DISCONNECT
        when ``goodbye``; the user's messages it never wrote go back to the buffer, or, on a
        goodbye, leave before the DISCONNECT; the attempt's timeout and held events go.
        """
        namespace = self._namespace
        if namespace.sid is not None:
            if goodbye:
                # Socket.IO v5 §"Disconnection": DISCONNECT for the namespace, then close the
                # transport (socket.io-client sends no Engine.IO close on WebSocket, §1.8).
                self._outbox.add_packet(namespace.disconnect_packet())
            namespace.ended()
            self._events.append(SocketDisconnected(reason))
            again = self._acks.session_lost(reason, goodbye=goodbye)
        else:
            again = []
        engine = self._engine
        if engine.phase is not Phase.CLOSED:
            engine.close()
            if not goodbye:
                self._requeue(again + self._outbox.take_unsent())
            if not transport_gone:
                self._events.append(CloseTransport(engine.token))
        namespace.drop_held()
        namespace.awaiting_reply = False
        self._attempts.finished()

    def _start_attempt(self, now: float) -> None:
        attempts = self._attempts
        attempts.started(now)
        token = self._engine.open_transport()
        if attempts.number:
            self._events.append(ReconnectAttemptStarted(attempts.number))
        self._events.append(OpenTransport(token, attempts.number))

    def _break(self, reason: str, now: float, *, transport_gone: bool = False) -> None:
        """The transport can carry nothing more, for a retryable ``reason``."""
        if self._lifecycle.state is _CONNECTED:
            self._lose_connection(reason, now, transport_gone=transport_gone)
            return
        if reason == DisconnectReason.TRANSPORT_CLOSE and self._namespace.awaiting_reply:
            reason = UNANSWERED_CONNECT
        self._fail_attempt(ConnectError(reason), now, transport_gone=transport_gone)

    # ------------------------------------------------------------------ receiving

    def _on_packet(self, packet: Packet, message: str | bytes, now: float) -> None:
        """``message``: the transport message that completed ``packet``."""
        namespace = self._namespace
        namespace.awaiting_reply = False  # the server speaks our parser
        if packet.namespace != namespace.name:
            return  # another namespace of the same server: not ours to handle
        kind = packet.type
        connected = self._lifecycle.state is _CONNECTED
        if kind is _EVENT:
            # receive() delivers the events of a connected session: this one came before
            # the CONNECT reply (Socket.IO v5 §2.4 / pitfall 10) and waits for it.
            namespace.hold(packet, self._engine.size_of(message))
        elif kind is _ACK:
            # Only a written call resolves, and written calls exist only while connected
            # (the loss of their session fails them); an ACK for another id is ignored.
            answered = self._acks.resolve(packet.id, packet.data)
            if answered is not None:
                self._answered(answered, packet.data)
        elif kind is PacketType.CONNECT:
            if connected:
                raise DecodeError("a CONNECT reply while already connected")
            self._connect_succeeded(packet.data, now)
        elif kind is PacketType.CONNECT_ERROR:
            if connected:
                raise DecodeError("CONNECT_ERROR while connected")
            self._refused(packet.data)
        elif connected:  # DISCONNECT
            namespace.forget_recovery()
            self._end(DisconnectReason.SERVER)
        else:
            # python-socketio's always_connect mode may refuse with DISCONNECT + payload.
            self._refused(packet.data)

    def _refused(self, payload: Any) -> None:
        """The server refused the namespace CONNECT: final, no retry (specs/reconnect.md)."""
        error = self._namespace.refusal(payload)
        self._namespace.forget_recovery()
        self._leave_transport(error.message)
        self._events.append(ConnectFailed(error))
        self._end(error.message)

    # ------------------------------------------------------------------ sending

    def _max_payload(self) -> int | None:
        return self._engine.max_payload

    def _connected(self, now: float) -> bool:
        """Whether the session is CONNECTED, once a heartbeat that has already expired (the
        timer is late) has had its verdict: channel state is never written into a dead
        connection, where a recovered session would then believe it had arrived."""
        if self._lifecycle.state is not _CONNECTED:
            return False
        if self._engine.heartbeat_expired(now):
            self.handle_timer(now=now)
            return False
        return True

    def _echo(self, echo: bool | None) -> bool:
        if echo is None:
            return self.options.echo_messages
        if not isinstance(echo, bool):
            raise TypeError(f"echo must be a bool or None, got {type(echo).__name__}")
        return echo

    def _tell_hub(self, notice: Notice | None) -> None:
        if notice is None:
            return
        name, payload = notice
        if name != "join":
            encoded = encode_event(self._namespace.name, [name, payload], None, self._max_payload())
            self._outbox.add_frames(encoded.frames)  # state, restored by every connect
            return
        # A join asks for an answer: a hub gives the channel's position in it, and says
        # whether a resume from ``since`` was whole (specs/delivery.md §4.5).
        call_id = self._acks.new_id()
        message = encode_event(
            self._namespace.name, [name, payload], call_id, self._max_payload(), self._seq
        )
        self._outbox.add_message(message)
        self._acks.expect_notice(message, (payload["channel"], payload.get("since")))

    def _identity(self) -> dict[str, Any] | None:
        """What the CONNECT says of the client to a hub (specs/delivery.md §4.1)."""
        client = self.options.client_id
        if client is None:
            return None
        channels = self._channels
        self._offered_broadcast = channels.broadcast_position
        identity: dict[str, Any] = {"client": client}
        if channels.broadcast_position is not None:
            identity["broadcast"] = channels.broadcast_position
        return identity

    def _answered(self, answered: Answered, args: list[Any]) -> None:
        """The answer to a message the user did not ``call()``: a tracked emit (``retries``)
        or a join of the core's own. A hub's refusal, ``{"error": text}``, reaches the user
        as the ``error`` event the hub sends a sender that asked for no answer
        (specs/hub-wire-format.md §4), so it is told whatever ``retries`` is."""
        event, about = answered
        answer = args[0] if args else None
        if (
            len(args) == 1
            and type(answer) is dict
            and len(answer) == 1
            and type(answer.get("error")) is str
        ):
            refusal = {"event": event, "message": answer["error"]}
            self._events.append(EventReceived("error", (refusal,)))
        elif about is not None:
            channel, since = about
            self._report_resume(self._channels.joined(channel, since, answer))

    def _hub_event(self, event: EventReceived) -> None:
        """A server event of a session with a hub: keep its position; the hub's answer
        about the broadcasts is for the core, not the listeners."""
        args = event.args
        if event.name == HUB_RESUME:
            answer = args[0] if args else None
            self._report_resume(self._channels.connect_resumed(self._offered_broadcast, answer))
            return
        if len(args) == 1:
            self._channels.saw(args[0])
        self._events.append(event)

    def _report_resume(self, resume: StreamResumed | None) -> None:
        if resume is not None:
            self._events.append(resume)

    def _send_event(
        self,
        data: list[Any],
        now: float,
        *,
        user: bool,
        retries: int | None = None,
        ack_timeout: float | None = None,
        deadline: float | None = None,
    ) -> int | None:
        """Encode and send (or buffer) the EVENT ``data``; its call id if it asks for an ACK:
        a call does, and so does every emit while ``retries > 0``."""
        options = self.options
        if retries is None:
            retries = options.retries
        if ack_timeout is None:
            ack_timeout = options.ack_timeout
        acks = self._acks
        call_id = acks.new_id() if user or retries else None
        self._seq += 1
        message = encode_event(self._namespace.name, data, call_id, self._max_payload(), self._seq)
        if call_id is not None:
            acks.expect(
                message, user=user, retries=retries, ack_timeout=ack_timeout, deadline=deadline
            )
        try:
            key = self._send(message, now)
        except BufferFull:
            if call_id is not None:
                acks.forget(call_id)  # a call that raises leaves nothing behind
            raise
        if call_id is not None and key != _DROPPED:
            acks.place(call_id, key, now)
        return call_id

    def _send(self, message: Outgoing, now: float) -> int | None:
        """Queue ``message`` for the open transport when connected (``None``), else buffer it
        (its buffer key), or drop it by the policy (``_DROPPED``, reported)."""
        if self._lifecycle.state is _CONNECTED:
            # The heartbeat may have expired while the timer has not run yet (throttled
            # timers, socket.io-client's _hasPingExpired): don't write into a dead connection.
            if not self._engine.heartbeat_expired(now):
                # A server that stops reading makes messages pile up in the outbox: the
                # buffer's bounds and policy hold there too (specs/bounds.md).
                return None if self._buffer.admit_to_outbox(self._outbox, message) else _DROPPED
            self._buffer.check_room(message)  # refused before anything changed
            self.handle_timer(now=now)  # the timer's verdict lands first, then we buffer
        else:
            self._buffer.check_room(message)
        key = self._buffer.admit(message)
        return _DROPPED if key is None else key

    def _send_again(self, messages: list[Outgoing], now: float) -> None:
        """Start the next try of messages whose try ended on an ``ack_timeout``."""
        acks = self._acks
        for message in messages:
            assert message.call_id is not None
            self._outbox.add_message(message)
            acks.queued(message.call_id, now)

    def _requeue(self, messages: list[Outgoing]) -> None:
        """Buffer again, in the order they were emitted, the user's messages a dead transport
        never wrote and those written whose next try waits for the reconnect."""
        acks = self._acks
        messages.sort(key=_emitted)
        for message in messages:
            call_id = message.call_id
            if call_id is not None and call_id not in acks:
                continue  # it timed out meanwhile
            key = self._buffer.readmit(message)
            if key is not None and call_id is not None:
                acks.buffered(call_id, key)


def _emitted(message: Outgoing) -> int:
    return message.seq
