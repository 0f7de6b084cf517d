"""Controller-side specs made from the probes' specs: group targets, role variables, actions.

Nothing here is written twice: a group spec is a probe's spec less ``host`` and ``name``
(they come from the inventory) plus the group keys, and a role variable is the module option
it is handed to. ``scripts/gen_argument_specs.py`` writes each role's
``meta/argument_specs.yml`` from ROLE_SPECS (a unit test fails when the committed file
differs); net_diagnose's action plugin (the netcheck role's group specs, mesh and explicit
targets) and plugins/filter/netcheck.py (port_check targets) check what users write against
GROUP_SPECS, EXTRA_TARGET_SPECS and MESH_SPEC; netcheck_report's action against
NETCHECK_REPORT_SPEC.
"""
from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.capture import CAPTURE_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import (
    DIAGNOSE_MODULE_SPEC, DIAGNOSE_PORT_SPEC, DIAGNOSE_TARGET_SPEC,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.http import HTTP_REQUEST_SPEC, HTTP_URL_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import ICMP_TARGET_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.netfilter import (
    FORWARD_SPEC, PORT_FORWARD_SPEC,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import select, validate_spec
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import TCP_TARGET_SPEC

GROUP_KEYS = {
    "group": {"type": "str", "required": True, "description": "An inventory group: one target per host in it."},
    "address_var": {"type": "str", "description": "The host variable holding the address to use (default "
                                                  "netcheck_address_var, then ansible_host, then the inventory name)."},
    "include_self": {"type": "bool",
                     "description": "Also check the source host itself (default netcheck_include_self)."},
}
HTTP_GROUP_KEYS = {
    "port": {"type": "int", "required": True, "description": "The port of the URL on every host."},
    "scheme": {"type": "str", "choices": ["http", "https"], "default": "http", "description": "http or https."},
    "path": {"type": "str", "default": "/", "description": "The path (and query) of the URL."},
}
# A TCP port as the netcheck role takes it (net_diagnose's port). expected_state, port_check's old
# name for expected, is still accepted (inventories written with it keep working) until 1.0.0.
PORT_SPEC = dict(DIAGNOSE_PORT_SPEC, expected_state=dict(
    {key: value for key, value in DIAGNOSE_PORT_SPEC["expected"].items() if key != "default"},
    description="Deprecated: the old name of expected (removed in 1.0.0); give expected."))
# Old names still accepted, and the name to write instead: never suggested for a typo.
DEPRECATED_KEYS = {"expected_state": "expected"}
# A URL made from a port on a host (mesh and group specs): scheme://host:port/path plus the URL options.
PORT_URL_SPEC = dict(HTTP_GROUP_KEYS, **select(HTTP_URL_SPEC, exclude=("url",)))

# Per layer: what one item of netcheck_<layer>_group_targets may hold.
GROUP_SPECS = {
    "tcp": dict(GROUP_KEYS, **select(PORT_SPEC, exclude=("name",))),
    "icmp": dict(GROUP_KEYS, **select(ICMP_TARGET_SPEC, exclude=("host", "name"))),
    "http": dict(GROUP_KEYS, **select(PORT_URL_SPEC, exclude=("name",))),
}
# Per layer: what one item of netcheck_<layer>_targets (explicit extra targets) may hold.
EXTRA_TARGET_SPECS = {
    "tcp": dict({"host": TCP_TARGET_SPEC["host"]}, **dict(PORT_SPEC, name=dict(
        TCP_TARGET_SPEC["name"], description="The target's label (targets with the same name are merged)."))),
    "icmp": ICMP_TARGET_SPEC,
    "http": HTTP_URL_SPEC,
}
# net_diagnose's mesh (expanded by its action plugin): every host of a group or a list on the same checks.
MESH_SPEC = {
    "hosts": {"type": "list", "elements": "str", "description": "Inventory names checked (when no group is named)."},
    "group": {"type": "str", "description": "The inventory group whose hosts are checked."},
    "ports": {"type": "list", "elements": "raw",
              "description": "Ports checked on every host: a number or a mapping (port, expected, timeout, ...)."},
    "urls": {"type": "list", "elements": "dict", "options": PORT_URL_SPEC,
             "description": "URLs fetched on every host: port, scheme, path and the per-URL options."},
    "icmp": dict(DIAGNOSE_TARGET_SPEC["icmp"],
                 description="How every host is pinged: auto, reachable, unreachable, skip."),
    "address_var": {"type": "str", "description": "The host variable holding the address to probe."},
    "include_self": {"type": "bool", "description": "Whether a host also checks itself."},
    "addresses": {"type": "dict",
                  "description": "Addresses already looked up on the controller, {address_var: NAME, addresses: "
                                 "{host: address}} (the role's, once for every source); a host not in it is "
                                 "looked up by the action plugin."},
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


# The options of the netcheck_report action (its documentation is library/netcheck_report.py).
NETCHECK_REPORT_SPEC = {
    "sources": {"type": "list", "elements": "str", "required": True,
                "description": "The inventory names of the source hosts."},
    "register": {"type": "str", "default": "netcheck_diagnose",
                 "description": "The variable each source registered its net_diagnose result in."},
    "address_var": {"type": "str", "default": "ansible_host",
                    "description": "The host variable holding a source's address."},
    "report_dir": {"type": "str", "description": "The parent directory of the run's reports (empty: write none)."},
    "run_dir": {"type": "str", "description": "The run's directory (default <report_dir>/<started>)."},
    "capture": {"type": "bool", "default": False,
                "description": "Join each source's packet capture to the failing pairs."},
    "capture_register": {"type": "str", "default": "capture_result",
                         "description": "The variable each host registered its stopped capture in."},
    "report_options": {"type": "dict", "default": {}, "description": "Options passed to the report writers."},
    "baseline": {"type": "path", "description": "A known-failures file (YAML or JSON)."},
    "ec2_explain": {"type": "str", "choices": ["auto", "true", "false"], "default": "auto",
                    "description": "Explain filtered pairs from EC2 security groups, network ACLs and routes."},
    "ec2_options": {"type": "dict", "default": {},
                    "description": "Options of the EC2 explainer (region, endpoint_url, profile, "
                                   "ephemeral_ports, codes)."},
    "fail_on_mismatch": {"type": "bool", "default": True,
                         "description": "Fail when a pair missed its expectation or a source could not run."},
    "started": {"type": "str", "description": "When the run started (ISO 8601 UTC)."},
    "playbook": {"type": "str", "description": "The playbook's name, recorded in the run's meta."},
    "allow_empty": {"type": "bool", "default": False,
                    "description": "Pass a run that checked nothing (no source ran, no pair, no check)."},
    "baseline_write": {"type": "path", "description": "Write (or update) a known-failures file from this run."},
    "compare": {"type": "path", "description": "An earlier run's report.json (or its directory) to compare with."},
    "inventory_hosts": {"type": "list", "elements": "str",
                        "description": "Every host of the inventory: the run says which were not checked as targets."},
    "mesh_group": {"type": "str", "description": "The group the mesh's targets came from (empty: the inventory)."},
}

# The options of the netcheck_config action (its documentation is library/netcheck_config.py).
NETCHECK_CONFIG_SPEC = {
    "sources": {"type": "list", "elements": "str",
                "description": "The play's source hosts, each checked from its host variables (check.yml's first play)."},
}

_DIAGNOSE = DIAGNOSE_MODULE_SPEC
NETCHECK_ROLE_SPEC = {
    "netcheck_mesh_group": {"type": "str", "description": "The group every source checks (empty: the play's hosts)."},
    "netcheck_mesh_ports": MESH_SPEC["ports"],
    "netcheck_mesh_urls": MESH_SPEC["urls"],
    "netcheck_mesh_icmp": role_variable(MESH_SPEC["icmp"]),
    "netcheck_address_var": {"type": "str", "description": "The host variable holding the address to probe."},
    "netcheck_include_self": {"type": "bool",
                              "description": "Whether a host also checks itself (mesh and group specs)."},
    "netcheck_tcp_group_targets": _list_of(GROUP_SPECS["tcp"], "Port P on every host of group G."),
    "netcheck_icmp_group_targets": _list_of(GROUP_SPECS["icmp"], "Every host of group G answers ping (or must not)."),
    "netcheck_http_group_targets": _list_of(GROUP_SPECS["http"], "Port P on every host of group G answers HTTP."),
    "netcheck_tcp_targets": _list_of(EXTRA_TARGET_SPECS["tcp"], "Explicit TCP targets: host and port."),
    "netcheck_icmp_targets": _list_of(EXTRA_TARGET_SPECS["icmp"], "Explicit hosts pinged."),
    "netcheck_http_targets": _list_of(EXTRA_TARGET_SPECS["http"], "Explicit URLs fetched."),
    "netcheck_targets": _list_of(DIAGNOSE_TARGET_SPEC, "Targets in net_diagnose's own form, passed as they are."),
    "netcheck_tcp_timeout": role_variable(_DIAGNOSE["tcp_timeout"]),
}
NETCHECK_ROLE_SPEC.update(("netcheck_icmp_" + name, role_variable(option))
                          for name, option in _DIAGNOSE["icmp"]["options"].items())
NETCHECK_ROLE_SPEC.update(("netcheck_http_" + name, role_variable(HTTP_REQUEST_SPEC[name], "Default for every URL: "
                                                                  + HTTP_REQUEST_SPEC[name]["description"]))
                          for name in ("method", "status_codes", "headers", "expect_headers", "follow_redirects",
                                       "validate_certs", "ca_path", "timeout"))
NETCHECK_ROLE_SPEC.update({
    "netcheck_arp_timeout": role_variable(_DIAGNOSE["arp_timeout"]),
    "netcheck_max_workers": role_variable(_DIAGNOSE["max_workers"]),
    "netcheck_fail_on_warn": role_variable(_DIAGNOSE["fail_on_warn"]),
    "netcheck_path": role_variable(_DIAGNOSE["path"]),
    "netcheck_limit_ports": role_variable(_DIAGNOSE["limit_ports"],
                                          "Listening ports whose limits are reported "
                                          "([] = the mesh's and groups' ports)."),
    "netcheck_capture": {"type": "bool", "description": "Capture packets on every source while the checks run."},
    "netcheck_capture_fetch": {"type": "str", "choices": ["always", "on_failure", "never"],
                               "description": "When the pcaps are fetched to the run directory."},
    "netcheck_fail_on_mismatch": role_variable(NETCHECK_REPORT_SPEC["fail_on_mismatch"]),
    "netcheck_report_dir": {"type": "str", "description": "The parent of each run's report directory (empty: none)."},
    "netcheck_report_options": role_variable(NETCHECK_REPORT_SPEC["report_options"]),
    "netcheck_baseline": {"type": "str", "description": "A known-failures file (empty: none)."},
    # raw: -e netcheck_ec2_explain=true is the string "true", a YAML true a boolean
    "netcheck_ec2_explain": {"type": "raw", "choices": ["auto", True, False, "true", "false"],
                             "description": NETCHECK_REPORT_SPEC["ec2_explain"]["description"]},
    "netcheck_ec2_options": role_variable(NETCHECK_REPORT_SPEC["ec2_options"]),
    "netcheck_playbook_name": role_variable(NETCHECK_REPORT_SPEC["playbook"]),
    "netcheck_allow_empty": {"type": "bool",
                             "description": "Pass a run that checked nothing (no source, pair or check)."},
    "netcheck_baseline_write": {"type": "str",
                                "description": "Write (or update) a known-failures file from this run (empty: no)."},
    "netcheck_compare": {"type": "str",
                         "description": "A previous run's report.json (or its directory) to compare this run with."},
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

CAPTURE_ROLE_SPEC = {
    "capture_run_id": {"type": "str", "description": "The run's id, part of the capture ids (default: the UTC time)."},
    "capture_run_dir": {"type": "str", "description": "The controller directory the pcaps and summaries go to."},
    "capture_filter": role_variable(CAPTURE_SPEC["filter"],
                                    "What to capture: a BPF string or a structured filter "
                                    "(default: the play's other hosts)."),
    "capture_interface": {"type": "str",
                          "description": "The interface to capture on (empty: the one routing to the targets)."},
    "capture_targets": role_variable(CAPTURE_SPEC["targets"]),
    "capture_duration": role_variable(CAPTURE_SPEC["duration"]),
    "capture_max_packets": role_variable(CAPTURE_SPEC["max_packets"]),
    "capture_max_bytes": role_variable(CAPTURE_SPEC["max_bytes"]),
    "capture_snaplen": role_variable(CAPTURE_SPEC["snaplen"]),
    "capture_run_role": {"type": "str",
                         "description": "The role run while capturing (empty: none, only capture_wait)."},
    "capture_wait": {"type": "int", "description": "Seconds to wait after the role, before the captures stop."},
    "capture_fetch": {"type": "str", "choices": ["always", "on_failure", "never"],
                      "description": "When the pcaps are fetched to the controller."},
    "capture_remove_after": {"type": "bool", "description": "Remove the captures from the hosts once fetched."},
}

# role name -> (short description, spec of its variables) for meta/argument_specs.yml
ROLE_SPECS = {
    "netcheck": ("Diagnose connectivity layer by layer from every host of the play, one verdict per pair",
                 NETCHECK_ROLE_SPEC),
    "port_forward": ("Set up, prove and tear down iptables NAT port forwards", PORT_FORWARD_ROLE_SPEC),
    "capture": ("Capture packets on every host while a role runs, then fetch the pcaps and their summaries",
                CAPTURE_ROLE_SPEC),
}

for _name, (_, _spec) in ROLE_SPECS.items():
    validate_spec(_spec, _name)
validate_spec(NETCHECK_REPORT_SPEC, "netcheck_report")
validate_spec(NETCHECK_CONFIG_SPEC, "netcheck_config")
for _layer, _spec in GROUP_SPECS.items():
    validate_spec(_spec, "group " + _layer)
