"""What changed since an earlier run: new failures, fixed pairs, changed codes, latency shifts.

``compare_runs(old, new)`` reads two run models (report.json) and returns the ``comparison``
record the terminal, summary.md and report.json show. A pair is (source, target); a latency shift
is an OK pair whose latency (ICMP average RTT, else TCP connect, else HTTP total: the HTML's
shade) at least doubled or halved and moved by more than ``min_shift_ms``.
"""

from __future__ import annotations

import json
import os

from .model import latency_ms

MIN_SHIFT_MS = 1.0
FACTOR = 2.0


def load_report(path):
    """A report.json (or a run directory holding one) as its run model."""
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    with open(path, encoding="utf-8") as stream:
        run = json.load(stream)
    if not isinstance(run, dict) or not isinstance(run.get("pairs"), list):
        raise ValueError("%s: not a netcheck report.json (no pairs)" % path)
    return run


def _code(pair):
    return (pair.get("verdict") or {}).get("code")


def compare_runs(old, new, file=None, min_shift_ms=MIN_SHIFT_MS, factor=FACTOR):
    before = {(p["source"], p["target"]): p for p in old.get("pairs") or []}
    found = {"file": file, "started": (old.get("meta") or {}).get("started"), "new_failures": [], "fixed": [],
             "changed": [], "latency": [], "gone": []}
    for pair in new.get("pairs") or []:
        key = (pair["source"], pair["target"])
        was = before.pop(key, None)
        entry = {"source": key[0], "target": key[1], "code": _code(pair)}
        if not pair.get("ok"):
            if was is None or was.get("ok"):
                found["new_failures"].append(dict(entry, was=_code(was) if was else None))
            elif _code(was) != _code(pair):
                found["changed"].append(dict(entry, was=_code(was)))
            continue
        if was is not None and not was.get("ok"):
            found["fixed"].append(dict(entry, was=_code(was)))
            continue
        if was is None:
            continue
        now_ms, was_ms = latency_ms(pair), latency_ms(was)
        if now_ms is None or was_ms is None or abs(now_ms - was_ms) < min_shift_ms:
            continue
        if now_ms >= was_ms * factor or was_ms >= now_ms * factor:
            found["latency"].append(dict(entry, was_ms=round(was_ms, 3), now_ms=round(now_ms, 3)))
    found["gone"] = [{"source": s, "target": t, "was": _code(p)} for (s, t), p in sorted(before.items())]
    return found
