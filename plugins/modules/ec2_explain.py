#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of netcheck.netcheck.ec2_explain. The work is done on the controller by the action
plugin of the same name (plugins/action/ec2_explain.py), as ansible-core does for its action-only
modules: this file holds only the documentation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_explain
short_description: Explain from EC2's configuration why a flow between two instances is filtered
description:
  - Evaluates, for one flow (I(protocol), I(port)) from the private address I(source) to the
    private address I(target), what EC2's configuration does with it, the way EC2 applies it -
    the source interface's security-group egress and the target interface's security-group
    ingress (stateful, allow-only; rules naming CIDRs, other security groups or managed prefix
    lists), both subnets' network ACLs (stateless, numbered, first match; the request and the
    answer to the client's ephemeral port), and the route tables both ways (the subnet's explicit
    association, else the VPC's main table; the local route, VPC peering across VPCs).
  - Names what blocks the flow with AWS Reachability Analyzer's explanation codes
    (C(ENI_SG_RULES_MISMATCH), C(SUBNET_ACL_RESTRICTION), C(NO_ROUTE_TO_DESTINATION),
    C(BAD_STATE_ROUTE), C(BAD_STATE), C(CANNOT_ROUTE)), with the exact rule or ACL entry and the
    smallest change that would allow it (for example C(add ingress tcp/8080 from sg-1 to sg-2)).
  - "When every component allows the flow, the code is C(CONFIGURATION_ALLOWS); with
    I(data_plane) set (the data plane saw it filtered) the message says
    C(configuration allows it: the host itself drops it (host firewall) or nothing listens) -
    what the configuration cannot see."
  - Runs on the controller only, with boto3, and makes read-only calls - DescribeNetworkInterfaces,
    DescribeInstances, DescribeSecurityGroups, DescribeNetworkAcls, DescribeRouteTables,
    DescribeSubnets, DescribeVpcs, DescribeVpcPeeringConnections, DescribeManagedPrefixLists and
    GetManagedPrefixListEntries (docs/ec2.md has the IAM policy). It never changes anything.
  - Transit gateway route tables, appliances (routes to a network interface) and AWS Network
    Firewall are not evaluated; a path through them gives status C(unknown) and says so. An
    address that is no interface of the region (another region, account, or outside AWS) gets
    its own side not evaluated; the other side still is.
  - "Path MTU: where the route leads onto a path smaller than the instances' 9001 bytes (an
    internet gateway or VPN: 1500; inter-region peering or a transit gateway: 8500), it checks
    that ICMP fragmentation needed (type 3 code 4; ICMPv6 packet too big) may come back in
    through the sender's security groups and network ACL, and lists what blocks it under C(mtu)."
  - check.yml fills the C(explain) of filtered pairs itself (C(explain_run) in
    plugins/plugin_utils/ec2_explain.py); this module asks about one flow by hand.
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  source:
    description: Private IP address of the source instance's network interface (IPv4 or IPv6).
    type: str
    required: true
  target:
    description: Private IP address of the target instance's network interface (IPv4 or IPv6).
    type: str
    required: true
  source_instance:
    description:
      - Instance id of the source. Needed only when its address is held by several network
        interfaces of the region (two VPCs that are not peered may use the same CIDR); without
        it such an address is not evaluated and the explanation lists the candidates.
    type: str
  target_instance:
    description: Instance id of the target, for the same case as I(source_instance).
    type: str
  protocol:
    description: The flow's protocol. C(icmp) evaluates an echo request and its echo reply.
    type: str
    default: tcp
    choices: [tcp, udp, icmp]
  port:
    description: Destination port (1-65535). Required for C(tcp) and C(udp), not used for C(icmp).
    type: int
  data_plane:
    description:
      - What the data plane saw, as a verdict code (C(PORT_FILTERED), C(ICMP_FILTERED)) or a
        state (C(filtered)). When set and the configuration allows the flow, the explanation
        points at the host (its firewall, or no listener).
      - C(PORT_OPEN) (open although expected closed) names the security group rule that lets it
        in and what to remove; C(MTU_BLACKHOLE) makes a path-MTU finding the explanation.
    type: str
  ephemeral_ports:
    description:
      - The client's ephemeral port range [low, high], which network ACLs must let the answers
        reach. Linux uses 32768-60999, Windows 49152-65535, NAT gateways 1024-65535.
    type: list
    elements: int
    default: [32768, 60999]
  region:
    description: The AWS region of both instances. Default the AWS_REGION / profile setting.
    type: str
  endpoint_url:
    description: The EC2 API URL, for a VPC interface endpoint or a stand-in such as moto.
    type: str
  profile:
    description: The AWS profile to use. Default AWS_PROFILE or boto3's credential chain.
    type: str
attributes:
  check_mode:
    details: It only reads the EC2 configuration, in check mode too.
extends_documentation_fragment:
  - netcheck.netcheck.attributes.controller
notes:
  - Needs boto3 on the controller (requirements.txt) and AWS credentials allowed the Describe
    calls above; an unknown region, missing credentials or a denied call fail the task with a
    message saying which.
  - Security groups stop nothing between two addresses of one interface, and network ACLs apply
    only where a flow crosses a subnet boundary; both are handled.
seealso:
  - name: Reachability Analyzer explanation codes
    description: The codes this module returns for a blocked flow.
    link: https://docs.aws.amazon.com/vpc/latest/reachability/explanation-codes.html
"""

EXAMPLES = r"""
- name: Why can web1 not reach port 5432 on db1?
  netcheck.netcheck.ec2_explain:
    source: 10.0.1.10
    target: 10.0.2.20
    port: 5432
    data_plane: PORT_FILTERED
    region: eu-west-1
  register: why

- name: Show the verdict and the fix
  ansible.builtin.debug:
    msg: "{{ why.explain.code }}: {{ why.explain.message }} (fix: {{ why.explain.fix }})"

- name: Is ping between two instances allowed, answers included?
  netcheck.netcheck.ec2_explain:
    source: "{{ hostvars['web1'].private_ip_address }}"
    target: "{{ hostvars['db1'].private_ip_address }}"
    protocol: icmp
    profile: readonly
"""

RETURN = r"""
msg:
  description: One line - the code, the message, and the fix when there is one.
  returned: success
  type: str
  sample: "ENI_SG_RULES_MISMATCH: the security groups of target eni-2 (sg-2 (db)) allow no ingress tcp/5432 from 10.0.1.10; fix: add ingress tcp/5432
      from sg-1 to sg-2"
explain:
  description: The explanation of the flow.
  returned: success
  type: dict
  contains:
    status:
      description: C(blocked) (a component denies it), C(allowed) (every component allows it) or C(unknown) (not all could be evaluated, or an
          address is no EC2 interface).
      type: str
      sample: blocked
    code:
      description: The first blocking component's Reachability Analyzer code, else C(CONFIGURATION_ALLOWS) or C(NOT_EVALUATED).
      type: str
      sample: ENI_SG_RULES_MISMATCH
    message:
      description: What blocks it, in plain words, naming the component and rule.
      type: str
      sample: "network ACL acl-1 of subnet-2 denies inbound tcp/5432 from 10.0.1.10 (rule 90)"
    fix:
      description: The smallest change that would allow the flow (null when there is none to suggest).
      type: str
      sample: "add ingress tcp/5432 from sg-1 to sg-2"
    component:
      description: The blocking component - C(type) (security-group, network-acl, route-table) and its ids.
      type: dict
      sample: {"type": "network-acl", "id": "acl-1", "subnet": "subnet-2"}
    rule:
      description: >-
        The exact ACL entry (rule_number, action, direction, protocol, cidr, ports), the route
        (route_table, destination, target, state), or for a security group the missing rule
        (C(missing) - direction, protocol, port, icmp_type, peer, group_id).
      type: dict
      sample: {"rule_number": 90, "action": "deny", "direction": "inbound", "protocol": "tcp", "cidr": "10.0.1.0/24", "ports": "5432"}
    explanations:
      description: Every blocking component in path order, each with code, component, direction, rule, message, fix.
      type: list
      elements: dict
    checked:
      description: Every hop evaluated in path order, each with step, component, verdict (allow, deny, unknown) and detail (the matching rule, entry
          segments or route).
      type: list
      elements: dict
    unknown:
      description: >-
        What could not be evaluated (transit gateways, appliances, unread prefix lists, the side
        of an address that is no interface of the region).
      type: list
      elements: str
    mtu:
      description: >-
        Path-MTU findings (code C(PMTUD_ICMP_BLOCKED)) - a path smaller than the instance's MTU on
        which ICMP fragmentation needed cannot come back - each with leg, network_interface,
        path_mtu, instance_mtu, via, icmp_type, icmp_code, message and fix. Empty when none.
      type: list
      elements: dict
    flow:
      description: >-
        The flow - source, target, protocol, port, icmp_type, data_plane, and for each end its
        interface, instance, Name tag, subnet and VPC (source_interface, target_instance, ...).
      type: dict
"""
