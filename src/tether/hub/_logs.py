"""Log hygiene for the hub: no secrets, and nothing a client can flood.

* uvicorn's connection lines have their query strings cut (clients may put secrets there).
* python-engineio logs every packet at INFO, including the CONNECT packet that carries the
  client's ``auth``: the engine.io and socket.io loggers are pinned at WARNING.
* uvicorn logs a WARNING for each connection that sends an invalid HTTP request or asks for an
  unsupported upgrade (``_compat.CLIENT_CAUSED_UVICORN_WARNINGS``): those become INFO.

Malformed Socket.IO/Engine.IO input is logged by the hub itself, once per connection at INFO
(``Hub._note_malformed``).
"""

from __future__ import annotations

import logging

from ._compat import CLIENT_CAUSED_UVICORN_WARNINGS

__all__ = ["install_log_hygiene"]

#: The loggers the hub gives python-socketio and python-engineio.
SOCKETIO_LOGGER = "tether.hub.socketio"
ENGINEIO_LOGGER = "tether.hub.engineio"


class _RedactQuery(logging.Filter):
    """Strip query strings from uvicorn's connection log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] + "?…" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


class _DemoteClientWarnings(logging.Filter):
    """uvicorn's per-connection warnings about bad requests are the client's problem: INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.msg in CLIENT_CAUSED_UVICORN_WARNINGS:
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
            # The logger's level was checked for WARNING: check it again for INFO.
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def install_log_hygiene() -> None:
    """Idempotent: install the filters and pin the levels described in the module docstring."""
    uv_log = logging.getLogger("uvicorn.error")
    for kind in (_RedactQuery, _DemoteClientWarnings):
        if not any(isinstance(f, kind) for f in uv_log.filters):
            uv_log.addFilter(kind())
    for name in (ENGINEIO_LOGGER, SOCKETIO_LOGGER):
        logging.getLogger(name).setLevel(logging.WARNING)
