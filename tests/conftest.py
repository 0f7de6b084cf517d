"""Shared test setup: one import name for the collection's code, and the tests' own helpers.

The code under test is imported under one name only, the collection's:
``ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp`` (never ``netcheck.tcp``
with module_utils/ on sys.path; ``scripts/dev/unify_test_imports.py`` rewrites such imports).
From a clone, ``collections/`` links the repository in as ``netcheck.netcheck``; under
``ansible-test units`` the repository itself sits at ``.../ansible_collections/netcheck/netcheck``
and ansible-test's collection loader serves the name.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if REPO.parent.parent.name == "ansible_collections":
    COLLECTIONS_ROOT = REPO.parents[2]
else:
    COLLECTIONS_ROOT = REPO / "collections"

# the repository (lab, bench), the tests' helpers (collection_loader, harness, loopback, ...)
for path in (COLLECTIONS_ROOT, REPO, REPO / "tests", REPO / "tests" / "unit", REPO / "tests" / "integration"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
