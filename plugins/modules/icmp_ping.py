#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: fping-style ICMP echo to many targets from the managed host, with the neighbour view."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: icmp_ping
short_description: Ping many targets at once from the managed host; RTT statistics, loss, TTL and the ARP/NDP neighbour
description:
  - Sends I(count) ICMP echo requests to every target in I(targets), one round every I(interval)
    seconds to all targets at once (like fping), and reports per target the echoes sent and
    received, the loss, RTT min/avg/max/stddev, the TTL of the replies and the ICMP errors received
    (destination unreachable with its code, time exceeded).
  - Replies are matched by identifier, sequence number, source address and a random cookie in the
    payload, so the replies of another pinger running at the same time are never counted.
  - After the echoes, reads for each target the route the kernel takes (outgoing interface,
    gateway or on-link, source address, from C(ip route get)) and the neighbour entry of the next
    hop (the target itself when on-link, else the gateway) with its state and MAC, from C(ip neigh)
    (or C(/proc/net/arp) where C(ip) is missing).
  - The method is chosen per I(method); C(auto) tries a raw socket (root or CAP_NET_RAW), then an
    unprivileged ICMP datagram socket (where C(net.ipv4.ping_group_range) allows it), then the
    system C(ping) binary, and says which it used and why the others were skipped.
  - Each target gets a Nagios check_icmp style C(state) from I(warn) and I(crit) (thresholds on the
    average RTT and on the loss) and has an expectation I(reachable). The task fails when a target
    misses its expectation or crosses I(crit); the result still lists every target.
  - Input is validated and every name resolved before anything is sent; a bad target fails the task
    with a message naming the field, and no packet is sent. A name that does not resolve is that
    target's C(dns_error); the other targets are still pinged.
version_added: "0.2.0"
author:
  - netcheck maintainers (@netcheck)
options:
  targets:
    description: The hosts to ping, all at once in one invocation.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Host name, IPv4 or IPv6 address. Names are resolved (concurrently) before anything is sent.
        type: str
        required: true
      reachable:
        description:
          - C(true) (default) when the target must answer; C(false) when it must not (for instance
            through a firewall that must drop ICMP).
        type: bool
        default: true
      name:
        description: A label for this target, returned as C(detail.name). Must be a string.
        type: raw
  count:
    description: Echo requests per target (1 to 1000).
    type: int
    default: 3
  interval:
    description: Seconds between two rounds of echoes (at least 0.001).
    type: float
    default: 0.2
  timeout:
    description: Seconds each echo waits for its reply; a later reply counts as lost.
    type: float
    default: 1.0
  size:
    description: Payload bytes per echo (0 to 65507), as C(ping -s).
    type: int
    default: 56
  method:
    description:
      - C(raw) raw ICMP socket, C(dgram) unprivileged ICMP socket, C(system) the C(ping) binary,
        C(auto) the first of these that works here.
      - A forced method that this host forbids fails the task with the reason.
    type: str
    choices: [auto, raw, dgram, system]
    default: auto
  warn:
    description: Thresholds for C(state=warn); a target at or above either one is C(warn).
    type: dict
    suboptions:
      rtt_ms:
        description: Average RTT in milliseconds.
        type: float
      loss_pct:
        description: Packet loss in percent.
        type: float
  crit:
    description: Thresholds for C(state=crit), which fails the task.
    type: dict
    suboptions:
      rtt_ms:
        description: Average RTT in milliseconds.
        type: float
      loss_pct:
        description: Packet loss in percent.
        type: float
  neighbour:
    description: Read the route and the neighbour (ARP/NDP) entry of every target after the echoes.
    type: bool
    default: true
attributes:
  check_mode:
    details: The module only sends echo requests and reads kernel tables; it runs in check mode too.
extends_documentation_fragment:
  - netcheck.netcheck.attributes
notes:
  - A run lasts at most C((count - 1) * interval + timeout) seconds, less when every echo was answered.
  - C(rtt_stddev_ms) is the population standard deviation (what iputils ping prints as mdev).
  - On Linux an unanswered ARP is given up after about 3 seconds; an unassigned address on the
    local subnet shows neighbour state C(INCOMPLETE) before that, C(FAILED) after.
seealso:
  - module: netcheck.netcheck.port_check
    description: TCP checks from the managed host.
"""

EXAMPLES = r"""
- name: Ping the database and the gateway from every web host
  netcheck.netcheck.icmp_ping:
    targets:
      - host: 10.0.1.20
      - host: db1.example.internal
        name: db1
      - host: 10.0.0.1
    count: 5
    warn: {rtt_ms: 50, loss_pct: 10}
    crit: {rtt_ms: 200, loss_pct: 40}
  register: ping

- name: A host that must not answer ICMP (a firewall drops it)
  netcheck.netcheck.icmp_ping:
    targets:
      - {host: 10.0.9.9, reachable: false}
    count: 2
    timeout: 1

- name: Which MAC answered for each target
  ansible.builtin.debug:
    msg: "{{ ping.results | map(attribute='detail.neighbour.mac') | list }}"
"""

RETURN = r"""
results:
  description: One entry per target, in the order of I(targets); the shape every probe of this project returns.
  returned: always (empty when the input was rejected)
  type: list
  elements: dict
  contains:
    target:
      description: The host as given.
      type: str
      sample: "10.77.0.12"
    kind:
      description: Always C(icmp).
      type: str
      sample: icmp
    state:
      description: >-
        The status: C(ok), C(warn) or C(crit) from the thresholds on average RTT and loss, or
        C(unreachable) when no echo came back, C(dns_error) when the name did not resolve (nothing
        was sent to it; the other targets are still pinged).
      type: str
      choices: [ok, warn, crit, unreachable, dns_error]
      sample: ok
    ok:
      description: Whether the target met its expectation (reachable and not crit, or unreachable when I(reachable=false)).
      type: bool
      sample: true
    timings:
      description: C(total_ms), the wall time of the whole run.
      type: dict
      sample: {"total_ms": 402.5}
    error:
      description: Why the target missed its expectation, else null.
      type: str
      sample: "no echo reply to 3 echo requests (host unreachable from 10.77.0.11)"
    detail:
      description: Facts of the ICMP probe.
      type: dict
      contains:
        host: {description: The host as given., type: str}
        address: {description: The address pinged., type: str}
        name: {description: "The label given, or null.", type: str}
        family: {description: C(ipv4) or C(ipv6)., type: str}
        reachable: {description: The expectation., type: bool}
        method: {description: "The method used (C(raw), C(dgram) or C(system)).", type: str}
        sent: {description: Echo requests sent., type: int}
        received: {description: Echo replies received in time., type: int}
        loss_pct: {description: Packet loss in percent., type: float}
        rtt_min_ms: {description: Fastest RTT in ms; null when nothing came back., type: float}
        rtt_avg_ms: {description: Average RTT in ms; null when nothing came back., type: float}
        rtt_max_ms: {description: Slowest RTT in ms; null when nothing came back., type: float}
        rtt_stddev_ms: {description: Population standard deviation of the RTTs (ping's mdev); null when nothing came back., type: float}
        rtts_ms: {description: "Every RTT in ms, in sequence order.", type: list, elements: float}
        ttl: {description: TTL (IPv4) or hop limit (IPv6) of the last reply; null when unknown., type: int}
        duplicates: {description: Duplicate replies seen (not counted as received)., type: int}
        icmp_errors:
          description: >-
            ICMP errors received for our echoes, each {seq, from, type, code, message}, e.g.
            C(host unreachable) from the local host when ARP got no answer.
          type: list
          elements: dict
        outcome:
          description: >-
            Why the echoes got what they got, as data (docs/results.md): C(reason) C(echo_reply),
            C(icmp_error) (with the first error's C(icmp_type), C(icmp_code), C(icmp_from)),
            C(no_neighbour) (the source itself said its ARP/NDP got no answer), C(no_answer), C(dns)
            or C(probe_error); C(phase) C(echo); C(probes) (echoes sent), C(answers) (echoes that
            got a reply or an error), C(confirmed), C(verdict_ms).
          type: dict
        route:
          description: >-
            The route to the target, {dev, gateway, src, type, source, error} (C(source) says where it
            was read); null with I(neighbour=false).
          type: dict
        neighbour:
          description: >-
            The neighbour entry of the next hop, {ip, state, mac, dev, source, error, via_gateway}:
            C(ip) is the target when on-link, else the gateway (C(via_gateway) true); C(state) is
            the kernel's (REACHABLE, STALE, DELAY, PROBE, FAILED, INCOMPLETE, PERMANENT, NOARP), C(NONE)
            when there is no entry, C(LOCAL) for an address of this host; null with I(neighbour=false).
          type: dict
      sample:
        host: 10.77.0.12
        address: 10.77.0.12
        name: null
        family: ipv4
        reachable: true
        method: raw
        sent: 3
        received: 3
        loss_pct: 0.0
        rtt_min_ms: 0.041
        rtt_avg_ms: 0.052
        rtt_max_ms: 0.067
        rtt_stddev_ms: 0.011
        rtts_ms: [0.067, 0.048, 0.041]
        ttl: 64
        duplicates: 0
        icmp_errors: []
        route: {dev: eth0, gateway: null, src: 10.77.0.11, type: unicast, source: ip route get, error: null}
        neighbour: {ip: 10.77.0.12, state: REACHABLE, mac: "42:71:41:4b:c5:20", dev: eth0, source: ip neigh,
                    error: null, via_gateway: false}
        outcome: {"reason": "echo_reply", "phase": "echo", "errno": null, "errno_name": null, "icmp_type": null,
                  "icmp_code": null, "icmp_from": null, "icmp_family": null, "probes": 3, "answers": 3,
                  "confirmed": true, "verdict_ms": 401.3}
summary:
  description: Counts over I(results) (C(states) counts by status).
  returned: always
  type: dict
  sample: {"total": 2, "ok": 2, "failed": 0, "states": {"ok": 2}}
method:
  description: The method used for every target (null when the input was rejected or no method works).
  returned: always
  type: str
  sample: raw
method_notes:
  description: Why methods tried before the one used were skipped (with I(method=auto)).
  returned: always
  type: list
  elements: str
  sample: []
elapsed_ms:
  description: Wall time of the whole invocation in milliseconds.
  returned: always
  type: float
  sample: 405.1
"""

import time

from ..module_utils.netcheck.icmp import (
    ICMP_MODULE_SPEC, InputError, MethodUnavailable, parse_targets, ping_targets, validate_options,
    validate_thresholds,
)
from ..module_utils.netcheck.neighbour import next_hops
from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.probe import outcome
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(ICMP_MODULE_SPEC))
    params = module.params
    start = time.monotonic()
    empty = dict(method=None, method_notes=[])
    try:
        count, interval, timeout, size = validate_options(params["count"], params["interval"], params["timeout"],
                                                          params["size"])
        warn = validate_thresholds(params["warn"], "warn")
        crit = validate_thresholds(params["crit"], "crit")
        targets = parse_targets(params["targets"])
    except InputError as exc:
        module.fail_json(msg=str(exc), **outcome([], start, **empty))

    lookup = (lambda addresses: next_hops(addresses, module.run)) if params["neighbour"] else None
    try:
        results, method, notes = ping_targets(targets, count, interval, timeout, size, params["method"], warn, crit,
                                              run=module.run, which=module.get_bin_path,
                                              neighbours=lookup)
    except MethodUnavailable as exc:
        module.fail_json(msg=str(exc), **outcome([], start, **empty))
    result = outcome(results, start, method=method, method_notes=notes)
    module.finish(result, "%d targets as expected (method %s)" % (result["summary"]["total"], method))


if __name__ == "__main__":
    main()
