"""icmp_ping over SSH against lab hosts: real ICMP, real ARP/NDP, faults made with iptables."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from harness import REPO, netns


def ping(ansible, source, targets, **options):
    """Run icmp_ping on ``source``; returns (task result, results in target order)."""
    run = ansible.module(source.name, "icmp_ping", dict(targets=targets, **options))
    result = run.result(source.name)
    return result, result.get("results", [])


def rule_packets(namespace, chain, marker):
    """Packets counted by the iptables rule of ``chain`` whose listing contains ``marker``."""
    listing = netns(namespace, "iptables", "-w", "-L", chain, "-v", "-x", "-n").stdout
    for line in listing.splitlines():
        if marker in line:
            return int(line.split()[0])
    raise AssertionError("no rule with %r in %s:\n%s" % (marker, chain, listing))


def test_reachable_host_answers_every_echo_and_its_real_mac_is_the_neighbour(ansible, src, dst):
    # a source that has not talked to the target lately: the echo itself resolves the MAC
    netns(src.namespace, "ip", "neigh", "flush", "to", dst.ip)
    result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=3, interval=0.05)
    assert not result.get("failed"), result["msg"]
    detail = entry["detail"]
    assert entry["state"] == "ok" and entry["ok"] is True
    assert (detail["sent"], detail["received"], detail["loss_pct"]) == (3, 3, 0.0)
    assert len(detail["rtts_ms"]) == 3 and all(r > 0 for r in detail["rtts_ms"])
    assert 0 < detail["rtt_min_ms"] <= detail["rtt_avg_ms"] <= detail["rtt_max_ms"]
    assert detail["rtt_stddev_ms"] >= 0
    assert detail["ttl"] == 64
    assert detail["method"] == "raw" and result["method"] == "raw"
    assert detail["route"]["dev"] == "eth0" and detail["route"]["gateway"] is None
    assert detail["route"]["src"] == src.ip
    real_mac = json.loads(netns(dst.namespace, "ip", "-j", "link", "show", "dev", "eth0").stdout)[0]["address"]
    assert detail["neighbour"]["state"] == "REACHABLE"
    assert detail["neighbour"]["mac"] == real_mac
    assert detail["neighbour"]["ip"] == dst.ip and detail["neighbour"]["via_gateway"] is False
    assert detail["neighbour"]["source"] == "ip neigh"


def test_ipv6_target_is_pinged_and_its_ndp_neighbour_read(ansible, src, dst):
    result, (entry,) = ping(ansible, src, [{"host": dst.ip6}], count=2, interval=0.05)
    assert not result.get("failed"), result["msg"]
    assert entry["detail"]["family"] == "ipv6" and entry["detail"]["received"] == 2
    assert entry["detail"]["ttl"] == 64  # the hop limit
    assert entry["detail"]["neighbour"]["mac"] == dst.mac


def test_random_loss_injected_in_the_target_is_measured(ansible, iptables_rules, src, dst):
    rule = ("INPUT", "-p", "icmp", "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP")
    iptables_rules(dst.namespace, *rule)
    # 40 echoes at 30% loss land within 15-45% with ~97.5% probability; a second run
    # makes a spurious failure ~1 in 1600 (the exact count below is checked every time)
    for attempt in range(2):
        netns(dst.namespace, "iptables", "-w", "-Z", "INPUT")
        result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=40, interval=0.01, timeout=0.5)
        detail = entry["detail"]
        dropped = rule_packets(dst.namespace, "INPUT", "statistic")
        # what the module reports is exactly what the target's firewall dropped
        assert detail["sent"] == 40
        assert detail["received"] == 40 - dropped
        assert detail["loss_pct"] == pytest.approx(100.0 * dropped / 40, abs=0.01)
        if 15 <= detail["loss_pct"] <= 45:
            break
    assert 15 <= detail["loss_pct"] <= 45


def test_dropped_icmp_is_unreachable_and_lasts_count_times_interval_plus_timeout(ansible, iptables_rules, src, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "-j", "DROP")
    count, interval, timeout = 3, 0.2, 1.0
    result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=count, interval=interval, timeout=timeout)
    assert result["failed"] is True
    assert entry["state"] == "unreachable" and entry["ok"] is False
    assert entry["detail"]["loss_pct"] == 100.0
    assert entry["detail"]["rtt_avg_ms"] is None and entry["detail"]["rtt_stddev_ms"] is None
    expected_s = (count - 1) * interval + timeout
    assert expected_s <= entry["timings"]["total_ms"] / 1000 <= expected_s + 0.3
    # the same target expected to stay silent passes
    result, _ = ping(ansible, src, [{"host": dst.ip, "reachable": False}], count=1, timeout=0.3)
    assert not result.get("failed"), result["msg"]


def test_unassigned_address_is_unreachable_with_an_unresolved_neighbour(ansible, lab, src):
    result, (entry,) = ping(ansible, src, [{"host": lab.config.unassigned_ip}], count=2, interval=0.1, timeout=0.5)
    assert result["failed"] is True
    assert entry["state"] == "unreachable"
    assert entry["detail"]["neighbour"]["state"] in ("INCOMPLETE", "FAILED")
    assert entry["detail"]["neighbour"]["mac"] is None


def test_arp_failure_comes_back_as_an_icmp_host_unreachable_error(ansible, lab, src):
    # Linux gives up ARP after about 3 s and reports "host unreachable" for the queued echo
    netns(src.namespace, "ip", "neigh", "flush", "to", lab.config.unassigned_ip)
    result, (entry,) = ping(ansible, src, [{"host": lab.config.unassigned_ip}], count=1, timeout=5)
    errors = entry["detail"]["icmp_errors"]
    assert errors and errors[0]["message"] == "host unreachable" and errors[0]["type"] == 3
    assert errors[0]["from"] == src.ip
    assert entry["detail"]["neighbour"]["state"] == "FAILED"
    assert "host unreachable" in entry["error"]
    # the error ended the wait: no need to sit out the whole 5 s timeout
    assert entry["timings"]["total_ms"] < 4500


def test_target_behind_a_gateway_shows_the_gateway_mac(ansible, src, dst):
    # dst routes for an extra address it holds on its loopback; src reaches it through dst
    extra = "10.77.9.1"
    netns(dst.namespace, "ip", "addr", "add", extra + "/32", "dev", "lo")
    netns(src.namespace, "ip", "route", "add", "10.77.9.0/24", "via", dst.ip)
    try:
        result, (entry,) = ping(ansible, src, [{"host": extra}], count=2, interval=0.05)
    finally:
        netns(src.namespace, "ip", "route", "del", "10.77.9.0/24", check=False)
        netns(dst.namespace, "ip", "addr", "del", extra + "/32", "dev", "lo", check=False)
    assert not result.get("failed"), result["msg"]
    detail = entry["detail"]
    assert detail["route"]["gateway"] == dst.ip
    assert detail["neighbour"]["via_gateway"] is True
    assert detail["neighbour"]["ip"] == dst.ip
    assert detail["neighbour"]["mac"] == dst.mac


def test_replies_to_another_pinger_are_never_counted(ansible, iptables_rules, src, dst):
    # the target drops only OUR echoes (by their size); a second pinger, running at the same
    # time from the same host to the same target, gets every reply
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "-m", "length", "--length", "228", "-j", "DROP")
    other = subprocess.Popen(["ip", "netns", "exec", src.namespace, "ping", "-n", "-q", "-i", "0.01", "-c", "150",
                              "-s", "56", dst.ip], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=20, interval=0.02, timeout=0.3, size=200)
    finally:
        out, _ = other.communicate(timeout=30)
    assert "150 received" in out  # the other pinger did get its replies meanwhile
    assert entry["detail"]["received"] == 0 and entry["detail"]["duplicates"] == 0
    assert entry["state"] == "unreachable"


@pytest.fixture
def dgram_allowed(hosts):
    """Let every group use unprivileged ICMP sockets in one lab host (a per-namespace sysctl)."""
    host = hosts[2]
    key = "net.ipv4.ping_group_range"
    before = netns(host.namespace, "sysctl", "-n", key).stdout.split()
    netns(host.namespace, "sysctl", "-w", "%s=0 2147483647" % key)
    yield host
    netns(host.namespace, "sysctl", "-w", "%s=%s" % (key, " ".join(before)))


def test_each_method_works_when_forced(ansible, dst, src, dgram_allowed):
    for source, method in ((src, "raw"), (src, "system"), (dgram_allowed, "dgram")):
        result, (entry,) = ping(ansible, source, [{"host": dst.ip}], count=2, interval=0.05, method=method)
        assert not result.get("failed"), (method, result["msg"])
        assert result["method"] == method and entry["detail"]["method"] == method
        assert entry["detail"]["received"] == 2 and entry["detail"]["ttl"] == 64


def test_forced_dgram_fails_clearly_where_the_kernel_forbids_it(ansible, src, dst):
    result, entries = ping(ansible, src, [{"host": dst.ip}], method="dgram")
    assert result["failed"] is True and entries == []
    assert result["msg"].startswith("method dgram is not available here")
    assert "ping_group_range" in result["msg"]


def _probe_as_nobody(namespace, address):
    """Run the ICMP probe as an unprivileged user inside a lab host; returns (method, notes, received)."""
    code = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, %r)
        from netcheck.icmp import parse_targets, ping_targets
        results, method, notes = ping_targets(parse_targets([%r]), count=2, interval=0.05, timeout=1)
        print(json.dumps([method, notes, results[0]["detail"]["received"]]))
    """ % (str(REPO / "module_utils"), address))
    proc = netns(namespace, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "/usr/bin/python3", "-c", code)
    return json.loads(proc.stdout)


def test_auto_falls_back_and_says_which_method_it_used(dst, src, dgram_allowed):
    # unprivileged, with ping_group_range "1 0": raw and dgram refused, the system ping works
    method, notes, received = _probe_as_nobody(src.namespace, dst.ip)
    assert method == "system" and received == 2
    assert notes[0].startswith("raw:") and notes[1].startswith("dgram:")
    # unprivileged where ping_group_range admits every group: the dgram socket
    method, notes, received = _probe_as_nobody(dgram_allowed.namespace, dst.ip)
    assert method == "dgram" and received == 2
    assert len(notes) == 1 and notes[0].startswith("raw:")


BAD_INPUT = [
    ({"count": 0}, "count: 0"),
    ({"interval": -1}, "interval: -1"),
    ({"size": 65508}, "size: 65508"),
    ({"timeout": 0}, "timeout: 0"),
    ({"crit": {"loss_pct": 150}}, "crit.loss_pct"),
    ({"targets": [{"host": "{ip}"}, {"host": "10.0.0.1;reboot"}]}, "targets[1].host"),
    ({"targets": [{"host": "{ip}"}, {"host": "two words"}]}, "targets[1].host"),
]


@pytest.mark.parametrize("bad, message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_fails_naming_the_field_and_sends_nothing(ansible, iptables_rules, src, dst, bad, message):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "-s", src.ip, "-j", "ACCEPT")
    netns(dst.namespace, "iptables", "-w", "-Z", "INPUT")
    options = {"targets": [{"host": dst.ip}]}
    options.update(bad)
    options["targets"] = [{k: v.format(ip=dst.ip) for k, v in t.items()} for t in options["targets"]]
    targets = options.pop("targets")
    result, entries = ping(ansible, src, targets, **options)
    assert result["failed"] is True
    assert message in result["msg"]
    assert entries == []
    assert rule_packets(dst.namespace, "INPUT", src.ip) == 0  # not one echo reached the valid target


def test_crit_threshold_fails_the_task_and_warn_does_not(ansible, iptables_rules, src, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "-m", "statistic", "--mode", "nth", "--every", "2",
                   "--packet", "0", "-j", "DROP")  # exactly every other echo: 50% loss
    result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=10, interval=0.01, timeout=0.5,
                            warn={"loss_pct": 20})
    assert not result.get("failed") and entry["state"] == "warn" and entry["detail"]["loss_pct"] == 50.0
    result, (entry,) = ping(ansible, src, [{"host": dst.ip}], count=10, interval=0.01, timeout=0.5,
                            warn={"loss_pct": 20}, crit={"loss_pct": 40})
    assert result["failed"] is True and entry["state"] == "crit"
    assert "crit" in result["msg"]
