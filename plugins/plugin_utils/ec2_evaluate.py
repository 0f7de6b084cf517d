"""Why EC2's configuration lets a flow through or not: the evaluation, pure functions on Describe data.

The data plane (port_check, net_diagnose) sees that a port is filtered but cannot say who drops
the packets. On EC2 the usual answer is a security group or a network ACL, which only the
configuration names. This module evaluates that configuration the way EC2 applies it and names
the blocking component with AWS Reachability Analyzer's explanation codes:

- security groups: stateful and allow-only; the source interface's egress and the target
  interface's ingress must both allow the flow; rules may name CIDRs, other security groups
  (members' private addresses) or managed prefix lists; ICMP rules match type and code;
- network ACLs: stateless, numbered, first match wins, both directions, and the return traffic
  goes to the client's ephemeral port; they apply only where the flow crosses a subnet boundary;
  ICMP entries match type and code;
- route tables: the subnet's explicit association, else the VPC's main table; longest prefix
  wins; ``local`` inside the VPC, a VPC peering connection to another VPC, and the way back;
- path MTU: a path leaving the VPC (internet gateway, VPN, inter-region peering, transit
  gateway) carries fewer bytes than an instance sends (9001), so ICMP "fragmentation needed"
  must reach the sender (docs/ec2.md).

Nothing here talks to AWS: it reads the dicts that the EC2 Describe* calls return (boto3's
shapes), as ``ec2_fetch.Ec2Fetcher`` collects them into an ``Ec2State``. What one region's
data cannot show (a VPC in another region, an address held twice) is said "not evaluated".
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import ICMP_CODES, ICMP_TYPES, icmp_name

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
NOT_EVALUATED = "NOT_EVALUATED"                # an address is no EC2 interface here, or the API failed
PMTUD_BLOCKED = "PMTUD_ICMP_BLOCKED"           # a smaller-MTU path, and "fragmentation needed" cannot come back
# The data plane's path-MTU verdict codes (docs/verdict.md), read by name.
MTU_CODES = ("MTU_BLACKHOLE", "PMTU_REDUCED")
# The data plane's code for a port that answers although it must not (docs/verdict.md).
OPEN_CODES = ("PORT_OPEN",)

HOST_DROPS = ("configuration allows it: the host itself drops it (host firewall) or nothing listens"
              " (security groups, network ACLs and routes of both ends allow this flow)")
HOST_MTU = ("configuration allows it: no path of this flow is smaller than the instances' MTU, or ICMP"
            " \"fragmentation needed\" may come back through the security groups and network ACLs; look at the hosts'"
            " own firewalls for ICMP type 3 code 4 (ICMPv6 packet too big) and at their MTU and MSS")

# Linux picks client ports from 32768-60999 (net.ipv4.ip_local_port_range); network ACLs must let
# the answers to those ports back in. Windows uses 49152-65535, NAT gateways 1024-65535.
LINUX_EPHEMERAL = (32768, 60999)

PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58", "-1": "-1", "all": "-1"}
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "-1": "all"}
FAMILY = {4: "ipv4", 6: "ipv6"}


def _icmp_type_named(version, wanted):
    """The ICMP (4) or ICMPv6 (6) type of a message by its name in the one table (module_utils/netcheck/outcome.py)."""
    return next(kind for (family, kind), name in ICMP_TYPES.items() if family == FAMILY[version] and name == wanted)


ECHO_REQUEST = {version: _icmp_type_named(version, "echo request") for version in (4, 6)}
ECHO_REPLY = {version: _icmp_type_named(version, "echo reply") for version in (4, 6)}
# (type, code) of "fragmentation needed" (IPv4 type 3 code 4) and "packet too big" (ICMPv6 type 2 code 0)
FRAG_NEEDED = {4: next((kind, code) for (family, kind), codes in ICMP_CODES.items() if family == "ipv4"
                       for code, name in codes.items() if name == "fragmentation needed"),
               6: (_icmp_type_named(6, "packet too big"), 0)}

# AWS's documented MTUs (docs/ec2.md): instances of current generations use 9001 bytes inside a
# VPC and over peering in one region; a path through an internet gateway or a VPN carries 1500,
# inter-region VPC peering and a transit gateway 8500.
INSTANCE_MTU = 9001
GATEWAY_MTU = (("igw-", 1500, "an internet gateway"), ("eigw-", 1500, "an egress-only internet gateway"),
               ("vgw-", 1500, "a VPN (virtual private gateway)"), ("tgw-", 8500, "a transit gateway"))
INTER_REGION_PEERING_MTU = 8500

# What plays each AWS piece in the namespace lab (docs/path.md): hints name both.
LAB_STAND_INS = {
    "security-group": "the host's own iptables INPUT/OUTPUT rules",
    "network-acl": "a router namespace's FORWARD chain",
    "route-table": "a router namespace's routing table (ip route)",
    "path-mtu": "a 1500-byte link between routers",
}


# --- the configuration, as Describe* returned it ------------------------------------------------

class Ec2State(object):
    """The Describe* results of one region, indexed for the evaluation.

    Every argument is a list of what boto3 returns under that call's key (``NetworkInterfaces``,
    ``SecurityGroups``, ``NetworkAcls``, ``RouteTables``, ``Subnets``, ``Vpcs``,
    ``VpcPeeringConnections``, ``Reservations[].Instances``), and ``prefix_lists`` maps a prefix
    list id to its entries' CIDRs (``GetManagedPrefixListEntries``). ``region`` is the region
    read; ``not_read`` lists what the API could not show (each flow carries it as ``not_read``; a
    missing piece a flow needs makes that flow "unknown" by itself).
    """

    def __init__(self, network_interfaces=(), security_groups=(), network_acls=(), route_tables=(),
                 subnets=(), vpcs=(), peerings=(), prefix_lists=None, instances=(), prefix_list_names=None,
                 region=None, not_read=()):
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
        self.region = region
        self.not_read = list(not_read)

    def interfaces_for(self, address):
        """Every network interface holding private (or IPv6) ``address``, sorted by id.

        Two VPCs that are not peered may use the same CIDR, so one address may be held twice."""
        return sorted((eni for eni in self.network_interfaces if address in interface_addresses(eni)),
                      key=lambda eni: eni["NetworkInterfaceId"])

    def interface_for(self, address, instance_id=None, vpc_id=None):
        """The interface holding ``address``, or None (also when it is ambiguous: see ``find_interface``)."""
        return self.find_interface(address, instance_id, vpc_id)[0]

    def find_interface(self, address, instance_id=None, vpc_id=None):
        """(interface or None, candidates): the interface holding ``address``.

        When several hold it, the one attached to ``instance_id`` (the inventory's), else the one
        in ``vpc_id``, decides; otherwise the answer is None with every candidate, never the first
        the API happened to return."""
        candidates = self.interfaces_for(address)
        if len(candidates) <= 1:
            return (candidates[0] if candidates else None), candidates
        for key, wanted in ((lambda eni: eni.get("Attachment", {}).get("InstanceId"), instance_id),
                            (lambda eni: eni.get("VpcId"), vpc_id)):
            if wanted:
                chosen = [eni for eni in candidates if key(eni) == wanted]
                if len(chosen) == 1:
                    return chosen[0], candidates
        return None, candidates

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


def describe_flow(protocol, port, icmp_type=None, icmp_code=None):
    """``tcp/8080``, ``icmp echo request (type 8)``, ``icmp fragmentation needed (type 3 code 4)``."""
    number = protocol_number(protocol)
    name = PROTOCOL_NAMES.get(number, protocol)
    if port is not None:
        return "%s/%s" % (name, port)
    if icmp_type is None:
        return name
    family = "ipv6" if number == "58" else "ipv4"
    if icmp_code in (None, 0) and ICMP_TYPES.get((family, icmp_type)) in ("echo request", "echo reply"):
        return "%s %s (type %d)" % (name, icmp_name(family, icmp_type), icmp_type)
    return "%s %s (type %s code %s)" % (name, icmp_name(family, icmp_type, icmp_code), icmp_type,
                                        -1 if icmp_code is None else icmp_code)


def _ports_text(low, high):
    return str(low) if low == high else "%d-%d" % (low, high)


def _group_label(group):
    name = group.get("GroupName")
    return "%s (%s)" % (group["GroupId"], name) if name else group["GroupId"]


# --- security groups -----------------------------------------------------------------------------

def _permission_covers(permission, protocol, port, icmp_type, icmp_code=0):
    """Does a security group permission's protocol and port range cover the packet?"""
    rule_protocol = protocol_number(permission.get("IpProtocol", "-1"))
    if rule_protocol == "-1":
        return True
    if rule_protocol != protocol:
        return False
    low, high = permission.get("FromPort"), permission.get("ToPort")
    if protocol in ("1", "58"):
        # for ICMP, FromPort is the type and ToPort the code (-1: any)
        return low in (None, -1) or (low == icmp_type and (high in (None, -1) or high == icmp_code))
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


def evaluate_security_groups(groups, direction, protocol, port, icmp_type, peer, peer_groups, prefix_lists,
                             icmp_code=0):
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
            if not _permission_covers(permission, protocol, port, icmp_type, icmp_code):
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


def _entry_matches_packet(entry, egress, protocol, icmp_type, icmp_code, peer):
    """Direction, protocol, ICMP type and code, and peer CIDR of an entry (ports are handled by the caller).

    An ICMP entry matches a packet only when both its type and its code match (-1: any): a deny
    of type 8 code 5 leaves an echo request (code 0) to the next entry."""
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
        wanted_type = entry["IcmpTypeCode"].get("Type", -1)
        wanted_code = entry["IcmpTypeCode"].get("Code", -1)
        return (wanted_type in (-1, None) or wanted_type == icmp_type) and (
            wanted_code in (-1, None) or wanted_code == icmp_code)
    return True


def evaluate_acl_ports(acl, egress, protocol, ports, peer, icmp_type=None, icmp_code=0):
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
        if not _entry_matches_packet(entry, egress, protocol, icmp_type, icmp_code, peer):
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


def lookup_route(table, destination, prefix_lists, without=None):
    """The most specific route of ``table`` for ``destination`` (longest prefix), or None.

    ``without``: a route to leave out (to see which route it overrides)."""
    destination = _address(destination)
    best, best_length = None, -1
    for route in table.get("Routes", []):
        if route is without:
            continue
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


def _peer_info(pcx, vpc_id):
    """The other end's ``*VpcInfo`` of a peering connection seen from ``vpc_id`` ({} if not an end)."""
    requester, accepter = pcx.get("RequesterVpcInfo", {}), pcx.get("AccepterVpcInfo", {})
    if vpc_id == requester.get("VpcId"):
        return accepter
    if vpc_id == accepter.get("VpcId"):
        return requester
    return {}


def _peer_vpc(pcx, vpc_id):
    """The VPC at the other end of a peering connection seen from ``vpc_id`` (None if not an end)."""
    return _peer_info(pcx, vpc_id).get("VpcId")


def _inter_region(pcx):
    """Whether a peering joins two regions (both ends name their region)."""
    regions = set(info.get("Region") for info in (pcx.get("RequesterVpcInfo", {}), pcx.get("AccepterVpcInfo", {})))
    return None not in regions and len(regions) == 2


def peering_between(state, vpc_a, vpc_b):
    """An active peering connection joining two VPCs, else any peering between them, else None."""
    found = None
    for pcx_id in sorted(state.peerings):
        pcx = state.peerings[pcx_id]
        if _peer_vpc(pcx, vpc_a) == vpc_b:
            if pcx.get("Status", {}).get("Code") == "active":
                return pcx
            found = found or pcx
    return found


def _leads_to(state, route, vpc_id, destination_vpc):
    """Whether ``route`` (of a table of ``vpc_id``) takes a packet to ``destination_vpc``."""
    if route is None or route.get("State") == "blackhole":
        return False
    target = route_target(route) or ""
    if target == "local":
        return destination_vpc == vpc_id
    if target.startswith("pcx-"):
        pcx = state.peerings.get(target) or {}
        return pcx.get("Status", {}).get("Code") == "active" and _peer_vpc(pcx, vpc_id) == destination_vpc
    return False


def evaluate_route(state, subnet_id, vpc_id, destination, destination_vpc):
    """Does the route table of ``subnet_id`` send ``destination`` to ``destination_vpc``?

    ``destination_vpc`` None: the destination is no interface of this region (the route is
    followed as far as this region shows it). Returns ``{"verdict": "allow"|"deny"|"unknown",
    "code", "route": view, "message", "fix", "beyond"}``; ``beyond`` says what lies past the
    route and is not evaluated, or None."""
    table = state.route_table_for(subnet_id, vpc_id)
    if table is None:
        return {"verdict": "unknown", "code": None, "route": None, "beyond": None,
                "message": "no route table of %s was read (neither an association nor a main table)" % subnet_id,
                "fix": None}
    route = lookup_route(table, destination, state.prefix_lists)
    if route is None:
        return {"verdict": "deny", "code": NO_ROUTE, "route": {"route_table": table["RouteTableId"]}, "beyond": None,
                "message": "route table %s of %s has no route to %s" % (table["RouteTableId"], subnet_id, destination),
                "fix": _route_fix(state, table, vpc_id, destination, destination_vpc)}
    view = _route_view(table, route)
    result = {"verdict": "allow", "code": None, "route": view, "beyond": None, "message": None, "fix": None}
    if route.get("State") == "blackhole":
        return dict(result, verdict="deny", code=BAD_STATE_ROUTE,
                    message="the route %s -> %s in %s is a blackhole (its target is gone)"
                            % (view["destination"], view["target"], view["route_table"]),
                    fix="replace the blackhole route %s in %s" % (view["destination"], view["route_table"]))
    target = view["target"] or ""
    if target == "local":
        if destination_vpc in (None, vpc_id):
            return dict(result, message="local route inside %s" % vpc_id)
        return dict(result, verdict="deny", code=CANNOT_ROUTE,
                    message="%s is inside %s's own range but the interface is in %s"
                            % (destination, vpc_id, destination_vpc))
    if target.startswith("pcx-"):
        pcx = state.peerings.get(target)
        if pcx is None:
            return dict(result, verdict="unknown",
                        message="the route leads to peering %s, which Describe did not return" % target)
        status = pcx.get("Status", {}).get("Code")
        if status != "active":
            return dict(result, verdict="deny", code=BAD_STATE,
                        message="the route leads to peering %s, which is %s, not active" % (target, status),
                        fix="accept VPC peering connection %s (in the accepter's account and region)" % target
                        if status == "pending-acceptance" else "re-create VPC peering connection %s" % target)
        other = _peer_info(pcx, vpc_id)
        if destination_vpc is not None and other.get("VpcId") != destination_vpc:
            return dict(result, verdict="deny", code=CANNOT_ROUTE,
                        message="the route sends %s to peering %s, which leads to %s, not to %s"
                                % (destination, target, other.get("VpcId"), destination_vpc),
                        fix=_route_fix(state, table, vpc_id, destination, destination_vpc, route))
        where = other.get("VpcId")
        if other.get("Region") and other.get("Region") != state.region and _inter_region(pcx):
            where = "%s in region %s" % (where, other["Region"])
        return dict(result, message="route %s -> %s to %s" % (view["destination"], target, where),
                    beyond=None if destination_vpc is not None else
                    "peering %s to %s: that VPC's ACLs, groups and route back" % (target, where))
    if target.startswith("tgw-"):
        return dict(result, verdict="unknown",
                    message="the route leads to transit gateway %s, whose route tables are not evaluated here (if"
                            " they lack a route, Reachability Analyzer says %s)" % (target, TGW_RTB_CANNOT_ROUTE))
    if target.startswith(("eni-", "i-", "vpce-")):
        return dict(result, verdict="unknown",
                    message="the route sends %s through %s (an appliance), which is not evaluated here"
                            % (destination, target))
    if destination_vpc is not None:
        # an internet gateway, NAT gateway or VPN does not lead to a private address of another VPC
        return dict(result, verdict="deny", code=NO_ROUTE,
                    message="the most specific route for %s in %s is %s -> %s, which does not lead to %s"
                            % (destination, view["route_table"], view["destination"], target, destination_vpc),
                    fix=_route_fix(state, table, vpc_id, destination, destination_vpc, route))
    return dict(result, verdict="unknown",
                message="route %s -> %s leaves the VPC; what lies beyond is not evaluated" % (view["destination"],
                                                                                              target))


def _route_fix(state, table, vpc_id, destination, destination_vpc, wrong=None):
    """The smallest route change: remove ``wrong`` when the route it overrides already leads
    there (a more specific route to a gateway hides a peering route), else add the route."""
    if wrong is not None:
        behind = lookup_route(table, destination, state.prefix_lists, without=wrong)
        if _leads_to(state, behind, vpc_id, destination_vpc):
            wrong_view, behind_view = _route_view(table, wrong), _route_view(table, behind)
            return ("remove route %s -> %s from %s (it is more specific than route %s -> %s, which leads to %s)"
                    % (wrong_view["destination"], wrong_view["target"], table["RouteTableId"],
                       behind_view["destination"], behind_view["target"], destination_vpc))
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


def path_mtu(state, route_view, vpc_id):
    """(bytes, what) of the path a route leads onto when it is smaller than an instance's MTU,
    else None (inside the VPC, peering in one region, or nothing known)."""
    target = (route_view or {}).get("target") or ""
    for prefix, mtu, what in GATEWAY_MTU:
        if target.startswith(prefix):
            return mtu, "%s %s" % (what, target)
    if target.startswith("pcx-"):
        pcx = state.peerings.get(target) or {}
        if _inter_region(pcx):
            return INTER_REGION_PEERING_MTU, "inter-region VPC peering %s (to %s)" % (
                target, _peer_info(pcx, vpc_id).get("Region"))
    return None


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
    """The hops checked so far, what blocks, what was not evaluated, and the MTU findings."""

    def __init__(self):
        self.checked = []
        self.blocking = []
        self.unknown = []
        self.mtu = []

    def step(self, step, component, verdict, detail=None):
        self.checked.append({"step": step, "component": component, "verdict": verdict, "detail": detail})

    def block(self, code, component, message, fix, rule=None, direction=None):
        self.blocking.append({"code": code, "component": component, "direction": direction, "rule": rule,
                              "message": message, "fix": fix, "lab_stand_in": LAB_STAND_INS.get(component["type"])})


def _sg_verdict(state, eni, direction, flow, peer, peer_eni):
    groups = state.groups_of(eni)
    peer_groups = [group["GroupId"] for group in (peer_eni or {}).get("Groups", [])]
    verdict = evaluate_security_groups(groups, direction, flow["protocol"], flow["port"], flow["icmp_type"], peer,
                                       peer_groups, state.prefix_lists, flow.get("icmp_code", 0))
    return groups, peer_groups, verdict


def _check_sgs(finding, state, eni, direction, flow, peer, peer_eni):
    groups, peer_groups, verdict = _sg_verdict(state, eni, direction, flow, peer, peer_eni)
    group_ids = [group["GroupId"] for group in groups]
    label = "%s %s" % ("source" if direction == "egress" else "target", eni["NetworkInterfaceId"])
    finding.step("security groups %s of %s" % (direction, label), group_ids, verdict["verdict"],
                 verdict["rule"] or ({"unresolved_prefix_lists": verdict["unresolved"]}
                                     if verdict["unresolved"] else None))
    if verdict["verdict"] == "unknown":
        finding.unknown.append("prefix lists %s were not read" % ", ".join(verdict["unresolved"]))
    if verdict["verdict"] != "deny":
        return
    what = describe_flow(flow["protocol"], flow["port"], flow["icmp_type"], flow.get("icmp_code"))
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


def _check_acl(finding, state, eni, egress, flow, peer, peer_cidr, ports, leg):
    acl = state.acl_for(eni["SubnetId"])
    direction = "outbound" if egress else "inbound"
    if acl is None:
        finding.step("network ACL %s of %s (%s)" % (direction, eni["SubnetId"], leg), None, "unknown")
        finding.unknown.append("no network ACL of %s was read" % eni["SubnetId"])
        return
    icmp_type, icmp_code = flow["icmp_type"], flow.get("icmp_code", 0)
    segments = evaluate_acl_ports(acl, egress, flow["protocol"], ports, peer, icmp_type, icmp_code)
    allowed = all(segment["action"] == "allow" for segment in segments)
    finding.step("network ACL %s of %s (%s)" % (direction, eni["SubnetId"], leg), acl["NetworkAclId"],
                 "allow" if allowed else "deny", segments)
    if allowed:
        return
    denied = [segment for segment in segments if segment["action"] != "allow"]
    entry = denied[0]["entry"]
    if ports is None:
        what = describe_flow(flow["protocol"], None, icmp_type, icmp_code)
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
    if result["beyond"]:
        finding.unknown.append("not evaluated beyond %s" % result["beyond"])
    return result


def _check_mtu(finding, state, eni, route, peer, peer_eni, leg, instance_mtu=None):
    """Path-MTU discovery from ``eni``'s side: when the route toward ``peer`` leads onto a path
    smaller than the instance's MTU (``instance_mtu``, measured; else AWS's 9001), "fragmentation
    needed" (ICMP type 3 code 4, ICMPv6 packet too big) must come back in through the interface's
    security groups and its subnet's ACL."""
    smaller = path_mtu(state, (route or {}).get("route"), eni["VpcId"])
    instance_mtu = instance_mtu or INSTANCE_MTU
    if smaller is None or smaller[0] >= instance_mtu:
        return
    mtu, via = smaller
    version = _address(peer).version
    icmp_type, icmp_code = FRAG_NEEDED[version]
    flow = {"protocol": "icmp" if version == 4 else "icmpv6", "port": None, "icmp_type": icmp_type,
            "icmp_code": icmp_code}
    what = describe_flow(flow["protocol"], None, icmp_type, icmp_code)
    peer_rule = _frag_needed_peer(state, eni, (route or {}).get("route"), peer, peer_eni)
    groups, _, sg = _sg_verdict(state, eni, "ingress", flow, peer, peer_eni)
    acl = state.acl_for(eni["SubnetId"])
    acl_segments = evaluate_acl_ports(acl, False, flow["protocol"], None, peer, icmp_type, icmp_code) if acl else []
    acl_allows = acl is None or all(segment["action"] == "allow" for segment in acl_segments)
    finding.step("path MTU from %s toward %s (%s)" % (eni["NetworkInterfaceId"], peer, leg),
                 [group["GroupId"] for group in groups] + ([acl["NetworkAclId"]] if acl else []),
                 "allow" if sg["verdict"] == "allow" and acl_allows else "deny",
                 {"path_mtu": mtu, "instance_mtu": instance_mtu, "via": via, "security_groups": sg["verdict"],
                  "network_acl": "allow" if acl_allows else "deny"})
    blockers, fixes = [], []
    if sg["verdict"] == "deny":
        own = groups[0]["GroupId"] if groups else "(none)"
        blockers.append("the security groups of %s (%s)" % (eni["NetworkInterfaceId"],
                                                            ", ".join(g["GroupId"] for g in groups) or "none"))
        fixes.append("add ingress %s from %s to %s" % (what, peer_rule, own))
    if not acl_allows:
        entry = [segment for segment in acl_segments if segment["action"] != "allow"][0]["entry"]
        blockers.append("network ACL %s (rule %s)" % (acl["NetworkAclId"], entry["rule_number"]))
        fixes.append(_acl_fix(acl, acl_segments, False, what, peer_rule))
    if not blockers:
        return
    finding.mtu.append({
        "code": PMTUD_BLOCKED, "leg": leg, "network_interface": eni["NetworkInterfaceId"], "path_mtu": mtu,
        "instance_mtu": instance_mtu, "via": via, "icmp_type": icmp_type, "icmp_code": icmp_code,
        "lab_stand_in": LAB_STAND_INS["path-mtu"],
        "message": ("the path from %s to %s goes through %s, which carries at most %d bytes while instances send up to"
                    " %d, and %s allow no %s from %s: packets larger than %d with Don't Fragment set vanish"
                    " (a path-MTU black hole)"
                    % (eni["NetworkInterfaceId"], peer, via, mtu, instance_mtu, " and ".join(blockers), what, peer,
                       mtu)),
        "fix": "; ".join(fixes) + "; or lower the instance's MTU to %d (ip link set dev eth0 mtu %d) or clamp the"
                                  " TCP MSS" % (mtu, mtu)})


def _frag_needed_peer(state, eni, route_view, peer, peer_eni):
    """Where "fragmentation needed" comes from, for the rule to add: any router of an internet or
    VPN path (0.0.0.0/0, ::/0); over peering, the peer VPC's range; else the peer's subnet."""
    target = (route_view or {}).get("target") or ""
    address = _address(peer)
    if target.startswith(("igw-", "eigw-", "vgw-")):
        return "0.0.0.0/0" if address.version == 4 else "::/0"
    if target.startswith("pcx-"):
        info = _peer_info(state.peerings.get(target) or {}, eni["VpcId"])
        cidrs = [info.get("CidrBlock")] + [item.get("CidrBlock") for item in info.get("CidrBlockSet", [])] + [
            item.get("Ipv6CidrBlock") for item in info.get("Ipv6CidrBlockSet", [])]
        covering = [cidr for cidr in cidrs if _contains(cidr, address)]
        if covering:
            return covering[0]
    return _peer_cidr(state, peer_eni, peer)


def _flow_facts(flow, state, key, eni, candidates):
    flow[key + "_interface"] = eni["NetworkInterfaceId"] if eni else None
    flow[key + "_instance"] = (eni or {}).get("Attachment", {}).get("InstanceId")
    flow[key + "_name"] = state.instance_name(flow[key + "_instance"]) if flow[key + "_instance"] else None
    flow[key + "_subnet"] = (eni or {}).get("SubnetId")
    flow[key + "_vpc"] = (eni or {}).get("VpcId")
    if len(candidates) > 1:
        flow[key + "_candidates"] = [{"network_interface": item["NetworkInterfaceId"], "vpc": item.get("VpcId"),
                                      "instance": item.get("Attachment", {}).get("InstanceId")}
                                     for item in candidates]


def _ambiguous(side, address, candidates):
    return ("%s %s is held by %d network interfaces in this region (%s): not evaluated; the inventory's instance_id"
            " or vpc_id tells which" % (side, address, len(candidates), ", ".join(
                "%s of %s in %s" % (item["NetworkInterfaceId"], item.get("Attachment", {}).get("InstanceId"),
                                    item.get("VpcId")) for item in candidates)))


def explain_flow(state, source, target, protocol="tcp", port=None, data_plane=None, ephemeral=LINUX_EPHEMERAL,
                 source_hint=None, target_hint=None, source_mtu=None):
    """Explain whether EC2's configuration lets ``protocol``/``port`` from ``source`` to ``target`` through.

    ``source`` and ``target`` are private addresses; ``data_plane`` is what the probe saw (a verdict
    code such as PORT_FILTERED, or None); ``source_hint`` / ``target_hint`` ({"instance_id",
    "vpc_id"}, from the inventory) tell which interface holds an address that several hold;
    ``source_mtu`` is the source interface's MTU when the data plane measured it (else 9001).
    Returns the explanation dict (see docs/ec2.md): status (blocked | allowed | unknown), code,
    message, fix, component, rule, explanations (every blocking component, in path order),
    checked (every hop evaluated), unknown, mtu (path-MTU findings), flow."""
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
            "port": port if protocol_no in ("6", "17") else None, "icmp_type": icmp_type,
            "icmp_code": 0 if icmp_type is not None else None}
    source_hint, target_hint = source_hint or {}, target_hint or {}
    src_eni, src_candidates = state.find_interface(str(source), source_hint.get("instance_id"),
                                                   source_hint.get("vpc_id"))
    dst_eni, dst_candidates = state.find_interface(str(target), target_hint.get("instance_id"),
                                                   target_hint.get("vpc_id"))
    _flow_facts(flow, state, "source", src_eni, src_candidates)
    _flow_facts(flow, state, "target", dst_eni, dst_candidates)
    flow["data_plane"] = data_plane
    if state.not_read:
        flow["not_read"] = list(state.not_read)
    finding = _Finding()
    if dst_eni is None and len(dst_candidates) > 1:
        return _result(flow, finding, _ambiguous("target", target, dst_candidates), not_evaluated=True)
    if src_eni is None and len(src_candidates) > 1:
        return _result(flow, finding, _ambiguous("source", source, src_candidates), not_evaluated=True)
    if dst_eni is None and src_eni is None:
        return _result(flow, finding, "neither %s nor %s is a private address of an EC2 network interface in this"
                       " region" % (source, target), not_evaluated=True)
    if src_eni is None:
        finding.unknown.append("source %s is no EC2 network interface here: only the target side is evaluated" % source)
    if dst_eni is None:
        finding.unknown.append("target %s is no EC2 network interface in this region (%s): only the source side is"
                               " evaluated" % (target, state.region or "the one read"))

    src_cidr, dst_cidr = _peer_cidr(state, src_eni, source), _peer_cidr(state, dst_eni, target)
    # network ACLs apply where the flow crosses a subnet boundary
    if src_eni is not None and dst_eni is not None:
        crosses_subnets = src_eni["SubnetId"] != dst_eni["SubnetId"]
    else:
        known = src_eni or dst_eni
        other = target if known is src_eni else source
        crosses_subnets = not _contains(state.subnets.get(known["SubnetId"], {}).get("CidrBlock"), _address(other))
    forward_ports = (port, port) if flow["port"] is not None else None
    return_ports = tuple(ephemeral) if flow["port"] is not None else None
    reply = dict(flow, icmp_type=ECHO_REPLY[version] if icmp_type is not None else None)
    dst_vpc = (dst_eni or {}).get("VpcId")
    src_vpc = (src_eni or {}).get("VpcId")

    # in the order a packet meets them: source egress, source subnet, route, target subnet, target
    to_target = to_source = None
    if src_eni is not None:
        _check_sgs(finding, state, src_eni, "egress", flow, target, dst_eni)
        if crosses_subnets:
            _check_acl(finding, state, src_eni, True, flow, target, dst_cidr, forward_ports, "request")
        to_target = _check_route(finding, state, src_eni, target, dst_vpc, "request")
    if dst_eni is not None:
        if crosses_subnets:
            _check_acl(finding, state, dst_eni, False, flow, source, src_cidr, forward_ports, "request")
        _check_sgs(finding, state, dst_eni, "ingress", flow, source, src_eni)
    # the answer: security groups are stateful, network ACLs and routes are not
    if dst_eni is not None:
        to_source = _check_route(finding, state, dst_eni, source, src_vpc, "reply")
    if crosses_subnets:
        if dst_eni is not None:
            _check_acl(finding, state, dst_eni, True, reply, source, src_cidr, return_ports, "reply")
        if src_eni is not None:
            _check_acl(finding, state, src_eni, False, reply, target, dst_cidr, return_ports, "reply")
    # both ends send data (the request, the answer): each needs "fragmentation needed" back
    if src_eni is not None:
        _check_mtu(finding, state, src_eni, to_target, target, dst_eni, "request", source_mtu)
    if dst_eni is not None:
        _check_mtu(finding, state, dst_eni, to_source, source, src_eni, "reply")
    return _result(flow, finding)


def _host_fix(flow):
    """Where to look when EC2 lets the flow through and the packets still go unanswered."""
    if flow.get("port") is None:
        return ("look at the target host: its firewall (iptables/nftables, Windows Firewall) and whether it answers"
                " echo requests at all (net.ipv4.icmp_echo_ignore_all)")
    return ("look at the target host: its firewall (iptables/nftables, Windows Firewall) for %s/%s, and whether"
            " anything listens on it (ss -ltn)" % (flow["protocol"], flow["port"]))


def _open_port(flow, finding):
    """A port that answers although it must not: the security group rule that lets it in, and
    what to remove (security groups allow only, so closing means removing or narrowing a rule)."""
    ingress = next((step for step in finding.checked if step["step"].startswith("security groups ingress")
                    and step["verdict"] == "allow"), None)
    what = describe_flow(flow["protocol"], flow["port"], flow["icmp_type"], flow.get("icmp_code"))
    if ingress is None or not ingress["detail"]:
        return {"message": "configuration allows %s from %s (its target's side was not read)" % (what, flow["source"]),
                "fix": None, "rule": None}
    rule = ingress["detail"]
    peer = rule.get("cidr") or rule.get("group") or rule.get("prefix_list")
    ports = "all" if rule.get("from_port") in (None, -1) else _ports_text(rule["from_port"], rule["to_port"])
    allowing = "ingress rule %s %s from %s of %s" % (rule["protocol"], ports, peer, rule["group_id"])
    return {"message": "configuration allows it: %s lets %s in from %s, although it is expected closed"
                       % (allowing, what, flow["source"]),
            "fix": "remove or narrow %s (or deny %s from %s in the target subnet's network ACL)"
                   % (allowing, what, flow["source"]),
            "rule": rule, "component": {"type": "security-group", "ids": [rule["group_id"]],
                                        "network_interface": flow.get("target_interface")}}


def _result(flow, finding, message=None, not_evaluated=False):
    explanation = {"status": None, "code": None, "message": message, "fix": None, "component": None, "rule": None,
                   "explanations": finding.blocking, "checked": finding.checked, "unknown": finding.unknown,
                   "mtu": finding.mtu, "flow": flow}
    filtered = flow.get("data_plane") is not None
    if not_evaluated:
        explanation.update(status="unknown", code=NOT_EVALUATED)
    elif flow.get("data_plane") in MTU_CODES and finding.mtu:
        # small packets passed (the data plane saw them): the path MTU is the explanation
        first = finding.mtu[0]
        explanation.update(status="blocked", code=first["code"], message=first["message"], fix=first["fix"],
                           component={"type": "path-mtu", "network_interface": first["network_interface"],
                                      "via": first["via"]})
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
    elif flow.get("data_plane") in OPEN_CODES:
        explanation.update(status="allowed", code=CONFIGURATION_ALLOWS, **_open_port(flow, finding))
    else:
        mtu = flow.get("data_plane") in MTU_CODES
        explanation.update(status="allowed", code=CONFIGURATION_ALLOWS,
                           message=HOST_MTU if mtu else HOST_DROPS if filtered else "configuration allows it (security"
                           " groups, network ACLs and routes of both ends)",
                           fix=_host_fix(flow) if filtered and not mtu else None)
    return explanation
