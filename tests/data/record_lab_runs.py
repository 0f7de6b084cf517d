"""Record the run models the report and gate unit tests read (tests/data/lab_run_*.json).

Run as root from the repository:  .venv/bin/python tests/data/record_lab_runs.py

It starts its own 3-host namespace lab (name ncrec, 10.77.211.0/24 unless NETCHECK_RECORD_SLOT names
another slot), makes real faults with iptables inside the lab's namespaces, runs the real
`ansible-playbook check.yml` against it with a report directory, copies each report.json here, and takes
the lab down again whatever happened. Traffic stays on lab addresses (the network safety rule).

Two recordings:
- lab_run_faults.json, a full mesh of 3 sources, with these faults (h1, h2, h3 = hosts 1..3):
  h2 DROPs TCP 8080 (h1 and h3 -> h2: PORT_FILTERED); h3 REJECTs TCP 8080 from h1 with
  icmp-port-unreachable (h1 -> h3: PORT_REJECTED); h1 DROPs ICMP echo requests from h3 (h3 -> h1:
  ICMP_FILTERED) and the 1st of every 3 from h2 (h2 -> h1: 1 of 3 lost, 33 %, past netcheck_icmp_warn's
  20 %, not crit's 50 %: an ICMP_LOSS warning on a pair that passes); h2 DROPs ICMP echo requests from
  h3 (h3 -> h2 fails two ways: icmp ICMP_FILTERED and tcp/8080 PORT_FILTERED); h2 -> h3 is clean. Source h1 also
  checks h2:9 expected open (nothing listens there: PORT_CLOSED) and h3:22 expected filtered (sshd
  answers: PORT_OPEN).
- lab_run_partial_mesh.json: h2 DROPs TCP 8080, h1 DROPs ICMP echo requests, and h3 cannot run modules
  (ansible_python_interpreter=/nonexistent/python3), so only h1 and h2 check (h3 answers both).

Timings, addresses, MACs and the ICMP statistic's exact losses differ between recordings: the tests
assert only what is stable (codes, hints, totals that follow from the faults).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab.lab import Lab, LabConfig  # noqa: E402

DATA = REPO / "tests" / "data"
PLAYBOOK_TIMEOUT_S = 300
SLOT = int(os.environ.get("NETCHECK_RECORD_SLOT", "211"))


def netns(namespace, *argv):
    subprocess.run(["ip", "netns", "exec", namespace, *argv], check=True, timeout=30)


def drop_port(host, port, target="DROP", source=None):
    """DROP (or REJECT with an ICMP port unreachable) TCP to host's port, from everyone or from source."""
    match = ["-s", source.ip] if source else []
    extra = ["--reject-with", "icmp-port-unreachable"] if target == "REJECT" else []
    netns(host.namespace, "iptables", "-A", "INPUT", "-p", "tcp", *match, "--dport", str(port), "-j", target, *extra)


def drop_icmp(host, source=None, every=None):
    """DROP echo requests to host: from everyone or from source; all of them or the 1st of every N."""
    match = ["-s", source.ip] if source else []
    nth = ["-m", "statistic", "--mode", "nth", "--every", str(every), "--packet", "0"] if every else []
    netns(host.namespace, "iptables", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", *match, *nth,
          "-j", "DROP")


def flush(hosts):
    for host in hosts:
        netns(host.namespace, "iptables", "-F", "INPUT")


def run_check(inventory, workdir, name):
    """check.yml on the inventory; its report.json copied to tests/data/<name>."""
    report_dir = workdir / name.replace(".json", "")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
            str(REPO / "check.yml"), "-e", "netcheck_report_dir=%s" % report_dir]
    done = subprocess.run(argv, cwd=REPO, timeout=PLAYBOOK_TIMEOUT_S, capture_output=True, text=True,
                          check=False)  # the exit status is printed; the report decides
    print("%s: ansible-playbook exited %s" % (name, done.returncode))
    reports = sorted(report_dir.glob("*/report.json"))  # one timestamped directory per run
    if len(reports) != 1:
        sys.stderr.write(done.stdout[-12000:] + done.stderr[-4000:])
        raise SystemExit("%s: no report.json written" % name)
    shutil.copyfile(reports[0], DATA / name)


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab makes network namespaces")
    workdir = Path(tempfile.mkdtemp(prefix="ncrec-"))
    config = LabConfig(name="ncrec", subnet="10.77.%d.0/24" % SLOT, subnet6="fd6e:6574:6368:%d::/64" % SLOT,
                       state_dir=workdir / "lab", inventory_path=workdir / "lab.yml")
    lab = Lab(config)
    try:
        lab.up(3)
        h1, h2, h3 = hosts = lab.hosts(3)
        base = lab.inventory(hosts)

        full = copy.deepcopy(base)
        full["all"]["children"]["lab"]["hosts"][h1.name]["netcheck_tcp_targets"] = [
            {"host": h2.ip, "port": 9, "expected": "open", "name": "h2-closed"},
            {"host": h3.ip, "port": 22, "expected": "filtered", "name": "h3-open"},
        ]
        (workdir / "faults.yml").write_text(yaml.safe_dump(full))
        drop_port(h2, config.web_port)
        drop_port(h3, config.web_port, "REJECT", source=h1)
        drop_icmp(h1, source=h3)
        drop_icmp(h1, source=h2, every=3)
        drop_icmp(h2, source=h3)
        run_check(workdir / "faults.yml", workdir, "lab_run_faults.json")
        flush(hosts)

        partial = copy.deepcopy(base)
        partial["all"]["children"]["lab"]["hosts"][h3.name]["ansible_python_interpreter"] = "/nonexistent/python3"
        (workdir / "partial.yml").write_text(yaml.safe_dump(partial))
        drop_port(h2, config.web_port)
        drop_icmp(h1)
        run_check(workdir / "partial.yml", workdir, "lab_run_partial_mesh.json")
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
