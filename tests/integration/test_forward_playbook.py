"""forward.yml end to end: forwards set up, proven from another host, public IP, torn down."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import BIN, REPO, netns

RULES = [{"from_port": 81, "to_port": 9191}]


def _playbook(lab, hosts, *extra):
    limit = ",".join(h.name for h in hosts)
    argv = [str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "forward.yml",
            "-e", "forward_hosts=lab", "-l", limit, "-e", json.dumps({"port_forward_rules": RULES,
                                                                    "port_forward_listener": True}), *extra]
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _recap(stdout):
    return {line.split()[0]: line for line in stdout.splitlines() if " : ok=" in line}


def _ours(host):
    return [line for line in netns(host.namespace, "iptables-save", "-t", "nat").stdout.splitlines()
            if "netcheck-port-forward" in line]


@pytest.fixture
def whatismyip(lab):
    """An echo-my-address service on the controller's side of the lab bridge."""
    proc = subprocess.Popen([sys.executable, str(REPO / "lab" / "whatismyip.py"), "--bind", lab.config.controller_ip],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # it prints "listening on URL" once it listens
    port = int(proc.stdout.readline().split()[-1].rstrip("/").rsplit(":", 1)[1])
    yield "http://%s:%d/" % (lab.config.controller_ip, port)
    proc.terminate()
    proc.wait(timeout=10)


def test_forward_yml_sets_up_proves_reports_and_tears_down(lab, hosts, whatismyip):
    servers = hosts[:2]
    proc = _playbook(lab, servers, "-e", "port_forward_public_ip_url=%s" % whatismyip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = _recap(proc.stdout)
    for host, prover in ((servers[0], servers[1]), (servers[1], servers[0])):
        assert "failed=0" in recap[host.name]
        assert len(_ours(host)) == 1
        assert "proof from %s: %s:81 open" % (prover.name, host.ip) in proc.stdout
        assert "public IP: %s (url)" % host.ip in proc.stdout  # the address the controller saw
        # the temporary listener answers behind the forward, seen from the other host
        banner = netns(prover.namespace, "python3", "-c",
                       "import socket; s=socket.create_connection(('%s', 81), 3); print(s.recv(100).decode())"
                       % host.ip).stdout
        assert "9191" in banner

    again = _playbook(lab, servers)
    assert again.returncode == 0, again.stdout
    assert "1 rule(s) added" not in again.stdout and "0 rule(s) added" in again.stdout

    down = _playbook(lab, servers, "-e", "state=absent")
    assert down.returncode == 0, down.stdout + down.stderr
    for host in servers:
        assert _ours(host) == []
        assert "%s: 1 rule(s) removed" % host.name in down.stdout
        closed = netns(host.namespace, "python3", "-c",
                       "import socket; socket.create_connection(('%s', 9191), 2)" % host.ip, check=False)
        assert closed.returncode != 0  # the listener is gone too
