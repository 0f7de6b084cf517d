#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: concurrent telnet-style TCP port checks from the managed host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_check
short_description: Check many TCP ports from the managed host at once (telnet HOST PORT, concurrently)
description:
  - Opens a TCP connection from the managed host to every target in I(targets), all at the
    same time, and reports for each one whether the port is C(open), C(closed) (the host answered
    with RST), C(filtered) (no answer before the timeout, or the managed host's own firewall refused
    the SYN), C(rejected) (an ICMP error answered this port's SYN, as nmap reads it, any destination
    unreachable from the target or a router, port, host, net or admin prohibited ...; its type, code
    and sender are returned), C(unreachable) (on the managed host's side, no route, or ARP/NDP got no
    answer) or C(dns_error) (the name did not resolve). See docs/port_check.md.
  - Why, as data, is in C(detail.outcome) (a reason from a closed set, the ICMP evidence, how many
    probes went out and came back); the C(error) text is made from it (docs/results.md).
  - Reports the time to the verdict, the errno, the address actually used, and optionally sends a
    string and waits for a regular expression in the answer (the banner).
  - Each target has an I(expected) state (default C(open)). The task fails when any target misses
    its expectation; the result still lists every target.
  - Input is validated before anything is sent; a bad target fails the task with a message that
    names the field (for example C(targets[2].port)), and no connection is attempted.
  - The module changes nothing on the host, so it runs in check mode too.
version_added: "0.1.0"
author:
  - netcheck maintainers (@netcheck)
options:
  targets:
    description:
      - The endpoints to check. All are checked concurrently in one invocation.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description:
          - Host name, IPv4 address or IPv6 address (brackets and a C(%scope) are allowed).
        type: str
        required: true
      port:
        description: TCP port, 1 to 65535.
        type: int
        required: true
      timeout:
        description:
          - Seconds to wait for the handshake, and again for I(expect). Defaults to the
            module-level I(timeout).
        type: float
      send:
        description:
          - Text sent once connected (UTF-8), for instance C("QUIT\r\n"). Must be a string.
        type: raw
      expect:
        description:
          - Python regular expression searched in what the server sends (read until it matches,
            the connection closes, 4096 bytes were read or I(timeout) passes). The target is not
            C(ok) when it does not match.
        type: str
      expected:
        description:
          - The state this target must have for the task to pass. C(filtered) also accepts
            C(rejected) (nmap calls both filtered); every other state accepts only itself
            (docs/results.md, the one definition net_diagnose uses too).
          - The alias I(expected_state) (this option's first name) still works but is deprecated
            and will be removed in 1.0.0; Ansible prints a deprecation warning when it is used.
            The result's C(detail.expected) is the same either way.
        type: str
        choices: [open, closed, filtered, rejected, unreachable, dns_error]
        default: open
        aliases: [expected_state]
      family:
        description: Address family used when a name resolves to both.
        type: str
        choices: [any, ipv4, ipv6]
        default: any
      name:
        description: A label for this target, returned as C(detail.name) (for instance the inventory name). Must be a string.
        type: raw
  timeout:
    description: Default per-target timeout in seconds.
    type: float
    default: 3
  max_workers:
    description:
      - How many sockets are open at the same moment at most (within the host's file limit). All
        targets start at once up to this bound, in one non-blocking engine; with the default, 4096
        filtered targets take about one I(timeout).
    type: int
    default: 4096
  confirm_budget:
    description:
      - Seconds that confirming silent ports may add to the run, at most (0 turns confirmation off).
      - A port that got no answer on a host that answered other ports of this run with ICMP errors
        may have lost its own ICMP answer to the host's ICMP rate limit. It is probed again, one
        probe per host at a time, each sent when the host surely has a token again (1 s after its
        last ICMP error for IPv4, 0.1 s for IPv6), up to 2 more times. It is C(rejected) only when
        an ICMP error for that port arrives; otherwise it stays C(filtered). Ports still waiting
        when the budget ends stay C(filtered) (C(detail.outcome.probes) says how many probes went).
      - A run with no timeouts, or whose timeouts are on hosts that sent no ICMP error, pays
        nothing. In the worst case it adds the budget plus one probe's wait (at most the target's I(timeout)).
        See docs/port_check.md.
    type: float
    default: 10
attributes:
  check_mode:
    details: The module only reads; it probes in check mode as well.
extends_documentation_fragment:
  - netcheck.netcheck.attributes
notes:
  - A C(filtered) verdict takes the whole timeout; C(closed), C(rejected) and C(unreachable) come as
    soon as the kernel knows. On the local subnet, a timeout whose ARP (IPv4) or NDP (IPv6) request
    is still unanswered (Linux gives up only after about 3 seconds) is reported C(unreachable), not
    C(filtered), because nobody holds that address (read from C(ip neigh), or C(/proc/net/arp)).
  - The ICMP evidence (type, code, sender) is read from the socket's error queue (C(IP_RECVERR)),
    on Linux. A verdict rests only on what came back for that port; a port that got no answer is
    never called C(rejected) because its neighbours were (see I(confirm_budget)).
  - I(expect) is searched in a separate Python process that is killed at the deadline, so a
    backtracking pattern cannot hang the task (C(detail.regex_timed_out)).
  - Only the first address a name resolves to is tried (set I(family) to choose between IPv4 and IPv6).
seealso:
  - module: ansible.builtin.wait_for
    description: Waits for one port to reach a state; this module checks many ports once, concurrently.
"""

EXAMPLES = r"""
- name: Check that ssh and the web server answer on every web host
  netcheck.netcheck.port_check:
    targets:
      - {host: 10.0.1.20, port: 22}
      - {host: web1.example.internal, port: 8080}
      - {host: "2001:db8::20", port: 443}

- name: A port that must stay closed, and one that a firewall must drop
  netcheck.netcheck.port_check:
    timeout: 2
    targets:
      - {host: db1.example.internal, port: 5432, expected: closed}
      - {host: db1.example.internal, port: 3306, expected: filtered}

- name: Send and expect, like typing into telnet (the SSH banner)
  netcheck.netcheck.port_check:
    targets:
      - host: bastion.example.internal
        port: 22
        expect: '^SSH-2\.0-'
      - host: smtp.example.internal
        port: 25
        send: "QUIT\r\n"
        expect: '^220 '
  register: ports

- name: Show only the targets that failed
  ansible.builtin.debug:
    msg: "{{ ports.results | rejectattr('ok') | map(attribute='target') | list }}"
"""

RETURN = r"""
results:
  description: One entry per target, in the order of I(targets). Every probe of this project returns this shape.
  returned: always (empty when the input was rejected)
  type: list
  elements: dict
  contains:
    target:
      description: C(host:port) as given (IPv6 literals in brackets).
      type: str
      sample: "10.77.0.12:22"
    kind:
      description: The probe, always C(tcp) here.
      type: str
      sample: tcp
    state:
      description: The verdict; C(error) only when the probe itself failed or passed the global deadline.
      type: str
      sample: open
      choices: [open, closed, filtered, rejected, unreachable, dns_error, error]
    ok:
      description: Whether the state is the expected one and I(expect), when given, matched.
      type: bool
      sample: true
    timings:
      description: >-
        Milliseconds: C(resolve_ms) (name resolution), C(connect_ms) (the handshake, or until it
        failed), C(expect_ms) (send and read, when asked) and C(total_ms) (time to verdict).
      type: dict
      sample: {"resolve_ms": 0.05, "connect_ms": 0.41, "total_ms": 0.52}
    error:
      description: Why the target is not as expected (or what went wrong), else null.
      type: str
      sample: "Connection refused (the host answered with RST: nothing listens there)"
    detail:
      description: Facts of the TCP probe.
      type: dict
      contains:
        host: {description: The host as given., type: str}
        port: {description: The port., type: int}
        name: {description: "The label given, or null.", type: str}
        expected: {description: "The expected state (I(expected), also when given as I(expected_state)).", type: str}
        address: {description: The address connected to (null when the name did not resolve)., type: str}
        family: {description: C(ipv4) or C(ipv6)., type: str}
        local_address: {description: The source address used (when connected)., type: str}
        errno: {description: "The errno of a failed connect (or the resolver's code), else null.", type: int}
        errno_name: {description: "Its symbolic name, for instance C(ECONNREFUSED), C(EHOSTUNREACH), C(EAI_NONAME).", type: str}
        banner: {description: "What the server sent when I(expect) was given (at most 4096 bytes), else null.", type: str}
        expect: {description: "The I(expect) pattern, or null.", type: str}
        expect_matched: {description: Whether I(expect) matched; null when there was nothing to expect., type: bool}
        conversation_error: {description: Why sending or reading failed after the connection was made; null when it did not., type: str}
        icmp_type: {description: "The ICMP type of the error that failed the handshake (3 for IPv4, 1 for IPv6: destination unreachable); null when
            none came.", type: int}
        icmp_code: {description: "Its code (IPv4 3 port unreachable, 1 host unreachable, 10 host prohibited, 13 admin prohibited; IPv6 1 admin
            prohibited, 4 port unreachable); null when none came.", type: int}
        icmp_from: {description: "Who sent it (the target, a router, or this host itself for ARP/NDP failures and its own firewall); null when none
            came.", type: str}
        outcome:
          description: >-
            Why the state is what it is, as data (docs/results.md): C(reason) (one word of a closed
            set: C(syn_ack), C(rst), C(icmp_unreach), C(icmp_error), C(no_answer), C(local_firewall),
            C(no_route), C(no_neighbour), C(dns), C(reset_after_connect), C(banner_mismatch),
            C(conversation_failed), C(regex_timeout), C(probe_error)), C(phase), C(errno),
            C(errno_name), C(icmp_type), C(icmp_code), C(icmp_from), C(icmp_family), C(probes)
            (connects sent for this port, re-probes included), C(answers) (how many got an answer),
            C(confirmed) (the state rests on an answer for this port) and C(verdict_ms) (this
            target's own time to its verdict). The flat C(errno), C(icmp_*) keys repeat it.
          type: dict
          sample: {"reason": "icmp_unreach", "phase": "connect", "errno": 113, "errno_name": "EHOSTUNREACH",
                   "icmp_type": 3, "icmp_code": 10, "icmp_from": "10.77.0.12", "icmp_family": "ipv4",
                   "probes": 2, "answers": 1, "confirmed": true, "verdict_ms": 2043.1}
        neighbour_state: {description: "The kernel's ARP/NDP state (INCOMPLETE or FAILED) behind an unreachable verdict at the timeout, else null.", type: str}
        regex_timed_out: {description: "True when searching I(expect) passed the deadline (a backtracking pattern), else false.", type: bool}
      sample:
        host: 10.77.0.12
        port: 22
        name: lab-h2
        expected: open
        address: 10.77.0.12
        family: ipv4
        local_address: 10.77.0.11
        errno: null
        errno_name: null
        banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u7\r\n"
        expect: "^SSH-2\\.0-"
        expect_matched: true
        conversation_error: null
        icmp_type: null
        icmp_code: null
        icmp_from: null
        outcome: {"reason": "syn_ack", "phase": "conversation", "errno": null, "errno_name": null,
                  "icmp_type": null, "icmp_code": null, "icmp_from": null, "icmp_family": null,
                  "probes": 1, "answers": 1, "confirmed": true, "verdict_ms": 1.9}
        neighbour_state: null
        regex_timed_out: false
summary:
  description: Counts over I(results).
  returned: always
  type: dict
  sample: {"total": 3, "ok": 2, "failed": 1, "states": {"open": 2, "filtered": 1}}
elapsed_ms:
  description: Wall time of all the checks together, in milliseconds.
  returned: always
  type: float
  sample: 3004.2
"""

import time

from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.probe import InputError, outcome
from ..module_utils.netcheck.spec import argument_spec
from ..module_utils.netcheck.tcp import TCP_MODULE_SPEC, check_targets, parse_targets


def main():
    module = NetcheckModule(argument_spec(TCP_MODULE_SPEC))
    start = time.monotonic()
    if module.params["confirm_budget"] < 0:
        module.fail_json(msg="confirm_budget: %s must be 0 or more seconds" % module.params["confirm_budget"],
                         **outcome([], start))
    if module.params["max_workers"] < 1:
        module.fail_json(msg="max_workers: %s must be at least 1" % module.params["max_workers"],
                         **outcome([], start))
    try:
        targets = parse_targets(module.params["targets"], module.params["timeout"])
    except InputError as exc:
        module.fail_json(msg=str(exc), **outcome([], start))

    result = outcome(check_targets(targets, module.params["max_workers"],
                                   confirm_budget=module.params["confirm_budget"]), start)
    # Nothing needs the parsed targets any more: their memory is reused by exit_json's copy of
    # the results (remove_values), the largest allocation of a 10,000-target run.
    del targets
    module.finish(result, "%d targets as expected" % result["summary"]["total"])


if __name__ == "__main__":
    main()
