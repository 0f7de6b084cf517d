"""The EC2 explainer joined to the real data plane: port_check runs over SSH in the lab and sees a
port filtered (a real iptables DROP inside the target's namespace); moto_server on 127.0.0.1 holds
an EC2 configuration mirroring the lab (instances whose private IPs are the lab hosts' addresses);
explain_run and the ec2_explain action plugin then say which security group, network ACL entry or
host is to blame. No AWS call: every EC2 read goes to the local moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import BIN, REPO, netns
from moto_fixture import AWS_ENV, REGION, aws_env, ec2, moto_server  # noqa: F401 (fixtures)

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import ec2_explain as ex  # noqa: E402

AMI = "ami-12c6146b"
TIMEOUT = 1.5
# A second subnet for network ACLs (they apply only between subnets): the lab hosts' addresses all
# lie in 10.77.<slot>.0/28, so the target also gets .20 of the lab's own subnet, in the next /28.
SECOND_HOST_OCTET = 20


def _sub(ip, octet):
    return ".".join(ip.split(".")[:3] + [str(octet)])


@pytest.fixture
def mirror(ec2, src, dst):
    """moto state mirroring the lab: src and dst instances at their lab addresses in one /28,
    a second interface of dst at .20 in the next /28, and a group per side; dst admits only ssh."""
    base = _sub(src.ip, 0)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    front = ec2.create_subnet(VpcId=vpc, CidrBlock=base + "/28")["Subnet"]["SubnetId"]
    back = ec2.create_subnet(VpcId=vpc, CidrBlock=_sub(src.ip, 16) + "/28")["Subnet"]["SubnetId"]
    src_sg = ec2.create_security_group(GroupName="lab-client", Description="client", VpcId=vpc)["GroupId"]
    dst_sg = ec2.create_security_group(GroupName="lab-server", Description="server", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=dst_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": src_sg}]}])

    def launch(name, subnet, ip, group):
        instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=ip,
                                     SecurityGroupIds=[group], TagSpecifications=[
                                         {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
        return instance["Instances"][0]["InstanceId"]

    ids = {"src": launch(src.name, front, src.ip, src_sg), "dst": launch(dst.name, front, dst.ip, dst_sg),
           "dst_back": launch(dst.name + "-back", back, _sub(src.ip, SECOND_HOST_OCTET), dst_sg)}
    return {"vpc": vpc, "front": front, "back": back, "src_sg": src_sg, "dst_sg": dst_sg, "ids": ids}


@pytest.fixture
def second_address(dst):
    """.20 of the lab's own subnet on the target's eth0 (inside its namespace), removed at teardown."""
    address = _sub(dst.ip, SECOND_HOST_OCTET)
    netns(dst.namespace, "ip", "addr", "add", address + "/24", "dev", "eth0")
    yield address
    netns(dst.namespace, "ip", "addr", "del", address + "/24", "dev", "eth0", check=False)


def probe_filtered(ansible, src, address, port):
    """Run the real port_check on ``src`` over SSH; return its result (asserted filtered)."""
    run = ansible.module(src.name, "port_check", {"targets": [{"host": address, "port": port, "timeout": TIMEOUT,
                                                               "expected": "filtered"}]})
    result = run.result(src.name)
    assert not result.get("failed"), result.get("msg")
    (entry,) = result["results"]
    assert entry["state"] == "filtered"
    return entry


def run_model(src, target_name, address, tcp_results):
    """A minimal run model (docs/report.schema.json) with one pair whose verdict is PORT_FILTERED."""
    pair = {"source": src.name, "target": target_name, "address": address, "kind": "diagnose", "ok": False,
            "checked": ["transport"], "layers": {"neighbour": None, "icmp": None, "tcp": tcp_results, "http": []},
            "verdict": {"first_failing_layer": "transport", "code": "PORT_FILTERED", "hint": "no answer",
                        "evidence": [], "notes": []},
            "timings": {}, "expected": {}, "explain": None, "capture": None, "baseline": None}
    return {"schema_version": 1, "meta": {}, "sources": [{"name": src.name, "address": src.ip, "status": "ran"}],
            "targets": [{"name": target_name, "address": address}], "pairs": [pair]}


def explained(run, moto_server):
    summary = ex.explain_run(run, {"region": REGION, "endpoint_url": moto_server})
    assert summary == {"explained": 1, "error": None}
    return run["pairs"][0]["explain"]


def test_real_drop_and_a_group_without_the_rule_is_sg_rules_mismatch(ansible, iptables_rules, src, dst, mirror,
                                                                     moto_server):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9999", "-j", "DROP")
    entry = probe_filtered(ansible, src, dst.ip, 9999)
    explain = explained(run_model(src, dst.name, dst.ip, [entry]), moto_server)
    assert explain["status"] == "blocked" and explain["code"] == "ENI_SG_RULES_MISMATCH"
    assert "%s (lab-server)" % mirror["dst_sg"] in explain["message"]
    assert explain["fix"] == "add ingress tcp/9999 from %s to %s" % (mirror["src_sg"], mirror["dst_sg"])
    assert explain["rule"]["missing"]["group_id"] == mirror["dst_sg"]
    assert explain["flow"]["target_instance"] == mirror["ids"]["dst"] and explain["flow"]["target_name"] == dst.name


def test_network_acl_deny_is_subnet_acl_restriction_with_the_entry_number(ansible, iptables_rules, ec2, src, dst,
                                                                          mirror, second_address, moto_server):
    ec2.authorize_security_group_ingress(GroupId=mirror["dst_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 9998, "ToPort": 9998, "UserIdGroupPairs": [{"GroupId": mirror["src_sg"]}]}])
    acl = ec2.create_network_acl(VpcId=mirror["vpc"])["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow",
                                     Egress=egress, CidrBlock="0.0.0.0/0")
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=90, Protocol="6", RuleAction="deny", Egress=False,
                                 CidrBlock=_sub(src.ip, 0) + "/28", PortRange={"From": 9998, "To": 9998})
    default = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [mirror["back"]]}])
    association = next(item["NetworkAclAssociationId"] for item in default["NetworkAcls"][0]["Associations"]
                       if item["SubnetId"] == mirror["back"])
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)

    iptables_rules(dst.namespace, "INPUT", "-d", second_address, "-p", "tcp", "--dport", "9998", "-j", "DROP")
    entry = probe_filtered(ansible, src, second_address, 9998)
    explain = explained(run_model(src, dst.name + "-back", second_address, [entry]), moto_server)
    assert explain["code"] == "SUBNET_ACL_RESTRICTION"
    assert explain["rule"]["rule_number"] == 90 and explain["rule"]["action"] == "deny"
    assert explain["component"] == {"type": "network-acl", "id": acl, "subnet": mirror["back"]}
    assert "(rule 90)" in explain["message"]
    assert explain["fix"].startswith("add inbound rule allow tcp/9998 from %s/28 to %s, numbered 89"
                                     % (_sub(src.ip, 0), acl))


def test_group_allowing_the_port_while_the_host_drops_it_points_at_the_host(ansible, iptables_rules, ec2, src, dst,
                                                                            mirror, moto_server):
    # the rule names a managed prefix list holding the source's /32: resolved through its entries
    prefix_list = ec2.create_managed_prefix_list(PrefixListName="lab-clients", MaxEntries=5, AddressFamily="IPv4",
                                                 Entries=[{"Cidr": src.ip + "/32"}])["PrefixList"]["PrefixListId"]
    ec2.authorize_security_group_ingress(GroupId=mirror["dst_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 9997, "ToPort": 9997, "PrefixListIds": [{"PrefixListId": prefix_list}]}])
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9997", "-j", "DROP")
    entry = probe_filtered(ansible, src, dst.ip, 9997)
    explain = explained(run_model(src, dst.name, dst.ip, [entry]), moto_server)
    assert explain["status"] == "allowed" and explain["code"] == "CONFIGURATION_ALLOWS"
    assert explain["message"].startswith("configuration allows it: the host itself drops it")
    ingress = next(step for step in explain["checked"] if step["step"].startswith("security groups ingress"))
    assert ingress["detail"]["prefix_list"] == prefix_list and ingress["detail"]["cidr"] == src.ip + "/32"


def test_source_egress_without_the_rule_is_named_too(ansible, iptables_rules, ec2, src, dst, mirror, moto_server):
    ec2.authorize_security_group_ingress(GroupId=mirror["dst_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 9996, "ToPort": 9996, "UserIdGroupPairs": [{"GroupId": mirror["src_sg"]}]}])
    ec2.revoke_security_group_egress(GroupId=mirror["src_sg"], IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=mirror["src_sg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    # what EC2 would do at the source's interface, made for real in the lab at the target
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9996", "-j", "DROP")
    entry = probe_filtered(ansible, src, dst.ip, 9996)
    explain = explained(run_model(src, dst.name, dst.ip, [entry]), moto_server)
    assert explain["code"] == "ENI_SG_RULES_MISMATCH"
    assert explain["explanations"][0]["direction"] == "egress"
    assert explain["fix"] == "add egress tcp/9996 to %s in %s" % (mirror["dst_sg"], mirror["src_sg"])


def test_dropped_echo_without_an_icmp_rule_is_explained_as_the_missing_icmp_rule(ansible, iptables_rules, src, dst,
                                                                                 mirror, moto_server):
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "-j", "DROP")
    run = ansible.module(src.name, "icmp_ping", {"targets": [{"host": dst.ip, "reachable": False}], "count": 1,
                                                 "timeout": 0.5})
    result = run.result(src.name)
    assert not result.get("failed"), result.get("msg")
    (entry,) = result["results"]
    assert entry["state"] == "unreachable" and entry["detail"]["received"] == 0
    model = run_model(src, dst.name, dst.ip, [])
    model["pairs"][0]["layers"]["icmp"] = entry
    model["pairs"][0]["verdict"].update(first_failing_layer="network", code="ICMP_FILTERED")
    explain = explained(model, moto_server)
    assert explain["code"] == "ENI_SG_RULES_MISMATCH" and explain["flow"]["protocol"] == "icmp"
    assert explain["fix"] == "add ingress icmp echo request (type 8) from %s to %s" % (mirror["src_sg"],
                                                                                       mirror["dst_sg"])


# --- the action plugin, alone ---------------------------------------------------------------------

def _action(ansible, **args):
    run = ansible.module("localhost", "ec2_explain", args)
    return run.result("localhost")


def test_action_plugin_explains_one_flow(ansible, src, dst, mirror, moto_server):
    result = _action(ansible, source=src.ip, target=dst.ip, port=8080, data_plane="PORT_FILTERED", region=REGION,
                     endpoint_url=moto_server)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["explain"]["code"] == "ENI_SG_RULES_MISMATCH"
    assert result["msg"] == "ENI_SG_RULES_MISMATCH: %s; fix: add ingress tcp/8080 from %s to %s" % (
        result["explain"]["message"], mirror["src_sg"], mirror["dst_sg"])
    ssh = _action(ansible, source=src.ip, target=dst.ip, port=22, region=REGION, endpoint_url=moto_server)
    assert ssh["explain"]["status"] == "allowed" and ssh["explain"]["fix"] is None


def test_action_plugin_rejects_bad_input_naming_the_field(ansible, moto_server, aws_env):
    no_port = _action(ansible, source="10.77.1.1", target="10.77.1.2", endpoint_url=moto_server, region=REGION)
    assert no_port["failed"] and no_port["msg"] == "port: required when protocol is tcp"
    not_ip = _action(ansible, source="web1", target="10.77.1.2", port=80, endpoint_url=moto_server, region=REGION)
    assert not_ip["failed"] and not_ip["msg"].startswith("source: 'web1' is not an IP address")


def test_action_plugin_says_which_region_or_credentials_are_wrong(ansible, moto_server, aws_env, monkeypatch, tmp_path):
    region = _action(ansible, source="10.77.1.1", target="10.77.1.2", port=80, region="xx-nowhere-1",
                     endpoint_url=moto_server)
    assert region["failed"] and "region: 'xx-nowhere-1' is not an EC2 region" in region["msg"]
    assert "Traceback" not in str(region)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    nothing = _action(ansible, source="10.77.1.1", target="10.77.1.2", port=80, region=REGION, endpoint_url=moto_server)
    assert nothing["failed"] and "no AWS credentials found" in nothing["msg"]


# --- the fetcher on moto alone: peering across VPCs (configuration only, no packet sent) ----------

def test_fetcher_reads_peering_and_routes_both_ways_from_the_api(ec2, moto_server):
    def side(cidr, subnet_cidr, ip, name):
        vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr)["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=ip,
                          SecurityGroupIds=[group])
        table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
        return vpc, group, table["RouteTableId"]

    vpc_a, group_a, table_a = side("10.30.0.0/16", "10.30.1.0/24", "10.30.1.10", "app")
    vpc_b, group_b, table_b = side("10.31.0.0/16", "10.31.2.0/24", "10.31.2.20", "data")
    pcx = ec2.create_vpc_peering_connection(VpcId=vpc_a, PeerVpcId=vpc_b)["VpcPeeringConnection"]
    pcx = pcx["VpcPeeringConnectionId"]
    ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
    ec2.create_route(RouteTableId=table_a, DestinationCidrBlock="10.31.0.0/16", VpcPeeringConnectionId=pcx)
    ec2.create_route(RouteTableId=table_b, DestinationCidrBlock="10.30.0.0/16", VpcPeeringConnectionId=pcx)
    ec2.authorize_security_group_ingress(GroupId=group_b, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.30.1.0/24"}]}])
    fetcher = ex.Ec2Fetcher(region=REGION, endpoint_url=moto_server)

    allowed = ex.explain_flow(fetcher.state_for(["10.30.1.10", "10.31.2.20"]), "10.30.1.10", "10.31.2.20", "tcp", 6379)
    assert allowed["status"] == "allowed", allowed["message"]
    assert [step["detail"]["target"] for step in allowed["checked"] if step["step"].startswith("route")] == [pcx, pcx]

    ec2.delete_route(RouteTableId=table_b, DestinationCidrBlock="10.30.0.0/16")
    no_way_back = ex.explain_flow(fetcher.state_for(["10.30.1.10", "10.31.2.20"]), "10.30.1.10", "10.31.2.20", "tcp",
                                  6379)
    assert no_way_back["code"] == "NO_ROUTE_TO_DESTINATION"
    assert no_way_back["explanations"][0]["direction"] == "reply"
    assert no_way_back["fix"] == "add route 10.30.0.0/16 -> %s to %s" % (pcx, table_b)


# --- the whole way: net_diagnose over SSH, the run model, then each failing check explained --------

def test_each_silent_check_of_a_real_net_diagnose_run_is_explained_and_a_reject_is_not(ansible, iptables_rules, src,
                                                                                       dst, mirror, moto_server):
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils.run import build_run

    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9995", "-j", "DROP")
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9994", "-j", "REJECT", "--reject-with",
                   "icmp-port-unreachable")
    iptables_rules(dst.namespace, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP")
    target = {"name": dst.name, "host": dst.ip, "icmp": "reachable",
              "ports": [{"port": 22}, {"port": 9995}, {"port": 9994}]}
    result = ansible.module(src.name, "net_diagnose", {"targets": [target], "tcp_timeout": 1}).result(src.name)
    assert result.get("results"), result.get("msg")  # failed: the faults missed their expectations
    run = build_run([{"name": src.name, "address": src.ip, "outcome": result}])
    hosts = {src.name: {"instance_id": mirror["ids"]["src"], "placement": {"region": REGION}},
             dst.name: {"instance_id": mirror["ids"]["dst"], "placement": {"region": REGION}}}
    summary = ex.explain_run(run, ex.inventory_options(hosts, endpoint_url=moto_server))
    assert summary == {"explained": 1, "error": None}
    explain = run["pairs"][0]["explain"]
    flows = {(item["flow"]["protocol"], item["flow"]["port"]): item for item in explain["flows"]}
    # the dropped port and the dropped ping; not port 22 (open) nor 9994 (the host rejects it: no EC2 matter)
    assert set(flows) == {("tcp", 9995), ("icmp", None)}
    assert flows[("tcp", 9995)]["code"] == "ENI_SG_RULES_MISMATCH"
    assert flows[("tcp", 9995)]["fix"] == "add ingress tcp/9995 from %s to %s" % (mirror["src_sg"], mirror["dst_sg"])
    assert flows[("icmp", None)]["fix"] == "add ingress icmp echo request (type 8) from %s to %s" % (
        mirror["src_sg"], mirror["dst_sg"])
    assert flows[("tcp", 9995)]["flow"]["target_instance"] == mirror["ids"]["dst"]


def test_check_yml_tells_the_targets_interface_apart_by_its_inventory_instance(lab, iptables_rules, ec2, src, dst,
                                                                               mirror, moto_server, tmp_path):
    """check.yml from one source: the target is no source, so its instance_id comes from the targets'
    hostvars; a second VPC on the same CIDR holds the target's address too."""
    twin_vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    twin_subnet = ec2.create_subnet(VpcId=twin_vpc, CidrBlock=_sub(src.ip, 0) + "/28")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=twin_subnet, PrivateIpAddress=dst.ip)
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9993", "-j", "DROP")
    extra = tmp_path / "ec2-hosts.yml"  # what the aws_ec2 inventory would say of these two hosts
    extra.write_text(yaml.safe_dump({"all": {"children": {"ec2pair": {"hosts": {
        host.name: {"instance_id": mirror["ids"][key], "vpc_id": mirror["vpc"], "placement": {"region": REGION}}
        for host, key in ((src, "src"), (dst, "dst"))}}}}}))
    reports = tmp_path / "reports"
    options = json.dumps({"netcheck_sources": src.name, "netcheck_mesh_group": "ec2pair",
                          "netcheck_mesh_ports": [22, 9993], "netcheck_mesh_icmp": "skip", "netcheck_tcp_timeout": 1,
                          "netcheck_report_dir": str(reports), "netcheck_ec2_explain": True,
                          "netcheck_ec2_options": {"region": REGION, "endpoint_url": moto_server}})
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **AWS_ENV)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(lab.config.inventory_path), "-i", str(extra),
                           "check.yml", "-e", options], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode != 0, proc.stdout  # the dropped port fails the run
    (report,) = reports.glob("*/report.json")
    (pair,) = [p for p in json.loads(report.read_text())["pairs"] if p["target"] == dst.name]
    explain = pair["explain"]
    assert explain["code"] == "ENI_SG_RULES_MISMATCH", explain["message"]
    assert explain["flow"]["target_instance"] == mirror["ids"]["dst"] and len(explain["flow"]["target_candidates"]) == 2
    assert explain["fix"] == "add ingress tcp/9993 from %s to %s" % (mirror["src_sg"], mirror["dst_sg"])
    assert "EC2: %s" % explain["message"] in proc.stdout
