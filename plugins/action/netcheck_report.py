# -*- coding: utf-8 -*-
"""Action plugin netcheck.netcheck.netcheck_report: the answer of a check run, on the controller.

Run once (on localhost) after every source host ran net_diagnose. Reads each source's
registered result from hostvars in Python (no Jinja loop over hostvars), builds the run model
(plugin_utils/run.py), prints the matrix, the failing pairs and the totals, writes the reports
(plugin_utils/reports.write_all: report.json, junit.xml, summary.md, report.html, netcheck.prom) and
fails when any pair missed its expectation or any source could not run (unless ``fail_on_mismatch``
is false), when nothing was checked (unless ``allow_empty``) or when a report cannot be written.
It also applies the known-failures baseline (the one place it is applied), writes one from the
run (``baseline_write``) and compares the run with an earlier one (``compare``).

Its options are NETCHECK_REPORT_SPEC (plugins/plugin_utils/specs.py), documented in
library/netcheck_report.py; an unknown one fails the task, named.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ansible_core_version
from ansible.utils.display import Display

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_explain import explain_run, inventory_options
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import (
    BaselineError, apply_baseline, compare_runs, load_report, write_all, write_baseline)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.run import (
    STATUS_NOT_RUN, apply_captures, build_run, coverage, empty_reasons, gate_failed, render, render_headline, run_dir_for,
    run_status, totals)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.specs import NETCHECK_REPORT_SPEC

display = Display()
VALID = frozenset(NETCHECK_REPORT_SPEC)


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _collection_version():
    galaxy = os.path.join(os.path.dirname(__file__), "..", "..", "galaxy.yml")
    try:
        with open(galaxy) as handle:
            for line in handle:
                if line.startswith("version:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        pass
    return None


def _plain(value):
    """Registered results may hold Ansible's own str/dict subclasses: make them plain JSON data."""
    return json.loads(json.dumps(value, default=str))


def _registered(hostvars, name, variable):
    """A host's registered result as stored, made plain. Module results hold no templates, and
    reading a full mesh's results through templated hostvars cost more than all the rest of the
    report (every value of every pair finalized by the template engine)."""
    if name not in hostvars:
        return None
    raw = hostvars.raw_get(name) if hasattr(hostvars, "raw_get") else hostvars[name]
    value = raw.get(variable) if isinstance(raw, Mapping) else None
    value = _plain(value) if value else None
    if value and value.get("answer_file"):
        # net_diagnose wrote the source's whole answer on the controller (plugins/action/net_diagnose.py)
        with open(value["answer_file"], encoding="utf-8") as stream:
            answer = json.load(stream)
        answer.update({k: v for k, v in value.items() if k in ("failed", "unreachable", "skipped", "msg")})
        value = answer
    return value


def _pcaps(run_dir):
    """The pcaps fetched into the run directory, relative to it (<host>/<interface>.pcap)."""
    if not run_dir or not os.path.isdir(run_dir):
        return []
    return sorted(os.path.relpath(os.path.join(top, name), run_dir) for top, _, names in os.walk(run_dir)
                  for name in names if name.endswith(".pcap"))


def write_reports(run, run_dir, options):
    """Write the run's reports into run_dir; returns {format: path}."""
    return write_all(run, run_dir, options or {})


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = VALID

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        unknown = sorted(set(args) - VALID)
        if unknown:
            raise AnsibleActionFail("%s: unknown option; known: %s" % (", ".join(unknown), ", ".join(NETCHECK_REPORT_SPEC)))
        sources = args.get("sources")
        if not isinstance(sources, (list, tuple)):
            raise AnsibleActionFail("sources: a list of inventory host names is required")
        register = args.get("register") or "netcheck_diagnose"
        address_var = args.get("address_var") or "ansible_host"
        hostvars = task_vars.get("hostvars", {})
        gathered = []
        for name in sources:
            facts = hostvars[name] if name in hostvars else {}
            gathered.append({"name": name, "address": str(facts.get(address_var) or facts.get("ansible_host") or name),
                             "outcome": _registered(hostvars, name, register)})
        meta = {"started": args.get("started") or None, "finished": _utc_now(),
                "inventory": list(task_vars.get("ansible_inventory_sources") or []),
                "ansible_core": ansible_core_version, "netcheck_version": _collection_version(),
                "playbook": args.get("playbook") or None}
        run = build_run(gathered, meta)

        report_dir = args.get("report_dir")
        if report_dir is None:
            report_dir = os.path.abspath("reports")
        run_dir = args.get("run_dir") or (run_dir_for(report_dir, meta["started"]) if report_dir else "")
        if boolean(args.get("capture", False), strict=False):
            capture_register = args.get("capture_register") or "capture_result"
            captures = {}
            for entry in gathered:
                captures[entry["name"]] = {"address": entry["address"],
                                           "result": _registered(hostvars, entry["name"], capture_register)}
            apply_captures(run, captures, run_dir or None)
            run["pcaps"] = _pcaps(run_dir)
            run["run_dir"] = run_dir or None
        # sources and targets: their instance ids tell apart interfaces holding one address
        ec2_hosts = list(sources) + [target["name"] for target in run["targets"] if target["name"] not in sources]
        ec2 = inventory_options({name: hostvars[name] for name in ec2_hosts if name in hostvars},
                                enabled=args.get("ec2_explain", "auto"), **(args.get("ec2_options") or {}))
        if ec2 is not None:
            explained = explain_run(run, ec2)
            if explained["error"]:
                display.warning("netcheck: EC2 configuration not read: %s" % explained["error"])
        # the one place a baseline is applied: the reports and the exit code read the same marks
        baseline = args.get("baseline")
        if baseline:
            try:
                run = apply_baseline(run, baseline)
            except (BaselineError, OSError, ValueError) as exc:
                raise AnsibleActionFail("baseline: %s" % exc)
        if args.get("compare"):
            try:
                run["comparison"] = compare_runs(load_report(args["compare"]), run, file=args["compare"])
            except (OSError, ValueError) as exc:
                raise AnsibleActionFail("compare: %s" % exc)
        run["coverage"] = coverage(run, args.get("inventory_hosts"), args.get("mesh_group"))
        run["totals"] = totals(run)
        run["status"] = run_status(run)
        allow_empty = boolean(args.get("allow_empty", False), strict=False)
        if run["status"] == STATUS_NOT_RUN:
            run["problems"] = empty_reasons(run)
        for line in render(run):
            display.display(line)

        written = {}
        if report_dir:
            try:
                written = write_reports(run, run_dir, args.get("report_options") or {})
            except (OSError, ValueError) as exc:
                # a pipeline that publishes no report must not pass
                raise AnsibleActionFail("netcheck: the reports could not be written to %s: %s" % (run_dir, exc))
            for kind, path in sorted(written.items()):
                display.display("report %s: %s" % (kind, path))
        if args.get("baseline_write"):
            try:
                document = write_baseline(run, args["baseline_write"])
            except (BaselineError, OSError, ValueError) as exc:
                raise AnsibleActionFail("baseline_write: %s: %s" % (args["baseline_write"], exc))
            display.display("baseline written: %s (%d known failures; fill in each reason)"
                            % (args["baseline_write"], len(document["known_failures"])))
        # the run model itself is in the reports: a failed task would print all of it
        result.update(changed=False, reports=written, totals=run["totals"], asymmetric=run["asymmetric"],
                      status=run["status"])
        if gate_failed(run, allow_empty, boolean(args.get("fail_on_mismatch", True), strict=False)):
            result.update(failed=True, msg=render_headline(run))
        return result
