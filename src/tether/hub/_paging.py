"""``members`` answers that never exceed a size: the page builder (pure, no I/O).

A ``members`` answer is sent as one Socket.IO ACK frame, ``43<id>[answer]``. A client refuses
a frame above its own message limit, so the hub sizes every answer (specs/hub-wire-format.md
§2.7): the legacy list must fit the hub's payload limit whole, and a page (the paged form,
``{"members": [...], "next": cursor | null}``) holds as many members, in join order, as fit
the client's ``max_bytes``. A member whose entry alone is too big is listed without its
profile (``{"id": sid, "data": null, "oversized": true}``), so paging always moves on.

Sizes are exact: python-socketio encodes with the standard library's ``json.dumps`` and its
default ``ensure_ascii=True``, so the text is ASCII and its length is its size in bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_PAGE_LIMIT",
    "MIN_MAX_BYTES",
    "Member",
    "PageBuilder",
    "ack_frame_overhead",
    "encode_cursor",
]

#: Most members one page may ask for (``limit``), and the default when a page is asked for.
MAX_PAGE_LIMIT = 1000
#: Smallest ``max_bytes`` a client may ask for: room for a page of one profile-less entry.
MIN_MAX_BYTES = 1024
#: Room kept for ``"next"``'s value: a JSON string of a decimal position.
_NEXT_ROOM = len('"18446744073709551615"')


@dataclass(frozen=True)
class Member:
    """One member of a channel, as the store returns it."""

    sid: str
    profile: dict[str, Any] | None
    #: Join sequence number: the order of ``members`` answers, and what a cursor names.
    position: int


def encode_cursor(position: int) -> str:
    """The cursor for "after this member": its position in decimal (opaque to clients)."""
    return str(position)


def ack_frame_overhead(ack_id: int) -> int:
    """Bytes of ``43<id>[`` and ``]`` around an ACK's single argument."""
    return len("43") + len(str(ack_id)) + len("[]")


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class PageBuilder:
    """Collect members until ``budget`` bytes (the whole ACK frame) or ``limit`` members.

    ``paged`` selects the answer's shape: the page object, or the legacy bare list.
    """

    budget: int
    limit: int
    paged: bool
    entries: list[dict[str, Any]] = field(default_factory=list)
    last_position: int | None = None
    full: bool = False
    _used: int = 0

    def __post_init__(self) -> None:
        if self.paged:
            self._used = len('{"members":[],"next":}') + _NEXT_ROOM
        else:
            self._used = len("[]")

    def add(self, member: Member) -> bool:
        """Add ``member``; ``False`` (and ``full``) when it does not fit: send this page."""
        if len(self.entries) >= self.limit:
            self.full = True
            return False
        comma = 1 if self.entries else 0
        entry: dict[str, Any] = {"id": member.sid, "data": member.profile}
        size = len(_dumps(entry))
        if self._used + comma + size > self.budget:
            if self.entries or not self.paged:
                self.full = True
                return False
            entry = {"id": member.sid, "data": None, "oversized": True}
            size = len(_dumps(entry))
            if self._used + size > self.budget:  # not even the sid fits: cannot happen
                self.full = True  # with MIN_MAX_BYTES and the hub's sids, but never overflow
                return False
        self.entries.append(entry)
        self._used += comma + size
        self.last_position = member.position
        return True

    def add_all(self, members: Iterable[Member]) -> bool:
        """Add members in order until one does not fit; ``True`` if all were added."""
        return all(self.add(member) for member in members)

    def answer(self, more: bool) -> Any:
        """The ACK's argument: the page object, or the legacy list."""
        if not self.paged:
            return self.entries
        following = (
            encode_cursor(self.last_position) if more and self.last_position is not None else None
        )
        return {"members": self.entries, "next": following}
