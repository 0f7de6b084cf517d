"""Two-point evidence from the summaries of both ends, made from crafted captures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.pcap import summarize_bytes
from pcapcraft import ACK, RST, SYN, icmp, ip, pcap_bytes, tcp_packet

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
two_point = importlib.import_module(
    "ansible_collections.netcheck.netcheck.plugins.plugin_utils.capture_evidence").two_point

A, B, PORT = "10.0.0.1", "10.0.0.2", 5432
SYN_AB = tcp_packet(A, 40000, B, PORT, SYN, 100)
SYNACK_BA = tcp_packet(B, PORT, A, 40000, SYN | ACK, 900, 101)
ACK_AB = tcp_packet(A, 40000, B, PORT, ACK, 101, 901)
RST_BA = tcp_packet(B, PORT, A, 40000, RST | ACK, 0, 101)


def seen(*packets):
    return summarize_bytes(pcap_bytes([(1.0 + i * 0.01, p) for i, p in enumerate(packets)]))


def verdict(at_a, at_b):
    return two_point("web1", "db1", B, PORT, at_a, at_b)


def test_syn_that_never_left_a_is_the_source():
    result = verdict(seen(), seen())
    assert result["where"] == "source"
    assert result["sentence"].startswith("The SYN never left web1: its capture has no SYN to 10.0.0.2:5432")


def test_syn_that_left_a_and_never_reached_b_is_between():
    result = verdict(seen(SYN_AB, SYN_AB), seen())
    assert result["where"] == "between"
    assert result["sentence"].startswith("SYN left web1 and never reached db1")
    assert result["facts"]["syn_left_a"] == 2


def test_a_router_answer_is_named_between():
    router = ip("10.0.0.254", A, 1, icmp(3, 13, body=SYN_AB[:28]))
    assert "(10.0.0.254 answered destination-unreachable/admin-prohibited)" in \
        verdict(seen(SYN_AB, router), seen())["sentence"]


def test_rst_from_b_means_nothing_listens():
    result = verdict(seen(SYN_AB, RST_BA), seen(SYN_AB, RST_BA))
    assert result == dict(result, where="target", sentence="SYN reached db1, db1 sent RST: nothing listens on port 5432.")


def test_no_answer_from_b_is_bs_firewall():
    result = verdict(seen(SYN_AB, SYN_AB), seen(SYN_AB, SYN_AB))
    assert result["where"] == "target_firewall"
    assert result["sentence"] == "SYN reached db1, no answer left db1: db1's own firewall (INPUT) dropped it."


def test_icmp_reject_from_b_is_named():
    reject = ip(B, A, 1, icmp(3, 13, body=SYN_AB[:28]))
    result = verdict(seen(SYN_AB, reject), seen(SYN_AB, reject))
    assert result["where"] == "target_firewall" and "admin-prohibited" in result["sentence"]


def test_syn_ack_that_never_reached_a_is_the_return_path():
    result = verdict(seen(SYN_AB, SYN_AB), seen(SYN_AB, SYNACK_BA, SYN_AB, SYNACK_BA))
    assert result["where"] == "return_path"
    assert result["sentence"].startswith("SYN-ACK left db1 and never reached web1")


def test_syn_ack_on_as_wire_without_ack_is_as_input_firewall():
    result = verdict(seen(SYN_AB, SYNACK_BA), seen(SYN_AB, SYNACK_BA))
    assert result["where"] == "source_input"


def test_a_completed_handshake_or_a_missing_capture_says_nothing():
    both = seen(SYN_AB, SYNACK_BA, ACK_AB)
    assert verdict(both, both) is None
    assert verdict(None, both) is None
    assert two_point("web1", "db1", B, PORT, {"summary": both}, {"summary": both}) is None


def test_module_results_are_accepted_as_well_as_summaries():
    result = verdict({"summary": seen(SYN_AB)}, {"summary": seen()})
    assert result["where"] == "between"


@pytest.mark.parametrize("other_port", [22, 80])
def test_flows_of_other_ports_are_not_evidence(other_port):
    other = tcp_packet(A, 40001, B, other_port, SYN, 5)
    assert verdict(seen(other), seen(other))["where"] == "source"


C = "10.0.0.3"  # another source checking the same port of B in the same run


def test_a_syn_dropped_by_the_sources_own_output_is_the_source_even_when_b_saw_other_sources():
    """A's OUTPUT chain dropped its SYN; B's capture holds C's complete handshake on the same port.
    C's flow is not evidence for A -> B: the SYN never left A (not "the return path drops the SYN-ACK")."""
    syn_cb = tcp_packet(C, 41000, B, PORT, SYN, 300)
    synack_bc = tcp_packet(B, PORT, C, 41000, SYN | ACK, 700, 301)
    ack_cb = tcp_packet(C, 41000, B, PORT, ACK, 301, 701)
    result = two_point("web1", "db1", B, PORT, seen(), seen(syn_cb, synack_bc, ack_cb), source_addresses=[A])
    assert result["where"] == "source"
    assert result["sentence"].startswith("The SYN never left web1")
    assert result["facts"]["syn_reached_b"] == 0 and result["facts"]["flows_at_b"] == 0


def test_flows_of_other_sources_at_a_and_b_never_count():
    """A's SYN reached B and B answered nothing; another source's answered flow changes nothing."""
    syn_cb = tcp_packet(C, 41000, B, PORT, SYN, 300)
    synack_bc = tcp_packet(B, PORT, C, 41000, SYN | ACK, 700, 301)
    result = two_point("web1", "db1", B, PORT, seen(SYN_AB, SYN_AB), seen(SYN_AB, SYN_AB, syn_cb, synack_bc),
                       source_addresses=[A])
    assert result["where"] == "target_firewall"
    assert result["facts"]["syn_ack_left_b"] == 0 and result["facts"]["flows_at_b"] == 1
