#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: where on the path a flow dies (hop by hop), and the path MTU, from the managed host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: path_probe
short_description: Trace a failing flow hop by hop and find the path MTU from the managed host
description:
  - For each target, sends the SAME flow as the check that failed with a stepped TTL / hop limit
    (Paris-traceroute style - one source port, one destination port, one protocol, so a load balancer
    hashing on the 5-tuple sends every probe the way the check went) - a TCP SYN to I(targets[].port)
    through an ordinary C(connect()) (no root needed), or ICMP echo with one identifier (a raw socket as
    root, else the unprivileged ICMP socket). Time-exceeded and unreachable answers are read from the
    socket's error queue (C(IP_RECVERR) / C(IPV6_RECVERR)) with their type, code and sender.
  - Returns every hop (index, address, rtt_ms, what it answered) and where the trace stops -
    C(REACHED), C(DROPPED_AFTER_HOP) (the last hop that answered; the next is silent), C(REJECTED_AT_HOP)
    (a router answered unreachable - no route, or a REJECT rule), C(ROUTING_LOOP) (the same routers answer
    again), C(TTL_EXPIRED) (the path is longer than the TTL the source sends with) or C(LOCAL_ERROR).
  - With I(mtu=true), sends ICMP echoes with Don't Fragment set (C(IP_PMTUDISC_PROBE)) of growing size
    and says C(PMTU_OK), C(PMTU_REDUCED) (a router reported a smaller MTU - path-MTU discovery works) or
    C(MTU_BLACKHOLE) (large DF packets vanish and no "fragmentation needed" comes back), naming the largest
    size that passed and the interface MTU. Needs an ICMP socket (root, or C(net.ipv4.ping_group_range)).
  - Every probe is bounded (I(max_hops), I(attempts), I(timeout); a trace stops after two silent hops).
    See docs/path.md.
  - The module changes nothing on the host, so it runs in check mode too.
version_added: "0.6.0"
author:
  - netcheck maintainers (@netcheck)
options:
  targets:
    description: The flows to trace, one after the other (each is bounded).
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: The target's address or name (the failing check's).
        type: str
        required: true
      port:
        description: TCP port of the failing check; without it the trace uses ICMP echo.
        type: int
      protocol:
        description: The flow traced (default tcp with a port, icmp without).
        type: str
        choices: [tcp, icmp]
      family:
        description: Address family used when a name resolves to both.
        type: str
        choices: [any, ipv4, ipv6]
        default: any
      name:
        description: A label returned with the result (for instance the inventory name).
        type: str
  trace:
    description: Trace each flow hop by hop.
    type: bool
    default: true
  mtu:
    description: Also find the path MTU with DF echo probes.
    type: bool
    default: false
  max_hops:
    description: Highest TTL / hop limit tried (1-64).
    type: int
    default: 16
  timeout:
    description: Seconds to wait for each probe's answer.
    type: float
    default: 0.5
  attempts:
    description: Probes per hop (and per MTU size) before it counts as silent (1-5).
    type: int
    default: 2
attributes:
  check_mode:
    details: The module only sends probes; it runs in check mode too.
  platform:
    platforms: linux
extends_documentation_fragment:
  - netcheck.netcheck.attributes
notes:
  - A router answers the TTL that expires on it before its FORWARD chain filters the packet, so a router
    whose filter drops the flow still answers its own hop - C(DROPPED_AFTER_HOP) names it, and the drop is
    there or just after (as traceroute shows it).
  - Routers rate-limit their ICMP errors; a hop that stays silent after I(attempts) probes counts as silent.
seealso:
  - module: netcheck.netcheck.net_diagnose
  - module: netcheck.netcheck.conn_limits
"""

EXAMPLES = r"""
- name: Where does the web tier's traffic to the database die?
  netcheck.netcheck.path_probe:
    targets:
      - host: 10.0.2.15
        port: 5432
  register: path

- name: Show where it stops
  ansible.builtin.debug:
    msg: "{{ path.paths[0].trace.stop.code }} at hop {{ path.paths[0].trace.stop.hop }}: {{ path.paths[0].trace.hint }}"

- name: Is there an MTU black hole on the way to the other region?
  netcheck.netcheck.path_probe:
    targets:
      - host: 10.1.0.20
    trace: false
    mtu: true
  register: pmtu
"""

RETURN = r"""
paths:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The host as given.
      type: str
      sample: 10.78.141.13
    name:
      description: The label given, or null.
      type: str
      sample: b1
    port:
      description: The TCP port traced (null for ICMP).
      type: int
      sample: 8080
    protocol:
      description: tcp or icmp.
      type: str
      sample: tcp
    trace:
      description:
        - The trace (null when I(trace=false)) - address, family, protocol, port, method (tcp-connect, raw or
          dgram), source_port (the one source port every SYN used), flow_ttl (the TTL the source sends with),
          probes (packets sent), elapsed_ms, hint, C(hops) (each - hop, address, rtt_ms, answer (time_exceeded,
          unreachable, syn_ack, rst, echo_reply, frag_needed, local_error, none), attempts, icmp_type, icmp_code,
          icmp_name) and C(stop) (code, hop, address, icmp_name, icmp_code, last_answering_hop,
          last_answering_address, meaning; loop - the addresses of the loop - for ROUTING_LOOP).
      type: dict
      sample: {"address": "10.78.141.13", "family": "ipv4", "protocol": "tcp", "port": 8080, "method": "tcp-connect",
               "source_port": 40112, "flow_ttl": 64, "probes": 4, "elapsed_ms": 2005.4,
               "hops": [{"hop": 1, "address": "10.78.140.14", "rtt_ms": 0.11, "answer": "time_exceeded", "attempts": 1,
                         "icmp_type": 11, "icmp_code": 0, "icmp_name": "TTL exceeded in transit"}],
               "stop": {"code": "DROPPED_AFTER_HOP", "hop": 2, "address": "10.78.142.15"},
               "hint": "hop 2 (10.78.142.15) answered, the next hop is silent: ..."}
    mtu:
      description:
        - The path MTU (null unless I(mtu=true)) - code (PMTU_OK, PMTU_REDUCED, MTU_BLACKHOLE, UNDETERMINED),
          path_mtu, interface_mtu, largest_passed, smallest_lost, reported_mtu and reported_by (the router that
          sent "fragmentation needed" / "packet too big"), exact (the MTU is known to the byte), method,
          packets (echoes sent), elapsed_ms, probes (each size tried and its answer), hint.
      type: dict
      sample: {"code": "MTU_BLACKHOLE", "path_mtu": 1500, "interface_mtu": 9001, "largest_passed": 1500,
               "smallest_lost": 1501, "reported_mtu": null, "reported_by": null, "exact": true, "packets": 18,
               "elapsed_ms": 3009.5}
    error:
      description: Why this target could not be probed (the name did not resolve, no ICMP socket), or null.
      type: str
      sample: null
"""

from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.path import PATH_SPEC, parse_path_targets, probe_paths
from ..module_utils.netcheck.probe import InputError
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(PATH_SPEC))
    params = module.params
    try:
        targets = parse_path_targets(params["targets"], params["max_hops"], params["timeout"], params["attempts"])
    except InputError as exc:
        module.fail_json(msg=str(exc), changed=False)
    paths = probe_paths(targets, trace_flows=params["trace"], mtu=params["mtu"], max_hops=params["max_hops"],
                        timeout=params["timeout"], attempts=params["attempts"])
    module.exit_json(changed=False, paths=paths)


if __name__ == "__main__":
    main()
