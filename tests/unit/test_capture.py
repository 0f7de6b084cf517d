"""packet_capture's pure parts: filters, validation, argv, tcpdump's counts (no root, no tcpdump)."""

from __future__ import annotations

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.capture import (
    build_filter, capture_argv, compile_argv, first_host, parse_tcpdump_counts, route_interface,
    validate_bounds, validate_file_name, validate_id, validate_interface, validate_snaplen,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import InputError


@pytest.mark.parametrize("spec, bpf", [
    (None, ""),
    ("tcp port 80 and host 10.0.0.5", "tcp port 80 and host 10.0.0.5"),
    ({"host": "10.0.0.5"}, "host 10.0.0.5"),
    ({"port": 80}, "port 80"),
    ({"port": "8000-8080"}, "portrange 8000-8080"),
    ({"net": "192.168.0.7/16"}, "net 192.168.0.0/16"),
    ({"proto": "icmp"}, "icmp"),
    ({"host": "10.0.0.5", "port": 5432, "proto": "tcp"}, "(tcp) and (host 10.0.0.5) and (port 5432)"),
    ({"host": "fd00::2", "direction": "dst"}, "dst host fd00::2"),
    ({"host": ["10.0.0.5", "10.0.0.6"], "proto": "tcp"}, "(tcp) and ((host 10.0.0.5 or host 10.0.0.6))"),
    ({"net": ["10.1.0.0/16"]}, "net 10.1.0.0/16"),
    ({"or": [{"proto": "tcp", "port": 80}, {"proto": "icmp"}]}, "((tcp) and (port 80)) or (icmp)"),
    ({"and": [{"net": "10.0.0.0/8"}, {"not": {"port": 22}}]}, "(net 10.0.0.0/8) and (not (port 22))"),
])
def test_structured_filters_become_bpf(spec, bpf):
    assert build_filter(spec) == bpf


@pytest.mark.parametrize("spec, message", [
    ({"hots": "10.0.0.5"}, "filter: unknown key 'hots'"),
    ({"port": 70000}, r"filter.port: 70000 is out of range"),
    ({"port": "80; rm -rf /"}, "filter.port"),
    ({"net": "10.0.0.0/33"}, "filter.net: '10.0.0.0/33' is not a network"),
    ({"host": ["10.0.0.1", "a b"]}, r"filter.host\[1\]: 'a b' is not a host"),
    ({"host": []}, "filter.host: an empty list"),
    ({"proto": "tcpp"}, "filter.proto: 'tcpp' is not one of"),
    ({"or": [{"port": 80}, {"host": "-w /etc/passwd"}]}, r"filter.or\[1\].host"),
    ({"or": []}, "filter.or: a non-empty list"),
    ({"and": [{"port": 1}], "port": 2}, "filter: 'and' must be alone"),
    ({"direction": "src"}, "filter.direction: applies to host, net or port"),
    ("-w /tmp/x.pcap", "starts with '-'"),
    (["port 80"], "a BPF expression .string. or a mapping"),
])
def test_bad_filters_name_the_field(spec, message):
    with pytest.raises(InputError, match=message):
        build_filter(spec)


def test_first_host_of_a_filter_chooses_the_interface():
    assert first_host({"or": [{"proto": "icmp"}, {"and": [{"net": "10.1.0.0/16"}, {"port": 1}]}]}) == "10.1.0.0"
    assert first_host({"port": 80}) is None
    assert first_host({"host": ["10.2.0.1", "10.2.0.2"]}) == "10.2.0.1"
    assert first_host("host 10.0.0.1") is None


@pytest.mark.parametrize("args, message", [
    ((-1, 10, 4096), "duration: -1 is out of range"),
    ((0, 10, 4096), "duration: 0 is out of range"),
    ((86401, 10, 4096), "duration: 86401 is out of range"),
    ((10, -5, 4096), "max_packets: -5 is out of range"),
    ((10, 10 ** 12, 4096), "max_packets: 1000000000000 is out of range"),
    ((10, 10, 100), "max_bytes: 100 is out of range"),
    ((10, 10, 2 ** 40), "max_bytes: 1099511627776 is out of range"),
    ((True, 10, 4096), "duration: True is not a whole number"),
])
def test_bounds_out_of_range_name_the_field(args, message):
    with pytest.raises(InputError, match=message):
        validate_bounds(*args)


def test_bounds_in_range_are_kept():
    assert validate_bounds(1, 1, 1024) == {"duration": 1, "max_packets": 1, "max_bytes": 1024}


@pytest.mark.parametrize("name", ["/tmp/x.pcap", "../x.pcap", "a/b.pcap", "x.txt", ".hidden.pcap", "", "x..pcap"])
def test_file_names_that_are_paths_are_refused(name):
    with pytest.raises(InputError, match="file_name: .* must be a plain file name"):
        validate_file_name(name)


@pytest.mark.parametrize("value", ["../etc", "a/b", "", "x" * 65, "-x"])
def test_bad_ids_are_refused(value):
    with pytest.raises(InputError, match="^id: "):
        validate_id(value)


def test_interface_must_exist_or_be_any():
    assert validate_interface("any") == "any"
    assert validate_interface("lo") == "lo"
    with pytest.raises(InputError, match="interface: no interface 'nosuch0' on this host"):
        validate_interface("nosuch0")
    with pytest.raises(InputError, match="interface: .* is not an interface name"):
        validate_interface("eth0; reboot")


def test_snaplen_range():
    assert validate_snaplen(96) == 96
    with pytest.raises(InputError, match="snaplen: 0 is out of range"):
        validate_snaplen(0)


def test_argv_lists_are_exact():
    assert compile_argv("eth0", 96, "port 80") == ["tcpdump", "-d", "-i", "eth0", "-s", "96", "--", "port 80"]
    assert compile_argv("any", 96, "") == ["tcpdump", "-d", "-i", "any", "-s", "96", "--"]
    assert capture_argv("eth0", 262144, 10, "/var/tmp/netcheck-capture/x/eth0.pcap", "icmp") == [
        "tcpdump", "-i", "eth0", "-s", "262144", "-c", "10", "-w", "/var/tmp/netcheck-capture/x/eth0.pcap",
        "-U", "--immediate-mode", "-n", "-Z", "root", "--", "icmp"]


def test_tcpdump_counts_are_parsed():
    text = ("tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "12 packets captured\n15 packets received by filter\n3 packets dropped by kernel\n")
    assert parse_tcpdump_counts(text) == {"captured": 12, "received_by_filter": 15, "dropped_by_kernel": 3,
                                          "dropped_by_interface": None}
    assert parse_tcpdump_counts("")["captured"] is None


def test_route_interface_reads_ip_route_get():
    seen = []

    def runner(argv):
        seen.append(argv)
        return 0, "10.0.0.2 dev ens5 src 10.0.0.1 uid 0 \n    cache \n", ""

    assert route_interface("10.0.0.2", runner) == "ens5"
    assert seen == [["ip", "route", "get", "10.0.0.2"]]
    with pytest.raises(InputError, match="targets\\[0\\]: no route to 10.0.0.9"):
        route_interface("10.0.0.9", lambda argv: (2, "", "RTNETLINK answers: Network is unreachable"))


def test_the_pcap_goes_to_the_user_sudo_ran_for(monkeypatch):
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.capture import resolve_owner
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_UID", "1234")
    monkeypatch.setenv("SUDO_GID", "2345")
    assert resolve_owner() == (1234, 2345)
    assert resolve_owner("0") == (0, 0)
    with pytest.raises(InputError, match="owner: no user 'no-such-user-here'"):
        resolve_owner("no-such-user-here")
    monkeypatch.delenv("SUDO_UID")
    import os
    assert resolve_owner() == (os.getuid(), os.getgid())
