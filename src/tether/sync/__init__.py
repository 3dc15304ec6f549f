"""tether for code without an event loop: scripts, notebooks, WSGI views, threads.

::

    import tether.sync

    with tether.sync.RealtimeClient("http://localhost:8765") as rt:
        rt.on("chat-message", lambda payload: print("got", payload))
        rt.wait_connected(timeout=10)
        rt.join("technology-chat")
        rt.send("technology-chat", "chat-message", {"text": "hi"})
        print(rt.call("sum", 1, 2, timeout=5))

:class:`RealtimeClient` takes the options of :class:`tether.RealtimeClient` and has its
methods; the ``async`` ones block (with the same timeouts), ``events()`` is a blocking
:class:`EventIterator`, and every method is safe to call from any thread. It runs the async
client on an event loop of its own, in a background thread; its listeners run in one thread
of the client (``specs/client.md`` "The blocking client").
"""

from __future__ import annotations

from ._client import RealtimeClient
from ._events import EventIterator

__all__ = ["EventIterator", "RealtimeClient"]
