"""``report.html``: one self-contained page (inline CSS, SVG and a little plain JavaScript).

Python computes a view model (every cell's state per layer view, its latency shade, the
evidence of every pair) and jinja2 renders ``templates/report.html.j2`` with it; the page's
script only switches views, opens group drill-downs and shows the evidence of a clicked cell.

Cell states: ``ok``, a failing layer (``link``, ``network``, ``transport``, ``application``),
``other`` (failing without a known layer), ``notrun`` (the source could not run), ``none`` (no
check of that layer for the pair), ``nopair`` (the source does not check that target).
The page reads a test hook from its URL fragment, e.g. ``report.html#layer=tcp&click=a,b``
(see docs/reports.md).
"""

from __future__ import annotations

import json
import math
import os

import jinja2

from .model import (KIND_LAYER, LAYERS, check_facts, check_ok, check_severity, checks, failed_checks, group_of,
                    icmp_detail, latency_ms, run_failed, sources_not_run, total_ms, warned_checks, was_run,
                    write_atomic)

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
GROUP_THRESHOLD = 64
VIEWS = ("all", "icmp", "tcp", "http")
# most severe first: breaks ties between a group's failing layers
SEVERITY = ("notrun", "link", "network", "transport", "application", "other", "warn", "ok", "none", "nopair")
WORST_SHOWN = 25


def _state_all(pair):
    if pair.get("ok"):
        return "warn" if warned_checks(pair) else "ok"
    layer = (pair.get("verdict") or {}).get("first_failing_layer")
    return layer if layer in LAYERS else "other"


def _state_kind(pair, kind):
    found = [c for c in checks(pair) if c.kind == kind and was_run(c.result)]
    if not found:
        return "none"
    if all(check_ok(c) for c in found):
        return "warn" if any(check_severity(c) == "warn" for c in found) else "ok"
    return KIND_LAYER[kind]


def _shade(value, low, high):
    """An OK cell's green: light for the fastest pair of the run, dark for the slowest (log scale)."""
    if value is None or high <= low:
        return "hsl(140,50%,62%)"
    position = (math.log(max(value, 1e-3)) - math.log(max(low, 1e-3))) / (math.log(max(high, 1e-3)) - math.log(max(low, 1e-3)))
    position = min(max(position, 0.0), 1.0)
    return "hsl(140,%d%%,%d%%)" % (45 + 20 * position, 78 - 44 * position)


def _evidence(pair, asymmetric):
    verdict = pair.get("verdict") or {}
    rows = []
    for check in checks(pair):
        own = check.verdict or {}
        facts = check_facts(check)
        if own.get("code") not in (None, "OK") and own.get("evidence"):
            facts = "; ".join(own["evidence"])
        rows.append([check.layer, check.label, check.result.get("state"), check_ok(check),
                     total_ms(check.result), facts, own.get("code"), check_severity(check)])
    return {"s": pair["source"], "t": pair["target"], "a": pair.get("address"), "ok": bool(pair.get("ok")),
            "code": verdict.get("code"), "layer": verdict.get("first_failing_layer"), "hint": verdict.get("hint"),
            "ev": verdict.get("evidence") or [], "notes": verdict.get("notes") or [], "checks": rows,
            "tm": pair.get("timings"), "exp": pair.get("expected"), "cap": pair.get("capture"),
            "expl": pair.get("explain"), "bl": pair.get("baseline"), "blr": pair.get("baseline_reason"),
            "asym": asymmetric}


def _worst_key(pair):
    loss = icmp_detail(pair).get("loss_pct") or 0.0
    latency = latency_ms(pair) or 0.0
    return (-int(not pair.get("ok")), -len(failed_checks(pair)), -loss, -latency)


def view_model(run, group_threshold=GROUP_THRESHOLD, title="netcheck report"):
    pairs = run.get("pairs") or []
    sources = run.get("sources") or []
    target_names = [t["name"] for t in run.get("targets") or []]
    for pair in pairs:
        if pair["target"] not in target_names:
            target_names.append(pair["target"])
    not_run = {s["name"]: s for s in sources_not_run(run)}
    asym = set()
    for a, b, *_ in run.get("asymmetric") or []:
        asym.add((a, b))
        asym.add((b, a))
    ranges = {}
    for view in VIEWS:
        values = [latency_ms(p, view) for p in pairs if p.get("ok") or view != "all"]
        values = [v for v in values if v is not None and v > 0]
        ranges[view] = (min(values), max(values)) if values else (0.0, 0.0)
    by_pair = {}
    evidence = []
    for index, pair in enumerate(pairs):
        key = (pair["source"], pair["target"])
        cell = {"i": index, "s": pair["source"], "t": pair["target"], "asym": key in asym,
                "bl": pair.get("baseline"), "states": {"all": _state_all(pair)}, "ok": {}}
        for view in VIEWS[1:]:
            cell["states"][view] = _state_kind(pair, view)
        for view in VIEWS:
            if cell["states"][view] == "ok":
                cell["ok"][view] = _shade(latency_ms(pair, view), *ranges[view])
        verdict = pair.get("verdict") or {}
        latency = latency_ms(pair)
        failing = len(failed_checks(pair))
        warned = warned_checks(pair)
        code = verdict.get("code") or ("OK" if pair.get("ok") else "?")
        hop = verdict.get("hop") or {}
        if hop.get("index") is not None:  # where on the path the flow died (docs/path.md)
            code += " at hop %s (%s)" % (hop["index"], hop.get("address") or "no answer")
        if failing > 1:
            code += " and %d more failing checks" % (failing - 1)
        elif pair.get("ok") and warned:
            code = "warning %s" % warned[0].verdict.get("code")
        cell["title"] = "%s \u2192 %s: %s%s%s" % (
            pair["source"], pair["target"], code,
            " (%s ms)" % ("%.3g" % latency) if latency is not None else "",
            "; known failure" if pair.get("baseline") == "known" else "")
        by_pair[key] = cell
        evidence.append(_evidence(pair, key in asym))

    def cell_of(source, target):
        if source in not_run:
            return {"s": source, "t": target, "i": -1, "asym": False, "bl": None, "ok": {},
                    "states": {view: "notrun" for view in VIEWS},
                    "title": "%s could not run: %s" % (source, not_run[source].get("error") or "")}
        return by_pair.get((source, target)) or {
            "s": source, "t": target, "i": -1, "asym": False, "bl": None, "ok": {},
            "states": {view: "nopair" for view in VIEWS}, "title": "%s does not check %s" % (source, target)}

    source_names = [s["name"] for s in sources]
    rows = [{"name": s["name"], "status": s.get("status"), "cells": [cell_of(s["name"], t) for t in target_names]}
            for s in sources]
    status = {s["name"]: s.get("status") for s in sources}
    grouped = len(sources) > group_threshold
    groups = None
    if grouped:
        membership = group_of(run)
        source_groups = _ordered_groups(source_names, membership)
        target_groups = _ordered_groups(target_names, membership)
        groups = {"sources": source_groups, "targets": target_groups, "rows": []}
        for gi, (sgroup, smembers) in enumerate(source_groups):
            group_row = {"name": sgroup, "size": len(smembers), "cells": []}
            for gj, (tgroup, tmembers) in enumerate(target_groups):
                members = [cell_of(s, t) for s in smembers for t in tmembers]
                group_row["cells"].append(_group_cell(gi, gj, sgroup, tgroup, members, smembers, tmembers, cell_of, status))
            groups["rows"].append(group_row)
    ranked = sorted(((index, p) for index, p in enumerate(pairs) if not p.get("ok") or latency_ms(p) is not None),
                    key=lambda item: _worst_key(item[1]))[:WORST_SHOWN]
    worst_rows = []
    for index, pair in ranked:
        verdict = pair.get("verdict") or {}
        failed = failed_checks(pair)
        worst_rows.append({"i": index, "s": pair["source"], "t": pair["target"],
                           "code": verdict.get("code") or "?", "state": _state_all(pair),
                           "failed": len(failed), "checks": len(checks(pair)),
                           "loss": icmp_detail(pair).get("loss_pct"), "latency": latency_ms(pair),
                           "hint": verdict.get("hint") if not pair.get("ok") else "", "bl": pair.get("baseline")})
    totals = run.get("totals") or {}
    known = sum(1 for p in pairs if not p.get("ok") and p.get("baseline") == "known")
    return {"title": title, "meta": run.get("meta") or {}, "totals": totals,
            "counts": {"pairs": len(pairs), "ok": sum(1 for p in pairs if p.get("ok")),
                       "failed": sum(1 for p in pairs if not p.get("ok")), "known": known,
                       "fixed": sum(1 for p in pairs if p.get("baseline") == "fixed"),
                       "sources": len(sources), "not_run": len(not_run)},
            "by_code": sorted((totals.get("by_code") or {}).items(), key=lambda kv: (kv[0] != "OK", -kv[1])),
            "failed_run": run_failed(run), "not_run": list(not_run.values()),
            "targets": target_names, "rows": rows, "grouped": grouped, "groups": groups,
            "worst": worst_rows, "ranges": ranges, "views": VIEWS,
            "asymmetric": run.get("asymmetric_checks") or [[a, b, None] for a, b, *_ in run.get("asymmetric") or []],
            "data": {"pairs": evidence, "ranges": ranges,
                     "notrun": {name: s.get("error") for name, s in not_run.items()}}}


def _ordered_groups(names, membership):
    order = []
    members = {}
    for name in names:
        group = membership.get(name, name)
        if group not in members:
            members[group] = []
            order.append(group)
        members[group].append(name)
    return [(group, members[group]) for group in order]


def _group_cell(gi, gj, sgroup, tgroup, members, smembers, tmembers, cell_of, status):
    states = {view: _group_state([m["states"][view] for m in members]) for view in VIEWS}
    real = [m for m in members if m["i"] >= 0]
    failed = sum(1 for m in real if m["states"]["all"] != "ok")
    not_run = sum(1 for m in members if m["states"]["all"] == "notrun")
    rows = [{"name": s, "status": status.get(s), "cells": [cell_of(s, t) for t in tmembers]} for s in smembers]
    return {"id": "%d-%d" % (gi, gj), "s": sgroup, "t": tgroup, "states": states, "failed": failed,
            "total": len(real), "targets": tmembers, "rows": rows,
            "notrun": not_run > 0,
            "title": "%s \u2192 %s: %d of %d pairs failing%s" % (
                sgroup, tgroup, failed, len(real), "; some sources could not run" if not_run else "")}


def _group_state(present):
    """A group cell's state: its most common failing layer (a few bad pairs among many must not
    hide which layer fails), else "notrun" if a member source could not run, else ok/none."""
    counts = {}
    for state in present:
        counts[state] = counts.get(state, 0) + 1
    failing = [state for state in counts if state in LAYERS or state == "other"]
    if failing:
        return max(failing, key=lambda state: (counts[state], -SEVERITY.index(state)))
    for state in ("notrun", "warn", "ok", "none"):
        if state in counts:
            return state
    return "nopair"


def _json_for_script(data):
    # Inside <script>, "</script>" or "<!--" in a host name or a hint must not end the element.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(run, group_threshold=GROUP_THRESHOLD, title="netcheck report"):
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    template = environment.get_template("report.html.j2")
    model = view_model(run, group_threshold=group_threshold, title=title)
    return template.render(model=model, data_json=_json_for_script(model["data"]), layers=LAYERS)


def write_html(run, path, group_threshold=GROUP_THRESHOLD, title="netcheck report"):
    return write_atomic(path, render_html(run, group_threshold=group_threshold, title=title))
