"""The playbook repository's library/ and module_utils/ are per-file links to the collection's
plugins/modules and plugins/module_utils (ansible-test refuses directory links): every file has
its link, every link points at its file."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAIRS = [(REPO / "plugins" / "modules", REPO / "library"),
         (REPO / "plugins" / "module_utils" / "netcheck", REPO / "module_utils" / "netcheck")]


def test_every_plugin_file_has_its_top_level_link_and_no_link_dangles():
    for real_dir, link_dir in PAIRS:
        assert real_dir.is_dir() and not real_dir.is_symlink(), real_dir
        assert link_dir.is_dir() and not link_dir.is_symlink(), link_dir
        real = sorted(p.name for p in real_dir.glob("*.py"))
        links = sorted(p.name for p in link_dir.glob("*.py"))
        assert links == real, "library/ or module_utils/ out of step with plugins/: run scripts/link-layout.sh"
        for name in real:
            link = link_dir / name
            assert link.is_symlink(), "%s must be a link to %s" % (link, real_dir / name)
            assert Path(os.path.realpath(link)) == (real_dir / name).resolve()
