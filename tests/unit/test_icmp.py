"""Unit tests of netcheck.icmp: packets, reply matching, ping output parsing, verdicts,
input validation, method choice, and real echoes to loopback addresses only."""

from __future__ import annotations


import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from loopback import has_ipv6_loopback  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import icmp  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import (  # noqa: E402
    COOKIE_LEN, EchoRecord, InputError, MethodUnavailable, PingTarget, build_result, checksum,
    choose_method, echo_request, make_payload, parse_icmp, parse_ping_output, parse_targets, ping_argv,
    ping_targets, quoted_echo, rtt_stats, status_of, validate_options, validate_thresholds,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS  # noqa: E402

V4, V6 = socket.AF_INET, socket.AF_INET6
IDENT = 0x1234
COOKIE = bytes.fromhex("a1b2c3d4e5f60718")
HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- packet builders ----------------------------------------------------------------

def ipv4_header(src, dst, proto=socket.IPPROTO_ICMP, ttl=64, options=b"", payload_len=0):
    """A 20-byte IPv4 header (plus options, a multiple of 4 bytes); checksum left 0."""
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, ihl * 4 + payload_len, 0, 0, ttl, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + options


def ipv6_header(src, dst, next_header=socket.IPPROTO_ICMPV6, hop_limit=64, payload_len=0):
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, next_header, hop_limit,
                       socket.inet_pton(V6, src), socket.inet_pton(V6, dst))


def icmp_message(kind, code, rest, body=b""):
    """Type, code, checksum 0, the 4 bytes of the rest of the header, then the body."""
    return struct.pack("!BBH", kind, code, 0) + rest + body


def echo_reply(family, ident, seq, payload):
    return icmp_message(icmp.ECHO_REPLY[family], 0, struct.pack("!HH", ident, seq), payload)


def echo_header(family, ident, seq):
    return icmp_message(icmp.ECHO_REQUEST[family], 0, struct.pack("!HH", ident, seq))


def v4_error(kind, code, original_src, original_dst, ident, seq, proto=socket.IPPROTO_ICMP, quoted=None):
    """An ICMPv4 error quoting an IPv4 header and the first 8 bytes of an echo request."""
    quoted = echo_header(V4, ident, seq) if quoted is None else quoted
    inner = ipv4_header(original_src, original_dst, proto=proto, payload_len=len(quoted)) + quoted
    return icmp_message(kind, code, b"\0\0\0\0", inner)


def v6_error(kind, code, original_src, original_dst, ident, seq, next_header=socket.IPPROTO_ICMPV6, quoted=None):
    quoted = echo_header(V6, ident, seq) if quoted is None else quoted
    inner = ipv6_header(original_src, original_dst, next_header=next_header, payload_len=len(quoted)) + quoted
    return icmp_message(kind, code, b"\0\0\0\0", inner)


# --- checksum and echo requests ---------------------------------------------------------

def test_checksum_matches_the_rfc1071_worked_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, whose complement is 220d
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_pads_an_odd_length_with_a_zero_byte():
    assert checksum(b"\x01") == checksum(b"\x01\x00") == 0xFEFF
    assert checksum(bytes.fromhex("0001f203f4f5f6")) == checksum(bytes.fromhex("0001f203f4f5f600"))


def test_checksum_of_nothing_is_all_ones():
    assert checksum(b"") == 0xFFFF


def test_checksum_folds_carries_back_into_the_low_word():
    # ffff + 0001 = 1 0000 -> folded to 0001 -> complement fffe
    assert checksum(bytes.fromhex("ffff0001")) == 0xFFFE


@given(st.binary(max_size=300))
@HYPOTHESIS
def test_a_packet_with_its_checksum_filled_in_sums_to_zero(data):
    data = data + b"\0" * (len(data) % 2)  # the checksum field must stay word-aligned
    packet = struct.pack("!H", checksum(data)) + data
    assert checksum(packet) == 0


def test_ipv4_echo_request_has_type_8_a_valid_checksum_and_big_endian_ident_and_seq():
    payload = make_payload(COOKIE, 24)
    packet = echo_request(V4, 0xBEEF, 0x0102, payload)
    kind, code, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (kind, code) == (8, 0)
    assert packet[4:8] == b"\xbe\xef\x01\x02"
    assert (ident, seq) == (0xBEEF, 0x0102)
    assert packet[8:] == payload
    assert checksum(packet) == 0


def test_ipv4_echo_request_checksum_matches_a_known_value():
    # 0800 + 0000 + 1234 + 0001 = 1a35 -> complement e5ca
    assert echo_request(V4, 0x1234, 1, b"") == bytes.fromhex("0800e5ca12340001")


def test_ipv6_echo_request_has_type_128_and_leaves_the_checksum_to_the_kernel():
    packet = echo_request(V6, 0xBEEF, 7, b"xyz")
    assert packet == bytes.fromhex("80000000beef0007") + b"xyz"


def test_payload_starts_with_the_cookie_and_has_the_exact_size():
    payload = make_payload(COOKIE, 56)
    assert len(payload) == 56
    assert payload.startswith(COOKIE)
    assert payload[COOKIE_LEN:] == bytes(range(56 - COOKIE_LEN))


def test_payload_larger_than_256_bytes_wraps_the_filler_byte():
    payload = make_payload(COOKIE, 300)
    assert len(payload) == 300
    assert payload[COOKIE_LEN + 256] == 0 and payload[COOKIE_LEN + 255] == 255


@pytest.mark.parametrize("size", [0, 1, 4, COOKIE_LEN])
def test_payload_smaller_than_the_cookie_is_a_cookie_prefix(size):
    assert make_payload(COOKIE, size) == COOKIE[:size]


# --- parse_icmp and quoted_echo --------------------------------------------------------------

def test_parse_icmp_strips_the_ipv4_header_and_returns_its_ttl_on_raw_sockets():
    message = echo_reply(V4, IDENT, 1, b"data")
    packet = ipv4_header("192.0.2.9", "192.0.2.2", ttl=57, payload_len=len(message)) + message
    assert parse_icmp(V4, packet, raw=True) == (message, 57)


def test_parse_icmp_uses_the_ihl_to_skip_ipv4_options():
    message = echo_reply(V4, IDENT, 1, b"data")
    header = ipv4_header("192.0.2.9", "192.0.2.2", ttl=3, options=b"\x01\x01\x01\x00", payload_len=len(message))
    assert len(header) == 24
    assert parse_icmp(V4, header + message, raw=True) == (message, 3)


def test_parse_icmp_rejects_a_raw_ipv4_packet_shorter_than_an_ip_header():
    assert parse_icmp(V4, b"\x45" + b"\0" * 18, raw=True) == (None, None)


@pytest.mark.parametrize("family, raw", [(V6, True), (V6, False), (V4, False)])
def test_parse_icmp_returns_ipv6_and_dgram_packets_as_they_are(family, raw):
    message = echo_reply(family, IDENT, 1, b"data")
    assert parse_icmp(family, message, raw) == (message, None)


def test_quoted_echo_finds_the_destination_ident_and_seq_in_an_ipv4_unreachable():
    error = v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT, 5)
    assert quoted_echo(V4, error) == ("192.0.2.77", IDENT, 5)


def test_quoted_echo_uses_the_inner_ihl_when_the_quoted_ipv4_header_has_options():
    quoted = echo_header(V4, IDENT, 9)
    inner = ipv4_header("192.0.2.2", "198.51.100.4", options=b"\x01" * 8, payload_len=8) + quoted
    assert quoted_echo(V4, icmp_message(11, 0, b"\0" * 4, inner)) == ("198.51.100.4", IDENT, 9)


def test_quoted_echo_finds_the_destination_ident_and_seq_in_an_ipv6_unreachable():
    error = v6_error(1, 3, "fd00::2", "fd00::77", IDENT, 2)
    assert quoted_echo(V6, error) == ("fd00::77", IDENT, 2)


def test_quoted_echo_rejects_an_ipv4_error_quoting_another_protocol():
    # a UDP header from source port 2100 (0x0834) starts with the byte 8, like an echo request
    udp = struct.pack("!HHHH", 2100, 53, 8, 0)
    assert quoted_echo(V4, v4_error(3, 3, "192.0.2.2", "192.0.2.77", IDENT, 5, proto=17, quoted=udp)) is None


def test_quoted_echo_rejects_an_ipv6_error_quoting_another_protocol():
    # a UDP header from ephemeral port 32800 (0x8020) starts with the byte 128, like an ICMPv6 echo request
    udp = struct.pack("!HHHH", 32800, 53, 8, 0)
    assert quoted_echo(V6, v6_error(1, 4, "fd00::2", "fd00::77", IDENT, 5, next_header=17, quoted=udp)) is None


def test_quoted_echo_rejects_a_truncated_quote():
    assert quoted_echo(V4, v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT, 5)[:-1]) is None
    assert quoted_echo(V6, v6_error(1, 3, "fd00::2", "fd00::77", IDENT, 5)[:-1]) is None
    assert quoted_echo(V4, b"\x03\x01") is None
    assert quoted_echo(V6, b"") is None


def test_quoted_echo_rejects_a_quote_of_something_other_than_an_echo_request():
    reply_v4 = echo_reply(V4, IDENT, 5, b"")  # type 0, not 8
    assert quoted_echo(V4, v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT, 5, quoted=reply_v4)) is None
    reply_v6 = echo_reply(V6, IDENT, 5, b"")  # type 129, not 128
    assert quoted_echo(V6, v6_error(1, 3, "fd00::2", "fd00::77", IDENT, 5, quoted=reply_v6)) is None


@given(family=st.sampled_from([V4, V6]), raw=st.booleans(), packet=st.binary(max_size=200))
@HYPOTHESIS
def test_parse_icmp_never_raises_on_arbitrary_bytes(family, raw, packet):
    message, ttl = parse_icmp(family, packet, raw)
    assert message is None or isinstance(message, bytes)
    assert ttl is None or 0 <= ttl <= 255


def _check_quote(result):
    assert result is None or (len(result) == 3 and 0 <= result[1] <= 0xFFFF and 0 <= result[2] <= 0xFFFF)


@given(family=st.sampled_from([V4, V6]), data=st.binary(max_size=200))
@HYPOTHESIS
def test_quoted_echo_never_raises_on_arbitrary_bytes(family, data):
    _check_quote(quoted_echo(family, data))


@given(version_ihl=st.integers(0, 255), head=st.binary(min_size=8, max_size=8), middle=st.binary(min_size=10, max_size=10),
       tail=st.binary(max_size=80))
@HYPOTHESIS
def test_quoted_echo_never_raises_on_ipv4_quotes_with_any_ihl(version_ihl, head, middle, tail):
    # get past the protocol check, so that the IHL and echo-type branches are exercised too
    inner = bytes([version_ihl]) + middle[:8] + bytes([socket.IPPROTO_ICMP]) + middle + tail
    _check_quote(quoted_echo(V4, head + inner))


@given(head=st.binary(min_size=8, max_size=8), ip6=st.binary(min_size=39, max_size=39), tail=st.binary(max_size=40))
@HYPOTHESIS
def test_quoted_echo_never_raises_on_ipv6_quotes_of_any_content(head, ip6, tail):
    inner = ip6[:6] + bytes([socket.IPPROTO_ICMPV6]) + ip6[6:] + tail
    _check_quote(quoted_echo(V6, head + inner))


# --- _handle_packet: which packets count ---------------------------------------------------------

class Echoes(object):
    """The state _echo_loop keeps: targets by address, echoes in flight, one record per target."""

    def __init__(self, addresses, raw=True, in_flight=((0, 0),), sent_at=100.0, timeout=1.0):
        self.by_address = {}
        for index, (family, address) in enumerate(addresses):
            self.by_address.setdefault((family, address), []).append(index)
        self.records = [EchoRecord() for _ in addresses]
        self.sent_at = {key: sent_at for key in in_flight}
        self.raw = raw
        self.timeout = timeout

    def receive(self, family, packet, source, received_at=100.0125, ancdata=(), ident=IDENT, cookie=COOKIE):
        icmp._handle_packet(family, packet, list(ancdata), source, self.raw, ident, cookie, self.by_address,
                            self.sent_at, self.records, received_at, self.timeout)


def v4_reply_packet(source, seq=0, ident=IDENT, payload=None, ttl=61):
    message = echo_reply(V4, ident, seq, make_payload(COOKIE, 56) if payload is None else payload)
    return ipv4_header(source, "192.0.2.2", ttl=ttl, payload_len=len(message)) + message


def test_reply_for_our_ident_seq_cookie_and_source_is_counted_with_its_rtt_and_ttl():
    echoes = Echoes([(V4, "192.0.2.9")])
    echoes.receive(V4, v4_reply_packet("192.0.2.9", ttl=61), ("192.0.2.9", 0), received_at=100.0125)
    record = echoes.records[0]
    assert record.rtts == {0: pytest.approx(12.5)}
    assert record.ttl == 61
    assert echoes.sent_at == {}


def test_reply_with_foreign_identifier_is_not_counted_on_raw_sockets():
    echoes = Echoes([(V4, "192.0.2.9")])
    echoes.receive(V4, v4_reply_packet("192.0.2.9", ident=IDENT + 1), ("192.0.2.9", 0))
    assert echoes.records[0].rtts == {}
    assert (0, 0) in echoes.sent_at


def test_reply_with_rewritten_identifier_is_counted_on_dgram_sockets():
    # the kernel picks the identifier of a dgram socket: it differs from ours and is fine
    echoes = Echoes([(V4, "192.0.2.9")], raw=False)
    message = echo_reply(V4, 0x7777, 0, make_payload(COOKIE, 56))
    ttl_cmsg = [(socket.IPPROTO_IP, icmp.IP_TTL_CMSG, struct.pack("i", 63))]
    echoes.receive(V4, message, ("192.0.2.9", 0), ancdata=ttl_cmsg)
    assert list(echoes.records[0].rtts) == [0]
    assert echoes.records[0].ttl == 63


def test_reply_with_wrong_cookie_is_not_counted():
    echoes = Echoes([(V4, "192.0.2.9")])
    foreign = make_payload(b"\x00" * COOKIE_LEN, 56)
    echoes.receive(V4, v4_reply_packet("192.0.2.9", payload=foreign), ("192.0.2.9", 0))
    assert echoes.records[0].rtts == {}
    assert (0, 0) in echoes.sent_at


def test_reply_with_a_payload_shorter_than_the_cookie_is_matched_on_the_cookie_prefix():
    echoes = Echoes([(V4, "192.0.2.9")], in_flight=[(0, 0), (0, 1)])
    echoes.receive(V4, v4_reply_packet("192.0.2.9", seq=0, payload=COOKIE[:3]), ("192.0.2.9", 0))
    echoes.receive(V4, v4_reply_packet("192.0.2.9", seq=1, payload=b"\xff\xff\xff"), ("192.0.2.9", 0))
    assert list(echoes.records[0].rtts) == [0]


def test_reply_from_an_address_that_is_not_a_target_is_not_counted():
    echoes = Echoes([(V4, "192.0.2.9")])
    echoes.receive(V4, v4_reply_packet("192.0.2.10"), ("192.0.2.10", 0))
    assert echoes.records[0].rtts == {}
    assert (0, 0) in echoes.sent_at


def test_reply_for_a_sequence_never_sent_is_not_counted():
    echoes = Echoes([(V4, "192.0.2.9")], in_flight=[(0, 0)])
    echoes.receive(V4, v4_reply_packet("192.0.2.9", seq=4), ("192.0.2.9", 0))
    assert echoes.records[0].rtts == {}
    assert echoes.records[0].duplicates == 0


def test_reply_later_than_the_timeout_is_not_counted():
    echoes = Echoes([(V4, "192.0.2.9")], timeout=0.5)
    echoes.receive(V4, v4_reply_packet("192.0.2.9"), ("192.0.2.9", 0), received_at=100.6)
    assert echoes.records[0].rtts == {}


def test_duplicate_reply_increments_duplicates_and_keeps_the_first_rtt():
    echoes = Echoes([(V4, "192.0.2.9")])
    echoes.receive(V4, v4_reply_packet("192.0.2.9"), ("192.0.2.9", 0), received_at=100.002)
    echoes.receive(V4, v4_reply_packet("192.0.2.9"), ("192.0.2.9", 0), received_at=100.009)
    record = echoes.records[0]
    assert record.duplicates == 1
    assert record.rtts == {0: pytest.approx(2.0)}


def test_reply_counts_for_every_target_with_that_address():
    echoes = Echoes([(V4, "192.0.2.9"), (V4, "192.0.2.9")], in_flight=[(0, 0), (1, 0)])
    echoes.receive(V4, v4_reply_packet("192.0.2.9"), ("192.0.2.9", 0))
    assert [list(r.rtts) for r in echoes.records] == [[0], [0]]


def test_ipv6_reply_from_a_scoped_source_is_matched_and_takes_the_hop_limit_from_ancillary_data():
    echoes = Echoes([(V6, "fe80::9")])
    hop_limit = [(socket.IPPROTO_IPV6, icmp.IPV6_HOPLIMIT_CMSG, struct.pack("i", 255))]
    echoes.receive(V6, echo_reply(V6, IDENT, 0, make_payload(COOKIE, 56)), ("fe80::9%eth0", 0, 0, 2),
                   ancdata=hop_limit)
    assert list(echoes.records[0].rtts) == [0]
    assert echoes.records[0].ttl == 255


def test_icmp_error_quoting_our_echo_is_recorded_and_ends_the_wait_for_it():
    echoes = Echoes([(V4, "192.0.2.77")], in_flight=[(0, 3)])
    error = v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT, 3)
    packet = ipv4_header("192.0.2.1", "192.0.2.2", payload_len=len(error)) + error
    echoes.receive(V4, packet, ("192.0.2.1", 0))
    record = echoes.records[0]
    assert record.errors == [{"seq": 3, "from": "192.0.2.1", "type": 3, "code": 1, "message": "host unreachable"}]
    assert echoes.sent_at == {}
    assert record.rtts == {}


def test_icmp_time_exceeded_is_recorded_by_its_type_name():
    echoes = Echoes([(V4, "198.51.100.4")])
    error = v4_error(11, 0, "192.0.2.2", "198.51.100.4", IDENT, 0)
    packet = ipv4_header("192.0.2.1", "192.0.2.2", payload_len=len(error)) + error
    echoes.receive(V4, packet, ("192.0.2.1", 0))
    assert [e["message"] for e in echoes.records[0].errors] == ["TTL exceeded in transit"]  # the one table's name


def test_unknown_unreachable_code_is_named_by_its_number():
    echoes = Echoes([(V4, "192.0.2.77")])
    error = v4_error(3, 16, "192.0.2.2", "192.0.2.77", IDENT, 0)  # 0-15 are named
    packet = ipv4_header("192.0.2.1", "192.0.2.2", payload_len=len(error)) + error
    echoes.receive(V4, packet, ("192.0.2.1", 0))
    assert echoes.records[0].errors[0]["message"] == "destination unreachable (code 16)"


def test_ipv6_unreachable_quoting_our_echo_is_recorded_with_the_ipv6_code_name():
    echoes = Echoes([(V6, "fd00::77")])
    echoes.receive(V6, v6_error(1, 3, "fd00::2", "fd00::77", IDENT, 0), ("fd00::1", 0, 0, 0))
    assert echoes.records[0].errors == [{"seq": 0, "from": "fd00::1", "type": 1, "code": 3,
                                         "message": "address unreachable"}]
    assert echoes.sent_at == {}


def test_icmp_error_quoting_a_foreign_identifier_is_ignored_on_raw_sockets():
    echoes = Echoes([(V4, "192.0.2.77")])
    error = v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT + 1, 0)
    packet = ipv4_header("192.0.2.1", "192.0.2.2", payload_len=len(error)) + error
    echoes.receive(V4, packet, ("192.0.2.1", 0))
    assert echoes.records[0].errors == []
    assert (0, 0) in echoes.sent_at


def test_icmp_error_for_an_echo_already_answered_is_ignored():
    echoes = Echoes([(V4, "192.0.2.77")], in_flight=[])
    error = v4_error(3, 1, "192.0.2.2", "192.0.2.77", IDENT, 0)
    packet = ipv4_header("192.0.2.1", "192.0.2.2", payload_len=len(error)) + error
    echoes.receive(V4, packet, ("192.0.2.1", 0))
    assert echoes.records[0].errors == []


def test_icmp_types_that_are_neither_replies_nor_errors_are_ignored():
    echoes = Echoes([(V4, "192.0.2.9")])
    # our own echo request, seen by the raw socket on loopback-like paths
    request = echo_request(V4, IDENT, 0, make_payload(COOKIE, 56))
    echoes.receive(V4, ipv4_header("192.0.2.9", "192.0.2.2", payload_len=len(request)) + request, ("192.0.2.9", 0))
    assert echoes.records[0].rtts == {} and echoes.records[0].errors == []
    assert (0, 0) in echoes.sent_at


def test_packets_too_short_for_an_icmp_header_are_ignored():
    echoes = Echoes([(V4, "192.0.2.9")])
    echoes.receive(V4, ipv4_header("192.0.2.9", "192.0.2.2") + b"\0\0\0", ("192.0.2.9", 0))
    echoes.receive(V4, b"\x45\0", ("192.0.2.9", 0))
    assert echoes.records[0].rtts == {} and (0, 0) in echoes.sent_at


# --- parse_ping_output ------------------------------------------------------------------------

IPUTILS_V4 = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.017 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.051 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.031 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 116ms
rtt min/avg/max/mdev = 0.017/0.033/0.051/0.013 ms
"""

IPUTILS_V6 = """\
PING fd00::1(fd00::1) 56 data bytes
64 bytes from fd00::1: icmp_seq=1 ttl=64 time=0.104 ms
64 bytes from fd00::1: icmp_seq=2 ttl=63 time=1.25 ms

--- fd00::1 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2041ms
rtt min/avg/max/mdev = 0.104/0.677/1.250/0.573 ms
"""

IPUTILS_HOSTNAME = """\
PING localhost (127.0.0.1) 56(84) bytes of data.
64 bytes from localhost (127.0.0.1): icmp_seq=1 ttl=64 time=0.030 ms
64 bytes from localhost (127.0.0.1): icmp_seq=2 ttl=64 time=0.045 ms

--- localhost ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1001ms
rtt min/avg/max/mdev = 0.030/0.037/0.045/0.007 ms
"""

BUSYBOX = """\
PING 127.0.0.1 (127.0.0.1): 56 data bytes
64 bytes from 127.0.0.1: seq=0 ttl=64 time=0.045 ms
64 bytes from 127.0.0.1: seq=1 ttl=64 time=0.070 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 packets received, 0% packet loss
round-trip min/avg/max = 0.045/0.057/0.070 ms
"""

IPUTILS_UNREACHABLE = """\
PING 10.0.0.9 (10.0.0.9) 56(84) bytes of data.
From 10.0.0.1 icmp_seq=1 Destination Host Unreachable
From 10.0.0.1 icmp_seq=2 Destination Host Unreachable
From 10.0.0.1 icmp_seq=3 Destination Host Unreachable

--- 10.0.0.9 ping statistics ---
3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2030ms
pipe 3
"""

IPUTILS_DUP = """\
PING 10.0.0.255 (10.0.0.255) 56(84) bytes of data.
64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.101 ms
64 bytes from 10.0.0.7: icmp_seq=1 ttl=64 time=0.322 ms (DUP!)
64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=0.099 ms
64 bytes from 10.0.0.7: icmp_seq=2 ttl=64 time=0.301 ms (DUP!)

--- 10.0.0.255 ping statistics ---
2 packets transmitted, 2 received, +2 duplicates, 0% packet loss, time 1001ms
"""

IPUTILS_ALL_LOST = """\
PING 192.0.2.77 (192.0.2.77) 56(84) bytes of data.

--- 192.0.2.77 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2049ms
"""


def test_iputils_ipv4_output_gives_rtts_by_sequence_ttl_and_sent():
    record = parse_ping_output(IPUTILS_V4)
    assert record.rtts == {1: 0.017, 2: 0.051, 3: 0.031}
    assert record.ttl == 64
    assert record.sent == 3
    assert record.errors == [] and record.duplicates == 0


def test_iputils_ipv6_output_with_colons_in_the_address_is_parsed():
    record = parse_ping_output(IPUTILS_V6)
    assert record.rtts == {1: 0.104, 2: 1.25}
    assert record.ttl == 63
    assert record.sent == 3


def test_iputils_output_with_a_host_name_before_the_address_is_parsed():
    record = parse_ping_output(IPUTILS_HOSTNAME)
    assert record.rtts == {1: 0.030, 2: 0.045}
    assert record.sent == 2


def test_busybox_output_with_seq_from_zero_is_parsed():
    record = parse_ping_output(BUSYBOX)
    assert record.rtts == {0: 0.045, 1: 0.070}
    assert record.ttl == 64
    assert record.sent == 2


def test_from_lines_become_icmp_errors_with_their_source_and_message():
    record = parse_ping_output(IPUTILS_UNREACHABLE)
    assert record.rtts == {}
    assert record.sent == 3
    assert record.errors == [
        {"seq": seq, "from": "10.0.0.1", "type": 3, "code": 1, "message": "destination host unreachable"}
        for seq in (1, 2, 3)
    ]


@pytest.mark.parametrize("words, numbers", [
    ("Destination Port Unreachable", (3, 3)), ("Destination Net Unreachable for Type of Service", (3, 11)),
    ("Packet filtered", (3, 13)), ("Time to live exceeded", (11, 0)), ("Frag needed and DF set (mtu = 1400)", (3, 4)),
    ("Destination unreachable: Administratively prohibited", (1, 1)), ("Packet too big: mtu=1280", (2, 0)),
    ("Time exceeded: Hop limit", (3, 0)), ("something else", (None, None)),
])
def test_the_system_pings_error_words_are_read_back_into_type_and_code(words, numbers):
    assert icmp.ping_error_numbers(words) == numbers


def test_dup_lines_are_counted_as_duplicates_not_as_replies():
    record = parse_ping_output(IPUTILS_DUP)
    assert record.rtts == {1: 0.101, 2: 0.099}
    assert record.duplicates == 2
    assert record.sent == 2


def test_a_second_reply_line_for_the_same_sequence_is_a_duplicate():
    text = "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.1 ms\n64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.9 ms\n"
    record = parse_ping_output(text)
    assert record.rtts == {1: 0.1}
    assert record.duplicates == 1


def test_a_run_with_all_echoes_lost_has_sent_but_no_rtts():
    record = parse_ping_output(IPUTILS_ALL_LOST)
    assert record.sent == 3
    assert record.rtts == {} and record.errors == [] and record.ttl is None


def test_output_without_a_summary_counts_the_replies_as_sent():
    record = parse_ping_output("64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.2 ms\n")
    assert record.sent == 1 and record.rtts == {1: 0.2}


def test_empty_output_has_nothing_sent():
    record = parse_ping_output("")
    assert (record.sent, record.rtts, record.errors) == (0, {}, [])


def _reply_lines(text):
    return {line.strip() for line in text.splitlines() if " bytes from " in line}


@given(st.text(max_size=400))
@HYPOTHESIS
def test_parse_ping_output_never_raises_on_arbitrary_text(text):
    record = parse_ping_output(text)
    assert len(record.rtts) <= len(_reply_lines(text))
    assert record.sent >= 0


_ADDRESS = st.sampled_from(["127.0.0.1", "fd00::1", "localhost (127.0.0.1)", "10.0.0.7", "h"])
_REPLY_LINE = st.builds(
    lambda n, src, prefix, seq, ttl, ms, dup: "%d bytes from %s: %sseq=%d ttl=%d time=%s ms%s"
    % (n, src, prefix, seq, ttl, ms, dup),
    st.integers(0, 65535), _ADDRESS, st.sampled_from(["icmp_", ""]), st.integers(0, 70000), st.integers(0, 255),
    st.floats(0, 100000, allow_nan=False).map(lambda f: "%.3f" % f), st.sampled_from(["", " (DUP!)"]))
_OTHER_LINE = st.one_of(
    st.builds(lambda src, seq, msg: "From %s icmp_seq=%d %s" % (src, seq, msg), _ADDRESS, st.integers(0, 9),
              st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s)),
    st.builds(lambda s, r: "%d packets transmitted, %d received, 0%% packet loss" % (s, r),
              st.integers(0, 1000), st.integers(0, 1000)),
    st.text(max_size=60),
)


@given(st.lists(st.one_of(_REPLY_LINE, _OTHER_LINE), max_size=30))
@HYPOTHESIS
def test_parse_ping_output_counts_at_most_one_reply_per_distinct_reply_line(lines):
    text = "\n".join(lines)
    record = parse_ping_output(text)
    assert len(record.rtts) <= len(_reply_lines(text))
    distinct_seqs = set()
    for line in lines:
        if " bytes from " in line and "(DUP!)" not in line and "seq=" in line:
            distinct_seqs.add(int(line.split("seq=")[1].split()[0]))
    assert set(record.rtts) <= distinct_seqs


def test_parse_ping_output_does_not_raise_on_a_malformed_time():
    record = parse_ping_output("64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=1.2.3 ms\n")
    # a reply was printed, its time cannot be read: no invented RTT
    assert all(rtt is None for rtt in record.rtts.values())


def test_iputils_reply_without_a_time_for_small_payloads_is_still_counted_as_received():
    text = ("PING 127.0.0.1 (127.0.0.1) 8(36) bytes of data.\n"
            "16 bytes from 127.0.0.1: icmp_seq=1 ttl=64\n\n"
            "--- 127.0.0.1 ping statistics ---\n"
            "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n")
    record = parse_ping_output(text)
    assert len(record.rtts) == 1


# --- statistics and verdicts ------------------------------------------------------------------

def test_rtt_stats_gives_min_avg_max_and_population_stddev_like_ping_mdev():
    stats = rtt_stats([1.0, 2.0, 3.0, 4.0])
    assert stats == {"rtt_min_ms": 1.0, "rtt_avg_ms": 2.5, "rtt_max_ms": 4.0,
                     "rtt_stddev_ms": round(statistics.pstdev([1.0, 2.0, 3.0, 4.0]), 3)}
    assert stats["rtt_stddev_ms"] == 1.118  # the sample stddev would be 1.291


def test_rtt_stats_of_a_single_rtt_has_zero_stddev():
    assert rtt_stats([0.5]) == {"rtt_min_ms": 0.5, "rtt_avg_ms": 0.5, "rtt_max_ms": 0.5, "rtt_stddev_ms": 0.0}


def test_rtt_stats_rounds_to_the_microsecond():
    assert rtt_stats([0.0123456])["rtt_avg_ms"] == 0.012


def test_rtt_stats_of_no_rtts_is_all_none():
    assert rtt_stats([]) == {"rtt_min_ms": None, "rtt_avg_ms": None, "rtt_max_ms": None, "rtt_stddev_ms": None}


def test_status_is_unreachable_when_nothing_was_received_whatever_the_thresholds():
    assert status_of(0, 100.0, None) == "unreachable"
    assert status_of(0, 100.0, None, warn={"loss_pct": 10}, crit={"loss_pct": 50}) == "unreachable"


def test_status_is_ok_without_thresholds():
    assert status_of(3, 0.0, 500.0) == "ok"
    assert status_of(1, 66.67, 500.0, warn={}, crit=None) == "ok"


def test_status_crit_beats_warn_when_both_are_crossed():
    assert status_of(3, 0.0, 200.0, warn={"rtt_ms": 100}, crit={"rtt_ms": 150}) == "crit"


@pytest.mark.parametrize("rtt, expected", [(99.999, "ok"), (100.0, "warn"), (149.999, "warn"), (150.0, "crit")])
def test_status_rtt_thresholds_are_inclusive_at_equality(rtt, expected):
    assert status_of(3, 0.0, rtt, warn={"rtt_ms": 100.0}, crit={"rtt_ms": 150.0}) == expected


@pytest.mark.parametrize("loss, expected", [(19.99, "ok"), (20.0, "warn"), (49.99, "warn"), (50.0, "crit")])
def test_status_loss_thresholds_are_inclusive_at_equality(loss, expected):
    assert status_of(2, loss, 1.0, warn={"loss_pct": 20}, crit={"loss_pct": 50}) == expected


def test_status_loss_threshold_alone_is_enough_to_warn():
    assert status_of(2, 33.33, 0.1, warn={"rtt_ms": 100, "loss_pct": 30}) == "warn"
    assert status_of(2, 33.33, 0.1, warn={"rtt_ms": None, "loss_pct": None}) == "ok"


# --- input validation -------------------------------------------------------------------------

def test_validate_options_returns_the_values_with_floats_for_times():
    assert validate_options(3, 1, 2, 56) == (3, 1.0, 2.0, 56)
    assert isinstance(validate_options(3, 1, 2, 56)[1], float)


@pytest.mark.parametrize("count, interval, timeout, size, field", [
    (0, 0.2, 1.0, 56, "count"),
    (1001, 0.2, 1.0, 56, "count"),
    (True, 0.2, 1.0, 56, "count"),
    (3.0, 0.2, 1.0, 56, "count"),
    (3, 0, 1.0, 56, "interval"),
    (3, -1.0, 1.0, 56, "interval"),
    (3, 0.0005, 1.0, 56, "interval"),
    (3, 61, 1.0, 56, "interval"),
    (3, 0.2, 0, 56, "timeout"),
    (3, 0.2, float("nan"), 56, "timeout"),
    (3, 0.2, 1.0, -1, "size"),
    (3, 0.2, 1.0, 65508, "size"),
    (3, 0.2, 1.0, True, "size"),
])
def test_validate_options_rejects_bad_values_naming_the_field(count, interval, timeout, size, field):
    with pytest.raises(InputError) as caught:
        validate_options(count, interval, timeout, size)
    assert str(caught.value).startswith(field + ":")


@pytest.mark.parametrize("count, interval, size", [(1, 0.001, 0), (1000, 60, 65507)])
def test_validate_options_accepts_the_limits(count, interval, size):
    assert validate_options(count, interval, 1.0, size) == (count, float(interval), 1.0, size)


def test_validate_thresholds_of_none_is_empty():
    assert validate_thresholds(None, "warn") == {}


def test_validate_thresholds_accepts_rtt_and_loss_at_their_limits():
    assert validate_thresholds({"rtt_ms": 0, "loss_pct": 100}, "crit") == {"rtt_ms": 0, "loss_pct": 100}
    assert validate_thresholds({"rtt_ms": 12.5, "loss_pct": None}, "warn") == {"rtt_ms": 12.5, "loss_pct": None}


@pytest.mark.parametrize("value, prefix", [
    ({"rtt": 5}, "warn.rtt: unknown key; known: rtt_ms, loss_pct"),
    ({"rtt_ms": -1}, "warn.rtt_ms:"),
    ({"loss_pct": -0.1}, "warn.loss_pct:"),
    ({"loss_pct": 100.5}, "warn.loss_pct:"),
    ({"rtt_ms": True}, "warn.rtt_ms:"),
    ({"rtt_ms": "5"}, "warn.rtt_ms:"),
    ([5], "warn:"),
])
def test_validate_thresholds_rejects_bad_values_naming_the_field(value, prefix):
    with pytest.raises(InputError) as caught:
        validate_thresholds(value, "warn")
    assert str(caught.value).startswith(prefix)


def test_parse_targets_takes_strings_and_mappings():
    targets = parse_targets(["127.0.0.1", {"host": "::1", "reachable": False, "name": "loopback6"}])
    assert [(t.host, t.address, t.family, t.reachable, t.name) for t in targets] == [
        ("127.0.0.1", "127.0.0.1", V4, True, None),
        ("::1", "::1", V6, False, "loopback6"),
    ]


def test_parse_targets_treats_a_null_reachable_as_true():
    assert parse_targets([{"host": "127.0.0.1", "reachable": None}])[0].reachable is True


def test_parse_targets_resolves_localhost():
    target = parse_targets(["localhost"])[0]
    assert target.host == "localhost"
    assert target.address in ("127.0.0.1", "::1")
    assert target.family == (V6 if ":" in target.address else V4)


@pytest.mark.parametrize("targets, prefix", [
    (["a;b"], "targets[0].host:"),
    (["127.0.0.1", "a b"], "targets[1].host:"),
    ([{"host": "$(reboot)"}], "targets[0].host:"),
    ([{"host": ""}], "targets[0].host:"),
    ([{"reachable": True}], "targets[0].host:"),
    ([{"host": "127.0.0.1", "reachable": "yes"}], "targets[0].reachable:"),
    ([{"host": "127.0.0.1", "name": 5}], "targets[0].name:"),
    ([{"host": "127.0.0.1", "port": 5}], "targets[0].port: unknown key; known: host, reachable, name"),
    ([5], "targets[0]:"),
    ([], "targets:"),
    ("127.0.0.1", "targets:"),
])
def test_parse_targets_rejects_bad_targets_naming_the_field(targets, prefix):
    with pytest.raises(InputError) as caught:
        parse_targets(targets)
    assert str(caught.value).startswith(prefix)


def test_an_unresolvable_name_is_that_targets_dns_error_and_the_others_are_pinged(monkeypatch):
    asked = []
    real_getaddrinfo = socket.getaddrinfo

    def no_dns(host, port, family=0, type=0, proto=0, flags=0):  # never send a real DNS query
        asked.append(host)
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    targets = parse_targets(["127.0.0.1", "no-such-host.invalid", {"host": "no-such-host.invalid", "reachable": False}])
    assert asked.count("no-such-host.invalid") == 1  # each distinct name resolved once
    assert (targets[0].address, targets[1].address) == ("127.0.0.1", None)
    results, _, _ = ping_targets(targets, count=1, interval=0.01, timeout=0.5, method="raw")
    assert [r["state"] for r in results] == ["ok", "dns_error", "dns_error"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"] == ("name resolution failed: 'no-such-host.invalid' does not resolve "
                                   "(Name or service not known)")
    assert (results[1]["detail"]["sent"], results[1]["detail"]["address"]) == (0, None)


# --- build_result -----------------------------------------------------------------------------

def _record(sent, rtts, errors=(), ttl=64, duplicates=0):
    record = EchoRecord()
    record.sent = sent
    record.rtts = dict(rtts)
    record.errors = list(errors)
    record.ttl = ttl
    record.duplicates = duplicates
    return record


def _target(address="192.0.2.9", reachable=True, family=V4):
    return PingTarget(address, address, family, reachable, None)


def test_result_keys_are_the_shared_result_shape():
    result = build_result(_target(), _record(3, {0: 1.0}), "raw", None, None, 12.0)
    assert tuple(result) == RESULT_KEYS
    assert result["kind"] == "icmp"
    assert result["target"] == "192.0.2.9"


def test_reachable_target_with_replies_is_ok_with_its_statistics():
    result = build_result(_target(), _record(3, {2: 3.0, 0: 1.0, 1: 2.0}), "raw", None, None, 210.4567)
    assert result["state"] == "ok" and result["ok"] is True and result["error"] is None
    detail = result["detail"]
    assert (detail["sent"], detail["received"], detail["loss_pct"]) == (3, 3, 0.0)
    assert detail["rtts_ms"] == [1.0, 2.0, 3.0]  # in sequence order
    assert (detail["rtt_min_ms"], detail["rtt_avg_ms"], detail["rtt_max_ms"]) == (1.0, 2.0, 3.0)
    assert detail["ttl"] == 64 and detail["method"] == "raw" and detail["family"] == "ipv4"
    assert result["timings"] == {"total_ms": 210.457}


def test_partial_loss_is_reported_as_a_percentage_of_sent():
    result = build_result(_target(), _record(3, {0: 1.0}), "raw", None, None, 1.0)
    assert result["detail"]["loss_pct"] == 66.67
    assert result["ok"] is True


def test_reachable_target_without_replies_is_unreachable_and_not_ok():
    result = build_result(_target(), _record(3, {}), "dgram", None, None, 1.0)
    assert result["state"] == "unreachable"
    assert result["ok"] is False
    assert result["error"] == "no echo reply to 3 echo requests"
    assert result["detail"]["loss_pct"] == 100.0
    assert result["detail"]["rtt_avg_ms"] is None


def test_unreachable_error_mentions_the_first_icmp_error():
    errors = [{"seq": 0, "from": "192.0.2.1", "type": 3, "code": 1, "message": "host unreachable"},
              {"seq": 1, "from": "192.0.2.1", "type": 11, "code": 0, "message": "time exceeded"}]
    result = build_result(_target(), _record(2, {}, errors), "raw", None, None, 1.0)
    assert result["error"] == "no echo reply to 2 echo requests (host unreachable from 192.0.2.1)"
    assert result["detail"]["icmp_errors"] == errors


def test_target_expected_unreachable_without_replies_is_ok_with_no_error():
    result = build_result(_target(reachable=False), _record(3, {}), "raw", None, None, 1.0)
    assert result["state"] == "unreachable"
    assert result["ok"] is True
    assert result["error"] is None


def test_target_expected_unreachable_that_answers_is_not_ok():
    result = build_result(_target(reachable=False), _record(3, {0: 1.0, 1: 1.0}), "raw", None, None, 1.0)
    assert result["ok"] is False
    assert result["error"] == "answered 2 of 3 echo requests, expected no answer"


def test_crit_threshold_makes_a_reachable_target_not_ok():
    result = build_result(_target(), _record(3, {0: 200.0, 1: 200.0, 2: 200.0}), "raw", {"rtt_ms": 50},
                          {"rtt_ms": 100}, 1.0)
    assert result["state"] == "crit"
    assert result["ok"] is False
    assert result["error"] == "crit: avg RTT 200.000 ms, loss 0%"


def test_warn_threshold_keeps_a_reachable_target_ok():
    result = build_result(_target(), _record(3, {0: 60.0}), "raw", {"rtt_ms": 50}, {"rtt_ms": 100}, 1.0)
    assert result["state"] == "warn"
    assert result["ok"] is True and result["error"] is None


def test_result_of_an_ipv6_target_says_ipv6_and_carries_route_and_neighbour():
    route = {"dev": "lo"}
    neighbour = {"state": "LOCAL"}
    result = build_result(_target("::1", family=V6), _record(1, {0: 0.1}), "raw", None, None, 1.0, route, neighbour)
    assert result["detail"]["family"] == "ipv6"
    assert result["detail"]["route"] == route and result["detail"]["neighbour"] == neighbour


# --- choose_method ----------------------------------------------------------------------------

class FakeSocket(object):
    def __init__(self, opened):
        self.opened = opened

    def close(self):
        self.opened.append("closed")


def fake_open_socket(monkeypatch, unavailable):
    opened = []

    def open_socket(method, family):
        if method in unavailable:
            raise MethodUnavailable("%s: not allowed in this test" % method)
        opened.append((method, family))
        return FakeSocket(opened)

    monkeypatch.setattr(icmp, "open_socket", open_socket)
    return opened


def which_ping(name):
    return "/usr/bin/ping" if name == "ping" else None


def which_nothing(name):
    return None


def test_auto_uses_raw_when_raw_sockets_work(monkeypatch):
    opened = fake_open_socket(monkeypatch, unavailable=())
    assert choose_method("auto", [V4, V6], which_nothing) == ("raw", [])
    assert opened == [("raw", V4), "closed", ("raw", V6), "closed"]


def test_auto_falls_back_to_dgram_with_a_note_on_why_raw_was_skipped(monkeypatch):
    fake_open_socket(monkeypatch, unavailable=("raw",))
    assert choose_method("auto", [V4], which_nothing) == ("dgram", ["raw: not allowed in this test"])


def test_auto_falls_back_to_system_ping_with_notes_for_raw_and_dgram(monkeypatch):
    fake_open_socket(monkeypatch, unavailable=("raw", "dgram"))
    assert choose_method("auto", [V4], which_ping) == (
        "system", ["raw: not allowed in this test", "dgram: not allowed in this test"])


def test_forcing_an_unavailable_method_raises_with_the_reason(monkeypatch):
    fake_open_socket(monkeypatch, unavailable=("dgram",))
    with pytest.raises(MethodUnavailable) as caught:
        choose_method("dgram", [V4], which_ping)
    assert str(caught.value) == "method dgram is not available here: dgram: not allowed in this test"


def test_forcing_system_without_a_ping_binary_raises(monkeypatch):
    fake_open_socket(monkeypatch, unavailable=())
    with pytest.raises(MethodUnavailable) as caught:
        choose_method("system", [V4], which_nothing)
    assert str(caught.value).startswith("method system is not available here: system: no ping binary on PATH")


def test_forcing_an_available_method_does_not_try_the_others(monkeypatch):
    opened = fake_open_socket(monkeypatch, unavailable=("raw",))
    assert choose_method("dgram", [V6], which_nothing) == ("dgram", [])
    assert opened == [("dgram", V6), "closed"]


def test_no_method_at_all_raises_listing_every_reason(monkeypatch):
    fake_open_socket(monkeypatch, unavailable=("raw", "dgram"))
    with pytest.raises(MethodUnavailable) as caught:
        choose_method("auto", [V4], which_nothing)
    assert str(caught.value) == ("no ICMP method works here: raw: not allowed in this test; "
                                 "dgram: not allowed in this test; system: no ping binary on PATH")


# --- ping_argv --------------------------------------------------------------------------------

def test_ping_argv_for_ipv4_is_a_list_with_the_address_last():
    argv = ping_argv("ping", _target("127.0.0.1"), 3, 0.2, 1.0, 56)
    assert argv == ["ping", "-4", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-s", "56", "127.0.0.1"]


def test_ping_argv_for_ipv6_uses_minus_6():
    argv = ping_argv("/bin/ping", _target("::1", family=V6), 1, 0.05, 2.0, 0)
    assert argv == ["/bin/ping", "-6", "-n", "-c", "1", "-i", "0.05", "-W", "2", "-s", "0", "::1"]


@pytest.mark.parametrize("timeout, wait", [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_ping_argv_rounds_the_timeout_up_to_whole_seconds_of_at_least_one(timeout, wait):
    argv = ping_argv("ping", _target("127.0.0.1"), 1, 1.0, timeout, 56)
    assert argv[argv.index("-W") + 1] == wait


# --- real echoes, loopback only -------------------------------------------------------------------


def _sysctl(path, default):
    try:
        with open(path) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return default


def _raw_sockets_allowed():
    try:
        socket.socket(V4, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return True
    except OSError:
        return False


LOOPBACK_V4 = ["127.0.0.1", "127.0.0.2"]
needs_raw = pytest.mark.skipif(not _raw_sockets_allowed(), reason="raw ICMP sockets need root or CAP_NET_RAW")
needs_ping = pytest.mark.skipif(shutil.which("ping") is None, reason="no ping binary on PATH")


def _assert_all_answered(results, count, method):
    for result in results:
        detail = result["detail"]
        assert result["ok"] is True and result["state"] == "ok", result
        assert (detail["sent"], detail["received"], detail["loss_pct"]) == (count, count, 0.0), result
        assert detail["rtt_min_ms"] <= detail["rtt_avg_ms"] <= detail["rtt_max_ms"]
        assert detail["method"] == method
        assert detail["duplicates"] == 0 and detail["icmp_errors"] == []
        expected_ttl = (_sysctl("/proc/sys/net/ipv6/conf/lo/hop_limit", 64) if detail["family"] == "ipv6"
                        else _sysctl("/proc/sys/net/ipv4/ip_default_ttl", 64))
        assert detail["ttl"] == expected_ttl


@needs_raw
def test_raw_pings_to_loopback_addresses_all_come_back_quickly():
    hosts = LOOPBACK_V4 + (["::1"] if has_ipv6_loopback() else [])
    count, interval, timeout = 3, 0.05, 0.5
    start = time.monotonic()
    results, used, notes = ping_targets(parse_targets(hosts), count=count, interval=interval, timeout=timeout,
                                        method="raw")
    elapsed = time.monotonic() - start
    assert (used, notes) == ("raw", [])
    assert [r["target"] for r in results] == hosts
    _assert_all_answered(results, count, "raw")
    assert elapsed < count * interval + timeout + 1.0
    # every echo was answered at once: the run does not wait out the last timeout
    assert elapsed < (count - 1) * interval + timeout


@needs_raw
@pytest.mark.parametrize("size", [0, 4, 1400])
def test_raw_pings_to_loopback_work_with_payloads_shorter_and_longer_than_the_cookie(size):
    results, _, _ = ping_targets(parse_targets(["127.0.0.1"]), count=2, interval=0.02, timeout=0.5, size=size,
                                 method="raw")
    _assert_all_answered(results, 2, "raw")


@needs_raw
def test_raw_ping_with_two_targets_for_the_same_address_answers_both():
    results, _, _ = ping_targets(parse_targets(["127.0.0.1", {"host": "127.0.0.1", "name": "again"}]), count=2,
                                 interval=0.02, timeout=0.5, method="raw")
    for result in results:
        assert result["ok"] is True
        assert (result["detail"]["sent"], result["detail"]["received"]) == (2, 2)
    assert [r["detail"]["name"] for r in results] == [None, "again"]


@needs_raw
def test_raw_ping_with_two_targets_for_the_same_address_reports_no_duplicates():
    results, _, _ = ping_targets(parse_targets(["127.0.0.1", {"host": "127.0.0.1", "name": "again"}]), count=2,
                                 interval=0.02, timeout=0.5, method="raw")
    assert [r["detail"]["duplicates"] for r in results] == [0, 0]


@needs_ping
def test_system_ping_to_loopback_gives_the_same_verdict():
    count, interval, timeout = 3, 0.05, 0.5
    start = time.monotonic()
    results, used, notes = ping_targets(parse_targets(["127.0.0.1"]), count=count, interval=interval,
                                        timeout=timeout, method="system")
    elapsed = time.monotonic() - start
    assert (used, notes) == ("system", [])
    _assert_all_answered(results, count, "system")
    assert elapsed < count * interval + timeout + 1.0


@needs_ping
def test_system_ping_with_a_small_payload_still_counts_the_replies():
    results, _, _ = ping_targets(parse_targets(["127.0.0.1"]), count=2, interval=0.05, timeout=0.5, size=8,
                                 method="system")
    assert results[0]["detail"]["received"] == 2


def test_a_send_failure_is_named_without_a_sender_of_none():
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import EchoRecord, PingTarget, build_result
    record = EchoRecord()
    record.sent = 1
    record.errors.append({"seq": 0, "from": None, "type": None, "code": None,
                          "message": "send failed: Network is unreachable"})
    result = build_result(PingTarget("10.99.0.1", "10.99.0.1", socket.AF_INET), record, "raw", None, None, 1.0)
    assert result["error"] == "no echo reply to 1 echo requests (send failed: Network is unreachable)"
    assert "None" not in result["error"]


@needs_raw
def test_four_hundred_targets_in_one_round_lose_no_reply_to_a_full_receive_buffer():
    # every echo of a round is sent at once: 1,200 replies arrive together and must all be read
    targets = ["127.0.%d.%d" % (i // 250, 1 + i % 250) for i in range(400)]
    results, _, _ = ping_targets(parse_targets(targets), count=3, interval=0.05, timeout=1.0, neighbours=None)
    assert [r["detail"]["loss_pct"] for r in results] == [0.0] * 400


# --- the outcome of the echoes ------------------------------------------------------------------

def _error(seq, sender, kind, code):
    return {"seq": seq, "from": sender, "type": kind, "code": code, "message": "x"}


def test_replies_make_an_echo_reply_outcome_with_probes_and_answers():
    record = build_result(_target(), _record(3, {0: 1.0, 2: 1.5}), "raw", None, None, 12.0)["detail"]["outcome"]
    assert (record["reason"], record["phase"], record["probes"], record["answers"], record["confirmed"]) == (
        "echo_reply", "echo", 3, 2, True)
    assert record["verdict_ms"] == 12.0


def test_an_icmp_error_from_a_router_is_icmp_error_with_its_type_code_and_sender():
    errors = [_error(0, "192.0.2.1", 3, 13), _error(1, "192.0.2.1", 3, 13)]
    record = build_result(_target(), _record(3, {}, errors), "raw", None, None, 5.0,
                          route={"src": "192.0.2.100"})["detail"]["outcome"]
    assert (record["reason"], record["icmp_type"], record["icmp_code"], record["icmp_from"]) == (
        "icmp_error", 3, 13, "192.0.2.1")
    assert (record["icmp_family"], record["answers"]) == ("ipv4", 2)


@pytest.mark.parametrize("family, kind, code, own", [(V4, 3, 1, "192.0.2.100"), (V6, 1, 3, "2001:db8::100")])
def test_the_sources_own_no_neighbour_unreachable_is_no_neighbour(family, kind, code, own):
    target = _target("2001:db8::9" if family == V6 else "192.0.2.9", family=family)
    record = build_result(target, _record(3, {}, [_error(0, own, kind, code)]), "raw", None, None, 3000.0,
                          route={"src": own})["detail"]["outcome"]
    assert (record["reason"], record["icmp_from"]) == ("no_neighbour", own)


def test_silence_is_no_answer_and_not_confirmed():
    record = build_result(_target(), _record(3, {}), "raw", None, None, 1400.0)["detail"]["outcome"]
    assert (record["reason"], record["probes"], record["answers"], record["confirmed"]) == ("no_answer", 3, 0, False)


def test_a_system_ping_error_without_type_is_icmp_error_and_a_failed_ping_is_probe_error():
    texts = build_result(_target(), _record(3, {}, [{"seq": 1, "from": "192.0.2.1", "type": None, "code": None,
                                                    "message": "destination host unreachable"}]),
                         "system", None, None, 1.0)["detail"]["outcome"]
    assert (texts["reason"], texts["icmp_type"]) == ("icmp_error", None)
    failed = build_result(_target(), _record(3, {}, [{"seq": None, "from": None, "type": None, "code": None,
                                                     "message": "ping failed (rc 2)"}]),
                          "system", None, None, 1.0)["detail"]["outcome"]
    assert failed["reason"] == "probe_error"
