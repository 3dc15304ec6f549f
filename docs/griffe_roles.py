"""A griffe extension for the API reference: Sphinx roles in docstrings become code spans.

tether's docstrings name other objects the reST way (``:class:`~tether.core.State```), but
mkdocstrings renders docstrings as Markdown, where a role would show as raw text. Many roles
name private helpers that the reference does not render, so they become code, not links:
``:class:`~a.b.C``` reads as ``C`` (the tilde keeps the last part, as in Sphinx) and
``:func:`a.b``` as ``a.b``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|mod|exc|obj|const):`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def plain_roles(text: str) -> str:
    """``text`` with every Sphinx cross-reference role written as a Markdown code span."""
    return ROLE.sub(_as_code, text)


class SphinxRolesAsCode(griffe.Extension):
    """Rewrites the docstrings of a whole package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member)  # type: ignore[arg-type]
