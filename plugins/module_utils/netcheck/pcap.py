# -*- coding: utf-8 -*-
"""A pcap reader and a per-flow summary, computed on the host so the pcap need not travel.

Reads classic pcap files (both byte orders, micro- or nanosecond timestamps) of the
link types tcpdump writes on Linux: 1 Ethernet (with 802.1Q/802.1ad tags), 113 Linux
cooked (``-i any`` on older libpcap), 276 Linux cooked v2 (``-i any`` here), 101/12
raw IP and 228/229 raw IPv4/IPv6. IPv4 and IPv6 (skipping the usual extension
headers), TCP, UDP, ICMP and ICMPv6 are decoded; everything else is counted as
``undecoded``.

The summary names connections the way Zeek's conn.log does (``conn_state`` S0, S1,
SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH; ``history`` letters
``s h a d f r t q i ^``, upper case from the originator) so that it reads the same
as any Zeek log. It is a compact model of Zeek's TCP endpoint states, not Zeek
itself: no reassembly, no content gaps, no checksum check. Checksums are not
verified on purpose: on the sending host, offloaded packets carry checksums the
NIC fills in later, and those packets are normal.

On top of Zeek: the ICMP errors that answer a flow (destination unreachable, time
exceeded, ...) are attached to that flow through the header they quote, the
handshake RTT says where it was measured, and ICMP echo requests and replies are
counted per pair.

Stdlib only, Python 3.8+: this file is shipped to the remote host by Ansible.
A truncated or garbage file never raises anything but ``PcapError`` (bad file
header); damaged records end the reading and set ``truncated``.
"""

from __future__ import annotations

import ipaddress
import re
import struct

from .outcome import QUOTING_TYPES, family_word, icmp_word

LINK_TYPES = {1: "EN10MB", 12: "RAW", 101: "RAW", 113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2"}

# pcap file magics -> (byte order, timestamp fraction divisor)
_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9), b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
PROTO_NAMES = {PROTO_ICMP: "icmp", PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMPV6: "icmp6"}
_IPV6_EXTENSIONS = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH (fragments: 44)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

ECHO_TYPES = {(4, 8): "request", (4, 0): "reply", (6, 128): "request", (6, 129): "reply"}

# the RSTOS0 test of Zeek's conn_state(): originator SYN, then its RST, nothing else in between
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")

# TCP endpoint states, after Zeek's analyzer
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "inactive", "syn_sent", "syn_ack_sent", "partial", "established", "closed", "reset")


class PcapError(ValueError):
    """The file is not a pcap this reader understands; the message says why."""


# --- reading --------------------------------------------------------------------------

def read_header(data):
    """(byte order, ts divisor, snaplen, link type) of a pcap file's first 24 bytes."""
    if len(data) < 24:
        raise PcapError("not a pcap file: %d bytes, shorter than a pcap header (24)" % len(data))
    magic = bytes(data[:4])
    if magic == _PCAPNG_MAGIC:
        raise PcapError("pcapng files are not supported (tcpdump -w writes pcap)")
    if magic not in _MAGICS:
        raise PcapError("not a pcap file: magic %s" % magic.hex())
    order, divisor = _MAGICS[magic]
    _major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", data, 4)
    return order, divisor, snaplen, network & 0x0FFFFFFF


def iter_records(data):
    """Yield (timestamp, captured bytes, original length) per record; ``data`` is the whole file.

    Stops at the first record whose header or body runs past the end of the file; the
    caller learns about it from ``records_end(data)``."""
    order, divisor, _snaplen, _link = read_header(data)
    record = struct.Struct(order + "IIII")
    offset, size = 24, len(data)
    while offset + 16 <= size:
        seconds, fraction, caplen, origlen = record.unpack_from(data, offset)
        offset += 16
        if offset + caplen > size:
            return
        yield seconds + fraction / divisor, data[offset:offset + caplen], origlen
        offset += caplen


def _ip_offset(link_type, frame):
    """(offset of the IP header, ethertype or None when the version nibble decides), or None."""
    if link_type == 1:
        if len(frame) < 14:
            return None
        offset = 12
        ethertype = (frame[12] << 8) | frame[13]
        while ethertype in (ETH_VLAN, ETH_QINQ) and len(frame) >= offset + 6:
            offset += 4
            ethertype = (frame[offset] << 8) | frame[offset + 1]
        return offset + 2, ethertype
    if link_type == 113:
        if len(frame) < 16:
            return None
        return 16, (frame[14] << 8) | frame[15]
    if link_type == 276:
        if len(frame) < 20:
            return None
        return 20, (frame[0] << 8) | frame[1]
    if link_type in (12, 101):
        return 0, None
    if link_type == 228:
        return 0, ETH_IPV4
    if link_type == 229:
        return 0, ETH_IPV6
    return None


def decode_ip(packet):
    """Decode an IP packet (bytes starting at the IP header) into a dict, or None.

    Keys: family (4|6), src, dst (text), proto (int), ip_len (the IP length field's
    bytes), transport (bytes from the transport header on, as captured), fragment
    (True for a non-first fragment, whose transport header is absent)."""
    if len(packet) < 1:
        return None
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or len(packet) < ihl:
            return None
        total = (packet[2] << 8) | packet[3]
        fragment_offset = ((packet[6] & 0x1F) << 8) | packet[7]
        return {
            "family": 4, "src": _ntoa4(packet[12:16]), "dst": _ntoa4(packet[16:20]), "proto": packet[9],
            "ip_len": total, "transport": packet[ihl:total] if total >= ihl else packet[ihl:],
            "fragment": fragment_offset != 0,
        }
    if version == 6:
        if len(packet) < 40:
            return None
        payload_len = (packet[4] << 8) | packet[5]
        proto, offset, fragment = packet[6], 40, False
        end = 40 + payload_len
        while proto in _IPV6_EXTENSIONS or proto == 44:
            if len(packet) < offset + 8:
                return None
            if proto == 44:
                fragment = fragment or ((packet[offset + 2] << 8 | packet[offset + 3]) & 0xFFF8) != 0
                next_proto, length = packet[offset], 8
            elif proto == 51:
                next_proto, length = packet[offset], (packet[offset + 1] + 2) * 4
            else:
                next_proto, length = packet[offset], (packet[offset + 1] + 1) * 8
            proto, offset = next_proto, offset + length
        return {
            "family": 6, "src": _ntoa6(packet[8:24]), "dst": _ntoa6(packet[24:40]), "proto": proto,
            "ip_len": 40 + payload_len, "transport": packet[offset:end] if end >= offset else b"",
            "fragment": fragment,
        }
    return None


def _ntoa4(raw):
    return "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3])


_V6_CACHE = {}


def _ntoa6(raw):
    raw = bytes(raw)
    text = _V6_CACHE.get(raw)
    if text is None:
        text = str(ipaddress.IPv6Address(raw))
        if len(_V6_CACHE) < 65536:
            _V6_CACHE[raw] = text
    return text


def _ports(transport):
    if len(transport) < 4:
        return None
    return (transport[0] << 8) | transport[1], (transport[2] << 8) | transport[3]


# --- the summary ----------------------------------------------------------------------

class _Flow:
    """One connection (TCP), or flow (UDP, other IP protocols), oriented originator -> responder."""

    __slots__ = ("proto", "orig_h", "orig_p", "resp_h", "resp_p", "first_ts", "last_ts", "flipped",
                 "pkts", "ip_bytes", "payload", "flags", "state", "history", "seen_once", "last_seq",
                 "next_seq", "syn_seqs", "retrans", "retrans_logged", "syn_ts", "synack_ts", "ack_ts",
                 "icmp_errors")

    def __init__(self, proto, orig_h, orig_p, resp_h, resp_p, ts, flipped=False):
        self.proto, self.orig_h, self.orig_p, self.resp_h, self.resp_p = proto, orig_h, orig_p, resp_h, resp_p
        self.first_ts = self.last_ts = ts
        self.flipped = flipped
        self.pkts, self.ip_bytes, self.payload = [0, 0], [0, 0], [0, 0]
        self.flags = [{"syn": 0, "syn_ack": 0, "rst": 0, "fin": 0} for _ in range(2)]
        self.state = [INACTIVE, INACTIVE]
        self.history = "^" if flipped else ""
        self.seen_once = set()            # (direction, letter) for the letters Zeek records once
        self.last_seq = {}                # (direction, letter) -> seq of the last such packet
        self.next_seq = [None, None]      # highest sequence number + length seen per direction
        self.syn_seqs = [set(), set()]
        self.retrans = [0, 0]
        self.retrans_logged = [0, 0]
        self.syn_ts = self.synack_ts = self.ack_ts = None
        self.icmp_errors = {}

    def letter(self, direction, letter, seq=None):
        """Append a history letter the way Zeek does (upper case from the originator)."""
        if letter in "adiq":
            if (direction, letter) in self.seen_once:
                return
            self.seen_once.add((direction, letter))
        elif seq is not None:
            if self.last_seq.get((direction, letter)) == seq:
                return
            self.last_seq[(direction, letter)] = seq
        self.history += letter.upper() if direction == 0 else letter


def _tcp_update(flow, direction, ts, transport):
    flags = transport[13]
    seq = struct.unpack_from(">I", transport, 4)[0]
    data_offset = (transport[12] >> 4) * 4
    payload = max(0, len(transport) - data_offset) if data_offset >= 20 else 0
    counts = flow.flags[direction]
    me, peer = direction, 1 - direction
    state = flow.state
    syn, ack, rst, fin = flags & SYN, flags & ACK, flags & RST, flags & FIN
    flow.payload[direction] += payload

    if syn and (fin or rst):
        flow.letter(direction, "q")
    elif fin and rst:
        flow.letter(direction, "i")

    if syn:
        if ack:
            counts["syn_ack"] += 1
            flow.letter(direction, "h", seq)
            if flow.synack_ts is None:
                flow.synack_ts = ts
        else:
            counts["syn"] += 1
            flow.letter(direction, "s", seq)
            if flow.syn_ts is None:
                flow.syn_ts = ts
        if seq in flow.syn_seqs[direction]:
            # counted, but not a history letter: Zeek's t/T is a retransmitted PAYLOAD, and a
            # repeated SYN leaves the history at "S" (Zeek's S0 flows read "S")
            flow.retrans[direction] += 1
        flow.syn_seqs[direction].add(seq)
        if state[me] == INACTIVE:
            if ack:
                # a SYN-ACK answering the peer's SYN: the responder considers it established
                state[me] = ESTABLISHED if state[peer] == SYN_SENT else SYN_ACK_SENT
            else:
                state[me] = SYN_SENT
    if rst:
        counts["rst"] += 1
        flow.letter(direction, "r", seq)
        state[me] = RESET
    if fin:
        counts["fin"] += 1
        flow.letter(direction, "f", seq)
        if state[me] != RESET:
            state[me] = CLOSED
    if not (syn or rst or fin):
        if payload:
            flow.letter(direction, "d")
        elif ack:
            flow.letter(direction, "a")
        if state[me] == INACTIVE:
            state[me] = PARTIAL
        elif ack and state[me] in (SYN_SENT, SYN_ACK_SENT):
            state[me] = ESTABLISHED
            if state[peer] in (SYN_SENT, SYN_ACK_SENT):
                state[peer] = ESTABLISHED
            if direction == 0 and flow.ack_ts is None and flow.synack_ts is not None:
                flow.ack_ts = ts
    elif payload and not syn:
        flow.letter(direction, "d")

    if payload:
        end = (seq + payload) & 0xFFFFFFFF
        highest = flow.next_seq[direction]
        if highest is not None and _seq_le(end, highest):
            _retransmission(flow, direction)
        else:
            flow.next_seq[direction] = end


def _seq_le(a, b):
    """a <= b in 32-bit sequence space."""
    return ((b - a) & 0xFFFFFFFF) < 0x80000000


def _retransmission(flow, direction):
    flow.retrans[direction] += 1
    # Zeek logs 't' logarithmically: at the 1st, 10th, 100th... retransmission
    threshold = 10 ** flow.retrans_logged[direction]
    if flow.retrans[direction] >= threshold:
        flow.retrans_logged[direction] += 1
        flow.history += "T" if direction == 0 else "t"


def conn_state(flow):
    """Zeek's conn_state for a flow (its base/protocols/conn/main.zeek, conn_state())."""
    os_, rs = flow.state
    if flow.proto == PROTO_TCP:
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and flow.payload == [0, 0]):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.match(flow.history) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"
    if flow.proto == PROTO_UDP:
        if flow.pkts[0]:
            return "SF" if flow.pkts[1] else "S0"
        return "SHR" if flow.pkts[1] else "OTH"
    return "OTH"


class Summary:
    """Accumulates packets into flows; ``result()`` is the JSON-ready summary."""

    def __init__(self, local_addresses=()):
        self.local = set(str(a) for a in local_addresses)
        self.flows = {}
        self.echo = {}
        self.packets = 0
        self.undecoded = 0
        self.first_ts = self.last_ts = None

    def add_ip(self, ts, packet):
        """One packet, from its IP header on."""
        self.packets += 1
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts
        ip = decode_ip(packet)
        if ip is None:
            self.undecoded += 1
            return
        proto, transport = ip["proto"], ip["transport"]
        if proto in (PROTO_ICMP, PROTO_ICMPV6) and not ip["fragment"]:
            if self._icmp(ts, ip, transport):
                return
        ports = None
        if proto in (PROTO_TCP, PROTO_UDP) and not ip["fragment"]:
            ports = _ports(transport)
            if ports is None or (proto == PROTO_TCP and len(transport) < 20):
                self.undecoded += 1
                return
        sport, dport = ports or (0, 0)
        flow, direction = self._flow(proto, ip["src"], sport, ip["dst"], dport, ts,
                                     transport[13] if proto == PROTO_TCP else 0)
        flow.pkts[direction] += 1
        flow.ip_bytes[direction] += ip["ip_len"]
        flow.last_ts = ts
        if proto == PROTO_TCP and not ip["fragment"]:
            _tcp_update(flow, direction, ts, transport)
        elif proto == PROTO_UDP:
            payload = max(0, len(transport) - 8)
            flow.payload[direction] += payload
            flow.letter(direction, "d" if payload else "a")

    def _flow(self, proto, src, sport, dst, dport, ts, tcp_flags=0, create=True):
        key = (proto, src, sport, dst, dport)
        flow = self.flows.get(key)
        if flow is not None:
            return flow, (0 if flow.orig_h == src and flow.orig_p == sport else 1)
        reverse = (proto, dst, dport, src, sport)
        flow = self.flows.get(reverse)
        if flow is not None:
            return flow, (0 if flow.orig_h == src and flow.orig_p == sport else 1)
        if not create:
            return None, None
        # a first packet that is a SYN-ACK comes from the responder: Zeek flips the flow (^)
        if proto == PROTO_TCP and tcp_flags & (SYN | ACK) == SYN | ACK:
            flow = _Flow(proto, dst, dport, src, sport, ts, flipped=True)
            self.flows[key] = flow
            return flow, 1
        flow = _Flow(proto, src, sport, dst, dport, ts)
        self.flows[key] = flow
        return flow, 0

    def _icmp(self, ts, ip, icmp):
        """Count echo, attach errors to the flow they quote; True when the packet was consumed."""
        if len(icmp) < 8:
            return False
        family, kind, code = ip["family"], icmp[0], icmp[1]
        echo = ECHO_TYPES.get((family, kind))
        if echo is not None:
            requester, responder = (ip["src"], ip["dst"]) if echo == "request" else (ip["dst"], ip["src"])
            pair = self.echo.setdefault((requester, responder), {"request": 0, "reply": 0, "first_ts": ts})
            pair[echo] += 1
            pair["last_ts"] = ts
            return True
        if kind not in QUOTING_TYPES[family_word(family)]:
            return False
        quoted = decode_ip(icmp[8:])
        if quoted is None or quoted["proto"] in (PROTO_ICMP, PROTO_ICMPV6):
            return False
        sport, dport = 0, 0
        if quoted["proto"] in (PROTO_TCP, PROTO_UDP):
            ports = _ports(quoted["transport"])
            if ports is None:
                return False
            sport, dport = ports
        flow, _direction = self._flow(quoted["proto"], quoted["src"], sport, quoted["dst"], dport, ts)
        key = (ip["src"], kind, code)
        entry = flow.icmp_errors.get(key)
        if entry is None:
            entry = flow.icmp_errors[key] = {
                "from": ip["src"], "type": kind, "code": code, "name": icmp_word(family, kind, code),
                "count": 0, "first_ts": ts, "family": family,
            }
        entry["count"] += 1
        entry["last_ts"] = ts
        return True

    def result(self):
        flows = sorted(self.flows.values(), key=lambda f: (f.first_ts, f.orig_h, f.orig_p))
        return {
            "packets": self.packets,
            "undecoded": self.undecoded,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "flows": [self._flow_result(f) for f in flows],
            "icmp_echo": [
                {"requester": requester, "responder": responder, "requests": counts["request"],
                 "replies": counts["reply"], "first_ts": counts["first_ts"], "last_ts": counts["last_ts"]}
                for (requester, responder), counts in sorted(self.echo.items(), key=lambda i: i[1]["first_ts"])
            ],
        }

    def _local_side(self, flow):
        if flow.orig_h in self.local:
            return "orig"
        if flow.resp_h in self.local:
            return "resp"
        return None

    def _handshake(self, flow, local_side):
        if flow.proto != PROTO_TCP or flow.syn_ts is None or flow.synack_ts is None:
            return None
        syn_to_synack = _ms(flow.synack_ts - flow.syn_ts)
        synack_to_ack = _ms(flow.ack_ts - flow.synack_ts) if flow.ack_ts is not None else None
        if local_side == "orig":
            rtt, measured_at = syn_to_synack, "originator"
        elif local_side == "resp":
            rtt, measured_at = synack_to_ack, "responder"
        else:
            rtt = None if synack_to_ack is None else round(syn_to_synack + synack_to_ack, 3)
            measured_at = "between"
        return {"rtt_ms": rtt, "measured_at": measured_at,
                "syn_to_synack_ms": syn_to_synack, "synack_to_ack_ms": synack_to_ack}

    def _flow_result(self, flow):
        local_side = self._local_side(flow)
        return {
            "proto": PROTO_NAMES.get(flow.proto, str(flow.proto)),
            "orig_h": flow.orig_h, "orig_p": flow.orig_p, "resp_h": flow.resp_h, "resp_p": flow.resp_p,
            "first_ts": flow.first_ts, "last_ts": flow.last_ts,
            "duration_ms": _ms(flow.last_ts - flow.first_ts),
            "orig_pkts": flow.pkts[0], "orig_ip_bytes": flow.ip_bytes[0], "orig_bytes": flow.payload[0],
            "resp_pkts": flow.pkts[1], "resp_ip_bytes": flow.ip_bytes[1], "resp_bytes": flow.payload[1],
            "orig_flags": dict(flow.flags[0]) if flow.proto == PROTO_TCP else None,
            "resp_flags": dict(flow.flags[1]) if flow.proto == PROTO_TCP else None,
            "conn_state": conn_state(flow),
            "history": flow.history,
            "local": local_side,
            "handshake": self._handshake(flow, local_side),
            "retransmissions": {"orig": flow.retrans[0], "resp": flow.retrans[1]},
            "icmp_errors": sorted(flow.icmp_errors.values(), key=lambda e: e["first_ts"]),
        }


def _ms(seconds):
    return round(seconds * 1000.0, 3)


def summarize_bytes(data, local_addresses=()):
    """The summary of a whole pcap file given as bytes (see ``summarize_file``)."""
    order, _divisor, snaplen, link_type = read_header(data)
    summary = Summary(local_addresses)
    offset_of = _ip_offset
    records = 0
    end = 24
    for ts, frame, _origlen in iter_records(data):
        records += 1
        end += 16 + len(frame)
        where = offset_of(link_type, frame)
        if where is None:
            summary.packets += 1
            summary.undecoded += 1
            _stamp(summary, ts)
            continue
        offset, ethertype = where
        if ethertype is not None and ethertype not in (ETH_IPV4, ETH_IPV6):
            summary.packets += 1
            summary.undecoded += 1
            _stamp(summary, ts)
            continue
        summary.add_ip(ts, frame[offset:])
    result = summary.result()
    result.update(link_type=link_type, link_type_name=LINK_TYPES.get(link_type, "unknown"),
                  snaplen=snaplen, truncated=end != len(data))
    return result


def _stamp(summary, ts):
    if summary.first_ts is None:
        summary.first_ts = ts
    summary.last_ts = ts


def summarize_file(path, local_addresses=()):
    """The per-flow summary of the pcap at ``path``.

    ``local_addresses`` are the capturing host's own addresses: they say which side of
    each flow the host was on (``local``) and so where the handshake RTT was measured.
    Raises PcapError for a file that is not a pcap; damaged records set ``truncated``."""
    with open(path, "rb") as handle:
        data = handle.read()
    return summarize_bytes(data, local_addresses)
