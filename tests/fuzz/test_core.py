"""The whole core under fuzzed histories: only documented outcomes (see ``driver.py``).

Deterministic (``derandomize``) and short, for CI; ``python -m tests.fuzz`` runs the same
histories for as long as you like, with fresh randomness.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.helpers import property_settings

from .driver import run_history


@property_settings(max_examples=400)
@given(st.data())
def test_the_core_turns_any_server_input_into_a_documented_outcome(data: st.DataObject) -> None:
    run_history(data)
