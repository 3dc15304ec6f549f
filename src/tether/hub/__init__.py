"""tether's hub: the server side of the channel API (``tether serve``).

A python-socketio server on uvicorn implementing the wire format in
``specs/hub-wire-format.md``: channels, member profiles, echo control, ``members`` queries and
optional multi-process operation over Redis. Needs the ``hub`` extra
(``pip install 'tether[hub]'``); the client never imports this package.

Embedding:

* ``async with Hub(HubConfig(port=0)) as hub: ...`` on an asyncio loop;
* ``await task_group.start(run_hub, config)`` in an anyio task group on asyncio;
* ``start_hub_in_thread(config)`` from anything else (trio, sync code): a hub on its own loop.
"""

from __future__ import annotations

from ._app import Hub, run_hub
from ._config import DEFAULT_PORT, HubConfig
from ._thread import HubThread, start_hub_in_thread

__all__ = ["DEFAULT_PORT", "Hub", "HubConfig", "HubThread", "run_hub", "start_hub_in_thread"]
