"""Controller-side filters of the netcheck role: target expansion and summaries."""

from __future__ import annotations

# port_check keys a group spec may carry through to every target it expands to
_TARGET_KEYS = ("port", "timeout", "send", "expect", "expected_state", "family")


def expand_group_targets(specs, groups, hostvars, source=None, include_self=False):
    """Turn ``{group: G, port: P, ...}`` specs into one port_check target per host of G.

    Each target is addressed by the host variable named in the spec's
    ``address_var`` (default ``ansible_host``, falling back to the inventory
    name), and labelled with the inventory name. The source host skips itself
    unless ``include_self`` (or the spec's own ``include_self``) is true.
    """
    targets = []
    for index, spec in enumerate(specs or []):
        if not isinstance(spec, dict) or "group" not in spec or "port" not in spec:
            raise ValueError("netcheck_tcp_group_targets[%d]: needs group and port, got %r" % (index, spec))
        if spec["group"] not in groups:
            raise ValueError("netcheck_tcp_group_targets[%d].group: no group %r in the inventory"
                             % (index, spec["group"]))
        address_var = spec.get("address_var", "ansible_host")
        with_self = spec.get("include_self", include_self)
        for name in groups[spec["group"]]:
            if name == source and not with_self:
                continue
            target = {key: spec[key] for key in _TARGET_KEYS if spec.get(key) is not None}
            target["host"] = str(hostvars[name].get(address_var) or name)
            target["name"] = name
            targets.append(target)
    return targets


def _ms(value):
    return "-" if value is None else "%.1f ms" % value


def tcp_summary(sources, hostvars, register="netcheck_tcp"):
    """One line per (source host, target): who checked what, the state, the time to verdict."""
    lines = []
    for source in sources:
        outcome = hostvars[source].get(register) or {}
        if outcome.get("skipped"):
            lines.append("%s: no TCP targets" % source)
            continue
        if "results" not in outcome:
            lines.append("%s: TCP check did not run: %s" % (source, outcome.get("msg", "unknown error")))
            continue
        if not outcome["results"]:
            lines.append("%s: TCP check failed: %s" % (source, outcome.get("msg")))
        for result in outcome["results"]:
            detail = result.get("detail", {})
            label = "%s (%s)" % (detail["name"], result["target"]) if detail.get("name") else result["target"]
            line = "%s -> %-32s %-11s %-4s %9s" % (
                source, label, result["state"], "ok" if result["ok"] else "FAIL",
                _ms(result.get("timings", {}).get("total_ms")))
            if not result["ok"] and result.get("error"):
                line += "  " + result["error"]
            elif detail.get("banner"):
                line += "  " + detail["banner"].strip().splitlines()[0][:24]
            lines.append(line)
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "netcheck_group_targets": expand_group_targets,
            "netcheck_tcp_summary": tcp_summary,
        }
