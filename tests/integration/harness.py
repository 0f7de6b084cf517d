"""Integration helpers: the test lab's configuration, and ways to drive ansible and namespaces.

Tests run the real modules with the real `ansible` over SSH (host key checking
on) against lab hosts, and make faults for real with iptables inside a lab
host's namespace. All traffic stays inside the lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab import LabConfig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_HOSTS = 3


# Each test session gets its own lab (name and subnets from its pid), so that two
# sessions on one machine never tear down each other's hosts; it coexists with the
# demo lab (nclab, 10.77.0.0/24). NETCHECK_TEST_LAB_SLOT=N pins it. Slots 100-239 are
# the sessions'; 240-254 are left for the second labs that single tests make.
SESSION_SLOTS = range(100, 240)
SPARE_SLOTS = range(240, 255)
_SLOT = int(os.environ.get("NETCHECK_TEST_LAB_SLOT", SESSION_SLOTS[os.getpid() % len(SESSION_SLOTS)]))


def test_lab_config(name="nct%d" % _SLOT, subnet="10.77.%d.0/24" % _SLOT,
                    subnet6="fd6e:6574:6368:%x::/64" % _SLOT):
    """The test session's own lab."""
    return LabConfig(name=name, subnet=subnet, subnet6=subnet6)


def spare_lab_config(prefix):
    """A second lab for one test, on a spare slot whose subnet no interface here holds yet
    (the session labs never use a spare slot; other sessions' spare labs are skipped over)."""
    used = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    for slot in SPARE_SLOTS:
        if " 10.77.%d." % slot not in used:
            return test_lab_config(name="%s%d" % (prefix, slot), subnet="10.77.%d.0/24" % slot,
                                   subnet6="fd6e:6574:6368:%x::/64" % slot)
    raise RuntimeError("every spare lab slot %s is in use" % SPARE_SLOTS)


test_lab_config.__test__ = False  # a helper, not a test


def wait_for(condition, timeout, interval=0.1):
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def netns(namespace, *argv, check=True):
    """Run a command inside a lab host's network namespace."""
    return subprocess.run(["ip", "netns", "exec", namespace, *argv], check=check,
                          capture_output=True, text=True, timeout=30)


@dataclass
class AnsibleRun:
    rc: int
    stdout: str
    stderr: str
    tasks: list
    stats: dict

    def result(self, host, task=-1):
        """The result dict of ``host`` in task number ``task`` (default: the last task)."""
        return self.tasks[task]["hosts"][host]


class Ansible:
    """Runs `ansible` / `ansible-playbook` against the lab and reads results as JSON."""

    def __init__(self, inventory):
        self.inventory = str(inventory)

    def _env(self, extra_env=None):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "tests" / "plugins" / "callback"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "capture_json",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        })
        env.update(extra_env or {})
        return env

    def _run(self, argv, extra_env=None, timeout=300):
        proc = subprocess.run(argv, cwd=REPO, env=self._env(extra_env), capture_output=True,
                              text=True, timeout=timeout, check=False)
        try:
            # with -v the run logs first; the callback's document is the last thing printed
            document = json.loads(proc.stdout[proc.stdout.rindex('{"tasks": '):])
        except ValueError:
            raise AssertionError("ansible printed no JSON (rc %d)\nstdout: %s\nstderr: %s"
                                 % (proc.returncode, proc.stdout, proc.stderr))
        return AnsibleRun(proc.returncode, proc.stdout, proc.stderr, document["tasks"], document["stats"])

    def module(self, host, module, args, check=False, diff=False, verbosity=0, timeout=300):
        """Run one module on one host (or pattern) over SSH; returns the AnsibleRun.

        A short name (``port_check``) means this collection's module (``netcheck.netcheck.port_check``)."""
        module = module if "." in module else "netcheck.netcheck." + module
        argv = [str(BIN / "ansible"), host, "-i", self.inventory, "-m", module, "-a", json.dumps(args)]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        argv += ["-" + "v" * verbosity] if verbosity else []
        return self._run(argv, timeout=timeout)

    def playbook(self, playbook, *extra_args, extra_env=None, timeout=600):
        argv = [str(BIN / "ansible-playbook"), "-i", self.inventory, str(playbook), *extra_args]
        return self._run(argv, extra_env=extra_env, timeout=timeout)
