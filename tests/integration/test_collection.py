"""The collection as a user installs it: `ansible-galaxy collection build` of the clone, installed into a
temporary collections path, used by FQCN from a directory that knows nothing of the clone
(ANSIBLE_COLLECTIONS_PATH points only at the install; the clone's collections/ link is not used)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO

BIN = Path(sys.executable).parent
MODULES = sorted(path.stem for path in (REPO / "library").glob("*.py"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(collections path, working directory with its own ansible.cfg) of a fresh install."""
    root = tmp_path_factory.mktemp("collection")
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path",
                            str(root / "dist")], cwd=str(root), capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = (root / "dist").glob("netcheck-netcheck-*.tar.gz")
    install = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "--offline",
                              "-p", str(root / "collections")], cwd=str(root), capture_output=True, text=True,
                             timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    work = root / "work"
    work.mkdir()
    (work / "ansible.cfg").write_text("[defaults]\nhost_key_checking = True\ninterpreter_python = auto_silent\n"
                                      "gathering = explicit\n")
    return root / "collections", work


def _env(installed):
    collections, work = installed
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "tests" / "plugins" / "callback"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "capture_json",
        "ANSIBLE_NOCOLOR": "1",
    })
    return env


def _run(installed, argv, timeout=300):
    proc = subprocess.run(argv, cwd=str(installed[1]), env=_env(installed), capture_output=True, text=True,
                          timeout=timeout)
    try:
        document = json.loads(proc.stdout[proc.stdout.rindex('{"tasks": '):])
    except ValueError:
        raise AssertionError("no JSON (rc %d)\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc, document["tasks"]


def test_ansible_doc_renders_every_module_from_the_installed_collection(installed):
    proc = subprocess.run([str(BIN / "ansible-doc"), "--json", "-t", "module"]
                          + ["netcheck.netcheck.%s" % name for name in MODULES],
                          cwd=str(installed[1]), env=_env(installed), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == ["netcheck.netcheck.%s" % name for name in MODULES]
    for name, entry in docs.items():
        assert entry["doc"]["filename"].startswith(str(installed[0])), name  # the install, not the clone
        assert entry["doc"]["options"] and entry["return"], name


def test_port_check_by_fqcn_runs_from_the_installed_collection(installed, lab, src, dst):
    args = {"targets": [{"host": dst.ip, "port": 22, "name": dst.name}]}
    proc, tasks = _run(installed, [str(BIN / "ansible"), src.name, "-i", str(lab.config.inventory_path), "-m",
                                   "netcheck.netcheck.port_check", "-a", json.dumps(args)])
    result = tasks[-1]["hosts"][src.name]
    assert proc.returncode == 0, result.get("msg")
    (entry,) = result["results"]
    assert entry["state"] == "open" and entry["detail"]["name"] == dst.name


def _role_play(installed, inventory, host, role_vars):
    playbook = installed[1] / "play.yml"
    playbook.write_text(json.dumps([{"hosts": host, "gather_facts": False,
                                     "roles": [{"role": "netcheck.netcheck.netcheck", "vars": role_vars}]}]))
    return _run(installed, [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)])


def test_the_netcheck_role_runs_from_the_installed_collection(installed, lab, src, dst):
    proc, tasks = _role_play(installed, lab.config.inventory_path, src.name,
                             {"netcheck_tcp_targets": [{"host": dst.ip, "port": 22, "name": "set-by-this-test"}]})
    assert proc.returncode == 0, proc.stdout[-3000:]
    (diagnosis,) = [t["hosts"][src.name] for t in tasks if "Diagnose every target" in t["task"]]
    # the task result is compact; the source's whole answer is in the run directory
    diagnosis = json.loads(Path(diagnosis["answer_file"]).read_text())
    # the mesh and the lab inventory's own group targets run too; ours is among them
    (ours,) = [pair for pair in diagnosis["results"] if pair["target"] == "set-by-this-test"]
    assert ours["address"] == dst.ip and ours["ok"]
    assert [(r["target"], r["state"]) for r in ours["layers"]["tcp"]] == [("%s:22" % dst.ip, "open")]


def test_a_typo_in_a_role_variable_fails_before_any_task_naming_it(installed, lab, src):
    proc, tasks = _role_play(installed, lab.config.inventory_path, src.name, {
        "netcheck_tcp_group_targets": [{"group": "lab", "port": 22, "expected_sate": "filtered"}]})
    assert proc.returncode != 0
    (validation,) = [t for t in tasks if t["hosts"].get(src.name, {}).get("failed")]
    message = validation["hosts"][src.name]["msg"]
    assert message.startswith("netcheck: CONFIGURATION ERROR, nothing was checked (1 problem):"), message
    assert "netcheck_tcp_group_targets[0].expected_sate: unknown key (did you mean expected_state?)" in message
    assert len(message.splitlines()) == 2  # one line per problem, no argument spec dump
    assert not any("Diagnose every target" in t["task"] for t in tasks)
