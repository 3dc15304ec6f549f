"""The seam between history and live delivery (specs/delivery.md §4.3, §4.5): every
message of a stream is kept and delivered in one order, and a member that comes back gets
what it missed before anything live, none of it twice.

``Streams`` owns it.

In memory (one process) publishing takes no lock, so a handler never waits for another
connection's delivery (a sender's reader would stop reading its pongs meanwhile).
python-socketio's ``emit`` queues one send task per recipient before it first suspends, and
the history gives the position without suspending either, so each recipient's sends are
queued in position order. A re-join that replays closes the stream's *gate* for as long as
it reads, replays and enters the room: publishers of that stream wait at the gate, so
nothing is appended that the replay would miss and the room not yet deliver. A first join
reads the head and enters the room without suspending in between.

With Redis a single listener task delivers what Redis published, holding the stream's lock,
and a re-join holds it too while it enters the room, reads the history and replays. The
member enters the room *before* reading, so nothing published meanwhile is missed; what
the read already returned and then also arrives live is left out by the member's *floor*,
its last replayed position, until a newer message goes past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tether.core import ResumeReason

from ._history import BROADCASTS, History, Replay
from ._redis_history import RedisHistory, entry_key

__all__ = ["BROADCAST_ROOM", "Streams", "room_of"]

#: The room of the broadcasts; a python-socketio room name no sid can take (no ``:``).
BROADCAST_ROOM = "hub:broadcasts"

Announce = Callable[[dict[str, Any]], Awaitable[None]]


def room_of(stream: str) -> str:
    """Channel ``X`` (stream ``c:X``) is room ``ch:X``: a channel named like a sid must not
    reach that client's private room."""
    return BROADCAST_ROOM if stream == BROADCASTS else "ch:" + stream[2:]


class Streams:
    """Publish into streams, and let members in with their replay (module docstring).

    ``sio`` is the hub's python-socketio server; ``namespace`` the one the hub serves.
    """

    def __init__(self, sio: Any, namespace: str, history: History, *, continuity: bool) -> None:
        self._sio = sio
        self._namespace = namespace
        self._history = history
        self.continuity = continuity
        self._shared = isinstance(history, RedisHistory)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        #: stream -> [replays in progress, the event publishers wait for] (memory only).
        self._gates: dict[str, tuple[list[int], asyncio.Event]] = {}
        #: stream -> sid -> the last position replayed to it (Redis only).
        self._floors: dict[str, dict[str, tuple[int, int]]] = {}

    async def publish(
        self,
        stream: str,
        event: str,
        payload: dict[str, Any],
        *,
        skip_sid: str | None,
        skip_client: str | None,
        sender: tuple[str, int] | None = None,
    ) -> bool:
        """Keep and deliver one message; ``False`` when ``sender`` sent it before."""
        if self._shared:
            # Redis orders the stream and delivers it to every process, this one included.
            position = await self._history.append(
                stream,
                event,
                payload,
                skip_client=skip_client,
                sender=sender,
                skip_sid=skip_sid,
            )
            return position is not None
        await self._past_replays(stream)
        # From here to the send tasks' creation nothing suspends (module docstring).
        position = await self._history.append(
            stream, event, payload, skip_client=skip_client, sender=sender
        )
        if position is None:
            return False
        await self._sio.emit(
            event, payload, room=room_of(stream), skip_sid=skip_sid, namespace=self._namespace
        )
        return True

    async def deliver_shared(self, message: dict[str, Any]) -> None:
        """One entry Redis published (``RedisHistory.listen``): to this process's members."""
        stream, event, skip_sid, position, payload = (
            message["s"],
            message["e"],
            message["k"],
            message["pos"],
            message["p"],
        )
        if position:
            payload["pos"] = position
        async with self._lock(stream):
            skip: list[str] = [] if skip_sid is None else [skip_sid]
            floors = self._floors.get(stream)
            if floors and position:
                key = entry_key(position)
                for sid, floor in list(floors.items()):
                    if key is not None and key <= floor:
                        skip.append(sid)  # replayed to it already
                    else:
                        del floors[sid]  # everything from here on is newer
                if not floors:
                    del self._floors[stream]
            await self._sio.emit(
                event,
                payload,
                room=room_of(stream),
                skip_sid=skip or None,
                namespace=self._namespace,
                ignore_queue=True,
            )

    async def enter(
        self,
        sid: str,
        stream: str,
        *,
        client: str | None,
        since: str | None,
        announce: Announce | None = None,
    ) -> dict[str, Any] | None:
        """Let ``sid`` into the stream's room, after replaying what it missed since
        ``since``; the answer for it (``None`` for a plain client without continuity).

        ``announce(answer)`` runs before any live message can reach ``sid``.
        """
        room = room_of(stream)
        if not self.continuity or client is None:
            answer = None
            if since is not None and client is not None:
                answer = Replay([], since, False, ResumeReason.OFF).answer(0)
            await self._sio.enter_room(sid, room, namespace=self._namespace)
            if announce is not None and answer is not None:
                await announce(answer)
            return answer
        if not self._shared:
            return await self._enter_here(sid, stream, client, since, announce)
        async with self._lock(stream):
            await self._sio.enter_room(sid, room, namespace=self._namespace)
            if since is None:
                answer = {"pos": await self._history.head(stream)}
            else:
                replay = await self._history.replay(stream, since)
                answer = replay.answer(await self._send_replay(sid, client, replay))
            floor = entry_key(answer["pos"])
            if floor is not None:
                self._floors.setdefault(stream, {})[sid] = floor
            if announce is not None:
                await announce(answer)
        return answer

    async def _enter_here(
        self, sid: str, stream: str, client: str, since: str | None, announce: Announce | None
    ) -> dict[str, Any]:
        """``enter`` with the history in this process (module docstring)."""
        room = room_of(stream)
        if since is None:
            answer = {"pos": await self._history.head(stream)}
            # No suspension from the head to the room: what follows the head goes to sid live.
            await self._sio.enter_room(sid, room, namespace=self._namespace)
            if announce is not None:
                await announce(answer)
            return answer
        async with self._gate_closed(stream):
            replay = await self._history.replay(stream, since)
            answer = replay.answer(await self._send_replay(sid, client, replay))
            await self._sio.enter_room(sid, room, namespace=self._namespace)
            if announce is not None:
                await announce(answer)
        return answer

    async def _send_replay(self, sid: str, client: str, replay: Replay) -> int:
        """Send ``sid`` the replayed entries (not those it sent without echo); how many."""
        replayed = 0
        for entry in replay.entries:
            if entry.skip_client is not None and entry.skip_client == client:
                continue
            await self._sio.emit(
                entry.event, entry.payload, to=sid, namespace=self._namespace, ignore_queue=True
            )
            replayed += 1
        return replayed

    def forget(self, sid: str, stream: str | None = None) -> None:
        """``sid`` left ``stream`` (or every stream: it disconnected)."""
        streams = [stream] if stream is not None else list(self._floors)
        for key in streams:
            floors = self._floors.get(key)
            if floors is not None:
                floors.pop(sid, None)
                if not floors:
                    del self._floors[key]

    async def _past_replays(self, stream: str) -> None:
        """Wait while a re-join replays this stream (memory)."""
        gate = self._gates.get(stream)
        while gate is not None:
            await gate[1].wait()
            gate = self._gates.get(stream)

    @asynccontextmanager
    async def _gate_closed(self, stream: str) -> AsyncIterator[None]:
        gate = self._gates.get(stream)
        if gate is None:
            gate = self._gates[stream] = ([0], asyncio.Event())
        count, opened = gate
        count[0] += 1
        try:
            yield
        finally:
            count[0] -= 1
            if count[0] == 0:
                del self._gates[stream]
                opened.set()

    @asynccontextmanager
    async def _lock(self, stream: str) -> AsyncIterator[None]:
        """The stream's lock; dropped once nobody holds or waits for it, so idle streams
        cost nothing."""
        held = self._locks.get(stream)
        if held is None:
            held = self._locks[stream] = (asyncio.Lock(), [0])
        lock, users = held
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[stream]
