"""Render a synthetic 12-host run's report.html and screenshot it in headless Chromium.

    .venv/bin/python scripts/screenshot_report.py [--out docs/img/report.png] [--fragment 'click=web2,db1']

The run is ``reports.sample``'s (documentation addresses, one fault per layer, a source that
could not run, one known failure from a baseline); the fragment drives the page's own hook
(layer switch, click) before the shot. Only a local file is opened.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import reports  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import sample  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--hide-scrollbars"]

NAMES = ["web1", "web2", "web3", "web4", "web5", "api1", "api2", "api3", "db1", "db2", "cache1", "bastion"]
FAULTS = {("web2", "db1"): "PORT_FILTERED", ("web3", "db1"): "PORT_FILTERED", ("api1", "db2"): "PORT_CLOSED",
          ("web1", "cache1"): "NEIGHBOUR_FAILED", ("api2", "web4"): "HTTP_STATUS", ("db1", "web5"): "ICMP_LOSS",
          ("api3", "bastion"): "DNS_FAILED", ("cache1", "web1"): "HTTP_STATUS"}


def showcase_run():
    run = sample.sample_run(names=NAMES, faults=FAULTS, unreachable=("bastion",), seed=3)
    explained = next(p for p in run["pairs"] if (p["source"], p["target"]) == ("web2", "db1"))
    explained["capture"] = {"summary": "3 SYN to 192.0.2.18:8080 seen leaving web2; no SYN-ACK, no RST came back"}
    explained["explain"] = {"summary": "security group sg-0db1 allows tcp/8080 only from sg-0api (web2 is in sg-0web)"}
    return reports.apply_baseline(run, {"known_failures": [{"source": "api2", "target": "web4", "code": "HTTP_STATUS",
                                                            "reason": "OPS-42: web4 health page broken"}]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "img", "report.png"))
    parser.add_argument("--fragment", default="click=web2,db1")
    parser.add_argument("--size", default="1400,1000", help="window width,height")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("screenshot_report.py: chromium is not installed (scripts/install.sh installs it)")
    work = tempfile.mkdtemp(prefix="netcheck-shot-")
    try:
        page = reports.write_html(showcase_run(), os.path.join(work, "report.html"), title="netcheck report (sample run)")
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        argv = [chromium] + FLAGS + ["--user-data-dir=%s" % os.path.join(work, "profile"),
                                     "--window-size=%s" % args.size, "--screenshot=%s" % os.path.abspath(args.out),
                                     "file://%s#%s" % (page, args.fragment)]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    main()
