"""A short chaos soak on every CI run (harness.py; a long one by command: python -m soak).

Targets, in every run: nothing lost, no attempt while the user has closed the client.
Against Node's socket.io a message may arrive twice (at least once, specs/delivery.md §2);
through the hub, alone or two processes on Redis, nothing twice either (§4).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.handles import NodeServer, ServerOptions

from .harness import running_hubs, soak_hub, soak_node

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def recovering_node() -> Iterator[NodeServer]:
    server = NodeServer(ServerOptions(csr=True, ping_interval=1000, ping_timeout=2000))
    server.start()
    yield server
    server.kill()


async def test_a_short_soak_against_node_with_recovery(recovering_node: NodeServer) -> None:
    figures = await soak_node(recovering_node, seconds=8, seed=11)
    print("\n".join(figures.lines()))
    assert figures.faults > 0
    assert figures.produced.lost == 0, figures.lines()
    assert figures.consumed.lost == 0, figures.lines()
    assert figures.attempts_while_closed == 0, figures.lines()


@pytest.mark.parametrize("scenario", ["hub", pytest.param("hub-redis", marks=pytest.mark.redis)])
async def test_a_short_soak_through_the_hub(scenario: str) -> None:
    with running_hubs(2 if scenario == "hub-redis" else 1) as hubs:
        figures = await soak_hub(hubs, seconds=8, seed=5, scenario=scenario)
    print("\n".join(figures.lines()))
    assert figures.faults > 0
    assert figures.produced.lost == 0, figures.lines()
    assert figures.consumed.lost == 0, figures.lines()
    assert figures.consumed.twice == 0, figures.lines()
    assert figures.produced.twice == 0, figures.lines()
    assert figures.attempts_while_closed == 0, figures.lines()
