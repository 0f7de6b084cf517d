# -*- coding: utf-8 -*-
"""ICMP echo probe: ping many targets at once (fping-style) from the managed host.

Stdlib only. Three methods, in the order ``auto`` tries them:

``raw``     a raw ICMP socket (root or CAP_NET_RAW). Replies are matched by our
            identifier, sequence number, source address and a random cookie in the
            payload, so another pinger's replies are never counted. ICMP errors
            (destination unreachable, time exceeded) are read and attributed.
``dgram``   an unprivileged ICMP datagram socket, where net.ipv4.ping_group_range
            admits the user's group. The kernel owns the identifier and hands us
            only our replies.
``system``  the system ``ping`` binary (iputils or busybox), one process per target,
            all at once; its output is parsed.

Every target gets ``count`` echoes, one every ``interval`` seconds (each round goes
to all targets at once); each echo waits at most ``timeout`` seconds for its reply.
A run lasts at most ``(count - 1) * interval + timeout``, less when every echo has
been answered.
"""

from __future__ import annotations

import errno
import math
import os
import re
import select
import shutil
import socket
import struct
import time

from .neighbour import default_run
from .outcome import ERROR_TYPES, family_word, icmp_name, is_unreachable, normal_address, outcome, same_address
from .probe import (
    InputError, ms_since, probe_result, reject_unknown_keys, run_concurrently, target_mappings, validate_host,
    validate_timeout,
)

KIND = "icmp"
METHODS = ("auto", "raw", "dgram", "system")
MAX_COUNT = 1000
MAX_SIZE = 65507  # the largest ICMP payload an IPv4 datagram can carry
MIN_INTERVAL = 0.001
COOKIE_LEN = 8

# Linux socket option values the stdlib does not always export
IP_RECVTTL, IP_TTL_CMSG = 12, 2
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT_CMSG = 51, 52

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
# The options a user writes (module_utils/netcheck/spec.py explains the format).
ICMP_TARGET_SPEC = {
    "host": {"type": "str", "required": True, "description": "Host name, IPv4 or IPv6 address."},
    "reachable": {"type": "bool", "default": True, "description": "true: the target must answer; false: it must not."},
    "name": {"type": "raw", "description": "A label returned as detail.name (a string)."},
}
ICMP_THRESHOLD_SPEC = {
    "rtt_ms": {"type": "float", "description": "Average RTT in milliseconds."},
    "loss_pct": {"type": "float", "description": "Packet loss in percent."},
}
ICMP_MODULE_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": ICMP_TARGET_SPEC,
                "description": "The hosts to ping, all at once."},
    "count": {"type": "int", "default": 3, "description": "Echo requests per target (1 to 1000)."},
    "interval": {"type": "float", "default": 0.2, "description": "Seconds between two rounds of echoes."},
    "timeout": {"type": "float", "default": 1.0, "description": "Seconds each echo waits for its reply."},
    "size": {"type": "int", "default": 56, "description": "Payload bytes per echo (0 to 65507)."},
    "method": {"type": "str", "choices": list(METHODS), "default": "auto",
               "description": "auto, raw (raw socket), dgram (ICMP datagram socket) or system (ping)."},
    "warn": {"type": "dict", "options": ICMP_THRESHOLD_SPEC, "description": "Thresholds for state warn."},
    "crit": {"type": "dict", "options": ICMP_THRESHOLD_SPEC, "description": "Thresholds for state crit (fails)."},
    "neighbour": {"type": "bool", "default": True, "description": "Read the route and neighbour entry of every target."},
}


class MethodUnavailable(RuntimeError):
    """The forced (or every) ICMP method cannot be used on this host; says why."""


class PingTarget(object):
    __slots__ = ("host", "address", "family", "reachable", "name", "dns_error")

    def __init__(self, host, address, family, reachable=True, name=None, dns_error=None):
        self.host = host
        self.address = address  # None when the name did not resolve (then dns_error says why)
        self.family = family
        self.reachable = reachable
        self.name = name
        self.dns_error = dns_error


class EchoRecord(object):
    """What came back for one target: per-sequence RTTs, TTLs and ICMP errors."""

    def __init__(self):
        self.sent = 0
        self.rtts = {}  # seq -> ms
        self.ttl = None
        self.errors = []
        self.duplicates = 0


# --- input ------------------------------------------------------------------

def validate_options(count, interval, timeout, size):
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InputError("count: %r must be between 1 and %d" % (count, MAX_COUNT))
    interval = validate_timeout(interval, "interval", maximum=60.0)
    if interval < MIN_INTERVAL:
        raise InputError("interval: %s is below the %g s minimum" % (interval, MIN_INTERVAL))
    timeout = validate_timeout(timeout, "timeout", maximum=60.0)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise InputError("size: %r must be between 0 and %d bytes" % (size, MAX_SIZE))
    return count, interval, timeout, size


def parse_targets(raw_targets, field="targets"):
    """Validate every target, then resolve them (concurrently, each name once) before anything is
    sent. A name that does not resolve is that target's ``dns_error``, not the run's failure."""
    targets = []
    for where, raw in target_mappings(raw_targets, field, ICMP_TARGET_SPEC, shorthand="host",
                                      expected="a host or a mapping with host"):
        host = validate_host(raw.get("host"), where + ".host")
        reachable = raw.get("reachable")
        if reachable is None:
            reachable = True
        if not isinstance(reachable, bool):
            raise InputError("%s.reachable: must be true or false" % where)
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise InputError("%s.name: must be a string" % where)
        targets.append(PingTarget(host, None, None, reachable, name))
    names = list(dict.fromkeys(target.host for target in targets))

    def lookup(host):
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_RAW, 0)
        except socket.gaierror as exc:
            return exc.strerror
        family, _, _, _, sockaddr = infos[0]
        if family not in (socket.AF_INET, socket.AF_INET6):
            return "neither IPv4 nor IPv6"
        return sockaddr[0], family

    # the stdlib resolver has no timeout: bounded by the global deadline of run_concurrently
    answers = dict(zip(names, run_concurrently(lookup, names, lambda host, reason: reason, 15.0, max_workers=32)))
    for target in targets:
        answer = answers[target.host]
        if isinstance(answer, tuple):
            target.address, target.family = answer
        else:
            target.dns_error = "%r does not resolve (%s)" % (target.host, answer)
    return targets


# --- statistics and verdicts ----------------------------------------------------

def rtt_stats(rtts):
    """min/avg/max/population stddev (ping's mdev) of a list of RTTs in ms, or Nones."""
    if not rtts:
        return {"rtt_min_ms": None, "rtt_avg_ms": None, "rtt_max_ms": None, "rtt_stddev_ms": None}
    avg = sum(rtts) / len(rtts)
    variance = sum((r - avg) ** 2 for r in rtts) / len(rtts)
    return {"rtt_min_ms": round(min(rtts), 3), "rtt_avg_ms": round(avg, 3),
            "rtt_max_ms": round(max(rtts), 3), "rtt_stddev_ms": round(math.sqrt(variance), 3)}


def status_of(received, loss_pct, rtt_avg_ms, warn=None, crit=None):
    """Nagios check_icmp style: unreachable, crit, warn or ok (thresholds on avg RTT and loss)."""
    if received == 0:
        return "unreachable"
    for name, limits in (("crit", crit), ("warn", warn)):
        limits = limits or {}
        if limits.get("rtt_ms") is not None and rtt_avg_ms >= limits["rtt_ms"]:
            return name
        if limits.get("loss_pct") is not None and loss_pct >= limits["loss_pct"]:
            return name
    return "ok"


def validate_thresholds(value, field):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("%s: expected a mapping with rtt_ms and/or loss_pct" % field)
    reject_unknown_keys(value, ICMP_THRESHOLD_SPEC, field)
    for key, upper in (("rtt_ms", 3600000.0), ("loss_pct", 100.0)):
        number = value.get(key)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number <= upper:
            raise InputError("%s.%s: %r must be a number between 0 and %g" % (field, key, number, upper))
    return dict(value)


def build_result(target, record, method, warn, crit, elapsed_ms, route=None, neighbour=None):
    received = len(record.rtts)
    rtts = [record.rtts[seq] for seq in sorted(record.rtts) if record.rtts[seq] is not None]
    sent = record.sent
    loss_pct = round(100.0 * (sent - received) / sent, 2) if sent else 100.0
    stats = rtt_stats(rtts)
    state = status_of(received, loss_pct, stats["rtt_avg_ms"], warn, crit)
    if target.reachable:
        ok = state in ("ok", "warn")
    else:
        ok = received == 0
    error = None
    if not ok:
        if target.reachable and state == "unreachable":
            error = "no echo reply to %d echo requests" % sent
            if record.errors:
                first = record.errors[0]
                error += " (%s)" % (first["message"] if first["from"] is None
                                    else "%s from %s" % (first["message"], first["from"]))
        elif target.reachable:
            error = "%s: avg RTT %.3f ms, loss %g%%" % (state, stats["rtt_avg_ms"], loss_pct)
        else:
            error = "answered %d of %d echo requests, expected no answer" % (received, sent)
    detail = {
        "host": target.host, "address": target.address, "name": target.name,
        "family": "ipv6" if target.family == socket.AF_INET6 else "ipv4",
        "reachable": target.reachable, "method": method,
        "sent": sent, "received": received, "loss_pct": loss_pct,
        "rtts_ms": [round(r, 3) for r in rtts], "ttl": record.ttl,
        "duplicates": record.duplicates, "icmp_errors": record.errors,
        "route": route, "neighbour": neighbour,
    }
    detail.update(stats)
    detail["outcome"] = echo_outcome(target, record, route, elapsed_ms)
    return probe_result(target.host, KIND, state, ok, {"total_ms": elapsed_ms}, error, detail)


# the unreachable code a host sends itself when its own ARP (IPv4) or NDP (IPv6) got no answer
_NO_NEIGHBOUR_CODES = {"ipv4": 1, "ipv6": 3}


def echo_outcome(target, record, route, elapsed_ms):
    """Why the echoes got what they got: echo_reply, icmp_error (the first error's type, code and
    sender; no_neighbour when the source itself said its ARP/NDP got no answer) or no_answer."""
    sent, received = record.sent, len(record.rtts)
    answered = received + len({error["seq"] for error in record.errors if error["from"] is not None})
    if received:
        return outcome("echo_reply", "echo", probes=sent, answers=min(sent, answered), verdict_ms=elapsed_ms)
    typed = [error for error in record.errors if error["type"] is not None]
    if typed:
        first = typed[0]
        family = family_word(target.family)
        own = (route or {}).get("src")
        reason = "icmp_error"
        if (own and same_address(first["from"], own) and is_unreachable(family, first["type"])
                and first["code"] == _NO_NEIGHBOUR_CODES[family]):
            reason = "no_neighbour"
        return outcome(reason, "echo", icmp={"type": first["type"], "code": first["code"], "from": first["from"],
                                             "family": family},
                       probes=sent, answers=min(sent, answered), verdict_ms=elapsed_ms)
    if any(error["from"] is not None for error in record.errors):
        # the system ping's words for an error it did not name with a known type and code
        return outcome("icmp_error", "echo", probes=sent, answers=min(sent, answered), verdict_ms=elapsed_ms)
    if record.errors:
        return outcome("probe_error", "echo", probes=sent, answers=0, verdict_ms=elapsed_ms)
    return outcome("no_answer", "echo", probes=sent, answers=0, verdict_ms=elapsed_ms)


# --- packets ------------------------------------------------------------------

def checksum(data):
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family, ident, seq, payload):
    header = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET:
        header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq)
    # ICMPv6 checksums cover a pseudo-header: the kernel fills them in
    return header + payload


def make_payload(cookie, size):
    if size <= len(cookie):
        return cookie[:size]
    return cookie + bytes((i & 0xFF for i in range(size - len(cookie))))


def parse_icmp(family, packet, raw):
    """Split a received packet: (icmp bytes, ttl from the IPv4 header or None)."""
    if family == socket.AF_INET and raw:
        if len(packet) < 20:
            return None, None
        ihl = (packet[0] & 0x0F) * 4
        return packet[ihl:], packet[8]
    return packet, None


def quoted_echo(family, icmp):
    """For an ICMP error quoting one of our echoes: (original destination, ident, seq) or None."""
    inner = icmp[8:]
    if family == socket.AF_INET:
        if len(inner) < 28 or inner[9] != socket.IPPROTO_ICMP:
            return None
        ihl = (inner[0] & 0x0F) * 4
        echo = inner[ihl:ihl + 8]
        if len(echo) < 8 or echo[0] != 8:
            return None
        return socket.inet_ntop(socket.AF_INET, inner[16:20]), struct.unpack("!H", echo[4:6])[0], \
            struct.unpack("!H", echo[6:8])[0]
    if len(inner) < 48 or inner[6] != socket.IPPROTO_ICMPV6:
        return None
    echo = inner[40:48]
    if echo[0] != 128:
        return None
    return socket.inet_ntop(socket.AF_INET6, inner[24:40]), struct.unpack("!H", echo[4:6])[0], \
        struct.unpack("!H", echo[6:8])[0]


# --- socket engine (raw and dgram) ---------------------------------------------------

RECEIVE_BUFFER = 4 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's value; the socket module lacks the name


def open_socket(method, family):
    """An ICMP socket of the method for the family, or MethodUnavailable saying why."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kind = socket.SOCK_RAW if method == "raw" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            if method == "raw":
                raise MethodUnavailable("raw: raw ICMP sockets need root or CAP_NET_RAW (%s)" % exc.strerror)
            raise MethodUnavailable(
                "dgram: unprivileged ICMP sockets are refused: net.ipv4.ping_group_range (%s) does not "
                "include this process's group %d" % (_ping_group_range(), os.getgid()))
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            raise MethodUnavailable("%s: %s ICMP sockets are not supported here (%s)"
                                    % (method, "IPv6" if family == socket.AF_INET6 else "IPv4", exc.strerror))
        raise
    sock.setblocking(False)
    # One round sends an echo to every target at once: with the default receive buffer (about
    # 200 KiB) the replies of a few hundred targets overflow it and are lost as "loss"
    # (bench/engines.py: 250 loopback targets got 384 of 750 echoes; 750 of 750 with 4 MiB).
    # SO_RCVBUFFORCE (root) passes net.core.rmem_max, which SO_RCVBUF is capped at (212992 on many hosts).
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
            break
        except OSError:
            continue
    try:
        if family == socket.AF_INET and method == "dgram":
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        elif family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    except OSError:
        pass  # TTL is then unknown, the echo still works
    return sock


def _ping_group_range():
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as handle:
            return " ".join(handle.read().split())
    except OSError:
        return "unknown"


def _ttl_from(ancdata):
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, IP_TTL_CMSG), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT_CMSG)):
            if len(data) >= 4:
                return struct.unpack("i", data[:4])[0]
            if data:
                return data[0]
    return None


def ping_sockets(targets, method, count, interval, timeout, size, clock=time.monotonic):
    """Ping every target over raw or dgram sockets; {index: EchoRecord}."""
    families = sorted({t.family for t in targets})
    sockets = {}
    try:
        for family in families:
            sockets[family] = open_socket(method, family)
        return _echo_loop(targets, sockets, method == "raw", count, interval, timeout, size, clock)
    finally:
        for sock in sockets.values():
            sock.close()


def _echo_loop(targets, sockets, raw, count, interval, timeout, size, clock):
    ident = (os.getpid() ^ int.from_bytes(os.urandom(2), "big")) & 0xFFFF
    cookie = os.urandom(COOKIE_LEN)
    payload = make_payload(cookie, size)
    records = [EchoRecord() for _ in targets]
    by_address = {}
    for index, target in enumerate(targets):
        by_address.setdefault((target.family, normal_address(target.address)), []).append(index)
    # One echo per distinct address, shared by every target that names it: keyed by the
    # first such target (the group's leader) and credited to all of them.
    sent_at = {}  # (leader index, seq) -> send time; removed once answered or failed
    start = clock()
    rounds_sent = 0
    last_send = start
    fd_family = {sock.fileno(): family for family, sock in sockets.items()}

    while True:
        now = clock()
        # send every round that is due: round n goes out at start + n * interval
        while rounds_sent < count and now >= start + rounds_sent * interval:
            seq = rounds_sent
            for indexes in by_address.values():
                target = targets[indexes[0]]
                packet = echo_request(target.family, ident, seq, payload)
                try:
                    sockets[target.family].sendto(packet, (target.address, 0))
                    sent_at[(indexes[0], seq)] = clock()
                    failure = None
                except OSError as exc:
                    failure = {"seq": seq, "from": None, "type": None, "code": None,
                               "message": "send failed: %s" % (exc.strerror or exc)}
                for index in indexes:
                    records[index].sent += 1
                    if failure:
                        records[index].errors.append(dict(failure))
            rounds_sent += 1
            last_send = clock()
            now = last_send
        # forget echoes whose reply is overdue
        for key in [k for k, t in sent_at.items() if now - t > timeout]:
            del sent_at[key]
        if rounds_sent >= count and (not sent_at or now > last_send + timeout):
            break
        next_send = start + rounds_sent * interval if rounds_sent < count else None
        wait_until = min([t + timeout for t in sent_at.values()] + ([next_send] if next_send else []) +
                         [last_send + timeout])
        wait = max(0.0, wait_until - now)
        readable, _, _ = select.select(list(sockets.values()), [], [], wait)
        for sock in readable:
            family = fd_family[sock.fileno()]
            while True:
                try:
                    packet, ancdata, _, source = sock.recvmsg(65535, socket.CMSG_SPACE(4) * 2)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # an error queued on a dgram socket: the echo is then simply lost
                received_at = clock()
                _handle_packet(family, packet, ancdata, source, raw, ident, cookie, by_address, sent_at,
                               records, received_at, timeout)
    return records


def _handle_packet(family, packet, ancdata, source, raw, ident, cookie, by_address, sent_at, records,
                   received_at, timeout):
    icmp, ttl = parse_icmp(family, packet, raw)
    if not icmp or len(icmp) < 8:
        return
    kind, code = icmp[0], icmp[1]
    source_address = normal_address(source[0])
    if kind == ECHO_REPLY[family]:
        reply_ident, seq = struct.unpack("!HH", icmp[4:8])
        # raw sockets see every ICMP packet of the host: only our identifier and cookie count.
        # dgram sockets get only their own replies; the kernel rewrote the identifier.
        if raw and reply_ident != ident:
            return
        data = icmp[8:]
        if data[:len(cookie)] != cookie[:len(data)]:  # a short payload carries part of the cookie
            return
        indexes = by_address.get((family, source_address), [])
        if not indexes:
            return
        key = (indexes[0], seq)
        if key in sent_at:
            rtt = (received_at - sent_at.pop(key)) * 1000.0
            if rtt <= timeout * 1000.0:
                for index in indexes:
                    records[index].rtts[seq] = rtt
                    records[index].ttl = ttl if ttl is not None else _ttl_from(ancdata)
        elif seq in records[indexes[0]].rtts:
            for index in indexes:
                records[index].duplicates += 1
        return
    if kind not in ERROR_TYPES[family_word(family)]:
        return
    quoted = quoted_echo(family, icmp)
    if quoted is None:
        return
    destination, quoted_ident, seq = quoted
    if raw and quoted_ident != ident:
        return
    indexes = by_address.get((family, normal_address(destination)), [])
    if indexes and (indexes[0], seq) in sent_at:
        del sent_at[(indexes[0], seq)]  # answered, with an error: no need to wait for it
        message = icmp_name(family, kind, code)
        for index in indexes:
            records[index].errors.append({"seq": seq, "from": source_address, "type": kind, "code": code,
                                          "message": message})


# --- the system ping binary -----------------------------------------------------------

_REPLY = re.compile(r"^\d+ bytes from (?P<src>\S+?(?: \([^)]*\))?):? (?:icmp_)?seq=(?P<seq>\d+) "
                    r"(?:ttl|hlim)=(?P<ttl>\d+)(?: time=(?P<time>\d+(?:\.\d+)?) ?ms)?(?P<dup> \(DUP!\))?")
_FROM_ERROR = re.compile(r"^From (?P<src>\S+?)(?: \([^)]*\))?:? (?:icmp_)?seq=(?P<seq>\d+) (?P<msg>.+)$")
_SUMMARY = re.compile(r"(?P<sent>\d+) packets transmitted, (?P<received>\d+) (?:packets )?received")
# iputils ping's words for an ICMP error (ping4 and ping6 pr_icmph), lower-cased -> (type, code);
# the names we report come from outcome's one table, these only read ping's output back into numbers
_PING_ERROR_WORDS = {
    "destination net unreachable": (3, 0), "destination host unreachable": (3, 1),
    "destination protocol unreachable": (3, 2), "destination port unreachable": (3, 3),
    "source route failed": (3, 5), "destination net unknown": (3, 6), "destination host unknown": (3, 7),
    "source host isolated": (3, 8), "destination net prohibited": (3, 9), "destination host prohibited": (3, 10),
    "destination net unreachable for type of service": (3, 11),
    "destination host unreachable for type of service": (3, 12), "packet filtered": (3, 13),
    "precedence violation": (3, 14), "precedence cutoff": (3, 15), "time to live exceeded": (11, 0),
    "frag reassembly time exceeded": (11, 1),
    "destination unreachable: no route": (1, 0), "destination unreachable: administratively prohibited": (1, 1),
    "destination unreachable: beyond scope": (1, 2), "destination unreachable: address unreachable": (1, 3),
    "destination unreachable: port unreachable": (1, 4), "time exceeded: hop limit": (3, 0),
    "time exceeded: defragmentation failure": (3, 1),
}
_PING_ERROR_PREFIXES = (("frag needed and df set", (3, 4)), ("packet too big", (2, 0)))


def ping_error_numbers(message):
    """(type, code) of an iputils error line's words, or (None, None) when they are not known."""
    message = message.strip().lower()
    if message in _PING_ERROR_WORDS:
        return _PING_ERROR_WORDS[message]
    for prefix, numbers in _PING_ERROR_PREFIXES:
        if message.startswith(prefix):
            return numbers
    return None, None


def parse_ping_output(text):
    """Parse iputils or busybox ping output into an EchoRecord (RTTs keyed by sequence)."""
    record = EchoRecord()
    transmitted = None
    for line in text.splitlines():
        line = line.strip()
        match = _REPLY.match(line)
        if match:
            seq = int(match.group("seq"))
            if match.group("dup") or seq in record.rtts:
                record.duplicates += 1
                continue
            # iputils prints no time for payloads under 16 bytes: a reply, RTT unknown
            record.rtts[seq] = float(match.group("time")) if match.group("time") else None
            record.ttl = int(match.group("ttl"))
            continue
        match = _FROM_ERROR.match(line)
        if match:
            kind, code = ping_error_numbers(match.group("msg"))
            record.errors.append({"seq": int(match.group("seq")), "from": match.group("src").split(" ")[0],
                                  "type": kind, "code": code, "message": match.group("msg").strip().lower()})
            continue
        match = _SUMMARY.search(line)
        if match:
            transmitted = int(match.group("sent"))
    record.sent = transmitted if transmitted is not None else len(record.rtts)
    return record


def ping_argv(binary, target, count, interval, timeout, size):
    """The system ping command for one target (argv list: no shell, no user text but the address)."""
    family_flag = "-6" if target.family == socket.AF_INET6 else "-4"
    wait = max(1, int(math.ceil(timeout)))  # older iputils and busybox take whole seconds
    return [binary, family_flag, "-n", "-c", str(count), "-i", "%g" % interval, "-W", str(wait),
            "-s", str(size), target.address]


def ping_system(targets, count, interval, timeout, size, run, binary="ping"):
    """One ``ping`` process per target, all at once; {index: EchoRecord}."""
    def one(index):
        rc, out, err = run(ping_argv(binary, targets[index], count, interval, timeout, size))
        record = parse_ping_output(out)
        if rc not in (0, 1) and not record.sent:
            record.sent = count
            record.errors.append({"seq": None, "from": None, "type": None, "code": None,
                                  "message": "ping failed (rc %d): %s" % (rc, (err or out).strip()[:200])})
        return record

    def unfinished(index, reason):
        record = EchoRecord()
        record.sent = count
        record.errors.append({"seq": None, "from": None, "type": None, "code": None, "message": reason})
        return record

    deadline = (count - 1) * interval + timeout + 10.0
    return run_concurrently(one, range(len(targets)), unfinished, deadline)


# --- entry point -------------------------------------------------------------------

def choose_method(method, families, which):
    """The method to use: the forced one when it works here, else the first that does.

    Returns (method, notes): notes say why earlier methods were skipped (auto).
    """
    notes = []
    candidates = ("raw", "dgram", "system") if method == "auto" else (method,)
    for candidate in candidates:
        if candidate == "system":
            if which("ping"):
                return candidate, notes
            notes.append("system: no ping binary on PATH")
            continue
        try:
            for family in families:
                open_socket(candidate, family).close()
        except MethodUnavailable as exc:
            notes.append(str(exc))
            continue
        return candidate, notes
    if method != "auto":
        raise MethodUnavailable("method %s is not available here: %s" % (method, notes[0]))
    raise MethodUnavailable("no ICMP method works here: " + "; ".join(notes))


def dns_error_result(target, method):
    """The result of a target whose name did not resolve: nothing was sent to it."""
    ok = not target.reachable  # "must not answer" is met, though for a reason worth reading
    detail = {
        "host": target.host, "address": None, "name": target.name, "family": None,
        "reachable": target.reachable, "method": method, "sent": 0, "received": 0, "loss_pct": 100.0,
        "rtts_ms": [], "ttl": None, "duplicates": 0, "icmp_errors": [], "route": None, "neighbour": None,
        "outcome": outcome("dns", "resolve", probes=0, verdict_ms=0.0),
    }
    detail.update(rtt_stats([]))
    return probe_result(target.host, KIND, "dns_error", ok, {"total_ms": 0.0},
                        None if ok else "name resolution failed: %s" % target.dns_error, detail)


def ping_targets(targets, count=3, interval=0.2, timeout=1.0, size=56, method="auto", warn=None, crit=None,
                 run=None, which=None, neighbours=None):
    """Ping all targets; returns (results, method used, notes on skipped methods).

    ``run(argv) -> (rc, out, err)`` runs commands (the system method, the neighbour
    lookups); ``which(name)`` finds binaries; ``neighbours(addresses) -> {address: (route,
    neighbour)}`` is called once after the echoes with every distinct address (None: not
    looked up). Targets whose name did not resolve get ``dns_error`` and nothing is sent to them.
    """
    run = run or default_run
    which = which or shutil.which
    resolved = [t for t in targets if t.address is not None]
    families = sorted({t.family for t in resolved}) or [socket.AF_INET]
    used, notes = choose_method(method, families, which)
    start = time.monotonic()
    if not resolved:
        records = []
    elif used == "system":
        records = ping_system(resolved, count, interval, timeout, size, run)
    else:
        records = ping_sockets(resolved, used, count, interval, timeout, size)
    elapsed = ms_since(start)
    hops = neighbours([t.address for t in resolved]) if neighbours is not None and resolved else {}
    by_target = dict(zip(map(id, resolved), records))
    results = []
    for target in targets:
        if target.address is None:
            results.append(dns_error_result(target, used))
            continue
        route, neighbour = hops.get(target.address, (None, None))
        results.append(build_result(target, by_target[id(target)], used, warn, crit, elapsed, route, neighbour))
    return results, used, notes


__all__ = ["InputError", "KIND", "METHODS", "MethodUnavailable", "PingTarget", "build_result", "checksum",
           "choose_method", "dns_error_result", "parse_ping_output", "parse_targets", "ping_argv", "ping_targets",
           "quoted_echo", "rtt_stats", "status_of", "validate_options", "validate_thresholds"]
