"""Report writers: one run model in, the run directory's files out.

``write_all(run, run_dir, options)`` writes, from the same run model (docs/reports.md):

    report.json   the run model (docs/report.schema.json)
    junit.xml     one testcase per source -> target -> check
    summary.md    outcome, matrix, failing pairs (also appended to $GITHUB_STEP_SUMMARY)
    report.html   self-contained matrix with layer switch and evidence
    netcheck.prom Prometheus textfile (blackbox_exporter names)

Every writer is a pure function of the run model (``render_*``) plus an atomic file write
(``write_*``), so each is tested with synthetic run models (``reports.sample``).
"""

from __future__ import annotations

import os

from .baseline import BaselineError, apply_baseline, baseline_from_run, load_baseline, validate_baseline, write_baseline
from .compare import compare_runs, load_report
from .html_report import GROUP_THRESHOLD, render_html, write_html
from .json_report import SCHEMA_VERSION, render_json, write_json
from .junit import build_junit, render_junit, write_junit
from .markdown import MAX_BYTES, github_step_summary, render_markdown, write_markdown
from .model import run_failed, write_atomic
from .prometheus import render_prom, write_prom

FILES = {"json": "report.json", "junit": "junit.xml", "markdown": "summary.md",
         "html": "report.html", "prom": "netcheck.prom"}

# options key -> default; anything else is an error (named), as for module options.
OPTIONS = {
    "formats": tuple(FILES),        # which files to write
    "title": "netcheck report",     # heading of summary.md and report.html
    "step_summary": "env",          # "env": $GITHUB_STEP_SUMMARY if set; a path; or None
    "markdown_max_bytes": MAX_BYTES,
    "html_group_threshold": GROUP_THRESHOLD,  # above this many sources the HTML shows groups
    "prom_copy": None,              # also write netcheck.prom here (node_exporter's textfile dir)
}


def check_options(options):
    """``options`` with defaults filled in; unknown keys or formats raise ValueError naming them."""
    options = dict(options or {})
    if "baseline" in options:
        raise ValueError("options.baseline: not a report option; give the known-failures file as netcheck_baseline")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError("options: unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(OPTIONS))))
    merged = dict(OPTIONS)
    merged.update(options)
    formats = merged["formats"]
    if isinstance(formats, str):
        formats = [formats]
    bad = [f for f in formats if f not in FILES]
    if bad:
        raise ValueError("options.formats: %s not among %s" % (", ".join(map(str, bad)), ", ".join(FILES)))
    merged["formats"] = tuple(formats)
    return merged


def write_all(run, run_dir, options=None):
    """Write the run's reports into ``run_dir`` (made if missing); return {format: path}.

    The run is written as given: a baseline is applied before, by ``apply_baseline`` (the one
    entry point, which the netcheck_report action calls with netcheck_baseline), so the files and
    the exit code always agree. An error writing any file raises (OSError): a report that cannot
    be written fails the run.
    """
    options = check_options(options)
    os.makedirs(run_dir, exist_ok=True)
    paths = {}
    for name in options["formats"]:
        path = os.path.join(run_dir, FILES[name])
        if name == "json":
            write_json(run, path)
        elif name == "junit":
            write_junit(run, path)
        elif name == "markdown":
            step_summary = options["step_summary"]
            if step_summary == "env":
                step_summary = github_step_summary()
            write_markdown(run, path, max_bytes=options["markdown_max_bytes"], step_summary=step_summary,
                           title=options["title"])
        elif name == "html":
            write_html(run, path, group_threshold=options["html_group_threshold"], title=options["title"])
        elif name == "prom":
            write_prom(run, path)
            if options["prom_copy"]:
                write_prom(run, options["prom_copy"])
        paths[name] = path
    return paths


__all__ = ["FILES", "OPTIONS", "SCHEMA_VERSION", "BaselineError", "apply_baseline", "baseline_from_run",
           "build_junit", "check_options", "compare_runs", "load_report", "write_baseline", "load_baseline", "render_html", "render_json", "render_junit",
           "render_markdown", "render_prom", "run_failed", "validate_baseline", "write_all",
           "write_atomic", "write_html", "write_json", "write_junit", "write_markdown", "write_prom"]
