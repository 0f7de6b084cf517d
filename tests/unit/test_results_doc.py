"""docs/results.md is the one result contract: every state each module's RETURN lists and each probe
declares is on that page, every word has exactly one meaning there, and the keys are the shape's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import diagnose, public_ip, tcp
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS

REPO = Path(__file__).resolve().parents[2]
PAGE = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
# module -> the kind of its results
PROBES = {"port_check": "tcp", "icmp_ping": "icmp", "http_check": "http", "public_ip": "public_ip"}
# states the page documents ahead of the branch that makes the probe return them (branch i14:
# TCP's ICMP-reject evidence, icmp_ping's per-target dns_error); empty once it is merged
AHEAD_OF_CODE = {("tcp", "rejected"), ("icmp", "dns_error")}


def _section(title):
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), PAGE, re.S | re.M)
    assert match, "docs/results.md has no section %r" % title
    return match.group(1)


def _rows(title):
    """The table rows of a section, as lists of cells with the backticks taken off."""
    rows = []
    for line in _section(title).splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header


def _return_of(module):
    tree = ast.parse((REPO / "library" / ("%s.py" % module)).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RETURN" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError(module)


WORDS = [row[0] for row in _rows("The words")]
DOCUMENTED = {(row[0], row[2]) for row in _rows("Which probe says which word")}


def test_the_keys_of_the_page_are_the_result_shape():
    assert [row[0] for row in _rows("Keys")] == list(RESULT_KEYS)


def test_every_word_has_exactly_one_meaning():
    assert len(WORDS) == len(set(WORDS)), [w for w in WORDS if WORDS.count(w) > 1]
    assert all(row[1] for row in _rows("The words"))


def test_every_state_a_probe_says_is_one_of_the_words():
    assert {state for _, state in DOCUMENTED} <= set(WORDS)


@pytest.mark.parametrize("module", sorted(PROBES))
def test_every_state_in_a_modules_return_is_documented_for_its_kind(module):
    results = _return_of(module)["results"]["contains"]
    choices = results["state"]["choices"]
    kind = PROBES[module]
    assert {(kind, state) for state in choices} <= DOCUMENTED, module
    # and the page promises nothing the module does not return
    assert {s for k, s in DOCUMENTED if k == kind} <= set(choices) | {s for k, s in AHEAD_OF_CODE if k == kind}
    assert "C(%s)" % kind in results["kind"]["description"]


@pytest.mark.parametrize("kind, states", [("tcp", tcp.STATES + ("error",)), ("public_ip", public_ip.STATES),
                                          ("neighbour", diagnose.NEIGHBOUR_RESULT_STATES)])
def test_every_state_a_probe_declares_is_documented(kind, states):
    assert {(kind, state) for state in states} <= DOCUMENTED


def test_the_modules_that_are_not_probes_are_named():
    section = _section("Modules that are not probes")
    assert "`port_forward`" in section and "`tcp_listener`" in section


def test_the_page_promises_no_neighbour_state_net_diagnose_does_not_return():
    assert {s for k, s in DOCUMENTED if k == "neighbour"} == set(diagnose.NEIGHBOUR_RESULT_STATES)


def test_the_neighbour_layer_says_only_its_documented_words():
    route = {"dev": "eth0", "gateway": None}
    for kernel in ("REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP", "LOCAL", "FAILED", "INCOMPLETE",
                   "NONE", None):
        result = diagnose.neighbour_result("10.0.0.2", route, {"ip": "10.0.0.2", "state": kernel, "dev": "eth0"})
        assert result["state"] in diagnose.NEIGHBOUR_RESULT_STATES, kernel
    assert diagnose.neighbour_result("10.0.0.2", {"dev": None}, {"state": None})["state"] == "no_route"


def _reason_rows():
    section = _section("The outcome: why, as data")
    table = section.split("### The reasons", 1)[1]
    rows = [[cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|") and not set(line) <= set("|- ")]
    return rows[1:]


def test_the_page_lists_exactly_the_closed_set_of_outcome_reasons():
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import REASONS
    words = [row[0] for row in _reason_rows()]
    assert sorted(words) == sorted(REASONS)
    assert len(words) == len(set(words))


def test_the_tcp_states_of_the_reasons_are_tcp_states():
    for row in _reason_rows():
        for word in re.findall(r"`?(\w+)`?", row[2].split("(")[0]):
            assert word in tcp.STATES + ("error",), row


def test_the_page_says_what_an_expected_filtered_accepts_as_the_code_does():
    section = _section("What an expected state accepts")
    assert tcp.ACCEPTS["filtered"] == ("filtered", "rejected")
    assert "accepts `filtered` **and** `rejected`" in section
    assert all(tcp.ACCEPTS[state] == (state,) for state in tcp.STATES if state != "filtered")
