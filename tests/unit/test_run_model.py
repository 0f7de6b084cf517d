"""plugin_utils/run.py (run model, matrix, exit code) and the net_diagnose action plugin's expansion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.action.net_diagnose import (  # noqa: E402
    ExpansionError, build_targets, module_targets,
)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as runmodel  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.inventory import mesh_addresses  # noqa: E402

HOSTS = ["h1", "h2", "h3", "h4"]


def pair(target, code="OK", port=None, state=None):
    tcp = []
    if port:
        tcp = [{"target": "x:%d" % port, "kind": "tcp", "state": state, "ok": state == "open", "timings": {},
                "error": None, "detail": {"port": port}}]
    return {"target": target, "address": "10.0.0.%d" % (HOSTS.index(target) + 11) if target in HOSTS else None,
            "kind": "diagnose", "ok": code == "OK", "checked": ["network"],
            "layers": {"neighbour": None, "icmp": None, "tcp": tcp, "http": []},
            "verdict": {"first_failing_layer": "none" if code == "OK" else "transport", "code": code,
                        "hint": "h", "evidence": ["e1"], "notes": []},
            "expected": {}, "timings": {"total": 1.0}}


def outcome(results, limits=None):
    return {"results": results, "elapsed_ms": 10.0, "limits": limits, "failed": any(not r["ok"] for r in results)}


def mesh_run(faults=None, missing=()):
    faults = faults or {}
    sources = []
    for source in HOSTS:
        results = [pair(t, faults.get((source, t), "OK")) for t in HOSTS if t != source]
        sources.append({"name": source, "address": "a", "outcome": None if source in missing else outcome(results)})
    return runmodel.build_run(sources, {"playbook": "check.yml"})


def test_a_healthy_mesh_has_every_pair_ok_and_exits_zero():
    run = mesh_run()
    assert set(run) == {"schema_version", "status", "meta", "sources", "targets", "pairs", "asymmetric",
                        "asymmetric_checks", "totals"}
    assert run["status"] == "passed"
    totals = dict(run["totals"])
    assert totals.pop("checks") == 12  # one layer checked per pair here
    assert totals == {"pairs": 12, "ok": 12, "failed": 0, "sources_not_run": 0, "by_code": {"OK": 12},
                      "known": 0, "new_failures": 0, "fixed": 0, "warned": 0}
    assert [t["name"] for t in run["targets"]] == HOSTS
    pair0 = run["pairs"][0]
    assert pair0["source"] == "h1" and pair0["explain"] is None and pair0["capture"] is None
    assert pair0["baseline"] is None
    assert not runmodel.run_failed(run)


def test_the_matrix_has_one_cell_per_pair_and_the_asymmetric_pair_is_called_out():
    run = mesh_run({("h2", "h1"): "PORT_FILTERED", ("h3", "h4"): "HTTP_STATUS", ("h4", "h3"): "HTTP_STATUS"})
    assert run["asymmetric"] == [["h1", "h2"]]  # h1 reaches h2, h2 does not reach h1
    assert runmodel.run_failed(run)
    lines = runmodel.render(run)
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in HOSTS}
    assert rows["h2"].split()[1:] == ["FLT", "-", ".", "."]
    assert rows["h3"].split()[1:] == [".", ".", "-", "STS"]
    assert rows["h1"].split()[1:] == ["-", ".", ".", "."]
    text = "\n".join(lines)
    assert "FAIL h2 -> h1 (10.0.0.11): PORT_FILTERED [transport] h" in text
    assert "ASYMMETRIC h1 reaches h2, but h2 does not reach h1" in text
    assert "totals: 12 pairs, 9 ok, 3 failed, 0 sources not run" in text


def test_a_source_that_did_not_run_is_a_row_of_marks_and_fails_the_run():
    run = mesh_run(missing=("h3",))
    (h3,) = [s for s in run["sources"] if s["name"] == "h3"]
    assert h3["status"] == "unreachable" and h3["error"]
    assert run["totals"]["sources_not_run"] == 1 and run["totals"]["failed"] == 0
    assert runmodel.run_failed(run)
    row = [line for line in runmodel.render_matrix(run) if line.startswith("h3")][0]
    assert row.split()[1:] == ["!"] * 4
    assert "NOT RUN h3" in "\n".join(runmodel.render(run))


def test_an_unreachable_result_and_a_failed_module_are_told_apart():
    assert runmodel.source_entry("h", "a", {"unreachable": True, "msg": "ssh: connect refused"})["status"] == \
        "unreachable"
    failed = runmodel.source_entry("h", "a", {"failed": True, "msg": "targets[0].host: bad", "results": []})
    assert failed["status"] == "failed" and "targets[0].host" in failed["error"]


def test_a_filtered_port_on_a_full_accept_queue_becomes_accept_queue_full():
    listener = {"port": 8081, "accept_queue": 2, "backlog": 1, "queue_full": True,
                "processes": [{"pid": 42, "comm": "python3", "open_fds": 5, "max_open_files": {"soft": 1024}}]}
    sources = [
        {"name": "h1", "address": "a", "outcome": outcome([pair("h2", "PORT_FILTERED", 8081, "filtered")])},
        {"name": "h2", "address": "b", "outcome": outcome([], {"listeners": [listener],
                                                               "netstat": {"ListenOverflows": 9}})},
    ]
    run = runmodel.build_run(sources)
    verdict = run["pairs"][0]["verdict"]
    assert verdict["code"] == "ACCEPT_QUEUE_FULL" and verdict["first_failing_layer"] == "transport"
    assert "accept queue 2, backlog 1" in verdict["evidence"][0] and "pid 42" in verdict["evidence"][0]
    assert verdict["notes"][0]["code"] == "PORT_FILTERED"


def test_32_hosts_fit_a_wide_terminal():
    names = ["nclab%d" % i for i in range(1, 33)]
    sources = [{"name": s, "address": "a", "outcome": outcome([dict(pair("h1"), target=t) for t in names if t != s])}
               for s in names]
    lines = runmodel.render_matrix(runmodel.build_run(sources))
    assert max(len(line) for line in lines[:34]) <= 140


class Vars(dict):
    pass


GROUPS = {"all": HOSTS, "web": ["h1", "h2"], "db": ["h3"]}
HOSTVARS = {h: {"ansible_host": "10.0.0.%d" % (i + 11), "private_ip": "172.16.0.%d" % (i + 11)}
            for i, h in enumerate(HOSTS)}


def test_the_mesh_gives_every_other_host_with_its_ports_urls_and_ping():
    found, explicit, ports = build_targets("h1", GROUPS, HOSTVARS, mesh={
        "hosts": HOSTS, "ports": [22], "urls": [{"port": 8080, "path": "/health"}], "icmp": "auto"})
    targets = module_targets(found, explicit, ["icmp", "tcp", "http"])
    assert [t["name"] for t in targets] == ["h2", "h3", "h4"]
    assert targets[0] == {"name": "h2", "host": "10.0.0.12", "icmp": "auto", "ports": [{"port": 22}],
                          "urls": [{"url": "http://10.0.0.12:8080/health"}]}
    assert ports == [22, 8080]


def test_group_specs_merge_into_the_mesh_target_and_keep_expectations():
    found, explicit, _ = build_targets("h1", GROUPS, HOSTVARS, mesh={"hosts": HOSTS, "ports": [22]}, group_targets={
        "tcp": [{"group": "all", "port": 22, "expect": "^SSH-"},
                {"group": "db", "port": 5432, "address_var": "private_ip", "expected_state": "filtered"}],
        "icmp": [{"group": "web"}]})
    targets = {t["name"]: t for t in module_targets(found, explicit, ["icmp", "tcp", "http"])}
    assert targets["h2"]["icmp"] == "reachable"
    assert targets["h3"]["ports"] == [{"port": 22, "expect": "^SSH-"}]
    # the same host at another address is another target, told apart by its label
    assert targets["h3 (172.16.0.13)"]["ports"] == [{"port": 5432, "expected": "filtered"}]


def test_group_specs_address_hosts_as_the_mesh_does():
    found, explicit, _ = build_targets("h1", GROUPS, HOSTVARS, mesh={"hosts": HOSTS, "address_var": "private_ip"},
                                       group_targets={"tcp": [{"group": "db", "port": 5432}]})
    targets = {t["name"]: t for t in module_targets(found, explicit, ["icmp", "tcp", "http"])}
    assert targets["h3"] == {"name": "h3", "host": "172.16.0.13", "icmp": "auto", "ports": [{"port": 5432}],
                             "urls": []}


class CountedHostvars(dict):
    """HOSTVARS that count the lookups of a host's variables (each costs the controller milliseconds)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.lookups = []

    def __getitem__(self, name):
        self.lookups.append(name)
        return super().__getitem__(name)


class BrokenVars(dict):
    def get(self, key, default=None):
        raise ValueError("'private_ip' is undefined")


def test_the_roles_mesh_addresses_are_looked_up_once_for_every_source():
    hostvars = CountedHostvars(HOSTVARS)
    known = mesh_addresses(["h1", "h2"], hostvars, GROUPS, "private_ip", "all",
                           [{"group": "db", "port": 1}, {"group": "nope"}, "not a spec"])
    assert known == {"address_var": "private_ip",
                     "addresses": {h: "172.16.0.%d" % (i + 11) for i, h in enumerate(HOSTS)}}
    assert sorted(hostvars.lookups) == HOSTS  # each host once, whatever names it twice
    hostvars.lookups.clear()
    mesh = {"hosts": HOSTS, "ports": [22], "address_var": "private_ip", "addresses": known}
    targets = [module_targets(*build_targets(source, GROUPS, hostvars, mesh=mesh,
                                             group_targets={"tcp": [{"group": "db", "port": 5432}]})[:2], ["tcp"])
               for source in HOSTS]
    assert hostvars.lookups == []  # no source looks an address up again
    assert targets[0][1] == {"name": "h3", "host": "172.16.0.13", "icmp": "skip",
                             "ports": [{"port": 22}, {"port": 5432}], "urls": []}
    # a spec with another address_var, or a host the role did not look up, is looked up here
    build_targets("h1", GROUPS, hostvars, mesh=dict(mesh, hosts=["h1"]),
                  group_targets={"tcp": [{"group": "db", "port": 5432, "address_var": "ansible_host"}]})
    assert hostvars.lookups == ["h3"]
    # a host whose address cannot be looked up is left to each source (which reports it)
    broken = dict(HOSTVARS, h4=BrokenVars())
    assert sorted(mesh_addresses(HOSTS, broken, GROUPS)["addresses"]) == ["h1", "h2", "h3"]
    with pytest.raises(ExpansionError, match=r"^mesh.addresses: expected \{address_var"):
        build_targets("h1", GROUPS, HOSTVARS, mesh={"hosts": HOSTS, "addresses": {"h1": "10.0.0.11"}})


def test_layers_narrow_what_is_checked():
    found, explicit, _ = build_targets("h1", GROUPS, HOSTVARS, mesh={"hosts": HOSTS, "ports": [22],
                                                                     "urls": [{"port": 80}]})
    only_icmp = module_targets(found, explicit, ["icmp"])
    assert all(t["ports"] == [] and t["urls"] == [] and t["icmp"] == "auto" for t in only_icmp)
    only_tcp = module_targets(found, explicit, ["tcp"])
    assert all(t["icmp"] == "skip" and t["ports"] for t in only_tcp)
    assert module_targets(found, explicit, ["limits"]) == []


def test_explicit_extra_targets_and_bad_specs():
    found, explicit, _ = build_targets("h1", GROUPS, HOSTVARS, extra_targets={
        "tcp": [{"host": "localhost", "port": 8080, "name": "own-app"}],
        "http": ["http://10.9.9.9:81/x"], "icmp": [{"host": "10.9.9.8", "reachable": False}]})
    targets = {t["name"]: t for t in module_targets(found, explicit, ["icmp", "tcp", "http"])}
    assert targets["own-app"]["ports"] == [{"port": 8080}] and targets["own-app"]["host"] == "localhost"
    assert targets["10.9.9.9"]["urls"] == [{"url": "http://10.9.9.9:81/x"}]
    assert targets["10.9.9.8"]["icmp"] == "unreachable"
    with pytest.raises(ExpansionError, match=r"netcheck_tcp_group_targets\[0\].group: no group 'nope'"):
        build_targets("h1", GROUPS, HOSTVARS, group_targets={"tcp": [{"group": "nope", "port": 1}]})
    with pytest.raises(ExpansionError, match=r"^mesh.ports\[0\].colour: unknown key; known: port, expected, "):
        build_targets("h1", GROUPS, HOSTVARS, mesh={"hosts": HOSTS, "ports": [{"port": 1, "colour": 2}]})


@pytest.mark.parametrize("options, path", [
    ({"group_targets": {"tcp": [{"group": "db", "port": 22, "expected_sate": "filtered"}]}},
     "netcheck_tcp_group_targets[0].expected_sate"),
    ({"group_targets": {"tcp": [{"group": "db", "port": 22, "adress_var": "private_ip"}]}},
     "netcheck_tcp_group_targets[0].adress_var"),
    ({"group_targets": {"icmp": [{"group": "db", "port": 22}]}}, "netcheck_icmp_group_targets[0].port"),
    ({"group_targets": {"http": [{"group": "db", "port": 80, "status_code": [200]}]}},
     "netcheck_http_group_targets[0].status_code"),
    ({"group_targets": {"udp": []}}, "group_targets.udp"),
    ({"extra_targets": {"tcp": [{"host": "h", "port": 1, "family": "ipv4"}]}}, "netcheck_tcp_targets[0].family"),
    ({"extra_targets": {"icmp": [{"host": "h", "count": 3}]}}, "netcheck_icmp_targets[0].count"),
    ({"extra_targets": {"http": [{"url": "http://h/", "colour": 1}]}}, "netcheck_http_targets[0].colour"),
    ({"mesh": {"hosts": HOSTS, "colour": 1}}, "mesh.colour"),
    ({"mesh": {"hosts": HOSTS, "urls": [{"port": 80, "colour": 1}]}}, "mesh.urls[0].colour"),
])
def test_a_typo_anywhere_the_action_expands_is_an_error_naming_its_path(options, path):
    with pytest.raises(ExpansionError) as caught:
        build_targets("h1", GROUPS, HOSTVARS, **options)
    assert str(caught.value).startswith(path + ": unknown key; known: ")


def test_a_group_spec_without_its_port_is_an_error_naming_it():
    with pytest.raises(ExpansionError, match=r"^netcheck_tcp_group_targets\[0\].port: required"):
        build_targets("h1", GROUPS, HOSTVARS, group_targets={"tcp": [{"group": "db"}]})


def test_the_report_action_writes_every_report_file_and_a_known_failure_does_not_fail_the_run(tmp_path):
    import json

    from ansible_collections.netcheck.netcheck.plugins.action import netcheck_report
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils.reports import apply_baseline, run_failed
    run = mesh_run({("h2", "h1"): "PORT_FILTERED"})
    written = netcheck_report.write_reports(run, str(tmp_path / "20261126T100000Z"), {})
    assert sorted(written) == ["html", "json", "junit", "markdown", "prom"]
    assert json.loads(open(written["json"]).read())["pairs"] == run["pairs"]
    failing = [p for p in run["pairs"] if not p["ok"]]
    assert failing and run_failed(run)
    known = apply_baseline(run, {"known_failures": [{"source": p["source"], "target": p["target"]} for p in failing]})
    assert not run_failed(known)
    assert "KNOWN h2 -> h1" in "\n".join(runmodel.render(known))


# --- one verdict per check: the cell, the failure lines, ASYMMETRIC per check --------------------

def judged(target, checks):
    """A pair whose verdict has per-check verdicts: checks = [(name, code, severity)]."""
    layer = {"neighbour": "link", "icmp": "network"}
    records = [{"check": name, "layer": layer.get(name, "transport"), "ok": severity != "fail", "severity": severity,
                "code": code, "hint": "hint of %s" % code, "evidence": ["%s: fact of %s" % (name, code)],
                "outcome": None} for name, code, severity in checks]
    failing = [r for r in records if not r["ok"]]
    result = pair(target, failing[0]["code"] if failing else "OK")
    result["verdict"].update(checks=records, failed_checks=len(failing),
                             warned_checks=sum(1 for r in records if r["severity"] == "warn"),
                             hint=failing[0]["hint"] if failing else "ok")
    return result


def test_the_cell_shows_the_lowest_code_and_how_many_more_checks_fail():
    run = runmodel.build_run([
        {"name": "h1", "address": "a", "outcome": outcome([
            judged("h2", [("tcp/22", "PORT_OPEN", "fail"), ("tcp/5432", "PORT_CLOSED", "fail")]),
            judged("h3", [("icmp", "ICMP_LOSS", "warn"), ("tcp/22", "OK", "ok")]),
            judged("h4", [("tcp/22", "PORT_FILTERED", "fail")])])}])
    rows = {line.split()[0]: line.split()[1:] for line in runmodel.render_matrix(run) if line.startswith("h1 ")}
    assert rows["h1"] == ["OPN+1", "los", "FLT"]
    text = "\n".join(runmodel.render(run))
    # a failing check never hides behind another: both have their line, each with its own code
    assert "FAIL h1 -> h2 (10.0.0.12): PORT_OPEN [transport] hint of PORT_OPEN (2 checks failed)" in text
    assert "     tcp/22 PORT_OPEN: tcp/22: fact of PORT_OPEN" in text
    assert "     tcp/5432 PORT_CLOSED: tcp/5432: fact of PORT_CLOSED" in text
    assert "WARN h1 -> h3 (10.0.0.13): ICMP_LOSS [network] hint of ICMP_LOSS" in text
    assert "LOS=ICMP_LOSS" in text and "CLS=PORT_CLOSED" in text and "OPN=PORT_OPEN" in text
    assert not runmodel.run_failed(dict(run, pairs=[p for p in run["pairs"] if p["target"] == "h3"]))


def test_asymmetric_only_where_the_same_check_fails_one_way_and_passes_the_other():
    run = runmodel.build_run([
        {"name": "h1", "address": "a", "outcome": outcome([
            judged("h2", [("icmp", "OK", "ok"), ("tcp/22", "OK", "ok"), ("tcp/8080", "OK", "ok")])])},
        {"name": "h2", "address": "b", "outcome": outcome([
            # tcp/22 fails only from h2 to h1; 5432 is checked one way only, so it is not asymmetric
            judged("h1", [("icmp", "OK", "ok"), ("tcp/22", "PORT_FILTERED", "fail"), ("tcp/5432", "PORT_CLOSED", "fail")])])}])
    assert run["asymmetric_checks"] == [["h1", "h2", "tcp/22"]]
    assert run["asymmetric"] == [["h1", "h2"]]
    text = "\n".join(runmodel.render_failures(run))
    assert "ASYMMETRIC tcp/22: h1 -> h2 as expected, h2 -> h1 fails (PORT_FILTERED)" in text
    assert "5432" not in text.split("ASYMMETRIC")[1] and "does not reach" not in text


def test_different_checks_each_way_are_not_asymmetric():
    run = runmodel.build_run([
        {"name": "h1", "address": "a", "outcome": outcome([judged("h2", [("tcp/8080", "OK", "ok")])])},
        {"name": "h2", "address": "b", "outcome": outcome([judged("h1", [("tcp/5432", "PORT_CLOSED", "fail")])])}])
    assert run["asymmetric_checks"] == [] and run["asymmetric"] == []


def test_an_accept_queue_names_its_own_check_not_the_pairs_other_failures():
    failing = judged("h2", [("tcp/22", "PORT_OPEN", "fail"), ("tcp/9100", "PORT_FILTERED", "fail")])
    failing["layers"]["tcp"] = [{"target": "x:9100", "kind": "tcp", "state": "filtered", "ok": False, "timings": {},
                                 "error": None, "detail": {"port": 9100}}]
    limits = {"listeners": [{"port": 9100, "queue_full": True, "accept_queue": 2, "backlog": 1, "processes": []}],
              "netstat": {"ListenOverflows": 3}}
    run = runmodel.build_run([{"name": "h1", "address": "a", "outcome": outcome([failing])},
                              {"name": "h2", "address": "b", "outcome": outcome([], limits)}])
    (pair_,) = [p for p in run["pairs"] if p["target"] == "h2"]
    codes = {c["check"]: c["code"] for c in pair_["verdict"]["checks"]}
    assert codes == {"tcp/22": "PORT_OPEN", "tcp/9100": "ACCEPT_QUEUE_FULL"}
    assert pair_["verdict"]["code"] == "PORT_OPEN"


def test_the_cell_shows_the_hop_where_the_flow_died():
    dropped = judged("h2", [("tcp/8080", "DROPPED_AFTER_HOP", "fail"), ("icmp", "ICMP_FILTERED", "fail")])
    dropped["verdict"]["hop"] = {"index": 2, "address": "10.78.142.15"}
    run = runmodel.build_run([{"name": "h1", "address": "a", "outcome": outcome([dropped])}])
    rows = {line.split()[0]: line.split()[1:] for line in runmodel.render_matrix(run) if line.startswith("h1 ")}
    assert rows["h1"] == ["DRP@2+1"]
    assert "DRP=DROPPED_AFTER_HOP" in "\n".join(runmodel.render(run))


def test_a_target_or_router_with_a_full_conntrack_table_explains_a_silent_check():
    full = {"conntrack": {"count": 262144, "max": 262144, "full": True, "drop": 41, "early_drop": 511}}
    filtered = judged("h2", [("tcp/8080", "PORT_FILTERED", "fail")])
    dropped = judged("h3", [("tcp/8080", "DROPPED_AFTER_HOP", "fail")])
    dropped["verdict"]["checks"][0]["hop"] = {"index": 1, "address": "10.0.0.2"}
    closed = judged("h3", [("tcp/22", "PORT_CLOSED", "fail")])
    run = runmodel.build_run([
        {"name": "h1", "address": "10.0.0.1", "outcome": outcome([filtered, dropped])},
        {"name": "h2", "address": "10.0.0.2", "outcome": outcome([closed], limits=full)}])
    pairs = {(p["source"], p["target"]): p for p in run["pairs"]}
    for key in (("h1", "h2"), ("h1", "h3")):  # the target's own table; the router's at the hop
        verdict = pairs[key]["verdict"]
        assert verdict["code"] == "CONNTRACK_FULL" and "conntrack table of h2 is full" in verdict["hint"]
        assert verdict["evidence"][0].startswith("h2: conntrack table full, 262144 of nf_conntrack_max 262144")
    assert pairs[("h2", "h3")]["verdict"]["code"] == "PORT_CLOSED"  # an answer is not a conntrack drop


def test_every_verdict_code_has_a_cell_and_a_row_in_docs_verdict_md():
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import CODES
    assert set(runmodel.CELLS) == set(CODES)
    assert len(set(runmodel.CELLS.values())) == len(CODES), "two codes share a cell"
    doc = (COLLECTIONS.parent / "docs" / "verdict.md").read_text()
    assert [code for code in CODES if "| `%s` |" % code not in doc] == []


def test_a_group_spec_takes_expected_state_as_expected_and_refuses_them_disagreeing():
    same = {"group": "db", "port": 5432, "expected": "filtered", "expected_state": "filtered"}
    found, explicit, _ = build_targets("h1", GROUPS, HOSTVARS, group_targets={"tcp": [same]})
    ports = [port for target in module_targets(found, explicit, ["tcp"]) for port in target["ports"]]
    assert ports and all(port == {"port": 5432, "expected": "filtered"} for port in ports)
    with pytest.raises(ExpansionError, match=r"^netcheck_tcp_group_targets\[0\]\.expected_state: 'closed' differs "
                                             r"from expected 'filtered'"):
        build_targets("h1", GROUPS, HOSTVARS, group_targets={"tcp": [dict(same, expected_state="closed")]})


@pytest.mark.parametrize("pairs", [[], [{"target": "h2"}]], ids=["limits only", "with pairs"])
def test_the_limits_plain_words_warnings_are_read_from_limit_warnings(pairs):
    run = {"pairs": pairs, "sources": [{"name": "h1", "status": "ran", "limits": {
        "limit_warnings": ["port 8080: accept queue full (2 waiting, backlog 1)"]}}]}
    assert "limits h1: WARNING port 8080: accept queue full (2 waiting, backlog 1)" in runmodel.render_limits(run)
