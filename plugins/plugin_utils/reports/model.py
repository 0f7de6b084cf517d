"""Reading the run model: the checks of a pair, their one-line facts, what fails the run.

Every writer reads the run model through these helpers, so that a check is named, timed and
described the same way in the JUnit file, the Prometheus file, the Markdown and the HTML.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import namedtuple

# The OSI-ish layers of the verdict, bottom up, and the probe kind that exercises each.
LAYERS = ("link", "network", "transport", "application")
KIND_LAYER = {"neighbour": "link", "icmp": "network", "tcp": "transport", "http": "application"}
LAYER_KIND = {layer: kind for kind, layer in KIND_LAYER.items()}

# States a probe may report for a check that was not run (the verdict stopped lower down).
NOT_RUN_STATES = ("skipped", "not_run")

# ``verdict``: the check's own verdict from net_diagnose (verdict.checks: code, severity, hint,
# evidence, outcome), or None for a pair recorded before per-check verdicts existed.
Check = namedtuple("Check", "kind layer label result verdict", defaults=(None,))


def checks(pair):
    """The checks of a pair in layer order: neighbour, icmp, each tcp port, each URL (and
    ``resolve`` when the name did not resolve), each with its own verdict when the pair has them."""
    layers = pair.get("layers") or {}
    found = []
    for kind in ("neighbour", "icmp"):
        result = layers.get(kind)
        if result:
            found.append(Check(kind, KIND_LAYER[kind], kind, result))
    for result in layers.get("tcp") or []:
        found.append(Check("tcp", "transport", "tcp/%s" % tcp_port(result), result))
    for result in layers.get("http") or []:
        found.append(Check("http", "application", str(result.get("target")), result))
    judged = list((pair.get("verdict") or {}).get("checks") or [])
    if not judged:
        return found
    # pair each probe with its verdict, in order (two checks of one port keep their order)
    joined = []
    for check in found:
        name = check.label if check.kind in ("neighbour", "icmp") or check.kind == "tcp" else "http " + check.label
        match = next((j for j in judged if j.get("check") == name), None)
        if match is not None:
            judged.remove(match)
        joined.append(check._replace(verdict=match))
    for extra in [j for j in judged if j.get("check") == "resolve"]:  # the name did not resolve: no probe ran
        result = {"target": pair.get("target"), "kind": extra.get("check"), "state": extra.get("code"),
                  "ok": extra.get("ok"), "timings": {}, "error": extra.get("hint"), "detail": {}}
        joined.insert(0, Check(extra.get("check"), extra.get("layer") or "network", extra.get("check"), result, extra))
    return joined


def check_ok(check):
    """Whether a check met its expectation: its own verdict says so (a warning is ok unless the
    run fails on warnings), else its probe result does."""
    if check.verdict is not None:
        return bool(check.verdict.get("ok"))
    return bool(check.result.get("ok"))


def check_severity(check):
    """ok, warn or fail."""
    if check.verdict is not None:
        return check.verdict.get("severity") or ("ok" if check.verdict.get("ok") else "fail")
    return "ok" if check.result.get("ok") else "fail"


def tcp_port(result):
    """The port of a tcp result: detail.port, else what follows the last colon of its target."""
    port = (result.get("detail") or {}).get("port")
    if port is None:
        port = str(result.get("target", "")).rpartition(":")[2]
    return port


def was_run(result):
    return result.get("state") not in NOT_RUN_STATES


def total_ms(result):
    """The probe's time to verdict in ms (``total_ms``, else the sum of its phases), or None."""
    timings = result.get("timings") or {}
    if timings.get("total_ms") is not None:
        return float(timings["total_ms"])
    if timings:
        return float(sum(v for v in timings.values() if isinstance(v, (int, float))))
    return None


def _ms(value):
    if value is None:
        return "-"
    return "%.3g ms" % value if value < 100 else "%.0f ms" % value


def check_facts(check):
    """One line of what a check saw, e.g. ``3/3 replies, 0% loss, rtt 0.08/0.11/0.14 ms, ttl 64``."""
    result = check.result
    detail = result.get("detail") or {}
    parts = [str(result.get("state"))]
    if check.kind == "icmp" and detail.get("sent") is not None:
        parts.append("%s/%s replies, %g%% loss" % (detail.get("received"), detail.get("sent"), detail.get("loss_pct") or 0))
        if detail.get("rtt_avg_ms") is not None:
            parts.append("rtt %s/%s/%s ms" % tuple(_short(detail.get(k)) for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms")))
        if detail.get("ttl") is not None:
            parts.append("ttl %s" % detail["ttl"])
    elif check.kind == "tcp":
        parts.append("in %s" % _ms(total_ms(result)))
        if detail.get("errno_name"):
            parts.append(detail["errno_name"])
        if detail.get("banner"):
            parts.append("banner %s" % " ".join(str(detail["banner"]).split())[:60])
    elif check.kind == "http":
        if detail.get("status") is not None:
            parts.append("%s %s" % (detail["status"], detail.get("reason") or ""))
        timings = result.get("timings") or {}
        if timings.get("ttfb_ms") is not None:
            parts.append("ttfb %s" % _ms(timings["ttfb_ms"]))
        parts.append("total %s" % _ms(total_ms(result)))
    elif check.kind == "neighbour":
        route = detail.get("route") or {}
        if route.get("dev"):
            parts.append("via %s%s" % (route["dev"], " gw %s" % route["gateway"] if route.get("gateway") else " on-link"))
        if detail.get("mac"):
            parts.append("mac %s" % detail["mac"])
        kernel_state = detail.get("kernel_state") or detail.get("state")
        if kernel_state:
            parts.append(str(kernel_state))
    line = ", ".join(part.strip() for part in parts if part)
    if result.get("error") and not result.get("ok"):
        line += " (%s)" % result["error"]
    return line


def _short(value):
    return "-" if value is None else "%.3g" % value


def icmp_detail(pair):
    icmp = (pair.get("layers") or {}).get("icmp") or {}
    return icmp.get("detail") or {}


def latency_ms(pair, layer="all"):
    """The latency that shades an OK cell: ICMP avg RTT, TCP connect, HTTP total (``all``: the first known)."""
    layers = pair.get("layers") or {}
    picks = {"icmp": lambda: icmp_detail(pair).get("rtt_avg_ms"),
             "tcp": lambda: _max([total_ms(r) for r in layers.get("tcp") or [] if r.get("ok")]),
             "http": lambda: _max([total_ms(r) for r in layers.get("http") or [] if r.get("ok")])}
    order = ("icmp", "tcp", "http") if layer == "all" else (layer,)
    for name in order:
        value = picks[name]()
        if value is not None:
            return float(value)
    return None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def failed_checks(pair):
    return [c for c in checks(pair) if was_run(c.result) and not check_ok(c)]


def warned_checks(pair):
    return [c for c in checks(pair) if was_run(c.result) and check_ok(c) and check_severity(c) == "warn"]


# --- what fails the run ------------------------------------------------------------------

def counts_against_run(pair):
    """A pair fails the run when it misses its expectation and its failure is not a known one."""
    return not pair.get("ok") and pair.get("baseline") != "known"


def sources_not_run(run):
    return [s for s in run.get("sources") or [] if s.get("status") != "ran"]


def run_failed(run):
    """The exit-code contract: any pair missing its expectation (baseline aside) or any source not run."""
    return bool(sources_not_run(run)) or any(counts_against_run(p) for p in run.get("pairs") or [])


# --- grouping (the HTML collapses big runs to groups) -----------------------------------------

_PREFIX = re.compile(r"^(.*?)[-_.]?\d+$")


def name_prefix(name):
    """``web12`` -> ``web``, ``db-3`` -> ``db``, ``10.0.1.5`` -> ``10.0.1``; else the name itself."""
    match = _PREFIX.match(name)
    if match and match.group(1):
        return match.group(1)
    return name


def group_of(run):
    """name -> group for every source and target: a source's first ``groups`` entry, else the name prefix."""
    groups = {}
    for source in run.get("sources") or []:
        declared = source.get("groups") or []
        groups[source["name"]] = declared[0] if declared else name_prefix(source["name"])
    for target in run.get("targets") or []:
        groups.setdefault(target["name"], name_prefix(target["name"]))
    for pair in run.get("pairs") or []:
        groups.setdefault(pair["target"], name_prefix(pair["target"]))
    return groups


# --- files -----------------------------------------------------------------------------------

def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so that a reader (node_exporter, a CI uploader) never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
