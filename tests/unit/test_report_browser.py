"""report.html in a real headless Chromium (Debian ``chromium``, installed by scripts/install.sh).

The page applies a URL fragment on load (``#layer=tcp&click=a,b&debug=colors``): the layer switch,
a click on a cell, and, for tests, each cell's computed background colour written into
``data-bg``. ``--dump-dom`` then shows the DOM after the page's own JavaScript ran, so these
tests assert what a person would see: the colours, the switch, the evidence of a clicked cell.
Only a local file is opened; Chromium runs with its background networking off.
"""

from __future__ import annotations

import copy

import pytest

from report_browser import CHROMIUM, Dom, dump_dom, is_green
from report_helpers import pair_of, reports, sample

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install.sh installs it)")


@pytest.fixture(scope="module")
def four_html(tmp_path_factory):
    run = sample.four_host_run()
    pair = pair_of(run, "nclab1", "nclab3")
    pair["capture"] = {"summary": "3 SYN sent to 192.0.2.12:8080, no SYN-ACK, no RST"}
    pair["explain"] = {"summary": "sg-0abc (nclab3) allows 8080 only from 10.1.0.0/16"}
    run = reports.apply_baseline(run, {"known_failures": [{"source": "nclab3", "target": "nclab1"}]})
    return reports.write_html(run, str(tmp_path_factory.mktemp("report") / "report.html"))


def _open(four_html, fragment):
    return Dom(dump_dom(four_html, fragment))


def test_cells_are_coloured_by_their_first_failing_layer(four_html):
    dom = _open(four_html, "debug=colors")
    assert dom.body["data-layer"] == "all"
    shown = {key: cell["data-shown"] for key, cell in dom.cells.items()}
    assert shown[("nclab1", "nclab3")] == "transport"
    assert shown[("nclab2", "nclab3")] == "link"
    assert shown[("nclab3", "nclab1")] == "application"
    assert shown[("nclab1", "nclab2")] == "ok"
    assert [shown[("nclab4", t)] for t in ("nclab1", "nclab2", "nclab3", "nclab4")] == ["notrun"] * 4
    colour = {key: cell["data-bg"] for key, cell in dom.cells.items()}
    assert colour[("nclab1", "nclab3")] == dom.legend["transport"] == "rgb(255, 127, 14)"
    assert colour[("nclab2", "nclab3")] == dom.legend["link"]
    assert colour[("nclab3", "nclab1")] == dom.legend["application"]
    assert colour[("nclab4", "nclab1")] == dom.legend["notrun"]
    assert is_green(colour[("nclab1", "nclab2")])
    assert len({colour[key] for key in colour if shown[key] == "ok"}) > 1  # shaded by latency
    assert "asym" in dom.cells[("nclab3", "nclab2")]["class"]
    assert "bl-known" in dom.cells[("nclab3", "nclab1")]["class"]


def test_layer_switch_recolours_the_cells(four_html):
    icmp = _open(four_html, "layer=icmp&debug=colors")
    assert icmp.body["data-layer"] == "icmp"
    assert icmp.cells[("nclab1", "nclab3")]["data-shown"] == "ok"  # pings pass, only a port is filtered
    assert is_green(icmp.cells[("nclab1", "nclab3")]["data-bg"])
    assert icmp.cells[("nclab2", "nclab3")]["data-shown"] == "network"
    assert icmp.cells[("nclab2", "nclab3")]["data-bg"] == icmp.legend["network"]
    assert icmp.cells[("nclab3", "nclab1")]["data-shown"] == "ok"
    tcp = _open(four_html, "layer=tcp&debug=colors")
    assert tcp.cells[("nclab1", "nclab3")]["data-bg"] == tcp.legend["transport"]
    assert tcp.cells[("nclab3", "nclab1")]["data-shown"] == "ok"
    http = _open(four_html, "layer=http&debug=colors")
    assert http.cells[("nclab3", "nclab1")]["data-bg"] == http.legend["application"]
    assert http.cells[("nclab1", "nclab3")]["data-shown"] == "application"


def test_clicking_a_cell_shows_its_evidence(four_html):
    dom = _open(four_html, "click=nclab1,nclab3")
    assert dom.panel_attrs["data-pair"] == "nclab1,nclab3"
    assert "selected" in dom.cells[("nclab1", "nclab3")]["class"]
    text = dom.panel
    assert "nclab1 \u2192 nclab3 (192.0.2.12)" in text
    assert "PORT_FILTERED" in text and "first failing layer: transport" in text
    assert "the SYN went unanswered" in text  # the hint
    assert "tcp 192.0.2.12:8080: filtered, expected open (no answer within 3 s)" in text  # the check's evidence
    for layer_row in ("neighbour", "icmp", "tcp/22", "tcp/8080", "http://192.0.2.12:8080/"):
        assert layer_row in text
    assert "3/3 replies, 0% loss, rtt" in text  # ICMP facts
    assert "3 SYN sent to 192.0.2.12:8080, no SYN-ACK" in text  # capture summary
    assert "sg-0abc (nclab3) allows 8080 only from 10.1.0.0/16" in text  # EC2 explanation


def test_clicking_a_known_failure_and_a_source_not_run(four_html):
    known = _open(four_html, "click=nclab3,nclab1")
    assert "Known failure (baseline)" in known.panel and "HTTP_STATUS" in known.panel
    down = _open(four_html, "click=nclab4,nclab2")
    assert "nclab4 could not run" in down.panel and "Connection timed out" in down.panel


def test_big_run_collapses_to_groups_and_drills_down(tmp_path):
    run = sample.large_run(70, unreachable=0)
    failing = next(p for p in run["pairs"] if p["source"].startswith("web") and p["target"].startswith("db") and not p["ok"])
    path = reports.write_html(copy.deepcopy(run), str(tmp_path / "report.html"))
    dom = Dom(dump_dom(path, "drill=web,db&click=%s,%s" % (failing["source"], failing["target"])))
    assert set(dom.groups) == {("web", "web"), ("web", "db"), ("db", "web"), ("db", "db")}
    assert dom.groups[("web", "db")]["data-shown"] != "ok"
    assert "hidden" not in dom.drills["drill-0-1"]
    assert all("hidden" in attrs for name, attrs in dom.drills.items() if name != "drill-0-1")
    assert dom.panel_attrs["data-pair"] == "%s,%s" % (failing["source"], failing["target"])
    assert failing["verdict"]["code"] in dom.panel
