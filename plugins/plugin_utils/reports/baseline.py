"""Known failures baseline: failures a team already knows about report, but do not fail the run.

The file (YAML or JSON, ``netcheck_baseline: FILE``)::

    version: 1
    known_failures:
      - source: web1            # inventory name; shell-style patterns allowed (web*)
        target: db1
        code: PORT_FILTERED     # optional: only this verdict code is known
        reason: NET-123 security group change pending   # optional, shown in reports

A failing pair matching an entry is marked ``baseline: known`` and does not fail the run; a
matching pair that now passes is marked ``baseline: fixed`` (time to remove the entry); a
failing pair matching no entry, or failing with another code than the entry's, is a new
failure and fails the run. A source that could not run always fails the run.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os

import yaml

from .model import write_atomic


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the entry and the field."""


def load_baseline(path):
    """Read and check a baseline file (YAML, of which JSON is a subset)."""
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise BaselineError("%s: not YAML/JSON: %s" % (path, exc)) from exc
    return validate_baseline(data, str(path))


def validate_baseline(data, where="baseline"):
    """The entries of a baseline document, each with source, target, code (or None), reason."""
    if data is None:
        return []
    if isinstance(data, list):
        data = {"known_failures": data}
    if not isinstance(data, dict):
        raise BaselineError("%s: expected a mapping with known_failures, got %s" % (where, type(data).__name__))
    unknown = set(data) - {"version", "known_failures"}
    if unknown:
        raise BaselineError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
    if data.get("version", 1) != 1:
        raise BaselineError("%s.version: %r is not a supported version (1)" % (where, data["version"]))
    entries = []
    for index, entry in enumerate(data.get("known_failures") or []):
        field = "%s.known_failures[%d]" % (where, index)
        if not isinstance(entry, dict):
            raise BaselineError("%s: expected a mapping, got %r" % (field, entry))
        unknown = set(entry) - {"source", "target", "code", "reason"}
        if unknown:
            raise BaselineError("%s: unknown keys %s" % (field, ", ".join(sorted(unknown))))
        for key in ("source", "target"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise BaselineError("%s.%s: a name or pattern is required" % (field, key))
        if entry.get("code") is not None and not isinstance(entry["code"], str):
            raise BaselineError("%s.code: expected a verdict code such as PORT_FILTERED" % field)
        entries.append({"source": entry["source"], "target": entry["target"],
                        "code": entry.get("code"), "reason": entry.get("reason")})
    return entries


def _matches(entry, pair):
    return (fnmatch.fnmatchcase(pair["source"], entry["source"])
            and fnmatch.fnmatchcase(pair["target"], entry["target"]))


def apply_baseline(run, baseline):
    """A copy of ``run`` with every pair's ``baseline`` set ("known", "fixed" or None).

    ``baseline`` is a path or already-loaded entries (``validate_baseline``'s output or the raw
    document). The copy also gets ``baseline`` (entries, what matched, stale entries) and
    ``totals.known`` / ``totals.fixed`` / ``totals.new_failures``.
    """
    if isinstance(baseline, str):
        entries = load_baseline(baseline)
        source_file = baseline
    else:
        entries = validate_baseline(baseline)
        source_file = None
    marked = copy.deepcopy(run)
    used = set()
    for pair in marked.get("pairs") or []:
        pair["baseline"] = None
        code = (pair.get("verdict") or {}).get("code")
        for index, entry in enumerate(entries):
            if not _matches(entry, pair):
                continue
            if pair.get("ok"):
                pair["baseline"] = "fixed"
            elif entry["code"] in (None, code):
                pair["baseline"] = "known"
            else:
                continue  # known pair, but it now fails another way: a new failure
            used.add(index)
            if entry["reason"]:
                pair["baseline_reason"] = entry["reason"]
            break
    pairs = marked.get("pairs") or []
    totals = marked.setdefault("totals", {})
    totals["known"] = sum(1 for p in pairs if p["baseline"] == "known")
    totals["fixed"] = sum(1 for p in pairs if p["baseline"] == "fixed")
    totals["new_failures"] = sum(1 for p in pairs if not p.get("ok") and p["baseline"] != "known")
    marked["baseline"] = {"file": source_file, "entries": len(entries),
                          "stale": [entries[i] for i in range(len(entries)) if i not in used]}
    return marked


# --- writing a baseline from a run ---------------------------------------------------------------

REASON_TODO = "TODO: why this failure is accepted (ticket, owner, date)"


def baseline_from_run(run, existing=None):
    """The known-failures document of ``run``: one entry per failing pair (source, target, code),
    an entry of ``existing`` that still matches a failing pair keeping its reason and its patterns;
    entries whose pairs pass again (fixed) or were not checked are dropped."""
    existing = validate_baseline(existing) if existing is not None else []
    entries, covered = [], set()
    for entry in existing:
        failing = [p for p in run.get("pairs") or [] if not p.get("ok") and _matches(entry, p)
                   and entry["code"] in (None, (p.get("verdict") or {}).get("code"))]
        if failing:
            entries.append(entry)
            covered.update((p["source"], p["target"]) for p in failing)
    for pair in run.get("pairs") or []:
        if pair.get("ok") or (pair["source"], pair["target"]) in covered:
            continue
        entries.append({"source": pair["source"], "target": pair["target"],
                        "code": (pair.get("verdict") or {}).get("code"), "reason": REASON_TODO})
        covered.add((pair["source"], pair["target"]))
    # plain str: names may come as Ansible's own str subclasses, which safe_dump cannot write
    return {"version": 1, "known_failures": [{k: str(v) for k, v in e.items() if v is not None} for e in entries]}


def write_baseline(run, path):
    """Write (or update) the known-failures file ``path`` from ``run``; returns its document."""
    existing = load_baseline(path) if os.path.isfile(path) else None
    document = baseline_from_run(run, existing)
    header = ("# Known failures written by netcheck (netcheck_baseline_write) from the run of %s.\n"
              "# Fill in each reason; use the file with -e netcheck_baseline=%s\n"
              % ((run.get("meta") or {}).get("started") or "?", path))
    write_atomic(path, header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=110))
    return document
