"""``python -m tether``: the same as the ``tether`` console script."""

from __future__ import annotations

from tether.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
