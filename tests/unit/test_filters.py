"""Unit tests of the controller-side filters in plugins/filter/netcheck.py: group target
expansion and the TCP summary. Pure functions over dictionaries; nothing is sent."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import probe_result
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import parse_targets

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


def _load_filters():
    # as Ansible loads it: a plugin of the collection netcheck.netcheck, importing the specs by FQCN
    if str(_COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(_COLLECTIONS))
    return importlib.import_module("ansible_collections.netcheck.netcheck.plugins.filter.netcheck")


filters = _load_filters()
expand_group_targets = filters.expand_group_targets
tcp_summary = filters.tcp_summary

GROUPS = {"web": ["web1", "web2", "web3"], "db": ["db1"], "empty": []}
HOSTVARS = {
    "web1": {"ansible_host": "10.77.0.11", "private_ip": "172.16.0.11"},
    "web2": {"private_ip": "172.16.0.12"},           # no ansible_host: addressed by its name
    "web3": {"ansible_host": None, "private_ip": None},  # null: also falls back to its name
    "db1": {"ansible_host": "10.77.0.21"},
}


# --- expand_group_targets ------------------------------------------------------------

def test_filter_module_exposes_group_targets_and_tcp_summary():
    mapping = filters.FilterModule().filters()
    assert mapping["netcheck_group_targets"] is expand_group_targets
    assert mapping["netcheck_tcp_summary"] is tcp_summary
    assert "netcheck_icmp_summary" in mapping


def test_hosts_are_addressed_by_ansible_host_falling_back_to_the_inventory_name():
    targets = expand_group_targets([{"group": "web", "port": 22}], GROUPS, HOSTVARS)
    assert targets == [
        {"port": 22, "host": "10.77.0.11", "name": "web1"},
        {"port": 22, "host": "web2", "name": "web2"},
        {"port": 22, "host": "web3", "name": "web3"},
    ]


def test_address_var_picks_another_host_variable():
    targets = expand_group_targets([{"group": "web", "port": 5432, "address_var": "private_ip"}], GROUPS, HOSTVARS)
    assert [(t["host"], t["name"]) for t in targets] == [
        ("172.16.0.11", "web1"), ("172.16.0.12", "web2"), ("web3", "web3")]
    assert all("address_var" not in t for t in targets)


def test_the_source_host_skips_itself_by_default():
    targets = expand_group_targets([{"group": "web", "port": 22}], GROUPS, HOSTVARS, source="web2")
    assert [t["name"] for t in targets] == ["web1", "web3"]


def test_include_self_argument_keeps_the_source_host():
    targets = expand_group_targets([{"group": "web", "port": 22}], GROUPS, HOSTVARS, source="web2",
                                   include_self=True)
    assert [t["name"] for t in targets] == ["web1", "web2", "web3"]


def test_include_self_of_a_spec_overrides_the_argument_both_ways():
    specs = [{"group": "web", "port": 22, "include_self": True}, {"group": "web", "port": 80, "include_self": False}]
    targets = expand_group_targets(specs, GROUPS, HOSTVARS, source="web1", include_self=False)
    assert [(t["name"], t["port"]) for t in targets] == [
        ("web1", 22), ("web2", 22), ("web3", 22), ("web2", 80), ("web3", 80)]
    targets = expand_group_targets(specs[1:], GROUPS, HOSTVARS, source="web1", include_self=True)
    assert [t["name"] for t in targets] == ["web2", "web3"]
    assert all("include_self" not in t for t in targets)


def test_module_keys_are_passed_through_and_group_keys_are_not():
    spec = {"group": "db", "port": 5432, "timeout": 1.5, "send": "x", "expect": "^ok", "expected_state": "closed",
            "address_var": "ansible_host", "include_self": False}
    (target,) = expand_group_targets([spec], GROUPS, HOSTVARS)
    assert target == {"port": 5432, "timeout": 1.5, "send": "x", "expect": "^ok", "expected_state": "closed",
                      "host": "10.77.0.21", "name": "db1"}


def test_the_role_spelling_expected_becomes_port_checks_expected_state():
    (target,) = expand_group_targets([{"group": "db", "port": 22, "expected": "filtered"}], GROUPS, HOSTVARS)
    assert target == {"port": 22, "expected_state": "filtered", "host": "10.77.0.21", "name": "db1"}


def test_a_typo_in_a_group_spec_is_an_error_naming_its_path_and_the_known_keys():
    specs = [{"group": "db", "port": 22, "expected_sate": "filtered", "adress_var": "private_ip_address"}]
    with pytest.raises(ValueError) as caught:
        expand_group_targets(specs, GROUPS, HOSTVARS)
    assert str(caught.value) == (
        "netcheck_tcp_group_targets[0].expected_sate: unknown key; known: group, address_var, include_self, "
        "port, expected, timeout, send, expect, expected_state")


@pytest.mark.parametrize("layer, spec, key", [
    ("tcp", {"group": "db", "port": 1, "name": "x"}, "name"),
    ("tcp", {"group": "db", "port": 1, "host": "10.0.0.1"}, "host"),
    ("icmp", {"group": "db", "reachable": False, "port": 1}, "port"),
    ("http", {"group": "db", "port": 80, "url": "http://x/"}, "url"),
    ("http", {"group": "db", "port": 80, "status_code": [200]}, "status_code"),
])
def test_every_layer_rejects_keys_a_group_spec_cannot_have(layer, spec, key):
    with pytest.raises(ValueError, match=r"^netcheck_%s_group_targets\[0\]\.%s: unknown key; known: group, "
                       % (layer, key)):
        expand_group_targets([spec], GROUPS, HOSTVARS, layer=layer)


def test_null_keys_are_not_passed_through():
    (target,) = expand_group_targets([{"group": "db", "port": 1, "timeout": None, "expect": None}], GROUPS, HOSTVARS)
    assert target == {"port": 1, "host": "10.77.0.21", "name": "db1"}


def test_several_specs_expand_in_order_and_an_empty_group_gives_nothing():
    specs = [{"group": "db", "port": 5432}, {"group": "empty", "port": 1}, {"group": "web", "port": 80}]
    targets = expand_group_targets(specs, GROUPS, HOSTVARS)
    assert [(t["name"], t["port"]) for t in targets] == [("db1", 5432), ("web1", 80), ("web2", 80), ("web3", 80)]


def test_no_specs_give_no_targets():
    assert expand_group_targets(None, GROUPS, HOSTVARS) == []
    assert expand_group_targets([], GROUPS, HOSTVARS) == []


def test_expanded_targets_are_valid_module_input():
    specs = [{"group": "web", "port": 22, "timeout": 2, "expected_state": "closed"}]
    parsed = parse_targets(expand_group_targets(specs, GROUPS, HOSTVARS))
    assert [(t.host, t.port, t.timeout, t.expected_state, t.name) for t in parsed] == [
        ("10.77.0.11", 22, 2.0, "closed", "web1"), ("web2", 22, 2.0, "closed", "web2"),
        ("web3", 22, 2.0, "closed", "web3")]


def test_unknown_group_is_a_value_error_naming_the_index_and_the_group():
    specs = [{"group": "db", "port": 1}, {"group": "nosuch", "port": 1}]
    with pytest.raises(ValueError) as caught:
        expand_group_targets(specs, GROUPS, HOSTVARS)
    message = str(caught.value)
    assert message.startswith("netcheck_tcp_group_targets[1].group: ")
    assert "'nosuch'" in message


def test_missing_port_is_a_value_error_naming_its_path():
    with pytest.raises(ValueError, match=r"^netcheck_tcp_group_targets\[0\]\.port: required"):
        expand_group_targets([{"group": "web"}], GROUPS, HOSTVARS)


def test_missing_group_is_named_first():
    with pytest.raises(ValueError, match=r"^netcheck_tcp_group_targets\[2\]\.group: required"):
        expand_group_targets([{"group": "db", "port": 1}, {"group": "db", "port": 2}, {}], GROUPS, HOSTVARS)


def test_a_spec_that_is_not_a_mapping_is_a_value_error():
    with pytest.raises(ValueError, match=r"^netcheck_tcp_group_targets\[0\]: expected a mapping with keys group, "):
        expand_group_targets(["web"], GROUPS, HOSTVARS)


def test_icmp_layer_needs_no_port_and_passes_reachable():
    targets = expand_group_targets([{"group": "db", "reachable": False}], GROUPS, HOSTVARS, layer="icmp")
    assert targets == [{"reachable": False, "host": "10.77.0.21", "name": "db1"}]
    with pytest.raises(ValueError, match=r"^netcheck_icmp_group_targets\[0\]\.group: "):
        expand_group_targets([{"group": "nosuch"}], GROUPS, HOSTVARS, layer="icmp")


# --- tcp_summary ---------------------------------------------------------------------

def _tcp(target, state, ok, total_ms=1.25, error=None, name=None, banner=None):
    return probe_result(target, "tcp", state, ok, {"total_ms": total_ms}, error, {"name": name, "banner": banner})


SUMMARY_HOSTVARS = {
    "web1": {"netcheck_tcp": {"results": [
        _tcp("10.77.0.21:5432", "open", True, 0.42, name="db1", banner="PG ready\r\nmore lines\r\n"),
        _tcp("10.77.0.22:5432", "closed", False, 0.31,
             error="Connection refused (the host answered with RST: nothing listens there)", name="db2"),
        _tcp("10.77.0.23:443", "filtered", False, 3001.7, error="no answer within 3 s"),
    ]}},
    "web2": {"netcheck_tcp": {"skipped": True, "skip_reason": "no targets"}},
    "web3": {"netcheck_tcp": {"failed": True, "results": [], "msg": "targets[0].port: 0 is not a port (1-65535)"}},
    "web4": {},
}


def test_tcp_summary_has_one_line_per_source_and_target():
    lines = tcp_summary(["web1"], SUMMARY_HOSTVARS).split("\n")
    assert len(lines) == 3
    assert all(line.startswith("web1 -> ") for line in lines)


def test_tcp_summary_line_shows_target_name_state_ok_and_time():
    first = tcp_summary(["web1"], SUMMARY_HOSTVARS).split("\n")[0]
    assert "db1 (10.77.0.21:5432)" in first
    assert " open " in first
    assert " ok " in first and "FAIL" not in first
    assert "0.4 ms" in first


def test_tcp_summary_shows_the_first_banner_line_of_a_passing_target():
    first = tcp_summary(["web1"], SUMMARY_HOSTVARS).split("\n")[0]
    assert first.endswith("  PG ready")
    assert "more lines" not in first


def test_tcp_summary_marks_failures_and_appends_their_error():
    lines = tcp_summary(["web1"], SUMMARY_HOSTVARS).split("\n")
    assert "db2 (10.77.0.22:5432)" in lines[1] and " closed " in lines[1] and " FAIL " in lines[1]
    assert lines[1].endswith("  Connection refused (the host answered with RST: nothing listens there)")
    assert "10.77.0.23:443" in lines[2] and "filtered" in lines[2] and "FAIL" in lines[2]
    assert "3001.7 ms" in lines[2]
    assert lines[2].endswith("  no answer within 3 s")


def test_tcp_summary_labels_a_target_without_name_by_the_target_alone():
    third = tcp_summary(["web1"], SUMMARY_HOSTVARS).split("\n")[2]
    assert third.startswith("web1 -> 10.77.0.23:443 ")
    assert "(" not in third.split("filtered")[0]


def test_tcp_summary_reports_a_skipped_host():
    assert tcp_summary(["web2"], SUMMARY_HOSTVARS) == "web2: no TCP targets"


def test_tcp_summary_reports_a_host_whose_result_has_no_results_with_its_message():
    assert tcp_summary(["web3"], SUMMARY_HOSTVARS) == (
        "web3: TCP check failed: targets[0].port: 0 is not a port (1-65535)")


def test_tcp_summary_reports_a_host_that_did_not_run():
    assert tcp_summary(["web4"], SUMMARY_HOSTVARS) == "web4: TCP check failed: it did not run"


def test_tcp_summary_keeps_the_order_of_the_sources():
    lines = tcp_summary(["web4", "web2", "web1", "web3"], SUMMARY_HOSTVARS).split("\n")
    assert [line.split(" ")[0].rstrip(":") for line in lines] == ["web4", "web2", "web1", "web1", "web1", "web3"]


def test_tcp_summary_reads_the_given_register():
    hostvars = {"h": {"ports": {"results": [_tcp("127.0.0.1:22", "open", True)]}}}
    assert tcp_summary(["h"], hostvars, register="ports").startswith("h -> 127.0.0.1:22 ")
    assert tcp_summary(["h"], hostvars) == "h: TCP check failed: it did not run"


def test_tcp_summary_of_an_error_result_without_timings_shows_a_dash():
    result = probe_result("10.0.0.1:22", "tcp", "error", False, {}, "no verdict within the global deadline of 11 s")
    line = tcp_summary(["h"], {"h": {"netcheck_tcp": {"results": [result]}}})
    assert " error " in line and " FAIL " in line and " - " in line
    assert line.endswith("no verdict within the global deadline of 11 s")


def test_tcp_summary_survives_a_whitespace_only_banner():
    result = _tcp("127.0.0.1:7", "open", True, banner="\r\n")
    line = tcp_summary(["h"], {"h": {"netcheck_tcp": {"results": [result]}}})
    assert line.startswith("h -> 127.0.0.1:7 ")


# --- checks_failed ---------------------------------------------------------------------

def test_checks_failed_is_true_when_any_source_failed_could_not_run_or_missed_a_pair():
    checks_failed = filters.FilterModule().filters()["netcheck_checks_failed"]
    ok = {"netcheck_diagnose": {"results": [{"ok": True}, {"ok": True}]}}
    assert checks_failed(["a", "b"], {"a": ok, "b": {}}) is False  # b registered nothing: it failed nothing
    assert checks_failed(["a"], {"a": {"netcheck_diagnose": {"results": [], "skipped": True}}}) is False
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"results": [{"ok": True}, {"ok": False}]}}})
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"unreachable": True}}})
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"failed": True, "msg": "bad input"}}})
    # only the sources asked are read
    assert checks_failed(["a"], {"a": ok, "b": {"netcheck_diagnose": {"failed": True}}}) is False
