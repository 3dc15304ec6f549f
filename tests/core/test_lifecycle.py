"""The lifecycle table: the machine enforces it, the spec shows it, the core uses all of it.

* ``specs/lifecycle.md`` holds a markdown table and a Mermaid ``stateDiagram-v2``; both are
  rendered here from :data:`tether.core.TRANSITIONS` and must match the spec character for
  character (``cd tests && python -m core.test_lifecycle`` prints the rendering).
* :class:`tether.core.Lifecycle` (the ``transitions.Machine`` behind the core) is checked
  exhaustively, every trigger in every state: it moves exactly as the table says and raises
  :class:`~tether.core.LocalProtocolError` for everything else.
* The :class:`~tether.core.Connection` walks every row of the table, so no row is dead.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from pathlib import Path

import pytest

from tether.core import (
    TRANSITIONS,
    DisconnectReason,
    Lifecycle,
    LocalProtocolError,
    State,
    StateChanged,
    Trigger,
)

from .helpers import ENGINE_CLOSE, Harness, connect_error, disconnect

SPEC = Path(__file__).resolve().parents[2] / "specs" / "lifecycle.md"

#: (trigger, source) → destination, straight from the table.
TABLE = {(row.trigger, source): row.dest for row in TRANSITIONS for source in row.sources}


# --------------------------------------------------------------------------------------------
# Rendering the table (the spec is drawn from it)
# --------------------------------------------------------------------------------------------


def render_table() -> str:
    lines = ["| trigger | from | to | what else it does |", "|---|---|---|---|"]
    for row in TRANSITIONS:
        sources = ", ".join(f"`{s.name}`" for s in row.sources)
        lines.append(f"| `{row.trigger.value}` | {sources} | `{row.dest.name}` | {row.effects} |")
    return "\n".join(lines)


def render_mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> IDLE"]
    for row in TRANSITIONS:
        for source in row.sources:
            lines.append(f"    {source.name} --> {row.dest.name}: {row.trigger.value}")
    return "\n".join(lines)


def spec_mermaid(text: str) -> str:
    blocks = re.findall(r"```mermaid\n(.*?)\n```", text, re.DOTALL)
    assert len(blocks) == 1, "specs/lifecycle.md must hold exactly one mermaid block"
    return str(blocks[0])


def spec_table(text: str) -> str:
    lines = text.splitlines()
    start = lines.index("| trigger | from | to | what else it does |")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_the_spec_table_is_the_lifecycle_table() -> None:
    assert spec_table(SPEC.read_text(encoding="utf-8")) == render_table()


def test_the_spec_diagram_is_drawn_from_the_lifecycle_table() -> None:
    assert spec_mermaid(SPEC.read_text(encoding="utf-8")) == render_mermaid()


def test_each_trigger_is_fired_by_one_method_of_the_connection() -> None:
    # A row's effects are done where its trigger is fired: one method per trigger, so no
    # reset can be forgotten on another way to the same transition.
    source = (Path(__file__).resolve().parents[2] / "src/tether/core/_connection.py").read_text()
    tree = ast.parse(source)
    firing: dict[str, list[str]] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "_fire"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
            ):
                firing.setdefault(node.args[0].attr, []).append(function.name)
    assert sorted(firing) == sorted(trigger.name for trigger in Trigger)
    assert all(len(methods) == 1 for methods in firing.values()), firing


def test_the_spec_lists_every_state() -> None:
    text = SPEC.read_text(encoding="utf-8")
    for state in State:
        assert f"`{state.name}`" in text


# --------------------------------------------------------------------------------------------
# The machine enforces the table
# --------------------------------------------------------------------------------------------


def lifecycle_in(state: State) -> Lifecycle:
    """A fresh Lifecycle driven to ``state`` by legal triggers only (breadth first)."""
    paths: dict[State, list[Trigger]] = {State.IDLE: []}
    queue = deque([State.IDLE])
    while queue:
        current = queue.popleft()
        for (trigger, source), dest in TABLE.items():
            if source is current and dest not in paths:
                paths[dest] = [*paths[current], trigger]
                queue.append(dest)
    assert state in paths, f"{state} is unreachable"
    machine = Lifecycle()
    for trigger in paths[state]:
        machine.fire(trigger)
    assert machine.state is state
    return machine


def test_a_new_lifecycle_is_idle() -> None:
    assert Lifecycle().state is State.IDLE


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("trigger", list(Trigger), ids=lambda t: t.value)
def test_every_trigger_in_every_state_obeys_the_table(state: State, trigger: Trigger) -> None:
    machine = lifecycle_in(state)
    dest = TABLE.get((trigger, state))
    assert machine.allows(trigger) is (dest is not None)
    if dest is None:
        with pytest.raises(LocalProtocolError, match=f"{trigger.value!r} in state"):
            machine.fire(trigger)
        assert machine.state is state  # an illegal trigger changes nothing
    else:
        assert machine.fire(trigger) == (state, dest)
        assert machine.state is dest


def test_lifecycles_are_independent() -> None:
    a, b = Lifecycle(), Lifecycle()
    a.fire(Trigger.OPEN)
    assert b.state is State.IDLE


def test_closed_is_left_only_by_open() -> None:
    assert [t for (t, s) in TABLE if s is State.CLOSED] == [Trigger.OPEN]


def test_states_and_triggers_read_well() -> None:
    assert repr(State.CONNECTED) == "State.CONNECTED"
    assert State("reconnecting") is State.RECONNECTING
    assert Trigger("end") is Trigger.END


# --------------------------------------------------------------------------------------------
# The connection core uses every row
# --------------------------------------------------------------------------------------------


def trigger_of(change: StateChanged) -> Trigger:
    """Which row a StateChanged came from (CLOSE and END differ by their reason)."""
    dest = change.current
    if dest is State.CONNECTING:
        return Trigger.OPEN
    if dest is State.CONNECTED:
        return Trigger.CONNECT_SUCCEEDED
    if dest is State.RECONNECTING:
        lost = change.previous is State.CONNECTED
        return Trigger.CONNECTION_LOST if lost else Trigger.ATTEMPT_FAILED
    return Trigger.CLOSE if change.reason == DisconnectReason.CLIENT else Trigger.END


def test_the_connection_walks_every_row_of_the_table() -> None:
    seen: set[tuple[Trigger, State]] = set()

    def record(h: Harness) -> None:
        for e in h.events:
            if type(e) is StateChanged:
                key = (trigger_of(e), e.previous)
                assert TABLE[key] is e.current
                seen.add(key)

    # open, connect, lose, fail a retry, connect again, close; then the END variants.
    h = Harness(draw=0.0)
    h.close()  # IDLE → CLOSED
    h.open()
    h.failed()  # CONNECTING → RECONNECTING
    h.until_deadline()
    h.failed()  # RECONNECTING → RECONNECTING
    h.connect()  # RECONNECTING → CONNECTED
    h.receive(ENGINE_CLOSE)  # CONNECTED → RECONNECTING
    h.close()  # RECONNECTING → CLOSED
    h.connect()  # CLOSED → CONNECTING → CONNECTED
    h.close()  # CONNECTED → CLOSED
    h.open()
    h.close()  # CONNECTING → CLOSED
    record(h)

    ends = Harness(draw=0.0)
    ends.open()
    ends.handshake()
    ends.receive(connect_error({"message": "no"}))  # CONNECTING → CLOSED (END)
    ends.connect()
    ends.receive(disconnect())  # CONNECTED → CLOSED (END)
    ends.connect()
    ends.closed()
    ends.until_deadline()
    ends.handshake()
    ends.receive(connect_error("no"))  # RECONNECTING → CLOSED (END)
    record(ends)

    assert seen == set(TABLE)


if __name__ == "__main__":  # a maintainer's tool: print what the spec must contain
    print(render_table(), "", "```mermaid", render_mermaid(), "```", sep="\n")
