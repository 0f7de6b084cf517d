"""Size and time of every report for a 32-host run (1,024 pairs) and a 100-host run.

    .venv/bin/python bench/report_bench.py [--hosts 32] [--big 100] [--browser]

Synthetic run models (``reports.sample``: neighbour, ICMP, two TCP ports and one URL per pair,
about 6% of pairs failing at some layer). Each writer is timed on its own, then write_all as a
whole; ``--browser`` also times headless Chromium loading the HTML (parse + the page's script)
until ``--dump-dom`` returns. Nothing is sent on any network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import reports  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import sample  # noqa: E402

WRITERS = (("json", "report.json", reports.write_json), ("junit", "junit.xml", reports.write_junit),
           ("markdown", "summary.md", reports.write_markdown), ("html", "report.html", reports.write_html),
           ("prom", "netcheck.prom", reports.write_prom))


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def browser_seconds(path, work):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return None
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--user-data-dir=%s" % os.path.join(work, "profile"), "--dump-dom", "file://%s#layer=tcp" % path]
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def bench(hosts, work, browser):
    run = sample.large_run(hosts, unreachable=0, include_self=True)
    directory = os.path.join(work, "run%d" % hosts)
    os.makedirs(directory)
    print("%d hosts, %d pairs, %d failing" % (hosts, len(run["pairs"]), run["totals"]["failed"]))
    print("  %-13s %12s %9s" % ("file", "size", "time"))
    for name, filename, writer in WRITERS:
        path = os.path.join(directory, filename)
        seconds = timed(writer, run, path)
        print("  %-13s %9.2f MB %7.3f s" % (filename, os.path.getsize(path) / 1e6, seconds))
    seconds = timed(reports.write_all, run, os.path.join(work, "all%d" % hosts), {"step_summary": None})
    print("  write_all (all five)          %7.3f s" % seconds)
    if browser:
        loaded = browser_seconds(os.path.join(directory, "report.html"), work)
        if loaded is None:
            print("  chromium not installed: browser load not measured")
        else:
            print("  report.html in headless Chromium (start, load, script, dump) %.2f s" % loaded)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--big", type=int, default=100, help="a second, grouped run (0: skip)")
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="netcheck-report-bench-")
    try:
        bench(args.hosts, work, args.browser)
        if args.big:
            bench(args.big, work, args.browser)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
