#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the netcheck_report action (the work is done on the controller by
plugins/action/netcheck_report.py; this file only lets ansible-doc show it)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netcheck_report
short_description: The answer of a check run - matrix, failing pairs, totals, reports, exit code
description:
  - Runs on the controller only (an action plugin), once, after every source host ran
    M(netcheck.netcheck.net_diagnose) and registered its result.
  - Reads every source's result from hostvars in Python, builds the run model (C(report.json) holds it -
    sources, targets, pairs, asymmetric pairs, totals), prints the matrix of sources x targets (one short
    cell per pair, C(.) for OK, C(!) for a source that could not run), one line per failing pair with its hint
    and evidence, the asymmetric pairs and the totals, and writes the reports.
  - Fails when any pair missed its expectation (and the baseline does not know it) or any source could not run
    (unreachable over SSH, or its module failed), unless I(fail_on_mismatch) is false; fails whatever that says
    when nothing was checked (unless I(allow_empty)) or a report could not be written. C(report.json)'s
    C(status) says which - C(passed), C(failed), C(not_run) (docs/ci.md).
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  sources:
    description: The inventory names of the source hosts (a host without a result is a source that could not run).
    type: list
    elements: str
    required: true
  register:
    description: The variable each source registered its net_diagnose result in.
    type: str
    default: netcheck_diagnose
  address_var:
    description: The host variable holding a source's address.
    type: str
    default: ansible_host
  report_dir:
    description:
      - The parent directory of the run's reports; each run writes into C(<report_dir>/<UTC timestamp>/)
        (or I(run_dir)).
      - Unset means C(reports/) in the directory ansible-playbook runs from; an empty string writes nothing.
    type: str
  run_dir:
    description:
      - The run's directory, where the reports are written, named once at the start of the play so that the
        packet captures' pcaps (C(<run_dir>/<host>/<interface>.pcap)) go to the same place (check.yml sets it).
      - Unset means C(<report_dir>/<started, without - and :>/). Ignored when I(report_dir) is an empty string.
    type: str
  capture:
    description:
      - Join each source's packet capture to the failing pairs (check.yml's C(netcheck_capture); docs/capture.md).
      - For each failing pair S -> T, C(pair.capture) holds, for S and for T when captured, the capture's C(id),
        its C(pcap) (relative to the run directory when fetched there, else null) and the flows between S and T;
        and C(evidence), one two-point answer per failing TCP port when both ends were captured (C(where),
        C(sentence), C(facts), C(port)). Each answer's sentence is also added to the verdict's evidence.
    type: bool
    default: false
  capture_register:
    description: The variable each host registered its stopped capture in (the capture role's C(capture_result)).
    type: str
    default: capture_result
  report_options:
    description: Options passed to the report writers (C(write_all(run, run_dir, options))).
    type: dict
    default: {}
  baseline:
    description:
      - A known-failures file (YAML or JSON, docs/reports.md). Its pairs are reported as known and do not fail
        the run; a listed pair that passes again is reported as fixed; any other failure still fails it.
    type: path
  ec2_explain:
    description:
      - Explain filtered pairs from EC2 security groups, network ACLs and routes (read-only Describe calls from the
        controller; docs/ec2.md). C(auto) turns it on when the sources come from the aws_ec2 inventory.
    type: str
    choices: [auto, "true", "false"]
    default: auto
  ec2_options:
    description: Options of the EC2 explainer (region, endpoint_url, profile, ephemeral_ports, codes).
    type: dict
    default: {}
  fail_on_mismatch:
    description: Fail when a pair missed its expectation or a source could not run; false only reports.
    type: bool
    default: true
  started:
    description: When the run started (ISO 8601 UTC), recorded in the run's meta.
    type: str
  playbook:
    description: The playbook's name, recorded in the run's meta.
    type: str
  allow_empty:
    description:
      - Pass a run that checked nothing. By default zero sources, zero pairs or zero checks fail the run
        (C(status) C(not_run)) with a message saying why.
    type: bool
    default: false
  baseline_write:
    description:
      - Write (or update) this known-failures file from the run - one entry per failing pair with its code and a
        reason to fill in; entries of an existing file that still match keep their reasons, the others are dropped.
    type: path
  compare:
    description:
      - An earlier run's C(report.json) (or its directory). New failures, fixed pairs, changed codes and latency
        shifts are printed and kept in C(report.json) (C(comparison)).
    type: path
  inventory_hosts:
    description: Every host of the inventory; the run says which of them no source checked as a target.
    type: list
    elements: str
  mesh_group:
    description: The group the mesh's targets came from (empty - the whole inventory), named when hosts were left out.
    type: str
attributes:
  check_mode:
    details: Reads registered results and writes reports only.
extends_documentation_fragment:
  - netcheck.netcheck.attributes.controller
notes:
  - The reports (report.json, junit.xml, summary.md, report.html, netcheck.prom) are written by
    C(plugins/plugin_utils/reports.write_all); docs/reports.md describes them.
seealso:
  - module: netcheck.netcheck.net_diagnose
"""

EXAMPLES = r"""
- name: Diagnose from every host
  netcheck.netcheck.net_diagnose:
    targets: [{host: 10.0.1.20, ports: [{port: 22}]}]
  register: netcheck_diagnose
  # a source whose module fails could not run: the report says so and fails the run
  ignore_errors: true
  ignore_unreachable: true

- name: The answer, once, on the controller
  netcheck.netcheck.netcheck_report:
    sources: "{{ ansible_play_hosts_all }}"
    report_dir: /var/tmp/netcheck
  delegate_to: localhost
  run_once: true

- name: The answer, with each host's packet capture (role netcheck.netcheck.capture, registered as capture_result)
  netcheck.netcheck.netcheck_report:
    sources: "{{ ansible_play_hosts_all }}"
    run_dir: /var/tmp/netcheck/run-1
    capture: true
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
status:
  description: passed, failed (a pair or a source), not_run (nothing was checked); config_error is decided earlier.
  returned: always
  type: str
  sample: passed
totals:
  description: Pairs, how many met their expectation, how many failed, sources not run, pairs per verdict code.
  returned: always
  type: dict
  sample: {"pairs": 12, "ok": 11, "failed": 1, "sources_not_run": 0, "by_code": {"OK": 11, "PORT_FILTERED": 1}}
asymmetric:
  description: Pairs of hosts where the first reaches the second but not the other way round.
  returned: always
  type: list
  elements: list
  sample: [["nclab2", "nclab1"]]
reports:
  description: The reports written, format to path.
  returned: always
  type: dict
  sample: {"json": "reports/20261126T100715Z/report.json"}
"""
