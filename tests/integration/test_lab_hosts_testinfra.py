"""Host state of the lab seen from inside each host, with testinfra over the lab's own SSH."""

from __future__ import annotations

import pytest
import testinfra


@pytest.fixture(scope="module")
def ssh_config(lab, tmp_path_factory):
    path = tmp_path_factory.mktemp("ssh") / "config"
    path.write_text(
        "Host *\n"
        "  User root\n"
        "  IdentityFile %s\n"
        "  IdentitiesOnly yes\n"
        "  UserKnownHostsFile %s\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n" % (lab.config.key_path, lab.config.known_hosts_path))
    return str(path)


def test_each_host_listens_on_ssh_and_web_with_its_own_addresses(hosts, ssh_config):
    for lab_host in hosts:
        host = testinfra.get_host("ssh://%s" % lab_host.ip, ssh_config=ssh_config)
        assert host.socket("tcp://%s:22" % lab_host.ip).is_listening
        assert host.socket("tcp://0.0.0.0:8080").is_listening or host.socket("tcp://:::8080").is_listening
        interface = host.interface("eth0")
        assert lab_host.ip in interface.addresses
        assert lab_host.ip6 in interface.addresses
        # the inventory's MAC is the one the namespace's eth0 really has
        assert host.file("/sys/class/net/eth0/address").content_string.strip() == lab_host.mac
