"""check.yml end to end against the lab: every source host, every target, a readable summary."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import BIN, REPO


def _run_check(lab, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "check.yml", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def green_run(lab):
    """One check.yml run against the healthy lab, shared by the tests that read its summary."""
    proc = _run_check(lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _pairs(hosts):
    return [(source, target) for source in hosts for target in hosts if source is not target]


def _summary_line(output, wanted):
    """The one summary line that contains ``wanted``."""
    matching = [line for line in output.splitlines() if wanted in line]
    assert len(matching) == 1, "%r is not once in the summary:\n%s" % (wanted, output)
    return matching[0]


def test_check_yml_names_every_host_and_target(green_run, hosts):
    for source, target in _pairs(hosts):
        for port in (22, 8080):
            line = _summary_line(green_run, "%s -> %s (%s:%d)" % (source.name, target.name, target.ip, port))
            assert " open " in line and " ok " in line
    assert "failed=0" in green_run


def test_check_yml_pings_every_host_and_names_the_mac_that_answered(green_run, hosts):
    for source, target in _pairs(hosts):
        line = _summary_line(green_run, "%s -> %s (%s) " % (source.name, target.name, target.ip))
        assert "3/3" in line and " 0% loss" in line and "ttl 64" in line
        assert "eth0 on-link %s" % target.mac in line


def test_check_yml_fetches_every_web_server_over_http(green_run, hosts):
    for source, target in _pairs(hosts):
        line = _summary_line(green_run, "%s -> %s (http://%s:8080/)" % (source.name, target.name, target.ip))
        assert " 200 OK " in line and " ok " in line and "ttfb" in line


def test_check_yml_fails_and_says_why_when_a_target_is_down(lab, hosts, iptables_rules):
    victim = hosts[2]
    iptables_rules(victim.namespace, "INPUT", "-p", "tcp", "--dport", "8080", "-j", "REJECT",
                   "--reject-with", "tcp-reset")
    proc = _run_check(lab, "-e", "netcheck_tcp_timeout=1")
    assert proc.returncode != 0
    down = "%s (%s:8080)" % (victim.name, victim.ip)
    failing = [line for line in proc.stdout.splitlines() if down in line]
    assert len(failing) == len(hosts) - 1
    assert all(" closed " in line and "FAIL" in line for line in failing)
    http_down = "%s (http://%s:8080/)" % (victim.name, victim.ip)
    failing = [line for line in proc.stdout.splitlines() if http_down in line]
    assert len(failing) == len(hosts) - 1
    assert all("FAIL" in line and "connect: connection refused" in line for line in failing)
    # the victim's own checks still pass: only the hosts that cannot reach it fail
    recap = {line.split()[0]: line for line in proc.stdout.splitlines() if " : ok=" in line}
    assert "failed=0" in recap[victim.name]
    for source in hosts[:2]:
        assert "failed=1" in recap[source.name]


def test_group_targets_expand_without_listing_addresses(lab, hosts):
    # an explicit target list plus a group spec given on the command line
    proc = _run_check(lab, "-e", '{"netcheck_tcp_group_targets": [{"group": "lab", "port": 9, '
                      '"expected_state": "closed", "include_self": true}], '
                      '"netcheck_tcp_targets": [{"host": "localhost", "port": 8080, "name": "self-web"}]}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for source in hosts:
        assert "%s -> self-web (localhost:8080)" % source.name in proc.stdout
        for target in hosts:
            assert "%s -> %s (%s:9)" % (source.name, target.name, target.ip) in proc.stdout
