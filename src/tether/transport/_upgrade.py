"""The client side of the WebSocket opening handshake (RFC 6455 4.1), sans I/O.

Both WebSocket transports open their connections with it: ``StreamConnector`` writes
:func:`upgrade_request`, checks the answer with :class:`UpgradeResponse`, and only then
hands the stream to the library's framing (wsproto's ``FrameProtocol``, websockets'
``Protocol``). Why not wsproto's own handshake (``WSConnection`` over h11): it is a general
HTTP/1.1 machine, and on a fresh connect it was the largest single cost of the client
(benchmarks/README.md, "Connect"). A client handshake needs far less: write one fixed
request, read one response head, accept exactly one shape of it. The random key and the
accept token still come from wsproto (``wsproto.utilities``).

What is checked, and what happens otherwise (each a ``TransportError`` at the caller):

* The head is at most :data:`MAX_RESPONSE_HEAD` bytes (h11's default limit), so a server
  that never ends its headers cannot make us buffer without bound.
* A status line ``HTTP/x.y NNN [reason]``. Any status but 101 is a refusal reported with its
  code (Engine.IO 1.9: Node answers a bad ``EIO`` or an unknown ``sid`` with 400 or 403).
* Header lines ``token ":" OWS value OWS``, no NUL, CR or LF in a value: h11's grammar
  (RFC 9110 5.1, 5.5). Obsolete line folding is unfolded into one SP (RFC 9112 5.2, what a
  user agent must do; h11 too). Lines end in CRLF; a bare LF is accepted as well (RFC 9112
  2.2, as h11 does). Repeated fields are joined with ", " (RFC 9110 5.3).
* RFC 6455 4.1, the client's checks on a 101: ``Upgrade`` is ``websocket`` and
  ``Connection`` has the ``upgrade`` token (both case-insensitive), ``Sec-WebSocket-Accept``
  is the token of our key, and the server chose no extension and no subprotocol (we offer
  neither). These are the checks wsproto's handshake makes; a test holds our verdict to
  wsproto's on generated responses.

Error texts never quote the server's head: a server that echoes the request would otherwise
put our query string and headers (tokens) into every logged traceback. A refusal's *body*
often says why (Node: ``Transport unknown`` from a polling-only server, ``Session ID
unknown``), so :func:`refusal_text` makes a short, sanitised text of it: at most
:data:`MAX_REFUSAL_BODY` bytes read, the ``message`` of an Engine.IO error object, markup
and control characters gone, every query and header value we sent cut out, at most
:data:`MAX_REFUSAL_TEXT` characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final

import h11
from wsproto.utilities import generate_accept_token, generate_nonce

__all__ = [
    "MAX_REFUSAL_BODY",
    "MAX_REFUSAL_TEXT",
    "MAX_RESPONSE_HEAD",
    "RefusalBody",
    "UpgradeFailed",
    "UpgradeRefused",
    "UpgradeResponse",
    "new_key",
    "refusal_text",
    "upgrade_request",
]

#: The most bytes a response head (status line and headers) may take; h11's default.
MAX_RESPONSE_HEAD: Final = 16 * 1024
#: The most bytes of a refusal's body kept for its text, and the most characters shown.
MAX_REFUSAL_BODY: Final = 1024
MAX_REFUSAL_TEXT: Final = 120
#: Secrets shorter than this are not cut out of a refusal's text (they would cut words).
_MIN_SECRET: Final = 3

# The grammar h11 parses a response head with (h11._abnf), so that a server wsproto's
# handshake accepted is accepted here: RFC 9112 4, HTTP-version SP status-code [SP reason]
# (the SP before an empty reason may be missing); RFC 9110 5.1 and 5.5, a field name is a
# token and a field value has no NUL and no whitespace but SP and HTAB between its parts.
_STATUS_LINE: Final = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: (?:[ \t]|[^\x00\s])*)?")
_HEADER_LINE: Final = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*"
)
# A continuation line of an obs-fold: whitespace, then more of the value (RFC 9112 5.2).
_FOLDED_LINE: Final = re.compile(rb"[ \t]+((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
# The end of the head: the first empty line (CRLF CRLF, or bare LFs, RFC 9112 2.2).
_HEAD_END: Final = re.compile(rb"\n\r?\n")
# The tags of an HTML error page (a proxy's), which say nothing.
_MARKUP: Final = re.compile(r"<[^>]*>")


class UpgradeFailed(Exception):
    """The server's answer to the upgrade is not a valid acceptance (the text says why)."""


class UpgradeRefused(Exception):
    """The server answered the upgrade with an HTTP status other than 101.

    ``body`` collects the answer's body (what has come of it so far, and more through its
    ``receive_data``).
    """

    def __init__(self, status: int, body: RefusalBody | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body if body is not None else RefusalBody(b"")


class RefusalBody:
    """The body of a refused upgrade, up to :data:`MAX_REFUSAL_BODY` bytes.

    h11 reads its framing (``Content-Length``, chunks, or up to the close). Feed it with
    :meth:`receive_data` until :attr:`done`; :attr:`data` is the body so far. An answer h11
    cannot parse just ends the body.
    """

    __slots__ = ("_parser", "data", "done")

    def __init__(self, answer: bytes) -> None:
        """``answer``: the response so far, its head included."""
        self.data = b""
        self.done = False
        self._parser = h11.Connection(h11.CLIENT)
        # h11 reads a response only after a request: one that asks for no upgrade, so a
        # refusal reads as the plain HTTP answer it is.
        self._parser.send(h11.Request(method="GET", target="/", headers=[("Host", "server")]))
        self._parser.send(h11.EndOfMessage())
        if answer:
            self.receive_data(answer)

    def receive_data(self, data: bytes) -> None:
        """More of the answer (``b""``: the server closed the connection)."""
        if self.done:
            return
        parser = self._parser
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    return
                if type(event) is h11.Data:
                    self.data += bytes(event.data)
                    if len(self.data) >= MAX_REFUSAL_BODY:
                        break
                elif type(event) not in (h11.Response, h11.InformationalResponse):
                    break  # EndOfMessage, ConnectionClosed, PAUSED: the body is over
        except h11.ProtocolError:
            pass
        self.data = self.data[:MAX_REFUSAL_BODY]
        self.done = True


def refusal_text(body: bytes, secrets: Iterable[str]) -> str | None:
    """A short text of a refusal's ``body`` that is safe to show, or ``None``.

    The ``message`` of an Engine.IO error object (``{"code":0,"message":"Transport
    unknown"}``) or the text itself; without markup, control characters and runs of
    whitespace; each of ``secrets`` (what the request carried: query and header values)
    replaced by ``[redacted]``, so a server that echoes the request cannot put a token into
    our error; at most :data:`MAX_REFUSAL_TEXT` characters.
    """
    text = body[:MAX_REFUSAL_BODY].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = parsed["message"]
    elif isinstance(parsed, str):
        text = parsed
    text = _MARKUP.sub(" ", text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, "[redacted]")
    if len(text) > MAX_REFUSAL_TEXT:
        text = text[: MAX_REFUSAL_TEXT - 3] + "..."
    return text or None


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 4.1, item 7)."""
    return generate_nonce().decode("ascii")


def upgrade_request(
    target: str, host_header: str, headers: Sequence[tuple[bytes, bytes]], key: str
) -> bytes:
    """The upgrade request (RFC 6455 4.1), byte for byte what wsproto's handshake writes.

    ``target`` and ``host_header`` are ASCII (the connector made them so); ``headers`` are
    the extra headers as the connector checked and encoded them (Latin-1 bytes).
    """
    lines = [
        b"GET " + target.encode("ascii") + b" HTTP/1.1",
        b"Host: " + host_header.encode("ascii"),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key.encode("ascii"),
        b"Sec-WebSocket-Version: 13",
        *[name + b": " + value for name, value in headers],
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class UpgradeResponse:
    """Collects the server's answer to one upgrade request and checks it.

    Feed it what the socket gives with :meth:`receive_data` until that returns ``True``
    (the head is complete and accepts the upgrade); :attr:`trailing` then holds the bytes
    that came right behind the head (the server's first frames). Raises
    :class:`UpgradeRefused` for a status other than 101 and :class:`UpgradeFailed` for
    anything else wrong.
    """

    __slots__ = ("_buffer", "_expected_accept", "trailing")

    def __init__(self, key: str) -> None:
        self._expected_accept = generate_accept_token(key.encode("ascii"))
        self._buffer = b""
        self.trailing = b""

    def receive_data(self, data: bytes) -> bool:
        """Take more of the answer (``b""``: EOF); ``True`` once the upgrade is accepted."""
        if not data:
            raise UpgradeFailed("the server closed the connection before its answer was whole")
        # Only the new bytes (and the three before them) can complete an empty line.
        searched_from = max(len(self._buffer) - 3, 0)
        self._buffer += data
        end = _HEAD_END.search(self._buffer, searched_from)
        if end is None:
            if len(self._buffer) > MAX_RESPONSE_HEAD:
                raise UpgradeFailed(f"the response head is over {MAX_RESPONSE_HEAD} bytes")
            return False
        if end.start() > MAX_RESPONSE_HEAD:
            raise UpgradeFailed(f"the response head is over {MAX_RESPONSE_HEAD} bytes")
        answer = self._buffer
        head = answer[: end.start()]
        self.trailing = answer[end.end() :]
        self._buffer = b""
        try:
            _check_head(head, self._expected_accept)
        except UpgradeRefused as refused:
            # Its body (what has come of it) may say why.
            raise UpgradeRefused(refused.status, RefusalBody(answer)) from None
        return True


def _check_head(head: bytes, expected_accept: bytes) -> None:
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise UpgradeFailed("the answer is not an HTTP response")
    if status[1] != b"101":
        raise UpgradeRefused(int(status[1]))
    fields: dict[bytes, bytes] = {}
    name = b""
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and name:
            # Obsolete line folding: RFC 9112 5.2 has a user agent replace it with SP.
            folded = _FOLDED_LINE.fullmatch(line)
            if folded is None:
                raise UpgradeFailed("the response has a malformed header line")
            fields[name] += b" " + folded[1]
            continue
        field = _HEADER_LINE.fullmatch(line)
        if field is None:
            raise UpgradeFailed("the response has a malformed header line")
        name = field[1].lower()
        value = field[2]
        fields[name] = fields[name] + b", " + value if name in fields else value
    if fields.get(b"upgrade", b"").lower() != b"websocket":
        raise UpgradeFailed("the response lacks 'Upgrade: websocket'")
    connection = fields.get(b"connection", b"").lower()
    if b"upgrade" not in (token.strip() for token in connection.split(b",")):
        raise UpgradeFailed("the response lacks 'Connection: Upgrade'")
    if fields.get(b"sec-websocket-accept") != expected_accept:
        raise UpgradeFailed("the server's Sec-WebSocket-Accept does not match our key")
    # Even empty: we offered none (wsproto refuses an empty one as well).
    if b"sec-websocket-extensions" in fields:
        raise UpgradeFailed("the server chose a WebSocket extension we did not offer")
    if b"sec-websocket-protocol" in fields:
        raise UpgradeFailed("the server chose a subprotocol we did not ask for")
