"""The driver: what runs the sans-IO core on anyio (asyncio or trio), one concern a module.

=================  ===============================================================
``_driver``        :class:`Driver`: the core, the task group; routes the core's output
``_session``       one transport's task: credentials, connect, then the reader
``_writing``       who writes now: the reader, ``call()`` or the writer task
``_deadlines``     who keeps the core's next deadline: the reader, a connect, the timer
``_dispatch``      listeners: server events and lifecycle facts, off the reader
``_credentials``   ``auth``/``headers``/``query`` for every attempt
=================  ===============================================================

``specs/client.md`` describes what the driver promises and why; the path of one event in
and one emit out is in CONTRIBUTING.md.
"""

from __future__ import annotations

from ._credentials import AuthSource, Credentials, StrMapSource
from ._dispatch import RESERVED_LIFECYCLE_NAMES, Dispatcher
from ._driver import CallWaiter, Driver

__all__ = [
    "RESERVED_LIFECYCLE_NAMES",
    "AuthSource",
    "CallWaiter",
    "Credentials",
    "Dispatcher",
    "Driver",
    "StrMapSource",
]
