"""The hub's configuration: one frozen value shared by the CLI, ``Hub`` and ``HubThread``.

Validation happens here, once, so a bad value is a ``ValueError`` at construction instead of a
half-started server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_PORT", "HubConfig", "redact_url"]

DEFAULT_PORT = 8765

#: Defaults of the bounds in specs/hub-wire-format.md §4.2.
DEFAULT_MAX_CHANNELS_PER_CLIENT = 1000
DEFAULT_MAX_SEND_QUEUE = 10_000
#: Continuity (specs/delivery.md §4.4): messages kept per stream, and for how long.
DEFAULT_HISTORY = 1000
DEFAULT_HISTORY_TTL = 120.0
#: Without ``max_send_queue_bytes``, a client may fall this many ``max_payload`` behind.
SEND_QUEUE_PAYLOADS = 4
#: The largest history a stream may keep: a replay is sent to one client at once.
MAX_HISTORY = 100_000


@dataclass(frozen=True)
class HubConfig:
    """Everything ``tether serve`` can be told.

    ``token`` is excluded from ``repr`` and ``redis_url`` is shown redacted, so a config can be
    logged or printed in a traceback without leaking secrets.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    redis_url: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_channel_name: int = 128
    max_payload: int = 1_000_000
    redis_prefix: str = "tether:"
    node_ttl: float = 15.0
    max_channels_per_client: int = DEFAULT_MAX_CHANNELS_PER_CLIENT
    #: Packets waiting to be sent to one client before it is disconnected as not reading.
    max_send_queue: int = DEFAULT_MAX_SEND_QUEUE
    #: Bytes waiting to be sent to one client; ``None``: ``SEND_QUEUE_PAYLOADS × max_payload``.
    max_send_queue_bytes: int | None = None
    #: Messages kept per stream for replay and deduplication; 0 turns continuity off.
    history: int = DEFAULT_HISTORY
    #: Seconds a message stays in its stream's history, and a sender is remembered.
    history_ttl: float = DEFAULT_HISTORY_TTL

    @property
    def send_queue_bytes(self) -> int:
        """The byte bound of a client's send queue in force."""
        if self.max_send_queue_bytes is not None:
            return self.max_send_queue_bytes
        return SEND_QUEUE_PAYLOADS * self.max_payload

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {self.port}")
        for name in ("ping_interval", "ping_timeout", "node_ttl", "history_ttl"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_channel_name < 1:
            raise ValueError("max_channel_name must be at least 1")
        if self.max_payload < 1024:
            raise ValueError("max_payload must be at least 1024 bytes")
        if self.max_channels_per_client < 1:
            raise ValueError("max_channels_per_client must be at least 1")
        if not 0 <= self.history <= MAX_HISTORY:
            raise ValueError(f"history must be in 0..{MAX_HISTORY} messages per stream")
        if self.max_send_queue < 100:
            raise ValueError("max_send_queue must be at least 100 packets")
        queue_bytes = self.max_send_queue_bytes
        if queue_bytes is not None and queue_bytes < 2 * self.max_payload:
            raise ValueError(
                "max_send_queue_bytes must be at least twice max_payload (one whole message "
                "and its envelope must fit)"
            )
        if self.token is not None and not self.token:
            raise ValueError("token must not be empty (omit it to disable auth)")
        if not self.redis_prefix:
            raise ValueError("redis_prefix must not be empty")
        if self.redis_url is not None:
            scheme = urlsplit(self.redis_url).scheme.lower()
            if scheme not in {"redis", "rediss", "unix"}:
                raise ValueError(
                    f"redis URL must start with redis://, rediss:// or unix://, not {scheme!r}"
                )

    @property
    def redis_url_redacted(self) -> str | None:
        """The Redis URL with any password replaced, for logs and error messages."""
        return None if self.redis_url is None else redact_url(self.redis_url)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                "host",
                "port",
                "ping_interval",
                "ping_timeout",
                "max_channel_name",
                "max_payload",
                "redis_prefix",
                "node_ttl",
                "max_channels_per_client",
                "max_send_queue",
                "max_send_queue_bytes",
                "history",
                "history_ttl",
            )
        )
        token = "'***'" if self.token else "None"
        return f"HubConfig({shown}, redis_url={self.redis_url_redacted!r}, token={token})"


def redact_url(url: str) -> str:
    """Replace the password (and a user name used as a password) in ``url`` with ``***``."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if parts.password is not None else f"***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
