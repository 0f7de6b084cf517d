#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: iptables NAT port forwarding (REDIRECT / DNAT), idempotent, tagged, with rollback."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: port_forward
short_description: Set up, list and tear down iptables NAT port forwards (80 -> 8080) safely
description:
  - Makes traffic that arrives on I(from_port) reach I(to_port) on this host (C(REDIRECT)) or
    I(to_addr):I(to_port) on another host (C(DNAT), with C(MASQUERADE) so that the answer comes back
    through this host), for instance the seed's
    C(iptables -t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-port 8080).
  - With I(local=true) the same forward also applies to connections made on the host itself to its
    own addresses (nat C(OUTPUT) chain, restricted to C(--dst-type LOCAL)).
  - Every rule written carries a comment with I(tag); C(state=absent) removes exactly our rules that
    match the forwards given, and nothing else. C(state=listed) returns the nat chains with rule
    numbers, ours marked, and changes nothing.
  - Idempotent (rules are compared as parsed options, not text), atomic (one
    C(iptables-restore --noflush) batch per family), and serialised by a lock on the host so that
    concurrent runs never add a rule twice.
  - The backend (C(nft) or C(legacy)) is the one that already holds the host's rules.
  - Kernel settings that DNAT needs (C(net.ipv4.ip_forward), C(route_localnet) for 127.0.0.0/8 targets)
    are checked and reported, and changed only with I(set_sysctl=true).
  - With I(rollback_timeout), this run's change is taken back automatically unless the controller
    confirms within that many seconds (I(confirm)) that it still reaches the host. Only our own change
    is taken back (the rules added are deleted, the rules removed are added back at the end of their
    chain); a rule someone else adds meanwhile stays.
  - Waits are bounded; for the xtables lock (legacy backend) and for another run on the same host at
    most I(lock_timeout) seconds each, and the error names the process holding the lock.
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  forwards:
    description: The forwards to make present or absent. Required unless I(state=listed) or I(confirm).
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: The protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      from_port:
        description: The port the traffic arrives on (1-65535).
        type: int
        required: true
      to_port:
        description: The port it goes to (default I(from_port), which needs I(to_addr)).
        type: int
      to_addr:
        description: DNAT to this address (another host) instead of redirecting to this host.
        type: str
      in_interface:
        description: Only traffic arriving on this interface (PREROUTING).
        type: str
      source:
        description: Only traffic from this address or CIDR.
        type: str
      local:
        description: Also forward connections made on this host to its own addresses (nat OUTPUT).
        type: bool
        default: false
      family:
        description: C(ipv4), C(ipv6) or C(both) (iptables and ip6tables).
        type: str
        choices: [ipv4, ipv6, both]
        default: ipv4
      masquerade:
        description: With I(to_addr), masquerade the forwarded connections (default true) so that replies come back through this host.
        type: bool
  state:
    description: C(present), C(absent), or C(listed) (read-only).
    type: str
    choices: [present, absent, listed]
    default: present
  tag:
    description: "The comment marking our rules: letters, digits and C(_ . : -), no spaces or quotes."
    type: str
    default: netcheck-port-forward
  backend:
    description: C(auto) (where the host's rules already are), C(nft) or C(legacy).
    type: str
    choices: [auto, nft, legacy]
    default: auto
  persist:
    description:
      - Save the rules the way the distribution loads them at boot; C(netfilter-persistent save) when
        it exists, else the whole ruleset to I(persist_path) (default C(/etc/iptables/rules.v4) /
        C(.v6), or C(/etc/sysconfig/iptables)). Returned in C(persisted_to).
    type: bool
    default: false
  persist_path:
    description: Where to save the IPv4 rules with I(persist) (IPv6 rules get the same path with C(.v6) appended).
    type: path
  set_sysctl:
    description: Set the kernel settings the forwards need (C(ip_forward), C(route_localnet)) when they are off.
    type: bool
    default: false
  rollback_timeout:
    description:
      - Seconds after which this run's change is taken back (the rules it added are deleted, the rules it
        removed are added back; rules others added meanwhile stay), unless a later task confirms with
        I(confirm) (0 disables). Use a fresh connection to confirm (the C(reset_connection) meta task),
        so that the confirmation proves that the controller can still reach the host.
    type: int
    default: 0
  confirm:
    description: A C(rollback.id) returned by an earlier run; cancels that rollback. Nothing else is done.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for the xtables lock (C(iptables-restore -w)) and for another run of this module
        on the host (1 to 3600). When it passes the task fails, naming the process that holds the lock,
        and nothing is changed.
    type: int
    default: 10
  state_dir:
    description:
      - Where the lock and the rollback plans live on the host; made when missing. A path that exists
        and is not a directory fails the task naming I(state_dir).
      - Each rollback's files are removed when it is confirmed or done; the note of a rollback done
        stays a day (so that a late I(confirm) can say it came too late).
    type: path
    default: /run/netcheck
attributes:
  check_mode:
    details: Says what it would add and remove (and shows the diff); changes nothing.
  diff_mode:
    details: The nat table (iptables-save) before and after.
extends_documentation_fragment:
  - netcheck.netcheck.attributes.changes
notes:
  - Needs root (iptables). Rules are not persistent across reboots unless I(persist=true).
  - When I(persist) fails after the rules were applied (for instance I(persist_path) is a directory), the
    task still reports C(changed) with a warning saying the rules are applied but not saved, and no
    temporary file is left.
  - A REDIRECT in the nat OUTPUT chain (I(local)) sends the connection to 127.0.0.1, so it reaches a
    listener bound to 0.0.0.0 or 127.0.0.1 only; use I(to_addr) with the host's address for a
    listener bound to that address.
seealso:
  - module: ansible.builtin.iptables
  - module: community.general.iptables_state
"""

EXAMPLES = r"""
- name: Port 80 reaches the service on 8080 (only 80 is open in the security group)
  netcheck.netcheck.port_forward:
    forwards:
      - {from_port: 80, to_port: 8080, local: true}

- name: Forward 8443 to another host's 443, and let the kernel route it
  netcheck.netcheck.port_forward:
    forwards:
      - {from_port: 8443, to_addr: 10.0.1.20, to_port: 443}
    set_sysctl: true
    persist: true

- name: Change the rules with an automatic rollback unless we can still log in
  netcheck.netcheck.port_forward:
    forwards:
      - {from_port: 80, to_port: 8080, in_interface: eth0}
    rollback_timeout: 30
  register: fwd

- name: Prove the controller still reaches the host over a new connection
  ansible.builtin.meta: reset_connection

- name: Keep the change
  netcheck.netcheck.port_forward:
    confirm: "{{ fwd.rollback.id }}"
  when: fwd.rollback

- name: What is forwarded now (iptables -t nat -L --line-numbers)
  netcheck.netcheck.port_forward:
    state: listed
  register: nat

- name: Tear it down (only our rules)
  netcheck.netcheck.port_forward:
    state: absent
    forwards:
      - {from_port: 80, to_port: 8080, local: true}
"""

RETURN = r"""
forwards:
  description: The forwards as understood, every default filled in (for instance I(to_port) from I(from_port)).
  returned: unless confirming
  type: list
  elements: dict
  sample: [{"proto": "tcp", "from_port": 80, "to_port": 8080, "to_addr": null, "in_interface": null, "source": null, "local": true, "family": "ipv4",
      "masquerade": false}]
backend:
  description: Per family, the backend used and why.
  returned: unless confirming
  type: dict
  sample: {"ipv4": {"name": "nft", "reason": "no rules yet: using the default, nft"}}
added:
  description: The rules added (or that would be, in check mode), as iptables-save lines.
  returned: unless confirming
  type: list
  elements: str
  sample: ["-A PREROUTING -p tcp -m tcp --dport 80 -m comment --comment netcheck-port-forward -j REDIRECT --to-ports 8080"]
removed:
  description: The rules removed (or that would be), as iptables-save lines.
  returned: unless confirming
  type: list
  elements: str
  sample: []
rules:
  description: The nat table's rules after the run, per family, each {chain, number, rule, ours}.
  returned: unless confirming
  type: dict
  sample: {"ipv4": [{"chain": "PREROUTING", "number": 1, "rule": "-A PREROUTING ...", "ours": true}]}
sysctl:
  description: The kernel settings the forwards need, each {needed, value, ok, changed}.
  returned: unless confirming
  type: dict
  sample: {"net.ipv4.ip_forward": {"needed": "1", "value": "0", "ok": false, "changed": false}}
persisted_to:
  description: Where the rules were saved with I(persist) (null otherwise, or when saving failed - see the warning).
  returned: unless confirming
  type: str
  sample: /etc/iptables/rules.v4
rollback:
  description: >-
    With I(rollback_timeout) and a change, {id, deadline, timeout, plan}: confirm with
    I(confirm=id) before the deadline or this run's change is taken back (C(plan) is the file
    holding the undo commands). Null otherwise.
  returned: unless confirming
  type: dict
  sample: {"id": "1764064800-1a2b3c4d", "deadline": "2026-11-25T10:00:30Z", "timeout": 30, "plan": "/run/netcheck/rollback-1764064800-1a2b3c4d.json"}
confirmed:
  description: The rollback id confirmed (with I(confirm)).
  returned: when confirming
  type: str
  sample: 1764064800-1a2b3c4d
"""

import subprocess
import sys

from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.netfilter import PORT_FORWARD_SPEC, Host, InputError, NetfilterError, manage
from ..module_utils.netcheck.spec import argument_spec


def spawn(argv):
    """Start argv detached from the module and its ssh session: it must outlive both."""
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)


def main():
    module = NetcheckModule(argument_spec(PORT_FORWARD_SPEC))
    host = Host(run=module.run,
                which=module.get_bin_path, spawn=spawn, python=sys.executable)
    try:
        result, diff, warnings = manage(module.params, host, module.check_mode)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    except NetfilterError as exc:
        module.fail_json(msg=str(exc), **getattr(exc, "result", {}))
    for warning in warnings:
        module.warn(warning)
    if diff is not None and module.diff_requested:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
