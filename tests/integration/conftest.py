"""The integration fixtures: a namespace lab for the session, and ways to drive it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import LAB_HOSTS, Ansible, netns, test_lab_config
from lab import Lab


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the namespace lab needs root")
    the_lab = Lab(test_lab_config())
    the_lab.up(LAB_HOSTS)
    yield the_lab
    the_lab.down()


@pytest.fixture(scope="session")
def hosts(lab):
    """The lab's hosts, as LabHost records (name, ip, ip6, namespace, mac)."""
    return lab.hosts(LAB_HOSTS)


@pytest.fixture(scope="session")
def src(hosts):
    """The host the checks run from."""
    return hosts[0]


@pytest.fixture(scope="session")
def dst(hosts):
    """The host the checks aim at (faults are made inside it)."""
    return hosts[1]


@pytest.fixture(scope="session")
def ansible(lab):
    return Ansible(lab.config.inventory_path)


@pytest.fixture
def iptables_rules():
    """Add iptables rules inside lab hosts; every rule added is deleted at teardown."""
    added = []

    def add(namespace, *rule, table="filter"):
        netns(namespace, "iptables", "-w", "-t", table, "-I", *rule)
        added.append((namespace, table, rule))

    yield add
    for namespace, table, rule in reversed(added):
        netns(namespace, "iptables", "-w", "-t", table, "-D", *rule, check=False)
