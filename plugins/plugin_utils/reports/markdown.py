"""``summary.md``: the outcome, the sources x targets matrix and the failing pairs with hints.

Meant for a CI job summary (GitHub's ``$GITHUB_STEP_SUMMARY`` takes at most 1 MiB per step), so
it stays under ``max_bytes``: failing pairs that do not fit are counted in a closing note, and a
matrix too wide to read becomes a per-source table.
"""

from __future__ import annotations

import html
import os
import re

from .model import failed_checks, run_failed, sources_not_run, warned_checks, write_atomic

MAX_BYTES = 1024 * 1024 - 4096
MATRIX_MAX_TARGETS = 40

# first failing layer -> matrix symbol (the legend prints the same table)
SYMBOLS = (("none", "\U0001F7E9", "OK"), ("link", "\U0001F7EA", "link (ARP/NDP, route)"),
           ("network", "\U0001F7E5", "network (ICMP, DNS)"), ("transport", "\U0001F7E7", "transport (TCP port)"),
           ("application", "\U0001F7E8", "application (HTTP)"))
NOT_RUN = "\u2B1B"
NO_PAIR = "\u00B7"
UNKNOWN = "\u2753"  # failing, but at no known layer (e.g. NOT_CHECKED)
KNOWN = "\u1D4F"  # superscript k after the symbol
WARN = "\u26A0"  # an OK pair with a warning (ICMP loss or latency past warn)


# Markdown's punctuation that could start markup (emphasis, code, links, images, table cells,
# strikethrough); an underscore inside a word (PORT_FILTERED) never does, so it stays as it is
_MARKUP = re.compile(r"([\\`*\[\]|~<>]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _cell(text):
    """Text from the network or the inventory (banners, header values, host names) made inert: every
    Markdown punctuation backslash-escaped (``|`` cannot end a table cell), ``<`` ``>`` ``&`` as
    entities (no raw HTML tag survives: GitHub renders job summaries), on one line."""
    text = " ".join(str(text).split())
    escaped = _MARKUP.sub(lambda m: m.group(1) if m.group(1) in "<>" else "\\" + m.group(1), text)
    return html.escape(escaped, quote=False)


def _symbol(pair):
    if pair.get("ok"):
        return WARN if warned_checks(pair) else SYMBOLS[0][1]
    layer = (pair.get("verdict") or {}).get("first_failing_layer")
    failing = dict((key, sym) for key, sym, _ in SYMBOLS[1:])
    return failing.get(layer, UNKNOWN) + (KNOWN if pair.get("baseline") == "known" else "")


def _matrix(run):
    names = [t["name"] for t in run.get("targets") or []]
    pairs = {(p["source"], p["target"]): p for p in run.get("pairs") or []}
    not_run = {s["name"] for s in sources_not_run(run)}
    lines = ["| source \\ target | %s |" % " | ".join(_cell(n) for n in names),
             "|---|%s" % "".join(":-:|" for _ in names)]
    for source in run.get("sources") or []:
        row = []
        for target in names:
            if source["name"] in not_run:
                row.append(NOT_RUN)
            elif (source["name"], target) in pairs:
                row.append(_symbol(pairs[(source["name"], target)]))
            else:
                row.append(NO_PAIR)
        lines.append("| **%s** | %s |" % (_cell(source["name"]), " | ".join(row)))
    legend = ", ".join("%s %s" % (sym, words) for _, sym, words in SYMBOLS)
    lines += ["", "%s; %s warning (passes); %s failed, layer unknown; %s source could not run; %s no check; "
                  "%s known failure (baseline)." % (legend, WARN, UNKNOWN, NOT_RUN, NO_PAIR, KNOWN)]
    return lines


def _per_source(run):
    lines = ["| source | pairs | ok | failed | known | most common failure |", "|---|--:|--:|--:|--:|---|"]
    by_source = {}
    for pair in run.get("pairs") or []:
        by_source.setdefault(pair["source"], []).append(pair)
    for source in run.get("sources") or []:
        pairs = by_source.get(source["name"], [])
        codes = {}
        for pair in pairs:
            if not pair.get("ok"):
                code = pair["verdict"]["code"]
                codes[code] = codes.get(code, 0) + 1
        common = max(sorted(codes), key=codes.get) if codes else ("could not run" if source.get("status") != "ran" else "-")
        known = sum(1 for p in pairs if not p.get("ok") and p.get("baseline") == "known")
        failed = sum(1 for p in pairs if not p.get("ok"))
        lines.append("| %s | %d | %d | %d | %d | %s |" % (_cell(source["name"]), len(pairs), len(pairs) - failed,
                                                          failed - known, known, _cell(common)))
    return lines


def render_markdown(run, max_bytes=MAX_BYTES, title="netcheck report"):
    pairs = run.get("pairs") or []
    failing = [p for p in pairs if not p.get("ok")]
    not_run = sources_not_run(run)
    known = [p for p in failing if p.get("baseline") == "known"]
    fixed = [p for p in pairs if p.get("baseline") == "fixed"]
    meta = run.get("meta") or {}
    status = run.get("status") or ("failed" if run_failed(run) else "passed")
    verdict = {"passed": "passed", "failed": "FAILED", "not_run": "NOTHING CHECKED",
               "config_error": "CONFIGURATION ERROR"}.get(status, status)
    span = " to ".join(str(t) for t in (meta.get("started"), meta.get("finished")) if t)
    facts = [("Run %s", span), ("netcheck %s", meta.get("netcheck_version")),
             ("ansible-core %s", meta.get("ansible_core"))]
    about = ", ".join(form % value for form, value in facts if value)
    head = ["## %s: %s" % (_cell(title), verdict), "",
            "%d pairs: %d ok, %d failed (%d known from the baseline), %d of %d sources could not run.%s" % (
                len(pairs), len(pairs) - len(failing), len(failing), len(known), len(not_run),
                len(run.get("sources") or []), " " + _cell(about) + "." if about else ""), ""]
    if run.get("problems"):
        head += ["### %s" % ("Configuration problems (nothing was checked)" if status == "config_error"
                             else "Why nothing was checked"), ""]
        head += ["- %s" % _cell(problem) for problem in run["problems"]]
        head.append("")
    coverage = run.get("coverage") or {}
    if coverage.get("missing") and pairs:
        head += ["%d of the inventory's %d hosts were checked as targets (%s); not checked: %s." % (
            coverage["targets"], coverage["inventory_hosts"], _cell(coverage.get("why") or ""),
            ", ".join(_cell(name) for name in coverage["missing"][:20])
            + (" and %d more" % (len(coverage["missing"]) - 20) if len(coverage["missing"]) > 20 else "")), ""]
    if not_run:
        head += ["### Sources that could not run", ""]
        head += ["- **%s** (%s): %s" % (_cell(s["name"]), s.get("status"), _cell(s.get("error") or "")) for s in not_run]
        head.append("")
    head += ["### Matrix (rows: sources, columns: targets)", ""]
    if len(run.get("targets") or []) <= MATRIX_MAX_TARGETS:
        head += _matrix(run)
    else:
        head += ["%d targets are too many columns to read here: per source below, the matrix is in report.html."
                 % len(run.get("targets") or []), ""] + _per_source(run)
    head.append("")
    rows = []
    if failing:
        rows += ["### Failing pairs", "", "| source | target | code | layer | hint | baseline |", "|---|---|---|---|---|---|"]
        order = sorted(failing, key=lambda p: (p.get("baseline") == "known", p["source"], p["target"]))
        for pair in order:
            verdict_of = pair.get("verdict") or {}
            evidence = "; ".join(verdict_of.get("evidence") or [])
            hint = verdict_of.get("hint") or ""
            # every failing check with its own code: one failure never hides another
            code = verdict_of.get("code")
            failing_checks = [c for c in failed_checks(pair) if c.verdict]
            if failing_checks:
                code = ", ".join("%s %s" % (c.verdict["check"], c.verdict["code"]) for c in failing_checks)
            rows.append("| %s | %s | %s | %s | %s | %s |" % (
                _cell(pair["source"]), _cell(pair["target"]), _cell(code),
                _cell(verdict_of.get("first_failing_layer")), _cell(hint + (" (%s)" % evidence if evidence else "")),
                _cell(pair.get("baseline") or "new")))
    warned = [p for p in pairs if p.get("ok") and warned_checks(p)]
    if warned:
        rows += ["", "### Warnings (passing, degraded)", "", "| source | target | check | code | evidence |",
                 "|---|---|---|---|---|"]
        for pair in warned:
            for check in warned_checks(pair):
                rows.append("| %s | %s | %s | %s | %s |" % (
                    _cell(pair["source"]), _cell(pair["target"]), _cell(check.verdict["check"]),
                    _cell(check.verdict["code"]), _cell("; ".join(check.verdict.get("evidence") or []))))
    if fixed:
        rows += ["", "### Fixed (in the baseline, now passing: remove them from it)", ""]
        rows += ["- %s -> %s" % (_cell(p["source"]), _cell(p["target"])) for p in fixed]
    comparison = run.get("comparison")
    if comparison:
        rows += ["", "### Changes since %s" % _cell(comparison.get("started") or comparison.get("file") or "the last run"),
                 "", "| change | source | target | was | now |", "|---|---|---|---|---|"]
        for kind, title in (("new_failures", "new failure"), ("fixed", "fixed"), ("changed", "code changed")):
            rows += ["| %s | %s | %s | %s | %s |" % (title, _cell(e["source"]), _cell(e["target"]),
                                                     _cell(e.get("was") or "-"), _cell(e.get("code") or "-"))
                     for e in comparison[kind]]
        rows += ["| latency | %s | %s | %.3g ms | %.3g ms |" % (_cell(e["source"]), _cell(e["target"]), e["was_ms"],
                                                                e["now_ms"]) for e in comparison["latency"]]
    return _within(head + rows, max_bytes)


def _within(lines, max_bytes):
    """The lines joined, cut with a closing note where they would pass ``max_bytes``."""
    budget = max_bytes - 300
    kept = []
    for index, line in enumerate(lines):
        size = len(line.encode("utf-8")) + 1
        if size > budget:
            kept += ["", "_Truncated to stay under %d bytes: %d more lines not shown; every pair is in "
                         "report.json and report.html._" % (max_bytes, len(lines) - index)]
            break
        budget -= size
        kept.append(line)
    return "\n".join(kept) + "\n"


def write_markdown(run, path, max_bytes=MAX_BYTES, step_summary=None, title="netcheck report"):
    """Write summary.md; append it to ``step_summary`` (GitHub's $GITHUB_STEP_SUMMARY) when given."""
    text = render_markdown(run, max_bytes=max_bytes, title=title)
    write_atomic(path, text)
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as stream:
            stream.write(text)
    return path


def github_step_summary():
    return os.environ.get("GITHUB_STEP_SUMMARY") or None
