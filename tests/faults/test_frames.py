"""The frame filter, pure: generated WebSocket streams fed in every chunking.

Each stream is an HTTP head followed by messages (text, binary, fragmented, Socket.IO ACKs and
BINARY_ACKs with their attachments, pings between fragments), masked towards the server as
RFC 6455 §5.3 wants. The model knows where every frame starts, so each fault's expected
output can be computed without the filter.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faults.frames import (
    BINARY,
    CONTINUATION,
    MAX_HEAD,
    PING,
    TEXT,
    FrameFaults,
    FrameFilter,
    build_frame,
)
from faults.kinds import Corruption, Direction, Fault

REQUEST = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: x\r\n\r\n"
)


@dataclasses.dataclass
class Frame:
    """One frame of a generated stream and where it sits."""

    opcode: int
    payload: bytes
    data: bytes  # the encoded frame
    start: int  # offset in the stream
    header_length: int
    group: int  # the message group it belongs to (an ACK and its attachments share one)
    is_ack: bool  # part of an ACK group (the ACK frame, its continuations, attachments)


@dataclasses.dataclass
class Stream:
    direction: Direction
    data: bytes
    frames: list[Frame]

    def without_group(self, group: int) -> bytes:
        out = bytearray(self.data[: self.frames[0].start] if self.frames else self.data)
        for frame in self.frames:
            if frame.group != group or frame.opcode >= 0x8:
                out += frame.data
        return bytes(out)


# A message: (kind, payload, fragment count, attachments) with kind "text", "binary", "ack".
_texts = st.one_of(
    st.just("2"),
    st.just("3"),
    st.builds(lambda v: "42" + json.dumps(["event", v]), st.text(max_size=40)),
    st.builds(lambda v: "4" + v, st.text(max_size=300)),
    st.text(max_size=20),
).filter(lambda text: not text.startswith(("43", "46")))  # those are ACKs on the wire
_acks = st.one_of(
    st.builds(lambda n, v: f"43{n}" + json.dumps([v]), st.integers(0, 10**6), st.text(max_size=40)),
    st.builds(lambda n: f'43/admin,{n}["ok"]', st.integers(0, 99)),
)
_messages = st.lists(
    st.one_of(
        st.tuples(st.just("text"), _texts, st.integers(1, 3), st.just(0)),
        st.tuples(
            st.just("binary"), st.binary(max_size=200).map(bytes.hex), st.integers(1, 2), st.just(0)
        ),
        st.tuples(st.just("ack"), _acks, st.integers(1, 3), st.just(0)),
        st.tuples(
            st.just("binary ack"),
            st.integers(0, 99).map(lambda n: str(n)),
            st.integers(1, 2),
            st.integers(1, 3),
        ),
    ),
    max_size=12,
)


def build_stream(
    direction: Direction, messages: list[tuple[str, str, int, int]], seed: int
) -> Stream:
    head = REQUEST if direction is Direction.TO_SERVER else RESPONSE
    data = bytearray(head)
    frames: list[Frame] = []
    counter = seed

    def mask() -> bytes | None:
        nonlocal counter
        counter += 1
        if direction is Direction.TO_CLIENT:
            return None
        return bytes((counter * k + 7) % 256 for k in (3, 5, 11, 13))

    def add(opcode: int, payload: bytes, fin: bool, group: int, is_ack: bool) -> None:
        key = mask()
        encoded = build_frame(opcode, payload, fin=fin, mask=key)
        header_length = len(encoded) - len(payload)
        frames.append(Frame(opcode, payload, encoded, len(data), header_length, group, is_ack))
        data.extend(encoded)

    def add_message(opcode: int, payload: bytes, parts: int, group: int, is_ack: bool) -> None:
        size = max(1, -(-len(payload) // parts))
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        for index, piece in enumerate(pieces):
            add(
                opcode if index == 0 else CONTINUATION,
                piece,
                index == len(pieces) - 1,
                group,
                is_ack,
            )
            if index < len(pieces) - 1:
                add(PING, b"p", True, group, False)  # control frames may interleave (§5.4)

    for group, (kind, text, parts, attachments) in enumerate(messages):
        if kind == "binary":
            add_message(BINARY, bytes.fromhex(text), parts, group, False)
        elif kind == "text":
            add_message(TEXT, text.encode(), parts, group, False)
        elif kind == "ack":
            add_message(TEXT, text.encode(), parts, group, True)
        else:
            header = f'46{attachments}-{text}[{{"_placeholder":true,"num":0}}]'.encode()
            add_message(TEXT, header, parts, group, True)
            for number in range(attachments):
                add_message(BINARY, bytes([number]) * 5, 1, group, True)
    return Stream(direction, bytes(data), frames)


def feed_in_chunks(
    frame_filter: FrameFilter, data: bytes, cuts: list[int]
) -> tuple[bytes, list[Fault], int, int]:
    """(output, faults applied, feeds that asked for a reset, bytes dropped)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = bytearray()
    applied: list[Fault] = []
    resets = dropped = 0
    for start, end in itertools.pairwise(points):
        result = frame_filter.feed(data[start:end])
        out += result.data
        applied += result.applied
        resets += result.reset
        dropped += result.dropped
    return bytes(out), applied, resets, dropped


_directions = st.sampled_from([Direction.TO_SERVER, Direction.TO_CLIENT])
_cuts = st.lists(st.integers(0, 10**6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_directions, _messages, _cuts, st.integers(0, 255))
def test_nothing_armed_forwards_every_byte(
    direction: Direction, messages: list[tuple[str, str, int, int]], cuts: list[int], seed: int
) -> None:
    stream = build_stream(direction, messages, seed)
    frame_filter = FrameFilter(direction, FrameFaults())
    out, applied, resets, dropped = feed_in_chunks(frame_filter, stream.data, cuts)
    assert out == stream.data
    assert (applied, resets, dropped) == ([], 0, 0)
    assert frame_filter.frames == len(stream.frames)


@settings(max_examples=300, deadline=None)
@given(_directions, _messages, _cuts, st.integers(0, 255))
def test_drop_ack_removes_the_first_ack_with_its_fragments_and_attachments(
    direction: Direction, messages: list[tuple[str, str, int, int]], cuts: list[int], seed: int
) -> None:
    stream = build_stream(direction, messages, seed)
    faults = FrameFaults(drop_acks=1)
    out, applied, resets, dropped = feed_in_chunks(
        FrameFilter(direction, faults), stream.data, cuts
    )
    acks = [frame.group for frame in stream.frames if frame.is_ack]
    if not acks:
        assert out == stream.data
        assert applied == []
        assert faults.drop_acks == 1  # still armed for a later frame
        return
    expected = stream.without_group(acks[0])
    assert out == expected
    assert dropped == len(stream.data) - len(expected)
    assert applied == [Fault.DROP_ACK]
    assert resets == 0
    assert faults.drop_acks == 0


@settings(max_examples=300, deadline=None)
@given(_directions, _messages, _cuts, st.integers(0, 255), st.sampled_from(list(Corruption)))
def test_corrupt_changes_one_byte_of_the_next_frame_that_fits(
    direction: Direction,
    messages: list[tuple[str, str, int, int]],
    cuts: list[int],
    seed: int,
    how: Corruption,
) -> None:
    stream = build_stream(direction, messages, seed)
    faults = FrameFaults(corrupt=how)
    out, applied, _, _ = feed_in_chunks(FrameFilter(direction, faults), stream.data, cuts)
    if how is Corruption.OPCODE:
        target = stream.frames[0] if stream.frames else None
    else:
        fits = [f for f in stream.frames if f.opcode == TEXT and f.payload]
        target = fits[0] if fits else None
    if target is None:
        assert out == stream.data
        assert faults.corrupt is how
        return
    assert applied == [Fault.CORRUPT]
    assert faults.corrupt is None
    changed = [i for i, (a, b) in enumerate(zip(out, stream.data, strict=True)) if a != b]
    if how is Corruption.OPCODE:
        assert changed == ([target.start] if target.opcode != 0x3 else [])
        assert out[target.start] & 0x0F == 0x3
        assert out[target.start] & 0xF0 == stream.data[target.start] & 0xF0
    else:
        offset = target.start + target.header_length
        assert changed == [offset] or (changed == [] and target.payload[:1] == b"X")
        value = out[offset]
        if direction is Direction.TO_SERVER:
            value ^= target.data[target.header_length - 4]  # the first mask byte
        assert value == (ord("X") if how is Corruption.PACKET_TYPE else 0xFF)


@settings(max_examples=300, deadline=None)
@given(
    _directions,
    _messages,
    _cuts,
    st.integers(0, 255),
    st.integers(0, 300),
    st.none() | st.integers(0, 400),
)
def test_reset_mid_write_cuts_the_first_large_frame(
    direction: Direction,
    messages: list[tuple[str, str, int, int]],
    cuts: list[int],
    seed: int,
    larger_than: int,
    after: int | None,
) -> None:
    stream = build_stream(direction, messages, seed)
    faults = FrameFaults(reset_larger_than=larger_than, reset_after=after)
    out, applied, resets, dropped = feed_in_chunks(
        FrameFilter(direction, faults), stream.data, cuts
    )
    large = [f for f in stream.frames if len(f.payload) > larger_than]
    if not large:
        assert (out, applied, resets) == (stream.data, [], 0)
        assert faults.reset_larger_than == larger_than
        return
    target = large[0]
    kept = len(target.payload) // 2 if after is None else min(after, len(target.payload) - 1)
    cut = target.start + target.header_length + kept
    assert out == stream.data[:cut]
    assert dropped == len(stream.data) - cut
    assert applied == [Fault.RESET_MID_WRITE]
    assert resets == 1
    assert faults.reset_larger_than is None


@settings(max_examples=100, deadline=None)
@given(_messages, _cuts, st.integers(0, 255))
def test_a_stream_that_is_not_upgraded_is_never_touched(
    messages: list[tuple[str, str, int, int]], cuts: list[int], seed: int
) -> None:
    frames = build_stream(Direction.TO_CLIENT, messages, seed).data[len(RESPONSE) :]
    for head in (
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n",
    ):
        faults = FrameFaults(drop_acks=1, corrupt=Corruption.OPCODE, reset_larger_than=0)
        data = head + frames
        out, applied, resets, _ = feed_in_chunks(
            FrameFilter(Direction.TO_CLIENT, faults), data, cuts
        )
        assert (out, applied, resets) == (data, [], 0)


def test_a_request_without_upgrade_is_opaque() -> None:
    faults = FrameFaults(corrupt=Corruption.OPCODE)
    request = b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
    body = build_frame(TEXT, b"4hello")
    result = FrameFilter(Direction.TO_SERVER, faults).feed(request + body)
    assert result.data == request + body
    assert faults.corrupt is Corruption.OPCODE


def test_a_frame_with_rsv1_is_never_taken_for_an_ack() -> None:
    compressed = bytearray(build_frame(TEXT, b"43[1]"))
    compressed[0] |= 0x40  # RSV1: permessage-deflate (RFC 7692 §6)
    faults = FrameFaults(drop_acks=1)
    result = FrameFilter(Direction.TO_CLIENT, faults).feed(RESPONSE + bytes(compressed))
    assert result.data == RESPONSE + bytes(compressed)
    assert faults.drop_acks == 1


def test_shared_faults_are_taken_once_across_filters() -> None:
    faults = FrameFaults(drop_acks=1)
    first = FrameFilter(Direction.TO_CLIENT, faults)
    second = FrameFilter(Direction.TO_CLIENT, faults)
    ack = build_frame(TEXT, b'430["ok"]')
    assert first.feed(RESPONSE + ack).data == RESPONSE
    assert second.feed(RESPONSE + ack).data == RESPONSE + ack


def test_a_filter_watches_one_direction() -> None:
    with pytest.raises(ValueError, match="one direction"):
        FrameFilter(Direction.BOTH, FrameFaults())


def test_build_frame_wants_a_four_byte_mask() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        build_frame(TEXT, b"x", mask=b"abc")
    assert build_frame(BINARY, b"x" * 70000)[1] == 127
    assert build_frame(BINARY, b"x" * 300)[1] == 126
