"""Unit tests of the report writers (plugins/plugin_utils/reports): each file is written from a run
model recorded on a real lab (tests/data/lab_run_*.json, see tests/data/record_lab_runs.py) or, for
shapes a 3-host lab cannot make (40+ targets, dotted names, unreachable sources, HTTP 500, DNS
failures, route hops), from the synthetic reports.sample runs, and read back with an independent reader (jsonschema, junitparser,
prometheus_client's text parser). Nothing is sent."""

from __future__ import annotations

import copy
import json
import os
from html.parser import HTMLParser

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from prometheus_client.parser import text_string_to_metric_families

from report_helpers import SCHEMA, dotted_run, model, pair_of, recorded, reports, sample, with_skipped_check


@pytest.fixture(scope="module")
def faults():
    """Recorded on a real 3-host lab by tests/data/record_lab_runs.py (its docstring lists the faults)."""
    return recorded("lab_run_faults.json")


@pytest.fixture(scope="module")
def partial():
    """The same lab with ncrec3's python missing: a source that could not run."""
    return recorded("lab_run_partial_mesh.json")


@pytest.fixture(scope="module")
def four():
    """An invented run, kept for what the lab cannot make: an unreachable source, NEIGHBOUR_FAILED, an
    HTTP 500, fixed timestamps (tests of codes, hints, totals and each format run on the recordings)."""
    return sample.four_host_run()


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


# --- write_all -------------------------------------------------------------------------------

def test_write_all_writes_the_five_files_into_the_run_directory(tmp_path, faults, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    paths = reports.write_all(faults, str(tmp_path / "run"), {})
    assert sorted(paths) == ["html", "json", "junit", "markdown", "prom"]
    assert {os.path.basename(p) for p in paths.values()} == {
        "report.json", "junit.xml", "summary.md", "report.html", "netcheck.prom"}
    for path in paths.values():
        assert os.path.getsize(path) > 0
    # the recording, written again, is the same report (check.yml wrote it with these writers)
    assert json.loads(open(paths["json"]).read()) == faults
    assert sorted(os.listdir(tmp_path / "run")) == sorted(os.path.basename(p) for p in paths.values())


def test_write_all_rejects_an_unknown_option_by_name(tmp_path, four):
    with pytest.raises(ValueError, match="options: unknown keys basline"):
        reports.write_all(four, str(tmp_path), {"basline": "x.yml"})
    with pytest.raises(ValueError, match="options.formats: pdf"):
        reports.write_all(four, str(tmp_path), {"formats": ["json", "pdf"]})


def test_write_all_writes_only_the_formats_asked(tmp_path, four):
    paths = reports.write_all(four, str(tmp_path), {"formats": ["json", "prom"]})
    assert sorted(paths) == ["json", "prom"]
    assert sorted(os.listdir(tmp_path)) == ["netcheck.prom", "report.json"]


def test_write_all_appends_the_summary_to_github_step_summary(tmp_path, four, monkeypatch):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    reports.write_all(four, str(tmp_path / "run"), {"formats": ["markdown"]})
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert text[len("earlier step\n"):] == (tmp_path / "run" / "summary.md").read_text()


def test_write_all_copies_the_prom_file_for_node_exporter(tmp_path, four):
    textfile_dir = tmp_path / "textfile"
    reports.write_all(four, str(tmp_path / "run"), {"formats": ["prom"], "prom_copy": str(textfile_dir / "netcheck.prom")})
    assert (textfile_dir / "netcheck.prom").read_text() == (tmp_path / "run" / "netcheck.prom").read_text()


def test_write_all_has_no_second_baseline_entry_point(tmp_path, four):
    # one entry point (apply_baseline, called by the netcheck_report action): the files and the exit
    # code can never read two different baselines
    baseline = {"known_failures": [{"source": "nclab1", "target": "nclab3"}]}
    with pytest.raises(ValueError, match="netcheck_baseline"):
        reports.write_all(four, str(tmp_path), {"formats": ["json"], "baseline": baseline})
    paths = reports.write_all(reports.apply_baseline(four, baseline), str(tmp_path), {"formats": ["json"]})
    written = json.loads(open(paths["json"]).read())
    assert pair_of(written, "nclab1", "nclab3")["baseline"] == "known"
    assert pair_of(four, "nclab1", "nclab3")["baseline"] is None  # the caller's run is not changed


# --- report.json -----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: recorded("lab_run_faults.json"), lambda: recorded("lab_run_partial_mesh.json"),
                                  sample.four_host_run, dotted_run, lambda: sample.large_run(12)],
                         ids=["recorded-faults", "recorded-partial-mesh", "four-hosts", "dotted-names", "twelve-hosts"])
def test_report_json_validates_against_the_schema(tmp_path, validator, make):
    run = make()
    path = reports.write_json(run, str(tmp_path / "report.json"))
    written = json.loads(open(path).read())
    assert list(validator.iter_errors(written)) == []
    assert written == json.loads(json.dumps(run))


def test_report_json_with_baseline_marks_validates(validator, four):
    marked = reports.apply_baseline(four, {"known_failures": [{"source": "nclab1", "target": "*"}]})
    assert list(validator.iter_errors(marked)) == []


def test_schema_rejects_what_the_contract_forbids(validator, four):
    broken = copy.deepcopy(four)
    del pair_of(broken, "nclab1", "nclab3")["verdict"]
    pair_of(broken, "nclab1", "nclab2")["verdict"]["first_failing_layer"] = "physical"
    broken["sources"][0]["status"] = "maybe"
    broken["schema_version"] = 2
    messages = " | ".join(e.message for e in validator.iter_errors(broken))
    assert "'verdict' is a required property" in messages
    assert "'physical' is not one of" in messages
    assert "'maybe' is not one of" in messages
    assert "1 was expected" in messages


# --- junit.xml -------------------------------------------------------------------------------

def _cases(path):
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if hasattr(xml, "__iter__") else [xml]
    return xml, suites, [case for suite in suites for case in suite]


def _expected_checks(run):
    return sum(len(model.checks(pair)) for pair in run["pairs"])


def test_junit_has_one_case_per_check_and_one_error_per_source_not_run(tmp_path, partial):
    path = reports.write_junit(partial, str(tmp_path / "junit.xml"))
    xml, suites, cases = _cases(path)
    assert len(cases) == _expected_checks(partial) + 1  # + ncrec3, whose python is missing
    assert [s.name for s in suites] == ["netcheck.ncrec1", "netcheck.ncrec2", "netcheck.ncrec3"]
    errors = [c for c in cases if any(isinstance(r, Error) for r in c.result)]
    assert [c.classname for c in errors] == ["netcheck.ncrec3"]
    assert errors[0].result[0].type == "SOURCE_FAILED"
    assert "module interpreter '/nonexistent/python3' was not found" in errors[0].result[0].message
    assert xml.errors == 1


def test_junit_failures_are_each_checks_own_code_hint_and_evidence(tmp_path, faults):
    path = reports.write_junit(faults, str(tmp_path / "junit.xml"))
    xml, _, cases = _cases(path)
    assert len(cases) == _expected_checks(faults)
    failing = {(pair["source"], check["check"], pair["target"]): check
               for pair in faults["pairs"] for check in pair["verdict"]["checks"] if not check["ok"]}
    failures = [(c, r) for c in cases for r in c.result if isinstance(r, Failure)]
    assert len(failures) == len(failing) == xml.failures == 10
    types = sorted(r.type for _, r in failures)
    assert types == sorted(["PORT_FILTERED"] * 4 + ["PORT_REJECTED"] * 2 + ["PORT_CLOSED", "PORT_OPEN"]
                           + ["ICMP_FILTERED"] * 2)
    for case, result in failures:
        # a case is named "<target> (<address>) <check> [<layer>]", an HTTP check by its URL alone
        check = next(c for (source, name, target), c in failing.items()
                     if case.classname == "netcheck." + source and case.name.startswith(target + " ")
                     and (" %s [" % name.replace("http ", "", 1)) in case.name)
        assert result.type == check["code"] and result.message == check["hint"]
        assert result.text.splitlines()[0] == check["hint"]
        assert "evidence: " + check["evidence"][0] in result.text.splitlines()
    by_name = {(c.classname, c.name): r for c, r in failures}
    rejected = by_name[("netcheck.ncrec1", "ncrec3 (10.77.211.13) tcp/8080 [transport]")]
    assert rejected.type == "PORT_REJECTED" and "ICMP port unreachable (type 3 code 3) from 10.77.211.13" in rejected.text
    assert "pair: PORT_REJECTED [transport], 2 of its checks failed" in rejected.text.splitlines()
    # ncrec3 -> ncrec2 is ICMP_FILTERED as a pair; its tcp/8080 case fails with its own PORT_FILTERED
    assert pair_of(faults, "ncrec3", "ncrec2")["verdict"]["code"] == "ICMP_FILTERED"
    assert by_name[("netcheck.ncrec3", "ncrec2 (10.77.211.12) tcp/8080 [transport]")].type == "PORT_FILTERED"
    assert by_name[("netcheck.ncrec3", "ncrec2 (10.77.211.12) icmp [network]")].type == "ICMP_FILTERED"
    # the ICMP_LOSS warning on ncrec2 -> ncrec1 is no failure: that pair passes
    assert not any(c.classname == "netcheck.ncrec2" for c, _ in failures)


def test_junit_case_names_hold_target_check_and_layer_and_time_is_the_probes(tmp_path, four):
    path = reports.write_junit(four, str(tmp_path / "junit.xml"))
    _, _, cases = _cases(path)
    names = {c.name: c for c in cases if c.classname == "netcheck.nclab1"}
    assert set(n for n in names if n.startswith("nclab2 ")) == {
        "nclab2 (192.0.2.11) neighbour [link]", "nclab2 (192.0.2.11) icmp [network]",
        "nclab2 (192.0.2.11) tcp/22 [transport]", "nclab2 (192.0.2.11) tcp/8080 [transport]",
        "nclab2 (192.0.2.11) http://192.0.2.11:8080/ [application]"}
    assert names["nclab3 (192.0.2.12) tcp/8080 [transport]"].time == pytest.approx(3.0, abs=0.001)


def test_junit_classname_keeps_dotted_sources_in_one_group(tmp_path):
    run = dotted_run()
    path = reports.write_junit(run, str(tmp_path / "junit.xml"))
    _, suites, cases = _cases(path)
    assert {c.classname for c in cases} == {"netcheck.10_0_0_5", "netcheck.web1_example_internal", "netcheck.db1"}
    assert all(c.classname.count(".") == 1 for c in cases)
    suite = suites[0]
    assert suite.hostname == "192.0.2.10"
    assert suite.timestamp == "2026-11-26T10:00:00"
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["source"] == "10.0.0.5"
    assert properties["ansible_core"] == "2.19.14"
    assert properties["netcheck.version"] == "0.3.0"


def test_junit_check_not_run_is_skipped_with_its_reason(tmp_path, four):
    run = with_skipped_check(four, "nclab1", "nclab3")
    path = reports.write_junit(run, str(tmp_path / "junit.xml"))
    xml, _, cases = _cases(path)
    skipped = [(c, r) for c in cases for r in c.result if isinstance(r, Skipped)]
    assert [(c.name, r.message) for c, r in skipped] == [
        ("nclab3 (192.0.2.12) http://192.0.2.12:8080/ [application]", "not run: TCP port 8080 is filtered")]
    assert xml.skipped == 1


def test_junit_known_failure_is_skipped_not_failed(tmp_path, four):
    marked = reports.apply_baseline(four, {"known_failures": [{"source": "nclab1", "target": "nclab3"}]})
    path = reports.write_junit(marked, str(tmp_path / "junit.xml"))
    _, _, cases = _cases(path)
    ours = [c for c in cases if c.classname == "netcheck.nclab1" and c.name.startswith("nclab3 ")]
    results = [r for c in ours for r in c.result]
    assert not any(isinstance(r, Failure) for r in results)
    assert [r.message.split(":")[0] for r in results if isinstance(r, Skipped)] == ["known failure (baseline)"] * 2


def test_junit_failing_pair_without_failing_check_gets_a_verdict_case(tmp_path, four):
    run = copy.deepcopy(four)
    pair = pair_of(run, "nclab1", "nclab2")
    pair["ok"] = False
    pair["verdict"].update(code="ICMP_FILTERED_ONLY", first_failing_layer="network", hint="expected no answer")
    path = reports.write_junit(run, str(tmp_path / "junit.xml"))
    _, _, cases = _cases(path)
    verdicts = [c for c in cases if c.name == "nclab2 verdict [network]"]
    assert len(verdicts) == 1 and verdicts[0].result[0].type == "ICMP_FILTERED_ONLY"


# --- summary.md ------------------------------------------------------------------------------

def test_summary_holds_the_matrix_and_the_failing_pairs_with_hints(faults, partial):
    text = reports.render_markdown(faults)
    assert text.startswith("## netcheck report: FAILED")
    assert "8 pairs: 2 ok, 6 failed (0 known from the baseline), 0 of 3 sources could not run." in text
    assert "| **ncrec1** | \u00b7 | \U0001F7E7 | \U0001F7E7 | \U0001F7E7 | \U0001F7E7 |" in text
    assert "| **ncrec2** | \u26A0 | \u00b7 | \U0001F7E9 | \u00b7 | \u00b7 |" in text  # ICMP_LOSS: a warning
    assert "| **ncrec3** | \U0001F7E5 | \U0001F7E5 | \u00b7 | \u00b7 | \u00b7 |" in text  # lowest failing layer
    assert ("| ncrec3 | ncrec2 | icmp ICMP_FILTERED, tcp/8080 PORT_FILTERED, http http://10.77.211.12:8080/ "
            "PORT_FILTERED | network |") in text
    assert ("| ncrec1 | ncrec3 | tcp/8080 PORT_REJECTED, http http://10.77.211.13:8080/ PORT_REJECTED | transport | "
            "the SYN was answered with an ICMP unreachable: a firewall REJECT rule") in text
    assert "| ncrec1 | h2-closed | tcp/9 PORT_CLOSED | transport | the host answered the SYN with RST" in text
    assert "| ncrec1 | h3-open | tcp/22 PORT_OPEN | transport |" in text
    assert "| ncrec3 | ncrec1 | icmp ICMP_FILTERED | network | echo requests go unanswered" in text
    text = reports.render_markdown(partial)
    assert "| **ncrec3** | \u2B1B | \u2B1B |" in text
    assert "**ncrec3** (failed): The module interpreter" in text


def test_summary_passes_when_every_pair_is_ok():
    text = reports.render_markdown(sample.sample_run(n_sources=3))
    assert text.startswith("## netcheck report: passed")
    assert "Failing pairs" not in text


def test_summary_is_truncated_under_its_limit_with_a_note():
    run = sample.large_run(32, fault_rate=0.5)
    full = reports.render_markdown(run)
    assert len(full.encode()) < reports.markdown.MAX_BYTES
    small = reports.render_markdown(run, max_bytes=8000)
    assert len(small.encode()) <= 8000
    assert "_Truncated to stay under 8000 bytes:" in small
    assert len(small) < len(full)


def test_summary_of_a_wide_run_lists_sources_instead_of_columns():
    text = reports.render_markdown(sample.large_run(48))
    assert "48 targets are too many columns" in text
    assert text.count("\n| web") + text.count("\n| db") >= 48


# --- netcheck.prom ---------------------------------------------------------------------------

def _series(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def test_prom_probe_success_matches_the_verdicts(faults):
    series = _series(reports.render_prom(faults))
    pairs = {(l["source"], l["target"]): v for l, v in series["probe_success"] if l["layer"] == "all"}
    assert pairs == {(p["source"], p["target"]): float(p["ok"]) for p in faults["pairs"]}
    checks = {(l["source"], l["target"], l["layer"], l.get("port") or l.get("url")): v
              for l, v in series["probe_success"] if l["layer"] != "all"}
    assert checks[("ncrec1", "ncrec2", "tcp", "8080")] == 0.0
    assert checks[("ncrec1", "ncrec2", "tcp", "22")] == 1.0
    assert checks[("ncrec1", "ncrec3", "http", "http://10.77.211.13:8080/")] == 0.0
    assert checks[("ncrec3", "ncrec1", "icmp", None)] == 0.0
    assert checks[("ncrec1", "h3-open", "tcp", "22")] == 0.0
    assert len(checks) == _expected_checks(faults)
    codes = {(l["source"], l["target"], l["layer"], l.get("port")): l["code"] for l, _ in series["netcheck_check_verdict"]}
    assert codes[("ncrec2", "ncrec1", "icmp", None)] == "ICMP_LOSS"
    assert codes[("ncrec1", "h2-closed", "tcp", "9")] == "PORT_CLOSED"
    assert codes[("ncrec1", "ncrec3", "tcp", "8080")] == "PORT_REJECTED"


def test_prom_carries_rtt_loss_status_and_run_outcome(faults, partial):
    series = _series(reports.render_prom(faults))
    pair = pair_of(faults, "ncrec2", "ncrec3")
    rtt = {l["stat"]: v for l, v in series["probe_icmp_rtt_seconds"] if (l["source"], l["target"]) == ("ncrec2", "ncrec3")}
    assert rtt["avg"] == pytest.approx(pair["layers"]["icmp"]["detail"]["rtt_avg_ms"] / 1000.0)
    loss = {(l["source"], l["target"]): v for l, v in series["probe_icmp_packet_loss_ratio"]}
    # 1 of 3 echoes dropped by iptables' statistic nth; all of them dropped for ncrec3
    assert loss[("ncrec2", "ncrec1")] == pytest.approx(1 / 3, abs=0.001)
    assert loss[("ncrec3", "ncrec1")] == 1.0 and loss[("ncrec2", "ncrec3")] == 0.0
    status = {(l["source"], l["target"]): v for l, v in series["probe_http_status_code"]}
    assert status[("ncrec2", "ncrec1")] == 200
    assert status[("ncrec1", "ncrec2")] == 0 and status[("ncrec1", "ncrec3")] == 0  # no response
    assert series["netcheck_run_success"] == [({}, 0.0)]
    verdicts = {(l["source"], l["target"]): l["code"] for l, _ in series["netcheck_pair_verdict"]}
    assert verdicts[("ncrec1", "ncrec3")] == "PORT_REJECTED" and verdicts[("ncrec2", "ncrec1")] == "OK"
    up = {l["source"]: v for l, v in _series(reports.render_prom(partial))["netcheck_source_up"]}
    assert up == {"ncrec1": 1.0, "ncrec2": 1.0, "ncrec3": 0.0}


def test_prom_escapes_label_values(four):
    run = copy.deepcopy(four)
    pair_of(run, "nclab1", "nclab2")["target"] = 'odd "name"\\with\nnewline'
    series = _series(reports.render_prom(run))
    assert 'odd "name"\\with\nnewline' in {l["target"] for l, _ in series["probe_success"]}


def test_prom_is_written_atomically(tmp_path, four, monkeypatch):
    path = tmp_path / "netcheck.prom"
    path.write_text("# the previous run\n")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        reports.write_prom(four, str(path))
    assert path.read_text() == "# the previous run\n"
    assert os.listdir(tmp_path) == ["netcheck.prom"]  # no temporary file left behind
    monkeypatch.undo()
    reports.write_prom(four, str(path))
    assert path.read_text() == reports.render_prom(four)
    assert os.listdir(tmp_path) == ["netcheck.prom"]


# --- baseline --------------------------------------------------------------------------------

def test_known_failure_does_not_fail_the_run_and_a_new_one_does(four):
    healthy_sources = copy.deepcopy(four)
    healthy_sources["sources"][3]["status"] = "ran"  # leave only pair failures
    assert reports.run_failed(healthy_sources)
    known_all = {"known_failures": [{"source": "nclab1", "target": "nclab3", "code": "PORT_FILTERED"},
                                    {"source": "nclab2", "target": "nclab3"},
                                    {"source": "nclab3", "target": "nclab1", "reason": "NET-7"}]}
    marked = reports.apply_baseline(healthy_sources, known_all)
    assert not reports.run_failed(marked)
    assert marked["totals"]["known"] == 3 and marked["totals"]["new_failures"] == 0
    assert pair_of(marked, "nclab3", "nclab1")["baseline_reason"] == "NET-7"
    partial = reports.apply_baseline(healthy_sources, {"known_failures": known_all["known_failures"][:2]})
    assert reports.run_failed(partial)
    assert partial["totals"]["new_failures"] == 1
    assert pair_of(partial, "nclab3", "nclab1")["baseline"] is None


def test_known_pair_failing_with_another_code_is_a_new_failure(four):
    marked = reports.apply_baseline(four, [{"source": "nclab1", "target": "nclab3", "code": "PORT_CLOSED"}])
    assert pair_of(marked, "nclab1", "nclab3")["baseline"] is None
    assert marked["totals"]["new_failures"] == 3
    assert marked["baseline"]["stale"] == [{"source": "nclab1", "target": "nclab3", "code": "PORT_CLOSED", "reason": None}]


def test_baseline_pair_that_passes_now_is_reported_fixed(four):
    marked = reports.apply_baseline(four, {"known_failures": [{"source": "nclab1", "target": "nclab2"}]})
    assert pair_of(marked, "nclab1", "nclab2")["baseline"] == "fixed"
    assert marked["totals"]["fixed"] == 1
    assert "nclab1 -> nclab2" in reports.render_markdown(marked).split("### Fixed")[1]
    fixed_cases = reports.build_junit(marked).findall(".//testcase[@classname='netcheck.nclab1']/system-out")
    assert len(fixed_cases) == len(model.checks(pair_of(marked, "nclab1", "nclab2")))
    assert "(fixed)" in fixed_cases[0].text


def test_a_source_that_could_not_run_fails_the_run_whatever_the_baseline(four):
    marked = reports.apply_baseline(four, {"known_failures": [{"source": "*", "target": "*"}]})
    assert marked["totals"]["new_failures"] == 0
    assert reports.run_failed(marked)  # nclab4 could not run


def test_baseline_file_is_read_from_yaml_and_json(tmp_path, four):
    yml = tmp_path / "baseline.yml"
    yml.write_text("version: 1\nknown_failures:\n  - {source: 'nclab[12]', target: nclab3}\n")
    jsn = tmp_path / "baseline.json"
    jsn.write_text(json.dumps({"known_failures": [{"source": "nclab1", "target": "nclab3"}]}))
    marked = reports.apply_baseline(four, str(yml))
    assert [p["target"] for p in marked["pairs"] if p["baseline"] == "known"] == ["nclab3", "nclab3"]
    assert marked["baseline"]["file"] == str(yml)
    assert reports.apply_baseline(four, str(jsn))["totals"]["known"] == 1


@pytest.mark.parametrize("document, message", [
    ({"known_failures": [{"source": "a"}]}, r"baseline.known_failures\[0\].target: a name or pattern is required"),
    ({"known_failures": [{"source": "a", "target": "b", "port": 22}]}, r"known_failures\[0\]: unknown keys port"),
    ({"known": []}, "baseline: unknown keys known"),
    ({"version": 2, "known_failures": []}, r"baseline.version: 2 is not a supported version"),
    ({"known_failures": ["a -> b"]}, r"known_failures\[0\]: expected a mapping"),
])
def test_bad_baseline_is_refused_naming_the_field(document, message):
    with pytest.raises(reports.BaselineError, match=message):
        reports.validate_baseline(document)


# --- report.html (static; the browser tests are in test_report_browser.py) --------------------

class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text):
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_html_is_self_contained(four):
    text = reports.render_html(four)
    tags = _tags(text)
    assert not [a for t, a in tags if t in ("script", "img", "iframe", "embed", "object") and a.get("src")]
    assert not [a for t, a in tags if t == "link"]
    assert "@import" not in text and "url(http" not in text and "@font-face" not in text
    assert "http://192.0.2" in text  # the probed URLs are data, never fetched
    assert not [a for t, a in tags if a.get("href") not in (None, "#")]


def test_html_cells_carry_every_view_state(four):
    cells = {(a["data-s"], a["data-t"]): a for t, a in _tags(reports.render_html(four))
             if t == "td" and "c" in a.get("class", "").split()}
    assert len(cells) == 16
    filtered = cells[("nclab1", "nclab3")]
    assert (filtered["data-all"], filtered["data-icmp"], filtered["data-tcp"], filtered["data-http"]) == (
        "transport", "ok", "transport", "application")
    assert cells[("nclab2", "nclab3")]["data-icmp"] == "network"
    assert cells[("nclab1", "nclab1")]["data-all"] == "nopair"
    assert cells[("nclab4", "nclab1")]["data-all"] == "notrun"
    assert "asym" in cells[("nclab3", "nclab2")]["class"] and "asym" in cells[("nclab2", "nclab3")]["class"]
    assert "--ok-icmp:hsl(" in cells[("nclab1", "nclab2")]["style"]


def test_html_data_cannot_close_its_script_element(four):
    run = copy.deepcopy(four)
    pair_of(run, "nclab1", "nclab3")["verdict"]["hint"] = "</script><script>alert(1)</script>"
    text = reports.render_html(run)
    assert [t for t, _ in _tags(text)].count("script") == 2
    assert "alert(1)" in text and "<script>alert(1)" not in text


def test_html_latency_shade_darkens_with_latency():
    run = sample.sample_run(n_sources=3)
    pairs = sorted(run["pairs"], key=model.latency_ms)
    model_view = reports.html_report.view_model(run)
    shades = {}
    for row in model_view["rows"]:
        for cell in row["cells"]:
            if cell["i"] >= 0:
                shades[(cell["s"], cell["t"])] = cell["ok"]["all"]
    lightness = [int(shades[(p["source"], p["target"])].split(",")[2].rstrip("%)")) for p in pairs]
    assert lightness == sorted(lightness, reverse=True)
    assert lightness[0] == 78 and lightness[-1] == 34


def test_html_above_the_threshold_collapses_to_groups_with_drill_down():
    run = sample.large_run(70, unreachable=0)
    tags = _tags(reports.render_html(run))
    groups = [a for t, a in tags if t == "td" and a.get("class") == "g"]
    assert {(a["data-s"], a["data-t"]) for a in groups} == {("web", "web"), ("web", "db"), ("db", "web"), ("db", "db")}
    drills = [a["id"] for t, a in tags if t == "div" and a.get("class") == "drill"]
    assert sorted(drills) == ["drill-0-0", "drill-0-1", "drill-1-0", "drill-1-1"]
    cells = [a for t, a in tags if t == "td" and a.get("class", "").startswith("c")]
    assert len(cells) == 70 * 70


def test_groups_come_from_the_sources_groups_else_the_name_prefix():
    assert model.name_prefix("web12") == "web"
    assert model.name_prefix("db-3") == "db"
    assert model.name_prefix("10.0.1.5") == "10.0.1"
    assert model.name_prefix("bastion") == "bastion"
    run = sample.sample_run(names=["a1", "a2", "b1"], groups={"a1": ["frontend"], "a2": ["frontend", "x"]})
    assert model.group_of(run) == {"a1": "frontend", "a2": "frontend", "b1": "b"}


# --- what the aggregator may leave out ---------------------------------------------------------

def test_a_run_without_times_or_versions_still_writes_every_file(tmp_path, validator, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run = sample.four_host_run()
    run["meta"] = {"started": None, "finished": None, "playbook": "check.yml"}
    paths = reports.write_all(run, str(tmp_path), {})
    assert list(validator.iter_errors(json.loads(open(paths["json"]).read()))) == []
    assert "Run None" not in open(paths["markdown"]).read()
    assert "netcheck_run_timestamp_seconds" not in open(paths["prom"]).read()


def test_a_failing_pair_without_a_layer_is_shown_as_unknown_layer(four):
    run = copy.deepcopy(four)
    pair = pair_of(run, "nclab1", "nclab2")
    pair.update(ok=False, checked=[], layers={"neighbour": None, "icmp": None, "tcp": [], "http": []})
    pair["verdict"].update(first_failing_layer="none", code="NOT_CHECKED", hint="no layer was checked", evidence=[],
                           checks=[], failed_checks=0)
    cells = {(a["data-s"], a["data-t"]): a for t, a in _tags(reports.render_html(run))
             if t == "td" and "c" in a.get("class", "").split()}
    assert (cells[("nclab1", "nclab2")]["data-all"], cells[("nclab1", "nclab2")]["data-icmp"]) == ("other", "none")
    text = reports.render_markdown(run)
    assert "| nclab1 | nclab2 | NOT_CHECKED | none | no layer was checked | new |" in text
    assert "| **nclab1** | \u00b7 | \u2753 | \U0001F7E7 | \U0001F7E9 |" in text


def test_a_group_cell_shows_its_most_common_failing_layer_not_one_bad_source():
    group_state = reports.html_report._group_state
    assert group_state(["ok"] * 50 + ["transport"] * 3 + ["link"] + ["notrun"] * 10) == "transport"
    assert group_state(["ok"] * 50 + ["notrun"] * 10) == "notrun"
    assert group_state(["ok", "none"]) == "ok"
    assert group_state(["link", "transport"]) == "link"  # a tie goes to the lower layer


# --- one verdict per check in every report --------------------------------------------------------

@pytest.fixture(scope="module")
def open_and_closed():
    """nclab1 -> nclab2: port 22 open although it must be filtered, AND port 8080 closed."""
    return sample.sample_run(n_sources=2, faults={("nclab1", "nclab2"): "PORT_OPEN"})


def test_junit_has_one_failure_per_check_each_with_its_own_code_and_hint(tmp_path, open_and_closed):
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import CODES
    path = reports.write_junit(open_and_closed, str(tmp_path / "junit.xml"))
    _, _, cases = _cases(path)
    failures = {c.name: r for c in cases for r in c.result if isinstance(r, Failure)}
    opened = failures["nclab2 (192.0.2.11) tcp/22 [transport]"]
    closed = failures["nclab2 (192.0.2.11) tcp/8080 [transport]"]
    assert (opened.type, opened.message) == ("PORT_OPEN", CODES["PORT_OPEN"][1])
    # not the pair's hint: the check's own
    assert (closed.type, closed.message) == ("PORT_CLOSED", CODES["PORT_CLOSED"][1])
    assert "evidence: tcp 192.0.2.11:8080: closed, expected open" in closed.text
    assert "pair: PORT_OPEN [transport], 3 of its checks failed" in closed.text
    assert failures["nclab2 (192.0.2.11) http://192.0.2.11:8080/ [application]"].type == "PORT_CLOSED"


def test_every_report_shows_every_failing_check(open_and_closed):
    pair = pair_of(open_and_closed, "nclab1", "nclab2")
    assert pair["verdict"]["code"] == "PORT_OPEN" and pair["verdict"]["failed_checks"] == 3
    text = reports.render_markdown(open_and_closed)
    assert "tcp/22 PORT_OPEN, tcp/8080 PORT_CLOSED, http http://192.0.2.11:8080/ PORT_CLOSED" in text
    prom = reports.render_prom(open_and_closed)
    assert 'netcheck_check_verdict{source="nclab1",target="nclab2",layer="tcp",port="8080",code="PORT_CLOSED",' \
           'severity="fail"} 1' in prom
    assert 'netcheck_pair_failed_checks{source="nclab1",target="nclab2"} 3' in prom
    assert 'probe_success{source="nclab1",target="nclab2",layer="tcp",port="22"} 0' in prom
    html = reports.render_html(open_and_closed)
    assert "nclab1 \u2192 nclab2: PORT_OPEN and 2 more failing checks" in html


def test_a_warning_is_shown_and_passes(tmp_path):
    run = sample.sample_run(n_sources=2, faults={("nclab1", "nclab2"): "ICMP_LOSS"})
    pair = pair_of(run, "nclab1", "nclab2")
    assert pair["ok"] is False and pair["verdict"]["code"] == "ICMP_LOSS"  # 66.67 % is past crit (50)
    pair["layers"]["icmp"]["detail"].update(received=2, loss_pct=33.33)
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import verdict
    ok, _, judged = verdict(pair["layers"], pair["expected"])
    pair.update(ok=ok, verdict=judged)
    assert ok and judged["warned_checks"] == 1
    assert "| nclab1 | nclab2 | icmp | ICMP_LOSS |" in reports.render_markdown(run)
    _, _, cases = _cases(reports.write_junit(run, str(tmp_path / "junit.xml")))
    (icmp_case,) = [c for c in cases if c.name.startswith("nclab2") and "icmp" in c.name]
    assert not icmp_case.result and "warning ICMP_LOSS" in icmp_case.system_out
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as runmodel
    run["totals"] = runmodel.totals(run)
    assert run["totals"]["warned"] == 1 and run["totals"]["failed"] == 0
    assert "ok (1 with warnings), 0 failed" in runmodel.render_totals(run)[0]


def test_the_hop_where_the_flow_died_is_in_every_report(four, validator, tmp_path):
    run = copy.deepcopy(four)
    pair = [p for p in run["pairs"] if (p["source"], p["target"]) == ("nclab1", "nclab3")][0]
    pair["verdict"].update(code="DROPPED_AFTER_HOP", first_failing_layer="network",
                           hop={"index": 2, "address": "10.78.142.15"},
                           hint="hop 2 (10.78.142.15) answered, the next hop is silent")
    written = json.loads(open(reports.write_json(run, str(tmp_path / "report.json"))).read())
    assert list(validator.iter_errors(written)) == []
    (dropped,) = [p for p in written["pairs"] if p["verdict"].get("hop")]
    assert dropped["verdict"]["hop"] == {"index": 2, "address": "10.78.142.15"}
    assert "DROPPED_AFTER_HOP at hop 2 (10.78.142.15)" in reports.render_html(run)
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as runmodel
    assert runmodel.pair_cell(pair).startswith("DRP@2")


def test_a_name_that_does_not_resolve_is_its_own_failing_check(tmp_path):
    run = sample.sample_run(n_sources=2, faults={("nclab1", "nclab2"): "DNS_FAILED"})
    _, _, cases = _cases(reports.write_junit(run, str(tmp_path / "junit.xml")))
    failures = {c.name: r for c in cases for r in c.result if isinstance(r, Failure)}
    assert list(failures) == ["nclab2 resolve [network]"]
    assert failures["nclab2 resolve [network]"].type == "DNS_FAILED"
    assert "name resolution failed" in failures["nclab2 resolve [network]"].text
