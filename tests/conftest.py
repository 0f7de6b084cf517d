"""Shared test setup: the repository's packages on sys.path."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "module_utils"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
