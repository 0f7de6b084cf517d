"""check.yml -e netcheck_capture=true on the 3-host lab: captures on every source around the checks,
stopped even though a check fails, the pcaps fetched to the run directory beside report.json, and
the failing pair's two-point evidence in the report. Without the option nothing is captured."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

from harness import BIN, REPO

PORT = 8080  # in the lab inventory's mesh (netcheck_mesh_ports)


def check(lab, report_dir, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "check.yml",
                           "-e", "netcheck_tcp_timeout=1", "-e", "netcheck_http_timeout=2",
                           "-e", "netcheck_report_dir=%s" % report_dir, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def run_dir_of(report_dir):
    (run_dir,) = [p.parent for p in Path(report_dir).glob("*/report.json")]
    return run_dir


def tcpdumps(hosts):
    """{namespace: [pid]} of the tcpdump processes running in the lab hosts' namespaces."""
    found = {}
    for host in hosts:
        pids = subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True, check=False).stdout.split()
        for pid in pids:
            try:
                comm = Path("/proc/%s/comm" % pid).read_text().strip()
            except OSError:
                continue
            if comm == "tcpdump":
                found.setdefault(host.namespace, []).append(int(pid))
    return found


def no_tcpdump_within(hosts, seconds):
    deadline = time.monotonic() + seconds
    while tcpdumps(hosts) and time.monotonic() < deadline:
        time.sleep(0.1)
    return tcpdumps(hosts)


def test_a_drop_on_the_target_is_found_in_both_captures_and_the_pcaps_sit_beside_the_report(
        lab, hosts, iptables_rules, tmp_path):
    source, target, other = hosts
    iptables_rules(target.namespace, "INPUT", "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
    proc = check(lab, tmp_path, "-e", "netcheck_capture=true")
    assert proc.returncode != 0, proc.stdout
    assert "SYN reached %s, no answer left %s" % (target.name, target.name) in proc.stdout, proc.stdout

    run_dir = run_dir_of(tmp_path)
    run = json.loads((run_dir / "report.json").read_text())
    (pair,) = [p for p in run["pairs"] if p["source"] == source.name and p["target"] == target.name]
    assert pair["verdict"]["code"] == "PORT_FILTERED"
    capture = pair["capture"]
    (evidence,) = capture["evidence"]
    assert evidence["port"] == PORT and evidence["where"] == "target_firewall", evidence
    assert evidence["facts"]["syn_left_a"] > 0 and evidence["facts"]["syn_reached_b"] > 0
    assert evidence["facts"]["syn_ack_left_b"] == 0 and evidence["facts"]["rst_left_b"] == 0
    assert evidence["sentence"] in pair["verdict"]["evidence"]
    # each side's flows are this pair's only (both ways), and the SYNs to the port are attempts (S0)
    for side, other_end in (("source", target.ip), ("target", source.ip)):
        flows = capture[side]["flows"]
        assert flows and all(other_end in (f["orig_h"], f["resp_h"]) for f in flows), flows
        assert all(other.ip not in (f["orig_h"], f["resp_h"]) for f in flows)
        assert {f["conn_state"] for f in flows if f["resp_h"] == target.ip and f["resp_p"] == PORT} == {"S0"}
    # passing pairs carry no capture
    assert all(p["capture"] is None for p in run["pairs"] if p["ok"])

    # on failure (the default) every source's pcap is fetched into the run directory, 0600, readable
    for host in hosts:
        pcap = run_dir / host.name / "eth0.pcap"
        assert stat.S_IMODE(pcap.stat().st_mode) == 0o600, oct(pcap.stat().st_mode)
        subprocess.run(["capinfos", str(pcap)], check=True, capture_output=True)
        assert (run_dir / host.name / "eth0.summary.json").is_file()
    assert capture["source"]["id"] and capture["target"]["id"] and capture["source"]["id"] != capture["target"]["id"]
    assert capture["source"]["pcap"] == "%s/eth0.pcap" % source.name
    assert capture["target"]["pcap"] == "%s/eth0.pcap" % target.name
    # the same run directory holds the reports, and the HTML carries the pair's capture
    assert "target_firewall" in (run_dir / "report.html").read_text()
    assert not no_tcpdump_within(hosts, 5)


def test_tags_keep_the_capture_and_fetch_never_keeps_only_the_summaries(lab, hosts, iptables_rules, tmp_path):
    source, target, _ = hosts
    iptables_rules(target.namespace, "INPUT", "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
    proc = check(lab, tmp_path, "-e", "netcheck_capture=true", "-e", "netcheck_capture_fetch=never", "--tags", "tcp")
    assert proc.returncode != 0, proc.stdout
    run_dir = run_dir_of(tmp_path)
    run = json.loads((run_dir / "report.json").read_text())
    (pair,) = [p for p in run["pairs"] if p["source"] == source.name and p["target"] == target.name]
    assert [e["where"] for e in pair["capture"]["evidence"]] == ["target_firewall"]
    assert pair["capture"]["source"]["pcap"] is None and pair["capture"]["target"]["pcap"] is None
    assert not list(run_dir.glob("*/*.pcap"))
    assert len(list(run_dir.glob("*/eth0.summary.json"))) == len(hosts)
    assert not no_tcpdump_within(hosts, 5)


def test_without_netcheck_capture_nothing_is_captured(lab, hosts, iptables_rules, tmp_path):
    source, target, _ = hosts
    iptables_rules(target.namespace, "INPUT", "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
    proc = check(lab, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "capture: " not in proc.stdout and "no answer left" not in proc.stdout
    run_dir = run_dir_of(tmp_path)
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir() and p.name != "sources") == []
    run = json.loads((run_dir / "report.json").read_text())
    assert all(p["capture"] is None for p in run["pairs"])
    assert not tcpdumps(hosts)


def test_a_passing_run_fetches_no_pcap_on_failure_only_and_every_pcap_always(lab, hosts, tmp_path):
    proc = check(lab, tmp_path / "on_failure", "-e", "netcheck_capture=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(tmp_path / "on_failure")
    assert not list(run_dir.glob("*/*.pcap"))
    assert sorted(p.parent.name for p in run_dir.glob("*/eth0.summary.json")) == sorted(h.name for h in hosts)
    proc = check(lab, tmp_path / "always", "-e", "netcheck_capture=true", "-e", "netcheck_capture_fetch=always")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = run_dir_of(tmp_path / "always")
    assert sorted(p.parent.name for p in run_dir.glob("*/eth0.pcap")) == sorted(h.name for h in hosts)
    # the terminal says where the pcaps went
    assert "pcaps: %d in %s (" % (len(hosts), run_dir) in proc.stdout, proc.stdout
    run = json.loads((run_dir / "report.json").read_text())
    assert sorted(run["pcaps"]) == sorted("%s/eth0.pcap" % h.name for h in hosts)
    assert all(p["capture"] is None for p in run["pairs"]), "only failing pairs carry a capture"
    assert not no_tcpdump_within(hosts, 5)


def test_a_capture_that_cannot_start_does_not_stop_the_checks(lab, hosts, tmp_path):
    proc = check(lab, tmp_path, "-e", "netcheck_capture=true", "-e", "capture_filter='tcp port ('")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("...ignoring") == len(hosts), proc.stdout
    assert "totals: 6 pairs, 6 ok, 0 failed, 0 sources not run" in proc.stdout
    run_dir = run_dir_of(tmp_path)
    assert not [p for p in run_dir.iterdir() if p.is_dir() and p.name != "sources"]
    assert not tcpdumps(hosts)


def test_the_sources_own_output_drop_is_the_syn_that_never_left_and_other_sources_do_not_count(
        lab, hosts, iptables_rules, tmp_path):
    """The source's OUTPUT chain drops its SYNs to target:8080 while the third host's connections to
    the same port complete: the evidence is "the SYN never left the source", never the return path."""
    source, target, other = hosts
    iptables_rules(source.namespace, "OUTPUT", "-d", target.ip, "-p", "tcp", "--dport", str(PORT), "-j", "DROP")
    proc = check(lab, tmp_path, "-e", "netcheck_capture=true")
    assert proc.returncode != 0, proc.stdout
    run_dir = run_dir_of(tmp_path)
    run = json.loads((run_dir / "report.json").read_text())
    (pair,) = [p for p in run["pairs"] if p["source"] == source.name and p["target"] == target.name]
    checks = {c["check"]: c for c in pair["verdict"]["checks"]}
    port_check = checks["tcp/%d" % PORT]
    # a TCP connect through an OUTPUT DROP gets no error from the kernel, only silence: the source
    # alone cannot tell its own firewall from the network; the two captures can
    assert port_check["code"] == "PORT_FILTERED", port_check
    assert port_check["outcome"]["reason"] in ("no_answer", "local_firewall"), port_check
    (evidence,) = pair["capture"]["evidence"]
    assert evidence["where"] == "source", evidence
    assert evidence["sentence"].startswith("The SYN never left %s" % source.name), evidence
    assert evidence["facts"]["syn_left_a"] == 0 and evidence["facts"]["flows_at_b"] == 0, evidence
    assert evidence["sentence"] in port_check["evidence"]
    # the target's capture did hold another source's handshakes on that port: they were not counted
    summary = json.loads((run_dir / target.name / "eth0.summary.json").read_text())
    flows = summary.get("flows") or summary.get("summary", {}).get("flows") or []
    assert any(f["orig_h"] == other.ip and f["resp_p"] == PORT and f["resp_flags"]["syn_ack"] for f in flows)
    assert "return path" not in proc.stdout
