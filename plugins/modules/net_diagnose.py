#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: where does it break? A verdict by layer for every target, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: net_diagnose
short_description: Check many targets at every layer at once and say at which layer each one breaks
description:
  - Runs, from the managed host and in one invocation, the project's existing probes against every
    target concurrently - route and ARP/NDP neighbour (link, network), ICMP echo (one fping-style round
    for all targets), TCP per port (transport), HTTP(S) per URL (application) - and returns per target
    every layer's result and a verdict - the first failing layer, a stable code (see
    C(docs/verdict.md)), a hint in plain words and the evidence behind it - plus one verdict per
    check (the neighbour, the echo, each port, each URL), chosen from the probes' outcome fields.
  - A target that answers ping but loses echoes or answers slowly is C(ICMP_LOSS) or C(HIGH_LATENCY)
    past I(icmp.warn) (a warning) or I(icmp.crit) (a failure).
  - Layers are independent evidence, not a ladder that stops at the first failure. ICMP dropped while
    a port answers is C(OK) with an C(ICMP_FILTERED) note, unless the target's I(icmp) is C(reachable).
  - As root, an ARP request (IPv4, raw AF_PACKET socket) or an NDP neighbour solicitation (IPv6, raw
    ICMPv6 socket) is sent on the wire, bounded by I(arp_timeout), to each on-link next hop, so the MAC
    seen on the wire is compared with the kernel's cached one (C(NEIGHBOUR_MISMATCH)), and a host that
    went down while the cache still says REACHABLE is C(NEIGHBOUR_FAILED).
  - With I(limits), the host's connection limits (see M(netcheck.netcheck.conn_limits)) are returned too.
  - The task fails when any target misses an expectation; every target's result is still returned.
    Bad input fails naming the field (for example C(targets[1].ports[0].port)) before anything is sent.
  - When called from a playbook, the collection's action plugin may expand I(mesh) and I(group_targets)
    (inventory groups) into I(targets) on the controller; those two options never reach the host.
version_added: "0.4.0"
author:
  - netcheck maintainers
options:
  targets:
    description: The targets, all checked at once.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Name or IP address of the target.
        type: str
        required: true
      name:
        description: The label of the target in the result (default I(host)), e.g. its inventory name. Must be a string.
        type: raw
      icmp:
        description:
          - C(auto) pings; a dropped echo is a failure only when nothing else answers.
          - C(reachable) pings and the echo must be answered; C(unreachable) it must not be.
          - C(skip) does not ping.
        type: str
        choices: [auto, reachable, unreachable, skip]
        default: auto
      neighbour:
        description: Read the route and the next hop's ARP/NDP entry (and probe it on the wire as root).
        type: bool
        default: true
      ports:
        description: TCP ports to connect to.
        type: list
        elements: dict
        suboptions:
          port:
            description: The TCP port.
            type: int
            required: true
          expected:
            description: The state the port must be in (C(filtered) for a port that must stay closed to this host).
            type: str
            choices: [open, closed, filtered, rejected, unreachable]
            default: open
          timeout:
            description: Seconds for the connection (default I(tcp_timeout)).
            type: float
          send:
            description: A string sent once connected (UTF-8). Must be a string.
            type: raw
          expect:
            description: A regular expression the banner must match; a miss is C(WRONG_SERVICE).
            type: str
          name:
            description: A label for this port. Must be a string.
            type: raw
      urls:
        description: HTTP(S) URLs to fetch; each takes the per-URL options of M(netcheck.netcheck.http_check).
        type: list
        elements: dict
        suboptions:
          url:
            description: An C(http://) or C(https://) URL.
            type: str
            required: true
          name:
            description: A label for this URL. Must be a string.
            type: raw
          method:
            description: Overrides I(http.method).
            type: str
            choices: [HEAD, GET]
          status_codes:
            description: The status codes that pass; another is C(HTTP_STATUS).
            type: list
            elements: int
          headers:
            description: Headers sent (values never logged).
            type: dict
            no_log: true
          expect_headers:
            description: Header name to a regular expression its value must match (a marker of the service); a miss is C(WRONG_SERVICE).
            type: dict
          follow_redirects:
            description: Overrides I(http.follow_redirects).
            type: str
            choices: [none, safe, all]
          validate_certs:
            description: Overrides I(http.validate_certs).
            type: bool
          ca_path:
            description: A PEM CA file on the managed host.
            type: path
          timeout:
            description: Overrides I(http.timeout).
            type: float
          body_regex:
            description: A regular expression the body must match (GET only); a miss is C(WRONG_SERVICE).
            type: str
          keep_headers_across_origins:
            description: Overrides I(http.keep_headers_across_origins).
            type: bool
      icmp_warn:
        description: This target's warning thresholds; each key given overrides I(icmp.warn)'s.
        type: dict
        suboptions:
          loss_pct:
            description: Packet loss in percent.
            type: float
          rtt_ms:
            description: Average RTT in milliseconds.
            type: float
      icmp_crit:
        description: This target's failure thresholds; each key given overrides I(icmp.crit)'s.
        type: dict
        suboptions:
          loss_pct:
            description: Packet loss in percent.
            type: float
          rtt_ms:
            description: Average RTT in milliseconds.
            type: float
  tcp_timeout:
    description: Default seconds per TCP connection (a filtered port takes this long).
    type: float
    default: 3
  icmp:
    description: How each target is pinged (one round for all targets).
    type: dict
    default: {}
    suboptions:
      count:
        description: Echo requests per target.
        type: int
        default: 3
      interval:
        description: Seconds between rounds.
        type: float
        default: 0.2
      timeout:
        description: Seconds each echo waits for its reply.
        type: float
        default: 1
      size:
        description: Payload bytes.
        type: int
        default: 56
      method:
        description: C(auto) (raw socket, then unprivileged ICMP socket, then the ping binary), C(raw), C(dgram), C(system).
        type: str
        choices: [auto, raw, dgram, system]
        default: auto
      warn:
        description:
          - A target that answers ping but loses at least I(loss_pct) % of the echoes is C(ICMP_LOSS), one whose
            average RTT is at least I(rtt_ms) is C(HIGH_LATENCY), as a warning (severity C(warn)) that does not
            fail the pair unless I(fail_on_warn).
          - Unset keys keep the defaults loss_pct 20, rtt_ms 200.
        type: dict
        suboptions:
          loss_pct:
            description: Packet loss in percent.
            type: float
          rtt_ms:
            description: Average RTT in milliseconds.
            type: float
      crit:
        description:
          - The same as failures (severity C(fail)). Unset keys keep the defaults loss_pct 50, rtt_ms 500.
        type: dict
        suboptions:
          loss_pct:
            description: Packet loss in percent.
            type: float
          rtt_ms:
            description: Average RTT in milliseconds.
            type: float
  http:
    description: Defaults for every URL (a URL may override each one).
    type: dict
    default: {}
    suboptions:
      method:
        description: C(HEAD) or C(GET).
        type: str
        choices: [HEAD, GET]
        default: HEAD
      status_codes:
        description: The status codes that pass.
        type: list
        elements: int
        default: [200]
      headers:
        description: Headers sent with every request (values never logged).
        type: dict
        default: {}
        no_log: true
      expect_headers:
        description: Header name to regex for every URL.
        type: dict
        default: {}
      follow_redirects:
        description: C(none), C(safe) (never https to http) or C(all).
        type: str
        choices: [none, safe, all]
        default: safe
      validate_certs:
        description: Verify certificates and host names.
        type: bool
        default: true
      ca_path:
        description: A PEM CA file on the managed host.
        type: path
      timeout:
        description: Seconds per request.
        type: float
        default: 5
      body_regex:
        description: A regular expression the body of every URL must match (GET only).
        type: str
      keep_headers_across_origins:
        description: Send I(headers) on to another origin after a redirect (never Authorization, Cookie).
        type: bool
        default: false
  arp_probe:
    description:
      - Ask the wire who has each on-link next hop - ARP for IPv4, an NDP neighbour solicitation for IPv6 (raw sockets, root only).
      - Unset means when running as root.
    type: bool
  arp_timeout:
    description: Seconds an ARP or NDP probe waits for its answer.
    type: float
    default: 0.5
  fail_on_warn:
    description: A check at warning severity (C(ICMP_LOSS), C(HIGH_LATENCY) past I(icmp.warn) only) fails its target too.
    type: bool
    default: false
  limits:
    description: Also return this host's connection limits (see M(netcheck.netcheck.conn_limits)).
    type: bool
    default: false
  limit_ports:
    description: With I(limits), the listening ports whose process, descriptors and accept queue are returned.
    type: list
    elements: int
    default: []
  max_workers:
    description: How many probes of one layer run at the same moment at most.
    type: int
    default: 256
  confirm_budget:
    description:
      - Seconds the paced re-probes of silent ports and URLs may add to the run (0 - none), as in
        M(netcheck.netcheck.port_check) - a port that timed out on a host that answered other ports with ICMP
        errors is probed again, and is C(rejected) only when an ICMP error for that port comes back.
      - A healthy run pays nothing.
    type: float
    default: 10
  path:
    description:
      - Where on the path (docs/path.md) - after the verdicts, the flow of every failing check whose target is
        reached via a gateway is traced hop by hop (the same 5-tuple, stepped TTL, see M(netcheck.netcheck.path_probe)),
        an HTTP check that connected but got no answer gets a path-MTU discovery, and the source's conntrack table is
        read before and after. A healthy pair sends no path probe.
      - The failing check then takes C(DROPPED_AFTER_HOP), C(REJECTED_AT_HOP), C(ROUTING_LOOP), C(TTL_EXPIRED),
        C(MTU_BLACKHOLE) or C(CONNTRACK_FULL) and gains C(hop) (index, address) and C(path) (its hops).
    type: dict
    default: {}
    suboptions:
      on_failure:
        description: Trace the flow of every failing check routed via a gateway (healthy pairs pay nothing).
        type: bool
        default: true
      always:
        description: Trace every pair's flows, failing or not.
        type: bool
        default: false
      mtu:
        description: Find the path MTU of every pair (it is found anyway for a check whose transfer stalls).
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
      max_flows:
        description: At most this many flows traced per run (bounded cost).
        type: int
        default: 32
attributes:
  check_mode:
    support: full
    description: The module changes nothing; it runs in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: linux
notes:
  - Only the Python standard library is needed on the managed host (Python 3.8 or later).
  - The verdict codes, their layers and hints, and the faults that make them are listed in C(docs/verdict.md).
seealso:
  - module: netcheck.netcheck.port_check
  - module: netcheck.netcheck.icmp_ping
  - module: netcheck.netcheck.http_check
  - module: netcheck.netcheck.conn_limits
"""

EXAMPLES = r"""
- name: Where does it break between this host and the database and web tiers?
  netcheck.netcheck.net_diagnose:
    targets:
      - host: 10.0.1.20
        name: db1
        ports:
          - {port: 5432}
          - {port: 22, expected: filtered, timeout: 2}
      - host: 10.0.2.10
        name: web1
        icmp: reachable
        ports:
          - {port: 22, expect: "^SSH-2\\.0-"}
        urls:
          - {url: "http://10.0.2.10:8080/health", expect_headers: {x-served-by: "^web"}}
    limits: true
    limit_ports: [8080]
  register: diagnosis

- name: Show each target's verdict
  ansible.builtin.debug:
    msg: "{{ diagnosis.results | map(attribute='verdict.code') | list }}"
"""

RETURN = r"""
results:
  description: One pair per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The target's name (I(name), else I(host)).
      type: str
      sample: nclab2
    address:
      description: The address probed; null when the name did not resolve.
      type: str
      sample: 10.77.0.12
    kind:
      description: Always C(diagnose).
      type: str
      sample: diagnose
    ok:
      description: Whether every expectation of this target was met.
      type: bool
      sample: true
    checked:
      description: The layers actually exercised (C(link), C(network), C(transport), C(application)), bottom up.
      type: list
      elements: str
      sample: [link, network, transport, application]
    layers:
      description:
        - Every layer's result in the shared shape (target, kind, state, ok, timings, error, detail).
        - C(neighbour) (kind C(neighbour); state C(reachable), C(local), C(unreachable) or C(no_route); detail route, next_hop, via_gateway, dev, mac, kernel_state,
          wire_macs, wire_error, seen_on_wire, table_entries, table_fulls_delta) and C(icmp) are null when not
          checked; C(tcp) and C(http) are lists (one per port, one per URL) as M(netcheck.netcheck.port_check)
          and M(netcheck.netcheck.http_check) return them.
      type: dict
      sample: {"neighbour": {"kind": "neighbour", "state": "reachable", "ok": true}, "icmp": null, "tcp": [], "http": []}
    verdict:
      description: Where it breaks.
      type: dict
      contains:
        first_failing_layer:
          description: C(link), C(network), C(transport), C(application), or C(none).
          type: str
          sample: transport
        code:
          description: A stable code from C(docs/verdict.md); C(OK) only when a layer was checked.
          type: str
          sample: PORT_FILTERED
        hint:
          description: What the code means, in plain words.
          type: str
          sample: "the SYN went unanswered: a firewall drops it (or the listener's accept queue is full)"
        evidence:
          description: The facts behind the verdict, one per line.
          type: list
          elements: str
          sample: ["tcp 10.77.0.12:8080: filtered, expected open (no answer within 3 s)"]
        notes:
          description: Observations that are not the verdict (for instance C(ICMP_FILTERED) while a port answers), each a code and a hint.
          type: list
          elements: dict
          sample: [{"code": "ICMP_FILTERED", "hint": "echo requests go unanswered: a firewall or security group drops ICMP"}]
        hop:
          description:
            - Where on the path the flow died when the code says so (C(DROPPED_AFTER_HOP), C(REJECTED_AT_HOP),
              C(ROUTING_LOOP), C(TTL_EXPIRED)) - C(index) (the hop) and C(address) (who answered there); null otherwise.
          type: dict
          sample: {"index": 2, "address": "10.78.142.15"}
        failed_checks:
          description: How many of I(checks) failed (the verdict's code is the lowest one's).
          type: int
          sample: 2
        warned_checks:
          description: How many of I(checks) are at warning severity.
          type: int
          sample: 0
        checks:
          description:
            - One verdict per check, in the order neighbour, icmp, each port, each URL (C(resolve) when the name
              did not resolve) - C(check) (C(neighbour), C(icmp), C(tcp/22), C(http <url>)), C(layer), C(ok),
              C(severity) (C(ok), C(warn), C(fail)), C(code), C(hint), C(evidence) (lines) and C(outcome) (the
              probe's structured outcome, or null).
            - A check with severity C(ok) and a code other than C(OK) is a note (C(ICMP_FILTERED) while a port answers).
            - A failing check whose flow was traced (I(path)) also has C(hop) (C(index), C(address) - where the trace
              stopped) and C(path) (C(hops), C(stop), C(method), C(source_port), C(probes)); one whose path MTU was
              probed has C(mtu) (C(code), C(path_mtu), C(interface_mtu), C(largest_passed), C(smallest_lost),
              C(reported_mtu), C(reported_by), C(exact)); a C(path_mtu) check says C(MTU_BLACKHOLE) or notes
              C(PMTU_REDUCED). The verdict itself then has C(hop) too when its code is where on the path.
          type: list
          elements: dict
          sample: [{"check": "tcp/5432", "layer": "transport", "ok": false, "severity": "fail", "code": "PORT_CLOSED",
                    "hint": "the host answered the SYN with RST: nothing listens on the port",
                    "evidence": ["tcp 10.77.0.12:5432: closed, expected open (connection refused)"], "outcome": null}]
    expected:
      description: The target's expectations (icmp mode, port -> expected state, URLs).
      type: dict
      sample: {"icmp": "auto", "ports": {"22": "open"}, "urls": []}
    timings:
      description: C(total) - milliseconds until this target's slowest check had its own verdict (each probe's C(outcome.verdict_ms)).
      type: dict
      sample: {"total": 12.3}
summary:
  description:
    - Counts over I(results) - total, ok, failed, warned (ok, with a warning check), failed_checks (every
      failing check of every target) - and how many targets per verdict code.
  returned: always
  type: dict
  sample: {"total": 3, "ok": 2, "failed": 1, "warned": 0, "failed_checks": 2, "by_code": {"OK": 2, "PORT_CLOSED": 1}}
limits:
  description: This host's connection limits (as M(netcheck.netcheck.conn_limits) returns them), or null without I(limits).
  returned: always
  type: dict
  sample: null
arp_cache:
  description:
    - The IPv4 neighbour table's size and overflow count before and after the checks (C(ip -s ntable), which
      works in any network namespace, else C(/proc/net/stat/arp_cache)). A rise of table_fulls during the
      run turns a failed neighbour into C(NEIGHBOUR_TABLE_FULL).
  returned: always
  type: dict
  sample: {"before": {"entries": 11, "table_fulls": 0}, "after": {"entries": 12, "table_fulls": 0}}
path:
  description:
    - What the path probes cost in this run - C(traces) (flows traced), C(mtu_probes) (targets whose path MTU was
      probed), C(changed_pairs) (indexes of the pairs a finding changed), C(errors), C(elapsed_ms). Zero traces
      when every check passed; null when no target was checked (limits only).
  returned: always
  type: dict
  sample: {"traces": 1, "mtu_probes": 0, "changed_pairs": [2], "errors": [], "elapsed_ms": 2010.4}
elapsed_ms:
  description: Wall time of the whole run, in milliseconds.
  returned: always
  type: float
  sample: 1012.5
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ..module_utils.netcheck.diagnose import DIAGNOSE_MODULE_SPEC, diagnose_targets, parse_targets, summarize_pairs
from ..module_utils.netcheck.icmp import validate_options as icmp_options
from ..module_utils.netcheck.limits import gather as gather_limits
from ..module_utils.netcheck.probe import InputError, ms_since, new_module
from ..module_utils.netcheck.spec import argument_spec

def _without_nones(values):
    return {key: value for key, value in (values or {}).items() if value is not None}


def _failure_message(pairs, summary, shown=10):
    missed = [p for p in pairs if not p["ok"]]
    lines = ["%s: %s%s" % (p["target"], p["verdict"]["code"],
                           " (+%d more failing checks)" % (p["verdict"]["failed_checks"] - 1)
                           if p["verdict"].get("failed_checks", 0) > 1 else "") for p in missed[:shown]]
    if len(missed) > shown:
        lines.append("... and %d more" % (len(missed) - shown))
    return "%d of %d targets missed their expectation: %s" % (summary["failed"], summary["total"], "; ".join(lines))


def main():
    module = new_module(AnsibleModule, argument_spec=argument_spec(DIAGNOSE_MODULE_SPEC), supports_check_mode=True)
    start = time.monotonic()
    params = module.params
    empty = dict(results=[], summary=summarize_pairs([]), limits=None, arp_cache=None, path=None, changed=False)
    try:
        if params["max_workers"] < 1:
            raise InputError("max_workers: %s must be at least 1" % params["max_workers"])
        if not 0 <= params["confirm_budget"] <= 600:
            raise InputError("confirm_budget: %s must be between 0 and 600 seconds" % params["confirm_budget"])
        icmp = params["icmp"] or {}
        icmp_options(icmp.get("count", 3), icmp.get("interval", 0.2), icmp.get("timeout", 1.0), icmp.get("size", 56))
        for port in params["limit_ports"]:
            if not 1 <= port <= 65535:
                raise InputError("limit_ports: %s is not a port (1-65535)" % port)
        targets = [dict(_without_nones(raw), ports=[_without_nones(p) for p in raw.get("ports") or []],
                        urls=[_without_nones(u) for u in raw.get("urls") or []])
                   for raw in params["targets"]]
        icmp_run = params["icmp"] or {}
        parsed = parse_targets(targets, {"tcp_timeout": params["tcp_timeout"],
                                         "http": _without_nones(params["http"]),
                                         "icmp_warn": icmp_run.get("warn"), "icmp_crit": icmp_run.get("crit")})
        if params["arp_timeout"] <= 0 or params["arp_timeout"] > 10:
            raise InputError("arp_timeout: %s must be between 0 and 10 seconds" % params["arp_timeout"])
    except InputError as exc:
        module.fail_json(msg=str(exc), elapsed_ms=round(ms_since(start), 3), **empty)

    ping_options = {k: v for k, v in _without_nones(params["icmp"]).items() if k not in ("warn", "crit")}
    pairs, meta = diagnose_targets(parsed, icmp_options=ping_options, run=module.run_command,
                                   arp_probe_enabled=params["arp_probe"], arp_timeout=params["arp_timeout"],
                                   max_workers=params["max_workers"], fail_on_warn=params["fail_on_warn"],
                                   confirm_budget=params["confirm_budget"], path_options=params["path"] or {})
    limits = gather_limits(params["limit_ports"], run=module.run_command) if params["limits"] else None
    summary = summarize_pairs(pairs)
    result = dict(results=pairs, summary=summary, limits=limits, arp_cache=meta["arp_cache"], path=meta["path"],
                  changed=False, elapsed_ms=round(ms_since(start), 3))
    if summary["failed"]:
        module.fail_json(msg=_failure_message(pairs, summary), **result)
    module.exit_json(msg="%d targets as expected" % summary["total"], **result)


if __name__ == "__main__":
    main()
