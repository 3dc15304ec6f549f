"""``python -m soak`` (from tests/): a long soak run; see harness.py."""

import sys

from .harness import main

sys.exit(main())
