"""check.yml end to end on a 4-host lab: one net_diagnose run per source, the matrix, the failing
pairs, the asymmetric pairs, the totals, report.json, the exit-code contract, a source that cannot
run (sshd stopped) and a full accept queue named as such. Faults are made for real and undone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness import BIN, REPO, netns
from verdict_lab import HOSTS, QUEUE_PORT, accept_queue_filled, grown_lab

ALL = ["link", "network", "transport", "application"]


@pytest.fixture(scope="module")
def four(lab):
    with grown_lab(lab, HOSTS) as hosts:
        yield hosts


@pytest.fixture
def full_accept_queue(four):
    with accept_queue_filled(four[2], QUEUE_PORT) as target:
        yield target


def _check(lab, *extra, timeout=300):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "check.yml",
                           "-e", "netcheck_tcp_timeout=1", "-e", "netcheck_report_dir=%s" % _check.report_dir,
                           *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    proc.elapsed = time.monotonic() - started
    return proc


def _latest_report():
    reports = sorted(Path(_check.report_dir).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())


def _matrix(stdout, hosts):
    """{source: [cells]} from the printed matrix."""
    rows = {}
    lines = stdout.splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("matrix (rows: sources")][-1]
    for line in lines[start + 2:start + 2 + len(hosts)]:
        # a cell never holds a space (".", "-", "!", "FLT", "FLT+1", "los")
        name, *cells = line.split()
        rows[name] = cells
    return rows


@pytest.fixture(scope="module", autouse=True)
def report_dir(tmp_path_factory):
    _check.report_dir = str(tmp_path_factory.mktemp("reports"))


def test_check_yml_with_no_fault_exits_zero_and_every_cell_is_ok(four, lab):
    proc = _check(lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _matrix(proc.stdout, four)
    for i, source in enumerate(four):
        assert rows[source.name] == ["." if j != i else "-" for j in range(len(four))], proc.stdout
    assert "totals: 12 pairs, 12 ok, 0 failed, 0 sources not run" in proc.stdout
    run = _latest_report()
    assert run["schema_version"] == 1 and run["totals"]["by_code"] == {"OK": 12}
    assert [s["status"] for s in run["sources"]] == ["ran"] * 4
    assert all(p["checked"] == ALL for p in run["pairs"])
    print("check.yml on %d hosts, no fault: %.1f s" % (len(four), proc.elapsed))


def test_check_yml_with_two_faults_prints_the_16_cell_matrix_and_the_asymmetric_pairs(four, lab, iptables_rules):
    h1, h2, h3, h4 = four
    iptables_rules(h2.namespace, "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    iptables_rules(h4.namespace, "INPUT", "-s", h1.ip, "-p", "tcp", "--dport", "22", "-j", "REJECT",
                   "--reject-with", "tcp-reset")
    proc = _check(lab)
    assert proc.returncode != 0, proc.stdout
    rows = _matrix(proc.stdout, four)
    # the DROP on 8080 fails two checks of each pair to h2: the port and the URL on it (FLT+1)
    assert rows == {
        h1.name: ["-", "FLT+1", ".", "CLS"],
        h2.name: [".", "-", ".", "."],
        h3.name: [".", "FLT+1", "-", "."],
        h4.name: [".", "FLT+1", ".", "-"],
    }, proc.stdout
    assert "FAIL %s -> %s (%s): PORT_FILTERED [transport]" % (h1.name, h2.name, h2.ip) in proc.stdout
    assert "     tcp/8080 PORT_FILTERED: tcp %s:8080: filtered, expected open" % h2.ip in proc.stdout
    assert "     http http://%s:8080/ PORT_FILTERED: " % h2.ip in proc.stdout
    assert "FAIL %s -> %s (%s): PORT_CLOSED [transport]" % (h1.name, h4.name, h4.ip) in proc.stdout
    # ASYMMETRIC names the check that works one way and fails the other
    assert "ASYMMETRIC tcp/22: %s -> %s as expected, %s -> %s fails (PORT_CLOSED)" % (
        h4.name, h1.name, h1.name, h4.name) in proc.stdout
    assert "ASYMMETRIC tcp/8080: %s -> %s as expected, %s -> %s fails (PORT_FILTERED)" % (
        h2.name, h1.name, h1.name, h2.name) in proc.stdout
    run = _latest_report()
    assert sorted(map(tuple, run["asymmetric"])) == sorted([(h2.name, h1.name), (h2.name, h3.name),
                                                            (h2.name, h4.name), (h4.name, h1.name)])
    assert {k: run["totals"][k] for k in ("pairs", "ok", "failed", "sources_not_run", "by_code")} == {
        "pairs": 12, "ok": 8, "failed": 4, "sources_not_run": 0,
        "by_code": {"OK": 8, "PORT_FILTERED": 3, "PORT_CLOSED": 1}}
    # one failing pair is enough to fail the run; fail_on_mismatch=false only reports it
    netns(h2.namespace, "iptables", "-w", "-D", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    one = _check(lab, "--tags", "tcp")
    assert one.returncode != 0, one.stdout
    assert "totals: 12 pairs, 11 ok, 1 failed, 0 sources not run" in one.stdout, one.stdout
    run = _latest_report()
    assert all(p["layers"]["icmp"] is None and p["layers"]["http"] == [] for p in run["pairs"]), \
        "--tags tcp checks the ports only"
    only_report = _check(lab, "-e", "netcheck_fail_on_mismatch=false", "--tags", "tcp")
    assert only_report.returncode == 0, only_report.stdout + only_report.stderr
    assert "totals: 12 pairs, 11 ok, 1 failed" in only_report.stdout


def _stop_sshd(host):
    """Stop the host's sshd and its sessions (so no ControlPersist master survives), bounded."""
    pids = subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True, check=False).stdout.split()
    sshd = [int(p) for p in pids if _is_sshd(p)]
    for pid in sshd:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # a session that ended on its own meanwhile
    deadline = time.monotonic() + 10
    while any(_is_sshd(pid) for pid in sshd) and time.monotonic() < deadline:
        time.sleep(0.05)


def _is_sshd(pid):
    """Whether the process is an sshd (False once it is gone: a pid can vanish between two reads)."""
    try:
        return b"sshd" in Path("/proc/%s/cmdline" % pid).read_bytes()
    except OSError:
        return False


def _module_running(host):
    """A module's python (pipelined: a bare interpreter reading stdin) runs in the host's namespace;
    the lab's own servers run python with a script."""
    for pid in subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True, text=True, check=False).stdout.split():
        try:
            argv = Path("/proc/%s/cmdline" % pid).read_bytes().split(b"\0")
        except OSError:
            continue
        if b"python" in argv[0] and not any(arg.endswith(b".py") or arg == b"-m" for arg in argv[1:]):
            return True
    return False


@pytest.fixture
def stopped_sshd(four, lab):
    """The fourth host's sshd and its sessions stopped; restarted after."""
    _stop_sshd(four[3])
    try:
        yield four[3]
    finally:
        lab.up(HOSTS)  # starts sshd again and waits for port 22


def test_a_source_whose_sshd_dies_mid_run_is_the_only_row_that_could_not_run(four, lab, iptables_rules):
    # every source's net_diagnose lasts the TCP timeout (a port of the second host is dropped), so
    # the fourth host's sshd is killed while its module runs
    drop = ("INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    iptables_rules(four[1].namespace, *drop)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    victim = four[3]
    try:
        with subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "check.yml",
                               "-e", "netcheck_tcp_timeout=6", "-e", "netcheck_report_dir=%s" % _check.report_dir,
                               "--tags", "tcp"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            seen = []
            for line in proc.stdout:  # bounded: the playbook ends (timeout 6 s per source, then the report)
                seen.append(line)
                if "Diagnose every target from this host" in line:
                    break
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _module_running(victim):
                time.sleep(0.05)
            assert _module_running(victim), "net_diagnose never started on %s" % victim.name
            _stop_sshd(victim)
            stdout = "".join(seen) + proc.stdout.read()
            returncode = proc.wait(timeout=300)
    finally:
        netns(four[1].namespace, "iptables", "-w", "-D", *drop, check=False)  # up waits for every web port
        lab.up(HOSTS)
    assert returncode != 0
    rows = _matrix(stdout, four)
    assert rows[victim.name] == ["!"] * 4, stdout
    run = _latest_report()
    (source,) = [s for s in run["sources"] if s["name"] == victim.name]
    assert source["status"] in ("unreachable", "failed") and source["error"]
    assert run["totals"]["sources_not_run"] == 1
    for other in four[:3]:  # every other source's results are complete: one pair per other host
        pairs = [p for p in run["pairs"] if p["source"] == other.name]
        assert sorted(p["target"] for p in pairs) == sorted(h.name for h in four if h is not other)
        assert [p["verdict"]["code"] for p in pairs if p["target"] == four[1].name] in (
            [], ["PORT_FILTERED"]), pairs


def test_a_source_whose_sshd_is_stopped_is_a_row_that_could_not_run_and_a_full_queue_is_named(
        four, lab, stopped_sshd, full_accept_queue):
    down, queued = stopped_sshd, full_accept_queue
    extra = json.dumps({"netcheck_tcp_targets": [{"host": queued.ip, "port": QUEUE_PORT, "name": queued.name}],
                        "netcheck_limit_ports": [22, 8080, QUEUE_PORT]})
    proc = _check(lab, "-e", extra, "--tags", "tcp,limits")
    assert proc.returncode != 0
    rows = _matrix(proc.stdout, four)
    assert rows[down.name] == ["!"] * 4, proc.stdout
    assert "NOT RUN %s (%s): unreachable" % (down.name, down.ip) in proc.stdout
    run = _latest_report()
    (source,) = [s for s in run["sources"] if s["name"] == down.name]
    assert source["status"] == "unreachable" and source["error"]
    assert run["totals"]["sources_not_run"] == 1
    # sources that reach the queued host time out on the full queue: the target's own limits say why
    for source in four[:2]:
        (pair,) = [p for p in run["pairs"] if p["source"] == source.name and p["target"] == queued.name]
        assert pair["verdict"]["code"] == "ACCEPT_QUEUE_FULL", pair["verdict"]
        assert "accept queue 2, backlog 1" in pair["verdict"]["evidence"][0]
