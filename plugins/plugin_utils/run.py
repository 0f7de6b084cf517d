# -*- coding: utf-8 -*-
"""The run model of a check (what report.json holds) and the answer on the terminal.

Controller side. :func:`build_run` turns each source host's ``net_diagnose`` result (or its
absence: a host that could not be reached) into the run model (what report.json holds: docs/report.schema.json); :func:`render`
prints the matrix (sources x targets, one short cell per pair), one line per failing pair with
its hint and evidence, the asymmetric pairs, the sources that could not run, and the totals;
:func:`run_failed` is the exit-code contract (any pair missing its expectation, or any source
that could not run).
"""

from __future__ import annotations

import datetime
import os

from .capture_evidence import two_point

# the exit-code contract lives with the reports, which know the known-failures baseline
from .reports.model import checks, counts_against_run, run_failed, was_run

# report.json's top-level status: what a pipeline reads first
STATUS_PASSED, STATUS_FAILED, STATUS_CONFIG_ERROR, STATUS_NOT_RUN = "passed", "failed", "config_error", "not_run"

SCHEMA_VERSION = 1

# One short cell per code, so that 32 targets fit on a terminal line; OK is a dot.
CELLS = {
    "OK": ".", "DNS_FAILED": "DNS", "NO_ROUTE": "RTE", "GATEWAY_UNREACHABLE": "GW", "NEIGHBOUR_FAILED": "ARP",
    "NEIGHBOUR_TABLE_FULL": "NTF", "NEIGHBOUR_MISMATCH": "MAC", "ICMP_UNREACHABLE": "ICU", "ICMP_FILTERED": "ICF",
    "ICMP_ANSWERED": "ICA", "ICMP_LOSS": "LOS", "HIGH_LATENCY": "LAT", "PORT_CLOSED": "CLS", "PORT_FILTERED": "FLT", "PORT_REJECTED": "REJ",
    "PORT_OPEN": "OPN", "PORT_UNREACHABLE": "PUN", "ACCEPT_QUEUE_FULL": "AQF", "TLS_FAILED": "TLS",
    "HTTP_STATUS": "STS", "HTTP_TIMEOUT": "HTO", "WRONG_SERVICE": "SVC", "PROBE_ERROR": "ERR",
    "NOT_CHECKED": "N/C",
    # where on the path (docs/path.md); the cell adds @N, the hop where the flow died
    "DROPPED_AFTER_HOP": "DRP", "REJECTED_AT_HOP": "RJH", "ROUTING_LOOP": "LOP", "TTL_EXPIRED": "TTL",
    "MTU_BLACKHOLE": "MTU", "PMTU_REDUCED": "PMT", "CONNTRACK_FULL": "CTF",
}
NO_PAIR = "-"         # this source does not check this target (itself, or not in its targets)
NOT_RUN = "!"         # the source could not run at all
ACCEPT_QUEUE_HINT = ("the SYN went unanswered while the target's listener has its accept queue full: "
                     "the service does not accept connections fast enough (raise its backlog, its workers, "
                     "or its Max open files)")


def source_entry(name, address, outcome):
    """The run model's source record from a registered net_diagnose result (None: never ran)."""
    entry = {"name": name, "address": address, "status": "ran", "error": None, "elapsed_ms": None, "limits": None}
    if not outcome:
        entry.update(status="unreachable", error="no result: the host was not reached (SSH) or the play stopped")
    elif outcome.get("unreachable"):
        entry.update(status="unreachable", error=str(outcome.get("msg") or "unreachable over SSH").strip())
    elif outcome.get("skipped"):
        entry.update(error=outcome.get("msg"))
    elif outcome.get("failed") and not outcome.get("results"):
        # net_diagnose refused its input, or the module could not start (no Python, ...)
        error = str(outcome.get("msg") or "the check failed before probing").strip()
        stderr = str(outcome.get("module_stderr") or "").strip().splitlines()
        if stderr and stderr[-1] not in error:
            error += ": " + stderr[-1]
        entry.update(status="failed", error=error)
    if outcome and entry["status"] == "ran":
        entry["elapsed_ms"] = outcome.get("elapsed_ms")
        entry["limits"] = outcome.get("limits")
    return entry


def build_run(sources, meta=None):
    """The run model from ``sources``: [{"name", "address", "outcome": registered result or None}]."""
    run = {"schema_version": SCHEMA_VERSION, "status": None, "meta": dict(meta or {}), "sources": [], "targets": [],
           "pairs": [], "asymmetric": [], "totals": {}}
    targets = {}
    for source in sources:
        entry = source_entry(source["name"], source.get("address"), source.get("outcome"))
        run["sources"].append(entry)
        if entry["status"] != "ran":
            continue
        for result in source["outcome"].get("results") or []:
            pair = dict(result)
            pair["source"] = entry["name"]
            pair.setdefault("expected", None)
            pair.update(explain=None, capture=None, baseline=None)
            run["pairs"].append(pair)
            targets.setdefault(pair["target"], pair.get("address"))
    # targets: every source first (inventory order), then the other targets as first seen
    names = [s["name"] for s in run["sources"]]
    for name in names:
        if name in targets:
            run["targets"].append({"name": name, "address": targets.pop(name)})
    run["targets"].extend({"name": name, "address": address} for name, address in targets.items())
    apply_accept_queues(run)
    apply_conntrack(run)
    run["asymmetric_checks"] = asymmetric_checks(run["pairs"])
    run["asymmetric"] = asymmetric_pairs(run["pairs"])
    run["totals"] = totals(run)
    run["status"] = run_status(run)
    return run


CONNTRACK_SILENT = ("PORT_FILTERED", "ICMP_FILTERED", "HTTP_TIMEOUT", "DROPPED_AFTER_HOP")
CONNTRACK_HINT = ("the conntrack table of %s is full (%s of nf_conntrack_max %s): new flows are dropped like a "
                  "firewall's DROP; raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), shorten conntrack "
                  "timeouts, or exempt the flows from tracking (raw table NOTRACK)")


def apply_conntrack(run):
    """A silent failing check whose target, or the router at its hop, reports a full conntrack table in its
    own limits (from its run as a source): the check's code becomes CONNTRACK_FULL (docs/path.md).

    The source's own table is judged on the host (path.py); only the hosts that ran here can tell theirs.
    """
    full = {}
    for source in run["sources"]:
        conntrack = (source.get("limits") or {}).get("conntrack") or {}
        if conntrack.get("full"):
            full[source["name"]] = conntrack
            if source.get("address"):
                full[source["address"]] = dict(conntrack, name=source["name"])
    if not full:
        return
    for pair in run["pairs"]:
        if pair.get("ok"):
            continue
        changed = False
        for check in pair_checks(pair):
            if check.get("ok") or check.get("code") not in CONNTRACK_SILENT:
                continue
            hop = (check.get("hop") or {}).get("address")
            where = pair["target"] if pair["target"] in full else (hop if hop in full else None)
            if where is None:
                continue
            table = full[where]
            name = table.get("name", where)
            fact = "%s: conntrack table full, %s of nf_conntrack_max %s (drop %s, early_drop %s)" % (
                name, table.get("count"), table.get("max"), table.get("drop"), table.get("early_drop"))
            check.update(code="CONNTRACK_FULL", layer="network",
                         hint=CONNTRACK_HINT % (name, table.get("count"), table.get("max")))
            check["evidence"] = [fact] + list(check.get("evidence") or [])
            changed = True
        if changed:
            first = failing_checks(pair)[0]
            verdict = pair["verdict"]
            if first.get("code") == "CONNTRACK_FULL" and verdict.get("code") != "CONNTRACK_FULL":
                verdict["notes"].append({"code": verdict["code"], "hint": verdict["hint"]})
                verdict.update(code="CONNTRACK_FULL", hint=first["hint"], first_failing_layer="network")
                verdict["evidence"] = list(first["evidence"][:1]) + list(verdict.get("evidence") or [])


def _full_listeners(limits, port):
    return [entry for entry in (limits or {}).get("listeners") or []
            if entry.get("port") == port and entry.get("queue_full")]


def pair_checks(pair):
    """The pair's per-check verdicts (net_diagnose's verdict.checks; [] for a result made before them)."""
    return (pair.get("verdict") or {}).get("checks") or []


def failing_checks(pair):
    """The pair's failing checks, the lowest layer first (the pair's code is the first one's)."""
    return sorted([c for c in pair_checks(pair) if not c.get("ok")], key=lambda c: _LAYER_RANK.get(c.get("layer"), 4))


def warned_checks(pair):
    return [c for c in pair_checks(pair) if c.get("ok") and c.get("severity") == "warn"]


_LAYER_RANK = {"link": 0, "network": 1, "transport": 2, "application": 3, "none": 4}


def apply_accept_queues(run):
    """A port that times out while the target's own listener has a full accept queue: say so.

    The source cannot see the target's queue; the target's own limits (from its run as a source)
    can. Such a check's code becomes ACCEPT_QUEUE_FULL (and the pair's, when it was that check's),
    its former code a note.
    """
    limits = {s["name"]: s["limits"] for s in run["sources"] if s.get("limits")}
    for pair in run["pairs"]:
        verdict = pair["verdict"]
        if pair["target"] not in limits or pair.get("ok"):
            continue
        first = (failing_checks(pair) or [None])[0]
        for result in (pair.get("layers") or {}).get("tcp") or []:
            if result["state"] != "filtered":
                continue
            port = result["detail"].get("port")
            full = _full_listeners(limits[pair["target"]], port)
            check = ([c for c in pair_checks(pair) if c.get("check") == "tcp/%s" % port] or [None])[0]
            if not full or (check is not None and check.get("code") != "PORT_FILTERED"):
                continue
            listener = full[0]
            owners = ", ".join("pid %s %s (%s of %s open files)" % (
                p.get("pid"), p.get("comm"), p.get("open_fds"), (p.get("max_open_files") or {}).get("soft"))
                for p in listener.get("processes") or []) or "process unknown"
            fact = "%s port %s: accept queue %s, backlog %s (%s); ListenOverflows %s" % (
                pair["target"], listener["port"], listener["accept_queue"], listener["backlog"], owners,
                (limits[pair["target"]].get("netstat") or {}).get("ListenOverflows"))
            if check is not None:
                check.update(code="ACCEPT_QUEUE_FULL", hint=ACCEPT_QUEUE_HINT)
                check["evidence"] = [fact] + list(check.get("evidence") or [])
            if verdict["code"] == "PORT_FILTERED" and (check is None or check is first):
                verdict["notes"].append({"code": verdict["code"], "hint": verdict["hint"]})
                verdict.update(code="ACCEPT_QUEUE_FULL", hint=ACCEPT_QUEUE_HINT, first_failing_layer="transport")
                verdict["evidence"].insert(0, fact)


def _capture_summary(capture):
    """The per-flow summary of a host's packet_capture result (None: no capture, or it never stopped)."""
    result = (capture or {}).get("result") or {}
    summary = result.get("summary")
    return summary if isinstance(summary, dict) else None


def _fetched_pcap(name, capture, run_dir):
    """The pcap's path relative to the run directory when it was fetched there, else None."""
    interface = ((capture or {}).get("result") or {}).get("interface")
    if not run_dir or not interface:
        return None
    relative = os.path.join(name, "%s.pcap" % interface)
    return relative if os.path.isfile(os.path.join(run_dir, relative)) else None


def _failing_ports(pair):
    ports = []
    for result in (pair.get("layers") or {}).get("tcp") or []:
        port = (result.get("detail") or {}).get("port")
        if not result.get("ok") and port is not None and port not in ports:
            ports.append(port)
    return ports


def _between(flows, addresses):
    return [f for f in flows if f.get("orig_h") in addresses or f.get("resp_h") in addresses]


def apply_captures(run, captures, run_dir=None):
    """Join packet captures to the failing pairs: ``pair["capture"]`` and two-point evidence.

    ``captures``: {host name: {"address": its address, "result": its packet_capture result after
    ``state: stopped`` (or None)}}. For each failing pair S -> T where S or T was captured,
    ``pair["capture"]`` becomes {"source": side, "target": side, "evidence": [...]}, a side being
    {"id", "pcap" (relative to ``run_dir`` when fetched there, else None), "flows" (this pair's
    flows only)} or None when that host was not captured; "evidence" holds one
    :func:`capture_evidence.two_point` answer per failing TCP port (with its "port") when both
    ends were captured, and each answer's sentence is appended to the verdict's evidence.
    """
    by_address = {c.get("address"): name for name, c in captures.items() if c.get("address")}
    for pair in run["pairs"]:
        if pair["ok"]:
            continue
        source, address = pair["source"], pair.get("address")
        target = pair["target"] if pair["target"] in captures else by_address.get(address)
        at_source, at_target = _capture_summary(captures.get(source)), _capture_summary(captures.get(target))
        if at_source is None and at_target is None:
            continue
        source_flows = _between((at_source or {}).get("flows") or [], {address})
        # the target sees the source by the address it sent from (the route's choice) or its inventory one
        source_addresses = {f["orig_h"] for f in source_flows if f.get("resp_h") == address}
        source_addresses.add((captures.get(source) or {}).get("address"))
        target_flows = _between((at_target or {}).get("flows") or [], source_addresses)
        evidence = []
        for port in _failing_ports(pair):
            found = two_point(source, pair["target"], address, port, at_source, at_target,
                              source_addresses=sorted(a for a in source_addresses if a))
            if found is not None:
                evidence.append(dict(found, port=port))
                pair["verdict"]["evidence"].append(found["sentence"])
                for check in pair_checks(pair):
                    if check.get("check") == "tcp/%s" % port:
                        check.setdefault("evidence", []).append(found["sentence"])
        sides = {}
        for role, name, summary, flows in (("source", source, at_source, source_flows),
                                           ("target", target, at_target, target_flows)):
            sides[role] = None if summary is None else {
                "id": captures[name]["result"].get("id"), "pcap": _fetched_pcap(name, captures[name], run_dir),
                "flows": flows}
        pair["capture"] = {"source": sides["source"], "target": sides["target"], "evidence": evidence}
    return run


def asymmetric_checks(pairs):
    """[[A, B, check]] where the SAME check (icmp, tcp/22, neighbour, the same URL) meets its
    expectation from A to B and fails from B to A; pairs without per-check verdicts compare as a whole."""
    by_pair = {(p["source"], p["target"]): p for p in pairs}
    found = []
    for (source, target), pair in sorted(by_pair.items()):
        back = by_pair.get((target, source))
        if back is None:
            continue
        there, home = pair_checks(pair), pair_checks(back)
        if not there or not home:
            if pair["ok"] and back["ok"] is False:
                found.append([source, target, "pair"])
            continue
        failing_back = {c["check"] for c in home if not c.get("ok")}
        for check in there:
            if check.get("ok") and check["check"] in failing_back:
                found.append([source, target, check["check"]])
    return found


def asymmetric_pairs(pairs):
    """[[A, B]] where some check works from A to B and the same check fails from B to A."""
    found = []
    for source, target, _ in asymmetric_checks(pairs):
        if [source, target] not in found:
            found.append([source, target])
    return found


def totals(run):
    by_code = {}
    for pair in run["pairs"]:
        code = pair["verdict"]["code"]
        by_code[code] = by_code.get(code, 0) + 1
    passed = sum(1 for pair in run["pairs"] if pair["ok"])
    failed = len(run["pairs"]) - passed
    known = sum(1 for pair in run["pairs"] if not pair["ok"] and pair.get("baseline") == "known")
    return {"pairs": len(run["pairs"]), "ok": passed, "failed": failed,
            "sources_not_run": sum(1 for s in run["sources"] if s["status"] != "ran"), "by_code": by_code,
            "checks": count_checks(run), "known": known, "new_failures": failed - known,
            # pairs that pass with a check past its warn threshold (ICMP_LOSS, HIGH_LATENCY)
            "warned": sum(1 for pair in run["pairs"] if pair["ok"] and warned_checks(pair)),
            "fixed": sum(1 for pair in run["pairs"] if pair.get("baseline") == "fixed")}


def count_checks(run):
    """Checks that ran: every probe of every pair, and each source's limits (--tags limits)."""
    # a pair's probes that ran, or at least the layers it says it checked
    probes = sum(max(sum(1 for check in checks(pair) if was_run(check.result)), len(pair.get("checked") or []))
                 for pair in run["pairs"])
    return probes + sum(1 for s in run["sources"] if s["status"] == "ran" and s.get("limits"))


def empty_reasons(run):
    """Why the run checked nothing ([] when it checked something): zero sources, pairs or checks."""
    ran = [s for s in run["sources"] if s["status"] == "ran"]
    if not run["sources"]:
        return ["no source host: the play matched none (inventory, netcheck_sources, --limit)"]
    if not ran:
        return ["no source could run (%d of %d did not)" % (len(run["sources"]), len(run["sources"]))]
    totals_ = run["totals"] if run.get("totals") else totals(run)
    if not run["pairs"] and not totals_["checks"]:
        return ["no pair was checked: no source had a target in the layers asked (targets, --tags)"]
    if not totals_["checks"]:
        return ["no check ran: every probe of every pair was skipped"]
    return []


def run_status(run):
    """passed, failed, config_error or not_run (report.json's ``status``, the exit code's reason)."""
    if run.get("status") == STATUS_CONFIG_ERROR:
        return STATUS_CONFIG_ERROR
    if empty_reasons(run):
        return STATUS_NOT_RUN
    return STATUS_FAILED if run_failed(run) else STATUS_PASSED


def gate_failed(run, allow_empty=False, fail_on_mismatch=True):
    """Whether the run fails (non-zero exit): a configuration error, nothing checked (unless allowed),
    a source that could not run, or (with fail_on_mismatch) a pair missing its expectation that
    the baseline does not know."""
    status = run.get("status") or run_status(run)
    if status == STATUS_CONFIG_ERROR:
        return True
    if status == STATUS_NOT_RUN:
        return not allow_empty or bool(sources_not_run_names(run))
    if sources_not_run_names(run):
        return True
    return fail_on_mismatch and any(counts_against_run(p) for p in run["pairs"])


def sources_not_run_names(run):
    return [s["name"] for s in run["sources"] if s["status"] != "ran"]


def run_dir_for(report_dir, started=None):
    """The run's directory, ``<report_dir>/<UTC start, e.g. 20261206T233000Z>``: the one place it is
    named (the role computes it once per run; the report and a configuration error use it too)."""
    started = started or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return os.path.join(report_dir, started.replace(":", "").replace("-", ""))


def config_error_run(problems, meta=None):
    """The run model of a run stopped by its configuration: nothing checked, every problem named."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = {"schema_version": SCHEMA_VERSION, "status": STATUS_CONFIG_ERROR, "problems": list(problems),
           "meta": dict({"started": now, "finished": now}, **(meta or {})), "sources": [], "targets": [], "pairs": [],
           "asymmetric": []}
    run["totals"] = totals(run)
    return run


# --- the terminal ----------------------------------------------------------------------------

def cell(code):
    return CELLS.get(code, code[:3])


def pair_cell(pair):
    """The matrix cell of a pair: the lowest failing check's code, ``+N`` when N more checks fail
    (``OPN+1``: a port open that must not be, and one more check failing), ``@N`` the hop where the flow
    died (``DRP@2``: dropped after hop 2, docs/path.md); an OK pair with a
    warning shows the warning's code in lower case (``los``); ``.`` when every check passed."""
    verdict = pair["verdict"]
    if pair.get("ok"):
        warned = warned_checks(pair)
        return cell(warned[0]["code"]).lower() if warned else cell(verdict["code"])
    failed = verdict.get("failed_checks")
    if failed is None:
        failed = len(failing_checks(pair))
    more = failed - 1
    hop = verdict.get("hop") or {}
    at = "@%s" % hop["index"] if hop.get("index") is not None else ""
    return cell(verdict["code"]) + at + ("+%d" % more if more > 0 else "")


def render_matrix(run):
    """Sources down, targets across (numbered, with a legend), one short cell per pair."""
    targets = [t["name"] for t in run["targets"]]
    by_pair = {(p["source"], p["target"]): p for p in run["pairs"]}
    width = max([len(s["name"]) for s in run["sources"]] + [6])
    marks = {key: pair_cell(pair) for key, pair in by_pair.items()}
    column = max([4] + [len(mark) + 1 for mark in marks.values()])
    lines = ["matrix (rows: sources, columns: targets; . = OK, - = not checked, ! = source could not run, "
             "+N = N more checks fail, lower case = warning)"]
    lines.append("%-*s %s" % (width, "", "".join("%*d" % (column, i + 1) for i in range(len(targets)))))
    for source in run["sources"]:
        cells = []
        for target in targets:
            if source["status"] != "ran":
                mark = NOT_RUN
            else:
                mark = marks.get((source["name"], target), NO_PAIR)
            cells.append("%*s" % (column, mark))
        lines.append("%-*s %s" % (width, source["name"], "".join(cells)))
    lines.append("targets: " + "  ".join("%d=%s" % (i + 1, name) for i, name in enumerate(targets)))
    used = set()
    for pair in run["pairs"]:
        for check in pair_checks(pair) or [{"code": pair["verdict"]["code"], "severity": "fail"}]:
            if check["code"] != "OK" and check.get("severity", "fail") != "ok":
                used.add(cell(check["code"]) + "=" + check["code"])
        if not pair_checks(pair) and pair["verdict"]["code"] != "OK":
            used.add(cell(pair["verdict"]["code"]) + "=" + pair["verdict"]["code"])
    if used:
        lines.append("codes: " + "  ".join(sorted(used)))
    return lines


def _check_lines(checks):
    lines = []
    for check in checks:
        evidence = check.get("evidence") or []
        lines.append("     %s %s: %s" % (check["check"], check["code"], evidence[0] if evidence else check["hint"]))
        lines.extend("       %s" % fact for fact in evidence[1:3])
    return lines


def render_failures(run):
    lines = []
    for pair in run["pairs"]:
        verdict = pair["verdict"]
        if pair["ok"]:
            warned = warned_checks(pair)
            if warned:
                lines.append("WARN %s -> %s (%s): %s [%s] %s" % (pair["source"], pair["target"], pair.get("address") or "-",
                                                                 warned[0]["code"], warned[0]["layer"], warned[0]["hint"]))
                lines.extend(_check_lines(warned))
            continue
        known = pair.get("baseline") == "known"
        failing = failing_checks(pair)
        count = " (%d checks failed)" % len(failing) if len(failing) > 1 else ""
        lines.append("%s %s -> %s (%s): %s [%s] %s%s" % (
            "KNOWN" if known else "FAIL", pair["source"], pair["target"], pair.get("address") or "-",
            verdict["code"], verdict["first_failing_layer"], verdict["hint"], count))
        if failing:
            # every failing check with its own code and facts: one never hides another
            shown = [fact for check in failing for fact in check.get("evidence") or []]
            lines.extend(_check_lines(failing))
        else:
            shown = verdict["evidence"][:4]
            for fact in shown:
                lines.append("     %s" % fact)
        # the two-point answer is the last fact of the evidence: never cut off
        for found in (pair.get("capture") or {}).get("evidence") or []:
            if found["sentence"] not in shown:
                lines.append("     capture: %s" % found["sentence"])
        explain = pair.get("explain") or {}
        if explain.get("message"):
            lines.append("     EC2: %s%s" % (explain["message"], (" -> " + explain["fix"]) if explain.get("fix") else ""))
    for source in run["sources"]:
        if source["status"] != "ran":
            lines.append("NOT RUN %s (%s): %s: %s" % (source["name"], source.get("address") or "-", source["status"],
                                                      source["error"]))
    codes = {(p["source"], p["target"], c["check"]): c["code"] for p in run["pairs"] for c in pair_checks(p)}
    for source, target, check in run.get("asymmetric_checks") or [[a, b, "pair"] for a, b in run["asymmetric"]]:
        if check == "pair":
            lines.append("ASYMMETRIC %s reaches %s, but %s does not reach %s" % (source, target, target, source))
        else:
            lines.append("ASYMMETRIC %s: %s -> %s as expected, %s -> %s fails (%s)" % (
                check, source, target, target, source, codes.get((target, source, check), "?")))
    return lines


def render_totals(run):
    t = run["totals"]
    codes = ", ".join("%s %d" % (code, count) for code, count in sorted(t["by_code"].items()))
    known = t.get("known") or 0
    split = " (%d new, %d known)" % (t["failed"] - known, known) if run.get("baseline") else ""
    warned = " (%d with warnings)" % t["warned"] if t.get("warned") else ""
    lines = ["totals: %d pairs, %d ok%s, %d failed%s, %d sources not run, %d checks (%s)" % (
        t["pairs"], t["ok"], warned, t["failed"], split, t["sources_not_run"], t.get("checks", 0),
        codes or "no pairs")]
    if run.get("baseline"):
        lines.append("baseline %s: %d known failures, %d new, %d fixed (in the baseline, now passing)" % (
            run["baseline"].get("file") or "", known, t["failed"] - known, t.get("fixed") or 0))
    return lines


def render_notes(run, shown=6):
    """Notes of the verdicts (e.g. ICMP_FILTERED on pairs whose ports answer), one line per code."""
    by_code = {}
    for pair in run["pairs"]:
        for note in (pair.get("verdict") or {}).get("notes") or []:
            entry = by_code.setdefault(note["code"], {"hint": note.get("hint"), "pairs": []})
            entry["pairs"].append("%s -> %s" % (pair["source"], pair["target"]))
    lines = []
    for code, entry in sorted(by_code.items()):
        pairs = entry["pairs"]
        more = " and %d more" % (len(pairs) - shown) if len(pairs) > shown else ""
        lines.append("NOTE %s on %d pair%s (%s%s): %s" % (code, len(pairs), "" if len(pairs) == 1 else "s",
                                                          ", ".join(pairs[:shown]), more, entry["hint"]))
    return lines


def render_fixed(run):
    return ["FIXED %s -> %s: in the baseline%s, passes now (remove its entry)"
            % (p["source"], p["target"], " (%s)" % p["baseline_reason"] if p.get("baseline_reason") else "")
            for p in run["pairs"] if p.get("baseline") == "fixed"]


def render_limits(run):
    """One line per source whose limits were read (--tags limits): listeners, queues, warnings."""
    lines = []
    every_source = not run["pairs"]  # --tags limits: the limits are the answer; else only their warnings
    for source in run["sources"]:
        limits = source.get("limits")
        if not limits:
            continue
        if not every_source:
            lines.extend("limits %s: WARNING %s" % (source["name"], w) for w in limits.get("limit_warnings") or [])
            continue
        listeners = ", ".join(dict.fromkeys("%s %s queue %s/%s" % (
            entry.get("port"), "/".join(sorted({str(p.get("comm")) for p in entry.get("processes") or []})) or "?",
            entry.get("accept_queue"), entry.get("backlog")) for entry in limits.get("listeners") or []))
        kernel = limits.get("kernel") or {}
        file_nr = kernel.get("file_nr") or {}
        lines.append("limits %s: listeners %s; somaxconn %s; file handles %s of %s; ListenOverflows %s" % (
            source["name"], listeners or "none on the ports asked", kernel.get("somaxconn"),
            file_nr.get("allocated"), file_nr.get("max"), (limits.get("netstat") or {}).get("ListenOverflows")))
        lines.extend("limits %s: WARNING %s" % (source["name"], w) for w in limits.get("limit_warnings") or [])
    return lines


def render_coverage(run):
    coverage = run.get("coverage") or {}
    if not coverage.get("missing") or not run["pairs"]:
        return []
    missing = coverage["missing"]
    return ["targets: %d of the inventory's %d hosts checked as targets (%s); not checked: %s%s" % (
        coverage["targets"], coverage["inventory_hosts"], coverage.get("why") or "",
        ", ".join(missing[:10]), " and %d more" % (len(missing) - 10) if len(missing) > 10 else "")]


def render_pcaps(run):
    pcaps = run.get("pcaps") or []
    if not pcaps:
        return []
    return ["pcaps: %d in %s (%s)" % (len(pcaps), run.get("run_dir") or "the run directory", ", ".join(pcaps[:8]))]


def render_headline(run):
    """The first line: passed, FAILED (the network), NOTHING CHECKED (why), CONFIGURATION ERROR."""
    status = run.get("status") or run_status(run)
    t = run["totals"]
    if status == STATUS_PASSED:
        return "netcheck: passed: %d pairs, %d checks as expected" % (t["pairs"], t.get("checks", 0))
    if status == STATUS_NOT_RUN:
        return "netcheck: NOTHING CHECKED: %s" % "; ".join(empty_reasons(run))
    if status == STATUS_CONFIG_ERROR:
        return "netcheck: CONFIGURATION ERROR, nothing was checked: %s" % "; ".join(run.get("problems") or [])
    parts = []
    if t.get("new_failures", t["failed"]):
        parts.append("%d pairs missed their expectation" % t.get("new_failures", t["failed"]))
    if t["sources_not_run"]:
        parts.append("%d sources could not run" % t["sources_not_run"])
    return "netcheck: FAILED (the network or the hosts, not the configuration): %s" % ", ".join(parts or ["see below"])


def render(run):
    """The whole answer as text lines."""
    lines = [render_headline(run), ""]
    if run["pairs"] or not any(s.get("limits") for s in run["sources"]):
        lines += render_matrix(run) + [""]
    lines += render_limits(run) + render_failures(run) + render_notes(run) + render_fixed(run)
    lines += render_comparison(run) + render_coverage(run) + render_pcaps(run)
    return lines + render_totals(run)


def render_comparison(run):
    comparison = run.get("comparison")
    if not comparison:
        return []
    lines = ["compared with %s (%s): %d new failures, %d fixed, %d changed codes, %d latency shifts" % (
        comparison.get("file"), comparison.get("started") or "?", len(comparison["new_failures"]),
        len(comparison["fixed"]), len(comparison["changed"]), len(comparison["latency"]))]
    for entry in comparison["new_failures"]:
        lines.append("  NEW   %s -> %s: %s (was %s)" % (entry["source"], entry["target"], entry["code"],
                                                        entry.get("was") or "not checked"))
    for entry in comparison["fixed"]:
        lines.append("  FIXED %s -> %s: was %s" % (entry["source"], entry["target"], entry["was"]))
    for entry in comparison["changed"]:
        lines.append("  CODE  %s -> %s: %s -> %s" % (entry["source"], entry["target"], entry["was"], entry["code"]))
    for entry in comparison["latency"]:
        lines.append("  RTT   %s -> %s: %.3g ms -> %.3g ms" % (entry["source"], entry["target"], entry["was_ms"],
                                                               entry["now_ms"]))
    return lines


__all__ = ["CELLS", "SCHEMA_VERSION", "STATUS_CONFIG_ERROR", "STATUS_FAILED", "STATUS_NOT_RUN",
           "STATUS_PASSED", "apply_accept_queues", "apply_captures", "apply_conntrack", "asymmetric_checks",
           "asymmetric_pairs", "build_run", "cell", "config_error_run", "count_checks", "coverage",
           "empty_reasons", "failing_checks", "gate_failed", "pair_cell", "pair_checks", "render",
           "render_comparison", "render_failures", "render_headline", "render_matrix", "render_notes",
           "render_totals", "run_dir_for", "run_failed", "run_status", "source_entry", "totals",
           "warned_checks"]


def coverage(run, inventory_hosts=None, mesh_group=None):
    """Which of the inventory's hosts no source checked as a target (None: nothing to say)."""
    if not inventory_hosts:
        return None
    checked = {t["name"] for t in run["targets"]}
    sources = {s["name"] for s in run["sources"]}
    # a lone source does not check itself: it is not "left out"
    missing = [h for h in inventory_hosts if h not in checked and not (h in sources and len(sources) == 1)]
    why = "netcheck_mesh_group=%s" % mesh_group if mesh_group else "the targets of the sources"
    # of the inventory's hosts: a named extra target (a host's other port, an outside address) is not one
    covered = sum(1 for h in inventory_hosts if h in checked)
    return {"inventory_hosts": len(inventory_hosts), "targets": covered, "missing": missing, "why": why}
