"""Every read-only probing module runs on a managed host whose Python is 3.8 (the oldest that
ansible-core 2.19 supports there): the lab host's ansible_python_interpreter is pyenv's 3.8.

Skipped where no Python 3.8 is installed (a fresh machine); tests/unit/test_python38.py checks
the same code statically with vermin everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def python38():
    pyenv = shutil.which("pyenv")
    if pyenv:
        proc = subprocess.run([pyenv, "prefix", "3.8.18"], capture_output=True, text=True, timeout=30, check=False)
        candidate = Path(proc.stdout.strip() or "/nonexistent") / "bin" / "python3.8"
        if proc.returncode == 0 and candidate.exists():
            return str(candidate)
    return None


PYTHON38 = python38()
pytestmark = pytest.mark.skipif(PYTHON38 is None, reason="no Python 3.8 here (pyenv prefix 3.8.18)")


def test_port_check_icmp_ping_and_http_check_run_on_python_3_8(ansible, tmp_path, src, dst):
    playbook = tmp_path / "py38.yml"
    playbook.write_text("""
- hosts: %(src)s
  gather_facts: false
  tasks:
    - name: the interpreter really is 3.8
      ansible.builtin.setup:
        gather_subset: [min]
    - name: port_check (the engine, ICMP evidence and the regex process on 3.8)
      netcheck.netcheck.port_check:
        timeout: 2
        targets:
          - {host: %(ip)s, port: 22, expect: '^SSH-2\\.0-'}
          - {host: %(ip)s, port: 9, expected: closed}
    - name: icmp_ping with the neighbour view
      netcheck.netcheck.icmp_ping:
        count: 2
        interval: 0.1
        targets: [{host: %(ip)s}, {host: no-such-host.invalid, reachable: false}]
    - name: http_check with a body regex
      netcheck.netcheck.http_check:
        method: GET
        body_regex: '"host"'
        urls: [{url: "http://%(ip)s:8080/"}]
""" % {"src": src.name, "ip": dst.ip})
    run = ansible.playbook(playbook, "-e", "ansible_python_interpreter=%s" % PYTHON38)
    facts = run.result(src.name, 0)["ansible_facts"]
    assert facts["ansible_python_version"].startswith("3.8."), facts["ansible_python_version"]
    for index, name in ((1, "port_check"), (2, "icmp_ping"), (3, "http_check")):
        result = run.result(src.name, index)
        assert not result.get("failed"), (name, result.get("msg"), result.get("module_stderr"))
        assert result["results"], name
    ports = run.result(src.name, 1)["results"]
    assert [r["state"] for r in ports] == ["open", "closed"] and ports[0]["detail"]["expect_matched"] is True
    assert [r["state"] for r in run.result(src.name, 2)["results"]] == ["ok", "dns_error"]
    assert run.result(src.name, 3)["results"][0]["detail"]["status"] == 200
