"""examples/blocking_client.py runs as written (the README points at it)."""

from __future__ import annotations

from cli.test_examples import run_example


def test_blocking_client_example(backend: str) -> None:
    out = run_example("examples/blocking_client.py", "--backend", backend)
    assert out.splitlines() == [
        "Connected",
        "Members: 1",
        "worker 0: [0, 1]",
        "worker 1: [0, 1]",
        "worker 2: [0, 1]",
        "Disconnected due to io client disconnect",
    ], out
