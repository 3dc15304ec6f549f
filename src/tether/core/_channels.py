"""Channels and the member profile: state the hub is told, not messages in a queue.

The hub's wire format (``specs/hub-wire-format.md``) has ``join``/``leave`` events and an
``update`` event for the profile. What the user wants is state: the channels joined, with
their echo flags, and the last profile. What the hub of the current session has been told is
state too. The two are reconciled whenever they can differ (``specs/invariants.md`` I8): each
call tells the hub only what changes, and every connect tells a fresh session everything
(contract 2.5: re-join, then the profile, before the buffered messages), while a recovered
session keeps what its server already had. So a ``join`` made while offline is sent once, by
the connect, and never twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Channels", "check_channel"]

#: What a channel operation asks the hub to do: a hub event name and its payload.
Notice = tuple[str, dict[str, Any]]


def check_channel(channel: object) -> None:
    if not isinstance(channel, str):
        raise TypeError(f"channel names are str, got {type(channel).__name__}")
    if not channel:
        raise ValueError("channel name must not be empty")


class Channels:
    """The channels the user wants and the profile, against what the hub has been told."""

    __slots__ = ("_profile", "_told", "_wanted")

    def __init__(self) -> None:
        self._wanted: dict[str, bool] = {}  # channel -> echo flag
        self._told: dict[str, bool] = {}  # what this session's hub has, with its flag
        self._profile: dict[str, Any] | None = None  # the last ``update`` payload

    @property
    def wanted(self) -> Mapping[str, bool]:
        return self._wanted

    def join(self, channel: str, echo: bool, connected: bool) -> Notice | None:
        """Want ``channel``; what to tell the hub now, if anything."""
        self._wanted[channel] = echo
        if connected and self._told.get(channel) != echo:
            self._told[channel] = echo
            return "join", {"channel": channel, "echo": echo}
        return None

    def leave(self, channel: str, echo: bool, connected: bool) -> Notice | None:
        """Stop wanting ``channel``; what to tell the hub now, if anything.

        Offline, a channel the hub had is remembered with this call's own echo flag (not the
        join's, contract 2.4): a recovered session sends the leave at its connect.
        """
        self._wanted.pop(channel, None)
        if channel not in self._told:
            return None
        if not connected:
            self._told[channel] = echo
            return None
        del self._told[channel]
        return "leave", {"channel": channel, "echo": echo}

    def set_profile(self, data: Any, echo: bool, connected: bool) -> Notice | None:
        self._profile = {"data": data, "echo": echo}
        return ("update", self._profile) if connected else None

    def session_started(self, recovered: bool) -> list[Notice]:
        """Everything to tell the hub of a session that has just connected.

        A session that was not recovered knows nothing. Even a recovered one gets every join
        and the profile again: recovery replays only server→client packets, so a join written
        just before the drop may never have arrived (socket.io #5363); joins and profile
        updates are idempotent on the hub.
        """
        if not recovered:
            self._told = {}
        told = self._told
        notices: list[Notice] = [
            ("leave", {"channel": channel, "echo": told.pop(channel)})
            for channel in [c for c in told if c not in self._wanted]
        ]
        for channel, echo in self._wanted.items():
            told[channel] = echo
            notices.append(("join", {"channel": channel, "echo": echo}))
        if self._profile is not None:
            notices.append(("update", self._profile))
        return notices
