"""The namespace lab itself: idempotent up, real sshd with host key checking, clean down."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab import Lab, LabConfig
from lab.lab import LabError

from harness import LAB_HOSTS, spare_lab_config


def _lab_snapshot(lab):
    """What `up` could change: namespaces, links, addresses, processes, generated files."""
    cfg = lab.config
    links = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    status = lab.status()
    return {
        "namespaces": sorted(lab.namespaces().values()),
        "links": sorted((l["ifname"], l["ifindex"], tuple(sorted(a["local"] for a in l.get("addr_info", []))))
                        for l in links if l["ifname"].startswith(cfg.name)),
        "processes": [(h["name"], h["sshd_pid"], h["web_pid"]) for h in status["hosts"]],
        "files": {str(p): (p.stat().st_mtime_ns, p.read_bytes())
                  for p in (cfg.inventory_path, cfg.known_hosts_path, cfg.key_path)},
    }


def test_up_twice_changes_nothing_the_second_time(lab):
    before = _lab_snapshot(lab)
    changes = lab.up(LAB_HOSTS)
    assert changes == []
    assert _lab_snapshot(lab) == before
    assert all(h["sshd_pid"] and h["web_pid"] for h in lab.status()["hosts"])


def _ssh(lab, host, known_hosts, *command):
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no",
         "-o", "UserKnownHostsFile=%s" % known_hosts, "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
         "-i", str(lab.config.key_path), "root@%s" % host, *command],
        capture_output=True, text=True, timeout=30, check=False)


def test_hosts_answer_ssh_with_host_key_checking_on(lab, hosts, tmp_path):
    for host in hosts:
        for address in (host.ip, host.ip6):
            proc = _ssh(lab, address, lab.config.known_hosts_path, "ip", "-br", "addr", "show", "dev", "eth0")
            assert proc.returncode == 0, proc.stderr
            # the session runs inside that host's namespace: it sees that host's address
            assert host.ip in proc.stdout
    # the same login with a known_hosts file that lacks the host key is refused
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = _ssh(lab, hosts[0].ip, empty, "true")
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


def test_each_host_has_its_own_host_key(lab, hosts):
    keys = {(lab.config.host_dir(h.index) / "ssh_host_ed25519_key.pub").read_text().split()[1] for h in hosts}
    assert len(keys) == len(hosts)


def test_lab_hosts_have_no_route_off_the_lab(hosts):
    routes = subprocess.run(["ip", "-n", hosts[0].namespace, "route", "show", "default"],
                            capture_output=True, text=True, check=True).stdout
    assert routes.strip() == ""


def _leftovers(cfg):
    """Anything of the lab's still on the machine."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=False).stdout)
    processes = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(cfg.state_dir) in text or "--name %s" % cfg.name in text:
            processes.append(text)
    return {
        "namespaces": [n for n in netns if n.startswith(cfg.name)],
        "links": [l["ifname"] for l in links if l["ifname"].startswith(cfg.name)],
        "processes": processes,
        "etc_netns": [p.name for p in Path("/etc/netns").glob(cfg.name + "*")] if Path("/etc/netns").exists() else [],
        "files": [str(p) for p in (cfg.state_dir, cfg.inventory_path) if p.exists()],
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="the namespace lab needs root")
def test_up_reconciles_to_n_hosts_and_down_leaves_nothing(lab):
    # a second, separate lab: the session's lab must survive this test untouched
    cfg = spare_lab_config("ncdown")
    other = Lab(cfg)
    session_before = sorted(lab.namespaces().values())
    try:
        other.up(2)
        assert sorted(other.namespaces().values()) == [cfg.host_name(1), cfg.host_name(2)]
        assert other.up(1)  # shrinking is a change...
        assert sorted(other.namespaces().values()) == [cfg.host_name(1)]
        assert cfg.host_name(2) not in cfg.known_hosts_path.read_text() + cfg.inventory_path.read_text()
        assert not cfg.host_dir(2).exists()
    finally:
        other.down()
    assert _leftovers(cfg) == {"namespaces": [], "links": [], "processes": [], "etc_netns": [], "files": []}
    assert other.down() == []  # down on nothing changes nothing
    assert sorted(lab.namespaces().values()) == session_before


@pytest.mark.skipif(os.geteuid() != 0, reason="the namespace lab needs root")
def test_a_second_lab_on_a_subnet_in_use_is_refused_and_makes_nothing(lab):
    # another name (so other bridge and namespaces) but the session lab's own IPv4 subnet
    cfg = spare_lab_config("ncdup")
    clash = LabConfig(name=cfg.name, subnet=lab.config.subnet, subnet6=cfg.subnet6)
    with pytest.raises(LabError) as error:
        Lab(clash).up(1)
    assert lab.config.subnet in str(error.value) and lab.config.bridge in str(error.value)
    assert _leftovers(clash) == {"namespaces": [], "links": [], "processes": [], "etc_netns": [], "files": []}
