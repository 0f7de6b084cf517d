"""capture.yml against the lab: captures around check.yml's checks, summaries kept, pcaps fetched
always / on failure only / never."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from harness import REPO


def run_capture(ansible, src, dst, run_dir, fetch, bpf="tcp port 8080 or icmp"):
    extra = ["-e", "capture_filter='%s'" % bpf] if bpf else []
    return ansible.playbook(REPO / "capture.yml", "-e", "capture_hosts=%s:%s" % (src.name, dst.name),
                            "-e", "capture_fetch=%s" % fetch, "-e", "capture_run_dir=%s" % run_dir, *extra)


def summaries(run_dir, hosts):
    return {h.name: json.loads((run_dir / h.name / "eth0.summary.json").read_text()) for h in hosts}


def no_capture_left(hosts, found):
    return all(not Path("/var/tmp/netcheck-capture", s["id"]).exists() for s in found.values())


def test_pcaps_are_fetched_always_and_match_their_summary(ansible, lab, src, dst, tmp_path):
    run = run_capture(ansible, src, dst, tmp_path, "always", bpf=None)
    assert run.rc == 0, run.stdout[-3000:]
    found = summaries(tmp_path, (src, dst))
    for host, other in ((src, dst), (dst, src)):
        pcap = tmp_path / host.name / "eth0.pcap"
        summary = found[host.name]
        assert hashlib.sha256(pcap.read_bytes()).hexdigest() == summary["pcap"]["sha256"]
        # the default filter: the other host of the play, so not Ansible's own SSH connection
        assert summary["ended_by"] == "stopped" and summary["filter"] == "host %s" % other.ip
        assert not any(lab.config.controller_ip in (f["orig_h"], f["resp_h"]) for f in summary["summary"]["flows"])
        states = {f["conn_state"] for f in summary["summary"]["flows"] if f["resp_p"] in (22, 8080)}
        assert states == {"SF"}
        subprocess.run(["capinfos", str(pcap)], check=True, capture_output=True)
    assert no_capture_left((src, dst), found)


def test_pcaps_are_fetched_on_failure_only(ansible, src, dst, tmp_path, iptables_rules):
    passing = tmp_path / "passing"
    run = run_capture(ansible, src, dst, passing, "on_failure")
    assert run.rc == 0
    assert not list(passing.glob("*/*.pcap")) and len(list(passing.glob("*/*.summary.json"))) == 2

    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    failing = tmp_path / "failing"
    run = run_capture(ansible, src, dst, failing, "on_failure")
    assert run.rc != 0
    assert sorted(p.parent.name for p in failing.glob("*/eth0.pcap")) == sorted([src.name, dst.name])
    at_dst = summaries(failing, (dst,))[dst.name]["summary"]["flows"]
    assert any(f["resp_p"] == 8080 and f["conn_state"] == "S0" for f in at_dst)


def test_pcaps_are_never_fetched_when_told_so(ansible, src, dst, tmp_path, iptables_rules):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    run = run_capture(ansible, src, dst, tmp_path, "never")
    assert run.rc != 0
    assert not list(tmp_path.glob("*/*.pcap")) and len(list(tmp_path.glob("*/*.summary.json"))) == 2
