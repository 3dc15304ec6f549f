"""Shared fixtures. Every async test runs on asyncio and on trio.

The ``anyio_backend`` fixture names both backends explicitly, so a missing trio fails the run
instead of silently dropping half of the tests (anyio >= 4.12 only lists installed backends).
"""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": False}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    backend: tuple[str, dict[str, object]] = request.param
    return backend
