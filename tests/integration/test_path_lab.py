"""The hop where packets die and the path MTU, on the routed lab, against tracepath and traceroute.

One routed lab for the module (lab/topologies/routed.yml on this session's own subnets); each
test makes one real fault on a router or host, and the lab is reset after it. The probe runs
inside the source's namespace, as a module would; the oracles run in the same namespace on the
same fault: ``traceroute -T -p PORT`` (the same TCP flow) and ``tracepath`` (UDP, for faults
that do not depend on the protocol, and the path MTU).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.routed import DEFAULT_TOPOLOGY, RoutedLab, Topology

RUNNER = Path(__file__).with_name("path_runner.py")
WEB = 8080
# the routed test lab's subnets: 10.78.BASE..BASE+3 (the demo routed lab uses 140-143)
BASE = int(os.environ.get("NETCHECK_TEST_ROUTED_BASE", "145"))
SLOT = int(os.environ.get("NETCHECK_TEST_LAB_SLOT", "144"))


@pytest.fixture(scope="module")
def routed():
    if os.geteuid() != 0:
        pytest.skip("the routed lab needs root")
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    for offset, spec in enumerate(data["networks"].values()):
        spec["ipv4"] = "10.78.%d.0/24" % (BASE + offset)
        spec["ipv6"] = "fd6e:6574:6369:%d::/64" % (BASE + offset)
    topology = Topology(data, name="ncr%d" % (SLOT % 1000))
    lab = RoutedLab(topology)
    lab.down()  # what an interrupted run left behind
    lab.up()
    yield lab
    lab.down()


@pytest.fixture
def lab(routed):
    yield routed
    routed.reset()


def addr(lab, node, network=None, version=4):
    topo = lab.topology
    node = topo.nodes[node]
    return str(topo.address(node, network or node.networks[0], version))


def probe(lab, source, kind, target, unprivileged=False, **options):
    """Run path.py in the source's namespace (as root, or as nobody). The machine is shared and often
    loaded: answers get a generous timeout (they come within a millisecond when the machine is idle)."""
    options.setdefault("timeout", 1.5)
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if unprivileged else []
    proc = subprocess.run(["ip", "netns", "exec", lab.ns(source)] + user + [
        "/usr/bin/python3" if unprivileged else sys.executable, str(RUNNER), kind, target, json.dumps(options)],
        capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def hops_of(result):
    return [(h["hop"], h["address"]) for h in result["hops"]]


def traceroute_tcp(lab, source, target, port, max_hops):
    """``traceroute -T`` (the same TCP flow): [(hop, address or None, flag such as !X or None)]."""
    if not shutil.which("traceroute"):
        pytest.skip("traceroute is not installed (Debian package traceroute)")
    out = subprocess.run(["ip", "netns", "exec", lab.ns(source), "traceroute", "-n", "-T", "-p", str(port), "-q", "2",
                          "-w", "2", "-N", "1", "-m", str(max_hops), target], capture_output=True, text=True,
                         timeout=60, check=False).stdout
    hops = []
    for line in out.splitlines()[1:]:
        words = line.split()
        if not words or not words[0].isdigit():
            continue
        address = next((w for w in words[1:] if re.match(r"^[0-9a-f:.]+$", w) and ("." in w or ":" in w)
                        and not re.match(r"^[\d.]+$", w) or re.match(r"^\d+\.\d+\.\d+\.\d+$", w)), None)
        flag = next((w for w in words[1:] if w.startswith("!")), None)
        hops.append((int(words[0]), address, flag))
    return hops


def tracepath(lab, source, target, max_hops):
    """``tracepath -n`` (UDP): ({hop: first address}, pmtu from its resume line)."""
    if not shutil.which("tracepath"):
        pytest.skip("tracepath is not installed (Debian package iputils-tracepath)")
    out = subprocess.run(["ip", "netns", "exec", lab.ns(source), "tracepath", "-n", "-m", str(max_hops), target],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    hops = {}
    for line in out.splitlines():
        match = re.match(r"^\s*(\d+)\??:\s+(\S+)", line)
        # a "pmtu N" line is the frag-needed answer to a too-large probe at that TTL, not the hop
        if match and match.group(2) not in ("[LOCALHOST]", "no") and "pmtu" not in line:
            hops.setdefault(int(match.group(1)), match.group(2))
    resume = re.search(r"Resume: pmtu (\d+)", out)
    pmtus = re.findall(r"pmtu (\d+)", out)
    return hops, int(resume.group(1)) if resume else (int(pmtus[-1]) if pmtus else None)


# --- the hop where packets die ----------------------------------------------------------------

def test_a_forward_drop_on_a_router_is_dropped_after_the_hop_before_like_traceroute(lab):
    lab.fault_forward("r2", "drop", "tcp", WEB)
    target = addr(lab, "b1")
    result = probe(lab, "a1", "trace", target, port=WEB, timeout=1.0, attempts=2)
    stop = result["stop"]
    # r2 answers TTL 2 (time exceeded comes before its FORWARD chain); TTL 3 dies in its FORWARD
    assert (stop["code"], stop["hop"], stop["address"]) == ("DROPPED_AFTER_HOP", 2, addr(lab, "r2", "core"))
    assert result["method"] == "tcp-connect" and result["source_port"]
    oracle = traceroute_tcp(lab, "a1", target, WEB, 4)
    assert [(h, a) for h, a, _ in oracle[:2]] == hops_of(result)[:2]
    assert all(a is None for _, a, _ in oracle[2:])


def test_a_forward_reject_on_a_router_is_rejected_at_that_router_like_traceroute(lab):
    lab.fault_forward("r2", "reject", "tcp", WEB)
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is not installed (util-linux)")
    for version, unprivileged in ((4, False), (6, False), (4, True)):  # the TCP trace needs no root
        target = addr(lab, "b1", version=version)
        stop = probe(lab, "a1", "trace", target, unprivileged=unprivileged, port=WEB)["stop"]
        assert (stop["code"], stop["hop"], stop["address"]) == ("REJECTED_AT_HOP", 2,
                                                                addr(lab, "r2", "core", version))
        assert stop["icmp_name"] in ("communication administratively prohibited", "administratively prohibited")
    oracle = traceroute_tcp(lab, "a1", addr(lab, "b1"), WEB, 4)
    assert oracle[2][1:] == (addr(lab, "r2", "core"), "!X")


def test_a_missing_route_on_a_router_is_rejected_at_hop_one_like_tracepath(lab):
    lab.fault_missing_route("r1", "b")
    target = addr(lab, "b1")
    stop = probe(lab, "a1", "trace", target, port=WEB)["stop"]
    assert (stop["code"], stop["hop"], stop["address"], stop["icmp_name"]) == (
        "REJECTED_AT_HOP", 1, addr(lab, "r1"), "net unreachable")
    oracle = traceroute_tcp(lab, "a1", target, WEB, 3)
    assert oracle[0][1:] == (addr(lab, "r1"), "!N")
    hops, _ = tracepath(lab, "a1", target, 3)
    assert hops.get(1) == addr(lab, "r1")


def test_two_routers_pointing_at_each_other_are_a_routing_loop_like_tracepath(lab):
    lab.fault_routing_loop("r2", "r1", "b1")
    target = addr(lab, "b1")
    for protocol in ("tcp", "icmp"):
        result = probe(lab, "a1", "trace", target, port=WEB if protocol == "tcp" else None, protocol=protocol)
        stop = result["stop"]
        assert (stop["code"], stop["hop"], stop["address"]) == ("ROUTING_LOOP", 1, addr(lab, "r1"))
        assert set(stop["loop"]) == {addr(lab, "r1"), addr(lab, "r2", "core")}
    hops, _ = tracepath(lab, "a1", target, 4)
    ours = dict(hops_of(result))
    ours[4] = addr(lab, "r2", "core")
    # every hop tracepath heard agrees (a "no reply" of a loaded machine is no disagreement)
    assert {i: a for i, a in hops.items() if i in ours} == {i: ours[i] for i in hops if i in ours}
    assert len(hops) >= 3
    oracle = traceroute_tcp(lab, "a1", target, WEB, 4)
    assert [a for _, a, _ in oracle[:3]] == [a for _, a in hops_of(result)]


def test_rp_filter_on_a_router_drops_silently_after_the_hop_before(lab):
    lab.fault_rp_filter("r2", "a1")
    target = addr(lab, "b1")
    result = probe(lab, "a1", "trace", target, port=WEB, timeout=1.0, attempts=2)
    assert (result["stop"]["code"], result["stop"]["hop"], result["stop"]["address"]) == (
        "DROPPED_AFTER_HOP", 1, addr(lab, "r1"))
    oracle = traceroute_tcp(lab, "a1", target, WEB, 3)
    assert oracle[0][1] == addr(lab, "r1") and all(a is None for _, a, _ in oracle[1:])


def test_a_host_sending_with_too_small_a_ttl_is_ttl_expired_where_it_runs_out(lab):
    lab.fault_default_ttl("a1", 2)
    target = addr(lab, "b1")
    result = probe(lab, "a1", "trace", target, port=WEB)
    assert result["flow_ttl"] == 2
    stop = result["stop"]
    assert (stop["code"], stop["hop"], stop["address"]) == ("TTL_EXPIRED", 2, addr(lab, "r2", "core"))
    assert hops_of(result)[-1] == (3, target)  # the path itself works: 3 hops


# --- path MTU ------------------------------------------------------------------------------------------

def test_the_1500_link_is_pmtu_reduced_as_tracepath_says(lab):
    for version in (4, 6):
        target = addr(lab, "b1", version=version)
        facts = probe(lab, "a1", "mtu", target)
        assert (facts["code"], facts["path_mtu"], facts["interface_mtu"], facts["reported_by"]) == (
            "PMTU_REDUCED", 1500, 9001, addr(lab, "r1", version=version))
        assert facts["exact"] is True
    _, pmtu = tracepath(lab, "a1", addr(lab, "b1"), 4)
    assert pmtu == 1500


def test_a_smaller_mtu_on_a_router_link_is_the_mtu_that_router_reports(lab):
    lab.fault_mtu("r2", "b", 1400)
    target = addr(lab, "b1")
    facts = probe(lab, "a1", "mtu", target)
    assert (facts["code"], facts["path_mtu"], facts["reported_mtu"], facts["reported_by"]) == (
        "PMTU_REDUCED", 1400, 1400, addr(lab, "r2", "core"))
    _, pmtu = tracepath(lab, "a1", target, 4)
    assert pmtu == 1400


def test_frag_needed_dropped_on_the_router_is_an_mtu_black_hole_naming_the_sizes(lab):
    lab.fault_drop_frag_needed("r1")
    for version in (4, 6):
        facts = probe(lab, "a1", "mtu", addr(lab, "b1", version=version), timeout=0.5, attempts=2)
        assert (facts["code"], facts["largest_passed"], facts["smallest_lost"], facts["interface_mtu"]) == (
            "MTU_BLACKHOLE", 1500, 1501, 9001)
        assert facts["reported_mtu"] is None
        assert "ICMP type 3 code 4" in facts["hint"]


# --- through net_diagnose over SSH: the verdict gains the hop; a healthy mesh pays nothing ------------

def _diagnose(lab, sources, tcp_timeout=1):
    from harness import Ansible
    targets = [{"host": addr(lab, name), "name": name, "ports": [{"port": 22}, {"port": WEB}]}
               for name in ("a1", "a2", "b1")]
    run = Ansible(lab.config.inventory_path).module(sources, "net_diagnose",
                                                    {"targets": targets, "tcp_timeout": tcp_timeout})
    return {host.replace(lab.topology.name, ""): result for host, result in run.tasks[-1]["hosts"].items()}


def test_no_node_of_the_routed_lab_has_a_default_route(lab):
    for node in lab.topology.nodes.values():
        for version in ("-4", "-6"):
            routes = subprocess.run(["ip", version, "-n", lab.topology.namespace(node), "route", "show", "default"],
                                    capture_output=True, text=True, check=True).stdout
            assert routes.strip() == "", (node.name, routes)


def test_a_healthy_routed_mesh_is_all_ok_and_sends_no_path_probe(lab):
    results = _diagnose(lab, "subnet_a:subnet_b")
    assert sorted(results) == ["a1", "a2", "b1"]
    for source, result in results.items():
        assert [p["verdict"]["code"] for p in result["results"]] == ["OK"] * 3, (source, result["results"])
        assert (result["path"]["traces"], result["path"]["mtu_probes"]) == (0, 0)


def test_net_diagnose_names_the_router_after_which_the_flow_is_dropped(lab):
    lab.fault_forward("r2", "drop", "tcp", WEB)
    result = _diagnose(lab, "ncr%sa1" % (SLOT % 1000))["a1"]
    pairs = {p["target"]: p for p in result["results"]}
    verdict = pairs["b1"]["verdict"]
    assert (verdict["code"], verdict["hop"]) == ("DROPPED_AFTER_HOP", {"index": 2, "address": addr(lab, "r2", "core")})
    (check,) = [c for c in verdict["checks"] if c["check"] == "tcp/%d" % WEB]
    assert [h["address"] for h in check["path"]["hops"][:2]] == [addr(lab, "r1"), addr(lab, "r2", "core")]
    assert pairs["a2"]["verdict"]["code"] == "OK"  # on-link, untouched: no trace
    assert result["path"]["traces"] == 1


def test_a_transfer_that_stalls_behind_dropped_frag_needed_is_an_mtu_black_hole(lab):
    # both directions: r1 for a1's DF probes to b1, r2 for b1's large answer to a1
    lab.fault_drop_frag_needed("r1")
    lab.fault_drop_frag_needed("r2")
    from harness import Ansible
    url = "http://%s:%d/bytes?n=20000" % (addr(lab, "b1"), WEB)
    run = Ansible(lab.config.inventory_path).module("ncr%sa1" % (SLOT % 1000), "net_diagnose", {
        "targets": [{"host": addr(lab, "b1"), "name": "b1", "ports": [{"port": WEB}],
                     "urls": [{"url": url, "method": "GET", "timeout": 2}]}]})
    (result,) = run.tasks[-1]["hosts"].values()
    (pair,) = result["results"]
    verdict = pair["verdict"]
    assert verdict["code"] == "MTU_BLACKHOLE", verdict
    (check,) = [c for c in verdict["checks"] if c["check"].startswith("http")]
    assert (check["mtu"]["largest_passed"], check["mtu"]["interface_mtu"], check["mtu"]["reported_mtu"]) == (
        1500, 9001, None)
    assert [c["code"] for c in verdict["checks"] if c["check"] == "tcp/%d" % WEB] == ["OK"]  # the connect works
    assert result["path"]["mtu_probes"] == 1 and result["path"]["traces"] == 0


@pytest.mark.parametrize("fault, code, hop, at", [
    (("fault_default_ttl", ("a1", 2)), "TTL_EXPIRED", 2, ("r2", "core")),
    (("fault_routing_loop", ("r2", "r1", "b1")), "ROUTING_LOOP", 1, ("r1", "a")),
    (("fault_missing_route", ("r1", "b")), "REJECTED_AT_HOP", 1, ("r1", "a")),
])
def test_net_diagnose_gives_the_path_code_and_the_hop_of_each_router_fault(lab, fault, code, hop, at):
    getattr(lab, fault[0])(*fault[1])
    from harness import Ansible
    run = Ansible(lab.config.inventory_path).module("ncr%sa1" % (SLOT % 1000), "net_diagnose", {
        "targets": [{"host": addr(lab, "b1"), "name": "b1", "ports": [{"port": WEB}]}], "tcp_timeout": 1})
    (result,) = run.tasks[-1]["hosts"].values()
    (pair,) = result["results"]
    assert (pair["verdict"]["code"], pair["verdict"]["hop"]) == (code, {"index": hop, "address": addr(lab, *at)})
    assert result["path"]["traces"] == 1


def test_path_probe_module_over_ssh_traces_and_finds_the_mtu_in_check_mode(lab):
    from harness import Ansible
    run = Ansible(lab.config.inventory_path).module("ncr%sa1" % (SLOT % 1000), "path_probe", {
        "targets": [{"host": addr(lab, "b1"), "port": WEB, "name": "b1"}], "mtu": True}, check=True)
    (result,) = run.tasks[-1]["hosts"].values()
    assert result["changed"] is False
    (entry,) = result["paths"]
    assert [h["address"] for h in entry["trace"]["hops"]] == [addr(lab, "r1"), addr(lab, "r2", "core"), addr(lab, "b1")]
    assert entry["trace"]["stop"]["code"] == "REACHED"
    assert (entry["mtu"]["code"], entry["mtu"]["path_mtu"], entry["mtu"]["reported_by"]) == (
        "PMTU_REDUCED", 1500, addr(lab, "r1"))
