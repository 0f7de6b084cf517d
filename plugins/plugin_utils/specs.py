"""Controller-side specs made from the probes' specs: group targets and role variables.

Nothing here is written twice: a group spec is a probe's target spec less ``host`` and
``name`` (they come from the inventory) plus the group keys, and a role variable is the
module option it is handed to. ``scripts/gen_argument_specs.py`` writes each role's
``meta/argument_specs.yml`` from ROLE_SPECS (a unit test fails when the committed file
differs), and plugins/filter/netcheck.py checks group specs against GROUP_SPECS.
"""

from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.http import HTTP_MODULE_SPEC, HTTP_URL_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import (
    ICMP_MODULE_SPEC, ICMP_TARGET_SPEC,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.netfilter import (
    FORWARD_SPEC, PORT_FORWARD_SPEC,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import select, validate_spec
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import TCP_MODULE_SPEC, TCP_TARGET_SPEC

GROUP_KEYS = {
    "group": {"type": "str", "required": True, "description": "An inventory group: one target per host in it."},
    "address_var": {"type": "str", "default": "ansible_host",
                    "description": "The host variable holding the address to use (falls back to the inventory name)."},
    "include_self": {"type": "bool",
                     "description": "Also check the source host itself (default netcheck_include_self)."},
}
HTTP_GROUP_KEYS = {
    "port": {"type": "int", "required": True, "description": "The port of the URL on every host."},
    "scheme": {"type": "str", "choices": ["http", "https"], "default": "http", "description": "http or https."},
    "path": {"type": "str", "default": "/", "description": "The path (and query) of the URL."},
}

# Per layer: what one item of netcheck_<layer>_group_targets may hold.
GROUP_SPECS = {
    "tcp": dict(GROUP_KEYS, **select(TCP_TARGET_SPEC, exclude=("host", "name"))),
    "icmp": dict(GROUP_KEYS, **select(ICMP_TARGET_SPEC, exclude=("host", "name"))),
    "http": dict(GROUP_KEYS, **dict(HTTP_GROUP_KEYS, **select(HTTP_URL_SPEC, exclude=("url", "name")))),
}
# Per layer: the module target keys a group spec hands on to each target it makes.
TARGET_SPECS = {"tcp": TCP_TARGET_SPEC, "icmp": ICMP_TARGET_SPEC, "http": HTTP_URL_SPEC}


def role_variable(option, description=None, **changes):
    """A role variable handed to a module option: the option's spec (without a default: the
    role's defaults/main.yml holds those) with another description or changes."""
    variable = {key: value for key, value in option.items() if key != "default"}
    if description:
        variable["description"] = description
    variable.update(changes)
    return variable


def _list_of(spec, description):
    return {"type": "list", "elements": "dict", "options": spec, "description": description}


NETCHECK_ROLE_SPEC = {
    "netcheck_tcp_targets": _list_of(TCP_TARGET_SPEC, "TCP targets checked from every host (port_check targets)."),
    "netcheck_tcp_group_targets": _list_of(GROUP_SPECS["tcp"], "Port P on every host of group G."),
    "netcheck_tcp_timeout": role_variable(TCP_MODULE_SPEC["timeout"]),
    "netcheck_tcp_max_workers": role_variable(TCP_MODULE_SPEC["max_workers"]),
    "netcheck_icmp_targets": _list_of(ICMP_TARGET_SPEC, "Hosts pinged from every host (icmp_ping targets)."),
    "netcheck_icmp_group_targets": _list_of(GROUP_SPECS["icmp"], "Every host of group G answers ping."),
    "netcheck_icmp_count": role_variable(ICMP_MODULE_SPEC["count"]),
    "netcheck_icmp_interval": role_variable(ICMP_MODULE_SPEC["interval"]),
    "netcheck_icmp_timeout": role_variable(ICMP_MODULE_SPEC["timeout"]),
    "netcheck_icmp_size": role_variable(ICMP_MODULE_SPEC["size"]),
    "netcheck_icmp_method": role_variable(ICMP_MODULE_SPEC["method"]),
    "netcheck_icmp_warn": role_variable(ICMP_MODULE_SPEC["warn"]),
    "netcheck_icmp_crit": role_variable(ICMP_MODULE_SPEC["crit"]),
    "netcheck_http_targets": _list_of(HTTP_URL_SPEC, "URLs checked from every host (http_check urls)."),
    "netcheck_http_group_targets": _list_of(GROUP_SPECS["http"], "Port P on every host of group G answers HTTP."),
}
NETCHECK_ROLE_SPEC.update(("netcheck_http_" + name, role_variable(HTTP_MODULE_SPEC[name], "Default for every URL: "
                                                                  + HTTP_MODULE_SPEC[name]["description"]))
                          for name in ("method", "status_codes", "headers", "expect_headers", "follow_redirects",
                                       "validate_certs", "ca_path", "timeout"))
NETCHECK_ROLE_SPEC.update({
    "netcheck_include_self": {"type": "bool", "description": "Whether a host also checks itself when its group is expanded."},
    "netcheck_fail_on_mismatch": {"type": "bool",
                                  "description": "Fail the hosts whose checks missed their expectations."},
})

PORT_FORWARD_ROLE_SPEC = {
    "port_forward_state": {"type": "str", "choices": ["present", "absent"],
                           "description": "present sets up and proves; absent tears our rules and listeners down."},
    "port_forward_rules": _list_of(FORWARD_SPEC, "The forwards (port_forward forwards)."),
    "port_forward_tag": role_variable(PORT_FORWARD_SPEC["tag"]),
    "port_forward_persist": role_variable(PORT_FORWARD_SPEC["persist"]),
    "port_forward_set_sysctl": role_variable(PORT_FORWARD_SPEC["set_sysctl"]),
    "port_forward_rollback_timeout": role_variable(PORT_FORWARD_SPEC["rollback_timeout"]),
    "port_forward_listener": {"type": "bool",
                              "description": "Start a temporary listener on a to_port where nothing answers yet."},
    "port_forward_listener_duration": {"type": "int", "description": "How long such a listener lives, in seconds."},
    "port_forward_prover": {"type": "str",
                            "description": "The inventory host that proves the forward (empty: the controller)."},
    "port_forward_prove_http": {"type": "bool", "description": "Also send an HTTP HEAD through the forward."},
    "port_forward_prove_timeout": {"type": "float", "description": "Seconds the proof waits for an answer."},
    "port_forward_keep_on_failure": {"type": "bool",
                                     "description": "Keep the rules when the proof fails (default: take them back)."},
    "port_forward_public_ip_url": {"type": "str", "description": "A what-is-my-IP URL asked after EC2 metadata."},
}

# The options of the netcheck_report action (its documentation is library/netcheck_report.py).
NETCHECK_REPORT_SPEC = {
    "sources": {"type": "list", "elements": "str", "required": True,
                "description": "The inventory names of the source hosts."},
    "register": {"type": "str", "default": "netcheck_diagnose",
                 "description": "The variable each source registered its net_diagnose result in."},
    "address_var": {"type": "str", "default": "ansible_host", "description": "The host variable holding a source's address."},
    "report_dir": {"type": "str", "description": "The parent directory of the run's reports (empty: write none)."},
    "run_dir": {"type": "str", "description": "The run's directory (default <report_dir>/<started>)."},
    "capture": {"type": "bool", "default": False, "description": "Join each source's packet capture to the failing pairs."},
    "capture_register": {"type": "str", "default": "capture_result",
                         "description": "The variable each host registered its stopped capture in."},
    "report_options": {"type": "dict", "default": {}, "description": "Options passed to the report writers."},
    "baseline": {"type": "path", "description": "A known-failures file (YAML or JSON)."},
    "ec2_explain": {"type": "str", "choices": ["auto", "true", "false"], "default": "auto",
                    "description": "Explain filtered pairs from EC2 security groups, network ACLs and routes."},
    "ec2_options": {"type": "dict", "default": {},
                    "description": "Options of the EC2 explainer (region, endpoint_url, profile, ephemeral_ports, codes)."},
    "fail_on_mismatch": {"type": "bool", "default": True,
                         "description": "Fail when a pair missed its expectation or a source could not run."},
    "started": {"type": "str", "description": "When the run started (ISO 8601 UTC)."},
    "playbook": {"type": "str", "description": "The playbook's name, recorded in the run's meta."},
}

# role name -> (short description, spec of its variables) for meta/argument_specs.yml
ROLE_SPECS = {
    "netcheck": ("Check connectivity layer by layer from every host of the play (ICMP, TCP, HTTP)",
                 NETCHECK_ROLE_SPEC),
    "port_forward": ("Set up, prove and tear down iptables NAT port forwards", PORT_FORWARD_ROLE_SPEC),
}

for _name, (_, _spec) in ROLE_SPECS.items():
    validate_spec(_spec, _name)
validate_spec(NETCHECK_REPORT_SPEC, "netcheck_report")
for _layer, _spec in GROUP_SPECS.items():
    validate_spec(_spec, "group " + _layer)
