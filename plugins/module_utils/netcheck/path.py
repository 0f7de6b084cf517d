# -*- coding: utf-8 -*-
"""Where on the path: the hop where a flow dies, and the path MTU.

Two probes, run for a check that failed (or on request), never for a healthy pair:

* :func:`trace` sends the SAME flow as the failing check with a stepped TTL / hop limit, one
  probe at a time (Paris-traceroute style: the 5-tuple never changes, so a load balancer
  hashing on it sends every probe the way the check went). TCP: a SYN to the failing port
  from one fixed source port, through an ordinary ``connect()`` with ``IP_TTL`` set per
  attempt; the kernel queues the ICMP time-exceeded or unreachable that answered it on the
  socket's error queue (``IP_RECVERR`` / ``IPV6_RECVERR``), with its type, code and sender:
  no root needed. ICMP: echo requests with one constant identifier on a raw socket (root) or
  an unprivileged ICMP socket, errors read from the same error queue.
  :func:`classify_hops` (pure) says where it stops: ``REACHED``, ``DROPPED_AFTER_HOP``,
  ``REJECTED_AT_HOP``, ``ROUTING_LOOP``, ``TTL_EXPIRED``.

* :func:`discover_mtu` sends ICMP echoes with Don't Fragment set (``IP_PMTUDISC_PROBE``: the
  kernel's cached path MTU is ignored, the interface MTU is the only local limit) of growing
  size: :func:`search_mtu` (pure, over a ``probe(size)`` callback) tries the interface MTU,
  the MTU a router reported (type 3 code 4 / ICMPv6 packet-too-big, ``ee_info``), common MTU
  plateaus, then bisects; :func:`classify_mtu` (pure) says ``PMTU_OK``, ``PMTU_REDUCED`` (a
  router reported a smaller MTU: a note) or ``MTU_BLACKHOLE`` (large DF packets vanish and no
  "fragmentation needed" comes back).

Sizes are whole IP packets (header included), as tracepath's ``pmtu``. Every loop is bounded
by a probe count and a deadline. Stdlib only, Python 3.8+ (runs on the managed host).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

from .icmp import ECHO_REPLY, checksum
from .outcome import TIME_EXCEEDED_TYPE, UNREACH_TYPE, family_word, icmp_name, is_fragmentation_needed, \
    normal_address, same_address
from .probe import InputError, read_text, target_mappings, validate_host, validate_port, validate_timeout
from .tcp import IP_RECVERR, IPV6_RECVERR, MSG_ERRQUEUE, SO_EE_ORIGIN_LOCAL, parse_extended_err

KIND = "path"
# Linux values the socket module does not export everywhere
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, IP_MTU = 10, 3, 14
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_MTU = 23, 3, 24
IPV6_UNICAST_HOPS = getattr(socket, "IPV6_UNICAST_HOPS", 16)
HEADER = {socket.AF_INET: 20, socket.AF_INET6: 40}
# the smallest packet every path carries: IPv4's 576 (RFC 791), IPv6's 1280 (RFC 8200)
FLOOR = {socket.AF_INET: 576, socket.AF_INET6: 1280}
# MTUs seen on real paths: IPv6 minimum, tunnels (GRE, VXLAN, WireGuard, PPPoE), Ethernet,
# AWS inter-region peering (8500), jumbo frames and AWS's 9001 inside a VPC
PLATEAUS = (1280, 1400, 1420, 1450, 1460, 1480, 1492, 1500, 4000, 8500, 9000, 9001)

DEFAULTS = {"max_hops": 16, "timeout": 0.5, "attempts": 2, "give_up": 2, "max_probes": 24, "pace": 1.0}
# silent hops before an answering one asked again (after one pause of DEFAULTS["pace"] seconds)
HOLES = 3

# where a trace stops -> what it means (docs/path.md); the verdict codes take these names
STOPS = {
    "REACHED": "the flow reached the target: the path forwards it",
    "DROPPED_AFTER_HOP": "the last hop that answered forwards the flow, the next one is silent: a filter "
                         "(network ACL, security group, FORWARD rule) drops it there or just after",
    "REJECTED_AT_HOP": "a router on the path answered destination unreachable: no route (route table) or "
                       "a REJECT rule (network ACL)",
    "ROUTING_LOOP": "the same routers answer again and again: two route tables point at each other",
    "TTL_EXPIRED": "the path is longer than the TTL the flow is sent with (or than max_hops)",
    "LOCAL_ERROR": "the source could not send the probe (no route, its own firewall)",
}


# --- the error queue ---------------------------------------------------------------------------

def set_hops(sock, family, hops):
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, hops)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)


def enable_errors(sock, family):
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)


def read_errors(sock, limit=16):
    """Every error queued on the socket: [{origin, family, type, code, errno, from, info, payload}]."""
    found = []
    for _ in range(limit):
        try:
            payload, ancdata, _, _ = sock.recvmsg(512, 512, MSG_ERRQUEUE)
        except OSError:
            break
        for level, kind, data in ancdata:
            if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                error = parse_extended_err(data)
                if error:
                    # ee_info: the next-hop MTU of a "fragmentation needed" / "packet too big"
                    error["info"] = struct.unpack_from("=I", data, 8)[0] if len(data) >= 12 else None
                    error["payload"] = payload
                    found.append(error)
    return found


def answer_of(error, family):
    """One hop's answer from a queued error: {answer, address, icmp_type, icmp_code, icmp_name, mtu}."""
    if error["origin"] == SO_EE_ORIGIN_LOCAL:
        return {"answer": "local_error", "address": None, "icmp_type": None, "icmp_code": None,
                "icmp_name": None, "errno_name": errno.errorcode.get(error["errno"]),
                "mtu": error.get("info") if error["errno"] == errno.EMSGSIZE else None}
    word = family_word(family)
    kind, code = error["type"], error["code"]
    if kind == TIME_EXCEEDED_TYPE[word]:
        answer = "time_exceeded"
    elif is_fragmentation_needed(word, kind, code):
        answer = "frag_needed"
    elif kind == UNREACH_TYPE[word]:
        answer = "unreachable"
    else:
        answer = "icmp_other"
    return {"answer": answer, "address": normal_address(error["from"]), "icmp_type": kind, "icmp_code": code,
            "icmp_name": icmp_name(word, kind, code),
            "mtu": error.get("info") if answer == "frag_needed" else None}


def _resolve(target, family):
    infos = socket.getaddrinfo(target, None, family or socket.AF_UNSPEC, socket.SOCK_STREAM)
    fam, _, _, _, sockaddr = infos[0]
    return fam, normal_address(sockaddr[0])


def flow_ttl(family, proc="/proc"):
    """The TTL / hop limit the source sends its flows with (its sysctl), or None."""
    path = "/sys/net/ipv4/ip_default_ttl" if family == socket.AF_INET else "/sys/net/ipv6/conf/default/hop_limit"
    text = read_text(proc + path)
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


# --- one hop of a TCP trace ----------------------------------------------------------------------

def tcp_hop(family, address, port, hops, source_port, timeout, source=None):
    """One SYN with TTL ``hops`` from ``source_port``: (answer dict, rtt_ms, source_port used)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((source or ("::" if family == socket.AF_INET6 else "0.0.0.0"), source_port or 0))
        source_port = sock.getsockname()[1]
        set_hops(sock, family, hops)
        enable_errors(sock, family)
        sock.setblocking(False)
        start = time.monotonic()
        code = sock.connect_ex((address, port))
        if code not in (0, errno.EINPROGRESS):
            errors = read_errors(sock)
            if errors:
                return answer_of(errors[-1], family), _ms(start), source_port
            return {"answer": "local_error", "address": None, "errno_name": errno.errorcode.get(code)}, \
                _ms(start), source_port
        poller = select.poll()
        poller.register(sock, select.POLLOUT | select.POLLERR)
        events = poller.poll(timeout * 1000.0)
        rtt = _ms(start)
        if not events:
            return {"answer": "none", "address": None}, None, source_port
        errors = read_errors(sock)
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if errors:
            return answer_of(errors[-1], family), rtt, source_port
        if status == 0:
            return {"answer": "syn_ack", "address": address}, rtt, source_port
        if status == errno.ECONNREFUSED:
            return {"answer": "rst", "address": address}, rtt, source_port
        return {"answer": "local_error", "address": None, "errno_name": errno.errorcode.get(status)}, rtt, \
            source_port
    finally:
        sock.close()


def _ms(start):
    return round((time.monotonic() - start) * 1000.0, 3)


# --- ICMP echo sockets (raw as root, else the unprivileged ICMP socket) ------------------------------

def open_echo_socket(family, method="auto"):
    """(socket, method word): raw when allowed, else the unprivileged ICMP datagram socket."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    last = None
    for kind, word in ((socket.SOCK_RAW, "raw"), (socket.SOCK_DGRAM, "dgram")):
        if method not in ("auto", word):
            continue
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            last = exc
            continue
        enable_errors(sock, family)
        sock.setblocking(False)
        return sock, word
    raise OSError(last.errno if last else errno.EPERM,
                  "no ICMP socket: raw needs root (CAP_NET_RAW), dgram needs net.ipv4.ping_group_range (%s)"
                  % (last.strerror if last else "refused"))


def echo_packet(family, ident, seq, size):
    """An echo request whose IP packet is ``size`` bytes (the kernel fills in the IPv6 checksum).

    Paris-traceroute style, the checksum stays the same whatever ``seq`` is: the payload's first
    word is 0xFFFF - seq, so their one's-complement sum never changes. A load balancer hashing on
    the first bytes of the ICMP header (type, code, checksum) sends every probe the same way.
    """
    payload_len = max(0, size - HEADER[family] - 8)
    payload = bytes((i & 0xFF for i in range(payload_len)))
    if payload_len >= 2:
        payload = struct.pack("!H", 0xFFFF - (seq & 0xFFFF)) + payload[2:]
    kind = 8 if family == socket.AF_INET else 128
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if family == socket.AF_INET:
        header = struct.pack("!BBHHH", kind, 0, checksum(header + payload), ident, seq)
    return header + payload


def _echo_seq(data, family, raw):
    """(type, ident, seq) of an echo packet read from the socket (IPv4 raw: after the IP header)."""
    if family == socket.AF_INET and raw and len(data) >= 20:
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8:
        return None
    kind, _, _, ident, seq = struct.unpack_from("!BBHHH", data)
    return kind, ident, seq


def echo_once(sock, method, family, address, ident, seq, size, timeout, hops=None):
    """Send one echo (TTL ``hops`` when given) and wait for its answer: (answer dict, rtt_ms)."""
    raw = method == "raw"
    if hops is not None:
        set_hops(sock, family, hops)
    read_errors(sock)  # a late answer to an earlier probe is not this one's
    start = time.monotonic()
    try:
        sock.sendto(echo_packet(family, ident if raw else 0, seq, size), (address, 0))
    except OSError as exc:
        errors = read_errors(sock)
        if exc.errno == errno.EMSGSIZE:
            mtu = _socket_mtu(sock, family)
            return {"answer": "local_error", "address": None, "errno_name": "EMSGSIZE", "mtu": mtu}, _ms(start)
        if errors:
            return answer_of(errors[-1], family), _ms(start)
        return {"answer": "local_error", "address": None, "errno_name": errno.errorcode.get(exc.errno)}, _ms(start)
    deadline = start + timeout
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR)
    for _ in range(256):  # bounded: other ICMP traffic a raw socket sees is skipped
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if not poller.poll(left * 1000.0):
            break
        for error in read_errors(sock):
            quoted = _echo_seq(error.get("payload") or b"", family, False)
            if quoted is None or quoted[2] == seq:
                return answer_of(error, family), _ms(start)
        try:
            data, sender = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            continue
        echo = _echo_seq(data, family, raw)
        if echo and echo[0] == ECHO_REPLY[family] and echo[2] == seq and (not raw or echo[1] == ident) \
                and same_address(sender[0], address):
            return {"answer": "echo_reply", "address": address}, _ms(start)
    return {"answer": "none", "address": None}, None


def _socket_mtu(sock, family):
    try:
        if family == socket.AF_INET6:
            return sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
        return sock.getsockopt(socket.IPPROTO_IP, IP_MTU)
    except OSError:
        return None


# --- the trace ----------------------------------------------------------------------------------------

TARGET_ANSWERS = ("syn_ack", "rst", "echo_reply")


def trace(target, port=None, protocol="tcp", family=None, max_hops=None, timeout=None, attempts=None,
          give_up=None, source_port=None, method="auto", clock=time.monotonic, pace=None):
    """Trace the flow to ``target`` (TCP to ``port``, or ICMP echo): every hop and where it stops."""
    max_hops = int(max_hops or DEFAULTS["max_hops"])
    timeout = float(timeout or DEFAULTS["timeout"])
    attempts = int(attempts or DEFAULTS["attempts"])
    give_up = int(give_up or DEFAULTS["give_up"])
    pace = DEFAULTS["pace"] if pace is None else float(pace)
    started = clock()
    fam, address = _resolve(target, family)
    hops, probes, sock, used = [], 0, None, None
    ident = (os.getpid() ^ 0x6e63) & 0xFFFF
    try:
        if protocol == "icmp":
            sock, used = open_echo_socket(fam, method)
        else:
            used = "tcp-connect"
        state = {"probes": 0, "source_port": source_port}

        def probe_hop(hop, tries):
            for _ in range(tries):
                state["probes"] += 1
                hop["attempts"] += 1
                if protocol == "icmp":
                    answer, rtt = echo_once(sock, used, fam, address, ident, state["probes"], 64, timeout,
                                            hops=hop["hop"])
                else:
                    answer, rtt, state["source_port"] = tcp_hop(fam, address, port, hop["hop"],
                                                                state["source_port"], timeout)
                if answer["answer"] != "none":
                    hop.update(answer)
                    hop["rtt_ms"] = rtt
                    return

        silent = 0
        for ttl in range(1, max_hops + 1):
            hop = {"hop": ttl, "address": None, "rtt_ms": None, "answer": "none", "attempts": 0}
            probe_hop(hop, attempts)
            hops.append(hop)
            silent = silent + 1 if hop["answer"] == "none" else 0
            stop = classify_hops(hops, address, max_hops)
            if stop["code"] is not None or silent >= give_up:
                break
        # A silent hop BEFORE one that answered is a router that rate-limited its ICMP errors (Linux:
        # one "net unreachable" a second per source after a burst, net.ipv4.route.error_cost; one
        # error a second with icmp_ratelimit): once its budget is back, ask it again, so that a
        # reject or a loop is placed at the right hop. Bounded: at most HOLES hops, one pause.
        answered = [h["hop"] for h in hops if h["answer"] != "none"]
        holes = [h for h in hops if h["answer"] == "none" and answered and h["hop"] < answered[-1]][:HOLES]
        if holes:
            time.sleep(pace)
            for hole in holes:
                probe_hop(hole, 1)
        probes, source_port = state["probes"], state["source_port"]
    finally:
        if sock is not None:
            sock.close()
    result = {"target": target, "address": address, "family": family_word(fam), "protocol": protocol,
              "port": port if protocol == "tcp" else None, "method": used,
              "source_port": source_port if protocol == "tcp" else None,
              "hops": hops, "probes": probes, "elapsed_ms": round((clock() - started) * 1000.0, 3),
              "flow_ttl": flow_ttl(fam)}
    result["stop"] = classify_hops(hops, address, max_hops, final=True, flow_ttl=result["flow_ttl"])
    return result


def classify_hops(hops, address, max_hops, final=False, flow_ttl=None):
    """Where a trace stops, from its hops alone: {code, hop, address, icmp_name, loop, last_answering}.

    While the trace runs (``final`` False) it returns code None until the answer is clear, so
    the trace stops early; at the end silence after the last answering hop is
    DROPPED_AFTER_HOP (hop 0: not even the first router answered).
    """
    last = None
    seen = {}
    for hop in hops:
        answer, where = hop["answer"], hop.get("address")
        if answer == "local_error":
            return _stop("LOCAL_ERROR", hop["hop"], None, last, hop)
        if answer in TARGET_ANSWERS or (where is not None and same_address(where, address)
                                        and answer in ("unreachable", "frag_needed")):
            if answer == "unreachable":
                return _stop("REJECTED_AT_HOP", hop["hop"], where, last, hop)
            if flow_ttl is not None and hop["hop"] > flow_ttl:
                at = next((h for h in hops if h["hop"] == flow_ttl), None)
                return _stop("TTL_EXPIRED", flow_ttl, at.get("address") if at else None, last, hop)
            return _stop("REACHED", hop["hop"], where, last, hop)
        if answer == "unreachable":
            # the router that rejects sits where its address first answered
            first = seen.get(where, hop["hop"])
            return _stop("REJECTED_AT_HOP", first, where, last, hop)
        if answer == "time_exceeded":
            if where in seen and seen[where] < hop["hop"] - 1:
                stop = _stop("ROUTING_LOOP", seen[where], where, last, hop)
                stop["loop"] = [h["address"] for h in hops if seen[where] <= h["hop"] <= hop["hop"]]
                return stop
            seen.setdefault(where, hop["hop"])
            last = hop
    if not final:
        return {"code": None}
    if hops and hops[-1]["answer"] == "time_exceeded" and len(hops) >= max_hops:
        return _stop("TTL_EXPIRED", max_hops, hops[-1]["address"], last, hops[-1])
    return _stop("DROPPED_AFTER_HOP", last["hop"] if last else 0, last["address"] if last else None, last, None)


def _stop(code, hop, address, last, answering):
    return {"code": code, "hop": hop, "address": address,
            "icmp_name": answering.get("icmp_name") if answering else None,
            "icmp_code": answering.get("icmp_code") if answering else None,
            "last_answering_hop": last["hop"] if last else None,
            "last_answering_address": last["address"] if last else None,
            "meaning": STOPS[code]}


# --- path MTU -------------------------------------------------------------------------------------------

def search_mtu(probe, interface_mtu, floor, max_probes=None, plateaus=PLATEAUS):
    """Find the largest DF packet that gets through, with ``probe(size)`` -> answer dict.

    Returns {"passed", "failed", "reported", "reported_by", "exact", "probes": [(size, answer)]}.
    Order: the floor (does anything pass?), the interface MTU, an MTU a router reported, the
    plateaus between what passed and what failed (smallest first: losses cost a timeout,
    answers do not), the size just above what passed, then bisection.
    """
    max_probes = int(max_probes or DEFAULTS["max_probes"])
    tried, log = {}, []
    state = {"passed": None, "failed": None, "reported": None, "reported_by": None}

    def run(size):
        answer = probe(size)
        tried[size] = answer
        log.append({"size": size, "answer": answer["answer"], "address": answer.get("address"),
                    "mtu": answer.get("mtu")})
        if answer["answer"] == "echo_reply":
            state["passed"] = max(state["passed"] or 0, size)
        else:
            state["failed"] = min(state["failed"] or size, size)
            if answer.get("mtu") and answer["mtu"] < size:
                if state["reported"] is None or answer["mtu"] < state["reported"]:
                    state["reported"] = answer["mtu"]
                    state["reported_by"] = answer.get("address") if answer["answer"] == "frag_needed" else "local"
        return answer

    run(floor)
    if state["passed"] is None:
        return _mtu_result(state, log, exact=False)
    for _ in range(max_probes):
        size = _next_size(state, tried, interface_mtu, plateaus)
        if size is None:
            break
        run(size)
    exact = state["failed"] is None and state["passed"] == interface_mtu or \
        state["failed"] is not None and state["passed"] is not None and state["failed"] == state["passed"] + 1
    return _mtu_result(state, log, exact)


def _next_size(state, tried, interface_mtu, plateaus):
    passed, failed = state["passed"], state["failed"]
    upper = failed if failed is not None else interface_mtu + 1
    if passed >= interface_mtu or upper - passed <= 1:
        return None
    if interface_mtu not in tried:
        return interface_mtu
    reported = state["reported"]
    if reported and passed < reported < upper and reported not in tried:
        return reported
    if reported and passed == reported and passed + 1 not in tried:
        return passed + 1  # what the router said holds: one byte more must fail
    for size in plateaus:
        if passed < size < upper and size not in tried:
            return size
    if (passed in plateaus or passed == reported) and passed + 1 not in tried:
        return passed + 1  # a plateau passed, the next one failed: is it exactly that plateau?
    middle = (passed + upper) // 2
    return middle if middle not in tried else None


def _mtu_result(state, log, exact):
    result = dict(state)
    result.update({"exact": exact, "probes": log})
    return result


def classify_mtu(search, interface_mtu):
    """PMTU_OK, PMTU_REDUCED (a router told us: a note), MTU_BLACKHOLE, or UNDETERMINED, with the sizes."""
    passed, failed, reported = search["passed"], search["failed"], search["reported"]
    facts = {"path_mtu": passed, "interface_mtu": interface_mtu, "largest_passed": passed,
             "smallest_lost": None, "reported_mtu": reported, "reported_by": search["reported_by"],
             "exact": search["exact"]}
    lost = [p["size"] for p in search["probes"] if p["answer"] == "none"]
    facts["smallest_lost"] = min(lost) if lost else None
    if passed is None:
        facts["code"] = "UNDETERMINED"
    elif lost and (reported is None or min(lost) <= reported):
        # DF packets above what passed vanished and nobody said "fragmentation needed" for them
        facts["code"] = "MTU_BLACKHOLE"
    elif reported is not None and passed < interface_mtu:
        facts["code"] = "PMTU_REDUCED"
    elif failed is None or passed >= interface_mtu:
        facts["code"] = "PMTU_OK"
    else:
        facts["code"] = "PMTU_REDUCED"
    return facts


def interface_mtu_to(family, address):
    """The MTU of the route to ``address`` (the interface's, unless a route sets its own)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        sock.connect((address, 9))  # no packet is sent: connect() only picks the route
        return _route_device_mtu(family, address) or _socket_mtu(sock, family)
    finally:
        sock.close()


def _route_device_mtu(family, address):
    """The MTU of the device the route to ``address`` leaves by, from /sys (None when unknown).

    The socket's IP_MTU would give a cached path MTU that an earlier "fragmentation needed"
    left behind; the search wants what this host itself can send.
    """
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        sock.connect((address, 9))
        local = sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return None
    import fcntl
    for name in names:
        if family == socket.AF_INET:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
                if socket.inet_ntoa(packed[20:24]) != local:
                    continue
            except OSError:
                continue
            finally:
                probe.close()
        else:
            text = read_text("/proc/net/if_inet6") or ""
            wanted = socket.inet_pton(socket.AF_INET6, local.split("%")[0]).hex()
            if not any(line.split()[0] == wanted and line.split()[-1] == name for line in text.splitlines()
                       if line.split()):
                continue
        value = read_text("/sys/class/net/%s/mtu" % name)
        try:
            return int(value.strip())
        except (AttributeError, ValueError):
            return None
    return None


def discover_mtu(target, family=None, timeout=None, attempts=None, max_probes=None, method="auto",
                 clock=time.monotonic):
    """The path MTU to ``target`` by DF echo probes: the search, its classification and the cost."""
    timeout = float(timeout or DEFAULTS["timeout"])
    attempts = int(attempts or DEFAULTS["attempts"])
    started = clock()
    fam, address = _resolve(target, family)
    sock, used = open_echo_socket(fam, method)
    sent = [0]
    ident = (os.getpid() ^ 0x6d74) & 0xFFFF
    try:
        if fam == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        mtu = interface_mtu_to(fam, address) or 1500

        def probe(size):
            answer = {"answer": "none"}
            for _ in range(attempts):
                sent[0] += 1
                answer, _ = echo_once(sock, used, fam, address, ident, sent[0], size, timeout)
                if answer["answer"] != "none":
                    break
            return answer

        search = search_mtu(probe, mtu, min(FLOOR[fam], mtu), max_probes)
    finally:
        sock.close()
    facts = classify_mtu(search, mtu)
    facts.update({"target": target, "address": address, "family": family_word(fam), "method": used,
                  "probes": search["probes"], "packets": sent[0],
                  "elapsed_ms": round((clock() - started) * 1000.0, 3)})
    return facts


# --- many targets: what path_probe and net_diagnose call ------------------------------------------------

PATH_TARGET_SPEC = {
    "host": {"type": "str", "required": True, "description": "The target's address or name (the failing check's)."},
    "port": {"type": "int", "description": "TCP port of the failing check; without it the trace uses ICMP echo."},
    "protocol": {"type": "str", "choices": ["tcp", "icmp"], "description": "The flow traced (default tcp with a "
                 "port, icmp without)."},
    "family": {"type": "str", "choices": ["any", "ipv4", "ipv6"], "default": "any",
               "description": "Address family used when a name resolves to both."},
    "name": {"type": "str", "description": "A label returned with the result (for instance the inventory name)."},
}
PATH_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": PATH_TARGET_SPEC,
                "description": "The flows to trace, one after the other (each is bounded)."},
    "trace": {"type": "bool", "default": True, "description": "Trace each flow hop by hop."},
    "mtu": {"type": "bool", "default": False, "description": "Also find the path MTU with DF echo probes."},
    "max_hops": {"type": "int", "default": DEFAULTS["max_hops"],
                 "description": "Highest TTL / hop limit tried (1-64)."},
    "timeout": {"type": "float", "default": DEFAULTS["timeout"],
                "description": "Seconds to wait for each probe's answer."},
    "attempts": {"type": "int", "default": DEFAULTS["attempts"],
                 "description": "Probes per hop (and per MTU size) before it counts as silent (1-5)."},
}
FAMILIES = {"any": None, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


def parse_path_targets(raw_targets, max_hops, timeout, attempts, field="targets"):
    """Validated targets (InputError naming the field when one is wrong), before anything is sent."""
    if isinstance(max_hops, bool) or not isinstance(max_hops, int) or not 1 <= max_hops <= 64:
        raise InputError("max_hops: %r is not between 1 and 64" % (max_hops,))
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 5:
        raise InputError("attempts: %r is not between 1 and 5" % (attempts,))
    validate_timeout(timeout, "timeout", maximum=10.0)
    parsed = []
    for where, raw in target_mappings(raw_targets, field, PATH_TARGET_SPEC):
        host = validate_host(raw.get("host"), where + ".host")
        port = raw.get("port")
        if port is not None:
            validate_port(port, where + ".port")
        protocol = raw.get("protocol") or ("tcp" if port is not None else "icmp")
        if protocol not in ("tcp", "icmp"):
            raise InputError("%s.protocol: %r is not tcp or icmp" % (where, protocol))
        if protocol == "tcp" and port is None:
            raise InputError("%s.port: a tcp trace needs the port of the failing check" % where)
        family = raw.get("family") or "any"
        if family not in FAMILIES:
            raise InputError("%s.family: %r is not any, ipv4 or ipv6" % (where, family))
        parsed.append({"host": host, "port": port if protocol == "tcp" else None, "protocol": protocol,
                       "family": FAMILIES[family], "name": raw.get("name")})
    return parsed


def probe_paths(targets, trace_flows=True, mtu=False, max_hops=None, timeout=None, attempts=None):
    """For each parsed target: {target, name, port, protocol, trace, mtu, error}; one bounded probe at a time."""
    results = []
    for target in targets:
        entry = {"target": target["host"], "name": target["name"], "port": target["port"],
                 "protocol": target["protocol"], "trace": None, "mtu": None, "error": None}
        try:
            if trace_flows:
                entry["trace"] = trace(target["host"], port=target["port"], protocol=target["protocol"],
                                       family=target["family"], max_hops=max_hops, timeout=timeout, attempts=attempts)
                entry["trace"]["hint"] = trace_hint(entry["trace"]["stop"])
            if mtu:
                entry["mtu"] = discover_mtu(target["host"], family=target["family"], timeout=timeout,
                                            attempts=attempts)
                entry["mtu"]["hint"] = mtu_hint(entry["mtu"])
        except (OSError, ValueError) as exc:  # resolution failed, no ICMP socket: said, not raised
            entry["error"] = "%s: %s" % (type(exc).__name__, exc)
        results.append(entry)
    return results


# --- the verdict's hook: where on the path a failing check dies ---------------------------------------------

# code -> (layer, hint): diagnose.CODES takes these in (the one table of verdict codes)
PATH_CODES = {
    "DROPPED_AFTER_HOP": ("network", "the flow is forwarded up to a hop and vanishes after it: a router's filter (a "
                                     "network ACL), a security group or the target's own firewall drops it there"),
    "REJECTED_AT_HOP": ("network", "a router on the path answered destination unreachable: it has no route onward "
                                   "(a route table) or a REJECT rule (a network ACL) refuses the flow"),
    "ROUTING_LOOP": ("network", "the flow goes round between routers until its TTL runs out: two route tables point "
                                "at each other"),
    "TTL_EXPIRED": ("network", "the path is longer than the TTL (hop limit) the source sends with"),
    "MTU_BLACKHOLE": ("network", "large packets with Don't Fragment vanish on the path and no 'fragmentation needed' "
                                 "comes back: allow ICMP type 3 code 4 / ICMPv6 packet-too-big, or lower the MTU/MSS"),
    "PMTU_REDUCED": ("network", "a router reported a path MTU below the interface's: path-MTU discovery works "
                                "(a note)"),
    "CONNTRACK_FULL": ("network", "the conntrack table is full (or dropped flows during the run): new flows vanish "
                                  "like a firewall's DROP; raise net.netfilter.nf_conntrack_max"),
}
# failing check codes whose flow is traced (silence, an ICMP error, a time-exceeded)
TRACED_CODES = ("PORT_FILTERED", "PORT_REJECTED", "PORT_UNREACHABLE", "ICMP_FILTERED", "ICMP_UNREACHABLE")
# failing check codes a full conntrack table explains (the flow vanished)
SILENT_CODES = ("PORT_FILTERED", "ICMP_FILTERED", "HTTP_TIMEOUT", "DROPPED_AFTER_HOP")
# a connection that works while its transfer stalls: the classic MTU black hole
STALLED_CODES = ("HTTP_TIMEOUT",)
PATH_OPTIONS_SPEC = {
    "on_failure": {"type": "bool", "default": True,
                   "description": "Trace the flow of every failing check routed via a gateway "
                                  "(healthy pairs pay nothing)."},
    "always": {"type": "bool", "default": False, "description": "Trace every pair's flows, failing or not."},
    "mtu": {"type": "bool", "default": False,
            "description": "Find the path MTU of every pair (it is found anyway for a check whose transfer stalls)."},
    "max_hops": PATH_SPEC["max_hops"], "timeout": PATH_SPEC["timeout"], "attempts": PATH_SPEC["attempts"],
    "max_flows": {"type": "int", "default": 32,
                  "description": "At most this many flows traced per run (bounded cost)."},
}
PATH_OPTION_DEFAULTS = {name: option.get("default") for name, option in PATH_OPTIONS_SPEC.items()}


def _port_of(check):
    name = check.get("check") or ""
    return int(name[4:]) if name.startswith("tcp/") and name[4:].isdigit() else None


def _routed(pair):
    """False when the target is on-link (nothing between: no hop to find); True or unknown otherwise."""
    neighbour = (pair.get("layers") or {}).get("neighbour") or {}
    detail = neighbour.get("detail") or {}
    if "via_gateway" in detail and detail.get("route", {}).get("dev") is not None:
        return bool(detail["via_gateway"])
    return True


def flows_to_probe(pairs, options):
    """{(address, protocol, port): [(pair index, check index)]} to trace, and {address: [...]} for MTU."""
    options = dict(PATH_OPTION_DEFAULTS, **(options or {}))
    traces, mtus = {}, {}
    for index, pair in enumerate(pairs):
        address = pair.get("address")
        if not address:
            continue
        checks = (pair.get("verdict") or {}).get("checks") or []
        routed = _routed(pair)
        for number, check in enumerate(checks):
            failing = not check.get("ok")
            if check.get("code") in STALLED_CODES and failing:
                mtus.setdefault(address, []).append((index, number))
            wanted = options["always"] or (options["on_failure"] and failing and check.get("code") in TRACED_CODES)
            if not (wanted and routed):
                continue
            port = _port_of(check)
            if port is not None:
                traces.setdefault((address, "tcp", port), []).append((index, number))
            elif check.get("check") == "icmp":
                traces.setdefault((address, "icmp", None), []).append((index, number))
        if options["mtu"]:
            mtus.setdefault(address, [])
    limit = options["max_flows"]
    return dict(list(traces.items())[:limit]), dict(list(mtus.items())[:limit])


def _hops_line(trace_result):
    words = []
    for hop_entry in trace_result["hops"]:
        words.append("%d %s %s" % (hop_entry["hop"], hop_entry.get("address") or "*",
                                   hop_entry.get("icmp_name") or hop_entry["answer"]))
    stop = trace_result["stop"]
    return "path %s %s: %s; %s at hop %s%s" % (
        trace_result["protocol"],
        trace_result["address"] + (":%s" % trace_result["port"] if trace_result["port"] else ""),
        ", ".join(words) or "no hop", stop["code"], stop.get("hop"),
        " (%s)" % stop["address"] if stop.get("address") else "")


def _refined_code(check_code, stop, target):
    """The path code a failing check takes from its trace, or None to keep its own."""
    code = stop.get("code")
    if code in ("ROUTING_LOOP", "TTL_EXPIRED"):
        return code
    if code == "REJECTED_AT_HOP" and stop.get("address") and not same_address(stop["address"], target):
        return code
    if code == "DROPPED_AFTER_HOP" and stop.get("hop") and check_code in ("PORT_FILTERED", "ICMP_FILTERED"):
        return code  # a router forwarded it (it answered its own hop); after it, silence
    return None


def _set(check, code, hint, evidence_line):
    check["code"], check["hint"] = code, hint
    check["layer"] = PATH_CODES[code][0]
    check["evidence"] = [evidence_line] + list(check.get("evidence") or [])


def apply_findings(pairs, traces, mtus, conntrack=None, layer_rank=None):
    """Refine the failing checks of ``pairs`` in place with what the path probes found.

    ``traces``: {(address, protocol, port): (trace result, [(pair, check)])}; ``mtus``: {address:
    (mtu facts, [(pair, check)])}; ``conntrack``: conntrack_verdict() of the source during the run.
    Every check a finding changes gets ``hop`` ({index, address}) or ``mtu`` and an evidence line;
    the pair's verdict is summed up again (``resummarize``).
    """
    touched = set()
    for (address, _, _), (result, where) in traces.items():
        stop = result["stop"]
        for index, number in where:
            check = pairs[index]["verdict"]["checks"][number]
            check["path"] = {"hops": result["hops"], "stop": stop, "method": result["method"],
                             "source_port": result.get("source_port"), "probes": result["probes"]}
            check["hop"] = {"index": stop.get("hop"), "address": stop.get("address")}
            code = _refined_code(check["code"], stop, address) if not check.get("ok") else None
            if code:
                _set(check, code, trace_hint(stop), _hops_line(result))
            else:
                check["evidence"] = list(check.get("evidence") or []) + [_hops_line(result)]
            touched.add(index)
    for address, (facts, where) in mtus.items():
        line = "path MTU to %s: %s, largest DF packet through %s, interface MTU %s%s" % (
            address, facts["code"], facts.get("largest_passed"), facts.get("interface_mtu"),
            ", %s reported %s" % (facts["reported_by"], facts["reported_mtu"]) if facts.get("reported_mtu") else "")
        explained = set()
        for index, number in where:
            check = pairs[index]["verdict"]["checks"][number]
            check["mtu"] = _mtu_summary(facts)
            if facts["code"] == "MTU_BLACKHOLE" and not check.get("ok"):
                _set(check, "MTU_BLACKHOLE", mtu_hint(facts), line)
                explained.add(index)
            touched.add(index)
        if facts["code"] not in ("MTU_BLACKHOLE", "PMTU_REDUCED"):
            continue
        for index, pair in enumerate(pairs):
            if pair.get("address") != address or index in explained:
                continue
            # its own check: a black hole fails the pair (big transfers will stall), a reduced MTU is a note
            blackhole = facts["code"] == "MTU_BLACKHOLE"
            pair["verdict"]["checks"].append({
                "check": "path_mtu", "layer": "network", "ok": not blackhole, "severity": "fail" if blackhole else "ok",
                "code": facts["code"], "hint": mtu_hint(facts), "evidence": [line], "outcome": None,
                "mtu": _mtu_summary(facts)})
            touched.add(index)
    if conntrack and conntrack.get("code") == "CONNTRACK_FULL":
        for index, pair in enumerate(pairs):
            for check in (pair.get("verdict") or {}).get("checks") or []:
                if not check.get("ok") and check.get("code") in SILENT_CODES:
                    _set(check, "CONNTRACK_FULL", conntrack["hint"],
                         "conntrack on the source: %s of %s entries%s" % (
                             conntrack.get("count"), conntrack.get("max"),
                             "; rose: " + ", ".join("%s +%d" % i for i in sorted(conntrack["rose"].items()))
                             if conntrack.get("rose") else ""))
                    touched.add(index)
    for index in sorted(touched):
        resummarize(pairs[index], layer_rank)
    return sorted(touched)


def _mtu_summary(facts):
    return {key: facts.get(key) for key in ("code", "path_mtu", "interface_mtu", "largest_passed", "smallest_lost",
                                            "reported_mtu", "reported_by", "exact")}


LAYER_RANK = {"link": 0, "network": 1, "transport": 2, "application": 3, "none": 4}


def resummarize(pair, layer_rank=None):
    """The pair's verdict head (code, layer, hint) again from its checks: the lowest failing check leads."""
    rank = layer_rank or LAYER_RANK
    verdict = pair["verdict"]
    checks = verdict.get("checks") or []
    failing = sorted([c for c in checks if not c.get("ok")], key=lambda c: rank.get(c.get("layer"), 4))
    notes = [n for n in verdict.get("notes") or [] if n.get("code") not in PATH_CODES]
    notes += [{"code": c["code"], "hint": c["hint"]} for c in checks if c.get("ok") and c.get("code") in PATH_CODES]
    verdict["notes"] = notes
    verdict["failed_checks"] = len(failing)
    if failing:
        first = failing[0]
        verdict.update(first_failing_layer=first["layer"], code=first["code"], hint=first["hint"],
                       hop=first.get("hop") if first["code"] in PATH_CODES else None)
        lines = [line for c in failing for line in c.get("evidence") or []]
        verdict["evidence"] = unique_lines(lines + [line for line in verdict.get("evidence") or [] if line not in lines])
        pair["ok"] = False


def unique_lines(lines):
    """The lines in their order, each once (evidence lists repeat facts)."""
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def run_path_probes(pairs, options=None, conntrack=None, trace_fn=None, mtu_fn=None, max_workers=8):
    """Find, probe (concurrently, bounded) and apply: what diagnose_targets calls after its verdicts.

    Returns {"traces", "mtu_probes", "elapsed_ms", "changed_pairs"}: a healthy run sends nothing.
    """
    import threading
    started = time.monotonic()
    options = dict(PATH_OPTION_DEFAULTS, **(options or {}))
    trace_fn = trace_fn or trace
    mtu_fn = mtu_fn or discover_mtu
    trace_flows, mtu_flows = flows_to_probe(pairs, options)
    jobs = [("trace", key) for key in trace_flows] + [("mtu", key) for key in mtu_flows]
    found = {}

    def work(job):
        kind, key = job
        try:
            if kind == "trace":
                address, protocol, port = key
                result = trace_fn(address, port=port, protocol=protocol, max_hops=options["max_hops"],
                                  timeout=options["timeout"], attempts=options["attempts"])
            else:
                result = mtu_fn(key, timeout=options["timeout"], attempts=options["attempts"])
        except (OSError, ValueError) as exc:
            result = None
            found[("error",) + (job,)] = str(exc)
        found[job] = result

    pending = list(jobs)
    for _ in range(len(jobs) // max(1, max_workers) + 1):  # bounded: rounds of at most max_workers threads
        batch, pending = pending[:max_workers], pending[max_workers:]
        threads = [threading.Thread(target=work, args=(job,), daemon=True) for job in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not pending:
            break
    traces = {key: (found[("trace", key)], where) for key, where in trace_flows.items()
              if found.get(("trace", key))}
    mtus = {key: (found[("mtu", key)], where) for key, where in mtu_flows.items() if found.get(("mtu", key))}
    changed = apply_findings(pairs, traces, mtus, conntrack)
    return {"traces": len(trace_flows), "mtu_probes": len(mtu_flows), "changed_pairs": changed,
            "errors": [found[k] for k in found if k[0] == "error"],
            "elapsed_ms": round((time.monotonic() - started) * 1000.0, 3)}


# --- hints ---------------------------------------------------------------------------------------------

def trace_hint(stop):
    """One sentence for a trace's stop (the verdict's hint when the path is where it breaks)."""
    code, hop, where = stop["code"], stop.get("hop"), stop.get("address")
    if code == "DROPPED_AFTER_HOP":
        if not hop:
            return "not even the first hop answered: the source's own firewall or its first router drops the flow"
        return ("hop %d (%s) answered, the next hop is silent: a filter there or just after drops the flow "
                "(a router's FORWARD rule / a network ACL, a security group, the target's firewall)" % (hop, where))
    if code == "REJECTED_AT_HOP":
        reason = stop.get("icmp_name") or "unreachable"
        if stop.get("icmp_code") in (0, 1, 6, 7) and reason in ("net unreachable", "host unreachable",
                                                                "destination network unknown",
                                                                "destination host unknown"):
            return "hop %d (%s) answered %s: it has no route onward (a route table misses the route)" % (
                hop, where, reason)
        return "hop %d (%s) answered %s: a REJECT rule there (a network ACL, a firewall) refuses the flow" % (
            hop, where, reason)
    if code == "ROUTING_LOOP":
        return "routing loop between %s from hop %d: two route tables point at each other" % (
            " and ".join(sorted(set(a for a in stop.get("loop") or [] if a))), hop)
    if code == "TTL_EXPIRED":
        return "the flow's TTL runs out at hop %d (%s): the path is longer than the TTL it is sent with; raise " \
               "net.ipv4.ip_default_ttl / hop_limit or shorten the path" % (hop, where)
    if code == "LOCAL_ERROR":
        return "the source itself could not send the probe: no route or its own firewall"
    return "the flow reaches the target at hop %d: the path forwards it" % hop


def mtu_hint(facts):
    code = facts["code"]
    if code == "MTU_BLACKHOLE":
        return ("packets of %s bytes pass, DF packets of %s bytes vanish and no 'fragmentation needed' comes back "
                "(interface MTU %s): allow ICMP type 3 code 4 / ICMPv6 packet-too-big back to the source (security "
                "groups, network ACLs, firewalls), or set the MTU to %s (or clamp TCP MSS to %s)"
                % (facts["largest_passed"], facts["smallest_lost"], facts["interface_mtu"], facts["largest_passed"],
                   (facts["largest_passed"] or 0) - (40 if facts.get("family") != "ipv6" else 60)))
    if code == "PMTU_REDUCED":
        return ("a router (%s) reports MTU %s below the interface's %s: path-MTU discovery works; large transfers "
                "use %s-byte packets" % (facts["reported_by"], facts["reported_mtu"], facts["interface_mtu"],
                                         facts["path_mtu"]))
    if code == "UNDETERMINED":
        return "not even %s-byte echoes came back: the path MTU cannot be measured with ICMP echo here" % (
            min(p["size"] for p in facts["probes"]) if facts.get("probes") else "small")
    return "the path carries the interface MTU (%s bytes)" % facts["interface_mtu"]


__all__ = ["DEFAULTS", "FLOOR", "KIND", "PATH_CODES", "PATH_OPTIONS_SPEC", "PATH_SPEC", "PATH_TARGET_SPEC", "PLATEAUS",
           "STOPS", "answer_of", "apply_findings", "classify_hops", "classify_mtu", "discover_mtu", "echo_once",
           "echo_packet", "flow_ttl", "flows_to_probe", "interface_mtu_to", "mtu_hint", "open_echo_socket",
           "parse_path_targets", "probe_paths", "read_errors", "resummarize", "run_path_probes", "search_mtu",
           "tcp_hop", "trace", "trace_hint"]
