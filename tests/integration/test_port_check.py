"""port_check over SSH against lab hosts: every state made for real."""

from __future__ import annotations

import errno
import socket

import pytest

TIMEOUT = 2.0


def check(ansible, source, targets, **options):
    """Run port_check on ``source``; return (task result, results by target)."""
    run = ansible.module(source.name, "port_check", dict(targets=targets, **options))
    result = run.result(source.name)
    return result, result.get("results", [])


def test_sshd_and_web_ports_are_open(ansible, src, dst):
    result, (ssh, web) = check(ansible, src, [{"host": dst.ip, "port": 22}, {"host": dst.ip, "port": 8080}])
    assert not result.get("failed"), result["msg"]
    for entry, port in ((ssh, 22), (web, 8080)):
        assert entry["state"] == "open" and entry["ok"] is True
        assert entry["target"] == "%s:%d" % (dst.ip, port)
        assert entry["detail"]["address"] == dst.ip
        assert entry["detail"]["local_address"] == src.ip
        assert 0 < entry["timings"]["connect_ms"] < 1000
    assert result["summary"] == {"total": 2, "ok": 2, "failed": 0, "states": {"open": 2}}


def test_closed_port_is_reported_closed_well_under_the_timeout(ansible, src, dst):
    result, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 9, "timeout": TIMEOUT}])
    assert result["failed"] is True  # expected open by default
    assert entry["state"] == "closed"
    assert entry["detail"]["errno"] == errno.ECONNREFUSED
    assert entry["detail"]["errno_name"] == "ECONNREFUSED"
    assert entry["timings"]["total_ms"] < TIMEOUT * 1000 * 0.2
    assert "RST" in entry["error"]
    assert "%s:9" % dst.ip in result["msg"]


def test_dropped_port_is_filtered_after_about_the_timeout(ansible, iptables_rules, src, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9999", "-j", "DROP")
    result, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 9999, "timeout": TIMEOUT,
                                             "expected": "filtered"}])
    assert not result.get("failed"), result["msg"]
    assert entry["state"] == "filtered" and entry["ok"] is True
    assert TIMEOUT * 1000 * 0.95 <= entry["timings"]["total_ms"] <= TIMEOUT * 1000 * 1.5


def test_unassigned_lab_address_is_unreachable(ansible, lab, src):
    result, (entry,) = check(ansible, src, [{"host": lab.config.unassigned_ip, "port": 22, "timeout": 6,
                                             "expected": "unreachable"}])
    assert not result.get("failed"), result["msg"]
    assert entry["state"] == "unreachable"
    assert entry["detail"]["errno"] == errno.EHOSTUNREACH
    # ARP gives up after about 3 s, well before the 6 s timeout
    assert 1000 < entry["timings"]["total_ms"] < 5500


def test_unassigned_address_is_unreachable_even_before_arp_gives_up(ansible, lab, src):
    # a timeout shorter than the ~3 s ARP takes to fail: the unanswered ARP entry tells
    # "nobody has this address" apart from "a firewall drops the SYN"
    address = str(lab.config.network.network_address + 249)
    result, (entry,) = check(ansible, src, [{"host": address, "port": 22, "timeout": 1}])
    assert result["failed"] is True  # expected open
    assert entry["state"] == "unreachable" and entry["detail"]["errno"] is None
    assert entry["error"].startswith("no ARP answer for %s" % address)
    assert 900 <= entry["timings"]["total_ms"] <= 1500


def test_send_expect_reads_the_sshd_banner(ansible, src, dst):
    result, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 22, "expect": r"^SSH-2\.0-"}])
    assert not result.get("failed"), result["msg"]
    assert entry["detail"]["expect_matched"] is True
    assert entry["detail"]["banner"].startswith("SSH-2.0-OpenSSH")
    assert entry["timings"]["expect_ms"] > 0


def test_send_then_expect_an_http_status_line(ansible, src, dst):
    request = "HEAD / HTTP/1.0\r\n\r\n"
    _, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 8080, "send": request,
                                        "expect": r"^HTTP/1\.[01] 200"}])
    assert entry["ok"] is True
    assert "X-Lab-Host: %s" % dst.name in entry["detail"]["banner"]


def test_expect_that_never_matches_fails_the_target_but_keeps_it_open(ansible, src, dst):
    result, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 22, "expect": "^NOT-SSH", "timeout": 1}])
    assert result["failed"] is True
    assert entry["state"] == "open"
    assert entry["ok"] is False
    assert entry["detail"]["expect_matched"] is False
    assert "^NOT-SSH" in entry["error"]


def test_ipv6_and_host_names_work(ansible, src, dst):
    result, (v6, by_name, local) = check(ansible, src, [
        {"host": dst.ip6, "port": 22},
        {"host": dst.name, "port": 8080, "family": "ipv4"},  # from the lab host's /etc/hosts
        {"host": "localhost", "port": 8080},  # the source host's own web server
    ])
    assert not result.get("failed"), result["msg"]
    assert v6["state"] == "open" and v6["detail"]["family"] == "ipv6"
    assert v6["target"] == "[%s]:22" % dst.ip6
    assert by_name["state"] == "open" and by_name["detail"]["address"] == dst.ip
    assert local["state"] == "open"


def test_name_that_does_not_resolve_is_a_dns_error(ansible, src):
    # the lab host's resolver is its own loopback: the lookup never leaves the namespace
    result, (entry,) = check(ansible, src, [{"host": "no-such-host.invalid", "port": 80,
                                             "expected": "dns_error"}])
    assert not result.get("failed"), result["msg"]
    assert entry["state"] == "dns_error"
    assert entry["detail"]["address"] is None


def test_task_fails_when_any_target_misses_and_still_lists_every_target(ansible, src, dst):
    result, entries = check(ansible, src, [
        {"host": dst.ip, "port": 22},
        {"host": dst.ip, "port": 9, "expected": "closed"},
        {"host": dst.ip, "port": 8080, "expected": "closed"},
    ])
    assert result["failed"] is True
    assert [e["state"] for e in entries] == ["open", "closed", "open"]
    assert [e["ok"] for e in entries] == [True, True, False]
    assert result["summary"]["failed"] == 1
    assert result["msg"].startswith("1 of 3 targets missed their expectation")
    assert "%s:8080" % dst.ip in result["msg"]


def test_check_mode_probes_too_and_changes_nothing(ansible, src, dst):
    run = ansible.module(src.name, "port_check", {"targets": [{"host": dst.ip, "port": 22}]}, check=True)
    result = run.result(src.name)
    assert result["changed"] is False
    assert result["results"][0]["state"] == "open"


def test_200_filtered_targets_take_about_one_timeout_not_200(ansible, iptables_rules, src, dst):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "20000:20199", "-j", "DROP")
    targets = [{"host": dst.ip, "port": port, "expected": "filtered"} for port in range(20000, 20200)]
    result, entries = check(ansible, src, targets, timeout=TIMEOUT)
    assert not result.get("failed"), result["msg"]
    assert len(entries) == 200 and {e["state"] for e in entries} == {"filtered"}
    # one after another this would take 200 x TIMEOUT
    assert result["elapsed_ms"] < 3 * TIMEOUT * 1000


@pytest.fixture
def controller_listener(lab):
    """A listener on the controller's lab address: proves whether anything connected to it."""
    server = socket.socket()
    server.bind((lab.config.controller_ip, 0))
    server.listen(16)
    server.setblocking(False)
    yield server
    server.close()


BAD_INPUT = [
    ({"host": "{ip}", "port": 0}, "targets[1].port: 0 is not a port"),
    ({"host": "{ip}", "port": 70000}, "targets[1].port: 70000 is not a port"),
    ({"host": "", "port": 22}, "targets[1].host"),
    ({"host": "bad host", "port": 22}, "targets[1].host"),
    ({"host": "x;touch /tmp/pwned", "port": 22}, "targets[1].host"),
    ({"host": "$(id)", "port": 22}, "targets[1].host"),
    ({"host": "{ip}", "port": 22, "timeout": 0}, "targets[1].timeout"),
    ({"host": "{ip}", "port": 22, "timeout": -1}, "targets[1].timeout"),
    ({"host": "{ip}", "port": 22, "expect": "(unclosed"}, "targets[1].expect"),
    ({"host": "{ip}", "port": "ssh"}, "port"),
    ({"host": "{ip}", "port": 22, "expected": "half-open"}, "expected"),
]


@pytest.mark.parametrize("bad, message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_fails_naming_the_field_and_connects_nowhere(ansible, lab, src, controller_listener, bad, message):
    listener_port = controller_listener.getsockname()[1]
    bad = {k: (v.format(ip=lab.config.controller_ip) if isinstance(v, str) else v) for k, v in bad.items()}
    result, entries = check(ansible, src, [{"host": lab.config.controller_ip, "port": listener_port}, bad])
    assert result["failed"] is True
    assert message in result["msg"]
    assert entries == []
    with pytest.raises(BlockingIOError):  # nobody connected to the valid first target
        controller_listener.accept()


def test_expected_state_is_still_taken_as_expected_and_the_result_says_expected(ansible, src, dst):
    """expected_state, the option's first name, is a deprecated alias: same verdict, one key back."""
    result, (old, new) = check(ansible, src, [{"host": dst.ip, "port": 9, "expected_state": "closed"},
                                              {"host": dst.ip, "port": 9, "expected": "closed"}])
    assert not result.get("failed"), result.get("msg")
    for entry in (old, new):
        assert entry["state"] == "closed" and entry["ok"] is True
        assert entry["detail"]["expected"] == "closed" and "expected_state" not in entry["detail"]
    # both given: Ansible's alias rule hands the module the alias's value (docs/results.md says so)
    both, (entry,) = check(ansible, src, [{"host": dst.ip, "port": 9, "expected_state": "closed", "expected": "open"}])
    assert not both.get("failed") and entry["detail"]["expected"] == "closed"
