"""Why EC2's configuration lets a flow through or not: security groups, network ACLs, routes, path MTU.

Three parts, one file each:

- ``ec2_fetch``: the read-only Describe/Get calls (boto3), collected into an ``Ec2State``;
- ``ec2_evaluate``: pure functions on that data - security groups, network ACLs, routes and
  peering, path MTU - naming what blocks a flow with Reachability Analyzer's codes;
- ``ec2_pairs``: which pairs and checks of a run to explain, and which instances they are.

This module holds the ``ec2_explain`` action's options and the names the action plugin,
``netcheck_report`` and the tests import.
"""

from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_evaluate import (  # noqa: F401 (re-exported)
    ACL_RESTRICTION, BAD_STATE, BAD_STATE_ROUTE, CANNOT_ROUTE, CONFIGURATION_ALLOWS, ECHO_REPLY, ECHO_REQUEST,
    FRAG_NEEDED, HOST_DROPS, INSTANCE_MTU, LAB_STAND_INS, LINUX_EPHEMERAL, MTU_CODES, NO_ROUTE, NOT_EVALUATED,
    PMTUD_BLOCKED, PROTOCOL_NAMES, SG_MISMATCH, TGW_RTB_CANNOT_ROUTE, Ec2State, describe_flow, evaluate_acl_ports,
    evaluate_route, evaluate_security_groups, explain_flow, interface_addresses, lookup_route, path_mtu,
    peering_between, protocol_number, route_target, vpc_cidrs)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_fetch import (  # noqa: F401 (re-exported)
    NO_CREDENTIALS, Ec2ExplainError, Ec2Fetcher)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_pairs import (  # noqa: F401 (re-exported)
    FILTERED_CODES, PORT_STATES, explain_run, flows_of_pair, inventory_options)

# The options of the ec2_explain action (its documentation is plugins/modules/ec2_explain.py; the
# format is module_utils/netcheck/spec.py's).
EC2_EXPLAIN_SPEC = {
    "source": {"type": "str", "required": True, "description": "Private IP address of the source's network interface."},
    "target": {"type": "str", "required": True, "description": "Private IP address of the target's network interface."},
    "source_instance": {"type": "str",
                        "description": "Instance id of the source, when its address is held by several interfaces."},
    "target_instance": {"type": "str",
                        "description": "Instance id of the target, when its address is held by several interfaces."},
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
