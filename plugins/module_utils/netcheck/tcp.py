# -*- coding: utf-8 -*-
"""TCP port probe: the ``telnet HOST PORT`` of the project, for many targets at once.

Stdlib only (runs on the remote host). A target's verdict is one of
``open`` (handshake completed), ``closed`` (the host answered RST), ``filtered``
(no answer for this port, or refused by the source host's own firewall),
``rejected`` (an ICMP error answered this port's SYN: any destination unreachable
from the target or a router; its type, code and sender are in the outcome),
``unreachable`` (the source's side: no route, or ARP/NDP got no answer) and
``dns_error`` (the name did not resolve). The words follow nmap's: its
``filtered`` covers our ``filtered`` and ``rejected``. Every result carries
``detail.outcome`` (outcome.py): why, as data; the error text is made from it.

Every target is probed by one non-blocking connect engine (epoll through
``selectors``, as fping and nmap do): all targets start at once, up to a bound on
the sockets open together, so N filtered targets take about one timeout. A port
that got no answer on a host that answered other ports with ICMP errors is probed
again, paced by the host's ICMP rate limit (:class:`Confirmer`): it is ``rejected``
only when its own ICMP error comes, never on a neighbour's word.
"""

from __future__ import annotations

import errno
import heapq
import selectors
import socket
import struct
import threading
import time

from .neighbour import default_run, neighbour_table
from .outcome import family_word, icmp_name, is_unreachable, normal_address, outcome, same_address
from .probe import (
    InputError, format_hostport, ms_since, probe_result, target_mappings,
    run_concurrently, validate_host, validate_port, validate_regex, validate_timeout,
)
from .regex import BoundedMatcher, RegexTimeout

KIND = "tcp"
STATES = ("open", "closed", "filtered", "rejected", "unreachable", "dns_error")
FAMILIES = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
DEFAULT_TIMEOUT = 3.0
# How much of a banner is kept; more is read only until ``expect`` matches.
MAX_READ_BYTES = 4096

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
# ECONNRESET is not here: on Linux a SYN answered by RST gives ECONNREFUSED; a reset
# from connect() means the handshake completed and the server dropped us at once.
_CLOSED = {errno.ECONNREFUSED}
# The source host's own firewall (an OUTPUT DROP/REJECT rule) refuses the SYN at once.
_LOCALLY_FILTERED = {errno.EPERM, errno.EACCES}
_TIMED_OUT = {errno.ETIMEDOUT}
_EAI_NAMES = {getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")}

# The options a user writes (module.spec explains the format); port_check's argument_spec,
# the netcheck role's group targets and its argument_specs are made from these.
TCP_TARGET_SPEC = {
    "host": {"type": "str", "required": True, "description": "Host name, IPv4 or IPv6 address."},
    "port": {"type": "int", "required": True, "description": "TCP port, 1 to 65535."},
    "timeout": {"type": "float", "description": "Seconds for the handshake, and again for expect (default: timeout)."},
    # raw, not str: the validator refuses a number instead of sending its str() (str would convert it)
    "send": {"type": "raw", "description": "Text sent once connected (UTF-8)."},
    "expect": {"type": "str", "description": "Python regular expression searched in what the server sends."},
    # "expected" as net_diagnose and the netcheck role spell it; "expected_state", port_check's first
    # spelling, still works until 1.0.0 (Ansible prints a deprecation when it is used)
    "expected": {"type": "str", "choices": list(STATES), "default": "open", "aliases": ["expected_state"],
                 "deprecated_aliases": [{"name": "expected_state", "version": "1.0.0",
                                         "collection_name": "netcheck.netcheck"}],
                 "description": "The state this target must have (alias expected_state, deprecated)."},
    "family": {"type": "str", "choices": list(FAMILIES), "default": "any",
               "description": "Address family used when a name resolves to both."},
    "name": {"type": "raw", "description": "A label returned as detail.name (e.g. the inventory name)."},
}
# One non-blocking engine holds every socket: far more can be open at once than threads could run.
DEFAULT_MAX_SOCKETS = 4096

TCP_MODULE_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": TCP_TARGET_SPEC,
                "description": "The endpoints to check, all at once."},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT, "description": "Default per-target timeout in seconds."},
    "max_workers": {"type": "int", "default": DEFAULT_MAX_SOCKETS,
                    "description": "How many sockets are open at the same moment at most (within the file limit)."},
    "confirm_budget": {"type": "float", "default": 10.0,
                       "description": "Seconds the paced re-probes of silent ports may add to the run (0: none)."},
}


class TcpTarget(object):
    """One validated target. Build it with :func:`parse_targets`."""

    __slots__ = ("host", "port", "timeout", "send", "expect", "expected", "family", "name")

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT, send=None, expect=None,
                 expected="open", family="any", name=None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.send = send
        self.expect = expect
        self.expected = expected
        self.family = family
        self.name = name

    @property
    def label(self):
        return format_hostport(self.host, self.port)


def parse_targets(raw_targets, default_timeout=DEFAULT_TIMEOUT, field="targets"):
    """Validate user input into TcpTargets; raise InputError naming the first bad field.

    Nothing is resolved or sent here: a bad list fails before any probe starts.
    """
    validate_timeout(default_timeout, "timeout")
    targets = []
    for where, raw in target_mappings(raw_targets, field, TcpTarget.__slots__ + ("expected_state",),
                                      expected="a mapping with host and port"):
        host = validate_host(raw.get("host"), where + ".host")
        port = validate_port(raw.get("port"), where + ".port")
        timeout = raw.get("timeout")
        timeout = default_timeout if timeout is None else validate_timeout(timeout, where + ".timeout")
        expected, old = raw.get("expected"), raw.get("expected_state")  # the old spelling (an alias)
        if expected is not None and old is not None and expected != old:
            raise InputError("%s.expected_state: %r differs from expected %r (expected_state is expected's old "
                             "name: give expected only)" % (where, old, expected))
        key = "expected" if expected is not None or old is None else "expected_state"
        expected = (expected if expected is not None else old) or "open"
        if not isinstance(expected, str) or expected not in STATES:
            raise InputError("%s.%s: %r is not one of %s" % (where, key, expected, ", ".join(STATES)))
        family = raw.get("family") or "any"
        if not isinstance(family, str) or family not in FAMILIES:
            raise InputError("%s.family: %r is not one of %s" % (where, family, ", ".join(FAMILIES)))
        send = raw.get("send")
        if send is not None and not isinstance(send, str):
            raise InputError("%s.send: must be a string" % where)
        expect = raw.get("expect")
        if expect is not None:
            expect = validate_regex(expect, where + ".expect")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise InputError("%s.name: must be a string" % where)
        targets.append(TcpTarget(host, port, timeout, send, expect, expected, family, name))
    return targets


def _result(target, state, timings, error=None, **detail):
    facts = {
        "host": target.host,
        "port": target.port,
        "name": target.name,
        "expected": target.expected,
        "address": None,
        "family": None,
        "errno": None,
        "errno_name": None,
        "icmp_type": None,
        "icmp_code": None,
        "icmp_from": None,
        "neighbour_state": None,
        "banner": None,
        "expect": target.expect.pattern if target.expect else None,
        "expect_matched": None,
        "conversation_error": None,
        "regex_timed_out": False,
    }
    facts.update(detail)
    record = facts.get("outcome")
    if record is not None:  # the flat keys repeat the outcome: one set of facts, two spellings
        facts.update(errno=record["errno"], errno_name=record["errno_name"], icmp_type=record["icmp_type"],
                     icmp_code=record["icmp_code"], icmp_from=record["icmp_from"])
    ok = state_meets(state, target.expected) and facts["expect_matched"] is not False
    if ok:
        error = None
    elif error is None:
        error = "%s, expected %s" % (state, target.expected)
    return probe_result(target.label, KIND, state, ok, timings, error, facts)


# What each expected state accepts. ``filtered`` is nmap's word for "a firewall stops it", silently
# (our filtered) or with an ICMP error (our rejected): an expected ``filtered`` accepts both. The one
# definition: port_check and net_diagnose both judge with state_meets (docs/results.md).
ACCEPTS = {state: (state,) for state in STATES}
ACCEPTS["filtered"] = ("filtered", "rejected")


def state_meets(state, expected):
    """Whether a TCP verdict meets the expected state (see ACCEPTS)."""
    return state in ACCEPTS.get(expected, (expected,))


# --- the ICMP evidence of a failed connect (Linux IP_RECVERR) --------------------------------

# Linux values the stdlib does not export everywhere
IP_RECVERR, IPV6_RECVERR, MSG_ERRQUEUE = 11, 25, 0x2000
SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 1, 2, 3
_SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # ee_errno, origin, type, code, pad, info, data

# The ICMP destination-unreachable codes a host sends about itself when its own ARP (IPv4 host
# unreachable) or NDP (ICMPv6 address unreachable) got no answer: sent by the source's own address,
# they mean "nobody on my link holds that address", not a firewall.
NO_NEIGHBOUR_CODES = {"ipv4": 1, "ipv6": 3}


def enable_recverr(sock, family):
    """Ask the kernel to queue ICMP errors (type, code, sender) on the socket's error queue."""
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        pass  # not Linux: the verdict then rests on the errno alone


def read_icmp_error(sock):
    """The last ICMP error queued on a socket: {origin, type, code, errno, from} or None."""
    found = None
    for _ in range(8):
        try:
            _, ancdata, _, _ = sock.recvmsg(1, 512, MSG_ERRQUEUE)
        except OSError:
            break
        for level, kind, data in ancdata:
            if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                found = parse_extended_err(data) or found
    return found


def parse_extended_err(data):
    """Parse a ``struct sock_extended_err`` followed by the offender's sockaddr."""
    if len(data) < _SOCK_EXTENDED_ERR.size:
        return None
    ee_errno, origin, kind, code, _, _, _ = _SOCK_EXTENDED_ERR.unpack_from(data)
    if origin not in (SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
        return None
    offender = data[_SOCK_EXTENDED_ERR.size:]
    sender = None
    if len(offender) >= 8 and struct.unpack_from("=H", offender)[0] == socket.AF_INET:
        sender = socket.inet_ntop(socket.AF_INET, offender[4:8])
    elif len(offender) >= 24 and struct.unpack_from("=H", offender)[0] == socket.AF_INET6:
        sender = socket.inet_ntop(socket.AF_INET6, offender[8:24])
    family = socket.AF_INET6 if origin == SO_EE_ORIGIN_ICMP6 else socket.AF_INET
    return {"origin": origin, "family": family, "type": kind, "code": code, "errno": ee_errno, "from": sender}


def is_icmp(evidence):
    """Whether an error-queue entry is an ICMP message (not a local error of the stack)."""
    return bool(evidence) and evidence["origin"] in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6)


def classify_connect(code, icmp=None, local_address=None):
    """(state, reason) of a failed connect from its errno and the ICMP error the kernel queued.

    The one classifier of a TCP connect (port_check and http_check): facts in, words of the
    closed sets out (``STATES``, ``outcome.REASONS``); ``(None, "probe_error")`` when the
    errno means nothing known. A connect()'s errno alone confuses a firewall's ICMP reject with
    an RST (port unreachable -> ECONNREFUSED), with a missing route (host/admin prohibited ->
    EHOSTUNREACH) or with our own firewall (ICMPv6 admin prohibited -> EACCES); the error
    queue says which it was and who sent it. As nmap does, any ICMP unreachable for the flow
    from the target or a router (every code) is a reject; only the source's own "no ARP/NDP
    answer" is ``unreachable``.
    """
    if is_icmp(icmp):
        family = family_word(icmp["family"])
        own = local_address is not None and same_address(icmp["from"], local_address)
        if own and is_unreachable(family, icmp["type"]) and icmp["code"] == NO_NEIGHBOUR_CODES[family]:
            return "unreachable", "no_neighbour"
        if own:
            return "rejected", "local_firewall"  # an OUTPUT REJECT of the source host itself
        if is_unreachable(family, icmp["type"]):
            return "rejected", "icmp_unreach"
        return "rejected", "icmp_error"  # time exceeded, parameter problem: nmap's filtered too
    if code in _CLOSED:
        return "closed", "rst"
    if code in _UNREACHABLE:
        return "unreachable", "no_route"
    if code in _LOCALLY_FILTERED:
        return "filtered", "local_firewall"
    if code in _TIMED_OUT:
        return "filtered", "no_answer"
    return None, "probe_error"


def icmp_facts(icmp):
    """The ICMP part of an outcome ({type, code, from, family}) from an error-queue entry."""
    if not is_icmp(icmp):
        return None
    return {"type": icmp["type"], "code": icmp["code"], "from": icmp["from"], "family": icmp["family"]}


def describe(state, record, address=None, timeout=None):
    """The plain-words reason of a TCP verdict, made from its outcome record (never the reverse)."""
    reason = record["reason"]
    icmp_text = None
    if record["icmp_type"] is not None:
        icmp_text = icmp_name(record["icmp_family"], record["icmp_type"], record["icmp_code"])
    link = "NDP" if record.get("icmp_family") == "ipv6" or (address and ":" in address) else "ARP"
    tries = ""
    if record["probes"] and record["probes"] > 1:
        tries = " (%d probes, %d answered)" % (record["probes"], record["answers"])
    if reason == "icmp_unreach":
        return "%s from %s (a firewall or router rejects the SYN)%s" % (icmp_text, record["icmp_from"], tries)
    if reason == "icmp_error":
        return "%s from %s (the SYN did not arrive)%s" % (icmp_text, record["icmp_from"], tries)
    if reason == "local_firewall":
        if icmp_text:
            return "%s from this host itself (its own firewall rejects the SYN)" % icmp_text
        return "%s (refused by this host's own firewall)" % record["errno_name"]
    if reason == "no_neighbour":
        if icmp_text:
            return "%s from this host itself (no %s answer: nobody holds the address)" % (icmp_text, link)
        return "no %s answer for %s within %g s (no host has this address)" % (link, address, timeout)
    if reason == "rst":
        return "connection refused (the host answered with RST: nothing listens there)"
    if reason == "no_route":
        return "%s (no route to it)" % record["errno_name"]
    if reason == "no_answer":
        if record["errno"] == errno.ETIMEDOUT:
            return "the kernel gave up the handshake (no answer)%s" % tries
        return "no answer within %g s (SYN dropped on the way or by the target)%s" % (timeout, tries)
    if reason == "reset_after_connect":
        return "connected, then reset by the server at once"
    return "connect failed: %s" % (record["errno_name"] or record["errno"])


def classify_failure(code, icmp, local_address=None):
    """(state, message) of a failed connect: :func:`classify_connect` with its words rendered."""
    state, reason = classify_connect(code, icmp, local_address)
    if state is None:
        return None, None
    return state, describe(state, outcome(reason, "connect", code, icmp_facts(icmp)))


# --- the engine -------------------------------------------------------------------------

# Sockets kept open at once at most, whatever max_workers says: the file-descriptor limit
# minus room for the rest of the process.
FD_RESERVE = 64
_NUMERIC = socket.AI_NUMERICHOST | getattr(socket, "AI_NUMERICSERV", 0)


class _Attempt(object):
    """One target on its way through the engine."""

    __slots__ = ("index", "target", "family", "sockaddr", "facts", "timings", "started", "deadline",
                 "sock", "stage", "outbox", "received", "talk_started", "own_ms")

    def __init__(self, index, target, family, sockaddr, resolve_ms):
        self.index = index
        self.target = target
        self.family = family
        self.sockaddr = sockaddr
        # a literal target's address is the string it already holds: one copy per target, not two
        address = target.host if sockaddr[0] == target.host else sockaddr[0]
        self.facts = {"address": address, "family": "ipv6" if family == socket.AF_INET6 else "ipv4"}
        self.timings = {"resolve_ms": resolve_ms}
        self.started = self.deadline = self.talk_started = self.own_ms = None
        self.sock = None
        self.stage = "queued"
        self.outbox = b""
        self.received = b""


def _dns_outcome(code, verdict_ms):
    """The outcome of a name that did not resolve: the resolver's EAI code, nothing sent."""
    record = outcome("dns", "resolve", probes=0, verdict_ms=verdict_ms)
    record.update(errno=code, errno_name=_EAI_NAMES.get(code))
    return record


def _resolve(target):
    """(family, sockaddr, ms) or the dns_error result."""
    start = time.monotonic()
    try:
        try:
            infos = socket.getaddrinfo(target.host, target.port, FAMILIES[target.family], socket.SOCK_STREAM,
                                       0, _NUMERIC)
        except socket.gaierror:
            infos = socket.getaddrinfo(target.host, target.port, FAMILIES[target.family], socket.SOCK_STREAM)
    except socket.gaierror as exc:
        timings = {"resolve_ms": ms_since(start)}
        timings["total_ms"] = timings["resolve_ms"]
        return _result(target, "dns_error", timings, "name resolution failed: %s" % exc.strerror,
                       outcome=_dns_outcome(exc.errno, timings["total_ms"]))
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr, ms_since(start)


def _resolve_all(targets, timeout):
    """Resolve every target; names (not literals) concurrently, each distinct name once."""
    resolved = [None] * len(targets)
    names = {}
    for index, target in enumerate(targets):
        try:
            infos = socket.getaddrinfo(target.host, target.port, FAMILIES[target.family], socket.SOCK_STREAM, 0,
                                       _NUMERIC)
        except socket.gaierror:
            names.setdefault((target.host, target.family), []).append(index)
            continue
        resolved[index] = (infos[0][0], infos[0][4], 0.0)
    if names:
        keys = list(names)

        def lookup(key):
            return _resolve(targets[names[key][0]])

        def unresolved(key, reason):
            return _result(targets[names[key][0]], "dns_error", {}, "name resolution: %s" % reason,
                           outcome=_dns_outcome(None, None))

        # the stdlib resolver has no timeout of its own: the global deadline bounds it
        answers = run_concurrently(lookup, keys, unresolved, timeout + 5.0, max_workers=32)
        for key, answer in zip(keys, answers):
            for index in names[key]:
                if isinstance(answer, tuple):
                    resolved[index] = (answer[0], (answer[1][0], targets[index].port) + tuple(answer[1][2:]),
                                       answer[2])
                elif answer["state"] == "dns_error" and index != names[key][0]:
                    resolved[index] = _result(targets[index], "dns_error", answer["timings"], answer["error"],
                                              outcome=answer["detail"]["outcome"])
                else:
                    resolved[index] = answer
    return resolved


def _open_limit(wanted):
    """How many sockets may be open at once: ``wanted``, within the process's file limit
    (raised to its hard limit first when that helps)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted + FD_RESERVE and (
                hard == resource.RLIM_INFINITY or hard > soft):
            new_soft = wanted + FD_RESERVE if hard == resource.RLIM_INFINITY else min(hard, wanted + FD_RESERVE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        if soft != resource.RLIM_INFINITY:
            return max(1, min(wanted, soft - FD_RESERVE))
    except (ImportError, ValueError, OSError):
        pass
    return max(1, min(wanted, 1024 - FD_RESERVE))


# --- confirmation: re-probe a silent port of a host that rate-limits its ICMP errors ---------

# How long a Linux host waits between two ICMP errors to one destination once its burst (about 6)
# is spent: net.ipv4.icmp_ratelimit = 1000 ms; net.ipv6.icmp.ratelimit = 100 ms (less for routes
# wider than /128). A re-probe sent that long after the host's last ICMP error finds a token.
RATE_LIMIT_INTERVAL = {"ipv4": 1.0, "ipv6": 0.1}
PACING_MARGIN = 0.02  # the target's jiffies and our timer slack
# Silent re-probes, each sent when a token was surely available, before a port stays filtered.
REPROBES = 2
# How long a re-probe waits for its answer: 4 times the fastest ICMP answer of that host, at least this.
MIN_WINDOW = 0.25
DEFAULT_CONFIRM_BUDGET = 10.0


class IcmpSeen(object):
    """The hosts that answered some flow of this run with an ICMP error: who sent it (the target,
    or a router whose one token bucket then serves every target behind it), when last, and how
    fast (the fastest answer: a slower one may have answered a retransmitted SYN)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._hosts = {}
        self._senders = {}  # sender -> when its last ICMP error came
        self._lock = threading.Lock()

    def saw(self, address, family, rtt, when=None, sender=None):
        when = self.clock() if when is None else when
        address = normal_address(address)
        sender = normal_address(sender) if sender else address
        with self._lock:
            entry = self._hosts.setdefault(address, {"last": when, "rtt": rtt, "family": family_word(family),
                                                     "sender": sender})
            entry["last"] = max(entry["last"], when)
            entry["rtt"] = min(entry["rtt"], rtt)
            entry["sender"] = sender
            self._senders[sender] = max(self._senders.get(sender, when), when)

    def get(self, address):
        """{last, rtt, family, sender} of a target address, or None; ``last`` is its sender's last error."""
        with self._lock:
            entry = self._hosts.get(normal_address(address))
            if entry is None:
                return None
            entry = dict(entry)
            entry["last"] = max(entry["last"], self._senders.get(entry["sender"], entry["last"]))
            return entry


class Flow(object):
    """One address:port whose connect got no answer, on its way through confirmation.

    ``state``/``reason``/``errno``/``icmp`` say what a re-probe got (state None: nothing ever
    answered); ``probes`` counts the first connect too; ``spent`` is seconds of its own re-probes.
    """

    __slots__ = ("address", "family", "sockaddr", "timeout", "probes", "answers", "silent", "spent", "state",
                 "reason", "errno", "icmp", "local_address")

    def __init__(self, address, family, sockaddr, timeout):
        self.address = address
        self.family = family
        self.sockaddr = sockaddr
        self.timeout = timeout
        self.probes, self.answers, self.silent, self.spent = 1, 0, 0, 0.0
        self.state = self.reason = self.errno = self.icmp = self.local_address = None


class _HostQueue(object):
    __slots__ = ("flows", "ready_at", "interval", "window", "in_flight", "sent_at", "deadline")

    def __init__(self, seen, timeout):
        self.flows = []
        self.interval = RATE_LIMIT_INTERVAL[seen["family"]] * 1.05 + PACING_MARGIN
        self.ready_at = seen["last"] + self.interval
        self.window = min(timeout, max(MIN_WINDOW, 4.0 * seen["rtt"]))
        self.in_flight = None
        self.sent_at = self.deadline = None


class Schedule(object):
    """When to re-probe which flow: pure bookkeeping over a clock, no sockets (unit-tested alone).

    One probe in flight per ICMP sender (the target host, or the router that answers for the
    targets behind it: its token bucket is shared by all our flows it answers); the next one goes
    when the sender surely has a token again: ``interval`` after the last ICMP error seen from it,
    at once after a silent probe (silence spends no token). Senders are independent of each
    other. Nothing new starts once ``budget`` seconds have passed.
    """

    def __init__(self, flows, seen, budget, now):
        self.ends = now + max(0.0, budget)
        self.hosts = {}  # ICMP sender -> its queue
        self._keys = {}
        for flow in flows:
            facts = seen.get(flow.address)
            if facts is None or budget <= 0:
                continue  # a host that sent no ICMP error rate-limits nothing of ours: silence is its answer
            key = facts["sender"]
            if key not in self.hosts:
                self.hosts[key] = _HostQueue(facts, flow.timeout)
            self.hosts[key].flows.append(flow)
            self._keys[id(flow)] = key

    def _host(self, flow):
        return self.hosts[self._keys[id(flow)]]

    def due(self, now):
        """The flows to send now (each marked in flight)."""
        sending = []
        for host in self.hosts.values():
            if host.in_flight is None and host.flows and host.ready_at <= now < self.ends:
                flow = host.flows.pop(0)
                host.in_flight, host.sent_at, host.deadline = flow, now, now + host.window
                flow.probes += 1
                sending.append(flow)
        return sending

    def answered(self, flow, now, state, reason, code=None, icmp=None, local_address=None):
        host = self._host(flow)
        flow.spent += now - host.sent_at
        flow.answers += 1
        flow.state, flow.reason, flow.errno, flow.icmp, flow.local_address = state, reason, code, icmp, local_address
        host.in_flight = None
        host.ready_at = now + host.interval  # an ICMP answer spent the token

    def silent(self, flow, now):
        host = self._host(flow)
        flow.spent += now - host.sent_at
        flow.silent += 1
        host.in_flight = None
        host.ready_at = max(host.ready_at, now)
        if flow.silent < REPROBES:
            host.flows.insert(0, flow)

    def sent_at(self, flow):
        return self._host(flow).sent_at

    def expired(self, now):
        return [host.in_flight for host in self.hosts.values() if host.in_flight is not None and host.deadline <= now]

    def next_wake(self):
        """When something is due next (a send or an in-flight deadline); None when all is done."""
        times = []
        for host in self.hosts.values():
            if host.in_flight is not None:
                times.append(host.deadline)
            elif host.flows and host.ready_at < self.ends:
                times.append(host.ready_at)
        return min(times) if times else None


class Confirmer(object):
    """Re-probes (fresh connects, IP_RECVERR on) of the flows that timed out on hosts that answered
    other flows of this run with ICMP errors, paced by :class:`Schedule`. A run where no such
    flow exists opens no socket and waits for nothing."""

    def __init__(self, flows, seen, budget=DEFAULT_CONFIRM_BUDGET, clock=time.monotonic):
        self.flows = flows
        self.seen = seen
        self.budget = budget
        self.clock = clock

    def run(self):
        schedule = Schedule(self.flows, self.seen, self.budget, self.clock())
        if not schedule.hosts:
            return self.flows
        selector = selectors.DefaultSelector()
        sockets = {}
        try:
            while True:
                for flow in schedule.due(self.clock()):
                    self._send(flow, schedule, selector, sockets)
                wake = schedule.next_wake()
                if wake is None:
                    break
                for key, _ in selector.select(max(0.0, wake - self.clock())):
                    flow = key.data
                    sock = sockets.pop(id(flow))
                    selector.unregister(sock)
                    self._answer(flow, sock, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), schedule)
                for flow in schedule.expired(self.clock()):
                    sock = sockets.pop(id(flow))
                    selector.unregister(sock)
                    icmp = read_icmp_error(sock)  # an error that did not abort the handshake
                    if is_icmp(icmp):
                        self._answer(flow, sock, icmp["errno"], schedule, icmp)
                    else:
                        sock.close()
                        schedule.silent(flow, self.clock())
        finally:
            for sock in sockets.values():
                sock.close()
            selector.close()
        return self.flows

    def _send(self, flow, schedule, selector, sockets):
        try:
            sock = socket.socket(flow.family, socket.SOCK_STREAM)
        except OSError:
            schedule.silent(flow, self.clock())
            return
        enable_recverr(sock, flow.family)
        sock.setblocking(False)
        code = sock.connect_ex(flow.sockaddr)
        if code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            sockets[id(flow)] = sock
            selector.register(sock, selectors.EVENT_WRITE, flow)
            return
        self._answer(flow, sock, code, schedule)

    def _answer(self, flow, sock, code, schedule, icmp=None):
        now = self.clock()
        try:
            local = sock.getsockname()[0]
        except OSError:
            local = None
        if icmp is None and code:
            icmp = read_icmp_error(sock)
        sock.close()
        if not code:
            schedule.answered(flow, now, "open", "syn_ack", local_address=local)
            return
        state, reason = classify_connect(code, icmp, local)
        if state is None or reason == "no_answer":
            schedule.silent(flow, now)
            return
        if reason in ("icmp_unreach", "icmp_error"):
            self.seen.saw(flow.address, flow.family, now - schedule.sent_at(flow), now, icmp["from"])
        schedule.answered(flow, now, state, reason, code, icmp, local)


class SharedConfirmation(object):
    """One run's ICMP evidence and re-probe turn, shared by probes that run side by side (net_diagnose's
    TCP ports and URLs): a target's ICMP rate limit is one token bucket whoever spends it, so every
    probe notes the ICMP errors it saw in one :class:`IcmpSeen`, and one confirmation pass runs at a
    time; the next pass paces its re-probes after the last ICMP error the previous one got."""

    def __init__(self):
        self.seen = IcmpSeen()
        self.turn = threading.Lock()


def confirm_flows(flows, seen, budget=DEFAULT_CONFIRM_BUDGET, turn=None):
    """Confirm (or not) every silent flow; returns the flows, each with what came back. ``turn``
    (a lock) makes passes that share ``seen`` take turns."""
    if turn is None:
        return Confirmer(flows, seen, budget).run()
    with turn:
        return Confirmer(flows, seen, budget).run()


class _Engine(object):
    """Non-blocking connects (and banner conversations) for many targets, one thread, epoll."""

    def __init__(self, targets, max_open, neighbours, confirm_budget, shared=None):
        self.targets = targets
        self.shared = shared
        self.max_open = _open_limit(max_open)
        self.neighbours = neighbours
        self.confirm_budget = confirm_budget
        self.results = [None] * len(targets)
        self.selector = selectors.DefaultSelector()
        self.deadlines = []  # heap of (deadline, index)
        self.active = {}
        self.timed_out = []  # attempts whose handshake got no answer: judged at the end
        # which hosts answered some flow of this run with an ICMP error
        self.icmp_seen = shared.seen if shared is not None else IcmpSeen()
        self.matcher = None

    def run(self):
        resolved = _resolve_all(self.targets, max(t.timeout for t in self.targets))
        queue = []
        for index, item in enumerate(resolved):
            if isinstance(item, dict):
                self.results[index] = item
            else:
                queue.append(_Attempt(index, self.targets[index], *item))
        queue.reverse()  # pop() from the end keeps the targets' order
        if any(attempt.target.expect is not None for attempt in queue):
            self.matcher = BoundedMatcher()
            self.matcher.start()  # boots while the handshakes run
        try:
            while queue or self.active:
                while queue and len(self.active) < self.max_open:
                    self._start(queue.pop())
                self._wait()
            self._judge_timeouts()
        finally:
            self.selector.close()
            if self.matcher is not None:
                self.matcher.close()
        return self.results

    # --- stages

    def _start(self, attempt):
        target = attempt.target
        attempt.started = time.monotonic()
        attempt.deadline = attempt.started + target.timeout
        try:
            sock = socket.socket(attempt.family, socket.SOCK_STREAM)
        except OSError as exc:
            self._finish(attempt, "error", "cannot open a socket: %s" % exc,
                         outcome("probe_error", "connect", exc.errno, probes=0))
            return
        attempt.sock = sock
        enable_recverr(sock, attempt.family)
        sock.setblocking(False)
        code = sock.connect_ex(attempt.sockaddr)
        if code in (0, errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            attempt.stage = "connect"
            self.active[attempt.index] = attempt
            self.selector.register(sock, selectors.EVENT_WRITE, attempt)
            heapq.heappush(self.deadlines, (attempt.deadline, attempt.index))
            return
        self._connect_failed(attempt, code)

    def _wait(self):
        now = time.monotonic()
        while self.deadlines and (self.deadlines[0][1] not in self.active
                                  or self.active[self.deadlines[0][1]].deadline != self.deadlines[0][0]):
            heapq.heappop(self.deadlines)  # finished, or re-armed with a later deadline
        timeout = max(0.0, self.deadlines[0][0] - now) if self.deadlines else None
        for key, events in self.selector.select(timeout):
            attempt = key.data
            if attempt.index not in self.active:
                continue
            try:
                if attempt.stage == "connect":
                    self._connected(attempt)
                else:
                    self._converse(attempt, events)
            except Exception as exc:  # a probe bug must not hide the other results
                self._finish(attempt, "error", "probe crashed: %s: %s" % (type(exc).__name__, exc),
                             outcome("probe_error", attempt.stage))
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            _, index = heapq.heappop(self.deadlines)
            attempt = self.active.get(index)
            if attempt is not None and attempt.deadline <= now:
                self._expired(attempt)

    def _connected(self, attempt):
        code = attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._connect_failed(attempt, code)
            return
        target = attempt.target
        attempt.timings["connect_ms"] = ms_since(attempt.started)
        try:
            attempt.facts["local_address"] = attempt.sock.getsockname()[0]
        except OSError:
            pass
        if not (target.send or target.expect):
            self._finish(attempt, "open", None, outcome("syn_ack", "connect"))
            return
        attempt.stage = "talk"
        attempt.talk_started = time.monotonic()
        attempt.deadline = attempt.talk_started + target.timeout
        heapq.heappush(self.deadlines, (attempt.deadline, attempt.index))
        attempt.outbox = target.send.encode("utf-8") if target.send else b""
        events = (selectors.EVENT_WRITE if attempt.outbox else 0) | (selectors.EVENT_READ if target.expect else 0)
        if not events:
            return
        self.selector.modify(attempt.sock, events, attempt)

    def _converse(self, attempt, events):
        target = attempt.target
        try:
            if events & selectors.EVENT_WRITE and attempt.outbox:
                sent = attempt.sock.send(attempt.outbox)
                attempt.outbox = attempt.outbox[sent:]
                if not attempt.outbox:
                    if target.expect is None:
                        self._finish_talk(attempt, None)
                        return
                    self.selector.modify(attempt.sock, selectors.EVENT_READ, attempt)
            if events & selectors.EVENT_READ:
                chunk = attempt.sock.recv(MAX_READ_BYTES - len(attempt.received))
                attempt.received += chunk
                text = attempt.received.decode("utf-8", "replace")
                if chunk and self._search(target.expect, text, attempt.deadline):
                    self._finish_talk(attempt, True)
                elif not chunk or len(attempt.received) >= MAX_READ_BYTES:
                    self._finish_talk(attempt, False)
        except (BlockingIOError, InterruptedError):
            return
        except RegexTimeout as exc:
            self._finish_talk(attempt, False, regex_error=str(exc))
        except OSError as exc:
            self._finish_talk(attempt, False if target.expect else None, conversation_error=exc)

    def _search(self, regex, text, deadline):
        if self.matcher is None:
            self.matcher = BoundedMatcher()
        return self.matcher.search(regex, text, deadline)

    def _expired(self, attempt):
        if attempt.stage == "connect":
            attempt.timings["connect_ms"] = ms_since(attempt.started)
            icmp = read_icmp_error(attempt.sock)
            if is_icmp(icmp):  # an ICMP error that did not abort the handshake (soft error)
                self._connect_failed(attempt, icmp["errno"], icmp)
                return
            self._close(attempt)
            attempt.stage = "timed out"
            attempt.own_ms = ms_since(attempt.started)  # its own time: the judging waits for the others
            self.timed_out.append(attempt)
            return
        self._finish_talk(attempt, False if attempt.target.expect else None)

    # --- verdicts

    def _connect_failed(self, attempt, code, icmp=None):
        attempt.timings["connect_ms"] = ms_since(attempt.started)
        if icmp is None and attempt.sock is not None:
            icmp = read_icmp_error(attempt.sock)
        local = None
        if attempt.sock is not None:
            try:
                local = attempt.sock.getsockname()[0]
            except OSError:
                pass
        if code == errno.ECONNRESET and not is_icmp(icmp):
            # the handshake completed and the server dropped us at once
            self._finish(attempt, "open", "connected, then reset by the server at once",
                         outcome("reset_after_connect", "connect", code),
                         expect_matched=False if attempt.target.expect else None)
            return
        state, reason = classify_connect(code, icmp, local)
        record = outcome(reason, "connect", code, icmp_facts(icmp))
        if reason in ("icmp_unreach", "icmp_error"):
            self.icmp_seen.saw(attempt.facts["address"], attempt.family, attempt.timings["connect_ms"] / 1000.0,
                               sender=icmp["from"])
        if state is None:
            self._finish(attempt, "error", describe("error", record), record)
            return
        self._finish(attempt, state, describe(state, record, attempt.facts["address"], attempt.target.timeout),
                     record)

    def _judge_timeouts(self):
        """Timeouts are judged last, with what the whole run saw. ARP/NDP still unanswered:
        nobody holds the address. A host that answered other flows of this run with ICMP
        errors may have rate-limited this flow's answer: its port is probed again, paced
        (:class:`Confirmer`), and is ``rejected`` only when an ICMP error for THAT flow comes."""
        if not self.timed_out:
            return
        table = self.neighbours()
        unconfirmed = []
        for attempt in self.timed_out:
            address, timeout = attempt.facts["address"], attempt.target.timeout
            state = table.get(normal_address(address))
            if state in ("INCOMPLETE", "FAILED"):
                record = outcome("no_neighbour", "connect", verdict_ms=attempt.own_ms)
                self._finish(attempt, "unreachable", describe("unreachable", record, address, timeout), record,
                             neighbour_state=state)
            else:
                unconfirmed.append(attempt)
        flows = [Flow(attempt.facts["address"], attempt.family, attempt.sockaddr, attempt.target.timeout)
                 for attempt in unconfirmed]
        confirm_flows(flows, self.icmp_seen, self.confirm_budget, self.shared.turn if self.shared else None)
        for attempt, flow in zip(unconfirmed, flows):
            own_ms = attempt.own_ms + flow.spent * 1000.0
            if flow.state is None:  # no answer to any probe
                record = outcome("no_answer", "connect", probes=flow.probes, answers=0, verdict_ms=own_ms)
                self._finish(attempt, "filtered", describe("filtered", record, flow.address, flow.timeout), record)
                continue
            if flow.state == "open":
                attempt.facts["local_address"] = flow.local_address
            record = outcome(flow.reason, "connect", flow.errno, icmp_facts(flow.icmp), probes=flow.probes,
                             answers=flow.answers, verdict_ms=own_ms)
            self._finish(attempt, flow.state, describe(flow.state, record, flow.address, flow.timeout), record)

    def _finish_talk(self, attempt, matched, conversation_error=None, regex_error=None):
        target = attempt.target
        attempt.timings["expect_ms"] = ms_since(attempt.talk_started)
        facts = {"expect_matched": matched}
        if target.expect is not None:
            facts["banner"] = attempt.received.decode("utf-8", "replace")
        error = None
        reason = "syn_ack"
        code = None
        if regex_error:
            facts["regex_timed_out"] = True
            reason = "regex_timeout"
            error = "connected, but %s" % regex_error
        elif conversation_error is not None:
            code = conversation_error.errno
            facts["conversation_error"] = str(conversation_error)
            reason = "conversation_failed"
            error = "connected, but the conversation failed%s: %s" % (
                " before %r was seen" % target.expect.pattern if target.expect else "", conversation_error)
        elif matched is False:
            reason = "banner_mismatch"
            error = "connected, but %r was not seen within %g s" % (target.expect.pattern, target.timeout)
        self._finish(attempt, "open", error, outcome(reason, "conversation", code), **facts)

    def _finish(self, attempt, state, error, record, **facts):
        self._close(attempt)
        own_ms = record["verdict_ms"]
        if own_ms is None:
            own_ms = ms_since(attempt.started) if attempt.started is not None else 0.0
        attempt.timings["total_ms"] = attempt.timings.get("resolve_ms", 0.0) + own_ms
        record["verdict_ms"] = round(attempt.timings["total_ms"], 3)
        merged = dict(attempt.facts)
        merged.update(facts)
        merged["outcome"] = record
        self.results[attempt.index] = _result(attempt.target, state, attempt.timings, error, **merged)

    def _close(self, attempt):
        self.active.pop(attempt.index, None)
        if attempt.sock is None:
            return
        try:
            self.selector.unregister(attempt.sock)
        except (KeyError, ValueError):
            pass
        attempt.sock.close()
        attempt.sock = None


def _kernel_neighbours():
    """{address: kernel neighbour state} for both families (``ip neigh``, or /proc/net/arp)."""
    table = neighbour_table(default_run)
    return {normal_address(address): state for address, state in table.items()}


def check_targets(targets, max_workers=DEFAULT_MAX_SOCKETS, neighbours=_kernel_neighbours,
                  confirm_budget=DEFAULT_CONFIRM_BUDGET, shared=None):
    """Probe every TcpTarget at once; results come back in the targets' order.

    ``max_workers`` bounds the sockets open at the same moment (within the process's file
    limit). Every target's time is bounded by its own timeout (twice with send/expect);
    queued targets start as soon as a socket is free, so each gets its real verdict.
    ``neighbours() -> {address: state}`` reads the kernel's ARP/NDP table for timeouts.
    ``confirm_budget``: seconds the re-probes of silent ports may add to the run (0: none);
    they run only for ports of hosts that answered other ports with ICMP errors.
    ``shared``: a :class:`SharedConfirmation` when other probes of the same run (URLs) spend the
    same targets' ICMP rate limits.
    """
    if not targets:
        return []
    return _Engine(list(targets), max_workers, neighbours, confirm_budget, shared).run()


def check_target(target):
    """Probe one TcpTarget and return the shared result shape."""
    return check_targets([target])[0]


__all__ = ["ACCEPTS", "DEFAULT_CONFIRM_BUDGET", "DEFAULT_TIMEOUT", "FAMILIES", "STATES", "Confirmer", "Flow",
           "IcmpSeen", "Schedule", "SharedConfirmation", "TcpTarget", "check_target", "check_targets", "classify_connect",
           "classify_failure", "confirm_flows", "describe", "parse_extended_err", "parse_targets", "InputError",
           "read_icmp_error", "state_meets"]
