"""Handles on the real intermediaries the transport tests go through, Debian's packages all:
tinyproxy (an HTTP proxy: CONNECT and absolute-form requests, Basic auth), nginx (a reverse
proxy configured without the ``Upgrade`` header lines, so WebSocket cannot pass and polling
can), nginx with TLS (an ``https``/``wss`` front for a server, the upgrade passed on) and
HAProxy (a load balancer pinning sessions to one of two servers by cookie).

Each one gets its configuration written into a temporary directory and a port from the OS,
runs in the foreground as a child of the test process (killed by pid when its fixture ends,
and at exit), and is ready once its port accepts connections. scripts/setup installs them.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import TypeVar

START_TIMEOUT = 10.0

_LIVE: weakref.WeakSet[Intermediary] = weakref.WeakSet()
_I = TypeVar("_I", bound="Intermediary")


@atexit.register
def _kill_all() -> None:
    for process in list(_LIVE):
        process.stop()


def free_port() -> int:
    """A port the OS says is free now (bound and released: the process binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class IntermediaryStartError(RuntimeError):
    pass


class Intermediary:
    """A proxy process on 127.0.0.1:``port``, configured by ``config()``."""

    name = "intermediary"
    binary = ""

    def __init__(self) -> None:
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix=f"tether-{self.name}-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        raise NotImplementedError

    def command(self, config: Path) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start on a port the OS says is free (a fresh one each try)."""
        for _ in range(5):  # the port may be taken between free_port() and the bind
            self.port = free_port()
            if self._start_once():
                return
        raise IntermediaryStartError(f"{self.name} did not start:\n{self.output()}")

    def restart(self) -> None:
        """Start again on the same port (after ``stop()``): clients find it where it was.
        Retries while the port is still held by the connections of the last run."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self._start_once():
            if time.monotonic() >= deadline:
                raise IntermediaryStartError(f"{self.name} did not restart:\n{self.output()}")
            time.sleep(0.05)

    def _start_once(self) -> bool:
        executable = shutil.which(self.binary) or shutil.which(f"/usr/sbin/{self.binary}")
        if executable is None:
            raise IntermediaryStartError(f"{self.binary} is not installed (scripts/setup)")
        config = self.dir / f"{self.name}.conf"
        config.write_text(self.config())
        log = (self.dir / "output.log").open("ab")
        self._proc = subprocess.Popen(
            [executable, *self.command(config)[1:]],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        _LIVE.add(self)
        if self._wait_listening():
            return True
        self.stop()
        return False

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            time.sleep(0.02)
        return False

    def output(self) -> str:
        text = ""
        for path in sorted(self.dir.glob("*.log")):
            text += path.read_text(errors="replace")
        return text

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _LIVE.discard(self)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self: _I) -> _I:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TinyProxy(Intermediary):
    """tinyproxy; ``credentials=("user", "secret")`` requires Basic auth, ``connect_ports``
    limits where CONNECT may go (tinyproxy answers 403 elsewhere)."""

    name = "tinyproxy"
    binary = "tinyproxy"

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.credentials = credentials
        self.connect_ports = connect_ports

    def config(self) -> str:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            "MaxClients 50",
            f'LogFile "{self.dir / "tinyproxy.log"}"',
            "LogLevel Info",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        if self.credentials is not None:
            lines.append(f"BasicAuth {self.credentials[0]} {self.credentials[1]}")
        lines += [f"ConnectPort {port}" for port in self.connect_ports]
        return "\n".join(lines) + "\n"

    def command(self, config: Path) -> list[str]:
        return ["tinyproxy", "-d", "-c", str(config)]

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged (``CONNECT host:port HTTP/1.1``, ...)."""
        return [
            line.split("): ", 1)[1]
            for line in self.output().splitlines()
            if "Request (file descriptor" in line
        ]


class NginxWithoutUpgrade(Intermediary):
    """nginx in front of ``upstream`` (``host:port``), proxying HTTP/1.1 without the
    ``Upgrade``/``Connection`` header lines a WebSocket needs (the classic misconfiguration):
    the upgrade reaches the server as a plain GET and is refused; polling works."""

    name = "nginx"
    binary = "nginx"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream

    def config(self) -> str:
        d = self.dir
        return f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://{self.upstream};
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""

    def command(self, config: Path) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-c", str(config)]


class NginxTLS(Intermediary):
    """nginx terminating TLS in front of ``upstream`` (``host:port``) and passing WebSocket
    upgrades on (the ``Upgrade``/``Connection`` lines a WebSocket needs): an ``https``/``wss``
    server for tests that need one. ``certificate`` and ``key`` are PEM bytes (trustme's)."""

    name = "nginx-tls"
    binary = "nginx"

    def __init__(self, upstream: str, *, certificate: bytes, key: bytes) -> None:
        super().__init__()
        self.upstream = upstream
        (self.dir / "server.pem").write_bytes(certificate)
        (self.dir / "server.key").write_bytes(key)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def config(self) -> str:
        d = self.dir
        return f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        location / {{
            proxy_pass http://{self.upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""

    def command(self, config: Path) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-c", str(config)]


class HAProxyPinned(Intermediary):
    """HAProxy balancing round-robin over ``upstreams`` (``host:port`` each), pinning a
    session to one by the ``SERVERID`` cookie it inserts into the first answer.

    No health checks and no ``option redispatch``: a request whose cookie names a server that
    is down gets a 503, so a client that kept the cookie of a dead server's session could
    not reconnect; one that starts with an empty jar is balanced anew."""

    name = "haproxy"
    binary = "haproxy"

    def __init__(self, upstreams: list[str]) -> None:
        super().__init__()
        self.upstreams = upstreams

    def config(self) -> str:
        servers = "\n".join(
            f"    server s{i} {upstream} cookie s{i}" for i, upstream in enumerate(self.upstreams)
        )
        return f"""
global
    maxconn 200
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s
frontend front
    bind 127.0.0.1:{self.port}
    default_backend pinned
backend pinned
    balance roundrobin
    cookie SERVERID insert indirect nocache
{servers}
"""

    def command(self, config: Path) -> list[str]:
        return ["haproxy", "-db", "-f", str(config)]

    def handshake_without_cookie(self, timeout: float = 10.0) -> tuple[str, str, int]:
        """A polling handshake, then a poll with its sid but without the cookie, by hand
        (blocking): the sid, the balancer's ``Set-Cookie`` and the status of the poll that
        round robin sent to the other server (400, "Session ID unknown")."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/socket.io/?EIO=4&transport=polling")
            response = conn.getresponse()
            body = response.read().decode()
            cookie = response.getheader("Set-Cookie") or ""
            sid: str = json.loads(body.split("\x1e")[0][1:])["sid"]
            conn.request("GET", f"/socket.io/?EIO=4&transport=polling&sid={sid}")
            status = conn.getresponse().status
        finally:
            conn.close()
        return sid, cookie, status
