"""The collection as a user installs it, on every ansible-core the project tests (2.19 from the suite's
venv; 2.21 from .venv-core221 where scripts/install.sh could make it, with Python 3.12+):
`ansible-galaxy collection build` of the clone, the tarball's content (the collection, never a user's
inventory, the lab, reports or a venv), installed into an empty collections path from a directory
outside the clone (twice, the second time with --force), used by FQCN from a directory that knows
nothing of the clone (ANSIBLE_COLLECTIONS_PATH points only at the install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness import REPO

BIN = Path(sys.executable).parent
CORE_221 = REPO / ".venv-core221" / "bin"
MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))
CORES = [
    pytest.param(BIN, id="ansible-core-2.19"),
    pytest.param(CORE_221, id="ansible-core-2.21", marks=pytest.mark.skipif(
        not (CORE_221 / "ansible-playbook").exists(),
        reason="no .venv-core221: ansible-core 2.21 needs Python 3.12+, which scripts/install.sh finds only with pyenv")),
]
# Files a user or the lab leaves in the clone, planted for the build: none may reach the tarball.
PLANTED = ["inventory/production", "inventory/prod.aws_ec2.yml", "inventory/group_vars/web.yml",
           "reports/19700101T000000Z/report.json", "bench/results/planted.json", "captures.pcap"]
# What the tarball may hold at its top level, and under inventory/ only the examples.
TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.rst", "execution-environment.yml", "check.yml",
             "forward.yml", "capture.yml", "changelogs", "docs", "inventory", "meta", "playbooks", "plugins", "roles"}


@pytest.fixture(scope="module", params=CORES)
def core(request):
    """The bin directory of the ansible-core under test."""
    return request.param


@pytest.fixture(scope="module")
def built(core, tmp_path_factory):
    """The tarball, built from the clone by this ansible-core with user and lab files planted in it."""
    root = tmp_path_factory.mktemp("build")
    planted = [REPO / name for name in PLANTED if not (REPO / name).exists()]
    made_dirs = []  # the outermost directory made for each planted file, removed afterwards
    try:
        for path in planted:
            missing = [parent for parent in path.parents if not parent.exists()]
            if missing:
                made_dirs.append(missing[-1])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("planted by tests/integration/test_collection.py\n")
        build = subprocess.run([str(core / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path",
                                str(root)], cwd=str(root), capture_output=True, text=True, timeout=120, check=False)
    finally:
        for path in planted:
            if path.exists():
                path.unlink()
        for directory in made_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        if (REPO / "reports" / "19700101T000000Z").exists():
            shutil.rmtree(REPO / "reports" / "19700101T000000Z")
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = root.glob("netcheck-netcheck-*.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def installed(core, built, tmp_path_factory):
    """(collections path, working directory with its own ansible.cfg, bin) of a fresh install."""
    root = tmp_path_factory.mktemp("collection")
    for extra in ([], ["--force"]):  # the second install replaces the first: no crash, same result
        install = subprocess.run([str(core / "ansible-galaxy"), "collection", "install", str(built), "--offline",
                                  "-p", str(root / "collections")] + extra, cwd=str(root), capture_output=True,
                                 text=True, timeout=120, check=False)
        assert install.returncode == 0, install.stdout + install.stderr
        assert "was installed successfully" in install.stdout, install.stdout
    work = root / "work"
    work.mkdir()
    (work / "ansible.cfg").write_text("[defaults]\nhost_key_checking = True\ninterpreter_python = auto_silent\n"
                                      "gathering = explicit\n")
    return root / "collections", work, core


def test_the_tarball_holds_the_collection_and_nothing_a_user_or_the_lab_left_in_the_clone(built):
    with tarfile.open(str(built)) as tar:
        names = [member.name for member in tar.getmembers() if not member.isdir()]
    assert {name.split("/")[0] for name in names} <= TOP_LEVEL, sorted({name.split("/")[0] for name in names})
    inventory = sorted(name for name in names if name.startswith("inventory/"))
    assert inventory and all(name.endswith(".example") or name.startswith("inventory/examples/")
                             for name in inventory), inventory
    assert not [name for name in names if name.endswith((".pcap", ".pyc")) or "/." in "/" + name]
    for planted in PLANTED:
        assert planted not in names
    assert "plugins/modules/net_diagnose.py" in names and "plugins/module_utils/netcheck/module.py" in names
    assert "meta/runtime.yml" in names and "CHANGELOG.rst" in names


def test_the_readme_install_from_the_clone_with_p_and_force_does_not_crash(built, core, tmp_path):
    # README: run from the clone, whose ansible.cfg points collections_path at its own link
    for attempt in (1, 2):  # the second install replaces the first
        install = subprocess.run([str(core / "ansible-galaxy"), "collection", "install", str(built), "--offline",
                                  "--force", "-p", str(tmp_path)], cwd=str(REPO), capture_output=True, text=True,
                                 timeout=120, check=False)
        assert install.returncode == 0, "install %d: %s" % (attempt, install.stdout + install.stderr)
    manifest = json.loads((tmp_path / "ansible_collections" / "netcheck" / "netcheck" / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["name"] == "netcheck"
    assert not (tmp_path / "ansible_collections" / "netcheck" / "netcheck").is_symlink()


def _env(installed):
    collections, work = installed[:2]
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
                          timeout=timeout, check=False)
    try:
        document = json.loads(proc.stdout[proc.stdout.rindex('{"tasks": '):])
    except ValueError:
        raise AssertionError("no JSON (rc %d)\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc, document["tasks"]


def test_ansible_doc_renders_every_module_from_the_installed_collection(installed):
    proc = subprocess.run([str(installed[2] / "ansible-doc"), "--json", "-t", "module"]
                          + ["netcheck.netcheck.%s" % name for name in MODULES],
                          cwd=str(installed[1]), env=_env(installed), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == ["netcheck.netcheck.%s" % name for name in MODULES]
    for name, entry in docs.items():
        assert entry["doc"]["filename"].startswith(str(installed[0])), name  # the install, not the clone
        assert entry["doc"]["options"] and entry["return"], name


def test_port_check_by_fqcn_runs_from_the_installed_collection(installed, lab, src, dst):
    args = {"targets": [{"host": dst.ip, "port": 22, "name": dst.name}]}
    proc, tasks = _run(installed, [str(installed[2] / "ansible"), src.name, "-i", str(lab.config.inventory_path), "-m",
                                   "netcheck.netcheck.port_check", "-a", json.dumps(args)])
    result = tasks[-1]["hosts"][src.name]
    assert proc.returncode == 0, result.get("msg")
    (entry,) = result["results"]
    assert entry["state"] == "open" and entry["detail"]["name"] == dst.name


def _role_play(installed, inventory, host, role_vars):
    playbook = installed[1] / "play.yml"
    playbook.write_text(json.dumps([{"hosts": host, "gather_facts": False,
                                     "roles": [{"role": "netcheck.netcheck.netcheck", "vars": role_vars}]}]))
    return _run(installed, [str(installed[2] / "ansible-playbook"), "-i", str(inventory), str(playbook)])


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
    assert "netcheck_tcp_group_targets[0].expected_sate: unknown key (did you mean expected?)" in message
    assert len(message.splitlines()) == 2  # one line per problem, no argument spec dump
    assert not any("Diagnose every target" in t["task"] for t in tasks)


def test_a_playbook_using_net_diagnose_by_fqcn_runs_from_the_installed_collection(installed, lab, src, dst):
    playbook = installed[1] / "diagnose.yml"
    target = {"host": dst.ip, "name": dst.name, "ports": [{"port": 22}], "icmp": "auto"}
    task = {"name": "Where does it break?", "netcheck.netcheck.net_diagnose": {"targets": [target]},
            "register": "diagnosis"}
    playbook.write_text(json.dumps([{"hosts": src.name, "gather_facts": False, "tasks": [task]}]))
    proc, tasks = _run(installed, [str(installed[2] / "ansible-playbook"), "-i", str(lab.config.inventory_path),
                                   str(playbook)])
    result = tasks[-1]["hosts"][src.name]
    assert proc.returncode == 0, result.get("msg")
    (pair,) = result["results"]
    assert pair["ok"] and pair["verdict"]["code"] == "OK" and pair["address"] == dst.ip
    assert "does not support Ansible version" not in proc.stdout + proc.stderr
