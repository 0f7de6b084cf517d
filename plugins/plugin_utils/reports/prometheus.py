"""``netcheck.prom``: the run in Prometheus textfile-collector format, for node_exporter.

Metric names follow blackbox_exporter's (``probe_success``, ``probe_duration_seconds``,
``probe_icmp_rtt_seconds``, ``probe_http_status_code``...), so dashboards and alerts written for
it read these too. Every probe series carries ``source``, ``target`` and ``layer`` labels
(``layer`` is the probe: neighbour, icmp, tcp, http, or ``all`` for the pair's verdict); tcp
series add ``port`` and http series add ``url`` so that each check is its own series.
The file is written atomically (temporary file + rename) as the textfile collector requires.
"""

from __future__ import annotations

import calendar
import time

from .model import check_ok, check_severity, checks, run_failed, sources_not_run, total_ms, was_run, write_atomic

# name -> help text; every family is a gauge.
FAMILIES = (
    ("probe_success", "1 when the check met its expectation (layer=all: the whole pair), else 0"),
    ("probe_duration_seconds", "Time the check took to its verdict"),
    ("probe_icmp_rtt_seconds", "ICMP echo round-trip time, by stat (min, avg, max)"),
    ("probe_icmp_packet_loss_ratio", "Share of ICMP echo requests without a reply (0 to 1)"),
    ("probe_icmp_reply_hop_limit", "TTL (hop limit) of the ICMP echo replies"),
    ("probe_http_status_code", "HTTP status code of the response (0 when none came)"),
    ("probe_http_duration_seconds", "Duration of an HTTP request by phase"),
    ("netcheck_pair_verdict", "1 for the pair's verdict code and first failing layer"),
    ("netcheck_check_verdict", "1 for each check's own verdict code and severity (ok, warn, fail)"),
    ("netcheck_pair_failed_checks", "How many checks of the pair failed"),
    ("netcheck_pair_known_failure", "1 when the pair's failure is listed in the known failures baseline"),
    ("netcheck_source_up", "1 when the source host could run its checks"),
    ("netcheck_run_pairs", "Pairs in the run, by outcome (ok, failed, known)"),
    ("netcheck_run_success", "1 when the run met the exit-code contract (no new failure, every source ran)"),
    ("netcheck_run_timestamp_seconds", "Unix time the run finished"),
)

HTTP_PHASES = ("resolve", "connect", "tls", "processing", "transfer")


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels):
    return "{%s}" % ",".join('%s="%s"' % (key, escape_label(value)) for key, value in labels)


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _epoch(iso):
    try:
        return calendar.timegm(time.strptime(str(iso)[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def samples(run):
    """(family, labels as [(key, value)], value) for every series of the run."""
    found = []

    def add(name, labels, value):
        if value is not None:
            found.append((name, labels, value))

    for pair in run.get("pairs") or []:
        base = [("source", pair["source"]), ("target", pair["target"])]
        verdict = pair.get("verdict") or {}
        add("probe_success", base + [("layer", "all")], bool(pair.get("ok")))
        add("probe_duration_seconds", base + [("layer", "all")], _seconds((pair.get("timings") or {}).get("total")))
        add("netcheck_pair_verdict", base + [("code", verdict.get("code") or "UNKNOWN"),
                                             ("first_failing_layer", verdict.get("first_failing_layer") or "unknown")], 1)
        add("netcheck_pair_known_failure", base, pair.get("baseline") == "known")
        add("netcheck_pair_failed_checks", base, verdict.get("failed_checks"))
        for check in checks(pair):
            if not was_run(check.result):
                continue
            labels = base + [("layer", check.kind)]
            if check.kind == "tcp":
                labels.append(("port", check.label.split("/", 1)[1]))
            elif check.kind == "http":
                labels.append(("url", check.label))
            add("probe_success", labels, check_ok(check))
            if check.verdict is not None:
                add("netcheck_check_verdict", labels + [("code", check.verdict.get("code") or "UNKNOWN"),
                                                        ("severity", check_severity(check))], 1)
            add("probe_duration_seconds", labels, _seconds(total_ms(check.result)))
            detail = check.result.get("detail") or {}
            if check.kind == "icmp":
                for stat in ("min", "avg", "max"):
                    add("probe_icmp_rtt_seconds", labels + [("stat", stat)], _seconds(detail.get("rtt_%s_ms" % stat)))
                if detail.get("loss_pct") is not None:
                    add("probe_icmp_packet_loss_ratio", labels, round(float(detail["loss_pct"]) / 100.0, 6))
                add("probe_icmp_reply_hop_limit", labels, detail.get("ttl"))
            elif check.kind == "http":
                add("probe_http_status_code", labels, detail.get("status") or 0)
                timings = check.result.get("timings") or {}
                for phase in HTTP_PHASES:
                    add("probe_http_duration_seconds", labels + [("phase", phase)], _seconds(timings.get("%s_ms" % phase)))
    not_run = {s["name"] for s in sources_not_run(run)}
    for source in run.get("sources") or []:
        add("netcheck_source_up", [("source", source["name"]), ("status", source.get("status"))],
            source["name"] not in not_run)
    pairs = run.get("pairs") or []
    known = sum(1 for p in pairs if not p.get("ok") and p.get("baseline") == "known")
    failed = sum(1 for p in pairs if not p.get("ok")) - known
    for outcome, count in (("ok", len(pairs) - failed - known), ("failed", failed), ("known", known)):
        add("netcheck_run_pairs", [("outcome", outcome)], count)
    add("netcheck_run_success", [], not run_failed(run))
    meta = run.get("meta") or {}
    add("netcheck_run_timestamp_seconds", [], _epoch(meta.get("finished") or meta.get("started")))
    return found


def _seconds(ms):
    return None if ms is None else round(float(ms) / 1000.0, 9)


def render_prom(run):
    by_family = {name: [] for name, _ in FAMILIES}
    for name, labels, value in samples(run):
        by_family[name].append("%s%s %s" % (name, _labels(labels) if labels else "", _number(value)))
    lines = []
    for name, help_text in FAMILIES:
        if by_family[name]:
            lines.append("# HELP %s %s" % (name, help_text))
            lines.append("# TYPE %s gauge" % name)
            lines.extend(by_family[name])
    return "\n".join(lines) + "\n"


def write_prom(run, path):
    return write_atomic(path, render_prom(run))
