"""Controller-side filters of the netcheck role: target expansion and summaries."""

from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import format_hostport
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import check_keys
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.inventory import mesh_addresses
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.specs import GROUP_SPECS, TARGET_SPECS


def _http_url(spec, host, field="netcheck_http_group_targets"):
    """``scheme://host:port/path`` for an http group spec (IPv6 literals in brackets)."""
    scheme = spec.get("scheme") or "http"
    if scheme not in ("http", "https"):
        raise ValueError("%s.scheme: %r is not http or https" % (field, scheme))
    path = str(spec.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    return "%s://%s%s" % (scheme, format_hostport(host, spec["port"]), path)


def expand_group_targets(specs, groups, hostvars, source=None, include_self=False, layer="tcp"):
    """Turn ``{group: G, ...}`` specs into one module target per host of G.

    Each target is addressed by the host variable named in the spec's
    ``address_var`` (default ``ansible_host``, falling back to the inventory
    name), and labelled with the inventory name. The source host skips itself
    unless ``include_self`` (or the spec's own ``include_self``) is true.
    """
    if layer not in GROUP_SPECS:
        raise ValueError("netcheck_group_targets: layer %r is not one of %s" % (layer, ", ".join(GROUP_SPECS)))
    field = "netcheck_%s_group_targets" % layer
    passed_on = [key for key in GROUP_SPECS[layer] if key in TARGET_SPECS[layer]]
    targets = []
    for index, spec in enumerate(specs or []):
        where = "%s[%d]" % (field, index)
        check_keys(spec, GROUP_SPECS[layer], where)
        if spec["group"] not in groups:
            raise ValueError("%s.group: no group %r in the inventory" % (where, spec["group"]))
        address_var = spec.get("address_var") or "ansible_host"
        with_self = include_self if spec.get("include_self") is None else spec["include_self"]
        for name in groups[spec["group"]]:
            if name == source and not with_self:
                continue
            target = {key: spec[key] for key in passed_on if spec.get(key) is not None}
            if layer == "tcp" and spec.get("expected") is not None:
                # the netcheck role's (net_diagnose's) spelling of port_check's expected_state
                target.setdefault("expected_state", spec["expected"])
            host = str(hostvars[name].get(address_var) or name)
            if layer == "http":
                target["url"] = _http_url(spec, host, where)
            else:
                target["host"] = host
            target["name"] = name
            targets.append(target)
    return targets


def port_target(port, host, name=None):
    """A port_check target for ``port`` on ``host`` (for maps over a list of ports)."""
    return {"host": str(host), "port": int(port), "name": name}


def port_url(port, host, scheme="http", path="/"):
    """An http_check URL entry for ``port`` on ``host``."""
    return {"url": _http_url({"port": port, "scheme": scheme, "path": path}, str(host))}


def _ms(value):
    return "-" if value is None else "%.1f ms" % value


def _label(result):
    name = result.get("detail", {}).get("name")
    return "%s (%s)" % (name, result["target"]) if name else result["target"]


def _summary(sources, hostvars, register, layer, line):
    lines = []
    for source in sources:
        outcome = hostvars[source].get(register) or {}
        if outcome.get("skipped"):
            lines.append("%s: no %s targets" % (source, layer))
            continue
        if not outcome.get("results"):
            lines.append("%s: %s check failed: %s" % (source, layer, outcome.get("msg", "it did not run")))
            continue
        for result in outcome["results"]:
            text = "%s -> %s" % (source, line(result))
            if not result["ok"] and result.get("error"):
                text += "  " + result["error"]
            lines.append(text)
    return lines


def _tcp_line(result):
    detail = result.get("detail", {})
    text = "%-32s %-11s %-4s %9s" % (_label(result), result["state"], "ok" if result["ok"] else "FAIL",
                                     _ms(result.get("timings", {}).get("total_ms")))
    banner = (detail.get("banner") or "").strip()
    if result["ok"] and banner:
        text += "  " + banner.splitlines()[0][:24]
    return text


def _icmp_line(result):
    detail = result.get("detail", {})
    rtt = "-" if detail.get("rtt_avg_ms") is None else "%.2f/%.2f/%.2f ms" % (
        detail["rtt_min_ms"], detail["rtt_avg_ms"], detail["rtt_max_ms"])
    text = "%-32s %-11s %-4s %d/%d %5s%% loss  rtt %s  ttl %s" % (
        _label(result), result["state"], "ok" if result["ok"] else "FAIL", detail.get("received", 0),
        detail.get("sent", 0), "%g" % detail.get("loss_pct", 100.0), rtt, detail.get("ttl") or "-")
    neighbour = detail.get("neighbour") or {}
    route = detail.get("route") or {}
    if neighbour.get("state"):
        hop = "gw %s" % neighbour.get("ip") if neighbour.get("via_gateway") else "on-link"
        text += "  %s %s %s %s" % (route.get("dev") or "-", hop, neighbour.get("mac") or "-", neighbour["state"])
    return text


# The summaries are one multi-line string: the YAML callback prints it as a block,
# line by line, where a list of long strings would be folded at 80 columns.

def _http_line(result):
    detail = result.get("detail", {})
    status = "%s %s" % (detail.get("status"), detail.get("reason")) if detail.get("status") else result["state"]
    text = "%-40s %-15s %-4s ttfb %9s  total %9s" % (
        _label(result), status, "ok" if result["ok"] else "FAIL",
        _ms(result.get("timings", {}).get("ttfb_ms")), _ms(result.get("timings", {}).get("total_ms")))
    if detail.get("redirects"):
        text += "  %d redirect(s)" % len(detail["redirects"])
    tls = detail.get("tls") or {}
    if tls.get("version"):
        text += "  %s %s, cert %s days left" % (tls["version"], "verified" if tls.get("verified") else "UNVERIFIED",
                                                tls.get("days_left"))
    return text


def tcp_summary(sources, hostvars, register="netcheck_tcp"):
    """One line per (source host, TCP target): the state, ok/FAIL, the time to verdict."""
    return "\n".join(_summary(sources, hostvars, register, "TCP", _tcp_line))


def icmp_summary(sources, hostvars, register="netcheck_icmp"):
    """One line per (source host, ICMP target): status, replies, loss, RTTs, TTL, next hop and its MAC."""
    return "\n".join(_summary(sources, hostvars, register, "ICMP", _icmp_line))


def http_summary(sources, hostvars, register="netcheck_http"):
    """One line per (source host, URL): status, ok/FAIL, time to first byte, total, redirects, TLS."""
    return "\n".join(_summary(sources, hostvars, register, "HTTP", _http_line))


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
            "netcheck_group_targets": expand_group_targets,
            "netcheck_tcp_summary": tcp_summary,
            "netcheck_icmp_summary": icmp_summary,
            "netcheck_http_summary": http_summary,
            "netcheck_checks_failed": checks_failed,
            "netcheck_mesh_addresses": mesh_addresses,
            "netcheck_target": port_target,
            "netcheck_http_url": port_url,
        }
