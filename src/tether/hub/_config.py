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

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {self.port}")
        for name in ("ping_interval", "ping_timeout", "node_ttl"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_channel_name < 1:
            raise ValueError("max_channel_name must be at least 1")
        if self.max_payload < 1024:
            raise ValueError("max_payload must be at least 1024 bytes")
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
