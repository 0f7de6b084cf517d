#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: the connection limits of the managed host (sysctl fs.file-max, ulimit -aH, ss -lnt)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: conn_limits
short_description: Read the connection limits of the managed host and of the processes listening on given ports
description:
  - Reads, from C(/proc), C(ip -s ntable) and the kernel's sock_diag (what C(ss) uses) -
    C(fs.file-max), C(fs.nr_open), C(fs.file-nr); the limits of the process running the check (Python's
    C(resource) and C(/proc/self/limits)); C(net.core.somaxconn) and C(net.ipv4.ip_local_port_range);
    the IPv4 and IPv6 neighbour tables' entries against their C(gc_thresh1/2/3) and their overflow count
    (C(table_fulls); from C(ip -s ntable), which works in any network namespace); socket counts (C(/proc/net/sockstat), TCP inuse/orphan/tw); listen queue
    overflows and drops (C(/proc/net/netstat) ListenOverflows/ListenDrops); the conntrack table
    (C(nf_conntrack_count) against C(nf_conntrack_max), and the per-CPU counters of
    C(/proc/net/stat/nf_conntrack) summed - drop, early_drop, insert_failed).
  - For each port in I(ports), every LISTEN socket on it with its accept queue now and its backlog, and
    the processes holding it, each with its own C(Max open files) (from C(/proc/PID/limits)) and its
    open descriptors now.
  - C(limit_warnings) says in plain words which limit is reached or nearly reached (90%).
  - Reading another process's descriptors needs root (or the same user).
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  ports:
    description: Listening TCP ports to look at (their process, descriptors and accept queue).
    type: list
    elements: int
    default: []
attributes:
  platform:
    platforms: linux
extends_documentation_fragment:
  - netcheck.netcheck.attributes
notes:
  - M(netcheck.netcheck.net_diagnose) returns the same facts with I(limits=true).
seealso:
  - module: netcheck.netcheck.net_diagnose
"""

EXAMPLES = r"""
- name: How close is the web tier to its connection limits?
  netcheck.netcheck.conn_limits:
    ports: [80, 443, 8080]
  register: limits

- name: Say which limits are reached
  ansible.builtin.debug:
    var: limits.limit_warnings
"""

RETURN = r"""
kernel:
  description: Kernel-wide limits.
  returned: always
  type: dict
  sample: {"file_max": 2466170, "nr_open": 1048576, "file_nr": {"allocated": 693, "free": 0, "max": 2466170},
           "somaxconn": 4096, "ip_local_port_range": [32768, 60999]}
process:
  description:
    - The process that ran the check - pid, C(limits) (every line of C(/proc/self/limits), soft and hard,
      null for unlimited), C(open_fds), and C(rlimits) (Python's resource view of nofile, nproc, core, stack, as, memlock).
  returned: always
  type: dict
  sample: {"pid": 4242, "open_fds": 9, "limits": {"Max open files": {"soft": 1024, "hard": 524288, "unit": "files"}},
           "rlimits": {"nofile": {"soft": 1024, "hard": 524288}}}
neighbour:
  description: Per family (ipv4, ipv6) - entries, table_fulls (times the table overflowed), gc_thresh1/2/3.
  returned: always
  type: dict
  sample: {"ipv4": {"entries": 11, "table_fulls": 0, "gc_thresh1": 128, "gc_thresh2": 512, "gc_thresh3": 1024}}
sockstat:
  description: C(/proc/net/sockstat) (ipv4) and C(sockstat6) (ipv6), protocol to counters.
  returned: always
  type: dict
  sample: {"ipv4": {"tcp": {"inuse": 5, "orphan": 0, "tw": 0, "alloc": 7, "mem": 1}}, "ipv6": {"tcp6": {"inuse": 2}}}
netstat:
  description: ListenOverflows and ListenDrops since boot (C(/proc/net/netstat) TcpExt), shared by the whole machine's namespace.
  returned: always
  type: dict
  sample: {"ListenOverflows": 0, "ListenDrops": 0}
listeners:
  description: One entry per LISTEN socket on I(ports).
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The bound address.
      type: str
      sample: "::"
    port:
      description: The port.
      type: int
      sample: 8080
    family:
      description: ipv4 or ipv6.
      type: str
      sample: ipv6
    inode:
      description: The socket's inode.
      type: int
      sample: 44718
    accept_queue:
      description: Connections waiting to be accepted now (ss's Recv-Q).
      type: int
      sample: 0
    backlog:
      description: The listen backlog (ss's Send-Q); null when sock_diag could not be read.
      type: int
      sample: 5
    queue_full:
      description: Whether the accept queue is full (the kernel then drops new SYNs); null when the backlog is unknown.
      type: bool
      sample: false
    processes:
      description: The processes holding the socket - pid, comm, max_open_files (soft, hard, unit), open_fds.
      type: list
      elements: dict
      sample: [{"pid": 1234, "comm": "python3", "max_open_files": {"soft": 1024, "hard": 524288, "unit": "files"}, "open_fds": 6}]
conntrack:
  description:
    - The conntrack table - C(count) (this network namespace's entries), C(max) (C(nf_conntrack_max), one limit
      for the whole machine), C(buckets), C(full) (count reached max - new flows are dropped, the kernel logs
      "nf_conntrack - table full, dropping packet"), and since boot, summed over CPUs, C(drop), C(early_drop),
      C(insert_failed), C(search_restart). Null when the conntrack module is not loaded.
  returned: always
  type: dict
  sample: {"count": 12, "max": 262144, "buckets": 65536, "full": false, "drop": 0, "early_drop": 0,
           "insert_failed": 0, "search_restart": 0}
limit_warnings:
  description: Limits reached or nearly reached, in plain words (C(warnings) is a reserved result key).
  returned: always
  type: list
  elements: str
  sample: ["port 8080: accept queue full (2 waiting, backlog 1): the service does not accept fast enough"]
"""

from ..module_utils.netcheck.limits import LIMITS_SPEC, gather
from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(LIMITS_SPEC))
    for index, port in enumerate(module.params["ports"]):
        if not 1 <= port <= 65535:
            module.fail_json(msg="ports[%d]: %s is not a port (1-65535)" % (index, port))
    facts = gather(module.params["ports"], run=module.run)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
