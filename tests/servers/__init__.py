"""Real peers for the integration tests: Node socket.io, python-socketio, and a garbage server.

``handles`` drives them from tests; servers/README.md describes their behaviour and control API.
"""
