"""Where the hub keeps channel membership and member profiles.

python-socketio's rooms only deliver messages, and only for the clients of one process, so they
cannot answer "who is in this channel?" for a multi-process hub. The store is the source of
truth for membership and profiles: ``MemoryStore`` for a single process, ``RedisStore`` when
several hub processes share a Redis server. Rooms are still used for delivery.

Both stores keep members in join order so ``members`` answers are stable: each membership
gets a position (a sequence number, increasing with every join) and ``members`` pages by it.
A re-join of a member already in a channel keeps its position.

Both refuse a join past the per-client channel limit (``TooManyChannels``), atomically.

Redis layout (``P`` is the configured prefix, ``tether:`` by default):

==========================  ======  =====================================================
key                         type    content
==========================  ======  =====================================================
``P profile``               hash    sid → profile JSON (absent = null)
``P members:<channel>``     zset    sid → join sequence number (join order)
``P chans:<sid>``           hash    channel → echo flag of the last join (``1``/``0``)
``P node:<node>``           set     sids of hub process ``node`` that have state here
``P nodes``                 set     every registered hub process id
``P alive:<node>``          string  heartbeat, expires after the node TTL
``P seq``                   string  join sequence counter
``P reap:<node>``           string  short lock: one process reaps a dead node
==========================  ======  =====================================================
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from ._paging import Member
from ._validate import json_text

__all__ = ["Departed", "MemoryStore", "RedisStore", "Store", "TooManyChannels"]

log = logging.getLogger("tether.hub")

Profile = dict[str, Any] | None


@dataclass(frozen=True)
class Departed:
    """A member that is gone: announce ``channel:leave`` for it in each of ``channels``."""

    sid: str
    profile: Profile
    channels: tuple[str, ...]


class TooManyChannels(Exception):
    """The client is already in as many channels as the hub allows one client."""


class Store(Protocol):
    """The operations the hub needs; every method is one atomic step."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def add_client(self, sid: str) -> None: ...
    async def remove_client(self, sid: str) -> Departed: ...
    async def join(self, sid: str, channel: str, echo: bool) -> tuple[bool, Profile]:
        """Add ``sid`` to ``channel``; ``(True, profile)`` if it was not a member yet.

        Raises ``TooManyChannels`` (and changes nothing) when ``sid`` is not a member yet and
        already is in ``max_channels_per_client`` channels.
        """
        ...

    async def leave(self, sid: str, channel: str) -> tuple[bool, Profile]:
        """Remove ``sid`` from ``channel``; ``(True, profile)`` if it was a member."""
        ...

    async def set_profile(self, sid: str, profile: Profile) -> list[str]:
        """Store the profile; return the channels ``sid`` is in."""
        ...

    async def members(self, channel: str, *, after: int = 0, limit: int) -> list[Member]:
        """At most ``limit`` members whose position is above ``after``, in join order."""
        ...

    async def heartbeat(self) -> list[Departed]:
        """Keep this process registered; return members of dead processes it cleaned up."""
        ...

    async def shutdown(self) -> list[Departed]:
        """Remove whatever this process still owns (graceful stop)."""
        ...


class MemoryStore:
    """Single-process store: plain dicts, insertion-ordered.

    A channel's members dict (sid → position) is in ascending position order, because a
    position is only ever given to a sid inserted at the end. ``members`` scans it from the
    start, so paging through a channel of n members costs O(n) per page.
    """

    def __init__(self, max_channels_per_client: int) -> None:
        self._max_channels = max_channels_per_client
        self._profiles: dict[str, Profile] = {}
        self._channels: dict[str, dict[str, bool]] = {}
        self._members: dict[str, dict[str, int]] = {}
        self._position = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add_client(self, sid: str) -> None:
        self._profiles.setdefault(sid, None)
        self._channels.setdefault(sid, {})

    async def remove_client(self, sid: str) -> Departed:
        profile = self._profiles.pop(sid, None)
        channels = tuple(self._channels.pop(sid, {}))
        for channel in channels:
            self._discard(channel, sid)
        return Departed(sid, profile, channels)

    async def join(self, sid: str, channel: str, echo: bool) -> tuple[bool, Profile]:
        joined = self._channels.setdefault(sid, {})
        new = channel not in joined
        if new:
            if len(joined) >= self._max_channels:
                raise TooManyChannels
            self._position += 1
            self._members.setdefault(channel, {})[sid] = self._position
        joined[channel] = echo
        return new, self._profiles.get(sid)

    async def leave(self, sid: str, channel: str) -> tuple[bool, Profile]:
        joined = self._channels.get(sid, {})
        if channel not in joined:
            return False, self._profiles.get(sid)
        del joined[channel]
        self._discard(channel, sid)
        return True, self._profiles.get(sid)

    async def set_profile(self, sid: str, profile: Profile) -> list[str]:
        self._profiles[sid] = profile
        return list(self._channels.get(sid, {}))

    async def members(self, channel: str, *, after: int = 0, limit: int) -> list[Member]:
        found: list[Member] = []
        if limit < 1:
            return found
        for sid, position in self._members.get(channel, {}).items():
            if position > after:
                found.append(Member(sid, self._profiles.get(sid), position))
                if len(found) == limit:
                    break
        return found

    async def heartbeat(self) -> list[Departed]:
        return []

    async def shutdown(self) -> list[Departed]:
        return [await self.remove_client(sid) for sid in list(self._channels)]

    def _discard(self, channel: str, sid: str) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._members[channel]


# Each script is one atomic step on the server, so concurrent hub processes never see a member
# half-joined or half-removed. Keys are built from ARGV (prefix first); fine for a single Redis
# server or a replicated pair, not for Redis Cluster (documented in specs/hub-wire-format.md).
_JOIN = """
local p, sid, ch, echo, node, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local mkey = p .. 'members:' .. ch
local ckey = p .. 'chans:' .. sid
local new = 0
if not redis.call('ZSCORE', mkey, sid) then
  if redis.call('HLEN', ckey) >= tonumber(limit) then
    return {-1, false}
  end
  redis.call('ZADD', mkey, redis.call('INCR', p .. 'seq'), sid)
  new = 1
end
redis.call('SADD', p .. 'node:' .. node, sid)
redis.call('HSET', ckey, ch, echo)
return {new, redis.call('HGET', p .. 'profile', sid)}
"""

_LEAVE = """
local p, sid, ch = ARGV[1], ARGV[2], ARGV[3]
local removed = redis.call('ZREM', p .. 'members:' .. ch, sid)
redis.call('HDEL', p .. 'chans:' .. sid, ch)
return {removed, redis.call('HGET', p .. 'profile', sid)}
"""

_SET_PROFILE = """
local p, sid, data, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if data == '' then
  redis.call('HDEL', p .. 'profile', sid)
else
  redis.call('SADD', p .. 'node:' .. node, sid)
  redis.call('HSET', p .. 'profile', sid, data)
end
return redis.call('HKEYS', p .. 'chans:' .. sid)
"""

_MEMBERS = """
local p, ch, after, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rows = redis.call('ZRANGEBYSCORE', p .. 'members:' .. ch, '(' .. after, '+inf',
  'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', p .. 'profile', rows[i])
end
return out
"""

_REMOVE = """
local p, sid, node = ARGV[1], ARGV[2], ARGV[3]
local chans = redis.call('HKEYS', p .. 'chans:' .. sid)
local profile = redis.call('HGET', p .. 'profile', sid)
for _, ch in ipairs(chans) do
  redis.call('ZREM', p .. 'members:' .. ch, sid)
end
redis.call('DEL', p .. 'chans:' .. sid)
redis.call('HDEL', p .. 'profile', sid)
redis.call('SREM', p .. 'node:' .. node, sid)
return {profile, chans}
"""


class RedisStore:
    """Multi-process store in Redis, with a per-process heartbeat for crash clean-up.

    Each hub process registers a node id with a heartbeat key that expires after ``node_ttl``
    seconds. Every heartbeat also looks for registered nodes whose heartbeat expired (a hub
    that died without a graceful stop) and removes their members, returning them so the caller
    can announce ``channel:leave``. A short lock makes sure only one process reaps a dead node.
    """

    def __init__(
        self, url: str, prefix: str, node_ttl: float, max_channels_per_client: int
    ) -> None:
        self._url = url
        self._max_channels = str(max_channels_per_client)
        self._prefix = prefix
        self._ttl_ms = max(1, int(node_ttl * 1000))
        self.node_id = uuid.uuid4().hex
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}

    async def start(self) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.Redis.from_url(self._url, decode_responses=True)
        await self._redis.ping()
        for name, source in {
            "join": _JOIN,
            "leave": _LEAVE,
            "set_profile": _SET_PROFILE,
            "members": _MEMBERS,
            "remove": _REMOVE,
        }.items():
            self._scripts[name] = self._redis.register_script(source)
        await self._beat()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def add_client(self, sid: str) -> None:
        # Nothing to store yet: a sid is registered under this node by its first join or
        # profile, so connecting never depends on Redis being reachable.
        return None

    async def remove_client(self, sid: str) -> Departed:
        return await self._remove(sid, self.node_id)

    async def join(self, sid: str, channel: str, echo: bool) -> tuple[bool, Profile]:
        new, profile = await self._run(
            "join", sid, channel, "1" if echo else "0", self.node_id, self._max_channels
        )
        if new == -1:
            raise TooManyChannels
        return bool(new), _load_profile(profile)

    async def leave(self, sid: str, channel: str) -> tuple[bool, Profile]:
        removed, profile = await self._run("leave", sid, channel)
        return bool(removed), _load_profile(profile)

    async def set_profile(self, sid: str, profile: Profile) -> list[str]:
        text = "" if profile is None else json_text(profile)
        channels: list[str] = await self._run("set_profile", sid, text, self.node_id)
        return channels

    async def members(self, channel: str, *, after: int = 0, limit: int) -> list[Member]:
        if limit < 1:
            return []
        flat: list[str | None] = await self._run("members", channel, str(after), str(limit))
        return [
            Member(str(flat[i]), _load_profile(flat[i + 2]), int(float(str(flat[i + 1]))))
            for i in range(0, len(flat) - 2, 3)
        ]

    async def heartbeat(self) -> list[Departed]:
        await self._beat()
        departed: list[Departed] = []
        for node in sorted(await self._redis.smembers(self._key("nodes"))):
            if node == self.node_id or await self._redis.exists(self._key("alive:", node)):
                continue
            locked = await self._redis.set(self._key("reap:", node), "1", nx=True, px=30_000)
            if not locked:
                continue
            log.warning("hub process %s stopped without cleaning up; removing its members", node)
            departed.extend(await self._reap(node))
        return departed

    async def shutdown(self) -> list[Departed]:
        departed = await self._reap(self.node_id)
        await self._redis.delete(self._key("alive:", self.node_id))
        return departed

    async def _beat(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._key("nodes"), self.node_id)
            pipe.set(self._key("alive:", self.node_id), "1", px=self._ttl_ms)
            await pipe.execute()

    async def _reap(self, node: str) -> list[Departed]:
        sids = sorted(await self._redis.smembers(self._key("node:", node)))
        departed = [await self._remove(sid, node) for sid in sids]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key("node:", node))
            pipe.srem(self._key("nodes"), node)
            await pipe.execute()
        return departed

    async def _remove(self, sid: str, node: str) -> Departed:
        profile, channels = await self._run("remove", sid, node)
        return Departed(sid, _load_profile(profile), tuple(channels))

    async def _run(self, script: str, *args: str) -> Any:
        return await self._scripts[script](args=[self._prefix, *args])

    def _key(self, *parts: str) -> str:
        return self._prefix + "".join(parts)


def _load_profile(text: str | None) -> Profile:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None
