"""path.py's decisions from crafted hops and MTU answers, and the probes against loopback."""

from __future__ import annotations

import socket
import struct

import pytest

from netcheck import path

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

def test_an_echo_packet_has_the_ip_size_asked_for_and_a_valid_checksum():
    packet = path.echo_packet(socket.AF_INET, 0x1234, 7, 1500)
    assert len(packet) == 1500 - 20
    from netcheck.icmp import checksum
    assert checksum(packet) == 0
    assert len(path.echo_packet(socket.AF_INET6, 1, 1, 1280)) == 1280 - 40


def test_a_queued_frag_needed_is_read_with_the_mtu_the_router_reported():
    data = struct.pack("=IBBBBII", 90, 2, 3, 4, 0, 1500, 0) + struct.pack("=HH4s8x", socket.AF_INET, 0,
                                                                          socket.inet_aton("10.9.1.14"))
    from netcheck.tcp import parse_extended_err
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
