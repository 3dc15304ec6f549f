"""``tether connect`` and ``tether demo``: the client on the command line.

Both print lifecycle events and messages as they happen, one line each, with the time since
start. ``demo`` is a scripted walk through the whole lifecycle on an embedded hub and real
sockets, and checks that everything it announces really happened (exit status 1 otherwise).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO

import anyio

from ._client import RealtimeClient
from ._stdin import LineTooLong, StdinLines
from .core import AckTimeout, Disconnected, State, StateChanged, TetherError

__all__ = ["run_connect", "run_demo"]

DEMO_CHANNEL = "demo-room"


class Printer:
    """Timestamped lines: ``[+1.234s] who      what``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()

    def __call__(self, who: str, what: str) -> None:
        elapsed = time.monotonic() - self.start
        self.out.write(f"[+{elapsed:7.3f}s] {who:<6} {what}\n")
        self.out.flush()


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def attach_printer(rt: RealtimeClient, who: str, say: Callable[[str, str], None]) -> None:
    """Print every lifecycle event and incoming event of ``rt``."""
    rt.on_connect(lambda: say(who, f"connected, socket id {rt.get_socket_id()}"))
    rt.on_disconnect(lambda reason: say(who, f"disconnected: {reason}"))
    rt.on_error(lambda err: say(who, f"connect error: {err.message} data={_short(err.data)}"))
    rt.on_reconnect_attempt(lambda n: say(who, f"reconnect attempt #{n}"))
    rt.on_reconnect(lambda n: say(who, f"reconnected after {n} attempt(s)"))
    rt.on_reconnect_failed(lambda: say(who, "reconnect failed: giving up"))

    def state(change: StateChanged) -> None:
        extra = f", retry in {change.retry_in:.2f}s" if change.retry_in is not None else ""
        reason = f" ({change.reason})" if change.reason else ""
        say(who, f"state {change.previous.value} -> {change.current.value}{reason}{extra}")

    rt.on_state_change(state)
    rt.on_any(lambda event, *args: say(who, f"<- {event} {_short(list(args))}"))


@contextmanager
def _embedded_hub(**options: Any) -> Iterator[Any]:
    try:
        from .hub import HubConfig, start_hub_in_thread
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise SystemExit(
            f"the embedded hub needs the hub extra: pip install 'tether[hub]' ({exc})"
        ) from None
    hub = start_hub_in_thread(HubConfig(host="127.0.0.1", port=0, **options))
    try:
        yield hub
    finally:
        hub.stop()


# ------------------------------------------------------------------------------- connect

#: Exit status after a signal, as a shell reports it: 128 + the signal's number
#: (130 for Ctrl-C, 143 for SIGTERM).
SIGNAL_EXIT_BASE = 128
#: The longest wait for the first attempt before commands are read (the attempt's own
#: ``timeout``, 20 s by default, normally ends it first).
FIRST_ATTEMPT_WAIT = 30.0


async def _connect(
    url: str | None, channels: list[str], auth: dict[str, Any] | None, out: TextIO
) -> int:
    say = Printer(out)
    status = 0
    with _stop_signals() as signals, _embedded_hub() if url is None else _no_hub() as hub:
        target = url if url is not None else hub.url
        say("tether", f"connecting to {target} (type 'help' for commands)")
        async with anyio.create_task_group() as tasks:
            session = anyio.CancelScope()

            async def stop_on_signal() -> None:
                nonlocal status
                async for signum in signals:
                    if status:  # a second Ctrl-C while closing: leave now
                        os._exit(status)
                    status = SIGNAL_EXIT_BASE + signum
                    session.cancel()

            tasks.start_soon(stop_on_signal)
            with session:
                async with RealtimeClient(target, auth=auth) as rt:
                    attach_printer(rt, "me", say)
                    first_attempt_over = _first_attempt_over(rt)
                    for channel in channels:
                        rt.join(channel)
                    # Commands typed or piped in meanwhile wait in stdin, so a script's
                    # `members CH` finds the connection up when the server is.
                    with anyio.move_on_after(FIRST_ATTEMPT_WAIT):
                        await first_attempt_over.wait()
                    await _read_commands(rt, say)
            tasks.cancel_scope.cancel()
    return status


def _first_attempt_over(rt: RealtimeClient) -> anyio.Event:
    """Set once the first attempt has connected or failed (the state left ``connecting``)."""
    over = anyio.Event()

    def on_change(change: StateChanged) -> None:
        if change.previous is State.CONNECTING:
            over.set()

    rt.on_state_change(on_change)
    return over


async def _read_commands(rt: RealtimeClient, say: Callable[[str, str], None]) -> None:
    with StdinLines() as lines:
        while True:
            try:
                raw = await lines.next()
            except LineTooLong as exc:
                say("tether", f"error: {exc}")
                continue
            if raw is None:  # end of input (Ctrl-D)
                return
            line = raw.strip()
            if not line:
                continue
            try:
                if not await _command(rt, line, say):
                    return
            except (ValueError, TypeError, TetherError) as exc:  # CommandError, or the client
                say("tether", f"error: {exc}")  # refused the call (bad name, full buffer ...)


@contextmanager
def _stop_signals() -> Iterator[AsyncIterator[int]]:
    """SIGINT and SIGTERM as an async iterator, where the event loop can take them over.

    Elsewhere (Windows' asyncio loop, or not the main thread) Ctrl-C stays a
    ``KeyboardInterrupt``, which ``run_connect`` turns into status 130.
    """
    with ExitStack() as stack:
        signals: AsyncIterator[int]
        try:
            signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        except (NotImplementedError, RuntimeError, ValueError):
            signals = _never()
        yield signals


async def _never() -> AsyncIterator[int]:
    await anyio.sleep_forever()
    yield 0  # unreachable: the yield makes this an async generator


@contextmanager
def _no_hub() -> Iterator[Any]:
    yield None


class CommandError(ValueError):
    """A typed command cannot be run as written; its text is the whole explanation."""


#: Each command's usage line, printed when its arguments are wrong.
USAGE = {
    "send": "send CH EVENT JSON",
    "broadcast": "broadcast EVENT JSON",
    "emit": "emit EVENT JSON",
    "join": "join CH",
    "leave": "leave CH",
    "profile": "profile JSON",
    "members": "members CH",
}

HELP = """commands:
  send CH EVENT JSON     send EVENT with JSON to channel CH
  broadcast EVENT JSON   send EVENT with JSON to everyone
  emit EVENT JSON        a plain Socket.IO emit
  join CH / leave CH     join or leave a channel
  profile JSON           share your member profile
  members CH             list the members of CH (needs a connection)
  close / open           close the connection (stays closed) / open it again
  quit                   leave (or Ctrl-D, Ctrl-C)
while offline, send/broadcast/emit/join/leave/profile are queued and sent once connected"""

#: How long ``members`` waits for the hub's answer.
MEMBERS_TIMEOUT = 5.0


async def _command(rt: RealtimeClient, line: str, say: Callable[[str, str], None]) -> bool:
    """Run one typed command; ``False`` means quit. Bad input raises :class:`CommandError`."""
    verb, _, rest = line.partition(" ")
    rest = rest.strip()
    if verb == "quit":
        return False
    if verb == "help":
        say("tether", HELP)
    elif verb == "close":
        rt.close()
    elif verb == "open":
        rt.open()
    elif verb == "members":
        await _members(rt, _args(verb, rest, 1)[0], say)
    elif verb in USAGE:
        _queue(rt, verb, rest)
        if not rt.is_connected():
            when = "after 'open'" if rt.state is State.CLOSED else "once connected"
            say("tether", f"{verb}: queued ({rt.state.value}), sent {when}")
    else:
        say("tether", f"unknown command {verb!r}; type 'help'")
    return True


def _queue(rt: RealtimeClient, verb: str, rest: str) -> None:
    """The commands that the client buffers while offline."""
    if verb == "send":
        channel, event, payload = _args(verb, rest, 3)
        rt.send(channel, event, _json(verb, payload))
    elif verb == "broadcast":
        event, payload = _args(verb, rest, 2)
        rt.broadcast(event, _json(verb, payload))
    elif verb == "emit":
        event, payload = _args(verb, rest, 2)
        rt.emit(event, _json(verb, payload))
    elif verb == "join":
        rt.join(_args(verb, rest, 1)[0])
    elif verb == "leave":
        rt.leave(_args(verb, rest, 1)[0])
    else:
        rt.update_profile(_json(verb, _args(verb, rest, 1)[0]))


async def _members(rt: RealtimeClient, channel: str, say: Callable[[str, str], None]) -> None:
    if not rt.is_connected():
        raise CommandError(f"members needs a connection (state: {rt.state.value})")
    try:
        members = await rt.get_members(channel, timeout=MEMBERS_TIMEOUT)
    except AckTimeout:
        raise CommandError(f"members: no answer within {MEMBERS_TIMEOUT:g} s") from None
    except Disconnected:
        raise CommandError("members: the connection dropped before the answer") from None
    say("me", f"members of {channel}: {_short([(m.id, m.data) for m in members], 400)}")


def _args(verb: str, text: str, count: int) -> list[str]:
    """``count`` space-separated arguments (the last one takes the rest of the line)."""
    pieces = text.split(maxsplit=count - 1) if text else []
    if len(pieces) != count:
        raise CommandError(f"usage: {USAGE[verb]}")
    return pieces


def _json(verb: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        where = f" (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise CommandError(
            f"{verb}: not JSON{where}: {_short(text, 40)}; usage: {USAGE[verb]}, "
            'e.g. {"name": "ann"}, "text" or 42'
        ) from None


def run_connect(
    url: str | None,
    channels: list[str],
    auth: dict[str, Any] | None,
    backend: str,
    out: TextIO = sys.stdout,
) -> int:
    """Run ``tether connect`` until ``quit``, end of input or a signal; the exit status."""
    try:
        status: int = anyio.run(_connect, url, channels, auth, out, backend=backend)
    except KeyboardInterrupt:  # where the event loop could not take SIGINT over
        return SIGNAL_EXIT_BASE + signal.SIGINT
    return status


# ---------------------------------------------------------------------------------- demo


class _Checks:
    def __init__(self, say: Callable[[str, str], None]) -> None:
        self.say = say
        self.failed: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        self.say("check", f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failed.append(what)


async def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)
        return True
    return False


async def _demo(out: TextIO) -> int:
    say = Printer(out)
    checks = _Checks(say)
    delay_max = 1.0

    def client(url: str) -> RealtimeClient:
        # Short delays so the demo shows a reconnect in well under a second.
        return RealtimeClient(url, reconnection_delay=0.3, reconnection_delay_max=delay_max)

    with _embedded_hub() as hub:
        say("hub", f"embedded hub listening on {hub.url}")
        async with (
            client(hub.url) as alice,
            client(hub.url) as bob,
        ):
            attach_printer(alice, "alice", say)
            attach_printer(bob, "bob", say)
            chat: list[str] = []
            alice.on("chat", lambda payload: chat.append(payload["message"]["text"]))
            bob_states: list[StateChanged] = []
            bob.on_state_change(bob_states.append)
            bob_attempts: list[int] = []
            bob.on_reconnect_attempt(bob_attempts.append)
            joins: list[str] = []
            alice.on_join(lambda payload: joins.append(payload["message"]["id"]))

            await alice.wait_connected(10)
            await bob.wait_connected(10)
            alice.update_profile({"name": "alice"})
            bob.update_profile({"name": "bob"})
            alice.join(DEMO_CHANNEL)
            # alice hears her own join (echo on): from then on she is in the channel.
            await _wait(lambda: alice.get_socket_id() in joins, 5)
            bob.join(DEMO_CHANNEL)
            first_bob = bob.get_socket_id()
            await _wait(lambda: first_bob in joins, 5)
            checks.check(first_bob in joins, "alice saw bob join the channel")
            bob.send(DEMO_CHANNEL, "chat", {"text": "hi alice"})
            await _wait(lambda: "hi alice" in chat, 5)
            checks.check("hi alice" in chat, "alice received bob's message")
            members = await alice.get_members(DEMO_CHANNEL, timeout=5)
            names = sorted(str((m.data or {}).get("name")) for m in members)
            say("alice", f"members of {DEMO_CHANNEL}: {names}")
            checks.check(names == ["alice", "bob"], "get_members lists both, with profiles")

            say("demo", "cutting bob's network (the hub drops his transport)")
            offline = [f"offline message {i}" for i in range(1, 4)]
            sent_offline = anyio.Event()

            def on_bob_disconnect(reason: str) -> None:
                if sent_offline.is_set():
                    return
                for text in offline:  # bob keeps talking while offline: buffered
                    bob.send(DEMO_CHANNEL, "chat", {"text": text})
                say("bob", f"sent {len(offline)} messages while offline ({bob.buffered} buffered)")
                sent_offline.set()

            bob.on_disconnect(on_bob_disconnect)
            assert first_bob is not None
            hub.drop(first_bob)
            await _wait(lambda: bob.is_connected() and bob.get_socket_id() != first_bob, 10)
            checks.check(
                any(s.reason == "transport close" for s in bob_states),
                "bob's disconnect reason was 'transport close'",
            )
            checks.check(bool(bob_attempts), "bob tried to reconnect (reconnect_attempt #1)")
            checks.check(bob.is_connected(), "bob reconnected with a new socket id")
            second_bob = bob.get_socket_id()
            await _wait(lambda: second_bob in joins, 5)
            checks.check(second_bob in joins, "bob re-joined the channel by himself")
            await _wait(lambda: all(t in chat for t in offline), 5)
            delivered = [t for t in chat if t in offline]
            checks.check(delivered == offline, "the offline messages arrived, in order")

            say("demo", "bob closes the connection on purpose")
            bob.close()
            await _wait(lambda: bob.state is State.CLOSED, 5)
            attempts_before = len(bob_attempts)
            await anyio.sleep(3 * delay_max)
            checks.check(
                bob.state is State.CLOSED and len(bob_attempts) == attempts_before,
                "bob stayed closed: no reconnect after close()",
            )
            checks.check(second_bob not in hub.sids(), "the hub no longer has bob")
    if checks.failed:
        say("demo", f"FAILED: {len(checks.failed)} check(s): {'; '.join(checks.failed)}")
        return 1
    say("demo", "all checks passed")
    return 0


def run_demo(backend: str, out: TextIO = sys.stdout) -> int:
    """Run ``tether demo``; 0 when every check passed, 1 otherwise."""
    return anyio.run(_demo, out, backend=backend)
