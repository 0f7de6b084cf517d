"""check.yml, the project's main job, run over the lab by ansible-core 2.21 (Python 3.13) from the
clone, as by ansible-core 2.19 in test_check_playbook.py: every pair checked and OK, report.json
written, and no "does not support Ansible version" warning (meta/runtime.yml). Skipped where
.venv-core221 could not be made (ansible-core 2.20+ needs Python 3.12+; scripts/install.sh makes it
from pyenv's Python 3.13 when present)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness import REPO

CORE_221 = REPO / ".venv-core221" / "bin"

pytestmark = pytest.mark.skipif(not (CORE_221 / "ansible-playbook").exists(),
                                reason="no .venv-core221 (ansible-core 2.21 needs Python 3.12+)")


def test_check_yml_runs_over_the_lab_on_ansible_core_2_21(lab, hosts, tmp_path):
    version = subprocess.run([str(CORE_221 / "ansible"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("ansible [core 2.21."), version.stdout
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run([str(CORE_221 / "ansible-playbook"), "-i", str(lab.config.inventory_path), "check.yml",
                           "-e", "netcheck_tcp_timeout=1", "-e", "netcheck_report_dir=%s" % tmp_path],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "does not support Ansible version" not in output
    pairs = len(hosts) * (len(hosts) - 1)
    assert "totals: %d pairs, %d ok, 0 failed, 0 sources not run" % (pairs, pairs) in proc.stdout, proc.stdout[-3000:]
    (report,) = tmp_path.glob("*/report.json")
    run = json.loads(report.read_text())
    assert [source["status"] for source in run["sources"]] == ["ran"] * len(hosts)
    assert run["totals"]["by_code"] == {"OK": pairs}
