"""Run code under the process's own recursion limit, also inside a Hypothesis test.

Hypothesis raises ``sys.getrecursionlimit()`` by about 2000 frames while it runs a test (to
make stack overflows reproducible). tether runs under the limit the process has (CPython's
default is 1000), and what a deep stack breaks there (``repr`` or ``json`` of a value nested
1000 levels deep, the stdlib scanner that has to give up on one) must break in the tests too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["PROCESS_RECURSION_LIMIT", "process_recursion_limit"]

#: Read at import, outside any Hypothesis test.
PROCESS_RECURSION_LIMIT = sys.getrecursionlimit()


@contextlib.contextmanager
def process_recursion_limit() -> Iterator[None]:
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(PROCESS_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)
