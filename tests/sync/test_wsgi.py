"""The blocking client in a WSGI application: one client shared by every view, a real WSGI
server (the standard library's ``wsgiref``, one thread per request) and real HTTP requests
(``urllib``), many at once, against the hub and Node's socket.io."""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import tether
import tether.sync
from hub.conftest import HubProcess, unique
from servers.handles import NodeServer

from .conftest import until

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """``wsgiref``'s server, one thread per request (as a threaded WSGI server runs views)."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_app(rt: tether.sync.RealtimeClient) -> WSGIApp:
    """Views over one shared client: ``/call``, ``/send``, ``/members``, ``/state``."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in urllib.parse.parse_qs(environ["QUERY_STRING"]).items()}
        path = environ["PATH_INFO"]
        body: Any
        try:
            if path == "/call":
                body = rt.call(query["event"], json.loads(query["arg"]), timeout=10)
            elif path == "/send":
                rt.send(query["channel"], "chat", json.loads(query["message"]), echo=False)
                body = "sent"
            elif path == "/members":
                body = [member.id for member in rt.get_members(query["channel"], timeout=10)]
            elif path == "/state":
                body = rt.state.value
            else:
                start_response("404 Not Found", [("content-type", "text/plain")])
                return [b"not found"]
        except tether.TetherError as exc:
            start_response("502 Bad Gateway", [("content-type", "text/plain")])
            return [repr(exc).encode()]
        start_response("200 OK", [("content-type", "application/json")])
        return [json.dumps(body).encode()]

    return app


@contextmanager
def serving(app: WSGIApp) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def get(base: str, path: str, **query: Any) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=20) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_wsgi_views_share_one_client_through_the_hub(hub: HubProcess, backend: str) -> None:
    room = unique("wsgi")
    requests = 40
    with (
        tether.sync.RealtimeClient(hub.url, backend=backend) as reader,
        tether.sync.RealtimeClient(hub.url, backend=backend) as rt,
        serving(make_app(rt)) as base,
    ):
        got: list[Any] = []
        reader.on("chat", lambda payload: got.append(payload["message"]))
        reader.join(room)
        rt.join(room)
        rt.wait_connected(timeout=10)
        reader.wait_connected(timeout=10)

        def request(n: int) -> Any:
            if n % 2:
                return get(base, "/members", channel=room)
            return get(base, "/send", channel=room, message=json.dumps({"n": n}))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(request, range(requests)))
        members = {reader.get_socket_id(), rt.get_socket_id()}
        assert results[0::2] == ["sent"] * (requests // 2)
        assert [set(result) for result in results[1::2]] == [members] * (requests // 2)
        until(lambda: len(got) == requests // 2)
        assert sorted(message["n"] for message in got) == list(range(0, requests, 2))
        assert get(base, "/state") == "connected"


def test_wsgi_views_share_one_client_against_node(node: NodeServer, backend: str) -> None:
    requests = 40
    with (
        tether.sync.RealtimeClient(node.url, backend=backend) as rt,
        serving(make_app(rt)) as base,
    ):
        rt.wait_connected(timeout=10)

        def request(n: int) -> Any:
            return get(base, "/call", event="ack", arg=json.dumps({"n": n}))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(request, range(requests)))
    assert results == [{"n": n} for n in range(requests)]
