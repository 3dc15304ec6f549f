"""examples/socketio_server.py against the real Node and python-socketio servers.

Run with orjson (tether's ``fast`` extra, installed here) and once more with it hidden, so
that the stdlib JSON fallback (``tether.core._json``) decodes a real server's packets too.
"""

from __future__ import annotations

import pytest

from cli.test_examples import run_example
from servers.handles import SocketIOServer

# Runs the example with orjson unimportable, after checking the fallback is what decodes.
WITHOUT_ORJSON = """
import runpy, sys
sys.modules["orjson"] = None
import tether.core._json as json_module
assert json_module.loads is json_module._stdlib_loads, "orjson still decodes"
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("decoder", ["orjson", "stdlib"])
def test_socketio_example(sio_server: SocketIOServer, decoder: str) -> None:
    example = ("examples/socketio_server.py", sio_server.url)
    out = (
        run_example(*example)
        if decoder == "orjson"
        else run_example("-c", WITHOUT_ORJSON, *example)
    )
    assert "server echoed echo ('hello', {'n': 1}, b'\\x00\\x01 raw bytes')" in out
    assert "ack: ('ping', 42)" in out
    assert "no-ack timed out, as it should" in out
