"""Verdicts you can trust (issue 18): every fault a firewall makes, IPv4 and IPv6, through the real
port_check and http_check over SSH, each port's state, reason and ICMP evidence asserted, and nmap
(-sS -Pn --reason, in a lab namespace) as the oracle for every port. The faults are iptables rules
inside the target's namespace, removed at teardown (verdict_faults.py lists them).

nmap runs from the third lab host, port_check from the first: a target rate-limits its ICMP errors
per destination, so the oracle and the module under test never spend each other's tokens."""

from __future__ import annotations

import shutil
import time

import pytest

from verdict_faults import (
    MIXED_DROP, MIXED_REJECT, RATE_DROP, RATE_REJECT, V4_FAULTS, V6_FAULTS, add_rules, agrees, nmap_states,
    undo_rules,
)

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def faults(dst):
    added = add_rules(dst.namespace)
    yield dst
    undo_rules(dst.namespace, added)


@pytest.fixture(scope="module")
def oracle_host(hosts):
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed (the oracle)")
    return hosts[2]


def _expected_rows(dst):
    """(address, port, state, reason, icmp type, icmp code) of every matrix port, mixed ports included."""
    rows = []
    for address, faults, code in ((dst.ip, V4_FAULTS, 3), (dst.ip6, V6_FAULTS, 4)):
        rows += [(address, port, state, reason, kind, icmp_code)
                 for port, _, _, state, reason, kind, icmp_code in faults]
        rows += [(address, port, "filtered", "no_answer", None, None) for port in MIXED_DROP]
        rows += [(address, port, "rejected", "icmp_unreach", 3 if code == 3 else 1, code) for port in MIXED_REJECT]
    return rows


def _port_check(ansible, source, targets, **options):
    options.setdefault("timeout", TIMEOUT)
    run = ansible.module(source.name, "port_check", dict(targets=targets, **options), timeout=600)
    result = run.result(source.name)
    assert "results" in result, result
    return result


@pytest.fixture(scope="module")
def matrix(ansible, src, faults):
    dst = faults
    rows = _expected_rows(dst)
    targets = [{"host": address, "port": port, "expected": state} for address, port, state, *_ in rows]
    result = _port_check(ansible, src, targets)
    return rows, result


def test_every_fault_of_the_matrix_has_its_state_reason_and_icmp_evidence(matrix, faults):
    rows, result = matrix
    assert not result.get("failed"), result.get("msg")
    for (address, port, state, reason, kind, code), entry in zip(rows, result["results"]):
        record = entry["detail"]["outcome"]
        where = "%s port %d: %s" % (address, port, entry)
        assert (entry["state"], record["reason"]) == (state, reason), where
        assert (record["icmp_type"], record["icmp_code"]) == (kind, code), where
        assert (entry["detail"]["icmp_type"], entry["detail"]["icmp_code"]) == (kind, code), where
        if kind is not None:
            assert record["icmp_from"] == address and entry["detail"]["icmp_from"] == address, where
            assert record["confirmed"] is True and record["answers"] == 1, where
        if reason == "no_answer":
            # the host answered other ports with ICMP errors: the silent port was probed again,
            # paced, and stayed silent; silence is never confirmed
            assert record["confirmed"] is False and record["answers"] == 0, where
            assert record["probes"] == 3, where


def test_a_reject_with_host_unreachable_from_the_target_is_rejected_not_unreachable(matrix, faults):
    rows, result = matrix
    (entry,) = [e for (address, port, *_), e in zip(rows, result["results"])
                if address == faults.ip and port == 9503]
    assert entry["state"] == "rejected" and entry["ok"] is True  # expected: rejected
    assert entry["detail"]["outcome"]["icmp_from"] == faults.ip


def test_drop_ports_next_to_reject_ports_of_the_same_host_are_filtered_and_rejected_respectively(matrix, faults):
    rows, result = matrix
    by_port = {(address, port): entry for (address, port, *_), entry in zip(rows, result["results"])}
    for address in (faults.ip, faults.ip6):
        assert [by_port[address, port]["state"] for port in MIXED_DROP] == ["filtered"] * 3
        assert [by_port[address, port]["state"] for port in MIXED_REJECT] == ["rejected"] * 3


def test_expected_filtered_accepts_every_reject_and_a_drop_as_nmap_does(ansible, src, faults):
    dst = faults
    targets = [{"host": dst.ip, "port": port, "expected": "filtered"}
               for port, _, _, state, *_ in V4_FAULTS if state in ("filtered", "rejected")]
    result = _port_check(ansible, src, targets)
    assert not result.get("failed"), result.get("msg")
    assert set(result["summary"]["states"]) <= {"filtered", "rejected"}


def test_nmap_agrees_with_port_check_on_every_port_of_the_matrix(matrix, faults, oracle_host):
    rows, result = matrix
    disagreements = []
    for address in (faults.ip, faults.ip6):
        entries = {port: entry for (row_address, port, *_), entry in zip(rows, result["results"])
                   if row_address == address}
        nmap = nmap_states(oracle_host.namespace, address, sorted(entries))
        for port, entry in sorted(entries.items()):
            if not agrees(entry, nmap[port]):
                disagreements.append((address, port, entry["state"], entry["detail"]["outcome"]["reason"], nmap[port]))
    assert not disagreements, disagreements


def test_http_connects_get_the_same_outcome_as_port_check(ansible, src, faults):
    dst = faults
    rows = [row for row in _expected_rows(dst) if row[1] != 22]  # sshd does not speak HTTP
    urls = [{"url": "http://%s:%d/" % ("[%s]" % address if ":" in address else address, port)}
            for address, port, *_ in rows]
    run = ansible.module(src.name, "http_check", {"urls": urls, "timeout": TIMEOUT}, timeout=600)
    results = run.result(src.name)["results"]
    for (address, port, state, reason, kind, code), entry in zip(rows, results):
        record = entry["detail"]["outcome"]
        where = "%s port %d: %s" % (address, port, entry)
        assert (entry["state"], entry["detail"]["phase"], record["phase"]) == ("failed", "connect", "connect"), where
        assert record["reason"] == reason, where
        assert (record["icmp_type"], record["icmp_code"]) == (kind, code), where
        if kind is not None:
            assert record["icmp_from"] == address, where
        if reason == "no_answer":
            assert (record["probes"], record["answers"], record["confirmed"]) == (3, 0, False), where


def test_fifty_rejects_and_five_drops_of_one_ipv6_host_rate_limited_agree_with_nmap(ansible, src, faults,
                                                                                    oracle_host):
    # The one slow case: the target rate-limits its ICMPv6 errors, so most REJECT ports get no
    # answer at first; each is probed again, paced, until its own ICMP error comes
    dst = faults
    ports = RATE_REJECT + RATE_DROP
    targets = [{"host": dst.ip6, "port": port, "expected": "rejected" if port in RATE_REJECT else "filtered"}
               for port in ports]
    start = time.monotonic()
    result = _port_check(ansible, src, targets, confirm_budget=30)
    elapsed = time.monotonic() - start
    states = [entry["state"] for entry in result["results"]]
    assert not result.get("failed"), (result.get("msg"), states)
    reprobed = [e for e in result["results"] if e["detail"]["outcome"]["probes"] > 1 and e["state"] == "rejected"]
    assert reprobed, "no rejected port needed a re-probe: the case did not hit the rate limit"
    for port, entry in zip(ports, result["results"]):
        record = entry["detail"]["outcome"]
        if port in RATE_REJECT:
            assert (record["reason"], record["icmp_code"], record["icmp_from"], record["confirmed"]) == (
                "icmp_unreach", 4, dst.ip6, True), entry
        else:
            assert (record["reason"], record["probes"], record["answers"]) == ("no_answer", 3, 0), entry
    nmap = nmap_states(oracle_host.namespace, dst.ip6, ports)
    disagreements = [(port, entry["state"], nmap[port]) for port, entry in zip(ports, result["results"])
                     if not agrees(entry, nmap[port])]
    assert not disagreements, disagreements
    assert elapsed < 60


def test_each_dropped_target_reports_its_own_time_not_the_wait_for_the_engine(ansible, src, faults):
    # ten DROP ports, one socket at a time: each verdict took its own second, not the run's ten
    dst = faults
    targets = [{"host": dst.ip, "port": port, "expected": "filtered"} for port in (RATE_DROP + MIXED_DROP)[:8]]
    targets += [{"host": dst.ip6, "port": port, "expected": "filtered"} for port in MIXED_DROP[:2]]
    result = _port_check(ansible, src, targets, max_workers=1, timeout=1)
    assert not result.get("failed"), result.get("msg")
    totals = [entry["timings"]["total_ms"] for entry in result["results"]]
    assert all(950 <= total <= 1500 for total in totals), totals
    assert all(entry["detail"]["outcome"]["verdict_ms"] == entry["timings"]["total_ms"] for entry in result["results"])
    assert result["elapsed_ms"] >= 10 * 950  # they did run one after the other
