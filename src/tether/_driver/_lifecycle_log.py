"""What the client logs about its connection, on the ``tether`` logger.

One line per lifecycle fact, written as the driver routes it (never per message), so that an
application with ``logging.basicConfig(level=logging.INFO)`` sees each connect, drop,
scheduled reconnect and close, and DEBUG adds every state change and attempt
(``specs/client.md`` "Logging" has the table). Each line has the reason; none has a secret:
the server is named by scheme, host, port and path only (no query string, no userinfo), and
neither ``auth``, header values, proxy credentials nor the server's refusal ``data`` appear.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tether.core import (
    ConnectFailed,
    MessageDropped,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    SocketConnected,
    SocketDisconnected,
    State,
    StateChanged,
    StreamResumed,
)

if TYPE_CHECKING:
    from ._driver import Driver

__all__ = ["log_fact"]

logger = logging.getLogger("tether")


def log_fact(fact: Any, driver: Driver) -> None:
    """Log one lifecycle fact at its level."""
    kind = type(fact)
    if kind is StateChanged:
        _state_changed(fact, driver)
    elif kind is SocketConnected:
        session = driver.session
        transport = None if session is None else session.transport
        logger.info(
            "tether: connected to %s (sid %s, %s%s)",
            driver.credentials.where,
            fact.sid,
            "no transport" if transport is None else transport.name,
            ", session recovered" if fact.recovered else "",
        )
    elif kind is SocketDisconnected:
        logger.info("tether: disconnected from %s: %s", driver.credentials.where, fact.reason)
    elif kind is ConnectFailed:
        error = fact.error
        if error.refused:
            # Final: the client stays closed. The server's data may be anything: not logged.
            logger.warning(
                "tether: %s refused the connection: %s", driver.credentials.where, error.message
            )
        else:
            logger.info("tether: attempt failed: %s", error.message)
    elif kind is ReconnectAttemptStarted:
        logger.debug("tether: reconnect attempt %d starts", fact.attempt)
    elif kind is Reconnected:
        logger.debug("tether: reconnect attempt %d succeeded", fact.attempt)
    elif kind is ReconnectFailed:
        logger.warning(
            "tether: the reconnect attempts to %s are exhausted; the client stays closed",
            driver.credentials.where,
        )
    elif kind is StreamResumed:
        stream = "the broadcasts" if fact.channel is None else f"channel {fact.channel!r}"
        if fact.resumed:
            logger.debug("tether: %s resumed (%d replayed)", stream, fact.replayed)
        else:
            logger.info("tether: %s resumed with messages missed: %s", stream, fact.reason)
    elif kind is MessageDropped:
        # Per message, chosen by the overflow policy and reported to on_buffer_overflow.
        logger.debug("tether: dropped %r: %s", fact.event, fact.reason)


def _state_changed(change: StateChanged, driver: Driver) -> None:
    logger.debug(
        "tether: %s -> %s%s",
        change.previous.value,
        change.current.value,
        "" if change.reason is None else f" ({change.reason})",
    )
    if change.current is State.RECONNECTING and change.retry_in is not None:
        logger.info(
            "tether: reconnecting to %s in %.2f s (attempt %d): %s",
            driver.credentials.where,
            change.retry_in,
            change.attempt,
            change.reason,
        )
    elif change.current is State.CLOSED:
        logger.info("tether: closed: %s", change.reason)
