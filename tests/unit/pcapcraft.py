"""Crafted packets and pcap files for the pcap reader's tests and the capture benchmark.

Checksums are left zero on purpose: the reader must not care (offload makes them
wrong on the sending host anyway).
"""

from __future__ import annotations

import ipaddress
import struct

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MAC_A = b"\x02\x00\x00\x00\x00\x0a"
MAC_B = b"\x02\x00\x00\x00\x00\x0b"


def ipv4(src, dst, proto, payload, ttl=64):
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header + payload


def ipv6(src, dst, proto, payload, hop_limit=64):
    header = struct.pack(">IHBB16s16s", 6 << 28, len(payload), proto, hop_limit,
                         ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return header + payload


def tcp(sport, dport, flags, seq=1000, ack=0, payload=b""):
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload=b""):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(kind, code, rest=b"\x00\x00\x00\x00", body=b""):
    return struct.pack(">BBH", kind, code, 0) + rest + body


def ip(src, dst, proto, payload):
    """IPv4 or IPv6 by the source address's family."""
    if ":" in src:
        return ipv6(src, dst, proto, payload)
    return ipv4(src, dst, proto, payload)


def tcp_packet(src, sport, dst, dport, flags, seq=1000, ack=0, payload=b""):
    return ip(src, dst, 6, tcp(sport, dport, flags, seq, ack, payload))


def ethernet(packet, vlan=None):
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
    return MAC_B + MAC_A + tag + struct.pack(">H", ethertype) + packet


def linux_sll(packet):
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return struct.pack(">HHH8sH", 4, 1, 6, MAC_A + b"\x00\x00", ethertype) + packet


def linux_sll2(packet):
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 4, 6, MAC_A + b"\x00\x00") + packet


FRAMERS = {1: ethernet, 113: linux_sll, 276: linux_sll2, 101: lambda p: p}


def pcap_bytes(packets, link_type=1, nanoseconds=False, big_endian=False, snaplen=262144):
    """A pcap file of ``packets``: a list of (timestamp, IP packet) framed for ``link_type``."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    divisor = 10 ** 9 if nanoseconds else 10 ** 6
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)]
    frame = FRAMERS.get(link_type, lambda p: p)
    for ts, packet in packets:
        data = frame(packet)
        seconds = int(ts)
        fraction = int(round((ts - seconds) * divisor))
        out.append(struct.pack(order + "IIII", seconds, fraction, len(data), len(data)) + data)
    return b"".join(out)


def handshake(client, cport, server, sport, t0=1000.0, rtt=0.010, data=b"", close=True, isn=5000, sisn=9000):
    """A full TCP conversation: SYN, SYN-ACK, ACK, optional data, FIN exchange."""
    packets = [
        (t0, tcp_packet(client, cport, server, sport, SYN, isn)),
        (t0 + rtt, tcp_packet(server, sport, client, cport, SYN | ACK, sisn, isn + 1)),
        (t0 + rtt + 0.001, tcp_packet(client, cport, server, sport, ACK, isn + 1, sisn + 1)),
    ]
    t = t0 + rtt + 0.002
    seq = isn + 1
    if data:
        packets.append((t, tcp_packet(client, cport, server, sport, ACK | PSH, seq, sisn + 1, data)))
        seq += len(data)
        packets.append((t + rtt, tcp_packet(server, sport, client, cport, ACK, sisn + 1, seq)))
        t += rtt + 0.001
    if close:
        packets += [
            (t, tcp_packet(client, cport, server, sport, FIN | ACK, seq, sisn + 1)),
            (t + rtt, tcp_packet(server, sport, client, cport, FIN | ACK, sisn + 1, seq + 1)),
            (t + rtt + 0.001, tcp_packet(client, cport, server, sport, ACK, seq + 1, sisn + 2)),
        ]
    return packets
