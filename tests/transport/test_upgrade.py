"""The client side of the WebSocket opening handshake (``tether.transport._upgrade``), sans I/O.

wsproto's own handshake (over h11) is the oracle: the request must be its bytes, and on
generated responses our verdict (accepted, refused with a status, failed) must be its
verdict. The transports' tests check the same code against real sockets and servers.
"""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from tether.transport._stream import _endpoint
from tether.transport._upgrade import (
    MAX_REFUSAL_BODY,
    MAX_REFUSAL_TEXT,
    MAX_RESPONSE_HEAD,
    RefusalBody,
    UpgradeFailed,
    UpgradeRefused,
    UpgradeResponse,
    new_key,
    refusal_text,
    upgrade_request,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # ...and its accept token


def accept_token(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())


def node_101(accept: bytes = ACCEPT) -> bytes:
    """What Node's ws (socket.io 4.8) answers, header for header."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def feed(response: UpgradeResponse, *chunks: bytes) -> bool:
    done = False
    for chunk in chunks:
        assert not done, "bytes after the head belong to the frames, not to the handshake"
        done = response.receive_data(chunk)
    return done


# --- the request ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8080/socket.io/?EIO=4&transport=websocket",
        "wss://B\u00fccher.example/socket.io/?EIO=4&transport=websocket&t=%C3%A9",
        "ws://[::1]:3000/x",
    ],
)
def test_the_request_bytes_are_wsprotos(url: str) -> None:
    """Byte for byte the request wsproto's handshake writes, key aside."""
    endpoint = _endpoint(url, [("X-Token", " t\u00e9 "), ("Authorization", "Bearer x")])
    wsproto_request = WSConnection(ConnectionType.CLIENT).send(
        Request(host=endpoint.host_header, target=endpoint.target, extra_headers=endpoint.headers)
    )
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in wsproto_request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    ours = upgrade_request(endpoint.target, endpoint.host_header, endpoint.headers, key)
    assert ours == wsproto_request
    if "example" in url:  # an internationalized name travels in its ASCII form
        assert b"\r\nHost: xn--bcher-kva.example\r\n" in ours


def test_keys_are_fresh_16_byte_nonces() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100  # RFC 6455 4.1 item 7: randomly selected for each connection
    assert all(len(base64.b64decode(key, validate=True)) == 16 for key in keys)


# --- accepting ------------------------------------------------------------------------------


def test_rfc_6455_example_and_what_came_behind() -> None:
    response = UpgradeResponse(KEY)
    assert feed(response, node_101() + b"\x81\x02hi\x81")
    assert response.trailing == b"\x81\x02hi\x81"


@given(st.data())
def test_any_split_of_the_answer_gives_the_same_result(data: st.DataObject) -> None:
    whole = node_101() + b"\x81\x05hello"
    cuts = sorted(data.draw(st.sets(st.integers(1, len(whole) - 1), max_size=12)))
    chunks = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    response = UpgradeResponse(KEY)
    head_end = len(node_101())
    for i, chunk in enumerate(chunks):
        done = response.receive_data(chunk)
        consumed = sum(map(len, chunks[: i + 1]))
        assert done == (consumed >= head_end)
        if done:
            assert response.trailing == whole[head_end:consumed]
            break


@pytest.mark.parametrize(
    "head",
    [
        # Case and whitespace are free (RFC 9110 5.1, 5.6.3).
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade:WebSocket\r\nCONNECTION:   upgrade \r\n"
        b"sec-websocket-accept: \t" + ACCEPT + b"\t\r\n\r\n",
        # Connection is a list, and may come as several fields (RFC 9110 5.3, 7.6.1); wsproto
        # would read only the last one.
        b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n",
        # An obsolete line fold in a header we do not read (RFC 9112 5.2).
        node_101().replace(b"\r\n\r\n", b"\r\nServer: node\r\n \t v20 \r\n\r\n"),
        # Bare LF line ends (RFC 9112 2.2), no reason phrase, other headers.
        b"HTTP/1.1 101\nUpgrade: websocket\nConnection: Upgrade\nDate: now\n"
        b"Server:\nSec-WebSocket-Accept: " + ACCEPT + b"\n\n",
    ],
)
def test_acceptable_variants(head: bytes) -> None:
    response = UpgradeResponse(KEY)
    assert feed(response, head)
    assert response.trailing == b""


# --- refusing and failing ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 200, 400, 403, 426, 503])
def test_any_other_status_is_a_refusal_with_its_code(status: int) -> None:
    with pytest.raises(UpgradeRefused) as info:
        UpgradeResponse(KEY).receive_data(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % status)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP"),
        (b"\r\n" + node_101(), "not an HTTP"),
        (b"HTTP/1.1 10 Short\r\n\r\n", "not an HTTP"),
        (node_101().replace(b"Upgrade: websocket", b"Upgrade: h2c"), "Upgrade: websocket"),
        (node_101().replace(b"Upgrade: websocket\r\n", b""), "Upgrade: websocket"),
        (node_101().replace(b"Connection: Upgrade", b"Connection: close"), "Connection: Upgrade"),
        (node_101(accept=b"d3Jvbmc="), "does not match"),
        (node_101().replace(b"Sec-WebSocket-Accept", b"X-Accept"), "does not match"),
        (
            node_101().replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n"),
            "does not match",  # twice: one field of two values, not our token
        ),
        (
            node_101().replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ),
            "extension",
        ),
        (node_101().replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions:\r\n\r\n"), "extension"),
        (
            node_101().replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
            "subprotocol",
        ),
        (node_101().replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol:\r\n\r\n"), "subprotocol"),
        # An obs-fold is part of the value before it (RFC 9112 5.2): "websocket folded".
        (node_101().replace(b"\r\nConnection", b"\r\n folded\r\nConnection"), "Upgrade: websocket"),
        (
            node_101().replace(b"101 Switching Protocols\r\n", b"101 x\r\n folded\r\n"),
            "malformed header",
        ),
        (node_101().replace(b"\r\nConnection", b"\r\n a\x00b\r\nConnection"), "malformed header"),
        (node_101().replace(b"\r\n\r\n", b"\r\nBad Name: x\r\n\r\n"), "malformed header"),
        (node_101().replace(b"\r\n\r\n", b"\r\nX: a\x00b\r\n\r\n"), "malformed header"),
        (node_101().replace(b"\r\n\r\n", b"\r\nX: a\rb\r\n\r\n"), "malformed header"),
        (node_101().replace(b"\r\n\r\n", b"\r\nno colon\r\n\r\n"), "malformed header"),
    ],
)
def test_broken_acceptances_fail(head: bytes, why: str) -> None:
    with pytest.raises(UpgradeFailed, match=why):
        UpgradeResponse(KEY).receive_data(head)


def test_the_errors_never_quote_the_server() -> None:
    """A server that echoes our request must not put its query and headers into our errors."""
    secret = b"GET /socket.io/?token=SECRET HTTP/1.1\r\nAuthorization: SECRET\r\n"
    for answer in (secret + b"\r\n", b"HTTP/1.1 101 x\r\n" + secret + b"\r\n"):
        with pytest.raises((UpgradeFailed, UpgradeRefused)) as info:
            UpgradeResponse(KEY).receive_data(answer)
        assert "SECRET" not in str(info.value)


def test_eof_is_not_an_answer() -> None:
    response = UpgradeResponse(KEY)
    assert not response.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")
    with pytest.raises(UpgradeFailed, match="closed the connection"):
        response.receive_data(b"")


def test_the_head_is_bounded() -> None:
    response = UpgradeResponse(KEY)
    assert not response.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")
    line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_RESPONSE_HEAD // len(line)):
        assert not response.receive_data(line)
    with pytest.raises(UpgradeFailed, match="over 16384 bytes"):
        response.receive_data(line)
    # A head that ends, but too late, in one read.
    too_long = node_101().replace(b"\r\n\r\n", b"\r\n" + line * 17 + b"\r\n")
    with pytest.raises(UpgradeFailed, match="over 16384 bytes"):
        UpgradeResponse(KEY).receive_data(too_long)


def test_a_pathological_header_line_is_linear() -> None:
    """The header grammar cannot backtrack badly: 16 KiB of 'a a a ...' then a NUL."""
    line = b"X: " + b"a " * (MAX_RESPONSE_HEAD // 2 - 40) + b"\x00"
    started = time.process_time()
    with pytest.raises(UpgradeFailed, match="malformed header"):
        UpgradeResponse(KEY).receive_data(b"HTTP/1.1 101 x\r\n" + line + b"\r\n\r\n")
    # Not a benchmark: a regex that backtracked quadratically would take minutes here.
    assert time.process_time() - started < 5


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=4096), max_size=8))
def test_any_bytes_end_in_one_of_three_ways(chunks: list[bytes]) -> None:
    """Accepted, refused or failed (never another exception), with a bounded buffer."""
    response = UpgradeResponse(KEY)
    try:
        for chunk in chunks:
            if response.receive_data(chunk):
                return
            assert len(response._buffer) <= MAX_RESPONSE_HEAD
    except (UpgradeFailed, UpgradeRefused):
        pass


# --- the same verdict as wsproto's handshake ------------------------------------------------

_NAMES = ["Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Extensions"]
_VALUES = {
    "Upgrade": [b"websocket", b"WebSocket", b"h2c", b""],
    "Connection": [b"Upgrade", b"upgrade", b"keep-alive, Upgrade", b"close", b""],
    "Sec-WebSocket-Accept": [b"ACCEPT", b"d3Jvbmc=", b""],
    "Sec-WebSocket-Extensions": [b"", b"permessage-deflate"],
    "Sec-WebSocket-Protocol": [b"chat", b""],
    "Server": [b"node", b"a  b", b""],
}
_field = st.sampled_from(sorted(_VALUES)).flatmap(
    lambda name: st.tuples(
        st.sampled_from([name, name.lower(), name.upper()]),
        st.sampled_from(_VALUES[name]),
        st.sampled_from([b"", b" ", b"\t", b"  "]),
        st.sampled_from([b"", b" ", b"\t", b"FOLD"]),  # FOLD: an obs-fold line follows
    )
)


@given(
    status=st.sampled_from([b"101 Switching Protocols", b"101", b"101 ", b"400 Bad Request"]),
    required=st.lists(st.booleans(), min_size=3, max_size=3),
    extra=st.lists(_field, max_size=4),
    newline=st.sampled_from([b"\r\n", b"\n"]),
)
def test_our_verdict_is_wsprotos(
    status: bytes,
    required: list[bool],
    extra: list[tuple[str, bytes, bytes, bytes]],
    newline: bytes,
) -> None:
    ws = WSConnection(ConnectionType.CLIENT)
    request = ws.send(Request(host="example.com", target="/"))
    key = next(
        line.split(b": ", 1)[1].decode()
        for line in request.split(b"\r\n")
        if line.startswith(b"Sec-WebSocket-Key:")
    )
    usual = [b"websocket", b"Upgrade", b"ACCEPT"]
    fields = [
        (name, value, b" ", b"")
        for name, value, present in zip(_NAMES[:3], usual, required, strict=True)
        if present
    ]
    names = {name.lower() for name, *_ in fields}
    # Each field once: repeated fields are where wsproto and we part on purpose. It reads the
    # last one only; we join them into a list (RFC 9110 5.3), so that "Connection:
    # keep-alive" plus "Connection: Upgrade" is accepted (test_acceptable_variants).
    for field in extra:
        if field[0].lower() not in names:
            fields.append(field)
            names.add(field[0].lower())
    head = b"HTTP/1.1 " + status + newline
    for name, value, before, after in fields:
        sent = accept_token(key) if value == b"ACCEPT" else value
        end = after.replace(b"FOLD", newline + b" \tmore ")
        head += name.encode() + b":" + before + sent + end + newline
    head += newline

    try:
        ws.receive_data(head)
        theirs = next(ws.events())
    except RemoteProtocolError:
        theirs = None
    try:
        accepted = UpgradeResponse(key).receive_data(head)
        ours: object = "accepted" if accepted else "incomplete"
    except UpgradeRefused as refused:
        ours = refused.status
    except UpgradeFailed:
        ours = None

    event(f"verdict: {ours}")  # --hypothesis-show-statistics: all three kinds occur
    if isinstance(theirs, AcceptConnection):
        assert ours == "accepted"
    elif isinstance(theirs, RejectConnection):
        assert ours == theirs.status_code
    else:
        assert ours is None


# --- what a refusal says ----------------------------------------------------------------------

NODE_400_CHUNKED = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n28\r\n"
    b'{"code":0,"message":"Transport unknown"}\r\n0\r\n\r\n'
)


def refused_by(answer: bytes) -> UpgradeRefused:
    with pytest.raises(UpgradeRefused) as info:
        UpgradeResponse(KEY).receive_data(answer)
    return info.value


@pytest.mark.parametrize("cut", [len(NODE_400_CHUNKED.split(b"\r\n\r\n")[0]) + 4, 150, 190])
def test_a_refusals_body_is_collected_whatever_the_chunking(cut: int) -> None:
    # Node answers a polling-only server's upgrade with a chunked JSON body, which may come
    # in pieces after the head.
    refused = refused_by(NODE_400_CHUNKED[:cut])
    assert refused.status == 400
    body = refused.body
    body.receive_data(NODE_400_CHUNKED[cut:])
    assert body.done
    assert body.data == b'{"code":0,"message":"Transport unknown"}'
    assert refusal_text(body.data, []) == "Transport unknown"


def test_a_refusals_body_by_content_length_and_by_close() -> None:
    refused = refused_by(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nForbidden")
    assert refused.body.done and refused.body.data == b"Forbidden"
    # Engine.IO's abortUpgrade: text, then the socket closes.
    refused = refused_by(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nBad req")
    assert refused.body.data == b"Bad req"  # and more may come, up to the close
    refused.body.receive_data(b"uest")
    refused.body.receive_data(b"")
    assert refused.body.done and refused.body.data == b"Bad request"


def test_a_refusals_body_is_kept_only_up_to_its_bound() -> None:
    refused = refused_by(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n" + b"x" * 5000)
    assert refused.body.done
    assert len(refused.body.data) == MAX_REFUSAL_BODY


def test_an_answer_h11_cannot_read_just_has_no_body() -> None:
    body = RefusalBody(b"HTTP/1.1 400 Bad\r\nContent-Length: nope\r\n\r\nwhatever")
    assert body.done and body.data == b""


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"code":0,"message":"Transport unknown"}', "Transport unknown"),
        (b'"Session ID unknown"', "Session ID unknown"),
        (b"Bad request\n", "Bad request"),
        (
            b"<html><head><title>400 Bad Request</title></head><body>"
            b"<center><h1>400 Bad Request</h1></center><hr><center>nginx</center></body></html>",
            "400 Bad Request 400 Bad Request nginx",
        ),
        (
            b"a\x1b[31mred\x00\x07 bell\r\n\tand\xff\xfe bytes",
            "a [31mred bell and\ufffd\ufffd bytes",
        ),
        (b"", None),
        (b"   \r\n", None),
        (b"<p></p>", None),
    ],
)
def test_a_refusals_text_is_sanitised(body: bytes, text: str | None) -> None:
    assert refusal_text(body, []) == text


def test_a_refusals_text_is_bounded() -> None:
    text = refusal_text(b"word " * 500, [])
    assert text is not None
    assert len(text) == MAX_REFUSAL_TEXT and text.endswith("...")


def test_what_the_request_carried_is_cut_out_of_a_refusals_text() -> None:
    # A server (or proxy) that echoes the request must not put our tokens into the error.
    echoed = b"Bad request: GET /socket.io/?EIO=4&token=s3cr%2Ft&x=1 Authorization: Bearer abc123"
    text = refusal_text(echoed, ["s3cr/t", "s3cr%2Ft", "1", "Bearer abc123"])
    assert (
        text == "Bad request: GET /socket.io/?EIO=4&token=[redacted]&x=1 Authorization: [redacted]"
    )
