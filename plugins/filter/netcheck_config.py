"""Filters of check.yml's configuration gate and of the run's directory.

``netcheck_checked_sources``: check.yml's second play names its hosts with ``{{ netcheck_sources |
default('all') | netcheck.netcheck.netcheck_checked_sources(groups, preflight) }}``, ``preflight``
being what the first play's ``netcheck_config`` (on the controller, before any host is contacted)
found in every source's configuration. A problem stops the playbook there, with one line per problem
and exit status 4 (Ansible's status for an error in a play's keywords), and report.json says
``status: config_error``: a configuration error is never confused with a network failure (exit 2).

``netcheck_run_dir``: the run's directory (plugin_utils/run.run_dir_for, the one place it is named).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.config import config_error_message, resolve_pattern
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.run import run_dir_for


def checked_sources(pattern, groups, preflight=None):
    """``pattern`` unchanged when the configuration passed; else AnsibleFilterError with every problem."""
    problems = list((preflight or {}).get("problems") or [])
    if not problems:
        if not (groups.get("all") or []):
            problems.append("inventory: it holds no host (is -i the right file? ansible-inventory --graph "
                            "shows what was read)")
        elif not resolve_pattern(pattern, groups):
            problems.append("netcheck_sources: %r selects no host of the inventory" % (pattern,))
    if not problems:
        return pattern
    message = config_error_message(problems)
    if (preflight or {}).get("report"):
        message += "\nreport: %s" % preflight["report"]
    raise AnsibleFilterError(message)


def run_dir(report_dir, started):
    """The run's directory for ``report_dir`` ("" when no report is written): run.run_dir_for."""
    return run_dir_for(os.path.realpath(report_dir), started) if report_dir else ""


class FilterModule(object):
    def filters(self):
        return {"netcheck_checked_sources": checked_sources, "netcheck_run_dir": run_dir}
