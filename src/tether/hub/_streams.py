"""The seam between history and live delivery (specs/delivery.md §4.3, §4.5): every
message of a stream is kept and delivered in one order, and a member that comes back gets
what it missed before anything live, none of it twice.

``Streams`` owns it. Each stream has a lock in this process: publishing (memory) or
delivering what Redis published (``RedisHistory.listen``) holds it, and so does a re-join
while it replays and enters the room. So no live message of the stream reaches the member
between its replayed ones.

With Redis the member enters the room *before* reading the history, so nothing published
meanwhile is missed; what the read already returned and then also arrives live is left out
by the member's *floor*, its last replayed position, until a newer message goes past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

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
        async with self._lock(stream):
            position = await self._history.append(
                stream, event, payload, skip_client=skip_client, sender=sender
            )
            if position is None:
                return False
            await self._sio.emit(
                event,
                payload,
                room=room_of(stream),
                skip_sid=skip_sid,
                namespace=self._namespace,
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
                answer = Replay([], since, False, "history off").answer(0)
            await self._sio.enter_room(sid, room, namespace=self._namespace)
            if announce is not None and answer is not None:
                await announce(answer)
            return answer
        async with self._lock(stream):
            if self._shared:
                await self._sio.enter_room(sid, room, namespace=self._namespace)
            if since is None:
                answer = {"pos": await self._history.head(stream)}
                replay = None
            else:
                replay = await self._history.replay(stream, since)
                replayed = 0
                for entry in replay.entries:
                    if entry.skip_client is not None and entry.skip_client == client:
                        continue
                    await self._sio.emit(
                        entry.event,
                        entry.payload,
                        to=sid,
                        namespace=self._namespace,
                        ignore_queue=True,
                    )
                    replayed += 1
                answer = replay.answer(replayed)
            if self._shared:
                floor = entry_key(answer["pos"])
                if floor is not None:
                    self._floors.setdefault(stream, {})[sid] = floor
            else:
                await self._sio.enter_room(sid, room, namespace=self._namespace)
            if announce is not None:
                await announce(answer)
        return answer

    def forget(self, sid: str, stream: str | None = None) -> None:
        """``sid`` left ``stream`` (or every stream: it disconnected)."""
        streams = [stream] if stream is not None else list(self._floors)
        for key in streams:
            floors = self._floors.get(key)
            if floors is not None:
                floors.pop(sid, None)
                if not floors:
                    del self._floors[key]

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
