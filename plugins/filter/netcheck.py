"""Controller-side filters of the netcheck role (the targets themselves are expanded by the
net_diagnose action plugin, plugins/action/net_diagnose.py)."""

from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import format_hostport
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.inventory import mesh_addresses


def _http_url(spec, host, field="netcheck_http_group_targets"):
    """``scheme://host:port/path`` for an http group spec (IPv6 literals in brackets)."""
    scheme = spec.get("scheme") or "http"
    if scheme not in ("http", "https"):
        raise ValueError("%s.scheme: %r is not http or https" % (field, scheme))
    path = str(spec.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    return "%s://%s%s" % (scheme, format_hostport(host, spec["port"]), path)


def port_target(port, host, name=None):
    """A port_check target for ``port`` on ``host`` (for maps over a list of ports)."""
    return {"host": str(host), "port": int(port), "name": name}


def port_url(port, host, scheme="http", path="/"):
    """An http_check URL entry for ``port`` on ``host``."""
    return {"url": _http_url({"port": port, "scheme": scheme, "path": path}, str(host))}


def checks_failed(sources, hostvars, register="netcheck_diagnose"):
    """Whether a check of any source failed: its task failed or could not reach the host, or one
    of its results missed its expectation (a source with nothing registered failed nothing)."""
    for source in sources:
        result = hostvars[source].get(register) or {}
        if result.get("failed") or result.get("unreachable"):
            return True
        if any(not item.get("ok") for item in result.get("results") or []):
            return True
    return False


class FilterModule(object):
    def filters(self):
        return {
            "netcheck_checks_failed": checks_failed,
            "netcheck_mesh_addresses": mesh_addresses,
            "netcheck_target": port_target,
            "netcheck_http_url": port_url,
        }
