"""The playbooks and roles pass ansible-lint's production profile (offline: .ansible-lint)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_playbooks_and_roles_pass_ansible_lint_production_profile():
    lint = Path(sys.executable).parent / "ansible-lint"
    # the syntax check needs an inventory, not the lab's: ansible.cfg makes a missing one fatal
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), NO_COLOR="1",
               ANSIBLE_INVENTORY=str(REPO / "tests" / "data" / "lint-inventory.yml"))
    proc = subprocess.run([str(lint), "--offline", "check.yml", "forward.yml", "playbooks", "roles"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output
