"""``report.json``: the run model itself, as the aggregator built it (baseline marks included).

Its shape is described by ``docs/report.schema.json`` (JSON Schema draft 2020-12), versioned by
the run model's ``schema_version``.
"""

from __future__ import annotations

import json

from .model import write_atomic

SCHEMA_VERSION = 1


def render_json(run):
    # compact: a 1,024-pair run is about 2 MB this way, 3.5 MB indented (people read the HTML)
    return json.dumps(run, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"


def write_json(run, path):
    return write_atomic(path, render_json(run))
