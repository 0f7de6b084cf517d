"""The confirmation scheduler (tcp.Schedule), on a fake clock: when a silent port of a host that
rate-limits its ICMP errors is probed again, and when it is not. The real re-probes against real
rejects and drops: tests/integration/test_verdict_matrix.py."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import tcp

V4, V6 = socket.AF_INET, socket.AF_INET6
INTERVAL4 = tcp.RATE_LIMIT_INTERVAL["ipv4"] * 1.05 + tcp.PACING_MARGIN
INTERVAL6 = tcp.RATE_LIMIT_INTERVAL["ipv6"] * 1.05 + tcp.PACING_MARGIN


def flow(address="10.0.0.2", port=1, family=V4, timeout=2.0):
    return tcp.Flow(address, family, (address, port), timeout)


def seen_at(when, *addresses, rtt=0.001, family=V4):
    seen = tcp.IcmpSeen(clock=lambda: when)
    for address in addresses:
        seen.saw(address, family, rtt, when)
    return seen


def test_a_run_without_icmp_errors_schedules_nothing():
    flows = [flow(port=p) for p in range(5)]
    schedule = tcp.Schedule(flows, tcp.IcmpSeen(), 10.0, now=100.0)
    assert schedule.hosts == {} and schedule.next_wake() is None and schedule.due(100.0) == []
    assert [f.probes for f in flows] == [1] * 5


def test_confirmer_without_candidates_opens_no_socket_and_returns_at_once(monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("a socket was opened")
    monkeypatch.setattr(socket, "socket", no_socket)
    flows = [flow(address="10.0.0.9")]
    assert tcp.Confirmer(flows, seen_at(0.0, "10.0.0.2"), 10.0).run() == flows
    assert flows[0].state is None and flows[0].probes == 1


def test_a_zero_budget_turns_confirmation_off():
    schedule = tcp.Schedule([flow()], seen_at(0.0, "10.0.0.2"), 0.0, now=5.0)
    assert schedule.hosts == {}


def test_the_first_reprobe_waits_one_rate_limit_interval_after_the_hosts_last_icmp_error():
    schedule = tcp.Schedule([flow()], seen_at(10.0, "10.0.0.2"), 10.0, now=10.5)
    assert schedule.due(10.5) == []
    assert schedule.next_wake() == pytest.approx(10.0 + INTERVAL4)
    assert len(schedule.due(10.0 + INTERVAL4)) == 1


def test_ipv6_is_paced_by_its_shorter_interval():
    schedule = tcp.Schedule([flow("fd00::2", family=V6)], seen_at(10.0, "fd00::2", family=V6), 10.0, now=10.0)
    assert schedule.next_wake() == pytest.approx(10.0 + INTERVAL6)
    assert INTERVAL6 < 0.2 < INTERVAL4


def test_one_probe_in_flight_per_host_and_hosts_run_side_by_side():
    flows = [flow("10.0.0.2", 1), flow("10.0.0.2", 2), flow("10.0.0.3", 1)]
    schedule = tcp.Schedule(flows, seen_at(0.0, "10.0.0.2", "10.0.0.3"), 10.0, now=2.0)
    sent = schedule.due(2.0)
    assert sorted((f.address, f.sockaddr[1]) for f in sent) == [("10.0.0.2", 1), ("10.0.0.3", 1)]
    assert schedule.due(2.01) == []  # 10.0.0.2 port 2 waits for port 1's answer or window


def test_an_icmp_answer_confirms_rejected_and_the_next_probe_waits_for_a_new_token():
    first, second = flow(port=1), flow(port=2)
    schedule = tcp.Schedule([first, second], seen_at(0.0, "10.0.0.2"), 10.0, now=2.0)
    (sent,) = schedule.due(2.0)
    icmp = {"type": 3, "code": 3, "from": "10.0.0.2", "family": V4}
    schedule.answered(sent, 2.001, "rejected", "icmp_unreach", 111, icmp)
    assert (first.state, first.reason, first.probes, first.answers) == ("rejected", "icmp_unreach", 2, 1)
    assert schedule.due(2.5) == []
    assert schedule.next_wake() == pytest.approx(2.001 + INTERVAL4)
    assert schedule.due(2.001 + INTERVAL4) == [second]


def test_silence_spends_no_token_the_next_probe_goes_at_once():
    first, second = flow(port=1), flow(port=2)
    schedule = tcp.Schedule([first, second], seen_at(0.0, "10.0.0.2"), 10.0, now=2.0)
    schedule.due(2.0)
    window = tcp.MIN_WINDOW
    assert schedule.expired(2.0 + window - 0.001) == []
    assert schedule.expired(2.0 + window) == [first]
    schedule.silent(first, 2.0 + window)
    assert schedule.due(2.0 + window) == [first]  # its second silent re-probe, at once
    schedule.silent(first, 2.0 + 2 * window)
    assert schedule.due(2.0 + 2 * window) == [second]
    assert (first.state, first.probes, first.answers, first.silent) == (None, 1 + tcp.REPROBES, 0, tcp.REPROBES)
    assert first.spent == pytest.approx(2 * window)


def test_the_window_follows_the_hosts_fastest_icmp_answer_within_the_timeout():
    slow = tcp.Schedule([flow(timeout=5.0)], seen_at(0.0, "10.0.0.2", rtt=0.2), 10.0, now=0.0)
    assert next(iter(slow.hosts.values())).window == pytest.approx(0.8)
    capped = tcp.Schedule([flow(timeout=0.5)], seen_at(0.0, "10.0.0.2", rtt=0.2), 10.0, now=0.0)
    assert next(iter(capped.hosts.values())).window == pytest.approx(0.5)


def test_when_the_budget_ends_the_rest_stays_unconfirmed_and_nothing_more_is_sent():
    flows = [flow(port=p) for p in range(10)]
    schedule = tcp.Schedule(flows, seen_at(0.0, "10.0.0.2"), 3.0, now=1.0)
    now = 1.0
    icmp = {"type": 3, "code": 3, "from": "10.0.0.2", "family": V4}
    while True:
        wake = schedule.next_wake()
        if wake is None:
            break
        now = max(now, wake)
        for sent in schedule.due(now):
            schedule.answered(sent, now + 0.001, "rejected", "icmp_unreach", 111, icmp)
    answered = [f for f in flows if f.state == "rejected"]
    assert 1 <= len(answered) <= int(3.0 / INTERVAL4) + 1
    assert all(f.probes == 1 and f.state is None for f in flows if f not in answered)
    assert now <= 1.0 + 3.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=12),
       st.floats(min_value=0.0, max_value=8.0))
def test_rejected_only_ever_comes_from_an_answer_for_that_flow_and_the_host_is_never_probed_twice_at_once(
        ports, budget):
    """Drive the schedule against a fake host whose ports either reject (when it has a token) or drop."""
    flows = [flow("10.0.0.%d" % (host + 2), index) for index, (host, _) in enumerate(ports)]
    rejects = {id(f): rejecting for f, (_, rejecting) in zip(flows, ports)}
    schedule = tcp.Schedule(flows, seen_at(0.0, *{f.address for f in flows}), budget, now=0.5)
    tokens = {}  # host -> time its last ICMP error went out
    now, steps = 0.5, 0
    while steps < 1000:
        steps += 1
        wake = schedule.next_wake()
        if wake is None:
            break
        now = max(now, wake)
        for sent in schedule.due(now):
            assert sum(1 for h in schedule.hosts.values() if h.in_flight is sent) == 1
            last = tokens.get(sent.address, 0.0)
            if rejects[id(sent)] and now - last >= tcp.RATE_LIMIT_INTERVAL["ipv4"]:
                tokens[sent.address] = now
                schedule.answered(sent, now, "rejected", "icmp_unreach", 111,
                                  {"type": 3, "code": 3, "from": sent.address, "family": V4})
        for expired in schedule.expired(now):
            schedule.silent(expired, now)
    assert steps < 1000
    for f in flows:
        if f.state == "rejected":
            assert rejects[id(f)] and f.answers == 1 and f.probes >= 2
        else:
            assert f.state is None and f.answers == 0
            if not rejects[id(f)] and budget >= 5.0 and len(flows) <= 3:
                assert f.probes == 1 + tcp.REPROBES
        # with a token surely there at every send, every rejecting port that was probed is confirmed
        if rejects[id(f)] and f.probes > 1:
            assert f.state == "rejected"


def test_a_slow_answer_to_a_retransmitted_syn_does_not_stretch_the_window():
    seen = seen_at(0.0, "10.0.0.2", rtt=0.001)
    seen.saw("10.0.0.2", V4, 1.007, 1.0)  # answered the kernel's SYN retransmission, a second later
    assert seen.get("10.0.0.2")["rtt"] == pytest.approx(0.001)
    assert seen.get("10.0.0.2")["last"] == 1.0
    schedule = tcp.Schedule([flow()], seen, 10.0, now=2.0)
    assert next(iter(schedule.hosts.values())).window == tcp.MIN_WINDOW


def test_targets_answered_by_one_router_share_its_token_bucket_and_so_one_queue():
    seen = tcp.IcmpSeen()
    seen.saw("10.0.1.2", V4, 0.002, 5.0, sender="10.0.0.254")
    seen.saw("10.0.1.3", V4, 0.002, 6.0, sender="10.0.0.254")
    seen.saw("10.0.2.2", V4, 0.002, 5.0)  # answered by itself
    flows = [flow("10.0.1.2", 1), flow("10.0.1.3", 1), flow("10.0.2.2", 1)]
    schedule = tcp.Schedule(flows, seen, 10.0, now=7.0)
    assert sorted(schedule.hosts) == ["10.0.0.254", "10.0.2.2"]
    # the router's last error (6.0) paces both of its targets
    assert schedule.hosts["10.0.0.254"].ready_at == pytest.approx(6.0 + INTERVAL4)
    sent = schedule.due(6.0 + INTERVAL4)
    assert sorted(f.address for f in sent) == ["10.0.1.2", "10.0.2.2"]  # one per sender
