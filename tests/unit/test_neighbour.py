"""Unit tests of netcheck.neighbour: /proc parsers, and route / neighbour lookups through a fake
``run(argv)`` returning canned ``ip -j`` output (nothing is run, nothing is sent)."""

from __future__ import annotations


import json  # noqa: E402

import pytest  # noqa: E402

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import neighbour  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.neighbour import (  # noqa: E402
    default_run, neighbour_of, next_hop, parse_proc_arp, parse_proc_route, route_to,
)

# /proc/net/route of a host with a default route via 192.0.2.1 on eth0 and three on-link /24s
# (10.77.0.0/24, 10.77.1.0/24, 192.0.2.0/24): little-endian hex words, as the kernel prints them.
PROC_ROUTE = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT                                                       
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0                                                                               
nclab-br	00004D0A	00000000	0001	0	0	0	00FFFFFF	0	0	0                                                                           
nctest-br	00014D0A	00000000	0001	0	0	0	00FFFFFF	0	0	0                                                                          
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0                                                                               
"""

# no default route; 10.0.0.0/8 via 10.77.0.254 and 10.20.0.0/16 via 10.77.0.253 (gateway routes, flags 0003),
# 10.77.0.0/24 on link, and a route that is down (flags 0000)
PROC_ROUTE_NESTED = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
nclab-br	0000000A	FE004D0A	0003	0	0	0	000000FF	0	0	0
nclab-br	0000140A	FD004D0A	0003	0	0	0	0000FFFF	0	0	0
nclab-br	00004D0A	00000000	0001	0	0	0	00FFFFFF	0	0	0
eth9	0071CB00	00000000	0000	0	0	0	00FFFFFF	0	0	0
"""

PROC_ROUTE_DOWN_DEFAULT = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0002	0	0	0	00000000	0	0	0
"""

PROC_ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
10.77.0.12       0x1         0x2         42:71:41:4b:c5:20     *        nclab-br
10.77.0.99       0x1         0x0         00:00:00:00:00:00     *        nclab-br
"""


# --- /proc/net/route -------------------------------------------------------------------------

def test_proc_route_decodes_the_default_gateway_from_little_endian_hex():
    # 010200C0 is 192.0.2.1 (read backwards), not 1.2.0.192
    assert parse_proc_route(PROC_ROUTE, "8.8.8.8") == ("eth0", "192.0.2.1")


def test_proc_route_without_a_matching_route_gives_none_none():
    assert parse_proc_route(PROC_ROUTE_NESTED, "203.0.113.5") == (None, None)


def test_proc_route_ignores_routes_that_are_not_up():
    assert parse_proc_route(PROC_ROUTE_DOWN_DEFAULT, "8.8.8.8") == (None, None)


def test_proc_route_of_a_header_only_file_gives_none_none():
    assert parse_proc_route(PROC_ROUTE.splitlines()[0] + "\n", "8.8.8.8") == (None, None)


def test_proc_route_gives_an_on_link_target_its_interface_and_no_gateway():
    assert parse_proc_route(PROC_ROUTE, "10.77.0.12") == ("nclab-br", None)


def test_proc_route_prefers_the_longest_prefix_over_the_default_route():
    assert parse_proc_route(PROC_ROUTE, "192.0.2.1") == ("eth0", None)
    assert parse_proc_route(PROC_ROUTE, "10.77.1.11") == ("nctest-br", None)


def test_proc_route_prefers_the_longest_of_nested_prefixes():
    assert parse_proc_route(PROC_ROUTE_NESTED, "10.77.0.12") == ("nclab-br", None)
    assert parse_proc_route(PROC_ROUTE_NESTED, "10.20.3.4") == ("nclab-br", "10.77.0.253")
    assert parse_proc_route(PROC_ROUTE_NESTED, "10.99.3.4") == ("nclab-br", "10.77.0.254")


def test_proc_route_does_not_match_an_address_outside_the_prefix():
    # 5.0.0.10 is not in 10.77.0.0/24 nor in 10.0.0.0/8; the byte-swapped comparison says it is
    assert parse_proc_route(PROC_ROUTE_NESTED, "5.0.0.10") == (None, None)


# --- /proc/net/arp ---------------------------------------------------------------------------

def test_proc_arp_complete_entry_is_reachable_with_its_mac():
    assert parse_proc_arp(PROC_ARP, "192.0.2.1") == {"state": "REACHABLE", "mac": "02:fc:00:00:00:05", "dev": "eth0"}


def test_proc_arp_incomplete_entry_has_no_mac():
    assert parse_proc_arp(PROC_ARP, "10.77.0.99") == {"state": "INCOMPLETE", "mac": None, "dev": "nclab-br"}


def test_proc_arp_absent_address_gives_none():
    assert parse_proc_arp(PROC_ARP, "10.77.0.13") is None


def test_proc_arp_matches_the_whole_address_not_a_prefix():
    assert parse_proc_arp(PROC_ARP, "10.77.0.1") is None
    assert parse_proc_arp(PROC_ARP, "192.0.2.10") is None


def test_proc_arp_skips_the_header_line():
    assert parse_proc_arp(PROC_ARP, "IP") is None


# --- ip -j through a fake run ---------------------------------------------------------------------

ROUTE_ON_LINK = [{"dst": "10.77.0.12", "dev": "nclab-br", "prefsrc": "10.77.0.1", "flags": [], "uid": 0,
                  "cache": []}]
ROUTE_VIA_GATEWAY = [{"dst": "8.8.8.8", "gateway": "192.0.2.1", "dev": "eth0", "prefsrc": "192.0.2.2",
                      "flags": [], "uid": 0, "cache": []}]
ROUTE_LOCAL_V4 = [{"type": "local", "dst": "127.0.0.1", "dev": "lo", "prefsrc": "127.0.0.1", "flags": [],
                   "uid": 0, "cache": ["local"]}]
ROUTE_LOCAL_V6 = [{"type": "local", "dst": "::1", "from": "::", "dev": "lo", "table": "local",
                   "protocol": "kernel", "prefsrc": "::1", "metric": 0, "flags": [], "pref": "medium"}]
ROUTE_V6_VIA_GATEWAY = [{"dst": "2001:db8::5", "from": "::", "gateway": "fe80::1", "dev": "eth0",
                         "protocol": "ra", "prefsrc": "2001:db8::2", "metric": 1024, "flags": [], "pref": "medium"}]
# with "dev" on the command line, ip leaves the dev out of each entry
NEIGH_STALE = [{"dst": "10.77.0.12", "lladdr": "42:71:41:4b:c5:20", "state": ["STALE"]}]
NEIGH_GATEWAY = [{"dst": "192.0.2.1", "lladdr": "02:fc:00:00:00:05", "state": ["REACHABLE"]}]
NEIGH_V6_ROUTER = [{"dst": "fe80::1", "lladdr": "02:fc:00:00:00:05", "router": None, "state": ["DELAY"]}]
NEIGH_FAILED = [{"dst": "10.77.0.99", "state": ["FAILED"]}]

NOT_FOUND = (127, "", "ip: command not found")


class FakeRun(object):
    """run(argv) -> (rc, out, err) from canned answers keyed by the argv; records every call."""

    def __init__(self, answers=None, default=NOT_FOUND):
        self.answers = {tuple(argv): answer for argv, answer in (answers or {}).items()}
        self.default = default
        self.calls = []

    def __call__(self, argv):
        assert isinstance(argv, list), "argv must be a list, never a string: %r" % (argv,)
        assert all(isinstance(arg, str) for arg in argv)
        self.calls.append(argv)
        return self.answers.get(tuple(argv), self.default)


def ok(data):
    return 0, json.dumps(data), ""


def route_get(address):
    return ("ip", "-j", "route", "get", address)


def neigh_show(address, dev):
    return ("ip", "-j", "neigh", "show", "to", address, "dev", dev)


@pytest.fixture
def no_proc(monkeypatch):
    """Make the /proc fallback visible: any read fails the test unless a test sets canned files."""
    read = []

    def fake_read(path):
        read.append(path)
        return None

    monkeypatch.setattr(neighbour, "read_text", fake_read)
    return read


@pytest.fixture
def proc_files(monkeypatch):
    """Canned /proc/net/route and /proc/net/arp, and the list of paths read."""
    files = {"/proc/net/route": PROC_ROUTE, "/proc/net/arp": PROC_ARP}
    read = []

    def fake_read(path):
        read.append(path)
        return files.get(path)

    monkeypatch.setattr(neighbour, "read_text", fake_read)
    return read


def test_route_to_reads_dev_gateway_and_source_from_ip_route_get(no_proc):
    run = FakeRun({route_get("8.8.8.8"): ok(ROUTE_VIA_GATEWAY)})
    assert route_to("8.8.8.8", run) == {"dev": "eth0", "gateway": "192.0.2.1", "src": "192.0.2.2",
                                        "type": "unicast", "source": "ip route get", "error": None}
    assert run.calls == [["ip", "-j", "route", "get", "8.8.8.8"]]
    assert no_proc == []


def test_route_to_reports_the_error_of_ip_when_there_is_no_route(no_proc):
    run = FakeRun({route_get("10.99.0.1"): (2, "", "RTNETLINK answers: Network is unreachable\n")})
    route = route_to("10.99.0.1", run)
    assert route["error"] == "RTNETLINK answers: Network is unreachable"
    assert (route["dev"], route["gateway"], route["type"]) == (None, None, None)
    assert no_proc == []  # an error of ip is not a missing ip: no fallback


def test_route_to_reports_unparsable_ip_output():
    run = FakeRun({route_get("8.8.8.8"): (0, "not json", "")})
    assert route_to("8.8.8.8", run)["error"] == "unparsable output of ip -j route get 8.8.8.8"


def test_route_to_reports_no_route_when_ip_answers_an_empty_list(no_proc):
    run = FakeRun({route_get("8.8.8.8"): ok([])})
    route = route_to("8.8.8.8", run)
    assert route["dev"] is None and route["error"] == "no route"


def test_neighbour_of_reads_state_and_mac_and_passes_the_device():
    run = FakeRun({neigh_show("10.77.0.12", "nclab-br"): ok(NEIGH_STALE)})
    assert neighbour_of("10.77.0.12", "nclab-br", run) == {
        "ip": "10.77.0.12", "state": "STALE", "mac": "42:71:41:4b:c5:20", "dev": "nclab-br", "source": "ip neigh",
        "error": None}
    assert run.calls == [["ip", "-j", "neigh", "show", "to", "10.77.0.12", "dev", "nclab-br"]]


def test_neighbour_of_without_a_device_does_not_pass_dev():
    run = FakeRun({("ip", "-j", "neigh", "show", "to", "10.77.0.99"): ok(
        [dict(NEIGH_FAILED[0], dev="nclab-br")])})
    entry = neighbour_of("10.77.0.99", run=run)
    assert run.calls == [["ip", "-j", "neigh", "show", "to", "10.77.0.99"]]
    assert (entry["state"], entry["mac"], entry["dev"]) == ("FAILED", None, "nclab-br")


def test_neighbour_of_an_address_without_an_entry_is_state_none():
    run = FakeRun({neigh_show("10.77.0.13", "nclab-br"): ok([])})
    entry = neighbour_of("10.77.0.13", "nclab-br", run)
    assert (entry["ip"], entry["state"], entry["mac"], entry["error"]) == ("10.77.0.13", "NONE", None, None)


def test_neighbour_of_ignores_entries_for_other_addresses():
    run = FakeRun({neigh_show("10.77.0.13", "nclab-br"): ok(NEIGH_STALE)})
    assert neighbour_of("10.77.0.13", "nclab-br", run)["state"] == "NONE"


def test_next_hop_of_an_on_link_target_is_the_target_itself(no_proc):
    run = FakeRun({route_get("10.77.0.12"): ok(ROUTE_ON_LINK),
                   neigh_show("10.77.0.12", "nclab-br"): ok(NEIGH_STALE)})
    route, entry = next_hop("10.77.0.12", run)
    assert route["dev"] == "nclab-br" and route["gateway"] is None
    assert entry == {"ip": "10.77.0.12", "state": "STALE", "mac": "42:71:41:4b:c5:20", "dev": "nclab-br",
                     "source": "ip neigh", "error": None, "via_gateway": False}
    assert run.calls == [["ip", "-j", "route", "get", "10.77.0.12"],
                         ["ip", "-j", "neigh", "show", "to", "10.77.0.12", "dev", "nclab-br"]]


def test_next_hop_of_an_off_link_target_is_the_gateway(no_proc):
    run = FakeRun({route_get("8.8.8.8"): ok(ROUTE_VIA_GATEWAY),
                   neigh_show("192.0.2.1", "eth0"): ok(NEIGH_GATEWAY)})
    route, entry = next_hop("8.8.8.8", run)
    assert route["gateway"] == "192.0.2.1"
    assert entry == {"ip": "192.0.2.1", "state": "REACHABLE", "mac": "02:fc:00:00:00:05", "dev": "eth0",
                     "source": "ip neigh", "error": None, "via_gateway": True}
    assert run.calls == [["ip", "-j", "route", "get", "8.8.8.8"],
                         ["ip", "-j", "neigh", "show", "to", "192.0.2.1", "dev", "eth0"]]


def test_next_hop_of_an_ipv6_target_via_a_link_local_router():
    run = FakeRun({route_get("2001:db8::5"): ok(ROUTE_V6_VIA_GATEWAY),
                   neigh_show("fe80::1", "eth0"): ok(NEIGH_V6_ROUTER)})
    _, entry = next_hop("2001:db8::5", run)
    assert (entry["ip"], entry["state"], entry["via_gateway"]) == ("fe80::1", "DELAY", True)


@pytest.mark.parametrize("address, answer", [("127.0.0.1", ROUTE_LOCAL_V4), ("::1", ROUTE_LOCAL_V6)])
def test_next_hop_of_a_local_address_is_local_without_a_neighbour_lookup(address, answer):
    run = FakeRun({route_get(address): ok(answer)})
    route, entry = next_hop(address, run)
    assert route["type"] == "local" and route["dev"] == "lo"
    assert entry == {"ip": address, "state": "LOCAL", "mac": None, "dev": "lo", "source": "ip route get",
                     "error": None, "via_gateway": False}
    assert run.calls == [["ip", "-j", "route", "get", address]]


def test_next_hop_of_an_address_of_this_host_on_another_device_is_local():
    run = FakeRun({route_get("192.0.2.2"): ok([{"type": "local", "dst": "192.0.2.2", "dev": "lo",
                                                "prefsrc": "192.0.2.2", "flags": [], "cache": ["local"]}])})
    _, entry = next_hop("192.0.2.2", run)
    assert entry["state"] == "LOCAL" and len(run.calls) == 1


def test_next_hop_without_a_route_reports_the_route_error_and_no_neighbour(no_proc):
    run = FakeRun({route_get("10.99.0.1"): (2, "", "RTNETLINK answers: Network is unreachable")})
    route, entry = next_hop("10.99.0.1", run)
    assert route["error"] == "RTNETLINK answers: Network is unreachable"
    assert entry == {"ip": None, "state": None, "mac": None, "dev": None, "source": None,
                     "error": "RTNETLINK answers: Network is unreachable", "via_gateway": False}
    assert run.calls == [["ip", "-j", "route", "get", "10.99.0.1"]]


# --- ip missing: the /proc fallback ---------------------------------------------------------------

def test_without_ip_an_off_link_target_is_resolved_from_proc_route_and_proc_arp(proc_files):
    run = FakeRun()  # every command: rc 127, command not found
    route, entry = next_hop("8.8.8.8", run)
    assert route == {"dev": "eth0", "gateway": "192.0.2.1", "src": None, "type": "unicast",
                     "source": "/proc/net/route", "error": None}
    assert entry == {"ip": "192.0.2.1", "state": "REACHABLE", "mac": "02:fc:00:00:00:05", "dev": "eth0",
                     "source": "/proc/net/arp", "error": None, "via_gateway": True}
    assert run.calls == [["ip", "-j", "route", "get", "8.8.8.8"],
                         ["ip", "-j", "neigh", "show", "to", "192.0.2.1", "dev", "eth0"]]
    assert proc_files == ["/proc/net/route", "/proc/net/arp"]


def test_without_ip_a_neighbour_missing_from_proc_arp_is_state_none(proc_files):
    entry = neighbour_of("192.0.2.77", "eth0", FakeRun())
    assert entry == {"ip": "192.0.2.77", "state": "NONE", "mac": None, "dev": "eth0", "source": "/proc/net/arp",
                     "error": None}


def test_without_ip_an_incomplete_proc_arp_entry_has_no_mac(proc_files):
    entry = neighbour_of("10.77.0.99", "nclab-br", FakeRun())
    assert (entry["state"], entry["mac"], entry["source"]) == ("INCOMPLETE", None, "/proc/net/arp")


def test_without_ip_an_on_link_target_is_its_own_next_hop(proc_files):
    route, entry = next_hop("10.77.0.12", FakeRun())
    assert (route["dev"], route["gateway"]) == ("nclab-br", None)
    assert (entry["ip"], entry["state"], entry["via_gateway"]) == ("10.77.0.12", "REACHABLE", False)


def test_without_ip_and_without_proc_route_the_error_of_ip_is_reported(no_proc):
    route = route_to("8.8.8.8", FakeRun())
    assert route["dev"] is None
    assert route["error"] == "ip: command not found"
    assert no_proc == ["/proc/net/route"]


def test_without_ip_an_ipv6_target_has_no_proc_fallback(proc_files):
    route, entry = next_hop("2001:db8::5", FakeRun())
    assert route["error"] == "ip: command not found"
    assert entry["ip"] is None and entry["error"] == "ip: command not found"
    assert proc_files == []


def test_default_run_reports_a_missing_binary_as_rc_127_command_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no ip here
    assert default_run(["ip", "-j", "route", "get", "8.8.8.8"]) == (127, "", "ip: command not found")


def test_default_run_without_ip_on_path_falls_back_to_proc(monkeypatch, tmp_path, proc_files):
    monkeypatch.setenv("PATH", str(tmp_path))
    route, entry = next_hop("8.8.8.8")
    assert route["source"] == "/proc/net/route" and entry["source"] == "/proc/net/arp"
    assert entry["ip"] == "192.0.2.1"


def test_ansible_run_command_without_ip_falls_back_to_proc(monkeypatch, tmp_path, proc_files, capsys):
    basic = pytest.importorskip("ansible.module_utils.basic")
    testing = pytest.importorskip("ansible.module_utils.testing")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no ip here
    with testing.patch_module_args({}):
        module = basic.AnsibleModule(argument_spec={})
        route, entry = next_hop("8.8.8.8", run=module.run_command)
    assert route["source"] == "/proc/net/route"
    assert entry["ip"] == "192.0.2.1" and entry["source"] == "/proc/net/arp"


# --- many targets at once (issue 14: 1,000 lookups one by one took 8 s) ------------------------

def test_next_hops_of_a_thousand_loopback_addresses_takes_two_commands_and_well_under_a_second():
    import shutil
    import time
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.neighbour import next_hops
    if not shutil.which("ip"):
        pytest.skip("no ip command here")
    calls = []

    def run(argv):
        calls.append(argv[:4])
        return default_run(argv)

    addresses = ["127.0.%d.%d" % (i // 250, 1 + i % 250) for i in range(1000)]
    start = time.monotonic()
    hops = next_hops(addresses + addresses[:10], run)  # repeated addresses are looked up once
    elapsed = time.monotonic() - start
    assert len(hops) == 1000
    assert {hops[a][1]["state"] for a in addresses} == {"LOCAL"}
    assert len(calls) == 2
    assert elapsed < 1.0, elapsed


def test_next_hops_maps_routes_and_neighbours_and_names_a_missing_route():
    import json as _json
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.neighbour import next_hops
    routes = ('[{"dst":"10.77.0.12","dev":"eth0","prefsrc":"10.77.0.11","flags":[]}]\n'
              '[{"dst":"8.8.8.8","gateway":"10.77.0.1","dev":"eth0","prefsrc":"10.77.0.11"}]\n'
              '[{"dst":"fd00::12","dev":"eth0","prefsrc":"fd00::11"}]\n')
    neigh = _json.dumps([{"dst": "10.77.0.12", "dev": "eth0", "lladdr": "aa:bb:cc:dd:ee:ff", "state": ["REACHABLE"]},
                         {"dst": "10.77.0.1", "dev": "eth0", "lladdr": "aa:bb:cc:dd:ee:01", "state": ["STALE"]},
                         {"dst": "fd00::12", "dev": "eth0", "state": ["FAILED"]}])

    def run(argv):
        if "-batch" in argv:
            return 1, routes, "RTNETLINK answers: Network is unreachable\nCommand failed x:4\n"
        return 0, neigh, ""

    hops = next_hops(["10.77.0.12", "8.8.8.8", "fd00:0::12", "10.99.0.1"], run)
    assert hops["10.77.0.12"][1]["mac"] == "aa:bb:cc:dd:ee:ff"
    assert (hops["8.8.8.8"][1]["ip"], hops["8.8.8.8"][1]["state"], hops["8.8.8.8"][1]["via_gateway"]) == \
        ("10.77.0.1", "STALE", True)
    assert hops["fd00:0::12"][1]["state"] == "FAILED"
    assert hops["10.99.0.1"][0]["error"] == "RTNETLINK answers: Network is unreachable"
    assert hops["10.99.0.1"][1]["state"] is None
