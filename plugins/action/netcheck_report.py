# -*- coding: utf-8 -*-
"""Action plugin netcheck.netcheck.netcheck_report: the answer of a check run, on the controller.

Run once (on localhost) after every source host ran net_diagnose. Reads each source's
registered result from hostvars in Python (no Jinja loop over hostvars), builds the run model
(plugin_utils/run.py), prints the matrix, the failing pairs and the totals, writes the reports
(plugin_utils/reports.write_all: report.json, junit.xml, summary.md, report.html, netcheck.prom) and
fails when any pair missed its expectation or any source could not run, unless
``fail_on_mismatch`` is false.

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
    BaselineError, apply_baseline, run_failed, write_all)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.run import apply_captures, build_run, render
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
    return _plain(value) if value else None


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
        run_dir = args.get("run_dir") or ""
        if report_dir and not run_dir:
            stamp = (meta["started"] or meta["finished"]).replace(":", "").replace("-", "")
            run_dir = os.path.join(report_dir, stamp)
        if boolean(args.get("capture", False), strict=False):
            capture_register = args.get("capture_register") or "capture_result"
            captures = {}
            for entry in gathered:
                captures[entry["name"]] = {"address": entry["address"],
                                           "result": _registered(hostvars, entry["name"], capture_register)}
            apply_captures(run, captures, run_dir or None)
        # sources and targets: their instance ids tell apart interfaces holding one address
        ec2_hosts = list(sources) + [target["name"] for target in run["targets"] if target["name"] not in sources]
        ec2 = inventory_options({name: hostvars[name] for name in ec2_hosts if name in hostvars},
                                enabled=args.get("ec2_explain", "auto"), **(args.get("ec2_options") or {}))
        if ec2 is not None:
            explained = explain_run(run, ec2)
            if explained["error"]:
                display.warning("netcheck: EC2 configuration not read: %s" % explained["error"])
        baseline = args.get("baseline")
        if baseline:
            try:
                run = apply_baseline(run, baseline)
            except (BaselineError, OSError, ValueError) as exc:
                raise AnsibleActionFail("baseline: %s" % exc)
        for line in render(run):
            display.display(line)

        written = {}
        if report_dir:
            try:
                written = write_reports(run, run_dir, args.get("report_options") or {})
            except (OSError, ValueError) as exc:
                display.warning("netcheck: reports not written to %s: %s" % (run_dir, exc))
            else:
                for kind, path in sorted(written.items()):
                    display.display("report %s: %s" % (kind, path))
        # the run model itself is in the reports: a failed task would print all of it
        result.update(changed=False, reports=written, totals=run["totals"], asymmetric=run["asymmetric"])
        if run_failed(run) and boolean(args.get("fail_on_mismatch", True), strict=False):
            totals = run["totals"]
            result.update(failed=True, msg="%d of %d pairs missed their expectation, %d sources could not run"
                                           % (totals["failed"], totals["pairs"], totals["sources_not_run"]))
        return result
