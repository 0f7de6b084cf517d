"""The reports of a real `check.yml` run against the lab, with faults made for real.

One source host cannot be reached over SSH (an extra inventory host on the lab subnet's
never-assigned address .250: its ARP fails, so it is "unreachable" without leaving the lab),
and a TCP port is filtered for one pair (iptables DROP inside the target). The run directory
must then hold a report.json valid against the schema, a junit.xml with the error case and the
failure, a summary.md with the matrix, a netcheck.prom whose probe_success matches the verdicts,
and a report.html that Chromium colours and explains. A run that writes no report fails these
tests (only the Chromium one skips, when Chromium is not installed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from harness import netns

UNIT = Path(__file__).resolve().parents[1] / "unit"
if str(UNIT) not in sys.path:
    sys.path.insert(0, str(UNIT))

from report_browser import CHROMIUM, Dom, dump_dom, is_green  # noqa: E402
from report_helpers import REPO, SCHEMA  # noqa: E402

GHOST = "ghost"


@pytest.fixture(scope="module")
def faulty_run(lab, hosts, ansible, tmp_path_factory):
    source, target = hosts[0], hosts[1]
    work = tmp_path_factory.mktemp("reports-lab")
    ghost_address = lab.config.unassigned_ip  # on the lab bridge, never handed out: its ARP fails
    extra = work / "ghost.yml"
    extra.write_text("all:\n  hosts:\n    %s:\n      ansible_host: %s\n      ansible_ssh_common_args: "
                     "-o ConnectTimeout=3\n" % (GHOST, ghost_address))
    rule = ("INPUT", "-p", "tcp", "-s", source.ip, "--dport", "8080", "-j", "DROP")
    netns(target.namespace, "iptables", "-w", "-I", *rule)
    try:
        result = ansible.playbook(REPO / "check.yml", "-i", str(extra),
                                  "-e", "netcheck_report_dir=%s" % (work / "reports"),
                                  "-e", "netcheck_tcp_timeout=1")
    finally:
        netns(target.namespace, "iptables", "-w", "-D", *rule, check=False)
    run_dirs = sorted((work / "reports").glob("*/"))
    # no report is a broken gate, never a reason to skip
    assert run_dirs and (run_dirs[-1] / "report.html").exists(), "check.yml wrote no report.html:\n%s" % (
        result.stdout[-3000:] + result.stderr[-2000:])
    return {"rc": result.rc, "dir": run_dirs[-1], "source": source.name, "target": target.name,
            "run": json.loads((run_dirs[-1] / "report.json").read_text())}


def test_the_run_fails_and_every_report_is_written(faulty_run):
    assert faulty_run["rc"] != 0
    assert sorted(p.name for p in faulty_run["dir"].iterdir() if p.is_file()) == [
        "junit.xml", "netcheck.prom", "report.html", "report.json", "summary.md"]


def test_report_json_of_a_lab_run_with_faults_validates(faulty_run):
    schema = json.loads(SCHEMA.read_text())
    run = faulty_run["run"]
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(run)) == []
    statuses = {s["name"]: s["status"] for s in run["sources"]}
    assert statuses[GHOST] != "ran"
    pair = next(p for p in run["pairs"] if (p["source"], p["target"]) == (faulty_run["source"], faulty_run["target"]))
    assert pair["verdict"]["code"] == "PORT_FILTERED"


def test_junit_of_the_lab_run(faulty_run):
    xml = JUnitXml.fromfile(str(faulty_run["dir"] / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    errors = [c for c in cases if any(isinstance(r, Error) for r in c.result)]
    assert [c.classname for c in errors] == ["netcheck.%s" % GHOST]
    failures = {(c.classname, c.name): r for c in cases for r in c.result if isinstance(r, Failure)}
    port = [r for (classname, name), r in failures.items()
            if classname == "netcheck.%s" % faulty_run["source"] and name.startswith(faulty_run["target"] + " ")
            and "tcp/8080" in name]
    assert len(port) == 1 and port[0].type == "PORT_FILTERED"
    assert port[0].text.splitlines()[0] == port[0].message


def test_summary_and_prom_of_the_lab_run(faulty_run):
    summary = (faulty_run["dir"] / "summary.md").read_text()
    assert summary.startswith("## netcheck report: FAILED")
    assert "| **%s** |" % faulty_run["source"] in summary
    assert "PORT_FILTERED" in summary
    prom = (faulty_run["dir"] / "netcheck.prom").read_text()
    success = {}
    for family in text_string_to_metric_families(prom):
        for sample in family.samples:
            if sample.name == "probe_success" and sample.labels["layer"] == "all":
                success[(sample.labels["source"], sample.labels["target"])] = sample.value
    assert success == {(p["source"], p["target"]): float(p["ok"]) for p in faulty_run["run"]["pairs"]}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install.sh installs it)")
def test_html_of_the_lab_run_in_chromium(faulty_run):
    page = str(faulty_run["dir"] / "report.html")
    source, target = faulty_run["source"], faulty_run["target"]
    dom = Dom(dump_dom(page, "debug=colors&click=%s,%s" % (source, target)))
    cell = dom.cells[(source, target)]
    assert cell["data-shown"] == "transport" and cell["data-bg"] == dom.legend["transport"]
    assert all(dom.cells[(GHOST, t)]["data-shown"] == "notrun" for s, t in dom.cells if s == GHOST)
    assert "PORT_FILTERED" in dom.panel and "tcp/8080" in dom.panel
    icmp = Dom(dump_dom(page, "layer=icmp&debug=colors"))
    assert is_green(icmp.cells[(source, target)]["data-bg"])
