"""Payload validation for the hub's events: pure functions, no I/O.

Every client → hub payload passes through here before it touches the store or a room, so a
malformed payload is one ``HubInputError`` with a message meant for the sender, never an
exception deep inside python-socketio. See specs/hub-wire-format.md for the rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RESERVED_EVENTS",
    "HubInputError",
    "Identity",
    "MembersQuery",
    "expect_object",
    "json_text",
    "payload_size",
    "read_channel",
    "read_echo",
    "read_event_name",
    "read_identity",
    "read_members_query",
    "read_message_id",
    "read_profile",
    "read_since",
]

#: Socket.IO's reserved names (refused by every client) plus ``error``, which the hub itself
#: uses to report problems; a user event with that name would be indistinguishable.
RESERVED_EVENTS = frozenset(
    {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
        "error",
    }
)

#: Events under these prefixes are the hub's own: member notifications, and ``hub:resume``.
HUB_EVENT_PREFIXES = ("channel:", "hub:")

#: A tether client's identity (specs/delivery.md §4.1): 22 URL-safe characters, up to 64.
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The longest position a client may give back; the hub's own are far shorter.
MAX_POSITION = 256
#: Message ids are positive integers the client counts up; JavaScript's safe integers.
MAX_MESSAGE_ID = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a tether client is, from its CONNECT: ``client`` survives its reconnects."""

    client: str
    broadcast: str | None


def read_identity(auth: object) -> Identity | None:
    """The ``tether`` key of a CONNECT's auth, or ``None`` (a plain Socket.IO client, or a
    key that is not ours: the client is then served as a plain one, never refused)."""
    if not isinstance(auth, dict):
        return None
    fields = auth.get("tether")
    if not isinstance(fields, dict):
        return None
    client = fields.get("client")
    if not isinstance(client, str) or _CLIENT_ID.fullmatch(client) is None:
        return None
    broadcast = fields.get("broadcast")
    if not (isinstance(broadcast, str) and 0 < len(broadcast) <= MAX_POSITION):
        broadcast = None
    return Identity(client, broadcast)


def read_since(payload: Mapping[str, Any]) -> str | None:
    """A join's ``since``: the last position the client saw in the channel."""
    since = payload.get("since")
    if since is None:
        return None
    if not isinstance(since, str) or not since:
        raise HubInputError(f"since must be a non-empty string, not {_kind(since)}")
    if len(since) > MAX_POSITION:
        raise HubInputError(f"since longer than {MAX_POSITION} characters")
    return since


def read_message_id(payload: Mapping[str, Any]) -> int | None:
    """A message's ``id`` (§4.2): a positive integer, the same across the message's tries."""
    message_id = payload.get("id")
    if message_id is None:
        return None
    if type(message_id) is not int or not 0 < message_id <= MAX_MESSAGE_ID:
        raise HubInputError(f"id must be a positive integer up to {MAX_MESSAGE_ID}")
    return message_id


class HubInputError(ValueError):
    """A client sent a payload the hub refuses; the message is sent back to that client."""


def expect_object(payload: object) -> Mapping[str, Any]:
    """The payload must be a JSON object (a dict); anything else is refused."""
    if not isinstance(payload, dict):
        raise HubInputError(f"payload must be an object, not {_kind(payload)}")
    return payload


def read_channel(payload: Mapping[str, Any], max_len: int, *, required: bool = True) -> str | None:
    """A channel name: a non-empty string of at most ``max_len`` characters."""
    channel = payload.get("channel")
    if channel is None:
        if required:
            raise HubInputError("channel is required")
        return None
    if not isinstance(channel, str):
        raise HubInputError(f"channel must be a string, not {_kind(channel)}")
    if not channel:
        raise HubInputError("channel must not be empty")
    if len(channel) > max_len:
        raise HubInputError(f"channel name longer than {max_len} characters")
    return channel


def read_echo(payload: Mapping[str, Any]) -> bool:
    """The echo flag: a boolean, ``True`` when absent (the contract's default)."""
    echo = payload.get("echo", True)
    if echo is None:
        return True
    if not isinstance(echo, bool):
        raise HubInputError(f"echo must be a boolean, not {_kind(echo)}")
    return echo


def read_event_name(payload: Mapping[str, Any], max_len: int) -> str:
    """A user event name: non-empty, not reserved, not in the hub's ``channel:`` space."""
    name = payload.get("eventName")
    if not isinstance(name, str):
        raise HubInputError(f"eventName must be a string, not {_kind(name)}")
    if not name:
        raise HubInputError("eventName must not be empty")
    if len(name) > max_len:
        raise HubInputError(f"eventName longer than {max_len} characters")
    if name in RESERVED_EVENTS:
        raise HubInputError(f"eventName {name!r} is reserved")
    if name.startswith(HUB_EVENT_PREFIXES):
        raise HubInputError(f"eventName must not start with {name.split(':')[0] + ':'!r}")
    return name


def read_profile(payload: Mapping[str, Any], max_payload: int) -> dict[str, Any] | None:
    """A profile: a JSON object (no binary inside) or null, at most ``max_payload`` bytes."""
    if "data" not in payload:
        raise HubInputError("data is required (an object, or null to clear the profile)")
    data = payload["data"]
    if data is None:
        return None
    if not isinstance(data, dict):
        raise HubInputError(f"data must be an object or null, not {_kind(data)}")
    try:
        text = json_text(data)
    except (TypeError, ValueError):
        raise HubInputError("data must be plain JSON (no binary)") from None
    if len(text.encode()) > max_payload:
        raise HubInputError(f"data larger than {max_payload} bytes")
    return data


@dataclass(frozen=True)
class MembersQuery:
    """A ``members`` request: the legacy form (``paged`` false) or a page request."""

    channel: str
    paged: bool
    #: Most members in the answer (``None``: all of them, legacy form).
    limit: int | None
    #: Position after which the page starts (0: from the first member).
    after: int
    #: The client's own bound on the answer's frame, in bytes (``None``: the hub's).
    max_bytes: int | None


_CURSOR = re.compile(r"[0-9]{1,20}")


def read_members_query(
    payload: Mapping[str, Any], max_len: int, *, max_limit: int, min_max_bytes: int
) -> MembersQuery:
    """``{"channel", "limit"?, "cursor"?, "max_bytes"?}``; any of the last three present (not
    ``null``) asks for a page (specs/hub-wire-format.md §2.7)."""
    channel = read_channel(payload, max_len)
    assert channel is not None
    limit, cursor, max_bytes = (payload.get(key) for key in ("limit", "cursor", "max_bytes"))
    if limit is None and cursor is None and max_bytes is None:
        return MembersQuery(channel, paged=False, limit=None, after=0, max_bytes=None)
    if limit is not None and not (_is_int(limit) and 1 <= limit <= max_limit):
        raise HubInputError(f"limit must be an integer from 1 to {max_limit}")
    if cursor is not None and not (isinstance(cursor, str) and _CURSOR.fullmatch(cursor)):
        raise HubInputError("cursor must be the next value of an earlier answer")
    if max_bytes is not None and not (_is_int(max_bytes) and max_bytes >= min_max_bytes):
        raise HubInputError(f"max_bytes must be an integer of at least {min_max_bytes}")
    return MembersQuery(
        channel,
        paged=True,
        limit=max_limit if limit is None else limit,
        after=0 if cursor is None else int(cursor),
        max_bytes=max_bytes,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_text(value: object) -> str:
    """Compact JSON as the store keeps it; ``allow_nan=False`` because Node rejects NaN."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def payload_size(value: object) -> int:
    """Approximate wire size of ``value`` in bytes: its JSON with binary counted by length.

    Used to refuse messages over the payload limit. The engine.io limit already drops any single
    frame above it; this catches a message split into several frames by binary attachments.
    """
    attachments = 0

    def strip(item: object) -> object:
        nonlocal attachments
        if isinstance(item, (bytes, bytearray, memoryview)):
            attachments += len(item)
            return {"_placeholder": True, "num": 0}
        if isinstance(item, dict):
            return {key: strip(val) for key, val in item.items()}
        if isinstance(item, (list, tuple)):
            return [strip(val) for val in item]
        return item

    try:
        text = json.dumps(strip(value), separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise HubInputError("message is nested too deeply") from None
    except (TypeError, ValueError):
        raise HubInputError("message must be JSON or binary") from None
    return len(text.encode()) + attachments


def _kind(value: object) -> str:
    """The JSON name of ``value``'s type, for error messages that make sense to any client."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    return type(value).__name__
