#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the netcheck_config action (the work is done on the controller by
plugins/action/netcheck_config.py; this file only lets ansible-doc show it)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netcheck_config
short_description: Check and convert the netcheck role's variables of one source host, before any probe
description:
  - Runs on the controller only (an action plugin, no connection), as the first task of the netcheck role.
  - Checks every C(netcheck_*) variable the host sees (the role's defaults, the inventory, C(-e)) against the
    role's spec - types (a string where numbers or booleans are expected is converted or refused, never
    iterated character by character), ranges, unknown keys and unknown variables (with the closest known
    name), hosts and URLs, the groups named, the baseline and compared report files and the report options.
  - "Fails with one line per problem, each naming the variable path, under the first line
    C(netcheck: CONFIGURATION ERROR, nothing was checked)."
version_added: "0.6.0"
author:
  - netcheck maintainers (@netcheck)
options:
  sources:
    description:
      - The play's source hosts (check.yml's first play, run once on the controller) - every one of them is checked
        from its host variables under the role's defaults, with the inventory addresses of the mesh's hosts.
      - The task then never fails; its C(ansible_facts.netcheck_preflight) (C(problems), C(report)) stop the next
        play with filter C(netcheck.netcheck.netcheck_checked_sources), exit status 4.
    type: list
    elements: str
attributes:
  check_mode:
    details: Reads variables and files only.
extends_documentation_fragment:
  - netcheck.netcheck.attributes.controller
seealso:
  - module: netcheck.netcheck.net_diagnose
  - module: netcheck.netcheck.netcheck_report
"""

EXAMPLES = r"""
- name: Check the role's variables (the netcheck role does this first)
  netcheck.netcheck.netcheck_config:
  register: netcheck_config
"""

RETURN = r"""
config:
  description: Every role variable, converted to its declared type.
  returned: always
  type: dict
  sample: {"netcheck_mesh_ports": [22], "netcheck_tcp_timeout": 3.0}
problems:
  description: One line per problem, naming the variable path (empty when the configuration is good).
  returned: always
  type: list
  elements: str
  sample: ["netcheck_tcp_timeout: -1.0 is out of range (above 0 to 3600)"]
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(sources=dict(type='list', elements='str')), supports_check_mode=True)
    module.fail_json(msg="netcheck_config runs on the controller as an action plugin; it is not run on hosts")


if __name__ == "__main__":
    main()
