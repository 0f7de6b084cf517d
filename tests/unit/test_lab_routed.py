"""lab/routed.py without root: the topology file is validated, routes are computed, the inventory
groups hosts by subnet and no node gets a default route."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab.lab import LabError  # noqa: E402
from lab.routed import DEFAULT_TOPOLOGY, FAULTS, RoutedLab, Topology, apply_fault  # noqa: E402


@pytest.fixture
def sample():
    return yaml.safe_load(DEFAULT_TOPOLOGY.read_text())


def test_the_sample_topology_has_two_subnets_two_routers_a_nat_gateway_and_the_mtus(sample):
    topo = Topology(sample)
    assert {n.role for n in topo.nodes.values()} == {"host", "router", "nat"}
    assert topo.networks["a"].mtu == topo.networks["b"].mtu == 9001 and topo.networks["core"].mtu == 1500
    assert all(net.ipv6.version == 6 for net in topo.networks.values())


def test_routes_go_through_the_nearest_router_and_the_internet_host_has_none(sample):
    topo = Topology(sample)
    a1, r2, c1 = topo.nodes["a1"], topo.nodes["r2"], topo.nodes["c1"]
    routes = topo.routes(a1)
    assert {net: (via.name, over) for net, (via, over) in routes.items()} == {
        "b": ("r1", "a"), "core": ("r1", "a"), "pub": ("r1", "a")}
    assert topo.routes(r2)["a"][0].name == "r1" and topo.routes(r2)["pub"][0].name == "nat"
    assert topo.routes(c1) == {}  # public: sees only the NAT gateway's address
    assert [n.name for n in topo.path(a1, "b1")] == ["r1", "r2"]
    # no default route anywhere: every route is to a lab prefix
    for node in topo.nodes.values():
        assert all(net in topo.networks for net in topo.routes(node))


def test_addresses_follow_the_node_number_in_both_families(sample):
    topo = Topology(sample)
    b1 = topo.nodes["b1"]
    assert str(topo.address(b1, "b")) == "10.78.141.13" and str(topo.address(b1, "b", 6)) == "fd6e:6574:6369:141::13"
    assert str(topo.controller("a")) == "10.78.140.1"
    assert [n.name for n in topo.host_networks()] == ["a", "b", "pub"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d["networks"]["a"].update(colour="red"), "networks.a: unknown key(s) colour"),
    (lambda d: d["nodes"]["r1"].update(role="switch"), "nodes.r1.role: 'switch' is not one of"),
    (lambda d: d["nodes"]["a1"].update(networks=["z"]), "nodes.a1.networks: no network 'z'"),
    (lambda d: d["nodes"]["nat"].pop("outside"), "nodes.nat.outside"),
    (lambda d: d["networks"]["a"].update(mtu=500), "networks.a.mtu: 500 is not between 1280 and 65535"),
    (lambda d: d.update(name="a-b"), "topology name"),
])
def test_a_bad_topology_is_refused_naming_the_field(sample, change, message):
    change(sample)
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Topology(sample)


def test_the_inventory_groups_hosts_by_subnet(sample, tmp_path):
    lab = RoutedLab(Topology(sample), state_dir=tmp_path / "state", inventory_path=tmp_path / "inv.yml")
    groups = lab.inventory()["all"]["children"]["lab"]["children"]
    assert sorted(groups) == ["subnet_a", "subnet_b", "subnet_pub"]
    assert sorted(groups["subnet_a"]["hosts"]) == ["ncra1", "ncra2"]
    assert groups["subnet_b"]["hosts"]["ncrb1"]["ansible_host"] == "10.78.141.13"


def test_a_fault_names_its_arguments(sample, tmp_path):
    lab = RoutedLab(Topology(sample), state_dir=tmp_path / "state", inventory_path=tmp_path / "inv.yml")
    with pytest.raises(LabError, match="fault loop takes ROUTER BACK_TO TARGET"):
        apply_fault(lab, "loop", ["r1"])
    with pytest.raises(LabError, match="no node 'r9'"):
        apply_fault(lab, "drop-frag-needed", ["r9"])
    assert set(FAULTS) >= {"missing-route", "forward-drop", "forward-reject", "drop-frag-needed", "mtu", "rp-filter",
                           "loop", "ttl"}


def test_the_cli_needs_a_topology_for_faults_and_names_missing_arguments(capsys):
    from lab.__main__ import main
    assert main(["reset"]) == 1
    assert "reset needs --topology FILE" in capsys.readouterr().err
    assert main(["--topology", str(DEFAULT_TOPOLOGY), "fault", "loop", "r1"]) == 1
    assert "fault loop takes ROUTER BACK_TO TARGET" in capsys.readouterr().err
