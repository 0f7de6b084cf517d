"""``junit.xml``: one testcase per source -> target -> check, one testsuite per source.

Written with ElementTree. Choices made for the CI tools that read it:
- ``classname`` is ``netcheck.<source>`` with the source's dots turned into underscores, because
  Jenkins and GitLab split a classname at its dots into package/class: ``netcheck.10_0_0_5`` is
  one group per source host, ``netcheck.10.0.0.5`` would be four nested ones.
- A failure is the check's own: its ``type`` is the check's code (``PORT_CLOSED`` for tcp/5432
  even when the pair's code is ``PORT_OPEN`` from tcp/22), its ``message`` the check's hint, and
  the body starts with the hint again (some GitLab versions show only the body), then the
  check's own facts and evidence, then the pair's verdict as context. A check at warning
  severity passes with its warning in ``system-out``.
- A source that could not run is one ``<error>`` testcase; a check that was not run (the
  verdict stopped lower down) is ``<skipped>`` with the reason; a failure listed in the known
  failures baseline is ``<skipped>`` too ("known failure"), so the test report stays green for it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .model import check_facts, check_ok, checks, sources_not_run, total_ms, was_run, write_atomic


def classname(source):
    return "netcheck.%s" % str(source).replace(".", "_")


def testcase_name(pair, check):
    """``nclab2 (10.77.0.12) tcp/8080 [transport]``: target, port or URL, and layer."""
    target = pair["target"]
    if pair.get("address") and pair["address"] != target:
        target = "%s (%s)" % (target, pair["address"])
    return "%s %s [%s]" % (target, check.label, check.layer)


def _seconds(ms):
    return "%.3f" % ((ms or 0.0) / 1000.0)


def _timestamp(value):
    # The JUnit schema's timestamp is an ISO 8601 date-time without a zone; the run's are UTC.
    value = str(value or "")
    return value[:-1] if value.endswith("Z") else value


def _failure_body(pair, lines, check=None):
    verdict = pair.get("verdict") or {}
    own = (check.verdict if check is not None else None) or {}
    body = [own.get("hint") or verdict.get("hint") or ""] + lines
    if own:
        body += ["evidence: %s" % line for line in own.get("evidence") or []]
        body.append("pair: %s [%s], %s of its checks failed" % (verdict.get("code"), verdict.get("first_failing_layer"),
                                                                verdict.get("failed_checks", "?")))
    else:
        body += ["evidence: %s" % line for line in verdict.get("evidence") or []]
    body += ["note %s: %s" % (n.get("code"), n.get("hint")) for n in verdict.get("notes") or []]
    if pair.get("explain"):
        body.append("explain: %s" % _short_text(pair["explain"]))
    return "\n".join(body)


def _short_text(value):
    if isinstance(value, dict):
        for key in ("summary", "hint", "text"):
            if value.get(key):
                return str(value[key])
    return str(value)


def _mark_outcome(case, pair, failing, lines, check=None):
    """Add the case's failure (or known-failure skip) element; return the counter it adds to, or None."""
    verdict = pair.get("verdict") or {}
    own = (check.verdict if check is not None else None) or {}
    code = own.get("code") or verdict.get("code") or "FAILED"
    hint = own.get("hint") or verdict.get("hint") or code
    if not failing:
        if own.get("severity") == "warn":
            ET.SubElement(case, "system-out").text = "warning %s: %s\n%s" % (
                code, hint, "\n".join(own.get("evidence") or []))
        elif pair.get("baseline") == "fixed":
            ET.SubElement(case, "system-out").text = "baseline: this pair was a known failure and now passes (fixed)"
        return None
    if pair.get("baseline") == "known":
        skipped = ET.SubElement(case, "skipped", message="known failure (baseline): %s: %s" % (code, hint))
        skipped.text = _failure_body(pair, lines, check)
        return "skipped"
    failure = ET.SubElement(case, "failure", message=hint, type=code)
    failure.text = _failure_body(pair, lines, check)
    return "failures"


def _count(counts, key):
    counts["tests"] += 1
    if key:
        counts[key] += 1


def _pair_cases(suite, pair, counts):
    name = classname(pair["source"])
    failing_any = False
    for check in checks(pair):
        case = ET.SubElement(suite, "testcase", classname=name, name=testcase_name(pair, check),
                             time=_seconds(total_ms(check.result)))
        if not was_run(check.result):
            reason = check.result.get("error") or "not run: the verdict stopped at a lower layer"
            ET.SubElement(case, "skipped", message=reason)
            _count(counts, "skipped")
            continue
        failing = not check_ok(check)
        failing_any = failing_any or failing
        _count(counts, _mark_outcome(case, pair, failing, ["%s: %s" % (check.label, check_facts(check))], check))
    # A pair that misses its expectation with no failing check (or no check at all) still shows.
    if not pair.get("ok") and not failing_any:
        layer = (pair.get("verdict") or {}).get("first_failing_layer") or "pair"
        case = ET.SubElement(suite, "testcase", classname=name, name="%s verdict [%s]" % (pair["target"], layer),
                             time=_seconds((pair.get("timings") or {}).get("total")))
        _count(counts, _mark_outcome(case, pair, True, []))


def _properties(suite, values):
    properties = ET.SubElement(suite, "properties")
    for key, value in values:
        if value is not None:
            ET.SubElement(properties, "property", name=key, value=str(value))


def build_junit(run):
    """The ElementTree root (``<testsuites>``) of the run's JUnit report."""
    meta = run.get("meta") or {}
    pairs_by_source = {}
    for pair in run.get("pairs") or []:
        pairs_by_source.setdefault(pair["source"], []).append(pair)
    root = ET.Element("testsuites", name="netcheck")
    grand = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    not_run = {s["name"] for s in sources_not_run(run)}
    for source in run.get("sources") or []:
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", name=classname(source["name"]),
                              hostname=str(source.get("address") or source["name"]),
                              timestamp=_timestamp(meta.get("started")))
        _properties(suite, [("source", source["name"]), ("source.address", source.get("address")),
                            ("source.status", source.get("status")),
                            ("source.groups", ",".join(source.get("groups") or []) or None),
                            ("netcheck.version", meta.get("netcheck_version")),
                            ("ansible_core", meta.get("ansible_core")), ("playbook", meta.get("playbook")),
                            ("inventory", ",".join(meta.get("inventory") or []) or None),
                            ("run.started", meta.get("started")), ("run.finished", meta.get("finished"))])
        if source["name"] in not_run:
            case = ET.SubElement(suite, "testcase", classname=classname(source["name"]),
                                 name="%s could not run [%s]" % (source["name"], source.get("status")),
                                 time=_seconds(source.get("elapsed_ms")))
            message = source.get("error") or "the source host could not run the checks"
            error = ET.SubElement(case, "error", message=message, type="SOURCE_%s" % str(source.get("status")).upper())
            error.text = message
            _count(counts, "errors")
        for pair in pairs_by_source.get(source["name"], []):
            _pair_cases(suite, pair, counts)
        elapsed = (source.get("elapsed_ms") or 0.0) / 1000.0
        total_time += elapsed
        for key, value in counts.items():
            suite.set(key, str(value))
            grand[key] += value
        suite.set("time", "%.3f" % elapsed)
    for key, value in grand.items():
        root.set(key, str(value))
    root.set("time", "%.3f" % total_time)
    return root


def render_junit(run):
    root = build_junit(run)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(run, path):
    return write_atomic(path, render_junit(run))


__all__ = ["build_junit", "classname", "render_junit", "testcase_name", "write_junit"]
