"""The Engine.IO and Socket.IO decoders under fuzzed input: a value or ``DecodeError``.

The invariant (``_engineio`` and ``_socketio`` docstrings): for any ``str`` or ``bytes``,
``decode_engine_packet`` and ``parse_handshake`` return a well-formed value or raise
:class:`DecodeError`, and ``PacketDecoder`` returns a well-formed packet, ``None`` (an
attachment is awaited) or raises :class:`DecodeError`, which leaves its state as it was.
Nothing else escapes, whatever the input.
"""

from __future__ import annotations

from hypothesis import given

from core.helpers import property_settings

from .frames import decoder_inputs, engine_messages, handshake_payloads
from .harness import check_engine_message, check_handshake_payload, feed_decoders


@property_settings(max_examples=400)
@given(engine_messages())
def test_decode_engine_packet_returns_a_packet_or_raises_decode_error(
    message: str | bytes | bytearray | memoryview,
) -> None:
    check_engine_message(message)


@property_settings(max_examples=400)
@given(handshake_payloads())
def test_parse_handshake_returns_a_handshake_or_raises_decode_error(data: str | bytes) -> None:
    check_handshake_payload(data)


@property_settings(max_examples=400)
@given(decoder_inputs())
def test_packet_decoder_returns_packets_or_raises_and_an_error_changes_nothing(
    messages: list[str | bytes],
) -> None:
    feed_decoders(messages)
