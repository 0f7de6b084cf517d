"""Why EC2's configuration lets a flow through or not: security groups, network ACLs and routes.

The data plane (port_check, net_diagnose) sees that a port is filtered but cannot say who drops
the packets. On EC2 the usual answer is a security group or a network ACL, which only the
configuration names. This module evaluates that configuration the way EC2 applies it and names
the blocking component with AWS Reachability Analyzer's explanation codes:

- security groups: stateful and allow-only; the source interface's egress and the target
  interface's ingress must both allow the flow; rules may name CIDRs, other security groups
  (members' private addresses) or managed prefix lists;
- network ACLs: stateless, numbered, first match wins, both directions, and the return traffic
  goes to the client's ephemeral port; they apply only where the flow crosses a subnet boundary;
- route tables: the subnet's explicit association, else the VPC's main table; longest prefix
  wins; ``local`` inside the VPC, a VPC peering connection to another VPC, and the way back.

Everything here but ``Ec2Fetcher`` is pure: it reads the dicts that the EC2 Describe* calls
return (boto3's shapes) and never talks to AWS. ``Ec2Fetcher`` makes the read-only calls, and
``explain_run`` fills ``pair["explain"]`` in the run model (docs/report.schema.json) for filtered pairs.
"""

from __future__ import annotations

import ipaddress
import re

# Reachability Analyzer's explanation codes for what this module can evaluate.
SG_MISMATCH = "ENI_SG_RULES_MISMATCH"          # the interface's security groups do not allow it
ACL_RESTRICTION = "SUBNET_ACL_RESTRICTION"     # the subnet's network ACL does not allow it
NO_ROUTE = "NO_ROUTE_TO_DESTINATION"           # no route in the subnet's route table leads there
BAD_STATE_ROUTE = "BAD_STATE_ROUTE"            # the route is a blackhole
BAD_STATE = "BAD_STATE"                        # the peering connection is not active
CANNOT_ROUTE = "CANNOT_ROUTE"                  # the route's target does not lead to the destination
TGW_RTB_CANNOT_ROUTE = "TGW_RTB_CANNOT_ROUTE"  # named only as a hint: TGW route tables are not read
# This module's own codes (Reachability Analyzer has none for these).
CONFIGURATION_ALLOWS = "CONFIGURATION_ALLOWS"  # every component allows it: look at the host itself
NOT_EVALUATED = "NOT_EVALUATED"                # an address is no EC2 interface, or the API failed

HOST_DROPS = ("configuration allows it: the host itself drops it (host firewall) or nothing listens"
              " (security groups, network ACLs and routes of both ends allow this flow)")

# The data-plane verdict codes whose pairs get explained (docs/verdict.md).
FILTERED_CODES = ("PORT_FILTERED", "ICMP_FILTERED")
PORT_STATES = ("filtered", "timeout")

# Linux picks client ports from 32768-60999 (net.ipv4.ip_local_port_range); network ACLs must let
# the answers to those ports back in. Windows uses 49152-65535, NAT gateways 1024-65535.
LINUX_EPHEMERAL = (32768, 60999)

# The options of the ec2_explain action (its documentation is library/ec2_explain.py; the
# format is module_utils/netcheck/spec.py's).
EC2_EXPLAIN_SPEC = {
    "source": {"type": "str", "required": True, "description": "Private IP address of the source's network interface."},
    "target": {"type": "str", "required": True, "description": "Private IP address of the target's network interface."},
    "protocol": {"type": "str", "default": "tcp", "choices": ["tcp", "udp", "icmp"],
                 "description": "The flow's protocol (icmp: an echo request and its reply)."},
    "port": {"type": "int", "description": "Destination port (1-65535), for tcp and udp."},
    "data_plane": {"type": "str", "description": "What the data plane saw (a verdict code or a state)."},
    "ephemeral_ports": {"type": "list", "elements": "int", "default": list(LINUX_EPHEMERAL),
                        "description": "The client's ephemeral port range [low, high]."},
    "region": {"type": "str", "description": "The AWS region of both instances."},
    "endpoint_url": {"type": "str", "description": "The EC2 API URL (a VPC endpoint or a stand-in such as moto)."},
    "profile": {"type": "str", "description": "The AWS profile to use."},
}

PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58", "-1": "-1", "all": "-1"}
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "-1": "all"}
ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}


class Ec2ExplainError(Exception):
    """The EC2 API could not be read (credentials, region, permissions, endpoint)."""


# --- the configuration, as Describe* returned it ------------------------------------------------

class Ec2State(object):
    """The Describe* results of one region, indexed for the evaluation.

    Every argument is a list of what boto3 returns under that call's key (``NetworkInterfaces``,
    ``SecurityGroups``, ``NetworkAcls``, ``RouteTables``, ``Subnets``, ``Vpcs``,
    ``VpcPeeringConnections``, ``Reservations[].Instances``), and ``prefix_lists`` maps a prefix
    list id to its entries' CIDRs (``GetManagedPrefixListEntries``).
    """

    def __init__(self, network_interfaces=(), security_groups=(), network_acls=(), route_tables=(),
                 subnets=(), vpcs=(), peerings=(), prefix_lists=None, instances=(), prefix_list_names=None):
        self.network_interfaces = list(network_interfaces)
        self.security_groups = {group["GroupId"]: group for group in security_groups}
        self.network_acls = list(network_acls)
        self.route_tables = list(route_tables)
        self.subnets = {subnet["SubnetId"]: subnet for subnet in subnets}
        self.vpcs = {vpc["VpcId"]: vpc for vpc in vpcs}
        self.peerings = {pcx["VpcPeeringConnectionId"]: pcx for pcx in peerings}
        self.prefix_lists = dict(prefix_lists or {})
        self.prefix_list_names = dict(prefix_list_names or {})
        self.instances = {instance["InstanceId"]: instance for instance in instances}

    def interface_for(self, address):
        """The network interface holding private (or IPv6) ``address``, or None."""
        for eni in self.network_interfaces:
            if address in interface_addresses(eni):
                return eni
        return None

    def groups_of(self, eni):
        """The full security groups of an interface (those Describe returned)."""
        return [self.security_groups.get(group["GroupId"], {"GroupId": group["GroupId"], "IpPermissions": [],
                                                            "IpPermissionsEgress": [], "missing": True})
                for group in eni.get("Groups", [])]

    def acl_for(self, subnet_id):
        """The network ACL associated with the subnet (every subnet has exactly one)."""
        for acl in self.network_acls:
            if any(assoc.get("SubnetId") == subnet_id for assoc in acl.get("Associations", [])):
                return acl
        vpc_id = self.subnets.get(subnet_id, {}).get("VpcId")
        for acl in self.network_acls:  # a subnet without an explicit association uses the VPC's default
            if acl.get("IsDefault") and acl.get("VpcId") == vpc_id:
                return acl
        return None

    def route_table_for(self, subnet_id, vpc_id):
        """The subnet's route table: its explicit association, else the VPC's main table."""
        for table in self.route_tables:
            if any(assoc.get("SubnetId") == subnet_id for assoc in table.get("Associations", [])):
                return table
        for table in self.route_tables:
            if table.get("VpcId") == vpc_id and any(assoc.get("Main") for assoc in table.get("Associations", [])):
                return table
        return None

    def instance_name(self, instance_id):
        for tag in self.instances.get(instance_id, {}).get("Tags", []):
            if tag.get("Key") == "Name":
                return tag.get("Value")
        return None


def interface_addresses(eni):
    """Every private IPv4 and IPv6 address of an interface."""
    addresses = [item["PrivateIpAddress"] for item in eni.get("PrivateIpAddresses", []) if item.get("PrivateIpAddress")]
    if eni.get("PrivateIpAddress") and eni["PrivateIpAddress"] not in addresses:
        addresses.append(eni["PrivateIpAddress"])
    addresses += [item["Ipv6Address"] for item in eni.get("Ipv6Addresses", []) if item.get("Ipv6Address")]
    return addresses


# --- small facts ---------------------------------------------------------------------------------

def _address(value):
    return ipaddress.ip_address(str(value))


def _contains(cidr, address):
    """True when ``cidr`` holds ``address`` (an IPv4 CIDR never holds an IPv6 address)."""
    if not cidr:
        return False
    network = ipaddress.ip_network(str(cidr), strict=False)
    return network.version == address.version and address in network


def protocol_number(protocol):
    """'tcp' / '6' / -1 -> '6' / '-1' (security groups say names, network ACLs numbers)."""
    text = str(protocol).lower()
    return PROTOCOL_NUMBERS.get(text, text)


def describe_flow(protocol, port, icmp_type=None):
    """``tcp/8080``, ``icmp echo-request (type 8)``."""
    name = PROTOCOL_NAMES.get(protocol_number(protocol), protocol)
    if port is not None:
        return "%s/%s" % (name, port)
    if icmp_type in (8, 128):
        return "%s echo-request (type %d)" % (name, icmp_type)
    if icmp_type in (0, 129):
        return "%s echo-reply (type %d)" % (name, icmp_type)
    return name if icmp_type is None else "%s type %s" % (name, icmp_type)


def _ports_text(low, high):
    return str(low) if low == high else "%d-%d" % (low, high)


def _group_label(group):
    name = group.get("GroupName")
    return "%s (%s)" % (group["GroupId"], name) if name else group["GroupId"]


# --- security groups -----------------------------------------------------------------------------

def _permission_covers(permission, protocol, port, icmp_type):
    """Does a security group permission's protocol and port range cover the packet?"""
    rule_protocol = protocol_number(permission.get("IpProtocol", "-1"))
    if rule_protocol == "-1":
        return True
    if rule_protocol != protocol:
        return False
    low, high = permission.get("FromPort"), permission.get("ToPort")
    if protocol in ("1", "58"):
        # for ICMP, FromPort is the type and ToPort the code (-1: any); an echo request has code 0
        return low in (None, -1) or (low == icmp_type and high in (None, -1, 0))
    if low in (None, -1):
        return True
    return low <= port <= high


def _permission_peer(permission, peer, peer_groups, prefix_lists):
    """What in a permission names the peer: a dict saying which CIDR, group or prefix list, or None.

    Returns ``{"unresolved": pl-id}`` when a prefix list is named whose entries are unknown."""
    for item in permission.get("IpRanges", []):
        if _contains(item.get("CidrIp"), peer):
            return {"cidr": item["CidrIp"]}
    for item in permission.get("Ipv6Ranges", []):
        if _contains(item.get("CidrIpv6"), peer):
            return {"cidr": item["CidrIpv6"]}
    for pair in permission.get("UserIdGroupPairs", []):
        if pair.get("GroupId") in peer_groups:
            return {"group": pair["GroupId"]}
    for item in permission.get("PrefixListIds", []):
        entries = prefix_lists.get(item.get("PrefixListId"))
        if entries is None:
            return {"unresolved": item.get("PrefixListId")}
        for cidr in entries:
            if _contains(cidr, peer):
                return {"prefix_list": item["PrefixListId"], "cidr": cidr}
    return None


def _rule_view(group, permission, peer_match, direction):
    """One matching rule, as the explanation shows it."""
    protocol = PROTOCOL_NAMES.get(protocol_number(permission.get("IpProtocol", "-1")), permission.get("IpProtocol"))
    low, high = permission.get("FromPort"), permission.get("ToPort")
    view = {"group_id": group["GroupId"], "group_name": group.get("GroupName"), "direction": direction,
            "protocol": protocol, "from_port": low, "to_port": high}
    view.update(peer_match)
    return view


def evaluate_security_groups(groups, direction, protocol, port, icmp_type, peer, peer_groups, prefix_lists):
    """Security groups allow a packet when any rule of any group allows it (allow-only, a union).

    ``direction`` is ``ingress`` (the peer is the source) or ``egress`` (the peer is the
    destination); ``peer_groups`` are the security groups of the peer's interface, for rules that
    name a group. Returns ``{"verdict": "allow"|"deny"|"unknown", "rule": <the allowing rule>,
    "unresolved": [prefix list ids whose entries were not read]}``."""
    protocol = protocol_number(protocol)
    peer = _address(peer)
    key = "IpPermissions" if direction == "ingress" else "IpPermissionsEgress"
    unresolved = []
    for group in groups:
        for permission in group.get(key, []):
            if not _permission_covers(permission, protocol, port, icmp_type):
                continue
            match = _permission_peer(permission, peer, set(peer_groups), prefix_lists)
            if match is None:
                continue
            if "unresolved" in match:
                unresolved.append(match["unresolved"])
                continue
            return {"verdict": "allow", "rule": _rule_view(group, permission, match, direction), "unresolved": []}
    return {"verdict": "unknown" if unresolved else "deny", "rule": None, "unresolved": unresolved}


# --- network ACLs --------------------------------------------------------------------------------

def _entry_view(entry):
    """A network ACL entry, as the explanation shows it."""
    protocol = PROTOCOL_NAMES.get(str(entry.get("Protocol")), entry.get("Protocol"))
    view = {"rule_number": entry.get("RuleNumber"), "action": entry.get("RuleAction"),
            "direction": "outbound" if entry.get("Egress") else "inbound", "protocol": protocol,
            "cidr": entry.get("CidrBlock") or entry.get("Ipv6CidrBlock")}
    if entry.get("PortRange"):
        view["ports"] = _ports_text(entry["PortRange"]["From"], entry["PortRange"]["To"])
    if entry.get("IcmpTypeCode"):
        view["icmp_type"] = entry["IcmpTypeCode"].get("Type")
        view["icmp_code"] = entry["IcmpTypeCode"].get("Code")
    if entry.get("RuleNumber") == 32767:
        view["rule_number"] = "*"  # the console's name for the final deny every ACL ends with
    return view


def _entry_matches_packet(entry, egress, protocol, icmp_type, peer):
    """Direction, protocol, ICMP type and peer CIDR of an entry (ports are handled by the caller)."""
    if bool(entry.get("Egress")) != egress:
        return False
    if not (_contains(entry.get("CidrBlock"), peer) or _contains(entry.get("Ipv6CidrBlock"), peer)):
        return False
    entry_protocol = str(entry.get("Protocol", "-1"))
    if entry_protocol == "-1":
        return True
    if entry_protocol != protocol:
        return False
    if protocol in ("1", "58") and entry.get("IcmpTypeCode"):
        wanted = entry["IcmpTypeCode"].get("Type", -1)
        return wanted in (-1, None) or wanted == icmp_type
    return True


def evaluate_acl_ports(acl, egress, protocol, ports, peer, icmp_type=None):
    """Evaluate a network ACL for every destination port in ``ports`` = (low, high), first match.

    Entries are read in RuleNumber order; the first that matches a port decides it. Returns the
    port range cut into segments ``[{"from": p, "to": q, "action": "allow"|"deny", "entry": view}]``
    (one segment for a single port or for ICMP). A port no entry matches is denied by the implicit
    final rule (``*``)."""
    protocol = protocol_number(protocol)
    peer = _address(peer)
    entries = sorted(acl.get("Entries", []), key=lambda entry: entry.get("RuleNumber", 0))
    low, high = ports if ports is not None else (None, None)
    pending = [(low, high)]
    segments = []
    for entry in entries:
        if not pending:
            break
        if not _entry_matches_packet(entry, egress, protocol, icmp_type, peer):
            continue
        port_range = entry.get("PortRange") if protocol in ("6", "17") and str(entry.get("Protocol")) != "-1" else None
        still = []
        for start, end in pending:
            if start is None or not port_range:
                segments.append({"from": start, "to": end, "action": entry.get("RuleAction"),
                                 "entry": _entry_view(entry)})
                continue
            cut_low, cut_high = max(start, port_range["From"]), min(end, port_range["To"])
            if cut_low > cut_high:
                still.append((start, end))
                continue
            segments.append({"from": cut_low, "to": cut_high, "action": entry.get("RuleAction"),
                             "entry": _entry_view(entry)})
            if start < cut_low:
                still.append((start, cut_low - 1))
            if cut_high < end:
                still.append((cut_high + 1, end))
        pending = still
    for start, end in pending:
        segments.append({"from": start, "to": end, "action": "deny",
                         "entry": {"rule_number": "*", "action": "deny", "implicit": True,
                                   "direction": "outbound" if egress else "inbound", "protocol": "all",
                                   "cidr": "0.0.0.0/0" if peer.version == 4 else "::/0"}})
    return sorted(segments, key=lambda segment: (segment["from"] is None, segment["from"] or 0))


# --- routes --------------------------------------------------------------------------------------

ROUTE_TARGETS = ("GatewayId", "VpcPeeringConnectionId", "TransitGatewayId", "NatGatewayId", "NetworkInterfaceId",
                 "InstanceId", "EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId",
                 "CoreNetworkArn", "VpcEndpointId")


def route_target(route):
    for key in ROUTE_TARGETS:
        if route.get(key):
            return route[key]
    return None


def _route_view(table, route):
    destination = (route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
                   or route.get("DestinationPrefixListId"))
    return {"route_table": table["RouteTableId"], "destination": destination, "target": route_target(route),
            "state": route.get("State", "active")}


def lookup_route(table, destination, prefix_lists):
    """The most specific route of ``table`` for ``destination`` (longest prefix), or None."""
    destination = _address(destination)
    best, best_length = None, -1
    for route in table.get("Routes", []):
        cidrs = [route.get("DestinationCidrBlock"), route.get("DestinationIpv6CidrBlock")]
        if route.get("DestinationPrefixListId"):
            cidrs += prefix_lists.get(route["DestinationPrefixListId"], [])
        for cidr in cidrs:
            if _contains(cidr, destination):
                length = ipaddress.ip_network(cidr, strict=False).prefixlen
                if length > best_length:
                    best, best_length = route, length
    return best


def vpc_cidrs(vpc):
    cidrs = [item["CidrBlock"] for item in vpc.get("CidrBlockAssociationSet", []) if item.get("CidrBlock")]
    if vpc.get("CidrBlock") and vpc["CidrBlock"] not in cidrs:
        cidrs.insert(0, vpc["CidrBlock"])
    cidrs += [item["Ipv6CidrBlock"] for item in vpc.get("Ipv6CidrBlockAssociationSet", []) if item.get("Ipv6CidrBlock")]
    return cidrs


def _peer_vpc(pcx, vpc_id):
    """The VPC at the other end of a peering connection seen from ``vpc_id`` (None if not an end)."""
    requester = pcx.get("RequesterVpcInfo", {}).get("VpcId")
    accepter = pcx.get("AccepterVpcInfo", {}).get("VpcId")
    if vpc_id == requester:
        return accepter
    if vpc_id == accepter:
        return requester
    return None


def peering_between(state, vpc_a, vpc_b):
    """An active peering connection joining two VPCs, else any peering between them, else None."""
    found = None
    for pcx in state.peerings.values():
        if _peer_vpc(pcx, vpc_a) == vpc_b:
            if pcx.get("Status", {}).get("Code") == "active":
                return pcx
            found = found or pcx
    return found


def evaluate_route(state, subnet_id, vpc_id, destination, destination_vpc):
    """Does the route table of ``subnet_id`` send ``destination`` to ``destination_vpc``?

    Returns ``{"verdict": "allow"|"deny"|"unknown", "code", "route": view, "message", "fix"}``."""
    table = state.route_table_for(subnet_id, vpc_id)
    if table is None:
        return {"verdict": "unknown", "code": None, "route": None,
                "message": "no route table of %s was read (neither an association nor a main table)" % subnet_id,
                "fix": None}
    route = lookup_route(table, destination, state.prefix_lists)
    if route is None:
        return {"verdict": "deny", "code": NO_ROUTE, "route": {"route_table": table["RouteTableId"]},
                "message": "route table %s of %s has no route to %s" % (table["RouteTableId"], subnet_id, destination),
                "fix": _route_fix(state, table, vpc_id, destination, destination_vpc)}
    view = _route_view(table, route)
    if route.get("State") == "blackhole":
        return {"verdict": "deny", "code": BAD_STATE_ROUTE, "route": view,
                "message": "the route %s -> %s in %s is a blackhole (its target is gone)"
                           % (view["destination"], view["target"], view["route_table"]),
                "fix": "replace the blackhole route %s in %s" % (view["destination"], view["route_table"])}
    target = view["target"] or ""
    if target == "local":
        if destination_vpc in (None, vpc_id):
            return {"verdict": "allow", "code": None, "route": view, "message": "local route inside %s" % vpc_id,
                    "fix": None}
        return {"verdict": "deny", "code": CANNOT_ROUTE, "route": view,
                "message": "%s is inside %s's own range but the interface is in %s"
                           % (destination, vpc_id, destination_vpc),
                "fix": None}
    if target.startswith("pcx-"):
        pcx = state.peerings.get(target)
        if pcx is None:
            return {"verdict": "unknown", "code": None, "route": view,
                    "message": "the route leads to peering %s, which Describe did not return" % target, "fix": None}
        status = pcx.get("Status", {}).get("Code")
        if status != "active":
            return {"verdict": "deny", "code": BAD_STATE, "route": view,
                    "message": "the route leads to peering %s, which is %s, not active" % (target, status),
                    "fix": "accept VPC peering connection %s (in the accepter's account and region)" % target
                    if status == "pending-acceptance" else "re-create VPC peering connection %s" % target}
        other = _peer_vpc(pcx, vpc_id)
        if destination_vpc is not None and other != destination_vpc:
            return {"verdict": "deny", "code": CANNOT_ROUTE, "route": view,
                    "message": "the route sends %s to peering %s, which leads to %s, not to %s"
                               % (destination, target, other, destination_vpc),
                    "fix": _route_fix(state, table, vpc_id, destination, destination_vpc)}
        return {"verdict": "allow", "code": None, "route": view,
                "message": "route %s -> %s to %s" % (view["destination"], target, other), "fix": None}
    if target.startswith("tgw-"):
        return {"verdict": "unknown", "code": None, "route": view,
                "message": "the route leads to transit gateway %s, whose route tables are not evaluated here (if they"
                           " lack a route, Reachability Analyzer says %s)" % (target, TGW_RTB_CANNOT_ROUTE),
                "fix": None}
    if target.startswith(("eni-", "i-", "vpce-")):
        return {"verdict": "unknown", "code": None, "route": view,
                "message": "the route sends %s through %s (an appliance), which is not evaluated here"
                           % (destination, target),
                "fix": None}
    if destination_vpc is not None:
        # an internet gateway, NAT gateway or VPN does not lead to a private address of another VPC
        return {"verdict": "deny", "code": NO_ROUTE, "route": view,
                "message": "the most specific route for %s in %s is %s -> %s, which does not lead to %s"
                           % (destination, view["route_table"], view["destination"], target, destination_vpc),
                "fix": _route_fix(state, table, vpc_id, destination, destination_vpc)}
    return {"verdict": "unknown", "code": None, "route": view,
            "message": "route %s -> %s leaves the VPC; what lies beyond is not evaluated"
                       % (view["destination"], target),
            "fix": None}


def _route_fix(state, table, vpc_id, destination, destination_vpc):
    if destination_vpc is None or destination_vpc == vpc_id:
        return "add a route to %s in %s" % (destination, table["RouteTableId"])
    cidrs = vpc_cidrs(state.vpcs.get(destination_vpc, {}))
    address = _address(destination)
    covering = [cidr for cidr in cidrs if _contains(cidr, address)]
    wanted = covering[0] if covering else str(destination)
    pcx = peering_between(state, vpc_id, destination_vpc)
    if pcx is not None:
        return "add route %s -> %s to %s" % (wanted, pcx["VpcPeeringConnectionId"], table["RouteTableId"])
    return ("connect %s and %s (VPC peering or a transit gateway), then add route %s -> it to %s"
            % (vpc_id, destination_vpc, wanted, table["RouteTableId"]))


# --- one flow ------------------------------------------------------------------------------------

def _peer_cidr(state, eni, address):
    """The peer's subnet CIDR for a suggested rule (its /32 or /128 when the subnet is unknown)."""
    subnet = state.subnets.get((eni or {}).get("SubnetId"), {})
    ip = _address(address)
    for cidr in (subnet.get("CidrBlock"),) + tuple(item.get("Ipv6CidrBlock") for item in
                                                   subnet.get("Ipv6CidrBlockAssociationSet", [])):
        if _contains(cidr, ip):
            return cidr
    return "%s/%d" % (address, 32 if ip.version == 4 else 128)


def _acl_fix(acl, segments, egress, what, peer_cidr):
    """Smallest change that lets ``what`` through ``acl``: an allow numbered before the first deny."""
    denied = [segment for segment in segments if segment["action"] != "allow"]
    first = denied[0]["entry"]
    direction = "outbound" if egress else "inbound"
    peer_word = "to" if egress else "from"
    number = first.get("rule_number")
    if number == "*" or not isinstance(number, int):
        where = "(only the final * rule matches it now)"
        return "add %s rule allow %s %s %s to %s %s" % (direction, what, peer_word, peer_cidr, acl["NetworkAclId"],
                                                        where)
    used = set(entry.get("RuleNumber") for entry in acl.get("Entries", []))
    free = [n for n in range(number - 1, 0, -1) if n not in used]
    before = ("numbered %d (before deny rule %d)" % (free[0], number) if free
              else "numbered below %d (or change rule %d)" % (number, number))
    return "add %s rule allow %s %s %s to %s, %s" % (direction, what, peer_word, peer_cidr, acl["NetworkAclId"], before)


class _Finding(object):
    """The hops checked so far and what blocks."""

    def __init__(self):
        self.checked = []
        self.blocking = []
        self.unknown = []

    def step(self, step, component, verdict, detail=None):
        self.checked.append({"step": step, "component": component, "verdict": verdict, "detail": detail})

    def block(self, code, component, message, fix, rule=None, direction=None):
        self.blocking.append({"code": code, "component": component, "direction": direction, "rule": rule,
                              "message": message, "fix": fix})


def _check_sgs(finding, state, eni, direction, flow, peer, peer_eni):
    groups = state.groups_of(eni)
    peer_groups = [group["GroupId"] for group in (peer_eni or {}).get("Groups", [])]
    verdict = evaluate_security_groups(groups, direction, flow["protocol"], flow["port"], flow["icmp_type"], peer,
                                       peer_groups, state.prefix_lists)
    group_ids = [group["GroupId"] for group in groups]
    label = "%s %s" % ("source" if direction == "egress" else "target", eni["NetworkInterfaceId"])
    finding.step("security groups %s of %s" % (direction, label), group_ids, verdict["verdict"],
                 verdict["rule"] or ({"unresolved_prefix_lists": verdict["unresolved"]}
                                     if verdict["unresolved"] else None))
    if verdict["verdict"] == "unknown":
        finding.unknown.append("prefix lists %s were not read" % ", ".join(verdict["unresolved"]))
    if verdict["verdict"] != "deny":
        return
    what = describe_flow(flow["protocol"], flow["port"], flow["icmp_type"])
    own = groups[0] if groups else {"GroupId": "(none)"}
    peer_ref = peer_groups[0] if peer_groups else "%s/%d" % (peer, 32 if _address(peer).version == 4 else 128)
    labels = ", ".join(_group_label(group) for group in groups) or "no security group"
    if direction == "ingress":
        message = ("the security groups of target %s (%s) allow no ingress %s from %s"
                   % (eni["NetworkInterfaceId"], labels, what, peer))
        fix = "add ingress %s from %s to %s" % (what, peer_ref, own["GroupId"])
    else:
        message = ("the security groups of source %s (%s) allow no egress %s to %s"
                   % (eni["NetworkInterfaceId"], labels, what, peer))
        fix = "add egress %s to %s in %s" % (what, peer_ref, own["GroupId"])
    component = {"type": "security-group", "ids": group_ids, "network_interface": eni["NetworkInterfaceId"]}
    finding.block(SG_MISMATCH, component,
                  message, fix, rule={"missing": {"direction": direction, "protocol": PROTOCOL_NAMES.get(
                      protocol_number(flow["protocol"])), "port": flow["port"], "icmp_type": flow["icmp_type"],
                      "peer": peer_ref, "group_id": own["GroupId"]}}, direction=direction)


def _check_acl(finding, state, eni, egress, flow, peer, peer_cidr, ports, icmp_type, leg):
    acl = state.acl_for(eni["SubnetId"])
    direction = "outbound" if egress else "inbound"
    if acl is None:
        finding.step("network ACL %s of %s (%s)" % (direction, eni["SubnetId"], leg), None, "unknown")
        finding.unknown.append("no network ACL of %s was read" % eni["SubnetId"])
        return
    segments = evaluate_acl_ports(acl, egress, flow["protocol"], ports, peer, icmp_type)
    allowed = all(segment["action"] == "allow" for segment in segments)
    finding.step("network ACL %s of %s (%s)" % (direction, eni["SubnetId"], leg), acl["NetworkAclId"],
                 "allow" if allowed else "deny", segments)
    if allowed:
        return
    denied = [segment for segment in segments if segment["action"] != "allow"]
    entry = denied[0]["entry"]
    if ports is None:
        what = describe_flow(flow["protocol"], None, icmp_type)
    else:
        what = "%s/%s" % (PROTOCOL_NAMES.get(protocol_number(flow["protocol"])), _ports_text(*ports))
    if ports is not None and ports[0] != ports[1]:
        blocked = ", ".join(_ports_text(segment["from"], segment["to"]) for segment in denied)
        partly = "" if len(denied) == len(segments) else "some of "
        message = ("network ACL %s of %s denies %s%s %s %s (ports %s, rule %s): the answers to the client's ephemeral"
                   " ports (%s) never pass, since ACLs are stateless"
                   % (acl["NetworkAclId"], eni["SubnetId"], partly, direction, what, peer, blocked,
                      entry["rule_number"], _ports_text(*ports)))
    else:
        message = ("network ACL %s of %s denies %s %s %s %s (rule %s)"
                   % (acl["NetworkAclId"], eni["SubnetId"], direction, what, "to" if egress else "from", peer,
                      entry["rule_number"]))
    finding.block(ACL_RESTRICTION, {"type": "network-acl", "id": acl["NetworkAclId"], "subnet": eni["SubnetId"]},
                  message, _acl_fix(acl, segments, egress, what, peer_cidr), rule=entry,
                  direction="%s (%s)" % (direction, leg))


def _check_route(finding, state, eni, destination, destination_vpc, leg):
    result = evaluate_route(state, eni["SubnetId"], eni["VpcId"], destination, destination_vpc)
    finding.step("route from %s to %s (%s)" % (eni["SubnetId"], destination, leg),
                 (result["route"] or {}).get("route_table"), result["verdict"], result["route"])
    if result["verdict"] == "unknown":
        finding.unknown.append(result["message"])
    elif result["verdict"] == "deny":
        finding.block(result["code"], {"type": "route-table", "id": (result["route"] or {}).get("route_table"),
                                       "subnet": eni["SubnetId"]},
                      result["message"], result["fix"], rule=result["route"], direction=leg)


def explain_flow(state, source, target, protocol="tcp", port=None, data_plane=None, ephemeral=LINUX_EPHEMERAL):
    """Explain whether EC2's configuration lets ``protocol``/``port`` from ``source`` to ``target`` through.

    ``source`` and ``target`` are private addresses; ``data_plane`` is what the probe saw (a verdict
    code such as PORT_FILTERED, or None). Returns the explanation dict (see docs/ec2.md):
    status (blocked | allowed | unknown), code, message, fix, component, rule, explanations (every
    blocking component, in path order), checked (every hop evaluated), flow."""
    protocol_no = protocol_number(protocol)
    if protocol_no not in ("6", "17", "1", "58"):
        raise ValueError("protocol: %r is not tcp, udp or icmp" % (protocol,))
    if protocol_no in ("6", "17") and not (isinstance(port, int) and 1 <= port <= 65535):
        raise ValueError("port: %r is not a port (1-65535)" % (port,))
    version = _address(target).version
    if protocol_no == "1" and version == 6:
        protocol_no = "58"
    icmp_type = ECHO_REQUEST[version] if protocol_no in ("1", "58") else None
    flow = {"source": str(source), "target": str(target), "protocol": PROTOCOL_NAMES[protocol_no],
            "port": port if protocol_no in ("6", "17") else None, "icmp_type": icmp_type}
    src_eni, dst_eni = state.interface_for(str(source)), state.interface_for(str(target))
    for key, eni in (("source", src_eni), ("target", dst_eni)):
        flow[key + "_interface"] = eni["NetworkInterfaceId"] if eni else None
        flow[key + "_instance"] = (eni or {}).get("Attachment", {}).get("InstanceId")
        flow[key + "_name"] = state.instance_name(flow[key + "_instance"]) if flow[key + "_instance"] else None
        flow[key + "_subnet"] = (eni or {}).get("SubnetId")
        flow[key + "_vpc"] = (eni or {}).get("VpcId")
    flow["data_plane"] = data_plane
    if dst_eni is None:
        return _result(flow, _Finding(), "target %s is no private address of an EC2 network interface in this region"
                       % target, not_evaluated=True)

    finding = _Finding()
    if src_eni is None:
        finding.unknown.append("source %s is no EC2 network interface here: only the target side is evaluated" % source)
    crosses_subnets = src_eni is not None and src_eni["SubnetId"] != dst_eni["SubnetId"]
    src_cidr, dst_cidr = _peer_cidr(state, src_eni, source), _peer_cidr(state, dst_eni, target)
    forward_ports = (port, port) if flow["port"] is not None else None
    return_ports = tuple(ephemeral) if flow["port"] is not None else None
    reply_type = ECHO_REPLY[version] if icmp_type is not None else None

    # in the order a packet meets them: source egress, source subnet, route, target subnet, target
    if src_eni is not None:
        _check_sgs(finding, state, src_eni, "egress", flow, target, dst_eni)
        if crosses_subnets:
            _check_acl(finding, state, src_eni, True, flow, target, dst_cidr, forward_ports, icmp_type, "request")
        _check_route(finding, state, src_eni, target, dst_eni["VpcId"], "request")
    elif dst_eni is not None:
        crosses_subnets = True  # from outside the subnet: the target subnet's ACL applies
    if crosses_subnets:
        _check_acl(finding, state, dst_eni, False, flow, source, src_cidr, forward_ports, icmp_type, "request")
    _check_sgs(finding, state, dst_eni, "ingress", flow, source, src_eni)
    # the answer: security groups are stateful, network ACLs and routes are not
    if src_eni is not None:
        _check_route(finding, state, dst_eni, source, src_eni["VpcId"], "reply")
    if crosses_subnets:
        _check_acl(finding, state, dst_eni, True, dict(flow, icmp_type=reply_type), source, src_cidr, return_ports,
                   reply_type, "reply")
        if src_eni is not None:
            _check_acl(finding, state, src_eni, False, dict(flow, icmp_type=reply_type), target, dst_cidr,
                       return_ports, reply_type, "reply")
    return _result(flow, finding)


def _host_fix(flow):
    """Where to look when EC2 lets the flow through and the packets still go unanswered."""
    if flow.get("port") is None:
        return ("look at the target host: its firewall (iptables/nftables, Windows Firewall) and whether it answers"
                " echo requests at all (net.ipv4.icmp_echo_ignore_all)")
    return ("look at the target host: its firewall (iptables/nftables, Windows Firewall) for %s/%s, and whether"
            " anything listens on it (ss -ltn)" % (flow["protocol"], flow["port"]))


def _result(flow, finding, message=None, not_evaluated=False):
    explanation = {"status": None, "code": None, "message": message, "fix": None, "component": None, "rule": None,
                   "explanations": finding.blocking, "checked": finding.checked, "unknown": finding.unknown,
                   "flow": flow}
    filtered = flow.get("data_plane") is not None
    if not_evaluated:
        explanation.update(status="unknown", code=NOT_EVALUATED)
    elif finding.blocking:
        first = finding.blocking[0]
        explanation.update(status="blocked", code=first["code"], message=first["message"], fix=first["fix"],
                           component=first["component"], rule=first["rule"])
        if len(finding.blocking) > 1:
            explanation["message"] += " (and %d more blocking: %s)" % (
                len(finding.blocking) - 1, ", ".join(item["code"] for item in finding.blocking[1:]))
    elif finding.unknown:
        explanation.update(status="unknown", code=NOT_EVALUATED,
                           message="no blocking component found, but not everything was evaluated: "
                                   + "; ".join(finding.unknown))
    else:
        explanation.update(status="allowed", code=CONFIGURATION_ALLOWS,
                           message=HOST_DROPS if filtered else "configuration allows it (security groups, network"
                           " ACLs and routes of both ends)",
                           fix=_host_fix(flow) if filtered else None)
    return explanation


# --- the run model -------------------------------------------------------------------------------

_PORT_IN_TARGET = re.compile(r":(\d{1,5})$")
_PORT_IN_URL = re.compile(r"^\w+://(?:\[[^\]]*\]|[^/:]*)(?::(\d{1,5}))?")


def _tcp_port(result):
    detail = result.get("detail") or {}
    if isinstance(detail.get("port"), int) or str(detail.get("port", "")).isdigit():
        return int(detail["port"])
    match = _PORT_IN_TARGET.search(str(result.get("target", "")))
    return int(match.group(1)) if match else None


def _http_port(result):
    match = _PORT_IN_URL.match(str(result.get("target", "")))
    if not match:
        return None
    if match.group(1):
        return int(match.group(1))
    return 443 if str(result["target"]).startswith("https") else 80


def _http_connect_timed_out(result):
    """An http_check result that never connected because nothing answered (a filtered port).

    A timeout after connecting (HTTP_TIMEOUT: the application hangs) is no network matter."""
    detail = result.get("detail") or {}
    error = str(result.get("error") or "").lower()
    return (result.get("state") == "timeout"
            or (result.get("state") == "failed" and detail.get("phase") == "connect"
                and ("no answer" in error or "timed out" in error or "timeout" in error)))


def _is_timeout_code(code):
    return "TIMEOUT" in str(code or "").upper()


def flows_of_pair(pair, codes=FILTERED_CODES):
    """The (protocol, port, data-plane code) flows of a pair that the data plane saw filtered."""
    verdict = pair.get("verdict") or {}
    code = verdict.get("code")
    note_codes = [note.get("code") for note in verdict.get("notes") or [] if isinstance(note, dict)]
    layers = pair.get("layers") or {}
    flows = []
    port_code = code if code == "PORT_FILTERED" or _is_timeout_code(code) else None
    if port_code or "PORT_FILTERED" in note_codes:
        for result in layers.get("tcp") or []:
            if result.get("state") in PORT_STATES and _tcp_port(result):
                flows.append(("tcp", _tcp_port(result), port_code or "PORT_FILTERED"))
        for result in layers.get("http") or []:
            if _http_connect_timed_out(result) and _http_port(result):
                flows.append(("tcp", _http_port(result), port_code or "PORT_FILTERED"))
    if "ICMP_FILTERED" in (code,) + tuple(note_codes) and "ICMP_FILTERED" in codes:
        flows.append(("icmp", None, "ICMP_FILTERED"))
    seen, unique = set(), []
    for flow in flows:
        if flow[:2] not in seen:
            seen.add(flow[:2])
            unique.append(flow)
    return unique


def _wants_explaining(pair, codes):
    verdict = pair.get("verdict") or {}
    note_codes = [note.get("code") for note in verdict.get("notes") or [] if isinstance(note, dict)]
    return any(code in codes for code in [verdict.get("code")] + note_codes) or _is_timeout_code(verdict.get("code"))


def _source_address(run, pair):
    for source in run.get("sources", []):
        if source.get("name") == pair.get("source") and source.get("address"):
            return source["address"]
    for result in (pair.get("layers") or {}).get("tcp") or []:
        if (result.get("detail") or {}).get("local_address"):
            return result["detail"]["local_address"]
    return pair.get("source_address")


def inventory_options(hostvars, enabled="auto", **given):
    """The ``explain_run`` options for an inventory, or None when the explainer stays off.

    ``enabled``: true, false, or ``auto`` (on when the hosts come from the aws_ec2 inventory,
    whose hostvars hold ``instance_id`` and ``placement.region``). The region is ``given``'s, else
    the one most of the inventory's instances are in. ``given`` (region, endpoint_url, profile,
    ephemeral_ports, codes) passes through where set."""
    if enabled in (False, "false", "no", "off"):
        return None
    regions = {}
    for variables in (hostvars or {}).values():
        region = ((variables or {}).get("placement") or {}).get("region")
        if region and (variables or {}).get("instance_id"):
            regions[region] = regions.get(region, 0) + 1
    if enabled == "auto" and not regions:
        return None
    options = {key: value for key, value in given.items() if value is not None}
    if not options.get("region") and regions:
        options["region"] = sorted(regions.items(), key=lambda item: (-item[1], item[0]))[0][0]
    return options


def explain_run(run, options=None, state=None):
    """Fill ``pair["explain"]`` for every pair of the run model whose verdict is filtered or a timeout.

    ``options``: region, endpoint_url, profile (for the fetcher), ephemeral_ports ([low, high],
    default Linux's), codes (the verdict codes to explain; default PORT_FILTERED and ICMP_FILTERED;
    codes with TIMEOUT always are). ``state`` (an Ec2State) skips the AWS calls. Pairs are matched
    to instances by private IP. Returns ``{"explained": n, "error": message or None}``; on an API
    error every candidate pair gets an explain with status unknown and that message, and nothing
    raises, so that the run's reports are still written."""
    options = dict(options or {})
    codes = tuple(options.get("codes") or FILTERED_CODES)
    ephemeral = tuple(options.get("ephemeral_ports") or LINUX_EPHEMERAL)
    wanted = []
    for pair in run.get("pairs", []):
        if not _wants_explaining(pair, codes):
            continue
        flows = flows_of_pair(pair, codes)
        if flows:
            wanted.append((pair, _source_address(run, pair), flows))
    if not wanted:
        return {"explained": 0, "error": None}
    error, explained_pairs = None, 0
    if state is None:
        addresses = sorted(set(a for pair, source, _ in wanted for a in (source, pair.get("address")) if a))
        try:
            state = Ec2Fetcher(region=options.get("region"), endpoint_url=options.get("endpoint_url"),
                               profile=options.get("profile")).state_for(addresses)
        except Ec2ExplainError as exc:
            error = str(exc)
    for pair, source, flows in wanted:
        if error is not None:
            pair["explain"] = {"status": "unknown", "code": NOT_EVALUATED, "message": "EC2 not read: %s" % error,
                               "fix": None, "component": None, "rule": None, "explanations": [], "checked": [],
                               "unknown": [error], "flow": None, "flows": []}
            explained_pairs += 1
            continue
        explained = []
        for protocol, port, data_plane in flows:
            if source is None or pair.get("address") is None:
                continue
            explained.append(explain_flow(state, source, pair["address"], protocol, port, data_plane, ephemeral))
        if not explained:
            continue
        # the pair's explain is its first blocked flow (else its first flow), with every flow under "flows"
        lead = next((item for item in explained if item["status"] == "blocked"), explained[0])
        pair["explain"] = dict(lead, flows=explained)
        explained_pairs += 1
    return {"explained": explained_pairs, "error": error}


# --- reading EC2 (read-only Describe calls) ------------------------------------------------------

NO_CREDENTIALS = ("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on"
                  " an instance with a role (docs/ec2.md has the read-only policy)")


class Ec2Fetcher(object):
    """Reads what an explanation needs with read-only Describe calls (docs/ec2.md lists the IAM
    actions). ``endpoint_url`` points boto3 at a stand-in (moto) or a VPC endpoint."""

    def __init__(self, region=None, endpoint_url=None, profile=None, client=None):
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self._client = client

    def client(self):
        if self._client is not None:
            return self._client
        try:
            import boto3
            import botocore.exceptions
        except ImportError as exc:
            raise Ec2ExplainError("boto3 is not installed on the controller (pip install -r requirements.txt): %s"
                                  % exc)
        try:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise Ec2ExplainError("profile: %s" % exc)
        region = session.region_name
        if not region:
            raise Ec2ExplainError("region: none given and none configured (set region, AWS_REGION or a profile's"
                                  " region)")
        known = set()
        for partition in session.get_available_partitions():
            known.update(session.get_available_regions("ec2", partition_name=partition))
        if region not in known:
            raise Ec2ExplainError("region: %r is not an EC2 region this botocore knows (e.g. eu-west-1, us-east-1)"
                                  % region)
        if session.get_credentials() is None:
            raise Ec2ExplainError(NO_CREDENTIALS)
        self._client = session.client("ec2", region_name=region, endpoint_url=self.endpoint_url)
        return self._client

    def _call(self, operation, key, **kwargs):
        """Every item of a Describe call (all pages)."""
        import botocore.exceptions

        client = self.client()
        try:
            if client.can_paginate(operation):
                items = []
                for page in client.get_paginator(operation).paginate(**kwargs):
                    items.extend(page.get(key, []))
                return items
            return getattr(client, operation)(**kwargs).get(key, [])
        except botocore.exceptions.NoCredentialsError:
            raise Ec2ExplainError(NO_CREDENTIALS)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise Ec2ExplainError("%s: %s: %s" % (operation, error.get("Code"), error.get("Message")))
        except botocore.exceptions.BotoCoreError as exc:
            raise Ec2ExplainError("%s: %s" % (operation, exc))

    def state_for(self, addresses):
        """An Ec2State holding the interfaces of ``addresses`` and everything around them."""
        addresses = sorted(set(str(address) for address in addresses))
        v4 = [a for a in addresses if _address(a).version == 4]
        v6 = [a for a in addresses if _address(a).version == 6]
        enis = []
        if v4:
            enis += self._call("describe_network_interfaces", "NetworkInterfaces",
                               Filters=[{"Name": "addresses.private-ip-address", "Values": v4}])
        if v6:
            enis += self._call("describe_network_interfaces", "NetworkInterfaces",
                               Filters=[{"Name": "ipv6-addresses.ipv6-address", "Values": v6}])
        if not enis:
            return Ec2State()
        vpc_ids = sorted(set(eni["VpcId"] for eni in enis))
        group_ids = sorted(set(group["GroupId"] for eni in enis for group in eni.get("Groups", [])))
        instance_ids = sorted(set(eni.get("Attachment", {}).get("InstanceId") for eni in enis) - {None})
        groups = self._call("describe_security_groups", "SecurityGroups", GroupIds=group_ids) if group_ids else []
        peerings = []
        for side in ("requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"):
            peerings += self._call("describe_vpc_peering_connections", "VpcPeeringConnections",
                                   Filters=[{"Name": side, "Values": vpc_ids}])
        vpc_filter = [{"Name": "vpc-id", "Values": vpc_ids}]
        route_tables = self._call("describe_route_tables", "RouteTables", Filters=vpc_filter)
        vpcs_wanted = set(vpc_ids)
        for pcx in peerings:
            vpcs_wanted.update(v for v in (pcx.get("RequesterVpcInfo", {}).get("VpcId"),
                                           pcx.get("AccepterVpcInfo", {}).get("VpcId")) if v)
        prefix_ids = set()
        for group in groups:
            for permission in group.get("IpPermissions", []) + group.get("IpPermissionsEgress", []):
                prefix_ids.update(item["PrefixListId"] for item in permission.get("PrefixListIds", []))
        for table in route_tables:
            prefix_ids.update(route["DestinationPrefixListId"] for route in table.get("Routes", [])
                              if route.get("DestinationPrefixListId"))
        prefix_lists, names = {}, {}
        if prefix_ids:
            for item in self._call("describe_managed_prefix_lists", "PrefixLists", PrefixListIds=sorted(prefix_ids)):
                names[item["PrefixListId"]] = item.get("PrefixListName")
            for prefix_id in sorted(prefix_ids):
                entries = self._call("get_managed_prefix_list_entries", "Entries", PrefixListId=prefix_id)
                prefix_lists[prefix_id] = [entry["Cidr"] for entry in entries]
        reservations = []
        if instance_ids:
            reservations = self._call("describe_instances", "Reservations", InstanceIds=instance_ids)
        return Ec2State(
            network_interfaces=enis,
            security_groups=groups,
            network_acls=self._call("describe_network_acls", "NetworkAcls", Filters=vpc_filter),
            route_tables=route_tables,
            subnets=self._call("describe_subnets", "Subnets", Filters=vpc_filter),
            vpcs=self._call("describe_vpcs", "Vpcs", VpcIds=sorted(vpcs_wanted)),
            peerings=list({pcx["VpcPeeringConnectionId"]: pcx for pcx in peerings}.values()),
            prefix_lists=prefix_lists,
            prefix_list_names=names,
            instances=[instance for reservation in reservations for instance in reservation.get("Instances", [])],
        )
