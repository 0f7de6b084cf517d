"""The pcap reader and per-flow summary, on crafted packets (no lab, no tcpdump)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.pcap import PcapError, summarize_bytes
from pcapcraft import (ACK, FIN, RST, SYN, handshake, icmp, ip, ipv4, pcap_bytes, tcp, tcp_packet, udp)

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.254"
A6, B6 = "fd00::1", "fd00::2"


def summary(packets, link_type=1, local=(), **kwargs):
    return summarize_bytes(pcap_bytes(packets, link_type, **kwargs), local)


def only_flow(result):
    assert len(result["flows"]) == 1, result["flows"]
    return result["flows"][0]


@pytest.mark.parametrize("link_type", [1, 113, 276, 101])
def test_full_conversation_is_sf_on_every_link_type(link_type):
    result = summary(handshake(A, 40000, B, 80, data=b"GET / HTTP/1.0\r\n\r\n"), link_type)
    flow = only_flow(result)
    assert result["link_type"] == link_type
    assert (flow["orig_h"], flow["orig_p"], flow["resp_h"], flow["resp_p"]) == (A, 40000, B, 80)
    assert flow["conn_state"] == "SF"
    assert flow["history"] == "ShADaFf"
    assert flow["orig_flags"] == {"syn": 1, "syn_ack": 0, "rst": 0, "fin": 1}
    assert flow["resp_flags"] == {"syn": 0, "syn_ack": 1, "rst": 0, "fin": 1}
    assert (flow["orig_pkts"], flow["resp_pkts"]) == (5, 3)
    assert flow["orig_bytes"] == 18 and flow["resp_bytes"] == 0
    assert flow["orig_ip_bytes"] == 4 * 40 + 58


def test_ipv6_and_vlan_tagged_frames_are_decoded():
    packets = handshake(A6, 40000, B6, 443, close=False)
    flow = only_flow(summary(packets))
    assert (flow["orig_h"], flow["resp_h"], flow["conn_state"]) == (A6, B6, "S1")
    tagged = pcap_bytes([(1.0, tcp_packet(A, 1, B, 2, SYN))])
    # rebuild the one frame with an 802.1Q tag
    from pcapcraft import ethernet
    import struct
    frame = ethernet(tcp_packet(A, 1, B, 2, SYN), vlan=7)
    data = tagged[:24] + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    assert only_flow(summarize_bytes(data))["conn_state"] == "S0"


def test_unanswered_syns_are_s0_with_retransmissions():
    packets = [(1.0 + i, tcp_packet(A, 40001, B, 22, SYN, 777)) for i in range(3)]
    flow = only_flow(summary(packets))
    assert flow["conn_state"] == "S0"
    # the same SYN again is counted as a retransmission; Zeek's T is for payload, so the history stays S
    assert flow["history"] == "S"
    assert flow["orig_flags"]["syn"] == 3
    assert flow["retransmissions"] == {"orig": 2, "resp": 0}
    assert flow["handshake"] is None


def test_syn_answered_by_rst_is_rej():
    packets = [(1.0, tcp_packet(A, 40002, B, 81, SYN, 10)),
               (1.001, tcp_packet(B, 81, A, 40002, RST | ACK, 0, 11))]
    flow = only_flow(summary(packets))
    assert (flow["conn_state"], flow["history"]) == ("REJ", "Sr")
    assert flow["resp_flags"]["rst"] == 1


def test_originator_abort_after_establishment_is_rsto():
    packets = handshake(A, 40003, B, 80, close=False) + [(2.0, tcp_packet(A, 40003, B, 80, RST, 5001))]
    assert only_flow(summary(packets))["conn_state"] == "RSTO"


def test_responder_reset_after_establishment_is_rstr():
    packets = handshake(A, 40004, B, 80, close=False) + [(2.0, tcp_packet(B, 80, A, 40004, RST, 9001))]
    assert only_flow(summary(packets))["conn_state"] == "RSTR"


def test_syn_then_own_rst_is_rstos0():
    packets = [(1.0, tcp_packet(A, 40005, B, 80, SYN, 10)), (1.5, tcp_packet(A, 40005, B, 80, RST, 11))]
    flow = only_flow(summary(packets))
    assert (flow["conn_state"], flow["history"]) == ("RSTOS0", "SR")


def test_syn_then_fin_without_answer_is_sh():
    packets = [(1.0, tcp_packet(A, 40006, B, 80, SYN, 10)), (1.5, tcp_packet(A, 40006, B, 80, FIN | ACK, 11))]
    assert only_flow(summary(packets))["conn_state"] == "SH"


def test_midstream_traffic_is_oth():
    packets = [(1.0, tcp_packet(A, 40007, B, 80, ACK, 10, 20, b"x")),
               (1.1, tcp_packet(B, 80, A, 40007, ACK, 20, 11))]
    flow = only_flow(summary(packets))
    assert (flow["conn_state"], flow["history"]) == ("OTH", "Da")


def test_first_packet_syn_ack_flips_the_flow():
    packets = [(1.0, tcp_packet(B, 80, A, 40008, SYN | ACK, 9000, 11))]
    flow = only_flow(summary(packets))
    assert (flow["orig_h"], flow["resp_h"], flow["history"]) == (A, B, "^h")


def test_data_retransmission_is_counted():
    packets = handshake(A, 40009, B, 80, data=b"hello", close=False)
    packets.append((5.0, tcp_packet(A, 40009, B, 80, ACK | 0x08, 5001, 9001, b"hello")))
    flow = only_flow(summary(packets))
    assert flow["retransmissions"]["orig"] == 1
    assert "T" in flow["history"]


@pytest.mark.parametrize("local, measured_at, rtt", [
    ((A,), "originator", 10.0), ((B,), "responder", 1.0), ((), "between", 11.0)])
def test_handshake_rtt_says_where_it_was_measured(local, measured_at, rtt):
    flow = only_flow(summary(handshake(A, 40010, B, 80, t0=100.0, rtt=0.010), local=local))
    assert flow["handshake"]["measured_at"] == measured_at
    assert flow["handshake"]["rtt_ms"] == pytest.approx(rtt, abs=0.01)
    assert flow["local"] == {"originator": "orig", "responder": "resp", "between": None}[measured_at]


def test_icmp_admin_prohibited_is_attached_to_the_tcp_flow_it_quotes():
    syn = tcp_packet(A, 40011, B, 5432, SYN, 10)
    error = ip(B, A, 1, icmp(3, 13, body=syn[:28]))
    flow = only_flow(summary([(1.0, syn), (1.001, error)]))
    assert flow["conn_state"] == "S0"
    assert flow["orig_pkts"] == 1 and flow["resp_pkts"] == 0
    [attached] = flow["icmp_errors"]
    assert attached["from"] == B and (attached["type"], attached["code"]) == (3, 13)
    assert attached["name"] == "destination-unreachable/admin-prohibited"
    assert attached["count"] == 1


def test_icmp_error_from_a_router_for_udp_and_icmpv6_unreachable():
    datagram = ip(A, B, 17, udp(5353, 53, b"q"))
    from_router = ip(C, A, 1, icmp(11, 0, body=datagram[:28]))
    flow = only_flow(summary([(1.0, datagram), (1.1, from_router)]))
    assert flow["conn_state"] == "S0" and flow["icmp_errors"][0]["from"] == C
    syn6 = tcp_packet(A6, 40012, B6, 80, SYN, 10)
    error6 = ip(B6, A6, 58, icmp(1, 1, body=syn6[:48]))
    flow6 = only_flow(summary([(1.0, syn6), (1.1, error6)]))
    assert flow6["icmp_errors"][0]["name"] == "destination-unreachable/admin-prohibited"


def test_icmp_echo_is_counted_per_pair():
    packets = []
    for i in range(4):
        packets.append((1.0 + i, ip(A, B, 1, icmp(8, 0, b"\x00\x01\x00" + bytes([i])))))
        if i < 3:
            packets.append((1.1 + i, ip(B, A, 1, icmp(0, 0, b"\x00\x01\x00" + bytes([i])))))
    packets.append((9.0, ip(C, A, 1, icmp(8, 0))))
    result = summary(packets)
    assert result["flows"] == []
    pairs = {(p["requester"], p["responder"]): (p["requests"], p["replies"]) for p in result["icmp_echo"]}
    assert pairs == {(A, B): (4, 3), (C, A): (1, 0)}


def test_udp_flows_follow_zeek():
    answered = [(1.0, ip(A, B, 17, udp(5000, 53, b"q"))), (1.1, ip(B, A, 17, udp(53, 5000, b"a")))]
    assert only_flow(summary(answered))["conn_state"] == "SF"
    assert only_flow(summary(answered[:1]))["conn_state"] == "S0"


def test_nanosecond_big_endian_files_read_the_same():
    packets = handshake(A, 40013, B, 80)
    plain = summary(packets)
    other = summary(packets, nanoseconds=True, big_endian=True)
    assert other["flows"][0]["conn_state"] == plain["flows"][0]["conn_state"] == "SF"
    assert other["first_ts"] == pytest.approx(plain["first_ts"])


def test_non_ip_frames_are_undecoded_not_errors():
    data = pcap_bytes([(1.0, tcp_packet(A, 1, B, 2, SYN))])
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\x00" * 28
    import struct
    data += struct.pack("<IIII", 2, 0, len(arp), len(arp)) + arp
    result = summarize_bytes(data)
    assert (result["packets"], result["undecoded"], len(result["flows"])) == (2, 1, 1)


def test_a_cut_file_sets_truncated_and_keeps_the_whole_records():
    data = pcap_bytes(handshake(A, 40014, B, 80))
    result = summarize_bytes(data[:-5])
    assert result["truncated"] is True
    assert result["packets"] == 5


def test_not_a_pcap_raises_pcap_error_naming_why():
    with pytest.raises(PcapError, match="magic"):
        summarize_bytes(b"\x00" * 64)
    with pytest.raises(PcapError, match="pcapng"):
        summarize_bytes(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)
    with pytest.raises(PcapError, match="shorter"):
        summarize_bytes(b"\xd4\xc3")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from([1, 12, 101, 113, 228, 229, 276, 9999]))
def test_garbage_records_never_crash(body, link_type):
    header = pcap_bytes([], link_type)
    try:
        result = summarize_bytes(header + body)
    except PcapError:
        return
    assert result["packets"] >= 0


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=255),
       st.sampled_from([1, 113, 276, 101]))
def test_truncated_and_mangled_packets_never_crash(cut, flip, link_type):
    syn = tcp_packet(A, 40015, B, 80, SYN | ACK | FIN | RST, 10)
    mangled = bytearray(ip(B, A, 1, icmp(3, 3, body=syn[:28])))
    mangled[cut % len(mangled)] ^= flip
    for packet in (bytes(mangled[:cut]), bytes(mangled), syn[:cut], ipv4(A, B, 6, tcp(1, 2, SYN))[:cut] or b"\x45"):
        if not packet:
            continue
        result = summarize_bytes(pcap_bytes([(1.0, packet)], link_type))
        assert result["packets"] == 1


@given(st.binary(min_size=24, max_size=200))
@settings(max_examples=200, deadline=None)
def test_any_bytes_raise_only_pcap_error(data):
    try:
        summarize_bytes(data)
    except PcapError:
        pass
