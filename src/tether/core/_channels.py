"""Channels, the member profile and continuity: what the hub is told, and where each stream
was left.

The hub's wire format (``specs/hub-wire-format.md``) has ``join``/``leave`` events and an
``update`` event for the profile. What the user wants is state: the channels joined, with
their echo flags, and the last profile. What the hub of the current session has been told is
state too. The two are reconciled whenever they can differ (``specs/invariants.md`` I8): each
call tells the hub only what changes, and every connect tells a fresh session everything
(contract 2.5: re-join, then the profile, before the buffered messages), while a recovered
session keeps what its server already had. So a ``join`` made while offline is sent once, by
the connect, and never twice.

Continuity (``specs/delivery.md`` §4): every message the hub delivers in a channel, and every
broadcast, carries its position in its stream. The client keeps the last position of each
stream it is in, re-joins with it (``since``) after a reconnect or ``close()`` + ``open()``,
and the hub replays what was missed. The broadcasts resume at the CONNECT. Positions are
opaque strings; the client never compares them, it only gives back the last one it saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._events import ResumeReason, StreamResumed

__all__ = ["HUB_RESUME", "Channels", "check_channel"]

#: What a channel operation asks the hub to do: a hub event name and its payload.
Notice = tuple[str, dict[str, Any]]

#: The hub's answer to a tether client's CONNECT, about the broadcast stream (§4.5).
HUB_RESUME: Final = "hub:resume"


def check_channel(channel: object) -> None:
    if not isinstance(channel, str):
        raise TypeError(f"channel names are str, got {type(channel).__name__}")
    if not channel:
        raise ValueError("channel name must not be empty")


class Channels:
    """The channels the user wants and the profile, against what the hub has been told; the
    position of each stream; the ids of the user's hub messages."""

    __slots__ = (
        "_last_message_id",
        "_positions",
        "_profile",
        "_told",
        "_unanswered",
        "_wanted",
        "broadcast_position",
        "tracking",
    )

    def __init__(self) -> None:
        self._wanted: dict[str, bool] = {}  # channel -> echo flag
        self._told: dict[str, bool] = {}  # what this session's hub has, with its flag
        self._profile: dict[str, Any] | None = None  # the last ``update`` payload
        # channel -> the last position seen there; made when a hub first gives one.
        self._positions: dict[str, str] | None = None
        #: The last position seen in the broadcast stream, offered with the CONNECT.
        self.broadcast_position: str | None = None
        #: Whether the server has shown it is a hub with continuity (it gave a position):
        #: until then nothing received is looked at for positions.
        self.tracking = False
        # Streams asked for their position (a join, or the CONNECT for the broadcasts) that
        # delivered nothing since: only for those does the answer's position count. The hub
        # writes the answer after the replay and the join's own ``channel:join``, and live
        # messages may overtake it, so a position seen after the ask is newer than the
        # answer's (specs/delivery.md §4.5).
        self._unanswered: set[str | None] = set()
        self._last_message_id = 0

    @property
    def wanted(self) -> Mapping[str, bool]:
        return self._wanted

    def message_id(self) -> int:
        """The id of the user's next hub message: the same across its tries (§4.2)."""
        self._last_message_id += 1
        return self._last_message_id

    # --- membership and the profile ------------------------------------------------------

    def join(self, channel: str, echo: bool, connected: bool) -> Notice | None:
        """Want ``channel``; what to tell the hub now, if anything."""
        self._wanted[channel] = echo
        if connected and self._told.get(channel) != echo:
            self._told[channel] = echo
            self._unanswered.add(channel)
            return "join", {"channel": channel, "echo": echo}
        return None

    def leave(self, channel: str, echo: bool, connected: bool) -> Notice | None:
        """Stop wanting ``channel``; what to tell the hub now, if anything.

        Offline, a channel the hub had is remembered with this call's own echo flag (not the
        join's, contract 2.4): a recovered session sends the leave at its connect.
        """
        self._wanted.pop(channel, None)
        if self._positions is not None:
            self._positions.pop(channel, None)
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
        updates are idempotent on the hub. A join carries the last position seen in its
        channel, if any, so the hub replays what was missed.
        """
        if not recovered:
            self._told = {}
        told = self._told
        notices: list[Notice] = [
            ("leave", {"channel": channel, "echo": told.pop(channel)})
            for channel in [c for c in told if c not in self._wanted]
        ]
        positions = self._positions or {}
        self._unanswered = {None}  # the CONNECT asks about the broadcasts
        for channel, echo in self._wanted.items():
            told[channel] = echo
            self._unanswered.add(channel)
            payload: dict[str, Any] = {"channel": channel, "echo": echo}
            since = positions.get(channel)
            if since is not None:
                payload["since"] = since
            notices.append(("join", payload))
        if self._profile is not None:
            notices.append(("update", self._profile))
        return notices

    # --- continuity ------------------------------------------------------------------------

    def saw(self, payload: Any) -> None:
        """A delivered hub payload; keep its position (channel messages, member events and
        broadcasts all carry one)."""
        if type(payload) is dict:
            position = payload.get("pos")
            if type(position) is str:
                channel = payload.get("channel")
                if channel is None:
                    self.broadcast_position = position
                elif type(channel) is str and channel in self._wanted:
                    self._position(channel, position)
                else:
                    return
                if self._unanswered:  # only right after a join or a CONNECT
                    self._unanswered.discard(channel)

    def _position(self, channel: str, position: str) -> None:
        if self._positions is None:
            self._positions = {}
        self._positions[channel] = position

    def joined(self, channel: str, since: str | None, answer: Any) -> StreamResumed | None:
        """The hub's answer to a join; the resume to report, if the join resumed."""
        return self._answered(channel, since, answer)

    def connect_resumed(self, since: str | None, answer: Any) -> StreamResumed | None:
        """The hub's ``hub:resume`` after a CONNECT that offered ``since`` for the broadcasts."""
        return self._answered(None, since, answer)

    def _answered(
        self, channel: str | None, since: str | None, answer: Any
    ) -> StreamResumed | None:
        if type(answer) is not dict or type(answer.get("pos")) is not str:
            # An older hub, or not a hub: there is no continuity to report on.
            if since is None:
                return None
            return StreamResumed(channel, False, 0, ResumeReason.UNSUPPORTED)
        self.tracking = True
        position = answer["pos"]
        if channel in self._unanswered:
            self._unanswered.discard(channel)
            if channel is None:
                self.broadcast_position = position
            elif channel in self._wanted:
                self._position(channel, position)
        if since is None:
            return None  # a first join: nothing to resume
        replayed = answer.get("replayed")
        reason = answer.get("reason")
        return StreamResumed(
            channel,
            answer.get("resumed") is True,
            replayed if type(replayed) is int and replayed >= 0 else 0,
            reason if type(reason) is str else None,
        )
