# -*- coding: utf-8 -*-
"""The netcheck role's variables, checked in one place before any probe.

:func:`check_variables` takes the role's variables (defaults merged with what the inventory and
``-e`` gave one source host) and returns ``(normalized, problems)``: every variable converted to
its declared type (NETCHECK_ROLE_SPEC, the spec the role's documentation is made from), or one
short problem per bad value naming its path (``netcheck_mesh_ports[0]: 'ssh' is not a port
number``). Nothing is iterated that is not a list: ``-e netcheck_mesh_ports=22`` is the port 22,
``-e netcheck_mesh_ports=22,80`` the ports 22 and 80, and ``"false"`` is False for a boolean.

:func:`check_sources` runs it for every source host of a play on the controller (the role's
defaults under each host's own variables), adds what only the inventory can tell (groups named
that do not exist, addresses that are no host, a baseline file that cannot be read) and groups
equal problems of many hosts into one line. The playbook runs it before any host is contacted
(filter ``netcheck_checked_sources``), the role again for each source (action ``netcheck_config``).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import re
from urllib.parse import urlsplit

import yaml

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import (
    InputError, validate_host, validate_regex)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import check_options
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports.baseline import BaselineError, load_baseline
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.specs import (
    DEPRECATED_KEYS, NETCHECK_ROLE_SPEC, PORT_SPEC,
)

# Variables the role or the play sets itself (facts, registered results): not user input.
INTERNAL = frozenset((
    "netcheck_diagnose", "netcheck_run_started", "netcheck_run_dir", "netcheck_mesh_addresses",
    "netcheck_config", "netcheck_sources", "netcheck_report", "netcheck_preflight",
))

SPEC = NETCHECK_ROLE_SPEC

# (lowest, highest, lowest excluded) of numbers, by variable or by nested key.
RANGES = {
    "netcheck_tcp_timeout": (0, 3600, True),
    "netcheck_icmp_count": (1, 1000, False),
    "netcheck_icmp_interval": (0, 60, False),
    "netcheck_icmp_timeout": (0, 60, True),
    "netcheck_icmp_size": (0, 65507, False),
    "netcheck_http_timeout": (0, 3600, True),
    "netcheck_arp_timeout": (0, 10, True),
    "netcheck_max_workers": (1, 4096, False),
}
KEY_RANGES = {"timeout": (0, 3600, True), "port": (1, 65535, False)}
PORT_LISTS = ("netcheck_limit_ports",)
STATUS_RANGE = (100, 599, False)
TRUE_WORDS = ("true", "yes", "on", "1", "y", "t")
FALSE_WORDS = ("false", "no", "off", "0", "n", "f", "")


class Problems(list):
    """Problem lines, each naming the variable path."""

    def add(self, path, text):
        self.append("%s: %s" % (path, text))


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def to_bool(value, path, problems):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    problems.add(path, "%s is not true or false" % _short(value))
    return None


def to_int(value, path, problems, what="a whole number"):
    if isinstance(value, bool):
        problems.add(path, "%s is not %s" % (_short(value), what))
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.match(r"^\s*[-+]?\d+\s*$", value):
        return int(value)
    problems.add(path, "%s is not %s" % (_short(value), what))
    return None


def to_float(value, path, problems):
    if isinstance(value, bool):
        problems.add(path, "%s is not a number" % _short(value))
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip()) if isinstance(value, str) else None
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        problems.add(path, "%s is not a number" % _short(value))
        return None
    return number


def to_list(value, path, problems):
    """A list; a string is a comma-separated list (never its characters); a lone number, one item."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    problems.add(path, "%s is not a list" % _short(value))
    return None


def to_dict(value, path, problems):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    problems.add(path, "%s is not a mapping" % _short(value))
    return None


def in_range(number, bounds, path, problems):
    if number is None or bounds is None:
        return number
    low, high, open_low = bounds
    if (number <= low if open_low else number < low) or number > high:
        shown = int(number) if isinstance(number, float) and number.is_integer() else number
        problems.add(path, "%s is out of range (%s %s to %s)" % (
            shown, "above" if open_low else "from", low, high))
        return None
    return number


def convert(value, option, path, problems, bounds=None):
    """``value`` as ``option`` declares it (type, choices, elements, nested options)."""
    kind = option.get("type", "raw")
    if value is None:
        return None
    if kind == "bool":
        value = to_bool(value, path, problems)
    elif kind == "int":
        value = in_range(to_int(value, path, problems), bounds, path, problems)
    elif kind == "float":
        value = in_range(to_float(value, path, problems), bounds, path, problems)
    elif kind in ("str", "path"):
        if isinstance(value, (dict, list, tuple)):
            problems.add(path, "%s is not a string" % _short(value))
            return None
        value = value if isinstance(value, str) else ("%s" % value).lower() if isinstance(value, bool) else str(value)
    elif kind == "list":
        items = to_list(value, path, problems)
        if items is None:
            return None
        value = []
        for index, item in enumerate(items):
            where = "%s[%d]" % (path, index)
            element = {"type": option.get("elements", "raw")}
            if option.get("options"):
                element["options"] = option["options"]
            value.append(convert(item, element, where, problems, bounds))
    elif kind == "dict":
        value = to_dict(value, path, problems)
        if value is not None and option.get("options"):
            value = check_mapping(value, option["options"], path, problems)
    if value is not None and option.get("options") and kind == "raw" and isinstance(value, dict):
        value = check_mapping(value, option["options"], path, problems)
    choices = option.get("choices")
    if choices and value is not None and kind != "list" and value not in choices:
        problems.add(path, "%s is not one of %s" % (_short(value), ", ".join(str(c) for c in choices)))
        return None
    return value


def check_mapping(value, spec, path, problems):
    """A user mapping against a nested spec: unknown keys (with the closest known one), required keys."""
    if not isinstance(value, dict):
        problems.add(path, "%s is not a mapping" % _short(value))
        return None
    out, suggested = {}, set()
    for key, item in value.items():
        where = "%s.%s" % (path, key)
        if key not in spec:
            close = difflib.get_close_matches(str(key), [k for k in spec if k not in DEPRECATED_KEYS], n=1)
            suggested.update(close)
            problems.add(where, "unknown key%s" % (" (did you mean %s?)" % close[0] if close else
                                                   "; known: %s" % ", ".join(spec)))
            continue
        out[key] = convert(item, spec[key], where, problems, KEY_RANGES.get(key))
    for key, option in spec.items():
        # a typo of a required key is one problem, not two
        if option.get("required") and value.get(key) in (None, "") and key not in suggested:
            problems.add("%s.%s" % (path, key), "required")
    return out


def _port_item(item, path, problems):
    """One of netcheck_mesh_ports: a port number (or its digits) or a mapping with port."""
    if isinstance(item, dict):
        return check_mapping(item, PORT_SPEC, path, problems)
    number = to_int(item, path, problems, what="a port number")
    return in_range(number, KEY_RANGES["port"], path, problems)


def _hosts_in(values, path, problems, field="host"):
    for index, target in enumerate(values or []):
        if isinstance(target, dict) and target.get(field) is not None:
            try:
                validate_host(target[field], "%s[%d].%s" % (path, index, field))
            except InputError as exc:
                problems.append(str(exc))


def _urls_in(values, path, problems):
    for index, target in enumerate(values or []):
        url = target.get("url") if isinstance(target, dict) else None
        if url is None:
            continue
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.add("%s[%d].url" % (path, index), "%s is not an http:// or https:// URL with a host" % _short(url))
            continue
        try:
            validate_host(parts.hostname, "%s[%d].url" % (path, index))
        except InputError as exc:
            problems.append(str(exc))


def _regexes_in(values, path, problems, keys=("expect", "body_regex")):
    for index, target in enumerate(values or []):
        if not isinstance(target, dict):
            continue
        for key in keys:
            if target.get(key) is not None:
                try:
                    validate_regex(target[key], "%s[%d].%s" % (path, index, key))
                except InputError as exc:
                    problems.append(str(exc))


def check_variables(values, known=None):
    """``(normalized, problems)`` for one source's role variables (``values``: name -> value).

    ``known``: every variable name the caller merged in (defaults); a ``netcheck_*`` name outside
    the spec is a typo and named with the closest real one.
    """
    problems = Problems()
    normalized = {}
    for name in sorted(values):
        if not name.startswith("netcheck_") or name in INTERNAL:
            continue
        if name not in SPEC:
            close = difflib.get_close_matches(name, list(SPEC), n=1)
            problems.add(name, "unknown variable%s" % (" (did you mean %s?)" % close[0] if close else ""))
    for name, option in SPEC.items():
        value = values.get(name)
        if name == "netcheck_mesh_ports":
            items = to_list(value, name, problems) if value is not None else []
            normalized[name] = [_port_item(item, "%s[%d]" % (name, i), problems) for i, item in enumerate(items or [])]
            continue
        if name in PORT_LISTS:
            items = to_list(value, name, problems) if value is not None else []
            normalized[name] = [in_range(to_int(item, "%s[%d]" % (name, i), problems, "a port number"),
                                         KEY_RANGES["port"], "%s[%d]" % (name, i), problems)
                                for i, item in enumerate(items or [])]
            continue
        if name == "netcheck_http_status_codes":
            items = to_list(value, name, problems) if value is not None else []
            normalized[name] = [in_range(to_int(item, "%s[%d]" % (name, i), problems, "an HTTP status code"),
                                         STATUS_RANGE, "%s[%d]" % (name, i), problems)
                                for i, item in enumerate(items or [])]
            if value is not None and not normalized[name]:
                problems.add(name, "give at least one status code")
            continue
        if name == "netcheck_ec2_explain":
            normalized[name] = _ec2_explain(value, problems)
            continue
        normalized[name] = convert(value, option, name, problems, RANGES.get(name))
    for name in ("netcheck_tcp_targets", "netcheck_icmp_targets", "netcheck_targets"):
        _hosts_in(normalized.get(name), name, problems)
    _urls_in(normalized.get("netcheck_http_targets"), "netcheck_http_targets", problems)
    for name in ("netcheck_tcp_group_targets", "netcheck_tcp_targets", "netcheck_http_group_targets",
                 "netcheck_http_targets", "netcheck_mesh_urls"):
        _regexes_in(normalized.get(name), name, problems)
    _regexes_in([p for p in normalized.get("netcheck_mesh_ports") or [] if isinstance(p, dict)],
                "netcheck_mesh_ports", problems)
    for index, target in enumerate(normalized.get("netcheck_targets") or []):
        if isinstance(target, dict) and target.get("icmp") == "skip" and not target.get("ports") \
                and not target.get("urls"):
            problems.add("netcheck_targets[%d]" % index, "nothing to check (icmp skip, no ports, no urls)")
    _check_report_options(normalized, problems)
    return normalized, list(problems)


def _ec2_explain(value, problems):
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return "true" if value.strip().lower() in TRUE_WORDS else "false"
    problems.add("netcheck_ec2_explain", "%s is not auto, true or false" % _short(value))
    return None


def _check_report_options(normalized, problems):
    options = normalized.get("netcheck_report_options")
    if options:
        try:
            check_options(options)
        except ValueError as exc:
            problems.add("netcheck_report_options", str(exc).replace("options: ", "", 1).replace("options.", "", 1))


def check_files(normalized, problems, cwd=None):
    """The files the run reads or writes, checked before any probe: the baseline and the compared run."""
    cwd = cwd or os.getcwd()
    baseline = normalized.get("netcheck_baseline")
    if baseline:
        path = os.path.join(cwd, baseline)
        if not os.path.isfile(path):
            problems.append("netcheck_baseline: %s: no such file" % baseline)
        else:
            try:
                load_baseline(path)
            except (BaselineError, OSError, ValueError) as exc:
                problems.append("netcheck_baseline: %s" % exc)
    compare = normalized.get("netcheck_compare")
    if compare:
        path = os.path.join(cwd, compare)
        if os.path.isdir(path):
            path = os.path.join(path, "report.json")
        try:
            with open(path, encoding="utf-8") as stream:
                old = json.load(stream)
            if not isinstance(old, dict) or not isinstance(old.get("pairs"), list):
                problems.append("netcheck_compare: %s is not a netcheck report.json (no pairs)" % compare)
        except (OSError, ValueError) as exc:
            problems.append("netcheck_compare: %s: %s" % (compare, getattr(exc, "strerror", None) or exc))
    written = normalized.get("netcheck_baseline_write")
    if written:
        parent = os.path.dirname(os.path.join(cwd, written)) or cwd
        if not os.path.isdir(parent):
            problems.append("netcheck_baseline_write: %s: the directory %s does not exist" % (written, parent))
        elif os.path.exists(os.path.join(cwd, written)):
            try:
                load_baseline(os.path.join(cwd, written))
            except (BaselineError, OSError, ValueError) as exc:
                problems.append("netcheck_baseline_write: the file to update is not a baseline: %s" % exc)
    if normalized.get("netcheck_report_dir") == "" and (written or compare):
        problems.append("netcheck_report_dir: empty, but netcheck_baseline_write/netcheck_compare need the "
                        "run's report")
    return problems


def check_inventory(normalized, groups, hostvars_of, problems):
    """Groups the variables name that the inventory does not hold, and mesh addresses that are no host."""
    group = normalized.get("netcheck_mesh_group")
    if group and group not in groups:
        close = difflib.get_close_matches(group, list(groups), n=1)
        problems.append("netcheck_mesh_group: no group %r in the inventory%s"
                        % (group, " (did you mean %s?)" % close[0] if close else ""))
    for layer in ("tcp", "icmp", "http"):
        name = "netcheck_%s_group_targets" % layer
        for index, spec in enumerate(normalized.get(name) or []):
            if isinstance(spec, dict) and spec.get("group") and spec["group"] not in groups:
                close = difflib.get_close_matches(spec["group"], list(groups), n=1)
                problems.append("%s[%d].group: no group %r in the inventory%s"
                                % (name, index, spec["group"], " (did you mean %s?)" % close[0] if close else ""))
    if hostvars_of is None:
        return problems
    address_var = normalized.get("netcheck_address_var") or "ansible_host"
    for name in mesh_hosts(normalized, groups):
        address = hostvars_of(name, address_var)
        try:
            validate_host(str(address), "inventory host %s: %s" % (name, address_var))
        except InputError as exc:
            problems.append(str(exc))
    return problems


def mesh_hosts(normalized, groups):
    """The targets of the mesh: the hosts of netcheck_mesh_group, else every host of the inventory."""
    group = normalized.get("netcheck_mesh_group")
    if group:
        return list(groups.get(group) or [])
    return list(groups.get("all") or [])


def role_defaults():
    """The netcheck role's defaults (roles/netcheck/defaults/main.yml of this collection)."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "netcheck", "defaults", "main.yml")
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def group_problems(per_host):
    """``{host: [problem]}`` -> lines, a problem every host shares said once, others with their hosts."""
    hosts_of = {}
    for host, problems in per_host.items():
        for problem in problems:
            hosts_of.setdefault(problem, []).append(host)
    lines = []
    for problem, hosts in hosts_of.items():
        if len(hosts) == len(per_host) or len(per_host) == 1:
            lines.append(problem)
        else:
            lines.append("%s (on %s)" % (problem, ", ".join(hosts)))
    return lines


def config_error_message(problems):
    """The first line says it is the configuration, not the network; then one line per problem."""
    return "netcheck: CONFIGURATION ERROR, nothing was checked (%d problem%s):\n%s" % (
        len(problems), "" if len(problems) == 1 else "s", "\n".join("  - " + p for p in problems))


__all__ = ["SPEC", "check_files", "check_inventory", "check_variables", "config_error_message", "convert",
           "group_problems", "mesh_hosts", "role_defaults"]


# --- every source of a play, on the controller ---------------------------------------------------

def resolve_pattern(pattern, groups):
    """The inventory names a host pattern (``all``, ``web:db``, ``web:&eu``, ``all:!db1``, ``web*``,
    ``a,b``) selects, in inventory order; enough of Ansible's pattern language to know whether a
    pattern selects anything before a host is contacted."""
    everyone = list(groups.get("all") or [])
    for members in groups.values():
        everyone.extend(h for h in members if h not in everyone)
    selected = []
    terms = [t for t in re.split(r"[,:]", str(pattern)) if t.strip()] if not isinstance(pattern, list) else pattern
    for index, term in enumerate(terms):
        term = term.strip()
        mode = "add"
        if term.startswith("!"):
            mode, term = "remove", term[1:]
        elif term.startswith("&"):
            mode, term = "and", term[1:]
        if term in ("all", "*"):
            hosts = everyone
        elif term in groups:
            hosts = list(groups[term])
        else:
            names = [h for h in everyone if fnmatch.fnmatchcase(h, term)]
            names += [h for g, members in groups.items() if fnmatch.fnmatchcase(g, term) for h in members]
            hosts = list(dict.fromkeys(names))
        if mode == "add":
            selected.extend(h for h in hosts if h not in selected)
        elif mode == "remove":
            selected = [h for h in selected if h not in hosts]
        else:
            selected = [h for h in selected if h in hosts]
    return selected


def source_values(host_vars, defaults):
    """The role variables one source sees: the role's defaults under its own ``netcheck_*`` variables."""
    values = dict(defaults)
    for name in host_vars:
        if str(name).startswith("netcheck_") and name not in INTERNAL:
            values[name] = host_vars[name]
    return values


def check_sources(pattern, groups, hostvars, cwd=None):
    """``(problems, normalized of the first source, sources)`` for every source host of a play."""
    defaults = role_defaults()
    sources = resolve_pattern(pattern, groups)
    if not (groups.get("all") or []):
        return (["inventory: it holds no host (is -i the right file? ansible-inventory --graph shows "
                 "what was read)"], None, [])
    if not sources:
        return (["netcheck_sources: %r selects no host of the inventory (groups: %s)"
                 % (pattern, ", ".join(sorted(g for g in groups if g != "ungrouped")))], None, [])
    per_host, checked, first = {}, {}, None
    for host in sources:
        host_vars = hostvars[host] if host in hostvars else {}
        values = source_values(host_vars, defaults)
        key = json.dumps(values, sort_keys=True, default=str)
        if key not in checked:
            normalized, problems = check_variables(values)
            check_files(normalized, problems, cwd)
            check_inventory(normalized, groups, lambda name, var: _address_of(hostvars, name, var), problems)
            checked[key] = (normalized, problems)
        normalized, problems = checked[key]
        first = first or normalized
        per_host[host] = problems
    return group_problems(per_host), first, sources


def _address_of(hostvars, name, address_var):
    facts = hostvars[name] if name in hostvars else {}
    return facts.get(address_var) or facts.get("ansible_host") or name
