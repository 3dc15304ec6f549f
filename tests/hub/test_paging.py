"""Properties of ``members`` pages (``tether.hub._paging``, specs/hub-wire-format.md §2.7).

Pure logic, so Hypothesis drives it with random member lists, profile sizes, limits and
``max_bytes``; the hub's own loop (fetch ``limit + 1`` after the cursor, add them, answer) is
replayed over a plain list, and the real encoder (python-socketio's packet class) measures
every frame.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from tether.hub._paging import (
    MIN_MAX_BYTES,
    Member,
    PageBuilder,
    ack_frame_overhead,
)

profiles = st.one_of(
    st.none(),
    st.dictionaries(
        st.text(max_size=5), st.text(max_size=300) | st.integers() | st.booleans(), max_size=4
    ),
)


@st.composite
def channels(draw: st.DrawFn) -> list[Member]:
    count = draw(st.integers(0, 40))
    positions = sorted(draw(st.sets(st.integers(1, 10**6), min_size=count, max_size=count)))
    return [Member(f"sid-{p:020d}", draw(profiles), p) for p in positions]


def frame_bytes(ack_id: int, answer: Any) -> int:
    """The WebSocket message python-socketio sends for this ACK: ``4`` + its packet."""
    pkt = sio_packet.Packet(sio_packet.ACK, data=[answer], namespace="/", id=ack_id)
    return len(("4" + pkt.encode()).encode())


def page(members: list[Member], after: int, limit: int, frame: int, ack_id: int) -> Any:
    """What the hub answers: the members after ``after``, fetched ``limit + 1`` at a time."""
    builder = PageBuilder(budget=frame - ack_frame_overhead(ack_id), limit=limit, paged=True)
    found = [m for m in members if m.position > after][: limit + 1]
    return builder.answer(more=not builder.add_all(found))


@settings(max_examples=300, deadline=None)
@given(
    members=channels(),
    limit=st.integers(1, 1000),
    frame=st.integers(MIN_MAX_BYTES, 6000),
    ack_id=st.integers(0, 10**12),
)
def test_pages_cover_every_member_in_order_and_fit(
    members: list[Member], limit: int, frame: int, ack_id: int
) -> None:
    seen: list[dict[str, Any]] = []
    after = 0
    for _ in range(len(members) + 1):
        answer = page(members, after, limit, frame, ack_id)
        assert frame_bytes(ack_id, answer) <= frame
        assert 0 < len(answer["members"]) <= limit or not answer["next"]
        seen += answer["members"]
        if answer["next"] is None:
            break
        after = int(answer["next"])
    else:
        raise AssertionError("paging did not end")
    assert [entry["id"] for entry in seen] == [m.sid for m in members]
    for entry, member in zip(seen, members, strict=True):
        if entry.get("oversized"):
            assert entry == {"id": member.sid, "data": None, "oversized": True}
            alone = {"members": [{"id": member.sid, "data": member.profile}], "next": "1" * 20}
            assert frame_bytes(ack_id, alone) > frame  # it really did not fit
        else:
            assert entry == {"id": member.sid, "data": member.profile}


@settings(max_examples=200, deadline=None)
@given(members=channels(), frame=st.integers(MIN_MAX_BYTES, 20_000), ack_id=st.integers(0, 999))
def test_legacy_list_is_whole_or_refused(members: list[Member], frame: int, ack_id: int) -> None:
    builder = PageBuilder(budget=frame - ack_frame_overhead(ack_id), limit=1 << 62, paged=False)
    everything = [{"id": m.sid, "data": m.profile} for m in members]
    if builder.add_all(members):
        assert builder.answer(more=False) == everything
        assert frame_bytes(ack_id, everything) <= frame
    else:
        assert frame_bytes(ack_id, everything) > frame


def test_sizes_are_measured_as_python_socketio_encodes() -> None:
    """Non-ASCII profiles travel as ``\\u`` escapes: six bytes for an "é", not two."""
    member = Member("sid", {"name": "é" * 100}, 1)
    text = json.dumps({"id": "sid", "data": member.profile}, separators=(",", ":"))
    builder = PageBuilder(budget=len("[]") + len(text), limit=10, paged=False)
    assert builder.add(member)
    assert not PageBuilder(budget=len("[]") + len(text) - 1, limit=10, paged=False).add(member)
