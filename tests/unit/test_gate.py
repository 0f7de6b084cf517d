"""The CI gate without a lab: the role's variables checked in one place (plugin_utils/config.py), the run's
status and exit decision, the baseline writer and the comparison of two runs, Markdown made inert, on run
models recorded from real lab runs (tests/data/*.json, written by check.yml on a 3-host lab)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.netcheck.netcheck.plugins.action.net_diagnose import source_outcome  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.filter.netcheck_config import checked_sources  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import config, reports  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as runmodel  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports.markdown import render_markdown  # noqa: E402

DATA = REPO / "tests" / "data"
DEFAULTS = config.role_defaults()


def recorded(name):
    """A run model check.yml wrote on a real 3-host lab (see the module docstring)."""
    return json.loads((DATA / name).read_text())


def problems_of(**variables):
    values = dict(DEFAULTS, **variables)
    return config.check_variables(values)


# --- the silent-green variables of the issue: each is refused, naming the variable ----------------

@pytest.mark.parametrize("variables, expected", [
    ({"netcheck_tcp_timeout": -1}, "netcheck_tcp_timeout: -1 is out of range (above 0 to 3600)"),
    ({"netcheck_tcp_timeout": "-1"}, "netcheck_tcp_timeout: -1 is out of range (above 0 to 3600)"),
    ({"netcheck_icmp_count": 0}, "netcheck_icmp_count: 0 is out of range (from 1 to 1000)"),
    ({"netcheck_max_workers": "0"}, "netcheck_max_workers: 0 is out of range (from 1 to 4096)"),
    ({"netcheck_tcp_targets": [{"host": "$(reboot)", "port": 22}]},
     "netcheck_tcp_targets[0].host: '$(reboot)' is not a host name or IP address"),
    ({"netcheck_mesh_ports": ["ssh"]}, "netcheck_mesh_ports[0]: 'ssh' is not a port number"),
    ({"netcheck_mesh_ports": [70000]}, "netcheck_mesh_ports[0]: 70000 is out of range (from 1 to 65535)"),
    ({"netcheck_icmp_targets": [{"host": "db1", "reachable": "maybe"}]},
     "netcheck_icmp_targets[0].reachable: 'maybe' is not true or false"),
    ({"netcheck_http_targets": [{"url": "http://web1/", "timeout": -1}]},
     "netcheck_http_targets[0].timeout: -1 is out of range (above 0 to 3600)"),
    ({"netcheck_report_options": {"bogus": 1}}, "netcheck_report_options: unknown keys bogus"),
    ({"netcheck_mesh_urls": [{"prot": 80}]}, "netcheck_mesh_urls[0].prot: unknown key (did you mean port?)"),
    ({"netcheck_mesh_port": [22]}, "netcheck_mesh_port: unknown variable (did you mean netcheck_mesh_ports?)"),
    ({"netcheck_targets": [{"host": "db1", "icmp": "skip"}]},
     "netcheck_targets[0]: nothing to check (icmp skip, no ports, no urls)"),
    ({"netcheck_targets": [{"host": "db1", "ports": [{"port": 22, "timeout": -1}]}]},
     "netcheck_targets[0].ports[0].timeout: -1 is out of range"),
    ({"netcheck_http_status_codes": []}, "netcheck_http_status_codes: give at least one status code"),
    ({"netcheck_include_self": "sometimes"}, "netcheck_include_self: 'sometimes' is not true or false"),
])
def test_a_bad_variable_is_one_short_problem_naming_its_path(variables, expected):
    _, problems = problems_of(**variables)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_strings_from_the_command_line_are_converted_never_iterated():
    normalized, problems = problems_of(netcheck_mesh_ports="22", netcheck_include_self="false",
                                       netcheck_limit_ports="22,8080", netcheck_tcp_timeout="2.5",
                                       netcheck_icmp_targets=[{"host": "db1", "reachable": "false"}],
                                       netcheck_ec2_explain="false")
    assert problems == []
    assert normalized["netcheck_mesh_ports"] == [22]  # not ["2", "2"]
    assert normalized["netcheck_include_self"] is False
    assert normalized["netcheck_limit_ports"] == [22, 8080]
    assert normalized["netcheck_tcp_timeout"] == 2.5
    assert normalized["netcheck_icmp_targets"][0]["reachable"] is False
    assert normalized["netcheck_ec2_explain"] == "false"
    assert problems_of(netcheck_mesh_ports="22,80")[0]["netcheck_mesh_ports"] == [22, 80]


def test_the_defaults_pass_and_every_default_is_a_declared_variable():
    normalized, problems = config.check_variables(DEFAULTS)
    assert problems == []
    assert set(normalized) == set(config.SPEC)


def test_files_are_checked_before_any_probe(tmp_path):
    problems = config.check_files({"netcheck_baseline": "missing.yml"}, [], cwd=str(tmp_path))
    assert problems == ["netcheck_baseline: missing.yml: no such file"]
    (tmp_path / "bad.yml").write_text("known_failures: [{source: a, target: b, colour: red}]\n")
    problems = config.check_files({"netcheck_baseline": "bad.yml"}, [], cwd=str(tmp_path))
    assert problems and "known_failures[0]: unknown keys colour" in problems[0]
    problems = config.check_files({"netcheck_compare": "old/report.json"}, [], cwd=str(tmp_path))
    assert problems and problems[0].startswith("netcheck_compare: old/report.json")
    problems = config.check_files({"netcheck_baseline_write": "nodir/known.yml"}, [], cwd=str(tmp_path))
    assert problems and "does not exist" in problems[0]


def test_groups_the_variables_name_must_exist_and_mesh_addresses_must_be_hosts():
    groups = {"all": ["web1", "db1"], "web": ["web1"], "db": ["db1"]}
    normalized, _ = problems_of(netcheck_mesh_group="dbs", netcheck_tcp_group_targets=[{"group": "wbe", "port": 80}])
    problems = config.check_inventory(normalized, groups, lambda name, var: "$(reboot)" if name == "db1" else "10.0.0.1",
                                      [])
    assert "netcheck_mesh_group: no group 'dbs' in the inventory (did you mean db?)" in problems
    assert "netcheck_tcp_group_targets[0].group: no group 'wbe' in the inventory (did you mean web?)" in problems
    normalized, _ = problems_of()
    problems = config.check_inventory(normalized, groups, lambda name, var: "$(reboot)" if name == "db1" else "10.0.0.1",
                                      [])
    assert problems == ["inventory host db1: ansible_host: '$(reboot)' is not a host name or IP address"]


def test_every_source_is_checked_and_a_problem_of_every_host_is_said_once():
    groups = {"all": ["web1", "web2", "db1"], "web": ["web1", "web2"], "db": ["db1"], "ungrouped": []}
    hostvars = {"web1": {"ansible_host": "10.0.0.1", "netcheck_tcp_timeout": -1},
                "web2": {"ansible_host": "10.0.0.2", "netcheck_tcp_timeout": -1},
                "db1": {"ansible_host": "10.0.0.3", "netcheck_tcp_timeout": -1, "netcheck_icmp_count": 0}}
    problems, _, sources = config.check_sources("all", groups, hostvars)
    assert sources == ["web1", "web2", "db1"]
    assert problems == ["netcheck_tcp_timeout: -1 is out of range (above 0 to 3600)",
                        "netcheck_icmp_count: 0 is out of range (from 1 to 1000) (on db1)"]
    problems, _, _ = config.check_sources("dbs", groups, hostvars)
    assert problems[0].startswith("netcheck_sources: 'dbs' selects no host")
    problems, _, _ = config.check_sources("all", {"all": [], "ungrouped": []}, {})
    assert problems[0].startswith("inventory: it holds no host")


def test_the_hosts_line_stops_the_play_with_every_problem_and_passes_a_good_pattern():
    groups = {"all": ["web1"], "web": ["web1"]}
    assert checked_sources("web", groups, {"problems": [], "report": None}) == "web"
    with pytest.raises(AnsibleFilterError) as error:
        checked_sources("web", groups, {"problems": ["netcheck_icmp_count: 0 is out of range"], "report": "r.json"})
    assert str(error.value).startswith("netcheck: CONFIGURATION ERROR, nothing was checked (1 problem):")
    assert "netcheck_icmp_count: 0 is out of range" in str(error.value) and "report: r.json" in str(error.value)
    with pytest.raises(AnsibleFilterError, match="inventory: it holds no host"):
        checked_sources("all", {"all": []}, None)


@pytest.mark.parametrize("pattern, hosts", [
    ("all", ["web1", "web2", "db1"]), ("web", ["web1", "web2"]), ("web:db", ["web1", "web2", "db1"]),
    ("all:!db", ["web1", "web2"]), ("web:&eu", ["web2"]), ("web*", ["web1", "web2"]), ("db1,web1", ["db1", "web1"]),
    ("nope", []),
])
def test_host_patterns_select_what_ansible_would(pattern, hosts):
    groups = {"all": ["web1", "web2", "db1"], "web": ["web1", "web2"], "db": ["db1"], "eu": ["web2", "db1"]}
    assert config.resolve_pattern(pattern, groups) == hosts


# --- hypothesis: every bad variable kind through the role's own validation ---------------------------

NUMBERS = dict(config.RANGES)
not_a_number = st.one_of(st.text(alphabet="abcxyz$();| ", min_size=1, max_size=8), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(NUMBERS)), value=st.one_of(
    not_a_number, st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 6, 10 ** 6)))
def test_fuzz_numbers_are_converted_or_refused_naming_the_variable(name, value):
    normalized, problems = problems_of(**{name: value})
    low, high, open_low = NUMBERS[name]
    number = normalized[name]
    if problems:
        assert len(problems) == 1 and problems[0].startswith(name + ": "), problems
        assert number is None
    else:
        assert isinstance(number, (int, float)) and not isinstance(number, bool)
        assert (number > low if open_low else number >= low) and number <= high


BOOLEANS = sorted(name for name, option in config.SPEC.items() if option.get("type") == "bool")


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(BOOLEANS), value=st.one_of(
    st.booleans(), st.sampled_from(["true", "false", "yes", "no", "False", "0", "1", "on", "off"]),
    st.text(max_size=6), st.integers(-3, 3), st.lists(st.booleans(), max_size=2)))
def test_fuzz_booleans_are_converted_or_refused_naming_the_variable(name, value):
    normalized, problems = problems_of(**{name: value})
    if problems:
        assert problems == ["%s: %r is not true or false" % (name, value)], problems
    else:
        assert isinstance(normalized[name], bool)
        if isinstance(value, str):
            assert normalized[name] is (value.strip().lower() in config.TRUE_WORDS)


@settings(max_examples=150, deadline=None)
@given(value=st.one_of(
    st.integers(-5, 70000), st.text(alphabet="0123456789,ssh ", max_size=12),
    st.lists(st.one_of(st.integers(-5, 70000), st.text(max_size=4), st.none(),
                       st.fixed_dictionaries({"port": st.integers(0, 70000)}),
                       st.dictionaries(st.sampled_from(["port", "prot", "expected", "timeout"]),
                                       st.integers(-2, 70000), max_size=3)), max_size=4)))
def test_fuzz_mesh_ports_are_ports_or_problems_never_characters(value):
    normalized, problems = problems_of(netcheck_mesh_ports=value)
    if problems:
        assert all(p.startswith("netcheck_mesh_ports") for p in problems), problems
        return
    for port in normalized["netcheck_mesh_ports"]:
        number = port["port"] if isinstance(port, dict) else port
        assert isinstance(number, int) and 1 <= number <= 65535
    if isinstance(value, str) and value.strip().isdigit():
        assert normalized["netcheck_mesh_ports"] == [int(value)]


@settings(max_examples=100, deadline=None)
@given(host=st.text(alphabet="ab1.-$();|` &<>", min_size=1, max_size=12),
       variable=st.sampled_from(["netcheck_tcp_targets", "netcheck_icmp_targets", "netcheck_targets"]))
def test_fuzz_hosts_with_shell_or_markup_characters_never_pass(host, variable):
    target = {"host": host, "port": 22} if variable == "netcheck_tcp_targets" else {"host": host}
    if variable == "netcheck_targets":
        target["ports"] = [{"port": 22}]
    _, problems = problems_of(**{variable: [target]})
    if any(c in host for c in "$();|` &<>"):
        assert problems and problems[0].startswith("%s[0].host" % variable), problems


@settings(max_examples=100, deadline=None)
@given(options=st.dictionaries(st.text(alphabet="abcdefgh_", min_size=1, max_size=8), st.integers(), max_size=3))
def test_fuzz_report_options_unknown_keys_are_refused(options):
    _, problems = problems_of(netcheck_report_options=options)
    unknown = set(options) - set(reports.OPTIONS)
    assert bool(problems) == bool(unknown or "baseline" in options)


# --- the run's status and what fails it --------------------------------------------------------------

def test_a_recorded_partial_mesh_fails_for_its_source_that_could_not_run():
    run = recorded("lab_run_partial_mesh.json")
    by_name = {s["name"]: s for s in run["sources"]}
    assert by_name["ncrec3"]["status"] == "failed"
    assert "module interpreter '/nonexistent/python3' was not found" in by_name["ncrec3"]["error"]
    assert run["status"] == "failed" and runmodel.gate_failed(run)
    lines = runmodel.render(run)
    assert lines[0].startswith("netcheck: FAILED (the network or the hosts, not the configuration)")
    assert any(line.startswith("NOT RUN ncrec3") and "/nonexistent/python3" in line for line in lines)
    text = render_markdown(run)
    assert "ncrec3" in text and "/nonexistent/python3" in text


def test_asymmetric_pairs_never_count_against_a_source_that_could_not_run():
    run = recorded("lab_run_partial_mesh.json")
    # ncrec1 and ncrec2 reach ncrec3; ncrec3 checked nothing: it could not run, it is not asymmetric
    assert all(p["ok"] for p in run["pairs"] if p["target"] == "ncrec3")
    # the two sources that ran are asymmetric, per check: tcp/8080 fails only ncrec1 -> ncrec2 (DROP on
    # ncrec2), icmp only ncrec2 -> ncrec1 (ICMP dropped by ncrec1)
    assert runmodel.asymmetric_pairs(run["pairs"]) == [["ncrec1", "ncrec2"], ["ncrec2", "ncrec1"]]
    for pair in run["pairs"]:
        if pair["source"] == "ncrec1" and pair["target"] == "ncrec3":
            pair["ok"] = False  # ncrec1 -> ncrec3 fails now: ncrec3 never ran, so still no asymmetry with it
            for check in pair["verdict"]["checks"]:
                check["ok"] = False
    assert not any("ncrec3" in entry for entry in runmodel.asymmetric_pairs(run["pairs"]))


def test_nothing_checked_is_not_run_and_fails_unless_allowed():
    run = recorded("lab_run_faults.json")
    empty = dict(copy.deepcopy(run), pairs=[])
    for source in empty["sources"]:
        source["limits"] = None
    empty["totals"] = runmodel.totals(empty)
    assert runmodel.run_status(empty) == "not_run"
    assert runmodel.empty_reasons(empty) == ["no pair was checked: no source had a target in the layers asked "
                                             "(targets, --tags)"]
    assert runmodel.gate_failed(dict(empty, status="not_run"))
    assert not runmodel.gate_failed(dict(empty, status="not_run"), allow_empty=True)
    nobody = dict(empty, sources=[])
    assert runmodel.empty_reasons(nobody)[0].startswith("no source host")
    assert runmodel.render_headline(dict(nobody, status="not_run")).startswith("netcheck: NOTHING CHECKED: no source")
    # --tags limits: no pair, but every source's limits are checks
    limits_only = dict(copy.deepcopy(run), pairs=[])
    limits_only["totals"] = runmodel.totals(limits_only)
    assert runmodel.run_status(limits_only) == "passed"


def test_a_module_failure_is_a_source_that_could_not_run_and_missed_pairs_are_not():
    refused = source_outcome({"failed": True, "msg": "max_workers: 0 must be at least 1", "results": []})
    assert refused["failed"] and refused["could_not_run"]
    entry = runmodel.source_entry("h1", "10.0.0.1", refused)
    assert entry["status"] == "failed" and entry["error"] == "max_workers: 0 must be at least 1"
    no_python = source_outcome({"failed": True, "msg": "MODULE FAILURE", "module_stderr": "/bin/sh: python3: not found\n",
                                "rc": 127})
    assert runmodel.source_entry("h1", "a", no_python)["error"] == "MODULE FAILURE: /bin/sh: python3: not found"
    missed = source_outcome({"failed": True, "results": [{"ok": False}], "summary": {"failed": 1}})
    assert not missed["failed"] and missed["pairs_failed"] == 1


def test_a_configuration_error_run_says_so_first_everywhere():
    run = runmodel.config_error_run(["netcheck_icmp_count: 0 is out of range (from 1 to 1000)"])
    assert run["status"] == "config_error" and runmodel.gate_failed(run)
    assert runmodel.render_headline(run).startswith("netcheck: CONFIGURATION ERROR, nothing was checked")
    assert "## netcheck report: CONFIGURATION ERROR" in render_markdown(run)


def test_notes_the_limits_and_the_known_new_split_are_printed():
    run = recorded("lab_run_faults.json")
    run["pairs"][0]["verdict"]["notes"].append({"code": "ICMP_FILTERED", "hint": "echo requests go unanswered"})
    marked = reports.apply_baseline(run, {"known_failures": [{"source": "ncrec1", "target": "ncrec2"}]})
    marked["totals"] = runmodel.totals(marked)
    lines = runmodel.render(marked)
    assert any(line.startswith("NOTE ICMP_FILTERED on 1 pair (") for line in lines), lines
    assert any("6 failed (5 new, 1 known)" in line for line in lines), lines
    assert any(line.startswith("KNOWN ncrec1 -> ncrec2") for line in lines)
    limits_only = dict(copy.deepcopy(run), pairs=[])
    limits_only["totals"] = runmodel.totals(limits_only)
    lines = runmodel.render(limits_only)
    assert not any(line.startswith("matrix") for line in lines)
    assert sum(1 for line in lines if line.startswith("limits ncrec")) >= 3


# --- baseline written from a run, fed back ------------------------------------------------------------

def test_the_written_baseline_turns_the_same_faults_known_and_a_new_fault_fails(tmp_path):
    run = recorded("lab_run_faults.json")
    path = tmp_path / "known.yml"
    document = reports.write_baseline(run, str(path))
    assert [(e["source"], e["target"], e["code"]) for e in document["known_failures"]] == [
        ("ncrec1", "ncrec2", "PORT_FILTERED"), ("ncrec1", "ncrec3", "PORT_REJECTED"),
        ("ncrec1", "h2-closed", "PORT_CLOSED"), ("ncrec1", "h3-open", "PORT_OPEN"),
        ("ncrec3", "ncrec1", "ICMP_FILTERED"), ("ncrec3", "ncrec2", "ICMP_FILTERED")]
    assert all(e["reason"].startswith("TODO") for e in document["known_failures"])
    assert yaml.safe_load(path.read_text()) == document
    again = reports.apply_baseline(run, str(path))
    assert again["totals"]["known"] == 6 and again["totals"]["new_failures"] == 0
    assert not runmodel.gate_failed(again)
    # a new fault: ncrec2 -> ncrec1 now fails
    worse = copy.deepcopy(run)
    pair = next(p for p in worse["pairs"] if (p["source"], p["target"]) == ("ncrec2", "ncrec1"))
    pair["ok"], pair["verdict"]["code"] = False, "PORT_FILTERED"
    marked = reports.apply_baseline(worse, str(path))
    assert marked["totals"]["new_failures"] == 1 and runmodel.gate_failed(marked)
    # a reason filled in survives an update; a fixed pair's entry is dropped
    edited = yaml.safe_load(path.read_text())
    edited["known_failures"][0]["reason"] = "NET-42 firewall change pending"
    path.write_text(yaml.safe_dump(edited))
    better = copy.deepcopy(run)
    fixed = next(p for p in better["pairs"] if (p["source"], p["target"]) == ("ncrec1", "ncrec3"))
    fixed["ok"] = True
    updated = reports.write_baseline(better, str(path))
    assert [(e["source"], e["target"], e["reason"]) for e in updated["known_failures"]] == [
        ("ncrec1", "ncrec2", "NET-42 firewall change pending"),
        ("ncrec1", "h2-closed", document["known_failures"][2]["reason"]),
        ("ncrec1", "h3-open", document["known_failures"][3]["reason"]),
        ("ncrec3", "ncrec1", document["known_failures"][4]["reason"]),
        ("ncrec3", "ncrec2", document["known_failures"][5]["reason"])]


def test_fixed_baseline_entries_are_listed():
    run = recorded("lab_run_faults.json")
    marked = reports.apply_baseline(run, {"known_failures": [{"source": "ncrec2", "target": "ncrec1",
                                                              "reason": "NET-1"}]})
    assert runmodel.render_fixed(marked) == [
        "FIXED ncrec2 -> ncrec1: in the baseline (NET-1), passes now (remove its entry)"]


# --- what changed since an earlier run -------------------------------------------------------------

def test_comparing_two_recorded_runs_names_new_fixed_and_changed_pairs():
    old, new = recorded("lab_run_faults.json"), recorded("lab_run_partial_mesh.json")
    comparison = reports.compare_runs(old, new, file="old/report.json")
    as_pairs = {kind: sorted((e["source"], e["target"]) for e in comparison[kind])
                for kind in ("new_failures", "fixed", "changed")}
    assert as_pairs["new_failures"] == [("ncrec2", "ncrec1")]   # ICMP dropped in the second run
    assert as_pairs["fixed"] == [("ncrec1", "ncrec3")]          # the REJECT was gone
    assert as_pairs["changed"] == []
    # the second run had no extra targets and its ncrec3 could not run
    assert sorted((e["source"], e["target"]) for e in comparison["gone"]) == [
        ("ncrec1", "h2-closed"), ("ncrec1", "h3-open"), ("ncrec3", "ncrec1"), ("ncrec3", "ncrec2")]
    new["comparison"] = comparison
    lines = runmodel.render_comparison(new)
    assert lines[0].startswith("compared with old/report.json") and "  NEW   ncrec2 -> ncrec1: ICMP_FILTERED (was OK)" in lines
    assert "Changes since" in render_markdown(new)


def test_a_latency_shift_is_reported_when_it_doubles_by_more_than_a_millisecond():
    old = recorded("lab_run_faults.json")
    new = copy.deepcopy(old)
    pair = next(p for p in new["pairs"] if p["ok"])
    pair["layers"]["icmp"]["detail"]["rtt_avg_ms"] = 50.0
    comparison = reports.compare_runs(old, new)
    assert [(e["source"], e["target"]) for e in comparison["latency"]] == [(pair["source"], pair["target"])]


# --- Markdown: nothing from the network or the inventory becomes markup ------------------------------

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b|c", "**bold** [link](http://x)",
            "`code`", "<a href='javascript:alert(1)'>x</a>"]


def _poisoned_run():
    run = recorded("lab_run_faults.json")
    failing = [p for p in run["pairs"] if not p["ok"]]
    for pair, payload in zip(failing, PAYLOADS):
        pair["verdict"]["evidence"].insert(0, "banner " + payload)  # a banner, a header value
        pair["verdict"]["hint"] = payload
    run["sources"][0]["name"] = "web|<img src=x onerror=alert(1)>"  # an inventory name
    for pair in run["pairs"]:
        if pair["source"] == "ncrec1":
            pair["source"] = run["sources"][0]["name"]
    run["sources"][2].update(status="failed", error="<script>alert(2)</script>|x")
    return run


def test_markdown_renders_no_raw_tag_from_the_network_or_the_inventory():
    from markdown_it import MarkdownIt
    text = render_markdown(_poisoned_run())
    # rendered as GitHub would: HTML allowed, tables on
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    for tag in ("<script", "<img", "<a href", "<strong>bold", "<code>code"):
        assert tag not in html, (tag, html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror" in html  # the text is there, as text


def test_markdown_escapes_the_pipe_so_every_table_row_keeps_its_columns():
    from markdown_it import MarkdownIt
    text = render_markdown(_poisoned_run())
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    rows, cells, row = [], 0, False
    for token in tokens:
        if token.type == "tr_open":
            cells, row = 0, True
        elif token.type in ("td_open", "th_open") and row:
            cells += 1
        elif token.type == "tr_close":
            rows.append(cells)
    header_of_failing = 6
    assert rows.count(header_of_failing) >= 4, rows  # header + 3 failing pairs, no row split by a "|"
    assert "web\\|" in text


def test_the_recorded_run_passes_the_report_schema_and_every_writer(tmp_path):
    import jsonschema
    run = recorded("lab_run_partial_mesh.json")
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text())
    jsonschema.validate(run, schema)
    jsonschema.validate(runmodel.config_error_run(["x: y"]), schema)
    paths = reports.write_all(run, str(tmp_path / "run"), {})
    assert sorted(paths) == ["html", "json", "junit", "markdown", "prom"]
    assert json.loads(Path(paths["json"]).read_text())["status"] == "failed"


# --- evidence off Ansible's result path ------------------------------------------------------------

def test_the_task_result_is_compact_and_the_report_reads_the_whole_answer_back(tmp_path):
    from ansible_collections.netcheck.netcheck.plugins.action.net_diagnose import compact, write_answer
    from ansible_collections.netcheck.netcheck.plugins.action.netcheck_report import _registered
    from ansible_collections.netcheck.netcheck.plugins.filter.netcheck import checks_failed
    run = recorded("lab_run_faults.json")
    results = [dict({k: v for k, v in p.items() if k not in ("source", "explain", "capture", "baseline")})
               for p in run["pairs"] if p["source"] == "ncrec1"]
    answer = {"results": results, "summary": {"total": 2, "ok": 0, "failed": 2}, "limits": run["sources"][0]["limits"],
              "arp_cache": {"entries": 3}, "elapsed_ms": 12.0, "changed": False, "invocation": {"module_args": {}},
              "pairs_failed": 2}
    path = write_answer(str(tmp_path), "ncrec1", answer)
    assert path == str(tmp_path / "sources" / "ncrec1.json")
    small = compact(dict(answer), path)
    assert small["results"] == [{"target": p["target"], "address": p["address"], "ok": p["ok"],
                                 "code": p["verdict"]["code"], "layer": p["verdict"]["first_failing_layer"]}
                                for p in results]
    assert "limits" not in small and "invocation" not in small
    assert len(json.dumps(small)) * 5 < len(json.dumps(answer))
    assert checks_failed(["ncrec1"], {"ncrec1": {"netcheck_diagnose": small}})  # capture's on_failure
    whole = _registered({"ncrec1": {"netcheck_diagnose": small}}, "ncrec1", "netcheck_diagnose")
    assert whole["results"] == results and whole["limits"] == answer["limits"]
    built = runmodel.build_run([{"name": "ncrec1", "address": "a", "outcome": whole}])
    assert [p["verdict"]["evidence"] for p in built["pairs"]] == [p["verdict"]["evidence"] for p in results]


def test_hosts_no_source_checked_are_named_on_the_terminal_and_in_the_summary():
    run = recorded("lab_run_faults.json")
    run["coverage"] = runmodel.coverage(run, ["ncrec1", "ncrec2", "ncrec3", "db|<b>1</b>"], "lab")
    assert runmodel.render_coverage(run) == [
        "targets: 3 of the inventory's 4 hosts checked as targets (netcheck_mesh_group=lab); not checked: db|<b>1</b>"]
    text = render_markdown(run)
    assert "3 of the inventory's 4 hosts were checked as targets (netcheck_mesh_group=lab)" in text
    assert "not checked: db\\|&lt;b&gt;1&lt;/b&gt;." in text
