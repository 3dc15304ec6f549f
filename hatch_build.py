"""Build hook: the sdist leaves out the root ``.gitignore``.

hatchling copies the project's root ``.gitignore`` into every sdist, whatever the exclude
patterns say, so that a wheel built from the sdist honours it. Ours needs no such help: the
sdist's contents are listed in pyproject.toml (``only-include``) and the wheel takes only
``src/tether``. tests/distribution checks the result.
"""

from __future__ import annotations

import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SdistWithoutVcsFiles(BuildHookInterface):  # type: ignore[type-arg]
    """Drops the VCS ignore files hatchling force-includes in the sdist."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        force_include: dict[str, str] = build_data["force_include"]
        for source, target in list(force_include.items()):
            if os.path.basename(target) in {".gitignore", ".hgignore"}:
                del force_include[source]
