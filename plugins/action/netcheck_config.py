# -*- coding: utf-8 -*-
"""Action plugin netcheck.netcheck.netcheck_config: one source's role variables, checked and converted.

Runs on the controller (no connection), as the netcheck role's first task for each source host:
the role's variables this host sees (defaults, inventory, ``-e``) are checked and converted by
plugins/plugin_utils/config.py (the same check check.yml runs for every source before any host is
contacted), the groups they name must exist and the files they name must be readable. The result's
``config`` holds every variable converted to its type (``-e netcheck_mesh_ports=22`` is ``[22]``);
a problem fails the task with one line per problem, naming the variable path.

With ``sources`` (check.yml's first play, run once on the controller) it checks every source host
of the play that way (the role's defaults under each host's own variables, plus the inventory's
addresses of the mesh's hosts), never fails, writes report.json with ``status: config_error`` when
something is wrong, and returns ``ansible_facts.netcheck_preflight`` = ``{problems, report}`` for
the second play's hosts line (filter ``netcheck_checked_sources``), which stops the playbook with
exit status 4.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

import os

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.config import (
    INTERNAL, check_files, check_inventory, check_sources, check_variables, config_error_message)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import write_json
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.run import config_error_run, run_dir_for
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.specs import NETCHECK_CONFIG_SPEC

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(NETCHECK_CONFIG_SPEC)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        if self._task.args.get("sources") is not None:
            return self._preflight(result, self._task.args["sources"], task_vars)
        values = {name: self._templar.template(value) for name, value in task_vars.items()
                  if str(name).startswith("netcheck_") and name not in INTERNAL}
        normalized, problems = check_variables(values)
        check_files(normalized, problems)
        check_inventory(normalized, task_vars.get("groups") or {}, None, problems)
        # -v would print every variable of every host: the converted values are for the role's tasks
        result.update(changed=False, config=normalized, problems=problems, _ansible_verbose_override=not problems)
        if problems:
            result.update(failed=True, config_error=True, msg=config_error_message(problems))
        return result

    def _preflight(self, result, sources, task_vars):
        problems, normalized, _ = check_sources(list(sources), task_vars.get("groups") or {},
                                                task_vars.get("hostvars") or {})
        report = None
        report_dir = (normalized or {}).get("netcheck_report_dir", "reports")
        if problems and report_dir:
            report = os.path.join(run_dir_for(os.path.abspath(report_dir)), "report.json")
            try:
                write_json(config_error_run(problems), report)
            except OSError as exc:
                problems.append("netcheck_report_dir: report.json not written: %s" % exc)
                report = None
        result.update(changed=False, problems=problems,
                      ansible_facts={"netcheck_preflight": {"problems": problems, "report": report}})
        if problems:
            result["msg"] = config_error_message(problems)
            # said at once, before Ansible's own "Error processing keyword 'hosts'" line
            display.display(result["msg"], stderr=True)
        return result
