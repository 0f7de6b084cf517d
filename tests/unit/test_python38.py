"""Remote code (library/, module_utils/) must run on Python 3.8, the oldest Python that
ansible-core 2.19 supports on managed hosts (Ubuntu 20.04): a static check with vermin.

The same modules run for real on a Python 3.8 lab host in tests/integration/test_python38_host.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERMIN = [str(Path(sys.executable).parent / "vermin"), "--target=3.8-", "--no-tips", "--violations"]


def vermin(*paths, cwd=REPO):
    return subprocess.run(VERMIN + [str(p) for p in paths], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_library_and_module_utils_need_nothing_newer_than_python_3_8():
    proc = vermin("library", "module_utils")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_fails_on_code_that_needs_python_3_9(tmp_path):
    # keeps the check honest: str.removeprefix (3.9) and a dict union (3.9) must be reported
    (tmp_path / "new.py").write_text('x = "ab".removeprefix("a")\ny = {} | {}\n')
    proc = vermin(tmp_path / "new.py")
    assert proc.returncode != 0
    assert "removeprefix" in proc.stdout
