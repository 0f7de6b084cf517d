# -*- coding: utf-8 -*-
"""Action plugin of netcheck.netcheck.net_diagnose: expands inventory groups into targets.

On the controller, before the module runs on the source host, these options (which never
reach the host) become module ``targets``:

``mesh``           every host of a group (or a list of hosts) on the same ports and URLs, ping
                   included: ``{hosts: [...] | group: G, ports: [...], urls: [{port, scheme, path,
                   ...}], icmp: auto, address_var: ansible_host, include_self: false, addresses:
                   {address_var, addresses: {host: address}}}``; ``addresses`` are the hosts'
                   addresses the role looked up once for every source (filter
                   ``netcheck_mesh_addresses``); a host not in it is looked up here
``group_targets``  the role's per-layer group specs, as before: ``{icmp: [...], tcp: [...],
                   http: [...]}`` (``{group, port, address_var, include_self, expected...}``)
``extra_targets``  explicit per-layer targets: ``{icmp: [{host, reachable, name}], tcp: [{host,
                   port, ...}], http: [{url, ...}]}``
``layers``         the layers to check (``icmp``, ``tcp``, ``http``, ``limits``; default all)
``fail_on_mismatch`` false: pairs that miss their expectation do not fail the task (the netcheck
                   role's report judges them, ``pairs_failed`` counts them); a source that could not
                   check (input refused, module could not start) always fails it. Default true.
``run_dir``        the run's directory on the controller: the module's full answer goes to
                   ``<run_dir>/sources/<source>.json`` and the task result Ansible copies, prints
                   (``-v``) and registers is compact (per pair: target, address, ok, code, layer;
                   ``answer_file`` names the file, which the report reads)

Everything aimed at the same host is merged into one target (ports by number, URLs by URL),
so each pair is diagnosed once with all its evidence. With no target left and ``limits``
asked, conn_limits runs alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from urllib.parse import urlsplit

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import InputError
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import check_keys
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.inventory import host_address
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.specs import (
    EXTRA_TARGET_SPECS, GROUP_SPECS, MESH_SPEC, PORT_SPEC, PORT_URL_SPEC,
)

display = Display()

ALL_LAYERS = ("icmp", "tcp", "http", "limits")
CONTROLLER_OPTIONS = ("mesh", "group_targets", "extra_targets", "layers", "run_dir", "fail_on_mismatch")
# icmp modes, weakest first: a stronger expectation given anywhere wins
ICMP_STRENGTH = {"skip": 0, "auto": 1, "reachable": 2, "unreachable": 2}


class ExpansionError(ValueError):
    """Bad controller-side input; the message names the field."""


def _check_keys(value, spec, field):
    """spec.check_keys, raising ExpansionError: an unknown key is named with its path."""
    try:
        check_keys(value, spec, field)
    except InputError as exc:
        raise ExpansionError(str(exc))


def _http_url(scheme, host, port, path):
    if scheme not in ("http", "https"):
        raise ExpansionError("scheme %r is not http or https" % scheme)
    path = str(path or "/")
    if not path.startswith("/"):
        path = "/" + path
    return "%s://%s:%s%s" % (scheme, "[%s]" % host if ":" in host else host, port, path)


class TargetSet(object):
    """Targets merged by name: ports by number, URLs by URL, the strongest icmp mode."""

    def __init__(self):
        self.targets = {}
        self.order = []

    def get(self, name, host):
        """The target for (name, host); one name at two addresses is two targets, the second
        labelled ``name (address)`` so that each pair stays one row of the run model."""
        key = (name, host)
        if key not in self.targets:
            label = name if all(k[0] != name for k in self.targets) else "%s (%s)" % (name, host)
            self.targets[key] = {"name": label, "host": host, "icmp": "skip", "ports": {}, "urls": {}}
            self.order.append(key)
        return self.targets[key]

    def icmp(self, target, mode):
        if ICMP_STRENGTH[mode] >= ICMP_STRENGTH[target["icmp"]]:
            target["icmp"] = mode

    def port(self, target, spec, field):
        if not isinstance(spec, dict):
            spec = {"port": spec}
        _check_keys(spec, PORT_SPEC, field)
        spec = dict(spec)
        if "expected_state" in spec:  # expected's old name (deprecated): the same value, or only one of them
            old = spec.pop("expected_state")
            display.deprecated("%s.expected_state is the old name of expected: write expected" % field,
                               version="1.0.0", collection_name="netcheck.netcheck")
            if spec.get("expected") is not None and old is not None and spec["expected"] != old:
                raise ExpansionError("%s.expected_state: %r differs from expected %r (expected_state is "
                                     "expected's old name: give expected only)" % (field, old, spec["expected"]))
            spec["expected"] = spec.get("expected") if spec.get("expected") is not None else old
        merged = target["ports"].setdefault(int(spec["port"]), {})
        merged.update({k: v for k, v in spec.items() if v is not None})

    def url(self, target, spec):
        merged = target["urls"].setdefault(spec["url"], {})
        merged.update({k: v for k, v in spec.items() if v is not None})

    def as_module_targets(self, layers):
        out = []
        for key in self.order:
            target = self.targets[key]
            entry = {"name": target["name"], "host": target["host"],
                     "icmp": target["icmp"] if "icmp" in layers else "skip",
                     "ports": [target["ports"][p] for p in sorted(target["ports"])] if "tcp" in layers else [],
                     "urls": list(target["urls"].values()) if "http" in layers else []}
            if entry["icmp"] == "skip" and not entry["ports"] and not entry["urls"]:
                continue  # nothing of this target is in the layers asked
            out.append(entry)
        return out


def _hosts_of(spec, groups, field):
    """The inventory names of a spec: its group when named, else its list of hosts."""
    if not spec.get("group") and spec.get("hosts") is not None:
        if not isinstance(spec["hosts"], (list, tuple)):
            raise ExpansionError("%s.hosts: expected a list of inventory names" % field)
        return list(spec["hosts"])
    group = spec.get("group")
    if group not in groups:
        raise ExpansionError("%s.group: no group %r in the inventory" % (field, group))
    return list(groups[group])


def _known_addresses(mesh):
    """mesh.addresses (the role's lookup of every host, once): {address_var: {name: address}}."""
    known = (mesh or {}).get("addresses")
    if not known:
        return {}
    if not isinstance(known, dict) or not isinstance(known.get("address_var"), str) \
            or not isinstance(known.get("addresses"), dict):
        raise ExpansionError("mesh.addresses: expected {address_var: NAME, addresses: {host: address}}")
    return {known["address_var"]: known["addresses"]}


def _address(hostvars, name, address_var, known):
    address = known.get(address_var, {}).get(name)
    return str(address) if address else host_address(hostvars, name, address_var)


def build_targets(source, groups, hostvars, mesh=None, group_targets=None, extra_targets=None,
                  targets=None, include_self=False):
    """The module targets of one source host, and the ports its own listeners are checked on."""
    found = TargetSet()
    limit_ports = set()
    # group specs address their hosts as the mesh does unless they name their own address_var
    default_address_var = (mesh or {}).get("address_var") or "ansible_host"
    if mesh:
        _check_keys(mesh, MESH_SPEC, "mesh")
    known = _known_addresses(mesh)
    if mesh and (mesh.get("hosts") is not None or mesh.get("group")):
        address_var = mesh.get("address_var") or "ansible_host"
        with_self = mesh.get("include_self", include_self)
        icmp = mesh.get("icmp") or "auto"
        if icmp not in ICMP_STRENGTH:
            raise ExpansionError("mesh.icmp: %r is not one of %s" % (icmp, ", ".join(ICMP_STRENGTH)))
        for name in _hosts_of(mesh, groups, "mesh"):
            if name == source and not with_self:
                continue
            host = _address(hostvars, name, address_var, known)
            target = found.get(name, host)
            found.icmp(target, icmp)
            for index, port in enumerate(mesh.get("ports") or []):
                found.port(target, port, "mesh.ports[%d]" % index)
            for index, url in enumerate(mesh.get("urls") or []):
                found.url(target, _url_spec(url, host, "mesh.urls[%d]" % index))
        limit_ports.update(int(p["port"] if isinstance(p, dict) else p) for p in mesh.get("ports") or [])
        limit_ports.update(int(u["port"]) for u in mesh.get("urls") or [])

    for option, given, specs in (("group_targets", group_targets, GROUP_SPECS),
                                 ("extra_targets", extra_targets, EXTRA_TARGET_SPECS)):
        _check_keys(given or {}, {layer: {"type": "list"} for layer in specs}, option)
    for layer in ("icmp", "tcp", "http"):
        for index, spec in enumerate((group_targets or {}).get(layer) or []):
            field = "netcheck_%s_group_targets[%d]" % (layer, index)
            _check_keys(spec, GROUP_SPECS[layer], field)
            address_var = spec.get("address_var") or default_address_var
            with_self = spec.get("include_self", include_self)
            for name in _hosts_of(spec, groups, field):
                if name == source and not with_self:
                    continue
                host = _address(hostvars, name, address_var, known)
                target = found.get(name, host)
                if layer == "icmp":
                    found.icmp(target, "reachable" if spec.get("reachable", True) else "unreachable")
                elif layer == "tcp":
                    found.port(target, {k: v for k, v in spec.items()
                                        if k not in ("group", "address_var", "include_self")}, field)
                else:
                    found.url(target, _url_spec(spec, host, field))
            if layer != "icmp":
                limit_ports.add(int(spec["port"]))

    for layer in ("icmp", "tcp", "http"):
        for index, spec in enumerate((extra_targets or {}).get(layer) or []):
            field = "netcheck_%s_targets[%d]" % (layer, index)
            if layer == "http":
                spec = {"url": spec} if isinstance(spec, str) else spec
                _check_keys(spec, EXTRA_TARGET_SPECS["http"], field)
                spec = dict(spec)
                host = urlsplit(str(spec.get("url"))).hostname
                if not host:
                    raise ExpansionError("%s.url: %r has no host" % (field, spec.get("url")))
                found.url(found.get(host, host), spec)
                continue
            spec = {"host": spec} if isinstance(spec, str) else spec
            _check_keys(spec, EXTRA_TARGET_SPECS[layer], field)
            spec = dict(spec)
            host = str(spec.pop("host"))
            target = found.get(str(spec.get("name") or host), host)
            if layer == "icmp":
                found.icmp(target, "reachable" if spec.get("reachable", True) else "unreachable")
            else:
                spec.pop("name", None)
                found.port(target, spec, field)

    explicit = []
    for index, spec in enumerate(targets or []):
        if not isinstance(spec, dict) or not spec.get("host"):
            raise ExpansionError("netcheck_targets[%d]: needs host, got %r" % (index, spec))
        explicit.append(spec)
    return found, explicit, sorted(limit_ports)


def _url_spec(spec, host, field):
    try:
        url = _http_url(spec.get("scheme", "http"), host, spec["port"], spec.get("path", "/"))
    except ExpansionError as exc:
        raise ExpansionError("%s.%s" % (field, exc))
    entry = {k: v for k, v in spec.items() if k in PORT_URL_SPEC and k not in ("port", "scheme", "path")
             and v is not None}
    entry["url"] = url
    return entry


def module_targets(found, explicit, layers):
    return found.as_module_targets(layers) + explicit


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()  # checked by the module (after expansion)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        controller = {key: args.pop(key, None) for key in CONTROLLER_OPTIONS}
        layers = controller["layers"]
        layers = list(ALL_LAYERS) if layers is None else list(layers)
        bad = [layer for layer in layers if layer not in ALL_LAYERS]
        if bad:
            raise AnsibleActionFail("layers: %s not among %s" % (", ".join(bad), ", ".join(ALL_LAYERS)))
        try:
            found, explicit, limit_ports = build_targets(
                task_vars.get("inventory_hostname"), task_vars.get("groups", {}), task_vars.get("hostvars", {}),
                controller["mesh"], controller["group_targets"], controller["extra_targets"], args.get("targets"))
        except (ExpansionError, ValueError, TypeError, KeyError) as exc:
            raise AnsibleActionFail(str(exc))
        args["targets"] = module_targets(found, explicit, layers)
        if "limits" in layers:
            args.setdefault("limits", True)
            if not args.get("limit_ports"):
                args["limit_ports"] = limit_ports
        else:
            args["limits"] = False
        if not args["targets"]:
            if args.get("limits"):
                limits = self._execute_module(module_name="netcheck.netcheck.conn_limits",
                                              module_args={"ports": args.get("limit_ports") or []},
                                              task_vars=task_vars)
                if limits.get("failed"):
                    result.update(limits)
                    return result
                limits.pop("changed", None)
                limits.pop("invocation", None)
                limits.pop("_ansible_parsed", None)
                result.update(results=[], summary={"total": 0, "ok": 0, "failed": 0, "by_code": {}},
                              limits=limits, arp_cache=None, path=None, elapsed_ms=None, changed=False,
                              msg="no targets in the layers asked; limits only")
                return result
            result.update(skipped=True, results=[], msg="no targets in the layers asked (%s)" % ", ".join(layers))
            return result
        result.update(self._execute_module(module_name="netcheck.netcheck.net_diagnose", module_args=args,
                                           task_vars=task_vars))
        if controller["fail_on_mismatch"] is not None and not boolean(controller["fail_on_mismatch"], strict=False):
            result = source_outcome(result)
        if controller["run_dir"] and result.get("results") is not None:
            result = compact(result, write_answer(controller["run_dir"], task_vars.get("inventory_hostname"), result))
        return result


def answer_path(run_dir, source):
    """Where a source's full answer goes: <run_dir>/sources/<source>.json (the name made file-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in str(source)).lstrip(".") or "_"
    return os.path.join(run_dir, "sources", safe + ".json")


def write_answer(run_dir, source, result):
    """The module's whole answer, as JSON, written atomically on the controller; returns its path."""
    path = answer_path(run_dir, source)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".answer.", dir=os.path.dirname(path))
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump({k: v for k, v in result.items() if not k.startswith("_ansible")}, stream,
                  separators=(",", ":"), default=str)
    os.replace(temporary, path)
    return path


# what the task result keeps of each pair: enough for -v, register and the capture's on_failure
COMPACT_PAIR_KEYS = ("target", "address", "ok")


def compact(result, path):
    """The task result Ansible handles: per pair its target, address, ok, code and layer; the rest is
    in ``answer_file`` (Ansible deep-copies, strips and prints every result: N x N pairs of evidence
    made -v unreadable and the run slower)."""
    pairs = []
    for pair in result.get("results") or []:
        entry = {key: pair.get(key) for key in COMPACT_PAIR_KEYS}
        verdict = pair.get("verdict") or {}
        entry.update(code=verdict.get("code"), layer=verdict.get("first_failing_layer"))
        pairs.append(entry)
    kept = {key: value for key, value in result.items()
            if key not in ("results", "limits", "arp_cache", "invocation")}
    kept.update(results=pairs, answer_file=path)
    return kept


def source_outcome(result):
    """The task fails only when this source could not check: the module refused its input or could not
    start (no Python, ...). Pairs that missed their expectation are the report's to judge: the
    module's failure for them becomes ``pairs_failed``, so the play goes on to the report without an
    error per source (and ``ignore_errors`` in the role never hides a source that could not run)."""
    if result.get("failed") and result.get("results"):
        result["failed"] = False
        result["pairs_failed"] = (result.get("summary") or {}).get("failed", 0)
    elif result.get("failed"):
        result["could_not_run"] = True
    return result
