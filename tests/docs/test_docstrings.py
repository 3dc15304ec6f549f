"""Every public name has a docstring, as the API reference reads them.

The names are the runtime ``__all__`` of ``tether``, ``tether.core``, ``tether.transport``
and ``tether.sync``, plus the public methods and properties of every class among them
(inherited ones included). The docstrings are read by griffe, with the extensions the docs
build uses (mkdocs.yml): a ``#:`` comment documents a constant (griffe-sphinx), and an
override without a docstring takes its base's (griffe-inherited-docstrings). So this test
fails exactly where a page of the API reference would show a name with nothing under it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import griffe
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MODULES = ("tether", "tether.core", "tether.transport", "tether.sync")

#: Public names allowed without a docstring: none.
UNDOCUMENTED: frozenset[str] = frozenset()


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    extensions = griffe.load_extensions("griffe_sphinx", "griffe_inherited_docstrings")
    loaded = griffe.load(
        "tether",
        search_paths=[str(SRC)],
        extensions=extensions,
        resolve_aliases=True,
        resolve_external=False,
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def documented(obj: griffe.Object | griffe.Alias) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def public_names(package: griffe.Module) -> Iterator[tuple[str, griffe.Object | griffe.Alias]]:
    """``(public path, griffe object)`` for every name the test covers."""
    for module_name in MODULES:
        module = package if module_name == "tether" else package[module_name.split(".", 1)[1]]
        for name in importlib.import_module(module_name).__all__:
            obj = module[name]
            target = obj.final_target if obj.is_alias else obj
            yield f"{module_name}.{name}", target
            if not target.is_class:
                continue
            for member_name, member in target.all_members.items():
                if member_name.startswith("_"):
                    continue
                resolved = member.final_target if member.is_alias else member
                if resolved.is_function or "property" in resolved.labels:
                    yield f"{module_name}.{name}.{member_name}", resolved


def test_every_public_name_has_a_docstring(package: griffe.Module) -> None:
    names = dict(public_names(package))
    missing = {path for path, obj in names.items() if not documented(obj)}
    new = sorted(missing - UNDOCUMENTED)
    assert not new, f"public names without a docstring: {new}"
    filled = sorted(UNDOCUMENTED - missing)
    assert not filled, (
        f"these have a docstring now (or are gone): remove them from UNDOCUMENTED: {filled}"
    )


def test_the_cli_entry_points_are_documented(package: griffe.Module) -> None:
    cli = package["cli"]
    for name in importlib.import_module("tether.cli").__all__:
        assert documented(cli[name]), f"tether.cli.{name}"
