"""The pipeline recipes (ci/github-actions.yml, ci/gitlab-ci.yml) run as written, against the lab.

Each job file's own shell steps are read from it and run one after another with bash, in the
repository, as the pipeline would: a HOME of their own (so ~/.ssh starts empty, as on a fresh
runner), the lab's key handed over the way the pipeline hands its secret (GitHub: the key's text;
GitLab: a File variable, i.e. a path), and an inventory made like a real one (addresses, user; no
lab-made known_hosts). Only the step that installs a system package (apt-get) is left out: the
machine has openssh-client. The install step runs with pip kept offline (PIP_NO_INDEX): the
pinned requirements-controller.txt must already be what the venv holds.

A run without the known_hosts step shows why it is there: host key checking is on, every source
could not run, the job fails."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import REPO

GITHUB = REPO / "ci" / "github-actions.yml"
GITLAB = REPO / "ci" / "gitlab-ci.yml"


def github_steps():
    job = yaml.safe_load(GITHUB.read_text())["jobs"]["netcheck"]
    return job["env"], [(step["name"], step["run"]) for step in job["steps"] if "run" in step]


def gitlab_steps():
    job = yaml.safe_load(GITLAB.read_text())["netcheck"]
    lines = [line for line in job["before_script"] + job["script"] if not line.startswith("apt-get")]
    # GitLab runs before_script and script as one shell script
    return job["variables"], [("script", "\n".join(lines))]


def production_like_inventory(lab, path):
    """The lab's inventory as a user would write one: no lab-made known_hosts file, no key file."""
    inventory = yaml.safe_load(Path(lab.config.inventory_path).read_text())
    group = inventory["all"]["children"]["lab"]
    group["vars"].pop("ansible_ssh_private_key_file")
    group["vars"]["ansible_ssh_common_args"] = "-o IdentitiesOnly=yes"
    path.write_text(yaml.safe_dump(inventory))
    return path


# ssh reads ~/.ssh from the passwd entry's home, not $HOME: each step runs in a mount namespace of its
# own where the runner's fresh home is mounted over the real one (pyenv's interpreters, which the venv
# uses, mounted back into it), so ~/.ssh is the job's and the machine's own is never touched
FRESH_HOME = """
home=$(getent passwd "$(id -u)" | cut -d: -f6)
for keep in .pyenv; do
  if [ -e "$home/$keep" ] && [ ! -e "$HOME/$keep" ]; then mkdir -p "$HOME/$keep"; fi
  if [ -e "$home/$keep" ]; then mount --rbind "$home/$keep" "$HOME/$keep"; fi
done
mount --rbind "$HOME" "$home"
export HOME="$home"
"""


def run_steps(steps, env, workdir):
    """Run the steps like the pipeline: each with bash -e, stop at the first failure; (rc, output)."""
    output = []
    for name, script in steps:
        argv = ["unshare", "--mount", "--propagation", "private", "bash", "-e", "-o", "pipefail", "-c",
                FRESH_HOME + script]
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        output.append("### %s (rc %d)\n%s%s" % (name, proc.returncode, proc.stdout, proc.stderr))
        if proc.returncode:
            return proc.returncode, "\n".join(output)
    return 0, "\n".join(output)


@pytest.fixture
def pipeline(lab, hosts, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the steps run in a mount namespace of their own (root)")
    home = tmp_path / "home"
    home.mkdir()
    reports = tmp_path / "netcheck-reports"
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8", "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "ANSIBLE_NOCOLOR": "1",
           "NETCHECK_INVENTORY": str(production_like_inventory(lab, tmp_path / "production.yml")),
           "NETCHECK_REPORTS": str(reports), "NETCHECK_BASELINE": str(tmp_path / "no-baseline-yet.yml"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md")}
    return {"env": env, "reports": reports, "key": Path(lab.config.key_path), "tmp": tmp_path, "hosts": hosts}


def _assert_published(pipeline, rc, output):
    assert rc == 0, output
    run_dirs = sorted(pipeline["reports"].glob("*/"))
    assert run_dirs, output
    published = sorted(p.name for p in run_dirs[-1].iterdir())
    for name in ("junit.xml", "summary.md", "report.html", "report.json"):
        assert name in published, (published, output)
    assert "netcheck: passed" in output


def test_the_github_actions_job_runs_as_written_against_the_lab(pipeline):
    variables, steps = github_steps()
    assert set(variables) >= {"NETCHECK_INVENTORY", "NETCHECK_REPORTS", "NETCHECK_BASELINE"}
    env = dict(pipeline["env"], NETCHECK_SSH_KEY=pipeline["key"].read_text())  # a secret's text
    rc, output = run_steps(steps, env, pipeline["tmp"])
    _assert_published(pipeline, rc, output)
    assert "ssh-keyscan of %d of %d hosts" % (len(pipeline["hosts"]), len(pipeline["hosts"])) in output
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## netcheck report: passed")


def test_the_gitlab_job_runs_as_written_against_the_lab(pipeline):
    variables, steps = gitlab_steps()
    assert set(variables) >= {"NETCHECK_INVENTORY", "NETCHECK_REPORTS", "NETCHECK_BASELINE"}
    env = dict(pipeline["env"], NETCHECK_SSH_KEY=str(pipeline["key"]))  # a File variable: a path
    env.pop("GITHUB_STEP_SUMMARY")
    rc, output = run_steps(steps, env, pipeline["tmp"])
    _assert_published(pipeline, rc, output)


def test_without_the_known_hosts_step_every_source_could_not_run_and_the_job_fails(pipeline):
    _, steps = github_steps()
    steps = [(name, script) for name, script in steps if "known-hosts.sh" not in script]
    env = dict(pipeline["env"], NETCHECK_SSH_KEY=pipeline["key"].read_text())
    rc, output = run_steps(steps, env, pipeline["tmp"])
    assert rc == 2, output
    assert output.count("NOT RUN ") == len(pipeline["hosts"]), output
    assert "netcheck: NOTHING CHECKED: no source could run" in output


def test_the_controller_requirements_hold_no_lab_or_browser_tools():
    names = [line.split("==")[0].strip().lower() for line in (REPO / "requirements-controller.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert names == ["ansible-core", "jinja2", "pyyaml"]
    for _, steps in (github_steps(), gitlab_steps()):
        shell = "\n".join(script for _, script in steps)
        assert "-r requirements-controller.txt" in shell
        for tool in ("chromium", "tshark", "scripts/install.sh", "-r requirements.txt", "python -m lab"):
            assert tool not in shell
