"""The fault matrix: every fault made for real in the lab, each probe's verdict, reason and time.

Faults are iptables rules inside the target host's namespace and misbehaving servers
(faultserver.py) bound to its address; every rule and process is removed at teardown.
The probes run in-process inside the source host's namespace (one Python per group of
faults, so the suite stays fast), and a few run over SSH through the real modules to
prove the same path. Every row asserts the state, words of the reason, and that the
verdict came within the timeout plus a small margin.

scripts/reliability_table.py turns the rows recorded here into docs/reliability.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, netns

MODULE_UTILS = str(REPO / "module_utils")
FAULT_SERVER = str(Path(__file__).with_name("faultserver.py"))
BASE = 9100  # faultserver ports: BASE + 0 .. 6
SILENT, TRICKLE_HEADERS, TRICKLE_BODY, CLOSE_MID, PLAIN_ON_TLS, REDIRECT_LOOP, REGEX_BOMB = (BASE + i for i in range(7))
TIMEOUT = 2.0
MARGIN_S = 0.6  # what a verdict may take beyond its timeout (process start, a loaded 2-core machine)
# Rows recorded for docs/reliability.md when NETCHECK_FAULT_TABLE names a file (scripts/reliability_table.py).
RECORD = os.environ.get("NETCHECK_FAULT_TABLE")

RUNNER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from netcheck import http, icmp, tcp
from netcheck.neighbour import next_hops
kind, raw, options = json.loads(sys.stdin.read())
start = time.monotonic()
if kind == "tcp":
    results = tcp.check_targets(tcp.parse_targets(raw, options.get("timeout", 3.0)), options.get("max_workers", 4096),
                                confirm_budget=options.get("confirm_budget", 10.0))
elif kind == "http":
    budget = options.pop("confirm_budget", 10.0)
    results = http.check_urls(http.parse_targets(raw, options), options.pop("max_workers", 256), budget)
else:
    results = icmp.ping_targets(icmp.parse_targets(raw), neighbours=next_hops, **options)[0]
print(json.dumps({"results": results, "elapsed_s": time.monotonic() - start}))
"""


def probe(namespace, kind, raw, **options):
    """Run a probe in-process inside a lab host's namespace: (results, elapsed seconds)."""
    proc = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", RUNNER, MODULE_UTILS],
                          input=json.dumps([kind, raw, options]), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    return document["results"], document["elapsed_s"]


def record(fault, probe_name, result, timeout):
    """Keep one row of the fault table (only when asked, for scripts/reliability_table.py)."""
    if not RECORD:
        return
    row = {"fault": fault, "probe": probe_name, "state": result["state"], "error": result["error"],
           "total_ms": result["timings"].get("total_ms"), "timeout_s": timeout,
           "detail": {k: result["detail"].get(k) for k in ("icmp_type", "icmp_code", "icmp_from", "phase",
                                                           "loss_pct", "sent", "received")
                      if k in result["detail"]}}
    with open(RECORD, "a") as handle:
        handle.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def rules(dst):
    """Module-wide iptables/ip6tables rules in the target host; all deleted at teardown."""
    added = []

    def add(command, *rule):
        netns(dst.namespace, command, "-w", "-I", *rule)
        added.append((command, rule))

    yield add
    for command, rule in reversed(added):
        netns(dst.namespace, command, "-w", "-D", *rule, check=False)


@pytest.fixture(scope="module")
def fault_server(dst):
    """The misbehaving servers, on the target host's address, for at most 10 minutes."""
    proc = subprocess.Popen(["ip", "netns", "exec", dst.namespace, sys.executable, FAULT_SERVER, dst.ip, str(BASE),
                             "600"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline().strip()
        assert line == "ready", "the fault server did not start"
        yield dst.ip
    finally:
        proc.terminate()
        proc.wait(10)


def unassigned6(lab):
    return str(lab.config.network6.network_address + 0x250)


# --- TCP: every way a SYN can fail ---------------------------------------------------------------

REJECTS = [
    # (port, --reject-with, state, icmp type, icmp code, words in the reason)
    (9201, "icmp-port-unreachable", "rejected", 3, 3, "port unreachable from"),
    (9202, "icmp-host-prohibited", "rejected", 3, 10, "host administratively prohibited from"),
    (9203, "icmp-admin-prohibited", "rejected", 3, 13, "administratively prohibited from"),
    (9204, "tcp-reset", "closed", None, None, "RST"),
]


@pytest.fixture(scope="module")
def reject_rules(rules, dst):
    for port, reject_with, *_ in REJECTS:
        rules("iptables", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", reject_with)
    rules("ip6tables", "INPUT", "-p", "tcp", "--dport", "9203", "-j", "REJECT", "--reject-with",
          "icmp6-adm-prohibited")
    rules("ip6tables", "INPUT", "-p", "tcp", "--dport", "9201", "-j", "REJECT", "--reject-with",
          "icmp6-port-unreachable")
    return dst


def test_every_icmp_reject_is_rejected_with_its_evidence_and_an_rst_is_closed(src, reject_rules):
    dst = reject_rules
    raw = [{"host": dst.ip, "port": port} for port, *_ in REJECTS]
    raw += [{"host": dst.ip, "port": 9}]  # nothing listens: the kernel's RST
    raw += [{"host": dst.ip6, "port": 9203}, {"host": dst.ip6, "port": 9201}]
    results, elapsed = probe(src.namespace, "tcp", raw, timeout=TIMEOUT)
    for (port, reject_with, state, kind, code, words), result in zip(REJECTS, results):
        assert result["state"] == state, result
        assert words in result["error"]
        assert (result["detail"]["icmp_type"], result["detail"]["icmp_code"]) == (kind, code)
        if kind is not None:
            assert result["detail"]["icmp_from"] == dst.ip
        assert result["timings"]["total_ms"] < 500  # an answer, not a timeout
        record("REJECT --reject-with %s" % reject_with, "port_check", result, TIMEOUT)
    closed, v6_admin, v6_port = results[len(REJECTS):]
    assert closed["state"] == "closed" and "RST" in closed["error"]
    record("closed port (RST)", "port_check", closed, TIMEOUT)
    # a remote ICMPv6 admin-prohibited is the target's firewall, not "this host's own firewall"
    assert v6_admin["state"] == "rejected", v6_admin
    assert (v6_admin["detail"]["icmp_type"], v6_admin["detail"]["icmp_code"]) == (1, 1)
    assert v6_admin["detail"]["icmp_from"] == dst.ip6 and "own firewall" not in v6_admin["error"]
    record("IPv6 REJECT icmp6-adm-prohibited", "port_check", v6_admin, TIMEOUT)
    assert (v6_port["state"], v6_port["detail"]["icmp_code"]) == ("rejected", 4)
    record("IPv6 REJECT icmp6-port-unreachable", "port_check", v6_port, TIMEOUT)
    assert elapsed < 1.5


def test_a_reject_by_the_source_hosts_own_firewall_says_so(src, dst, iptables_rules):
    iptables_rules(src.namespace, "OUTPUT", "-p", "tcp", "--dport", "9250", "-j", "REJECT")
    (result,), _ = probe(src.namespace, "tcp", [{"host": dst.ip, "port": 9250}], timeout=TIMEOUT)
    assert result["state"] == "rejected"
    assert "from this host itself (its own firewall" in result["error"]
    assert result["detail"]["icmp_from"] == src.ip
    record("REJECT in the source host's own OUTPUT chain", "port_check", result, TIMEOUT)


def test_twenty_ports_behind_one_reject_rule_are_rejected_only_with_their_own_icmp_answer(src, rules, dst):
    # the target rate-limits its ICMP errors: most SYNs get no answer at first. Each silent port is
    # probed again, paced; with a 3 s budget some are confirmed and the rest stay filtered, never
    # rejected on a neighbour's word
    rules("iptables", "INPUT", "-p", "tcp", "--dport", "9300:9319", "-j", "REJECT")
    raw = [{"host": dst.ip, "port": port} for port in range(9300, 9320)]
    results, elapsed = probe(src.namespace, "tcp", raw, timeout=TIMEOUT, confirm_budget=3.0)
    assert {r["state"] for r in results} <= {"rejected", "filtered"}, [r["state"] for r in results]
    for result in results:
        record_ = result["detail"]["outcome"]
        if result["state"] == "rejected":
            assert record_["confirmed"] and record_["answers"] == 1 and record_["icmp_from"] == dst.ip
        else:
            assert (record_["reason"], record_["answers"], record_["confirmed"]) == ("no_answer", 0, False)
    confirmed = [r for r in results if r["detail"]["outcome"]["probes"] > 1 and r["state"] == "rejected"]
    assert confirmed, "no silent port was confirmed by a paced re-probe"
    assert elapsed < TIMEOUT + 3.0 + TIMEOUT + MARGIN_S  # the budget plus one window at most
    record("20 ports behind one REJECT rule (rate-limited ICMP; %d confirmed by re-probes in a 3 s budget)"
           % len(confirmed), "port_check", confirmed[-1], TIMEOUT)


def test_drop_unassigned_addresses_silence_and_a_regex_bomb(src, lab, rules, dst, fault_server):
    rules("iptables", "INPUT", "-p", "tcp", "--dport", "9400", "-j", "DROP")
    raw = [
        {"host": dst.ip, "port": 9400},
        {"host": lab.config.unassigned_ip, "port": 22},
        {"host": unassigned6(lab), "port": 22},
        {"host": dst.ip, "port": SILENT, "expect": "^220 "},
        {"host": dst.ip, "port": REGEX_BOMB, "expect": r"^(a+)+$"},
    ]
    results, elapsed = probe(src.namespace, "tcp", raw, timeout=TIMEOUT)
    dropped, gone4, gone6, silent, bomb = results
    assert dropped["state"] == "filtered" and "no answer within 2 s" in dropped["error"]
    assert TIMEOUT * 1000 * 0.95 <= dropped["timings"]["total_ms"] <= (TIMEOUT + MARGIN_S) * 1000
    record("DROP", "port_check", dropped, TIMEOUT)
    assert gone4["state"] == "unreachable" and "no ARP answer" in gone4["error"], gone4
    record("unassigned IPv4 address", "port_check", gone4, TIMEOUT)
    assert gone6["state"] == "unreachable" and "NDP" in gone6["error"], gone6
    assert gone6["timings"]["total_ms"] <= (TIMEOUT + MARGIN_S) * 1000
    record("unassigned IPv6 address", "port_check", gone6, TIMEOUT)
    assert (silent["state"], silent["detail"]["expect_matched"]) == ("open", False)
    assert "was not seen within 2 s" in silent["error"]
    record("accepts and never speaks (expect)", "port_check", silent, TIMEOUT)
    assert bomb["state"] == "open" and bomb["detail"]["regex_timed_out"] is True
    assert "still searching" in bomb["error"]
    record("backtracking expect regex", "port_check", bomb, TIMEOUT)
    # connect and expect each get a timeout: nothing here may take longer than both
    assert elapsed < 2 * TIMEOUT + MARGIN_S


def test_1024_filtered_targets_at_the_defaults_get_their_verdict_in_about_one_timeout(ansible, src, rules, dst):
    rules("iptables", "INPUT", "-p", "tcp", "--dport", "10000:11023", "-j", "DROP")
    targets = [{"host": dst.ip, "port": port, "expected": "filtered"} for port in range(10000, 11024)]
    run = ansible.module(src.name, "port_check", {"targets": targets, "timeout": TIMEOUT})
    result = run.result(src.name)
    assert not result.get("failed"), result.get("msg")
    assert result["summary"]["states"] == {"filtered": 1024}
    assert result["elapsed_ms"] < (TIMEOUT + 1.5) * 1000


# --- HTTP: servers that misbehave -------------------------------------------------------------------

def test_http_faults_fail_in_their_phase_within_the_timeout(hosts, lab, dst, fault_server, reject_rules):
    # from the third host: the target rate-limits ICMP errors per peer, and the TCP tests above
    # spent the source host's share (that case has its own test)
    src = hosts[2]
    base = "http://%s:%%d/" % dst.ip
    raw = [
        {"url": base % SILENT},
        {"url": base % TRICKLE_HEADERS},
        {"url": base % TRICKLE_BODY, "method": "GET"},
        {"url": base % CLOSE_MID, "method": "GET"},
        {"url": "https://%s:%d/" % (dst.ip, PLAIN_ON_TLS)},
        {"url": base % REDIRECT_LOOP},
        {"url": "http://%s:8080/" % lab.config.unassigned_ip},
        {"url": base % 9201},  # REJECT icmp-port-unreachable
    ]
    results, elapsed = probe(src.namespace, "http", raw, timeout=TIMEOUT)
    expected = [
        ("accepts and never answers", "processing", "no response within 2 s"),
        ("trickles its headers", "transfer", "headers incomplete"),
        ("trickles its body", "transfer", "body incomplete"),
        ("closes mid-response", "transfer", "bad HTTP answer"),
        ("plain text on a TLS port", "tls", "handshake failed"),
        ("redirect loop", "redirect", "more than 10 redirects"),
        ("unassigned IPv4 address", "connect", "unreachable: no ARP answer"),
        ("REJECT icmp-port-unreachable", "connect", "rejected: port unreachable from %s" % dst.ip),
    ]
    for (fault, phase, words), result in zip(expected, results):
        assert (result["state"], result["detail"]["phase"]) == ("failed", phase), result
        assert words in result["error"], result["error"]
        if phase != "redirect":  # every hop of a redirect gets its own timeout
            assert result["timings"]["total_ms"] <= (TIMEOUT + MARGIN_S) * 1000, (fault, result["timings"])
        record(fault, "http_check", result, TIMEOUT)
    assert elapsed < 11 * TIMEOUT


# --- ICMP: loss and silence ---------------------------------------------------------------------------

def test_thirty_percent_icmp_loss_reads_between_15_and_45_percent(src, iptables_rules, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-m", "statistic",
                   "--mode", "random", "--probability", "0.3", "-j", "DROP")
    (result,), elapsed = probe(src.namespace, "icmp", [dst.ip], count=40, interval=0.02, timeout=1.0)
    assert 15 <= result["detail"]["loss_pct"] <= 45, result["detail"]["loss_pct"]
    assert result["detail"]["sent"] == 40
    assert elapsed < 39 * 0.02 + 1.0 + MARGIN_S + 1.0
    record("ICMP loss 30% (40 echoes)", "icmp_ping", result, 1.0)


def test_all_icmp_dropped_is_unreachable_after_count_times_interval_plus_timeout(src, iptables_rules, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP")
    (result,), _ = probe(src.namespace, "icmp", [dst.ip], count=3, interval=0.2, timeout=1.0)
    assert result["state"] == "unreachable" and result["detail"]["received"] == 0
    assert result["timings"]["total_ms"] <= (2 * 0.2 + 1.0 + MARGIN_S) * 1000
    record("ICMP all dropped", "icmp_ping", result, 1.0)


def test_an_unresolvable_name_is_its_own_dns_error_and_the_others_are_pinged(src, dst):
    results, _ = probe(src.namespace, "icmp", [dst.ip, "no-such-host.invalid"], count=1, interval=0.1, timeout=1.0)
    assert [r["state"] for r in results] == ["ok", "dns_error"]
    assert "does not resolve" in results[1]["error"]
    record("unresolvable name among good targets", "icmp_ping", results[1], 1.0)


def test_unassigned_ipv6_is_unreachable_over_ssh_too(ansible, lab, src):
    # the same engine through the real module: NDP's failure, not a firewall's silence
    run = ansible.module(src.name, "port_check", {"targets": [{"host": unassigned6(lab), "port": 22}], "timeout": 1})
    entry = run.result(src.name)["results"][0]
    assert entry["state"] == "unreachable" and "NDP" in entry["error"]
    assert ipaddress.ip_address(entry["detail"]["address"]) == ipaddress.ip_address(unassigned6(lab))


# The fuzz suite (tests/unit/test_module_fuzz.py) drives each module's main() in-process; these few
# cases prove that the same bad input takes the same path over SSH: a failure naming the field,
# no traceback, nothing changed on the host.
BAD_OVER_SSH = [
    ("port_check", {"targets": [{"host": "10.0.0.1", "port": 70000}]}, "targets[0].port"),
    ("port_check", {"targets": [{"host": "a b", "port": 22}]}, "targets[0].host"),
    ("icmp_ping", {"targets": [{"host": "127.0.0.1", "colour": 1}]}, "colour"),
    ("http_check", {"urls": [{"url": "ftp://x/"}]}, "urls[0]"),
    ("net_diagnose", {"targets": [{"host": "127.0.0.1", "ports": [{"port": 0}]}]}, "targets[0].ports[0].port"),
    ("packet_capture", {"state": "captured", "filter": "tcp port", "duration": 1}, "filter"),
    ("port_forward", {"forwards": [{"from_port": 80, "to_port": 99999}]}, "to_port"),
    ("conn_limits", {"ports": ["x"]}, "ports"),
]


@pytest.mark.parametrize("module, args, field", BAD_OVER_SSH, ids=[case[0] for case in BAD_OVER_SSH])
def test_bad_input_over_ssh_fails_naming_the_field_and_changes_nothing(ansible, src, module, args, field):
    before = netns(src.namespace, "iptables-save").stdout.splitlines()
    result = ansible.module(src.name, module, args).result(src.name)
    assert result.get("failed") is True, result
    assert field in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert not result.get("changed")
    after = netns(src.namespace, "iptables-save").stdout.splitlines()
    assert [l for l in after if not l.startswith("#")] == [l for l in before if not l.startswith("#")]
