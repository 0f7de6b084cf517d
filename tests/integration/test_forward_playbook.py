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
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


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


def test_forward_yml_sets_up_proves_from_the_controller_reports_and_tears_down(lab, hosts, whatismyip):
    servers = hosts[:2]
    proc = _playbook(lab, servers, "-e", "port_forward_public_ip_url=%s" % whatismyip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = _recap(proc.stdout)
    for host in servers:
        assert "failed=0" in recap[host.name]
        assert len(_ours(host)) == 1
        assert "proof from the controller: %s:81 open" % host.ip in proc.stdout
        assert "public IP: %s (url, %s)" % (host.ip, whatismyip) in proc.stdout  # the address the controller saw
        assert "ipv4: 1 of ours in the nat table" in proc.stdout

    # proven from another host when one is named; nothing added the second time
    again = _playbook(lab, servers[:1], "-e", "port_forward_prover=%s" % servers[1].name)
    assert again.returncode == 0, again.stdout
    assert "0 rule(s) added" in again.stdout and "1 rule(s) added" not in again.stdout
    assert "proof from %s: %s:81 open" % (servers[1].name, servers[0].ip) in again.stdout
    # the temporary listener answers behind the forward, seen from the other host
    banner = netns(servers[1].namespace, "python3", "-c",
                   "import socket; s=socket.create_connection(('%s', 81), 3); print(s.recv(100).decode())"
                   % servers[0].ip).stdout
    assert "9191" in banner

    down = _playbook(lab, servers, "-e", "state=absent")
    assert down.returncode == 0, down.stdout + down.stderr
    for host in servers:
        assert _ours(host) == []
        assert "%s: 1 rule(s) removed" % host.name in down.stdout
        closed = netns(host.namespace, "python3", "-c",
                       "import socket; socket.create_connection(('%s', 9191), 2)" % host.ip, check=False)
        assert closed.returncode != 0  # the listener is gone too


def test_forward_yml_on_a_single_host_proves_from_the_controller(lab, hosts):
    host = hosts[2] if len(hosts) > 2 else hosts[0]
    proc = _playbook(lab, [host])
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "failed=0" in _recap(proc.stdout)[host.name]
        assert "proof from the controller: %s:81 open" % host.ip in proc.stdout
        assert len(_ours(host)) == 1
    finally:
        down = _playbook(lab, [host], "-e", "state=absent")
    assert down.returncode == 0, down.stdout
    assert _ours(host) == []


def test_a_failed_proof_takes_back_what_the_run_added_and_says_so(lab, hosts):
    host = hosts[0]
    # nothing listens on 9393 and no listener is started: the proof must fail
    proc = _playbook(lab, [host], "-e", json.dumps({"port_forward_rules": [{"from_port": 83, "to_port": 9393}],
                                                    "port_forward_listener": False,
                                                    "port_forward_prove_timeout": 1}))
    assert proc.returncode != 0
    assert "failed=1" in _recap(proc.stdout)[host.name]
    assert "%s: the forward was not proven from localhost" % host.name in proc.stdout
    assert "1 rule(s) this run added were taken back" in proc.stdout
    assert _ours(host) == []


def test_a_typo_in_a_role_variable_fails_before_any_rule_is_written(lab, hosts):
    host = hosts[0]
    proc = _playbook(lab, [host], "-e", json.dumps({"port_forward_rules": [{"from_port": 84, "to_prot": 9494}]}))
    assert proc.returncode != 0
    assert "port_forward_rules.to_prot" in proc.stdout
    assert _ours(host) == []
