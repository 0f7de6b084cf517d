"""path.py's decisions from crafted hops and MTU answers, and the probes against loopback."""

from __future__ import annotations

import socket
import struct

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import path

TARGET = "10.9.3.13"


def hop(index, answer, address=None, icmp_name=None, icmp_code=None):
    return {"hop": index, "answer": answer, "address": address, "icmp_name": icmp_name, "icmp_code": icmp_code}


def test_a_path_that_reaches_the_target_is_reached_at_its_hop():
    hops = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"), hop(3, "syn_ack", TARGET)]
    stop = path.classify_hops(hops, TARGET, 16, final=True, flow_ttl=64)
    assert (stop["code"], stop["hop"], stop["address"], stop["last_answering_hop"]) == ("REACHED", 3, TARGET, 2)


def test_silence_after_a_hop_is_dropped_after_that_hop():
    hops = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"), hop(3, "none"), hop(4, "none")]
    assert path.classify_hops(hops, TARGET, 16)["code"] is None  # still running: not decided
    stop = path.classify_hops(hops, TARGET, 16, final=True)
    assert (stop["code"], stop["hop"], stop["address"]) == ("DROPPED_AFTER_HOP", 2, "10.9.2.15")
    assert "hop 2 (10.9.2.15) answered" in path.trace_hint(stop)


def test_silence_from_the_first_hop_is_dropped_after_hop_zero():
    stop = path.classify_hops([hop(1, "none"), hop(2, "none")], TARGET, 16, final=True)
    assert (stop["code"], stop["hop"], stop["address"]) == ("DROPPED_AFTER_HOP", 0, None)


def test_an_unreachable_from_a_router_is_rejected_where_that_router_sits():
    hops = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"),
            hop(3, "unreachable", "10.9.2.15", "communication administratively prohibited", 13)]
    stop = path.classify_hops(hops, TARGET, 16)
    assert (stop["code"], stop["hop"], stop["address"]) == ("REJECTED_AT_HOP", 2, "10.9.2.15")
    assert "REJECT rule" in path.trace_hint(stop)


def test_a_router_without_a_route_is_rejected_with_the_route_table_hint():
    stop = path.classify_hops([hop(1, "unreachable", "10.9.1.14", "net unreachable", 0)], TARGET, 16)
    assert (stop["code"], stop["hop"]) == ("REJECTED_AT_HOP", 1)
    assert "no route onward" in path.trace_hint(stop)


def test_the_same_router_answering_again_is_a_routing_loop():
    hops = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"),
            hop(3, "time_exceeded", "10.9.1.14")]
    stop = path.classify_hops(hops, TARGET, 16)
    assert (stop["code"], stop["hop"], stop["address"]) == ("ROUTING_LOOP", 1, "10.9.1.14")
    assert stop["loop"] == ["10.9.1.14", "10.9.2.15", "10.9.1.14"]


def test_a_path_longer_than_the_flows_ttl_is_ttl_expired_where_it_runs_out():
    hops = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"), hop(3, "rst", TARGET)]
    stop = path.classify_hops(hops, TARGET, 16, final=True, flow_ttl=2)
    assert (stop["code"], stop["hop"], stop["address"]) == ("TTL_EXPIRED", 2, "10.9.2.15")
    many = [hop(i, "time_exceeded", "10.9.%d.1" % i) for i in range(1, 5)]
    assert path.classify_hops(many, TARGET, 4, final=True)["code"] == "TTL_EXPIRED"


def test_a_local_error_stops_at_the_source():
    assert path.classify_hops([hop(1, "local_error")], TARGET, 16)["code"] == "LOCAL_ERROR"


# --- the MTU search over a simulated path --------------------------------------------------------

def simulated(path_mtu, reports, calls=None):
    """A probe(size) for a path of ``path_mtu`` whose router reports it (``reports``) or stays silent."""
    def probe(size):
        if calls is not None:
            calls.append(size)
        if size <= path_mtu:
            return {"answer": "echo_reply"}
        if reports:
            return {"answer": "frag_needed", "mtu": path_mtu, "address": "10.9.1.14"}
        return {"answer": "none"}
    return probe


def test_a_router_reporting_1500_is_pmtu_reduced_in_few_probes():
    calls = []
    search = path.search_mtu(simulated(1500, True, calls), 9001, 576)
    facts = path.classify_mtu(search, 9001)
    assert (facts["code"], facts["path_mtu"], facts["reported_mtu"], facts["exact"]) == ("PMTU_REDUCED", 1500, 1500,
                                                                                         True)
    assert calls == [576, 9001, 1500, 1501]


def test_large_packets_vanishing_without_frag_needed_is_a_black_hole_naming_the_sizes():
    facts = path.classify_mtu(path.search_mtu(simulated(1500, False), 9001, 576), 9001)
    assert (facts["code"], facts["largest_passed"], facts["smallest_lost"], facts["interface_mtu"]) == (
        "MTU_BLACKHOLE", 1500, 1501, 9001)
    assert "ICMP type 3 code 4" in path.mtu_hint(facts) and "MSS to 1460" in path.mtu_hint(facts)


def test_a_mtu_off_the_plateaus_is_found_by_bisection():
    facts = path.classify_mtu(path.search_mtu(simulated(1234, False), 1500, 576, max_probes=40), 1500)
    assert (facts["code"], facts["path_mtu"], facts["exact"]) == ("MTU_BLACKHOLE", 1234, True)


def test_a_path_carrying_the_interface_mtu_is_ok_with_two_probes():
    calls = []
    facts = path.classify_mtu(path.search_mtu(simulated(9001, False, calls), 9001, 576), 9001)
    assert (facts["code"], facts["path_mtu"], calls) == ("PMTU_OK", 9001, [576, 9001])


def test_when_not_even_the_floor_comes_back_the_mtu_is_undetermined():
    facts = path.classify_mtu(path.search_mtu(lambda size: {"answer": "none"}, 9001, 576), 9001)
    assert facts["code"] == "UNDETERMINED" and facts["path_mtu"] is None


def test_the_search_is_bounded_by_max_probes():
    calls = []
    path.search_mtu(simulated(1234, False, calls), 65535, 576, max_probes=5)
    assert len(calls) == 6  # the floor, then at most max_probes


# --- packets and the error queue ------------------------------------------------------------------

def test_echo_probes_keep_one_checksum_whatever_their_sequence_number():
    sums = {path.echo_packet(socket.AF_INET, 0x1234, seq, 84)[2:4] for seq in (1, 2, 3, 500, 65535)}
    assert len(sums) == 1  # the flow a load balancer hashes on stays the same (Paris traceroute)


def test_an_echo_packet_has_the_ip_size_asked_for_and_a_valid_checksum():
    packet = path.echo_packet(socket.AF_INET, 0x1234, 7, 1500)
    assert len(packet) == 1500 - 20
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import checksum
    assert checksum(packet) == 0
    assert len(path.echo_packet(socket.AF_INET6, 1, 1, 1280)) == 1280 - 40


def test_a_queued_frag_needed_is_read_with_the_mtu_the_router_reported():
    data = struct.pack("=IBBBBII", 90, 2, 3, 4, 0, 1500, 0) + struct.pack("=HH4s8x", socket.AF_INET, 0,
                                                                          socket.inet_aton("10.9.1.14"))
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import parse_extended_err
    error = parse_extended_err(data)
    error["info"] = struct.unpack_from("=I", data, 8)[0]
    answer = path.answer_of(error, socket.AF_INET)
    assert (answer["answer"], answer["mtu"], answer["address"]) == ("frag_needed", 1500, "10.9.1.14")
    error.update({"type": 11, "code": 0})
    assert path.answer_of(error, socket.AF_INET)["answer"] == "time_exceeded"


def test_a_tcp_trace_to_a_loopback_listener_is_reached_at_hop_one_from_one_source_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        result = path.trace("127.0.0.1", port=server.getsockname()[1], timeout=1.0)
    finally:
        server.close()
    assert result["stop"]["code"] == "REACHED" and result["hops"][0]["answer"] == "syn_ack"
    assert result["method"] == "tcp-connect" and result["source_port"] > 0


def test_a_tcp_trace_to_a_closed_loopback_port_is_reached_by_its_rst():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = path.trace("127.0.0.1", port=port, timeout=1.0)
    assert (result["stop"]["code"], result["hops"][0]["answer"]) == ("REACHED", "rst")


@pytest.mark.parametrize("code", sorted(path.STOPS))
def test_every_stop_has_a_hint(code):
    stop = {"code": code, "hop": 2, "address": "10.9.2.15", "loop": ["10.9.1.14", "10.9.2.15"], "icmp_name": None,
            "icmp_code": None}
    assert path.trace_hint(stop)


# --- the verdict's hook: crafted pairs in the per-check verdict shape ------------------------------

def check(name, code="OK", ok=True, layer="transport"):
    return {"check": name, "layer": layer, "ok": ok, "severity": "ok" if ok else "fail", "code": code,
            "hint": "h", "evidence": ["%s: fact" % name], "outcome": None}


def pair(address, checks, via_gateway=True):
    failing = [c for c in checks if not c["ok"]]
    return {"target": address, "address": address, "ok": not failing,
            "layers": {"neighbour": {"detail": {"via_gateway": via_gateway, "route": {"dev": "a"}}}},
            "verdict": {"code": failing[0]["code"] if failing else "OK", "first_failing_layer": "transport",
                        "hint": "h", "evidence": [], "notes": [], "failed_checks": len(failing), "checks": checks}}


def never(*args, **kwargs):
    raise AssertionError("no path probe may be sent for a healthy pair")


def traced(stop, hops=None):
    default = [hop(1, "time_exceeded", "10.9.1.14"), hop(2, "time_exceeded", "10.9.2.15"), hop(3, "none")]

    def fake(address, port=None, protocol="tcp", **options):
        return {"address": address, "protocol": protocol, "port": port, "method": "tcp-connect", "source_port": 40000,
                "probes": 4, "hops": hops or default, "stop": dict(stop, meaning="m")}
    return fake


def test_healthy_pairs_send_no_path_probe():
    pairs = [pair(TARGET, [check("icmp", layer="network"), check("tcp/8080")])]
    stats = path.run_path_probes(pairs, {}, trace_fn=never, mtu_fn=never)
    assert (stats["traces"], stats["mtu_probes"], stats["changed_pairs"]) == (0, 0, [])
    assert pairs[0]["verdict"]["code"] == "OK"


def test_a_filtered_port_behind_a_router_becomes_dropped_after_the_hop_that_answered():
    pairs = [pair(TARGET, [check("icmp", layer="network"), check("tcp/8080", "PORT_FILTERED", ok=False)])]
    stop = {"code": "DROPPED_AFTER_HOP", "hop": 2, "address": "10.9.2.15"}
    stats = path.run_path_probes(pairs, {}, trace_fn=traced(stop), mtu_fn=never)
    assert stats["traces"] == 1
    verdict = pairs[0]["verdict"]
    assert (verdict["code"], verdict["hop"], verdict["first_failing_layer"]) == (
        "DROPPED_AFTER_HOP", {"index": 2, "address": "10.9.2.15"}, "network")
    assert verdict["evidence"][0].startswith("path tcp 10.9.3.13:8080: 1 10.9.1.14 time_exceeded")
    assert pairs[0]["ok"] is False


def test_an_on_link_target_is_not_traced():
    pairs = [pair(TARGET, [check("tcp/8080", "PORT_FILTERED", ok=False)], via_gateway=False)]
    assert path.run_path_probes(pairs, {}, trace_fn=never, mtu_fn=never)["traces"] == 0
    assert pairs[0]["verdict"]["code"] == "PORT_FILTERED"


def test_a_reject_by_the_target_itself_keeps_its_own_code_and_gains_the_hop():
    pairs = [pair(TARGET, [check("tcp/8080", "PORT_REJECTED", ok=False)])]
    stop = {"code": "REJECTED_AT_HOP", "hop": 3, "address": TARGET}
    path.run_path_probes(pairs, {}, trace_fn=traced(stop), mtu_fn=never)
    (only,) = pairs[0]["verdict"]["checks"]
    assert only["code"] == "PORT_REJECTED" and only["hop"] == {"index": 3, "address": TARGET}


def test_a_router_reject_and_a_loop_take_their_path_codes():
    for stop, code in (({"code": "REJECTED_AT_HOP", "hop": 1, "address": "10.9.1.14"}, "REJECTED_AT_HOP"),
                       ({"code": "ROUTING_LOOP", "hop": 1, "address": "10.9.1.14", "loop": ["10.9.1.14"]},
                        "ROUTING_LOOP"),
                       ({"code": "TTL_EXPIRED", "hop": 2, "address": "10.9.2.15"}, "TTL_EXPIRED")):
        pairs = [pair(TARGET, [check("tcp/22", "PORT_UNREACHABLE", ok=False)])]
        path.run_path_probes(pairs, {}, trace_fn=traced(stop), mtu_fn=never)
        assert pairs[0]["verdict"]["code"] == code


def mtu_facts(code, passed=1500, reported=None):
    return {"code": code, "path_mtu": passed, "largest_passed": passed, "smallest_lost": passed + 1,
            "interface_mtu": 9001, "reported_mtu": reported, "reported_by": "10.9.1.14" if reported else None,
            "exact": True, "family": "ipv4", "probes": []}


def test_a_stalled_transfer_is_probed_for_an_mtu_black_hole():
    pairs = [pair(TARGET, [check("tcp/8080"), check("http http://x/", "HTTP_TIMEOUT", ok=False, layer="application")])]
    stats = path.run_path_probes(pairs, {}, trace_fn=never, mtu_fn=lambda address, **o: mtu_facts("MTU_BLACKHOLE"))
    assert stats["mtu_probes"] == 1
    verdict = pairs[0]["verdict"]
    assert verdict["code"] == "MTU_BLACKHOLE" and "ICMP type 3 code 4" in verdict["hint"]
    assert [c["check"] for c in verdict["checks"]] == ["tcp/8080", "http http://x/"]  # no second MTU check


def test_mtu_on_request_notes_a_reduced_path_mtu_and_the_pair_stays_ok():
    pairs = [pair(TARGET, [check("tcp/8080")])]
    path.run_path_probes(pairs, {"mtu": True}, trace_fn=never,
                         mtu_fn=lambda address, **o: mtu_facts("PMTU_REDUCED", reported=1500))
    assert pairs[0]["ok"] is True and pairs[0]["verdict"]["code"] == "OK"
    assert pairs[0]["verdict"]["notes"][-1]["code"] == "PMTU_REDUCED"
    assert pairs[0]["verdict"]["checks"][-1]["mtu"]["path_mtu"] == 1500


def test_a_full_conntrack_table_explains_a_filtered_port():
    pairs = [pair(TARGET, [check("tcp/8080", "PORT_FILTERED", ok=False)], via_gateway=False)]
    conntrack = {"code": "CONNTRACK_FULL", "count": 262144, "max": 262144, "rose": {"drop": 3}, "hint": "raise it"}
    path.run_path_probes(pairs, {}, conntrack=conntrack, trace_fn=never, mtu_fn=never)
    verdict = pairs[0]["verdict"]
    assert verdict["code"] == "CONNTRACK_FULL" and verdict["hint"] == "raise it"
    assert "262144 of 262144 entries; rose: drop +3" in verdict["evidence"][0]


def test_the_flows_traced_per_run_are_bounded():
    pairs = [pair("10.9.3.%d" % i, [check("tcp/80", "PORT_FILTERED", ok=False)]) for i in range(1, 40)]
    traces, _ = path.flows_to_probe(pairs, {"max_flows": 5})
    assert len(traces) == 5


def test_a_silent_hop_before_an_answering_one_is_asked_again_after_a_pause(monkeypatch):
    """A router that rate-limits its ICMP errors (Linux: one 'net unreachable' a second) is silent at
    its own hop and answers the next probe: the trace asks the silent hop again and places it right."""
    answers = {1: [{"answer": "none", "address": None}, {"answer": "none", "address": None},
                   {"answer": "unreachable", "address": "10.9.1.14", "icmp_name": "net unreachable", "icmp_code": 0}],
               2: [{"answer": "unreachable", "address": "10.9.1.14", "icmp_name": "net unreachable", "icmp_code": 0}]}
    pauses = []

    def fake_hop(family, address, port, hops, source_port, timeout, source=None):
        return answers[hops].pop(0), 0.1, 40000

    monkeypatch.setattr(path, "tcp_hop", fake_hop)
    monkeypatch.setattr(path.time, "sleep", pauses.append)
    result = path.trace(TARGET, port=80, attempts=2)
    assert (result["stop"]["code"], result["stop"]["hop"]) == ("REJECTED_AT_HOP", 1)
    assert pauses == [path.DEFAULTS["pace"]] and result["probes"] == 4
