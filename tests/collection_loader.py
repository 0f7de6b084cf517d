"""Import the repository's modules the way Ansible runs them: as modules of the collection
netcheck.netcheck, which ``collections/ansible_collections/netcheck/netcheck`` links to the
repository root. Their relative imports (``from ..module_utils.netcheck.tcp import ...``) then
resolve to ``module_utils/`` exactly as on a managed host."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the clone's collections/ link, or (under ansible-test) the tree the repository sits in
COLLECTIONS = REPO.parents[2] if REPO.parent.parent.name == "ansible_collections" else REPO / "collections"
PACKAGE = "ansible_collections.netcheck.netcheck.plugins.modules"


def load_module(name):
    """The module ``library/<name>.py`` imported as ``netcheck.netcheck.<name>``."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return importlib.import_module("%s.%s" % (PACKAGE, name))
