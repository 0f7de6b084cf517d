"""The EC2 explainer's evaluation (plugins/plugin_utils/ec2_explain.py) over hand-made Describe* data:
security groups (union, group references, prefix lists, egress), network ACLs (first match by
number, both directions, ephemeral return ports), routes (main or explicit table, peering) and the
run model. No AWS, no moto: the dicts have the shapes boto3 returns."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import ec2_explain as ex  # noqa: E402

WEB_IP, DB_IP, OTHER_IP = "10.0.1.10", "10.0.2.20", "10.1.3.30"


def sg(group_id, name, ingress=(), egress=None):
    """A security group as DescribeSecurityGroups returns it; egress defaults to AWS's allow-all."""
    if egress is None:
        egress = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    return {"GroupId": group_id, "GroupName": name, "IpPermissions": list(ingress), "IpPermissionsEgress": list(egress)}


def tcp(port, to_port=None, **peers):
    rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": to_port or port, "IpRanges": [], "UserIdGroupPairs": [],
            "PrefixListIds": []}
    if "cidr" in peers:
        rule["IpRanges"] = [{"CidrIp": peers["cidr"]}]
    if "group" in peers:
        rule["UserIdGroupPairs"] = [{"GroupId": peers["group"]}]
    if "prefix_list" in peers:
        rule["PrefixListIds"] = [{"PrefixListId": peers["prefix_list"]}]
    return rule


def entry(number, action, egress, cidr="0.0.0.0/0", protocol="-1", ports=None, icmp=None):
    item = {"RuleNumber": number, "RuleAction": action, "Egress": egress, "CidrBlock": cidr, "Protocol": protocol}
    if ports:
        item["PortRange"] = {"From": ports[0], "To": ports[1]}
    if icmp is not None:
        item["IcmpTypeCode"] = {"Type": icmp, "Code": -1}
    return item


def default_acl_entries():
    return [entry(100, "allow", False), entry(32767, "deny", False),
            entry(100, "allow", True), entry(32767, "deny", True)]


def eni(eni_id, ip, subnet, vpc, groups, instance):
    return {"NetworkInterfaceId": eni_id, "SubnetId": subnet, "VpcId": vpc, "PrivateIpAddress": ip,
            "PrivateIpAddresses": [{"PrivateIpAddress": ip, "Primary": True}],
            "Groups": [{"GroupId": g} for g in groups], "Attachment": {"InstanceId": instance}}


def world():
    """Two subnets of vpc-a (web, db), one subnet of vpc-b (other), peered; default ACLs; db allows 5432 from web."""
    return {
        "network_interfaces": [eni("eni-web", WEB_IP, "subnet-web", "vpc-a", ["sg-web"], "i-web"),
                               eni("eni-db", DB_IP, "subnet-db", "vpc-a", ["sg-db"], "i-db"),
                               eni("eni-other", OTHER_IP, "subnet-other", "vpc-b", ["sg-other"], "i-other")],
        "security_groups": [sg("sg-web", "web", [tcp(8080, cidr="10.0.0.0/16")]),
                            sg("sg-db", "db", [tcp(5432, group="sg-web")]),
                            sg("sg-other", "other", [tcp(9000, cidr="10.0.0.0/16")])],
        "network_acls": [{"NetworkAclId": "acl-a", "VpcId": "vpc-a", "IsDefault": True,
                          "Entries": default_acl_entries(),
                          "Associations": [{"SubnetId": "subnet-web"}, {"SubnetId": "subnet-db"}]},
                         {"NetworkAclId": "acl-b", "VpcId": "vpc-b", "IsDefault": True,
                          "Entries": default_acl_entries(),
                          "Associations": [{"SubnetId": "subnet-other"}]}],
        "route_tables": [{"RouteTableId": "rtb-a-main", "VpcId": "vpc-a", "Associations": [{"Main": True}],
                          "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"},
                                     {"DestinationCidrBlock": "10.1.0.0/16", "VpcPeeringConnectionId": "pcx-ab",
                                      "State": "active"}]},
                         {"RouteTableId": "rtb-b-main", "VpcId": "vpc-b", "Associations": [{"Main": True}],
                          "Routes": [{"DestinationCidrBlock": "10.1.0.0/16", "GatewayId": "local", "State": "active"},
                                     {"DestinationCidrBlock": "10.0.0.0/16", "VpcPeeringConnectionId": "pcx-ab",
                                      "State": "active"}]}],
        "subnets": [{"SubnetId": "subnet-web", "VpcId": "vpc-a", "CidrBlock": "10.0.1.0/24"},
                    {"SubnetId": "subnet-db", "VpcId": "vpc-a", "CidrBlock": "10.0.2.0/24"},
                    {"SubnetId": "subnet-other", "VpcId": "vpc-b", "CidrBlock": "10.1.3.0/24"}],
        "vpcs": [{"VpcId": "vpc-a", "CidrBlock": "10.0.0.0/16"}, {"VpcId": "vpc-b", "CidrBlock": "10.1.0.0/16"}],
        "peerings": [{"VpcPeeringConnectionId": "pcx-ab", "Status": {"Code": "active"},
                      "RequesterVpcInfo": {"VpcId": "vpc-a", "CidrBlock": "10.0.0.0/16"},
                      "AccepterVpcInfo": {"VpcId": "vpc-b", "CidrBlock": "10.1.0.0/16"}}],
        "instances": [{"InstanceId": "i-db", "Tags": [{"Key": "Name", "Value": "db1"}]}],
    }


def state_of(data):
    return ex.Ec2State(**data)


def acl_of(data, acl_id):
    return next(acl for acl in data["network_acls"] if acl["NetworkAclId"] == acl_id)


# --- security groups ---------------------------------------------------------------------------------

def test_port_allowed_by_a_rule_naming_the_source_group_is_allowed_and_the_filter_is_on_the_host():
    result = ex.explain_flow(state_of(world()), WEB_IP, DB_IP, "tcp", 5432, data_plane="PORT_FILTERED")
    assert result["status"] == "allowed" and result["code"] == ex.CONFIGURATION_ALLOWS
    assert result["message"].startswith("configuration allows it: the host itself drops it (host firewall)"
                                        " or nothing listens")
    ingress = next(step for step in result["checked"] if step["step"].startswith("security groups ingress"))
    assert ingress["detail"]["group"] == "sg-web" and ingress["detail"]["group_id"] == "sg-db"
    assert result["flow"]["target_name"] == "db1" and result["flow"]["target_instance"] == "i-db"
    assert result["fix"].startswith("look at the target host: its firewall (iptables/nftables, Windows Firewall)"
                                    " for tcp/5432")
    assert ex.explain_flow(state_of(world()), WEB_IP, DB_IP, "tcp", 5432)["fix"] is None  # nothing seen filtered


def test_missing_ingress_rule_names_the_target_group_and_the_rule_to_add():
    result = ex.explain_flow(state_of(world()), WEB_IP, DB_IP, "tcp", 8080, data_plane="PORT_FILTERED")
    assert result["status"] == "blocked" and result["code"] == "ENI_SG_RULES_MISMATCH"
    assert result["fix"] == "add ingress tcp/8080 from sg-web to sg-db"
    assert "sg-db (db)" in result["message"] and "ingress tcp/8080 from 10.0.1.10" in result["message"]
    assert result["rule"]["missing"] == {"direction": "ingress", "protocol": "tcp", "port": 8080, "icmp_type": None,
                                         "peer": "sg-web", "group_id": "sg-db"}
    assert result["component"] == {"type": "security-group", "ids": ["sg-db"], "network_interface": "eni-db"}


def test_any_group_of_the_interface_may_allow_it():
    data = world()
    data["network_interfaces"][1]["Groups"].append({"GroupId": "sg-extra"})
    data["security_groups"].append(sg("sg-extra", "extra", [tcp(8000, 8100, cidr="10.0.1.0/24")]))
    assert ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 8080)["status"] == "allowed"


def test_source_egress_is_checked_too():
    data = world()
    data["security_groups"][0]["IpPermissionsEgress"] = [tcp(443, cidr="0.0.0.0/0")]
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432)
    assert result["code"] == "ENI_SG_RULES_MISMATCH"
    assert result["explanations"][0]["direction"] == "egress"
    assert result["fix"] == "add egress tcp/5432 to sg-db in sg-web"


def test_prefix_list_in_a_rule_is_resolved_to_its_entries():
    data = world()
    data["security_groups"][1]["IpPermissions"] = [tcp(5432, prefix_list="pl-app")]
    allowed = ex.explain_flow(ex.Ec2State(prefix_lists={"pl-app": ["10.0.1.0/28"]}, **data), WEB_IP, DB_IP, "tcp", 5432)
    assert allowed["status"] == "allowed"
    ingress = next(step for step in allowed["checked"] if "ingress" in step["step"])
    assert ingress["detail"]["prefix_list"] == "pl-app" and ingress["detail"]["cidr"] == "10.0.1.0/28"
    elsewhere = ex.explain_flow(ex.Ec2State(prefix_lists={"pl-app": ["10.9.0.0/16"]}, **data), WEB_IP, DB_IP,
                                "tcp", 5432)
    assert elsewhere["code"] == "ENI_SG_RULES_MISMATCH"
    unread = ex.explain_flow(ex.Ec2State(**data), WEB_IP, DB_IP, "tcp", 5432)
    assert unread["status"] == "unknown" and "pl-app" in unread["message"]


def test_icmp_echo_needs_an_icmp_rule_of_type_8():
    data = world()
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp", data_plane="ICMP_FILTERED")
    assert result["code"] == "ENI_SG_RULES_MISMATCH"
    assert result["fix"] == "add ingress icmp echo request (type 8) from sg-web to sg-db"
    data["security_groups"][1]["IpPermissions"].append({"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                                                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    assert ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp")["status"] == "allowed"


# --- network ACLs ------------------------------------------------------------------------------------

def test_acl_rules_are_evaluated_in_number_order_first_match_wins():
    acl = {"NetworkAclId": "acl-x", "Entries": [
        entry(200, "allow", False, protocol="6", ports=(5432, 5432)),
        entry(100, "deny", False, cidr="10.0.1.0/24", protocol="6", ports=(5000, 6000)),
        entry(32767, "deny", False)]}
    (segment,) = ex.evaluate_acl_ports(acl, False, "tcp", (5432, 5432), WEB_IP)
    assert segment["action"] == "deny" and segment["entry"]["rule_number"] == 100
    (segment,) = ex.evaluate_acl_ports(acl, False, "tcp", (5432, 5432), "10.0.9.9")  # rule 100 names another CIDR
    assert segment["action"] == "allow" and segment["entry"]["rule_number"] == 200


def test_acl_deny_names_the_entry_number_and_an_allow_numbered_before_it():
    data = world()
    acl_of(data, "acl-a")["Entries"].append(entry(90, "deny", False, cidr="10.0.1.0/24", protocol="6",
                                                  ports=(5432, 5432)))
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432, data_plane="PORT_FILTERED")
    assert result["code"] == "SUBNET_ACL_RESTRICTION"
    assert result["rule"]["rule_number"] == 90 and result["rule"]["action"] == "deny"
    assert "rule 90" in result["message"] and "acl-a" in result["message"]
    assert result["fix"] == ("add inbound rule allow tcp/5432 from 10.0.1.0/24 to acl-a, numbered 89 (before deny"
                             " rule 90)")


def test_acl_does_not_apply_inside_one_subnet():
    data = world()
    data["network_interfaces"].append(eni("eni-web2", "10.0.1.11", "subnet-web", "vpc-a", ["sg-web"], "i-web2"))
    acl_of(data, "acl-a")["Entries"] = [entry(32767, "deny", False), entry(32767, "deny", True)]
    result = ex.explain_flow(state_of(data), WEB_IP, "10.0.1.11", "tcp", 8080)
    assert result["status"] == "allowed"
    assert not any("network ACL" in step["step"] for step in result["checked"])


def test_return_traffic_to_ephemeral_ports_must_pass_the_acls_both_ways():
    data = world()
    # the db subnet's ACL answers only to ports 1024-40000: Linux clients use 32768-60999
    acl_of(data, "acl-a")["Entries"] = [
        entry(100, "allow", False), entry(32767, "deny", False),
        entry(100, "allow", True, protocol="6", ports=(5432, 5432)),
        entry(110, "allow", True, protocol="6", ports=(1024, 40000)),
        entry(32767, "deny", True)]
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432)
    assert result["code"] == "SUBNET_ACL_RESTRICTION"
    block = result["explanations"][0]
    assert block["direction"] == "outbound (reply)" and block["rule"]["rule_number"] == "*"
    assert "ports 40001-60999" in block["message"] and "some of outbound" in block["message"]
    assert "allow tcp/32768-60999 to 10.0.1.0/24" in result["fix"]
    windows = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432, ephemeral=(1024, 5000))
    assert windows["status"] == "allowed"


def test_icmp_reply_needs_echo_reply_out_of_the_target_subnet():
    data = world()
    data["security_groups"][1]["IpPermissions"].append({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                                                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    acl_of(data, "acl-a")["Entries"] = [entry(100, "allow", False), entry(32767, "deny", False),
                                        entry(100, "allow", True, protocol="6"), entry(32767, "deny", True)]
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp")
    first = result["explanations"][0]
    assert first["code"] == "SUBNET_ACL_RESTRICTION" and first["direction"] == "outbound (request)"
    assert any(b["direction"] == "outbound (reply)" and "echo reply (type 0)" in b["message"]
               for b in result["explanations"])


def test_subnet_without_explicit_acl_uses_the_vpc_default():
    data = world()
    acl_of(data, "acl-a")["Associations"] = []
    assert ex.Ec2State(**data).acl_for("subnet-db")["NetworkAclId"] == "acl-a"


# --- routes and peering --------------------------------------------------------------------------------

def test_peered_vpcs_route_through_the_active_peering_both_ways():
    result = ex.explain_flow(state_of(world()), WEB_IP, OTHER_IP, "tcp", 9000)
    assert result["status"] == "allowed"
    routes = [step for step in result["checked"] if step["step"].startswith("route")]
    assert [step["detail"]["target"] for step in routes] == ["pcx-ab", "pcx-ab"]


def test_missing_return_route_is_no_route_to_destination_with_the_peering_to_use():
    data = world()
    data["route_tables"][1]["Routes"].pop()  # vpc-b forgot the route back
    result = ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)
    assert result["code"] == "NO_ROUTE_TO_DESTINATION"
    assert result["explanations"][0]["direction"] == "reply"
    assert result["fix"] == "add route 10.0.0.0/16 -> pcx-ab to rtb-b-main"


def test_explicit_route_table_association_wins_over_the_main_table():
    data = world()
    data["route_tables"].append({"RouteTableId": "rtb-web", "VpcId": "vpc-a",
                                 "Associations": [{"SubnetId": "subnet-web"}],
                                 "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"},
                                            {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}]})
    result = ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)
    assert result["code"] == "NO_ROUTE_TO_DESTINATION"
    assert result["rule"]["route_table"] == "rtb-web" and result["rule"]["target"] == "igw-1"
    assert "0.0.0.0/0 -> igw-1" in result["message"]


def test_peering_not_active_and_blackhole_routes_are_bad_state():
    data = world()
    data["peerings"][0]["Status"] = {"Code": "pending-acceptance"}
    pending = ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)
    assert pending["code"] == "BAD_STATE" and pending["fix"].startswith("accept VPC peering connection pcx-ab")
    data = world()
    data["route_tables"][0]["Routes"][1]["State"] = "blackhole"
    assert ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)["code"] == "BAD_STATE_ROUTE"


def test_longest_prefix_wins_and_prefix_list_destinations_count():
    table = {"RouteTableId": "rtb", "Routes": [{"DestinationCidrBlock": "10.0.0.0/8", "GatewayId": "local"},
                                               {"DestinationPrefixListId": "pl-1", "TransitGatewayId": "tgw-1"}]}
    route = ex.lookup_route(table, "10.1.2.3", {"pl-1": ["10.1.0.0/16"]})
    assert route["TransitGatewayId"] == "tgw-1"
    assert ex.lookup_route(table, "10.2.0.1", {"pl-1": ["10.1.0.0/16"]})["GatewayId"] == "local"


def test_transit_gateway_routes_are_reported_not_evaluated():
    data = world()
    data["route_tables"][0]["Routes"][1] = {"DestinationCidrBlock": "10.1.0.0/16", "TransitGatewayId": "tgw-1",
                                            "State": "active"}
    result = ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)
    assert result["status"] == "unknown" and "tgw-1" in result["message"]
    assert "TGW_RTB_CANNOT_ROUTE" in result["message"]


def test_address_outside_ec2_is_not_evaluated_beyond_the_source_side():
    data = world()
    data["route_tables"][0]["Routes"].append({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1",
                                              "State": "active"})
    result = ex.explain_flow(state_of(data), WEB_IP, "192.0.2.1", "tcp", 80)
    assert result["status"] == "unknown" and result["code"] == "NOT_EVALUATED"
    assert any("only the source side is evaluated" in item for item in result["unknown"])
    assert [step["verdict"] for step in result["checked"] if step["step"].startswith("security groups")] == ["allow"]
    # what the source's side shows still counts: without the default route nothing leaves the VPC
    no_route = ex.explain_flow(state_of(world()), WEB_IP, "192.0.2.1", "tcp", 80)
    assert no_route["status"] == "blocked" and no_route["code"] == "NO_ROUTE_TO_DESTINATION"
    neither = ex.explain_flow(state_of(world()), "192.0.2.9", "192.0.2.1", "tcp", 80)
    assert neither["status"] == "unknown" and neither["code"] == "NOT_EVALUATED" and neither["checked"] == []


def test_bad_flow_arguments_name_the_field():
    with pytest.raises(ValueError, match="^port: 70000 is not a port"):
        ex.explain_flow(state_of(world()), WEB_IP, DB_IP, "tcp", 70000)
    with pytest.raises(ValueError, match="^protocol: 'gre'"):
        ex.explain_flow(state_of(world()), WEB_IP, DB_IP, "gre", 1)


# --- the run model ---------------------------------------------------------------------------------------

def _pair(source, target, address, code, tcp=(), notes=()):
    return {"source": source, "target": target, "address": address, "kind": "diagnose", "ok": code == "OK",
            "layers": {"neighbour": None, "icmp": None, "http": [],
                       "tcp": [{"target": "%s:%d" % (address, port), "kind": "tcp", "state": state, "ok": False,
                                "timings": {}, "error": None, "detail": {"port": port}} for port, state in tcp]},
            "verdict": {"first_failing_layer": "transport", "code": code, "hint": "", "evidence": [],
                        "notes": [{"code": c, "hint": ""} for c in notes]},
            "explain": None, "capture": None, "baseline": None}


def _run(*pairs):
    return {"schema_version": 1, "sources": [{"name": "web1", "address": WEB_IP, "status": "ran"}],
            "targets": [], "pairs": list(pairs)}


def test_explain_run_explains_only_filtered_pairs_and_every_filtered_port():
    ok = _pair("web1", "db1", DB_IP, "OK", tcp=[(5432, "open")])
    filtered = _pair("web1", "db1", DB_IP, "PORT_FILTERED", tcp=[(5432, "filtered"), (8080, "filtered"), (22, "open")],
                     notes=["ICMP_FILTERED"])
    run = _run(ok, filtered)
    summary = ex.explain_run(run, state=state_of(world()))
    assert summary == {"explained": 1, "error": None}
    assert ok["explain"] is None
    explain = filtered["explain"]
    assert [(f["flow"]["protocol"], f["flow"]["port"]) for f in explain["flows"]] == [("tcp", 5432), ("tcp", 8080),
                                                                                      ("icmp", None)]
    assert explain["code"] == "ENI_SG_RULES_MISMATCH" and explain["flow"]["port"] == 8080  # the first blocked flow
    assert explain["flows"][0]["message"].startswith("configuration allows it: the host itself drops it")


def test_explain_run_takes_timeouts_and_reports_an_api_error_without_raising(monkeypatch):
    pair = _pair("web1", "db1", DB_IP, "TCP_TIMEOUT", tcp=[(5432, "filtered")])

    def refuse(self, addresses):
        raise ex.Ec2ExplainError("no AWS credentials found")

    monkeypatch.setattr(ex.Ec2Fetcher, "state_for", refuse)
    summary = ex.explain_run(_run(pair), {"region": "eu-west-1"})
    assert summary == {"explained": 1, "error": "no AWS credentials found"}
    assert pair["explain"]["status"] == "unknown" and "no AWS credentials" in pair["explain"]["message"]


def test_explain_run_keeps_the_run_model_otherwise_unchanged():
    pair = _pair("web1", "db1", DB_IP, "PORT_FILTERED", tcp=[(8080, "filtered")])
    run = _run(pair)
    before = copy.deepcopy(run)
    ex.explain_run(run, state=state_of(world()))
    pair_before = before["pairs"][0]
    assert {k: v for k, v in pair.items() if k != "explain"} == {k: v for k, v in pair_before.items() if k != "explain"}
    assert set(pair["explain"]) == {"status", "code", "message", "fix", "component", "rule", "explanations", "checked",
                                    "unknown", "mtu", "flow", "flows"}


def test_fetcher_rejects_an_unknown_region_before_any_call(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ex.Ec2ExplainError, match="region: 'xx-nowhere-1' is not an EC2 region"):
        ex.Ec2Fetcher(region="xx-nowhere-1", endpoint_url="http://127.0.0.1:9").client()


def test_fetcher_without_credentials_says_so(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ex.Ec2ExplainError, match="no AWS credentials found"):
        ex.Ec2Fetcher(region="eu-west-1", endpoint_url="http://127.0.0.1:9").client()


def test_ipv6_flows_use_ipv6_ranges_and_entries():
    data = world()
    v6_web, v6_db = "2001:db8:1::10", "2001:db8:2::20"
    data["network_interfaces"][0]["Ipv6Addresses"] = [{"Ipv6Address": v6_web}]
    data["network_interfaces"][1]["Ipv6Addresses"] = [{"Ipv6Address": v6_db}]
    data["security_groups"][1]["IpPermissions"] = [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                                                    "Ipv6Ranges": [{"CidrIpv6": "2001:db8:1::/64"}]}]
    data["security_groups"][0]["IpPermissionsEgress"] = [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    data["route_tables"][0]["Routes"].append({"DestinationIpv6CidrBlock": "2001:db8::/32", "GatewayId": "local"})
    acl_of(data, "acl-a")["Entries"] = [dict(e, CidrBlock=None, Ipv6CidrBlock="::/0") for e in default_acl_entries()]
    assert ex.explain_flow(state_of(data), v6_web, v6_db, "tcp", 5432)["status"] == "allowed"
    # an IPv4 rule never admits IPv6: only the IPv6 range counts
    data["security_groups"][1]["IpPermissions"] = [tcp(5432, cidr="0.0.0.0/0")]
    assert ex.explain_flow(state_of(data), v6_web, v6_db, "tcp", 5432)["code"] == "ENI_SG_RULES_MISMATCH"


class _RecordingClient(object):
    """A stand-in boto3 EC2 client answering from world(); records each operation called."""

    def __init__(self, data):
        self.data, self.calls = data, []

    def can_paginate(self, operation):
        return False

    def __getattr__(self, operation):
        answers = {
            "describe_network_interfaces": {"NetworkInterfaces": self.data["network_interfaces"]},
            "describe_security_groups": {"SecurityGroups": self.data["security_groups"]},
            "describe_network_acls": {"NetworkAcls": self.data["network_acls"]},
            "describe_route_tables": {"RouteTables": self.data["route_tables"]},
            "describe_subnets": {"Subnets": self.data["subnets"]},
            "describe_vpcs": {"Vpcs": self.data["vpcs"]},
            "describe_vpc_peering_connections": {"VpcPeeringConnections": self.data["peerings"]},
            "describe_managed_prefix_lists": {"PrefixLists": [{"PrefixListId": "pl-app", "PrefixListName": "app"}]},
            "get_managed_prefix_list_entries": {"Entries": [{"Cidr": "10.0.1.0/28"}]},
            "describe_instances": {"Reservations": [{"Instances": self.data["instances"]}]},
        }
        if operation not in answers:
            raise AttributeError(operation)

        def call(**kwargs):
            self.calls.append(operation)
            return answers[operation]
        return call


def test_fetcher_makes_only_the_read_only_calls_that_docs_ec2_md_allows():
    import json
    import re

    data = world()
    data["security_groups"][1]["IpPermissions"] = [tcp(5432, prefix_list="pl-app")]
    client = _RecordingClient(data)
    state = ex.Ec2Fetcher(client=client).state_for([WEB_IP, DB_IP])
    assert ex.explain_flow(state, WEB_IP, DB_IP, "tcp", 5432)["status"] == "allowed"  # the prefix list was read
    actions = set("ec2:" + "".join(word.capitalize() for word in call.split("_")) for call in client.calls)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ec2.md").read_text()
    policy = json.loads(re.search(r"```json\n(\{\n  \"Version\".*?)```", doc, re.S).group(1))
    documented = set(policy["Statement"][0]["Action"])
    assert actions == documented - {"ec2:DescribeRegions"}  # DescribeRegions: the inventory's, without regions
    assert all(re.match(r"ec2:(Describe|Get)", action) for action in documented)


def test_http_connect_timeout_is_a_filtered_port_but_a_hanging_application_is_not():
    # read from the outcome's fields (module_utils/netcheck/outcome.py), never from the error text:
    # the texts here say the opposite of the fields on purpose
    connect = {"target": "http://%s:8080/health" % DB_IP, "kind": "http", "state": "failed", "ok": False,
               "error": "connect: refused", "timings": {},
               "detail": {"phase": "connect", "outcome": {"reason": "no_answer", "phase": "connect"}}}
    refused = {"target": "http://%s:8081/" % DB_IP, "kind": "http", "state": "failed", "ok": False,
               "error": "connect: no answer within the 3 s timeout", "timings": {},
               "detail": {"phase": "connect", "outcome": {"reason": "rst", "phase": "connect"}}}
    hanging = {"target": "https://%s/" % DB_IP, "kind": "http", "state": "failed", "ok": False,
               "error": "connect: no answer within the 3 s timeout", "timings": {},
               "detail": {"phase": "processing", "outcome": {"reason": "http_timeout", "phase": "processing"}}}
    filtered = _pair("web1", "db1", DB_IP, "PORT_FILTERED")
    filtered["layers"]["http"] = [connect, refused, hanging]
    assert ex.flows_of_pair(filtered) == [("tcp", 8080, "PORT_FILTERED")]
    slow_app = _pair("web1", "db1", DB_IP, "HTTP_TIMEOUT", tcp=[(443, "open")])
    slow_app["layers"]["http"] = [hanging]
    run = _run(slow_app)
    assert ex.explain_run(run, state=state_of(world())) == {"explained": 0, "error": None}
    assert slow_app["explain"] is None


def test_explainer_is_on_for_an_ec2_inventory_in_its_main_region_and_off_otherwise():
    ec2_hosts = {"web1": {"instance_id": "i-1", "placement": {"region": "eu-west-1"}},
                 "web2": {"instance_id": "i-2", "placement": {"region": "eu-west-1"}},
                 "db1": {"instance_id": "i-3", "placement": {"region": "us-east-1"}}}
    instances = {"web1": {"instance_id": "i-1", "vpc_id": None}, "web2": {"instance_id": "i-2", "vpc_id": None},
                 "db1": {"instance_id": "i-3", "vpc_id": None}}
    assert ex.inventory_options(ec2_hosts) == {"region": "eu-west-1", "instances": instances}
    assert ex.inventory_options(ec2_hosts, region="us-east-1", endpoint_url=None) == {"region": "us-east-1",
                                                                                      "instances": instances}
    assert ex.inventory_options(ec2_hosts, enabled=False) is None
    lab_hosts = {"nclab1": {"ansible_host": "10.77.0.11"}}
    assert ex.inventory_options(lab_hosts) is None
    assert ex.inventory_options(lab_hosts, enabled=True, region="eu-west-1") == {"region": "eu-west-1"}


# --- ICMP type and code, ambiguous addresses, shadowing routes, path MTU (issue 21) ------------------

def _icmp_entry(number, action, egress, icmp_type, icmp_code, cidr="0.0.0.0/0"):
    item = entry(number, action, egress, cidr=cidr, protocol="1")
    item["IcmpTypeCode"] = {"Type": icmp_type, "Code": icmp_code}
    return item


def _allow_ping(data):
    data["security_groups"][1]["IpPermissions"].append({"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                                                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    return data


def test_acl_icmp_entry_blocks_only_the_type_and_code_it_names():
    data = _allow_ping(world())
    acl_of(data, "acl-a")["Entries"].append(_icmp_entry(90, "deny", False, 8, 5))  # code 5: not a ping
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp", data_plane="ICMP_FILTERED")
    assert result["status"] == "allowed", result["message"]
    inbound = next(step for step in result["checked"] if step["step"].startswith("network ACL inbound of subnet-db"))
    assert inbound["detail"][0]["entry"]["rule_number"] == 100
    for code in (0, -1):  # the echo request's own code, and any code
        acl_of(data, "acl-a")["Entries"][-1] = _icmp_entry(90, "deny", False, 8, code)
        blocked = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp", data_plane="ICMP_FILTERED")
        assert blocked["code"] == "SUBNET_ACL_RESTRICTION" and blocked["rule"]["rule_number"] == 90
        assert blocked["rule"]["icmp_type"] == 8 and blocked["rule"]["icmp_code"] == code


def test_security_group_icmp_rule_names_type_and_code():
    data = world()
    data["security_groups"][1]["IpPermissions"].append({"IpProtocol": "icmp", "FromPort": 8, "ToPort": 5,
                                                        "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    assert ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp")["code"] == "ENI_SG_RULES_MISMATCH"
    data["security_groups"][1]["IpPermissions"][-1]["ToPort"] = 0
    assert ex.explain_flow(state_of(data), WEB_IP, DB_IP, "icmp")["status"] == "allowed"


def _twin_vpc(data):
    """vpc-c: not peered, on vpc-a's CIDR, with an interface holding DB_IP as well."""
    data["vpcs"].append({"VpcId": "vpc-c", "CidrBlock": "10.0.0.0/16"})
    data["subnets"].append({"SubnetId": "subnet-c", "VpcId": "vpc-c", "CidrBlock": "10.0.2.0/24"})
    data["network_interfaces"].append(eni("eni-twin", DB_IP, "subnet-c", "vpc-c", ["sg-db"], "i-twin"))
    data["route_tables"].append({"RouteTableId": "rtb-c-main", "VpcId": "vpc-c", "Associations": [{"Main": True}],
                                 "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]})
    return data


def test_address_held_in_two_unpeered_vpcs_is_ambiguous_whatever_the_api_order():
    data = _twin_vpc(world())
    for order in (list(data["network_interfaces"]), list(reversed(data["network_interfaces"]))):
        reordered = dict(data)
        reordered["network_interfaces"] = order
        result = ex.explain_flow(ex.Ec2State(**reordered), WEB_IP, DB_IP, "tcp", 5432,
                                 data_plane="PORT_FILTERED")
        assert result["status"] == "unknown" and result["code"] == "NOT_EVALUATED"
        assert "held by 2 network interfaces" in result["message"]
        assert [c["network_interface"] for c in result["flow"]["target_candidates"]] == ["eni-db", "eni-twin"]
        assert result["flow"]["target_interface"] is None and result["checked"] == []


def test_inventory_instance_id_or_vpc_tells_which_interface_holds_the_address():
    data = _twin_vpc(world())
    mine = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432, data_plane="PORT_FILTERED",
                           target_hint={"instance_id": "i-db"})
    assert mine["status"] == "allowed" and mine["flow"]["target_interface"] == "eni-db"
    twin = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432, data_plane="PORT_FILTERED",
                           target_hint={"instance_id": None, "vpc_id": "vpc-c"})
    assert twin["flow"]["target_interface"] == "eni-twin"
    assert twin["code"] == "CANNOT_ROUTE"  # vpc-a's local route keeps 10.0.2.20 inside vpc-a


def test_more_specific_route_to_a_gateway_is_proposed_for_removal_not_the_existing_peering_route():
    data = world()
    data["route_tables"][0]["Routes"].append({"DestinationCidrBlock": "10.1.3.0/24", "GatewayId": "igw-1",
                                              "State": "active"})
    result = ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)
    assert result["code"] == "NO_ROUTE_TO_DESTINATION" and result["rule"]["target"] == "igw-1"
    assert result["fix"] == ("remove route 10.1.3.0/24 -> igw-1 from rtb-a-main (it is more specific than route"
                             " 10.1.0.0/16 -> pcx-ab, which leads to vpc-b)")
    data["route_tables"][0]["Routes"].pop(1)  # no peering route behind it: then the route is added
    assert ex.explain_flow(state_of(data), WEB_IP, OTHER_IP, "tcp", 9000)["fix"] == \
        "add route 10.1.0.0/16 -> pcx-ab to rtb-a-main"


def _inter_region(data):
    """vpc-b lives in another region: its interfaces are not in this region's data."""
    data["peerings"][0]["RequesterVpcInfo"]["Region"] = "eu-west-1"
    data["peerings"][0]["AccepterVpcInfo"]["Region"] = "us-east-1"
    data["network_interfaces"] = [item for item in data["network_interfaces"] if item["VpcId"] != "vpc-b"]
    data["vpcs"] = [vpc for vpc in data["vpcs"] if vpc["VpcId"] != "vpc-b"]
    return ex.Ec2State(region="eu-west-1", **data)


def test_target_across_an_inter_region_peering_is_evaluated_on_the_source_side_with_the_mtu_finding():
    data = world()
    result = ex.explain_flow(_inter_region(data), WEB_IP, OTHER_IP, "tcp", 9000, data_plane="PORT_FILTERED")
    assert result["status"] == "unknown" and result["code"] == "NOT_EVALUATED"
    assert "only the source side is evaluated" in result["message"]
    assert "vpc-b in region us-east-1" in result["message"]
    (mtu,) = result["mtu"]
    assert mtu["code"] == "PMTUD_ICMP_BLOCKED" and mtu["path_mtu"] == 8500 and mtu["instance_mtu"] == 9001
    assert mtu["icmp_type"] == 3 and mtu["icmp_code"] == 4 and mtu["network_interface"] == "eni-web"
    assert "inter-region VPC peering pcx-ab" in mtu["message"]
    assert mtu["fix"].startswith("add ingress icmp fragmentation needed (type 3 code 4) from 10.1.0.0/16 to sg-web")
    # a path-MTU verdict of the data plane is explained by that finding
    blackhole = ex.explain_flow(_inter_region(world()), WEB_IP, OTHER_IP, "tcp", 9000, data_plane="MTU_BLACKHOLE")
    assert blackhole["status"] == "blocked" and blackhole["code"] == "PMTUD_ICMP_BLOCKED"
    # allowed by a rule of exactly that type and code: no finding
    data = world()
    data["security_groups"][0]["IpPermissions"].append({"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4,
                                                        "IpRanges": [{"CidrIp": "10.1.0.0/16"}]})
    assert ex.explain_flow(_inter_region(data), WEB_IP, OTHER_IP, "tcp", 9000)["mtu"] == []
    # ... unless the subnet's network ACL denies it (type 3 code 4; a deny of code 3 does not count)
    acl_of(data, "acl-a")["Entries"].append(_icmp_entry(50, "deny", False, 3, 3))
    assert ex.explain_flow(_inter_region(data), WEB_IP, OTHER_IP, "tcp", 9000)["mtu"] == []
    acl_of(data, "acl-a")["Entries"].append(_icmp_entry(60, "deny", False, 3, 4))
    (mtu,) = ex.explain_flow(_inter_region(data), WEB_IP, OTHER_IP, "tcp", 9000)["mtu"]
    assert "network ACL acl-a (rule 60)" in mtu["message"] and "numbered 59 (before deny rule 60)" in mtu["fix"]


def test_path_inside_a_region_has_no_mtu_finding_and_an_internet_gateway_path_has_1500():
    assert ex.explain_flow(state_of(world()), WEB_IP, OTHER_IP, "tcp", 9000)["mtu"] == []  # peering in one region
    data = world()
    data["route_tables"][0]["Routes"].append({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1",
                                              "State": "active"})
    (mtu,) = ex.explain_flow(state_of(data), WEB_IP, "192.0.2.1", "tcp", 443)["mtu"]
    assert mtu["path_mtu"] == 1500 and mtu["via"] == "an internet gateway igw-1"
    assert mtu["fix"].startswith("add ingress icmp fragmentation needed (type 3 code 4) from 0.0.0.0/0 to sg-web")
    assert mtu["lab_stand_in"] == "a 1500-byte link between routers"


def test_blocking_components_name_the_lab_stand_in():
    data = world()
    acl_of(data, "acl-a")["Entries"].append(entry(90, "deny", False, cidr="10.0.1.0/24", protocol="6",
                                                  ports=(5432, 5432)))
    result = ex.explain_flow(state_of(data), WEB_IP, DB_IP, "tcp", 5432)
    assert result["explanations"][0]["lab_stand_in"] == "a router namespace's FORWARD chain"


def test_source_outside_ec2_through_a_vpn_gets_the_targets_way_back_and_its_path_mtu():
    data = world()
    data["route_tables"][0]["Routes"].append({"DestinationCidrBlock": "172.16.0.0/12", "GatewayId": "vgw-1",
                                              "State": "active"})
    data["security_groups"][1]["IpPermissions"].append(tcp(5432, cidr="172.16.0.0/12"))
    result = ex.explain_flow(state_of(data), "172.16.5.5", DB_IP, "tcp", 5432)
    assert result["status"] == "unknown" and "only the target side is evaluated" in result["message"]
    back = next(step for step in result["checked"] if step["step"].startswith("route from subnet-db"))
    assert back["detail"]["target"] == "vgw-1"
    (mtu,) = result["mtu"]
    assert (mtu["leg"], mtu["path_mtu"], mtu["via"]) == ("reply", 1500, "a VPN (virtual private gateway) vgw-1")
    data["route_tables"][0]["Routes"].pop()  # no way back at all
    assert ex.explain_flow(state_of(data), "172.16.5.5", DB_IP, "tcp", 5432)["code"] == "NO_ROUTE_TO_DESTINATION"
