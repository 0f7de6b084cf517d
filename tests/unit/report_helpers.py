"""Shared by the report tests: the reports package by its collection name, and synthetic runs.

The run models come from ``reports.sample`` (the same factory the benchmark and the screenshot
script use); the helpers here bend them into the cases a test needs.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import reports  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import model, sample  # noqa: E402

SCHEMA = REPO / "docs" / "report.schema.json"
DATA = REPO / "tests" / "data"


def recorded(name):
    """A run model check.yml wrote on a real 3-host lab (tests/data/record_lab_runs.py made it)."""
    import json
    return json.loads((DATA / name).read_text())


def pair_of(run, source, target):
    for pair in run["pairs"]:
        if pair["source"] == source and pair["target"] == target:
            return pair
    raise KeyError((source, target))


def dotted_run():
    """Sources named by IP address and FQDN: dots that must not split a JUnit classname."""
    run = sample.sample_run(names=["10.0.0.5", "web1.example.internal", "db1"],
                            faults={("10.0.0.5", "db1"): "PORT_CLOSED"})
    return run


def with_skipped_check(run, source, target):
    """The pair's HTTP check marked as not run (the verdict stopped lower down)."""
    run = copy.deepcopy(run)
    http = pair_of(run, source, target)["layers"]["http"][0]
    http.update(state="skipped", ok=False, error="not run: TCP port 8080 is filtered")
    return run
