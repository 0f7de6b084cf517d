"""check.yml as a CI gate on the session lab: every way it used to pass with nothing checked now exits
non-zero and says why, a configuration error is told apart from a network failure (exit 4 against 2,
the first line, report.json's status), --limit narrows the sources and not the targets, and the
baseline written from a run, fed back, makes the same faults known and a new fault fail; a second run
with a fault added and one fixed is compared with the first. Faults are made for real (iptables in
the lab's namespaces) and undone.

A configuration error stops before any host is contacted, so those cases take about 2 s each."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import BIN, REPO

CONFIG_ERROR = "netcheck: CONFIGURATION ERROR, nothing was checked"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gate-reports")


def check(lab, report_dir, *extra, inventory=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory or lab.config.inventory_path), "check.yml",
            "-e", "netcheck_tcp_timeout=1", "-e", "netcheck_report_dir=%s" % report_dir, *extra]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


def latest_report(report_dir):
    reports = sorted(Path(report_dir).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text()), reports[-1]


def first_netcheck_line(output):
    return next(line for line in output.splitlines() if line.startswith("netcheck:"))


@pytest.mark.parametrize("extra, message", [
    (["-e", "netcheck_tcp_timeout=-1"], "netcheck_tcp_timeout: -1 is out of range (above 0 to 3600)"),
    (["-e", "netcheck_icmp_count=0"], "netcheck_icmp_count: 0 is out of range (from 1 to 1000)"),
    (["-e", "netcheck_max_workers=0"], "netcheck_max_workers: 0 is out of range (from 1 to 4096)"),
    (["-e", '{"netcheck_tcp_targets": [{"host": "$(reboot)", "port": 22}]}'],
     "netcheck_tcp_targets[0].host: '$(reboot)' is not a host name or IP address"),
    (["-e", '{"netcheck_mesh_ports": ["ssh"]}'], "netcheck_mesh_ports[0]: 'ssh' is not a port number"),
    (["-e", '{"netcheck_mesh_urls": [{"prot": 8080}]}'], "netcheck_mesh_urls[0].prot: unknown key (did you mean port?)"),
    (["-e", '{"netcheck_report_options": {"bogus": 1}}'], "netcheck_report_options: unknown keys bogus"),
    (["-e", "netcheck_baseline=ci/no-such-file.yml"], "netcheck_baseline: ci/no-such-file.yml: no such file"),
    (["-e", "netcheck_mesh_group=dbz"], "netcheck_mesh_group: no group 'dbz' in the inventory"),
])
def test_a_configuration_error_exits_4_before_any_host_is_contacted(lab, hosts, report_dir, extra, message):
    proc = check(lab, report_dir, *extra)
    assert proc.returncode == 4, proc.output
    assert first_netcheck_line(proc.output).startswith(CONFIG_ERROR), proc.output
    assert message in proc.output
    assert "TASK [netcheck.netcheck.netcheck" not in proc.output  # no task of the role ran
    assert len(proc.output.splitlines()) < 40, proc.output  # no argument-spec dump
    run, _ = latest_report(report_dir)
    assert run["status"] == "config_error" and any(message in p for p in run["problems"])


def test_a_wrong_inventory_or_a_mistyped_source_group_exits_1(lab, hosts, report_dir, tmp_path):
    missing = check(lab, report_dir, inventory=tmp_path / "no-such-inventory.yml")
    assert missing.returncode == 1, missing.output
    assert "no-such-inventory.yml" in missing.output
    mistyped = check(lab, report_dir, "-e", "netcheck_sources=lbb")
    assert mistyped.returncode == 1, mistyped.output
    assert "Could not match supplied host pattern" in mistyped.output and "lbb" in mistyped.output
    limited = check(lab, report_dir, "--limit", "no-such-host")
    assert limited.returncode == 1, limited.output


def test_limit_narrows_who_checks_not_what_is_checked(lab, hosts, report_dir, tmp_path):
    first = hosts[0]
    proc = check(lab, report_dir, "--limit", first.name, "--tags", "tcp", "-e",
                 '{"netcheck_tcp_group_targets": [], "netcheck_http_group_targets": [], "netcheck_icmp_group_targets": []}')
    assert proc.returncode == 0, proc.output
    run, _ = latest_report(report_dir)
    assert [s["name"] for s in run["sources"]] == [first.name]
    # the mesh's targets come from the inventory, not from the play's hosts
    assert sorted(p["target"] for p in run["pairs"]) == sorted(h.name for h in hosts[1:])
    # a mesh group smaller than the inventory: the run says which hosts were left out
    inventory = yaml.safe_load(Path(lab.config.inventory_path).read_text())
    inventory["all"]["children"]["spare"] = {"hosts": {hosts[2].name: None}}
    path = tmp_path / "with-spare.yml"
    path.write_text(yaml.safe_dump(inventory))
    group = check(lab, report_dir, "--tags", "tcp", "-e", "netcheck_mesh_group=spare", "--limit", first.name,
                  "-e", '{"netcheck_tcp_group_targets": [], "netcheck_http_group_targets": [], '
                        '"netcheck_icmp_group_targets": []}', inventory=path)
    assert group.returncode == 0, group.output
    assert ("targets: 1 of the inventory's %d hosts checked as targets (netcheck_mesh_group=spare); not checked: %s"
            % (len(hosts), hosts[1].name)) in group.output


def test_a_source_whose_module_cannot_start_is_a_row_that_could_not_run(lab, hosts, report_dir, tmp_path):
    broken = hosts[2]
    inventory = yaml.safe_load(Path(lab.config.inventory_path).read_text())
    inventory["all"]["children"]["lab"]["hosts"][broken.name]["ansible_python_interpreter"] = "/nonexistent/python3"
    path = tmp_path / "no-python.yml"
    path.write_text(yaml.safe_dump(inventory))
    proc = check(lab, report_dir, "--tags", "tcp", inventory=path)
    assert proc.returncode == 2, proc.output
    assert first_netcheck_line(proc.output).startswith("netcheck: FAILED (the network or the hosts"), proc.output
    assert "NOT RUN %s" % broken.name in proc.output and "/nonexistent/python3" in proc.output
    run, _ = latest_report(report_dir)
    source = next(s for s in run["sources"] if s["name"] == broken.name)
    assert source["status"] == "failed" and "/nonexistent/python3" in source["error"]
    assert run["status"] == "failed" and run["asymmetric"] == []


def test_nothing_checked_fails_unless_an_empty_run_is_allowed(lab, hosts, report_dir):
    nothing = ["--tags", "http", "-e", '{"netcheck_http_group_targets": [], "netcheck_mesh_urls": []}']
    proc = check(lab, report_dir, *nothing)
    assert proc.returncode == 2, proc.output
    assert first_netcheck_line(proc.output).startswith("netcheck: NOTHING CHECKED: no pair was checked"), proc.output
    run, _ = latest_report(report_dir)
    assert run["status"] == "not_run" and run["totals"]["pairs"] == 0
    allowed = check(lab, report_dir, *nothing, "-e", "netcheck_allow_empty=true")
    assert allowed.returncode == 0, allowed.output


def test_a_report_that_cannot_be_written_fails_the_run(lab, hosts, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    proc = check(lab, blocker, "--tags", "tcp")
    assert proc.returncode == 2, proc.output
    assert "the reports could not be written to %s" % blocker in proc.output


def test_limits_alone_print_each_sources_limits_not_an_empty_matrix(lab, hosts, report_dir):
    proc = check(lab, report_dir, "--tags", "limits")
    assert proc.returncode == 0, proc.output
    assert "matrix (rows" not in proc.output
    for host in hosts:
        assert "limits %s: listeners 22 sshd" % host.name in proc.output


def test_the_written_baseline_fed_back_and_a_comparison_of_two_runs(lab, hosts, report_dir, iptables_rules, tmp_path):
    h1, h2, h3 = hosts[:3]
    baseline = tmp_path / "known-failures.yml"
    iptables_rules(h2.namespace, "INPUT", "-s", h1.ip, "-p", "tcp", "--dport", "8080", "-j", "DROP")
    first = check(lab, report_dir, "--tags", "tcp", "-e", "netcheck_baseline_write=%s" % baseline)
    assert first.returncode == 2, first.output
    assert "baseline written: %s (1 known failures" % baseline in first.output
    document = yaml.safe_load(baseline.read_text())
    assert document["known_failures"] == [{"source": h1.name, "target": h2.name, "code": "PORT_FILTERED",
                                           "reason": "TODO: why this failure is accepted (ticket, owner, date)"}]
    _, first_report = latest_report(report_dir)

    known = check(lab, report_dir, "--tags", "tcp", "-e", "netcheck_baseline=%s" % baseline)
    assert known.returncode == 0, known.output
    assert "1 failed (0 new, 1 known)" in known.output and "KNOWN %s -> %s" % (h1.name, h2.name) in known.output

    # a new fault, and the first one fixed: a failure, and the comparison says both
    iptables_rules(h3.namespace, "INPUT", "-s", h2.ip, "-p", "tcp", "--dport", "22", "-j", "REJECT",
                   "--reject-with", "tcp-reset")
    subprocess.run(["ip", "netns", "exec", h2.namespace, "iptables", "-w", "-D", "INPUT", "-s", h1.ip, "-p", "tcp",
                    "--dport", "8080", "-j", "DROP"], check=True)
    second = check(lab, report_dir, "--tags", "tcp", "-e", "netcheck_baseline=%s" % baseline,
                   "-e", "netcheck_compare=%s" % first_report)
    subprocess.run(["ip", "netns", "exec", h2.namespace, "iptables", "-w", "-I", "INPUT", "-s", h1.ip, "-p", "tcp",
                    "--dport", "8080", "-j", "DROP"], check=True)  # the fixture deletes it again
    assert second.returncode == 2, second.output
    assert "1 failed (1 new, 0 known)" in second.output
    assert "FIXED %s -> %s: in the baseline" % (h1.name, h2.name) in second.output
    assert "  NEW   %s -> %s: PORT_CLOSED (was OK)" % (h2.name, h3.name) in second.output
    assert "  FIXED %s -> %s: was PORT_FILTERED" % (h1.name, h2.name) in second.output
    run, path = latest_report(report_dir)
    assert [(e["source"], e["target"]) for e in run["comparison"]["new_failures"]] == [(h2.name, h3.name)]
    assert [(e["source"], e["target"]) for e in run["comparison"]["fixed"]] == [(h1.name, h2.name)]
    assert "Changes since" in (path.parent / "summary.md").read_text()


def test_verbose_output_stays_readable_and_the_evidence_is_in_the_run_directory(lab, hosts, report_dir,
                                                                                iptables_rules):
    iptables_rules(hosts[1].namespace, "INPUT", "-s", hosts[0].ip, "-p", "tcp", "--dport", "8080", "-j", "DROP")
    proc = check(lab, report_dir, "-v")
    assert proc.returncode == 2, proc.output
    lines = proc.output.splitlines()
    # the task results hold per pair a target, an address, ok, a code and a layer; the evidence is in files
    diagnose = [line for line in lines if "evidence" in line or '"layers"' in line or "layers:" in line]
    assert diagnose == [], diagnose[:5]
    assert len(lines) < 80 * len(hosts), len(lines)
    # nothing is lost: report.json is complete, the failing pair's evidence is printed
    assert "tcp %s:8080: filtered, expected open" % hosts[1].ip in proc.output
    run, path = latest_report(report_dir)
    assert all(p["layers"] and p["verdict"]["evidence"] for p in run["pairs"])
    answers = sorted(p.name for p in (path.parent / "sources").iterdir())
    assert answers == sorted("%s.json" % h.name for h in hosts)
