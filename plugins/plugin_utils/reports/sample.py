"""Synthetic run models, shaped exactly like the aggregator's (docs/report.schema.json).

Used by the unit tests, ``bench/report_bench.py`` and ``scripts/screenshot_report.py``: they
need realistic runs (faults at every layer, a source that could not run, asymmetric pairs)
without a lab. Deterministic for a given seed. Addresses are documentation-only (nothing is sent).

The probe results are crafted; the verdict of every pair (its code, hint, evidence and one
verdict per check) is made by the real ``diagnose.verdict`` from them, so a sample only ever
shows codes, hints and cells the verdict emits.
"""

from __future__ import annotations

import random

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import (
    CODES, DEFAULT_ICMP_CRIT, DEFAULT_ICMP_WARN, verdict,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import outcome
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as run_model

# the faults a sample can make: code -> (first failing layer, hint), both from diagnose.CODES
FAULTS = {code: CODES[code] for code in ("NEIGHBOUR_FAILED", "NO_ROUTE", "DNS_FAILED", "ICMP_LOSS", "HIGH_LATENCY",
                                         "PORT_FILTERED", "PORT_CLOSED", "PORT_OPEN", "HTTP_STATUS")}

TCP_PORTS = (22, 8080)


def _probe(target, kind, state, ok, timings, error, detail):
    return {"target": target, "kind": kind, "state": state, "ok": ok,
            "timings": {key: round(value, 3) for key, value in timings.items()},
            "error": error, "detail": detail}


def _mac(rng):
    return ":".join("%02x" % rng.randrange(256) for _ in range(6))


def _healthy_layers(name, address, rng, base_ms):
    rtts = [round(base_ms * rng.uniform(0.8, 1.3), 3) for _ in range(3)]
    avg = round(sum(rtts) / len(rtts), 3)
    mac = _mac(rng)
    neighbour = _probe(address, "neighbour", "reachable", True, {}, None,
                       {"address": address, "route": {"dev": "eth0", "gateway": None, "src": None},
                        "next_hop": address, "via_gateway": False, "dev": "eth0", "mac": mac,
                        "kernel_state": "REACHABLE", "wire_macs": [mac], "wire_error": None, "seen_on_wire": True,
                        "table_entries": None, "table_fulls_delta": None})
    icmp = _probe(address, "icmp", "ok", True, {"total_ms": 402.0 + avg}, None,
                  {"host": address, "address": address, "name": name, "family": "ipv4",
                   "reachable": True, "method": "raw", "sent": 3, "received": 3, "loss_pct": 0.0,
                   "rtts_ms": rtts, "ttl": 64, "duplicates": 0, "icmp_errors": [],
                   "rtt_min_ms": min(rtts), "rtt_avg_ms": avg, "rtt_max_ms": max(rtts),
                   "rtt_stddev_ms": round(max(rtts) - min(rtts), 3) / 2})
    tcp = []
    for port in TCP_PORTS:
        connect = round(base_ms * rng.uniform(1.0, 1.6), 3)
        tcp.append(_probe("%s:%d" % (address, port), "tcp", "open", True,
                          {"resolve_ms": 0.01, "connect_ms": connect, "total_ms": connect + 0.02}, None,
                          {"host": address, "port": port, "name": name, "expected": "open",
                           "address": address, "family": "ipv4", "errno": None, "errno_name": None,
                           "banner": "SSH-2.0-OpenSSH_9.2p1" if port == 22 else None, "expect": None,
                           "expect_matched": None, "conversation_error": None,
                           "outcome": outcome("syn_ack", phase="connect", verdict_ms=connect)}))
    url = "http://%s:8080/" % address
    connect = base_ms * 1.2
    http = [_probe(url, "http", "answered", True,
                   {"resolve_ms": 0.01, "connect_ms": connect, "processing_ms": base_ms * 2,
                    "transfer_ms": 0.05, "ttfb_ms": connect + base_ms * 2, "total_ms": connect + base_ms * 2 + 0.06},
                   None, {"url": url, "name": name, "status": 200, "reason": "OK", "http_version": "HTTP/1.1",
                          "failed_checks": [], "phase": None, "outcome": outcome("http_answer")})]
    return {"neighbour": neighbour, "icmp": icmp, "tcp": tcp, "http": http}


def _break(layers, code, address):
    """Turn healthy layer results into what ``code`` looks like (the verdict then judges them);
    returns (layers, resolve error or None)."""
    icmp, tcp, http = layers["icmp"], layers["tcp"], layers["http"]
    if code in ("NEIGHBOUR_FAILED", "NO_ROUTE"):
        if code == "NEIGHBOUR_FAILED":
            layers["neighbour"].update(state="unreachable", ok=False, error="neighbour state FAILED")
            layers["neighbour"]["detail"].update(mac=None, kernel_state="FAILED", wire_macs=[], seen_on_wire=False)
            reason, errno, name = "no_neighbour", 113, "EHOSTUNREACH"
        else:
            layers["neighbour"].update(state="no_route", ok=False, error="RTNETLINK answers: Network is unreachable")
            layers["neighbour"]["detail"].update(mac=None, kernel_state=None, route={"dev": None, "error":
                                                 "RTNETLINK answers: Network is unreachable"}, wire_macs=None,
                                                 seen_on_wire=None)
            reason, errno, name = "no_route", 101, "ENETUNREACH"
        icmp.update(state="unreachable", ok=False, error="no echo reply to 3 echo requests")
        icmp["detail"].update(received=0, loss_pct=100.0, rtts_ms=[], rtt_min_ms=None, rtt_avg_ms=None,
                              rtt_max_ms=None, rtt_stddev_ms=None, ttl=None)
        for result in tcp:
            result.update(state="unreachable", ok=False, error="%s (%s)" % (name, reason.replace("_", " ")))
            result["detail"].update(errno=errno, errno_name=name, outcome=outcome(reason, phase="connect", errno=errno))
        for result in http:
            result.update(state="failed", ok=False, error="connect: %s" % name)
            result["detail"].update(status=None, reason=None, phase="connect",
                                    outcome=outcome(reason, phase="connect", errno=errno))
        return layers, None
    if code == "DNS_FAILED":
        return {"neighbour": None, "icmp": None, "tcp": [], "http": []}, "name resolution failed: Name or service not known"
    if code in ("ICMP_LOSS", "HIGH_LATENCY"):
        if code == "ICMP_LOSS":
            icmp["detail"].update(received=1, loss_pct=66.67, rtts_ms=icmp["detail"]["rtts_ms"][:1])
        else:
            slow = [round(r + 600.0, 3) for r in icmp["detail"]["rtts_ms"]]
            icmp["detail"].update(rtts_ms=slow, rtt_min_ms=min(slow), rtt_max_ms=max(slow),
                                  rtt_avg_ms=round(sum(slow) / len(slow), 3))
        return layers, None
    if code in ("PORT_FILTERED", "PORT_CLOSED"):
        bad = tcp[-1]
        if code == "PORT_FILTERED":
            bad.update(state="filtered", ok=False, error="no answer within 3 s")
            bad["timings"].update(connect_ms=3000.0, total_ms=3000.02)
            bad["detail"]["outcome"] = outcome("no_answer", phase="connect", probes=1, verdict_ms=3000.0)
            http_reason = "no_answer"
        else:
            bad.update(state="closed", ok=False, error="connection refused (the host answered with RST)")
            bad["detail"].update(errno=111, errno_name="ECONNREFUSED",
                                 outcome=outcome("rst", phase="connect", errno=111))
            http_reason = "rst"
        for result in http:
            result.update(state="failed", ok=False, error="connect: %s" % bad["error"])
            result["detail"].update(status=None, reason=None, phase="connect",
                                    outcome=outcome(http_reason, phase="connect"))
        return layers, None
    if code == "PORT_OPEN":
        # port 22 must be filtered and is open (_expected), and the service port is closed too:
        # two failing checks of one pair, neither hiding the other
        return _break(layers, "PORT_CLOSED", address)
    if code == "HTTP_STATUS":
        result = http[0]
        result.update(ok=False, error="status 500 not in [200]")
        result["detail"].update(status=500, reason="Internal Server Error", failed_checks=["status 500 not in [200]"])
        return layers, None
    raise ValueError("unknown fault code %r" % code)


def _expected(layers, fault):
    ports = {str(r["detail"]["port"]): "open" for r in layers["tcp"]}
    if fault == "PORT_OPEN":
        ports["22"] = "filtered"
    return {"icmp": "auto", "ports": ports, "urls": [r["target"] for r in layers["http"]],
            "status_codes": {r["target"]: [200] for r in layers["http"]},
            "icmp_warn": dict(DEFAULT_ICMP_WARN), "icmp_crit": dict(DEFAULT_ICMP_CRIT)}


def _pair(source, target, address, rng, fault=None):
    base_ms = rng.uniform(0.05, 2.5)
    layers = _healthy_layers(target, address, rng, base_ms)
    resolve_error = None
    expected = _expected(layers, fault)
    if fault:
        layers, resolve_error = _break(layers, fault, address)
    ok, checked, judged = verdict(layers, expected, resolve_error)
    results = [r for r in [layers["neighbour"], layers["icmp"]] + layers["tcp"] + layers["http"] if r]
    total = round(max([r["timings"].get("total_ms", 0.0) for r in results] or [0.0]), 3)
    return {"source": source, "target": target, "address": None if fault == "DNS_FAILED" else address,
            "kind": "diagnose", "ok": ok, "checked": checked,
            "layers": layers, "verdict": judged, "timings": {"total": total},
            "expected": expected, "explain": None, "capture": None, "baseline": None}


def asymmetric_pairs(pairs):
    """[A, B] for every A that reaches B while B does not reach A on the same check."""
    return run_model.asymmetric_pairs(pairs)


def totals_of(pairs, sources):
    by_code = {}
    for pair in pairs:
        code = pair["verdict"]["code"]
        by_code[code] = by_code.get(code, 0) + 1
    ok = sum(1 for p in pairs if p["ok"])
    return {"pairs": len(pairs), "ok": ok, "failed": len(pairs) - ok,
            "sources_not_run": sum(1 for s in sources if s["status"] != "ran"), "by_code": by_code}


def sample_run(names=None, n_sources=4, faults=None, unreachable=(), groups=None, seed=7, started=None,
               include_self=False):
    """A run model: a full mesh of ``names`` (default nclab1..N), healthy unless ``faults``.

    faults      -- {(source, target): code} with codes from FAULTS
    unreachable -- names of sources that could not run (no pairs from them)
    groups      -- {name: [group, ...]} copied into each source's ``groups``
    include_self -- each source also checks itself (n*n pairs instead of n*(n-1))
    """
    rng = random.Random(seed)
    names = list(names or ["nclab%d" % (i + 1) for i in range(n_sources)])
    faults = dict(faults or {})
    addresses = {name: "192.0.2.%d" % (10 + i) if i < 240 else "198.51.100.%d" % (i - 230)
                 for i, name in enumerate(names)}
    sources = []
    pairs = []
    for name in names:
        status = "unreachable" if name in unreachable else "ran"
        source = {"name": name, "address": addresses[name], "status": status,
                  "error": ("Failed to connect to the host via ssh: ssh: connect to host %s port 22: "
                            "Connection timed out" % addresses[name]) if status != "ran" else None,
                  "elapsed_ms": None if status != "ran" else round(rng.uniform(600, 1400), 1),
                  "limits": None}
        if groups and name in groups:
            source["groups"] = list(groups[name])
        sources.append(source)
        if status != "ran":
            continue
        for target in names:
            if target != name or include_self:
                pairs.append(_pair(name, target, addresses[target], rng, faults.get((name, target))))
    started = started or "2026-11-26T10:00:00Z"
    return {"schema_version": 1,
            "meta": {"started": started, "finished": "2026-11-26T10:00:41Z",
                     "inventory": ["inventory/nclab.yml"], "ansible_core": "2.19.14",
                     "netcheck_version": "0.3.0", "playbook": "check.yml"},
            "sources": sources,
            "targets": [{"name": name, "address": addresses[name]} for name in names],
            "pairs": pairs,
            "asymmetric": asymmetric_pairs(pairs),
            "asymmetric_checks": run_model.asymmetric_checks(pairs),
            "totals": totals_of(pairs, sources)}


# The 4-host run the browser test and the docs describe: one fault per layer, one source down.
FOUR_HOST_FAULTS = {("nclab1", "nclab3"): "PORT_FILTERED",
                    ("nclab2", "nclab3"): "NEIGHBOUR_FAILED",
                    ("nclab3", "nclab1"): "HTTP_STATUS"}


def four_host_run():
    return sample_run(n_sources=4, faults=FOUR_HOST_FAULTS, unreachable=("nclab4",))


def large_run(n_sources=32, seed=11, fault_rate=0.06, unreachable=1, groups=None, include_self=False):
    """A run of ``n_sources`` hosts (n*(n-1) pairs) with about ``fault_rate`` of pairs failing."""
    rng = random.Random(seed)
    names = ["web%02d" % i for i in range(n_sources // 2)] + ["db%02d" % i for i in range(n_sources - n_sources // 2)]
    codes = sorted(FAULTS)
    faults = {}
    for source in names:
        for target in names:
            if source != target and rng.random() < fault_rate:
                faults[(source, target)] = rng.choice(codes)
    return sample_run(names=names, faults=faults, unreachable=names[-unreachable:] if unreachable else (),
                      groups=groups, seed=seed, include_self=include_self)
