"""The EC2 explainer against moto_server on 127.0.0.1 (the real boto3 calls, no AWS, no lab): what
one region's API shows is evaluated and the rest is said "not evaluated", never a failed task.

- a VPC with a cross-region peering, or a peering whose VPC was deleted, next to the flow;
- a flow toward the other region's VPC: the source's side and the path-MTU finding;
- network ACL ICMP entries matched by type and code;
- one address held in two unpeered VPCs on the same CIDR: told apart by the inventory's instance;
- a more specific route to an internet gateway hiding a peering route: remove it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3

from moto_fixture import REGION, aws_env, ec2, moto_server  # noqa: F401 (fixtures)

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import ec2_explain as ex  # noqa: E402

AMI = "ami-12c6146b"
OTHER_REGION = "us-east-1"


def vpc_with_instance(client, cidr, subnet_cidr, address, name, ingress=()):
    """A VPC, one subnet, one security group (with ``ingress`` permissions) and one instance at ``address``."""
    vpc = client.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr)["Subnet"]["SubnetId"]
    group = client.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
    if ingress:
        client.authorize_security_group_ingress(GroupId=group, IpPermissions=list(ingress))
    instance = client.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=address,
                                    SecurityGroupIds=[group], TagSpecifications=[
                                        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    table = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
    return {"vpc": vpc, "subnet": subnet, "group": group, "instance": instance["Instances"][0]["InstanceId"],
            "table": table["RouteTableId"], "address": address}


def add_instance(client, side, subnet_cidr, address, name):
    subnet = client.create_subnet(VpcId=side["vpc"], CidrBlock=subnet_cidr)["Subnet"]["SubnetId"]
    instance = client.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=address,
                                    SecurityGroupIds=[side["group"]])["Instances"][0]["InstanceId"]
    return {"subnet": subnet, "instance": instance, "address": address}


def filtered_run(source, target, port=None, target_name="db1"):
    """A run model with one pair whose check (a TCP port, else ping) got no answer."""
    name = "tcp/%d" % port if port else "icmp"
    code = "PORT_FILTERED" if port else "ICMP_FILTERED"
    pair = {"source": "web1", "target": target_name, "address": target, "kind": "diagnose", "ok": False,
            "layers": {"neighbour": None, "icmp": None, "tcp": [], "http": []},
            "verdict": {"first_failing_layer": "transport", "code": code, "hint": "", "evidence": [], "notes": [],
                        "checks": [{"check": name, "layer": "transport" if port else "network", "ok": False,
                                    "severity": "fail", "code": code, "hint": "", "evidence": [],
                                    "outcome": {"reason": "no_answer", "phase": "connect" if port else "echo"}}]},
            "explain": None, "capture": None, "baseline": None}
    return {"schema_version": 1, "sources": [{"name": "web1", "address": source, "status": "ran"}],
            "targets": [{"name": target_name, "address": target}], "pairs": [pair]}


def options(moto_server, **more):
    return dict({"region": REGION, "endpoint_url": moto_server}, **more)


def test_cross_region_and_deleted_peer_vpcs_beside_the_flow_do_not_fail_it(ec2, moto_server):
    app = vpc_with_instance(ec2, "10.40.0.0/16", "10.40.1.0/24", "10.40.1.10", "web1")
    db = add_instance(ec2, app, "10.40.2.0/24", "10.40.2.20", "db1")
    remote = vpc_with_instance(boto3.client("ec2", region_name=OTHER_REGION, endpoint_url=moto_server),
                               "10.41.0.0/16", "10.41.1.0/24", "10.41.1.10", "remote")
    ec2.create_vpc_peering_connection(VpcId=app["vpc"], PeerVpcId=remote["vpc"], PeerRegion=OTHER_REGION)
    gone = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.create_vpc_peering_connection(VpcId=app["vpc"], PeerVpcId=gone)
    ec2.delete_vpc(VpcId=gone)
    run = filtered_run(app["address"], db["address"], 5432)
    assert ex.explain_run(run, options(moto_server)) == {"explained": 1, "error": None}  # was InvalidVpcID.NotFound
    explain = run["pairs"][0]["explain"]
    assert explain["code"] == "ENI_SG_RULES_MISMATCH"
    assert explain["fix"] == "add ingress tcp/5432 from %s to %s" % (app["group"], app["group"])
    state = ex.Ec2Fetcher(region=REGION, endpoint_url=moto_server).state_for([app["address"]])
    assert state.vpcs[remote["vpc"]]["from_peering"] and state.vpcs[remote["vpc"]]["Region"] == OTHER_REGION


def test_flow_into_the_other_regions_vpc_is_evaluated_on_this_side_with_its_path_mtu(ec2, moto_server):
    app = vpc_with_instance(ec2, "10.43.0.0/16", "10.43.1.0/24", "10.43.1.10", "web1")
    remote = vpc_with_instance(boto3.client("ec2", region_name=OTHER_REGION, endpoint_url=moto_server),
                               "10.44.0.0/16", "10.44.1.0/24", "10.44.1.10", "remote")
    pcx = ec2.create_vpc_peering_connection(VpcId=app["vpc"], PeerVpcId=remote["vpc"],
                                            PeerRegion=OTHER_REGION)["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    boto3.client("ec2", region_name=OTHER_REGION, endpoint_url=moto_server).accept_vpc_peering_connection(
        VpcPeeringConnectionId=pcx)
    ec2.create_route(RouteTableId=app["table"], DestinationCidrBlock="10.44.0.0/16", VpcPeeringConnectionId=pcx)
    run = filtered_run(app["address"], remote["address"], 6379, target_name="remote")
    assert ex.explain_run(run, options(moto_server)) == {"explained": 1, "error": None}
    explain = run["pairs"][0]["explain"]
    assert explain["status"] == "unknown" and explain["code"] == "NOT_EVALUATED"
    assert "only the source side is evaluated" in explain["message"]
    assert [step["verdict"] for step in explain["checked"] if step["step"].startswith("route")] == ["allow"]
    (mtu,) = explain["mtu"]
    assert (mtu["path_mtu"], mtu["instance_mtu"], mtu["icmp_type"], mtu["icmp_code"]) == (8500, 9001, 3, 4)
    assert mtu["fix"].startswith("add ingress icmp fragmentation needed (type 3 code 4) from 10.44.0.0/16 to %s"
                                 % app["group"])
    # allowed by a security group rule of that type and code: the finding goes
    ec2.authorize_security_group_ingress(GroupId=app["group"], IpPermissions=[
        {"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4, "IpRanges": [{"CidrIp": "10.44.0.0/16"}]}])
    run = filtered_run(app["address"], remote["address"], 6379, target_name="remote")
    ex.explain_run(run, options(moto_server))
    assert run["pairs"][0]["explain"]["mtu"] == []


def _restore_icmp(state, acl_id, number, icmp_type, icmp_code):
    """moto (5.x) keeps no IcmpTypeCode of a network ACL entry (DescribeNetworkAcls returns the entry
    without it, i.e. "all ICMP"): put back into the data read back what the entry was created with,
    as EC2 itself would return it. Returns whether moto had dropped it."""
    acl = next(item for item in state.network_acls if item["NetworkAclId"] == acl_id)
    (entry,) = [item for item in acl["Entries"] if item["RuleNumber"] == number and not item["Egress"]]
    dropped = "IcmpTypeCode" not in entry
    entry["IcmpTypeCode"] = {"Type": icmp_type, "Code": icmp_code}
    return dropped


def test_network_acl_icmp_entry_is_matched_by_type_and_code(ec2, moto_server):
    app = vpc_with_instance(ec2, "10.45.0.0/16", "10.45.1.0/24", "10.45.1.10", "web1", ingress=[
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.45.0.0/16"}]}])
    db = add_instance(ec2, app, "10.45.2.0/24", "10.45.2.20", "db1")
    acl = ec2.create_network_acl(VpcId=app["vpc"])["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow",
                                     Egress=egress, CidrBlock="0.0.0.0/0")
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=90, Protocol="1", RuleAction="deny", Egress=False,
                                 CidrBlock="10.45.1.0/24", IcmpTypeCode={"Type": 8, "Code": 5})
    default = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [db["subnet"]]}])
    association = next(item["NetworkAclAssociationId"] for item in default["NetworkAcls"][0]["Associations"]
                       if item["SubnetId"] == db["subnet"])
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    fetcher = ex.Ec2Fetcher(region=REGION, endpoint_url=moto_server)

    state = fetcher.state_for([app["address"], db["address"]])
    _restore_icmp(state, acl, 90, 8, 5)
    ping = ex.explain_flow(state, app["address"], db["address"], "icmp", data_plane="ICMP_FILTERED")
    assert ping["status"] == "allowed", ping["message"]  # code 5 is no echo request (code 0)
    for code in (0, -1):
        state = fetcher.state_for([app["address"], db["address"]])
        _restore_icmp(state, acl, 90, 8, code)
        blocked = ex.explain_flow(state, app["address"], db["address"], "icmp", data_plane="ICMP_FILTERED")
        assert blocked["code"] == "SUBNET_ACL_RESTRICTION" and blocked["rule"]["rule_number"] == 90
        assert blocked["component"] == {"type": "network-acl", "id": acl, "subnet": db["subnet"]}


def test_one_address_in_two_unpeered_vpcs_is_told_apart_by_the_inventorys_instance(ec2, moto_server):
    app = vpc_with_instance(ec2, "10.46.0.0/16", "10.46.1.0/24", "10.46.1.10", "web1")
    db = add_instance(ec2, app, "10.46.2.0/24", "10.46.2.20", "db1")
    twin = vpc_with_instance(ec2, "10.46.0.0/16", "10.46.2.0/24", "10.46.2.20", "twin", ingress=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.46.0.0/16"}]}])
    run = filtered_run(app["address"], db["address"], 5432)
    assert ex.explain_run(run, options(moto_server)) == {"explained": 1, "error": None}
    explain = run["pairs"][0]["explain"]
    assert explain["code"] == "NOT_EVALUATED" and "held by 2 network interfaces" in explain["message"]
    assert sorted(c["instance"] for c in explain["flow"]["target_candidates"]) == sorted([db["instance"],
                                                                                         twin["instance"]])
    for instance, code in ((db["instance"], "ENI_SG_RULES_MISMATCH"), (twin["instance"], "CANNOT_ROUTE")):
        run = filtered_run(app["address"], db["address"], 5432)
        hosts = {"web1": {"instance_id": app["instance"], "placement": {"region": REGION}},
                 "db1": {"instance_id": instance, "placement": {"region": REGION}}}
        ex.explain_run(run, ex.inventory_options(hosts, endpoint_url=moto_server))
        explain = run["pairs"][0]["explain"]
        assert explain["flow"]["target_instance"] == instance and explain["code"] == code


def test_more_specific_route_to_an_internet_gateway_is_proposed_for_removal(ec2, moto_server):
    app = vpc_with_instance(ec2, "10.47.0.0/16", "10.47.1.0/24", "10.47.1.10", "web1")
    data = vpc_with_instance(ec2, "10.48.0.0/16", "10.48.2.0/24", "10.48.2.20", "db1", ingress=[
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.47.0.0/16"}]}])
    pcx = ec2.create_vpc_peering_connection(VpcId=app["vpc"], PeerVpcId=data["vpc"])["VpcPeeringConnection"]
    pcx = pcx["VpcPeeringConnectionId"]
    ec2.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
    ec2.create_route(RouteTableId=app["table"], DestinationCidrBlock="10.48.0.0/16", VpcPeeringConnectionId=pcx)
    ec2.create_route(RouteTableId=data["table"], DestinationCidrBlock="10.47.0.0/16", VpcPeeringConnectionId=pcx)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=app["vpc"])
    ec2.create_route(RouteTableId=app["table"], DestinationCidrBlock="10.48.2.0/24", GatewayId=igw)
    run = filtered_run(app["address"], data["address"], 6379)
    ex.explain_run(run, options(moto_server))
    explain = run["pairs"][0]["explain"]
    assert explain["code"] == "NO_ROUTE_TO_DESTINATION" and explain["rule"]["target"] == igw
    assert explain["fix"] == ("remove route 10.48.2.0/24 -> %s from %s (it is more specific than route 10.48.0.0/16"
                              " -> %s, which leads to %s)" % (igw, app["table"], pcx, data["vpc"]))
    ec2.delete_route(RouteTableId=app["table"], DestinationCidrBlock="10.48.2.0/24")
    run = filtered_run(app["address"], data["address"], 6379)
    ex.explain_run(run, options(moto_server))
    assert run["pairs"][0]["explain"]["code"] == "CONFIGURATION_ALLOWS"
