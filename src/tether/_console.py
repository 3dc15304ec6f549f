"""``tether connect`` and ``tether demo``: the client on the command line.

Both print lifecycle events and messages as they happen, one line each, with the time since
start. ``demo`` is a scripted walk through the whole lifecycle on an embedded hub and real
sockets, and checks that everything it announces really happened (exit status 1 otherwise).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import anyio

from ._client import RealtimeClient
from .core import ConnectError, State, StateChanged

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


async def _connect(
    url: str | None, channels: list[str], auth: dict[str, Any] | None, out: TextIO
) -> int:
    say = Printer(out)
    with _embedded_hub() if url is None else _no_hub(url) as hub:
        target = url if url is not None else hub.url
        say("tether", f"connecting to {target} (type 'help' for commands)")
        async with RealtimeClient(target, auth=auth) as rt:
            attach_printer(rt, "me", say)
            for channel in channels:
                rt.join(channel)
            stdin = anyio.wrap_file(sys.stdin)
            async for raw in stdin:
                line = raw.strip()
                if not line:
                    continue
                try:
                    if not await _command(rt, line, say):
                        break
                except (ValueError, TypeError, ConnectError, TimeoutError) as exc:
                    say("tether", f"error: {exc}")
    return 0


@contextmanager
def _no_hub(url: str) -> Iterator[Any]:
    yield None


HELP = """commands:
  send CH EVENT JSON     send EVENT with JSON to channel CH
  broadcast EVENT JSON   send EVENT with JSON to everyone
  emit EVENT JSON        a plain Socket.IO emit
  join CH / leave CH     join or leave a channel
  profile JSON           share your member profile
  members CH             list the members of CH
  close / open           close the connection (stays closed) / open it again
  quit                   leave"""


async def _command(rt: RealtimeClient, line: str, say: Callable[[str, str], None]) -> bool:
    verb, _, rest = line.partition(" ")
    rest = rest.strip()
    if verb == "quit":
        return False
    if verb == "help":
        say("tether", HELP)
    elif verb == "send":
        channel, event, payload = _split(rest, 3)
        rt.send(channel, event, json.loads(payload))
    elif verb == "broadcast":
        event, payload = _split(rest, 2)
        rt.broadcast(event, json.loads(payload))
    elif verb == "emit":
        event, payload = _split(rest, 2)
        rt.emit(event, json.loads(payload))
    elif verb == "join":
        rt.join(rest)
    elif verb == "leave":
        rt.leave(rest)
    elif verb == "profile":
        rt.update_profile(json.loads(rest))
    elif verb == "members":
        members = await rt.get_members(rest, timeout=5)
        say("me", f"members of {rest}: {_short([(m.id, m.data) for m in members], 400)}")
    elif verb == "close":
        rt.close()
    elif verb == "open":
        rt.open()
    else:
        say("tether", f"unknown command {verb!r}; type 'help'")
    return True


def _split(text: str, parts: int) -> list[str]:
    pieces = text.split(" ", parts - 1)
    if len(pieces) != parts:
        raise ValueError(f"expected {parts} arguments")
    return pieces


def run_connect(
    url: str | None,
    channels: list[str],
    auth: dict[str, Any] | None,
    backend: str,
    out: TextIO = sys.stdout,
) -> int:
    return anyio.run(_connect, url, channels, auth, out, backend=backend)


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
    return anyio.run(_demo, out, backend=backend)
