"""The whole repository passes ansible-lint's production profile, offline (.ansible-lint), and a
lab-written or user inventory at the top of inventory/ is not linted whatever its name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _lint():
    lint = Path(sys.executable).parent / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed beside this Python (it is in .venv, not in .venv-core221)")
    # the syntax check needs an inventory, not the lab's: ansible.cfg makes a missing one fatal
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), NO_COLOR="1",
               ANSIBLE_INVENTORY=str(REPO / "tests" / "data" / "lint-inventory.yml"))
    proc = subprocess.run([str(lint), "--offline"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def lab_inventory_named_like_no_lab():
    """An inventory as `python -m lab --name collection` writes it, with a line yamllint refuses."""
    path = REPO / "inventory" / "zz-lint-test-lab.yml"
    path.write_text("# written by python -m lab up\nall:\n  hosts:\n    h1: {ansible_host: 10.77.166.11, "
                    "ansible_ssh_common_args: '%s'}\n" % ("-o UserKnownHostsFile=/x " * 12))
    try:
        yield path
    finally:
        path.unlink()


def test_the_whole_repository_passes_ansible_lint_production_profile(lab_inventory_named_like_no_lab):
    returncode, output = _lint()
    assert returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output
    assert "zz-lint-test-lab" not in output
