"""The sans-IO core imports no I/O, no clock and no random source (architecture rule 1).

Two checks, and what each one proves:

1. **The rule (static).** Every module under ``src/tether/core/`` is parsed with ``ast`` and
   no ``import x``, ``import x.y``, ``from x import y`` or ``from x.y import z`` may name a
   banned top-level module: anyio, asyncio, trio, socket, ssl, select, selectors, time,
   random, threading. Imports inside functions and ``if TYPE_CHECKING:`` blocks count too:
   the walk covers the whole tree. ``importlib.import_module``/``__import__`` with a banned
   name is caught as well, so the rule cannot be sidestepped by a string.

2. **What actually gets loaded (runtime).** A fresh interpreter imports ``tether.core`` and
   we compare ``sys.modules`` before and after. Two things keep this from being the same
   list as the static rule:

   * ``time`` is loaded by the interpreter itself before any user code runs, and
     ``threading`` is loaded by ``logging``, which ``transitions`` (a declared dependency
     the core is built on) imports. Neither says anything about our code.
   * ``import tether.core`` first runs ``tether/__init__.py``, which loads the anyio driver.

   * ``orjson`` (the optional ``fast`` extra, the core's JSON when installed) imports
     ``uuid``; on Python 3.10 that loads ``platform``, ``subprocess`` and with it ``select``
     and ``selectors`` (3.11's ``uuid`` does not).

   So the subprocess installs a bare ``tether`` package object (the real path, without
   running its ``__init__``) and imports the dependencies *first* (``transitions``, and
   ``orjson`` when installed); whatever ``tether.core`` adds on top of that baseline must
   contain no banned module at all. Separately, the baseline of the dependencies must not
   contain the event-loop and network modules (anyio, asyncio, trio, socket, ssl, and
   select and selectors but for 3.10's ``subprocess``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tether.core

CORE = Path(tether.core.__file__).resolve().parent

BANNED = frozenset(
    {
        "anyio",
        "asyncio",
        "trio",
        "socket",
        "ssl",
        "select",
        "selectors",
        "time",
        "random",
        "threading",
    }
)
#: What a dependency of the core may not pull in either.
IO_MODULES = frozenset({"anyio", "asyncio", "trio", "socket", "ssl", "select", "selectors"})


def banned_imports(source: str, filename: str = "<test>") -> list[str]:
    """Every banned module ``source`` imports, as ``line: name``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module is not None:
                names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        line = getattr(node, "lineno", 0)
        found += [f"{line}: {n}" for n in names if n.split(".")[0] in BANNED]
    return found


def core_modules() -> list[Path]:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) >= 10, modules  # the check must be looking at the real package
    return modules


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_no_core_module_imports_io_a_clock_or_randomness(path: Path) -> None:
    assert banned_imports(path.read_text(encoding="utf-8"), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import asyncio.events",
        "import os, socket",
        "import ssl as _ssl",
        "from random import random",
        "from anyio.abc import ByteStream",
        "from trio import sleep",
        "def f():\n    import selectors",
        "if TYPE_CHECKING:\n    import threading",
        "import importlib\nimportlib.import_module('select')",
        "__import__('time')",
    ],
)
def test_the_static_check_catches_every_form(source: str) -> None:
    assert banned_imports(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import timeit",  # a different module that merely starts with a banned name
        "import sockets_helper",
        "from . import time",  # a relative import is our own module
        "from .random import draw",
        "import heapq, json, math, enum",
        "importlib.import_module(name)",
    ],
)
def test_the_static_check_does_not_cry_wolf(source: str) -> None:
    assert banned_imports(source) == []


PROBE = r"""
import json, sys, types

package = types.ModuleType("tether")
package.__path__ = [sys.argv[1]]
sys.modules["tether"] = package  # tether.core without tether/__init__.py (the driver)

before = set(sys.modules)
import transitions
try:
    import orjson
except ImportError:
    pass
baseline = set(sys.modules)
import tether.core
after = set(sys.modules)
print(json.dumps({
    "dependencies": sorted(baseline - before),
    "core": sorted(after - baseline),
}))
"""


def test_importing_the_core_loads_nothing_banned() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(CORE.parent)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    assert "tether.core._connection" in loaded["core"]  # the probe really imported the core

    def top(names: list[str]) -> set[str]:
        return {n.split(".")[0] for n in names}

    assert top(loaded["core"]) & BANNED == set()
    dependencies = top(loaded["dependencies"])
    if "subprocess" in dependencies and sys.version_info < (3, 11):
        dependencies -= {"select", "selectors"}  # 3.10's uuid, under orjson
    assert dependencies & IO_MODULES == set()
