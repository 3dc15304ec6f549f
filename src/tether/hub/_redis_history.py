"""Continuity shared by every hub process: each stream's history in a Redis Stream, the
senders' highest delivered ids in Redis keys, and delivery through one Redis channel.

Why each choice (specs/delivery.md §4.4):

* Redis Streams, not a log of our own: ``XADD`` gives each entry an id that only grows
  (the position), ``XRANGE`` reads after one, ``XTRIM`` bounds them by count and by age.
* One Lua script checks the sender's id, appends the entry and publishes it, atomically.
  Redis runs scripts one at a time, so the order of the entries in a stream is the order
  in which every hub process receives them on the delivery channel: each member sees a
  stream in position order, whichever process its sender was on.
* A position is ``r:<epoch>:<entry id>``. The epoch lives in Redis (``P epoch``), so a
  hub process that restarts keeps its positions, and a Redis that lost its data is told
  apart (``hub restarted``).
* Streams expire (``PEXPIRE``) when nothing was added for the history's age: whatever they
  held was older than that anyway.

Redis layout (``P`` is the hub's prefix), beside ``_store.py``'s:

===========================  ======  ====================================================
key                          type    content
===========================  ======  ====================================================
``P s:<stream>``             stream  entries: ``e`` = ``[event, skip_client, payload]``
``P meta:<stream>``          hash    ``trimmed`` / ``expired``: the newest id removed so
``P sender:<client>``        string  the highest message id delivered for that client
``P epoch``                  string  the epoch of every position
``P deliver``                pubsub  ``{"s", "e", "k", "pos", "p"}`` per delivered entry
===========================  ======  ====================================================
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tether.core import ResumeReason

from ._history import Entry, Replay

__all__ = ["RedisHistory", "entry_key"]

log = logging.getLogger("tether.hub")

_NOW_AND_EXPIRE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expire(key, meta, now, ttl)
  local cutoff = string.format('%d', now - ttl)
  local old = redis.call('XREVRANGE', key, cutoff, '-', 'COUNT', 1)
  if #old > 0 then
    redis.call('HSET', meta, 'expired', old[1][1])
    redis.call('XTRIM', key, 'MINID', string.format('%d', now - ttl + 1))
  end
end
local function epoch_of(p, fresh)
  local epoch = redis.call('GET', p .. 'epoch')
  if not epoch then
    epoch = fresh
    redis.call('SET', p .. 'epoch', epoch)
  end
  return epoch
end
"""

_APPEND = (
    _NOW_AND_EXPIRE
    + """
local p, stream, header, event, skip, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local size, ttl, client, mid = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
if client ~= '' then
  local skey = p .. 'sender:' .. client
  local high = tonumber(redis.call('GET', skey) or '0')
  if mid <= high then
    redis.call('PEXPIRE', skey, ttl)
    return false
  end
  redis.call('SET', skey, ARGV[10], 'PX', ttl)
end
local pos = ''
if size > 0 then
  local key, meta = p .. 's:' .. stream, p .. 'meta:' .. stream
  local id = redis.call('XADD', key, '*', 'e', '[' .. event .. ',' .. skip .. ',' .. payload .. ']')
  pos = 'r:' .. epoch_of(p, ARGV[11]) .. ':' .. id
  local length = redis.call('XLEN', key)
  if length > size then
    local old = redis.call('XRANGE', key, '-', '+', 'COUNT', length - size)
    redis.call('HSET', meta, 'trimmed', old[#old][1])
    redis.call('XTRIM', key, 'MAXLEN', size)
  end
  expire(key, meta, now_ms(), ttl)
  redis.call('PEXPIRE', key, ttl)
  redis.call('PEXPIRE', meta, ttl)
end
redis.call('PUBLISH', p .. 'deliver', header .. ',"pos":"' .. pos .. '","p":' .. payload .. '}')
return pos
"""
)

_READ = (
    _NOW_AND_EXPIRE
    + """
local p, stream, since, size, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key, meta = p .. 's:' .. stream, p .. 'meta:' .. stream
local now = now_ms()
expire(key, meta, now, ttl)
local entries = {}
if since ~= '' then
  entries = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', size)
end
local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
local marks = redis.call('HMGET', meta, 'trimmed', 'expired')
return {epoch_of(p, ARGV[6]), string.format('%d', now), entries,
        last[1] and last[1][1] or false, marks[1] or false, marks[2] or false}
"""
)

_ENTRY_ID = re.compile(r"(\d{1,19})-(\d{1,19})")
#: How long the delivery listener waits before subscribing again after Redis failed.
_RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def dump_payload(payload: Any) -> str:
    """JSON for Redis, with the binary attachments Socket.IO allows: ``bytes`` become
    ``{"$b": base64}``, and a user's own one-key object named ``$b`` or ``$d`` is wrapped in
    ``{"$d": ...}`` so it comes back as it was."""
    return json.dumps(_tag(payload), separators=(",", ":"))


def load_payload(text: str) -> Any:
    return _untag(json.loads(text))


def _tag(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        tagged = {key: _tag(item) for key, item in value.items()}
        if len(value) == 1 and next(iter(value)) in ("$b", "$d"):
            return {"$d": tagged}
        return tagged
    if isinstance(value, (list, tuple)):
        return [_tag(item) for item in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            key, item = next(iter(value.items()))
            if key == "$b" and isinstance(item, str):
                return base64.b64decode(item)
            if key == "$d" and isinstance(item, dict):
                return {k: _untag(v) for k, v in item.items()}
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def entry_key(position: str) -> tuple[int, int] | None:
    """A Redis position as a comparable key (ms, sequence); ``None`` if it is not one."""
    parts = position.split(":")
    if len(parts) != 3 or parts[0] != "r":
        return None
    match = _ENTRY_ID.fullmatch(parts[2])
    return None if match is None else (int(match[1]), int(match[2]))


class RedisHistory:
    """``History`` in Redis (see the module docstring); ``listen`` runs the delivery loop."""

    def __init__(self, url: str, prefix: str, size: int, ttl: float) -> None:
        self._url = url
        self._prefix = prefix
        self._size = size
        self._ttl_ms = max(1, int(ttl * 1000))
        self._fresh_epoch = secrets.token_hex(4)
        self._redis: Any = None
        self._append: Any = None
        self._read: Any = None
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.Redis.from_url(self._url, decode_responses=True)
        await self._redis.ping()
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def append(
        self,
        stream: str,
        event: str,
        payload: dict[str, Any],
        *,
        skip_client: str | None,
        sender: tuple[str, int] | None,
        skip_sid: str | None = None,
    ) -> str | None:
        client, message_id = sender if sender is not None else ("", 0)
        header = json.dumps({"s": stream, "e": event, "k": skip_sid}, separators=(",", ":"))
        position: str | None = await self._append(
            args=[
                self._prefix,
                stream,
                header[:-1],  # the script appends the position and the payload
                json.dumps(event),
                json.dumps(skip_client),
                dump_payload(payload),
                str(self._size),
                str(self._ttl_ms),
                client,
                str(message_id),
                self._fresh_epoch,
            ]
        )
        if position is None:
            return None
        if position:
            payload["pos"] = position
        return position

    async def head(self, stream: str) -> str:
        epoch, now, _, last, _, _ = await self._run_read(stream, "")
        return self._head(epoch, now, last)

    async def replay(self, stream: str, since: str) -> Replay:
        parts = since.split(":")
        seen = entry_key(since)
        if seen is None:
            epoch, now, _, last, _, _ = await self._run_read(stream, "")
            reason = ResumeReason.RESTARTED if parts[0] == "m" else ResumeReason.UNKNOWN
            return Replay([], self._head(epoch, now, last), False, reason)
        epoch, now, found, last, trimmed, expired = await self._run_read(stream, parts[2])
        head = self._head(epoch, now, last)
        if parts[1] != epoch:
            return Replay([], head, False, ResumeReason.RESTARTED)
        if seen[0] > int(now):
            return Replay([], head, False, ResumeReason.UNKNOWN)
        prefix = f"r:{epoch}:"
        entries = []
        for entry_id, fields in found:
            event, skip_client, payload = load_payload(fields[1])  # a script returns ["e", entry]
            payload["pos"] = prefix + entry_id
            entries.append(Entry(event, payload, skip_client))
        position = entries[-1].payload["pos"] if entries else head
        if trimmed and seen < _key(trimmed):
            return Replay(entries, position, False, ResumeReason.TRIMMED)
        if expired and seen < _key(expired):
            return Replay(entries, position, False, ResumeReason.EXPIRED)
        if last is None and seen[0] < int(now) - self._ttl_ms:
            # The stream expired whole: nothing was added for the history's age, and the
            # client's position is older than that, so what followed it may have expired.
            return Replay(entries, position, False, ResumeReason.EXPIRED)
        return Replay(entries, position, True, None)

    async def listen(self, deliver: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Deliver every published entry, in order, until cancelled; subscribe again when
        Redis fails (what is published meanwhile reaches members only by replay)."""
        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._prefix + "deliver")
                self.subscribed.set()
                failures = 0
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._deliver_one(deliver, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("hub delivery from Redis failed (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    @staticmethod
    async def _deliver_one(deliver: Callable[[dict[str, Any]], Awaitable[None]], data: str) -> None:
        try:
            await deliver(load_payload(data))
        except Exception:
            log.exception("could not deliver a message from Redis")

    async def _run_read(self, stream: str, since: str) -> tuple[Any, ...]:
        epoch, now, found, last, trimmed, expired = await self._read(
            args=[
                self._prefix,
                stream,
                since,
                str(max(1, self._size)),
                str(self._ttl_ms),
                self._fresh_epoch,
            ]
        )
        return epoch, now, found, last or None, trimmed or None, expired or None

    @staticmethod
    def _head(epoch: str, now: str, last: str | None) -> str:
        if last is not None:
            return f"r:{epoch}:{last}"
        # An empty stream: every id Redis gives it from now on is above this one.
        return f"r:{epoch}:{int(now) - 1}-0"


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)
