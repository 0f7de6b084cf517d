# -*- coding: utf-8 -*-
"""TCP port probe: the ``telnet HOST PORT`` of the project, for many targets at once.

Stdlib only (runs on the remote host). A target's verdict is one of
``open`` (handshake completed), ``closed`` (the host answered RST), ``filtered``
(no answer before the timeout, or refused by the source host's own firewall),
``rejected`` (a firewall answered with an ICMP unreachable: port unreachable,
host/admin prohibited; its type, code and sender are in the detail),
``unreachable`` (no route, or ARP/NDP got no answer: nobody holds the address)
and ``dns_error`` (the name did not resolve). The words follow nmap's: its
``filtered`` covers our ``filtered`` and ``rejected``.

Every target is probed by one non-blocking connect engine (epoll through
``selectors``, as fping and nmap do): all targets start at once, up to a bound on
the sockets open together, so N filtered targets take about one timeout.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import selectors
import socket
import struct
import time

from .neighbour import default_run, neighbour_table
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
    "expected_state": {"type": "str", "choices": list(STATES), "default": "open",
                       "description": "The state this target must have."},
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
}


class TcpTarget(object):
    """One validated target. Build it with :func:`parse_targets`."""

    __slots__ = ("host", "port", "timeout", "send", "expect", "expected_state", "family", "name")

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT, send=None, expect=None,
                 expected_state="open", family="any", name=None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.send = send
        self.expect = expect
        self.expected_state = expected_state
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
    for where, raw in target_mappings(raw_targets, field, TcpTarget.__slots__,
                                      expected="a mapping with host and port"):
        host = validate_host(raw.get("host"), where + ".host")
        port = validate_port(raw.get("port"), where + ".port")
        timeout = raw.get("timeout")
        timeout = default_timeout if timeout is None else validate_timeout(timeout, where + ".timeout")
        expected = raw.get("expected_state") or "open"
        if not isinstance(expected, str) or expected not in STATES:
            raise InputError("%s.expected_state: %r is not one of %s" % (where, expected, ", ".join(STATES)))
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
        "expected_state": target.expected_state,
        "address": None,
        "family": None,
        "errno": None,
        "errno_name": None,
        "icmp_type": None,
        "icmp_code": None,
        "icmp_from": None,
        "icmp_inferred": False,
        "neighbour_state": None,
        "banner": None,
        "expect": target.expect.pattern if target.expect else None,
        "expect_matched": None,
        "conversation_error": None,
        "regex_timed_out": False,
    }
    facts.update(detail)
    ok = state_meets(state, target.expected_state) and facts["expect_matched"] is not False
    if ok:
        error = None
    elif error is None:
        error = "%s, expected %s" % (state, target.expected_state)
    return probe_result(target.label, KIND, state, ok, timings, error, facts)


def state_meets(state, expected):
    """Whether a verdict meets the expected state. ``filtered`` is nmap's word for "a firewall
    stops it", silently or with an ICMP reject, so an expected ``filtered`` accepts ``rejected``."""
    return state == expected or (expected == "filtered" and state == "rejected")


def _errno_facts(code):
    return {"errno": code, "errno_name": errno.errorcode.get(code)}


# --- the ICMP evidence of a failed connect (Linux IP_RECVERR) --------------------------------

# Linux values the stdlib does not export everywhere
IP_RECVERR, IPV6_RECVERR, MSG_ERRQUEUE = 11, 25, 0x2000
SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 1, 2, 3
_SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")  # ee_errno, origin, type, code, pad, info, data

# ICMP destination-unreachable codes that mean "a firewall refused it" (nmap: filtered), by family:
# IPv4 type 3: 2 protocol, 3 port, 9/10 net/host prohibited, 13 communication prohibited;
# ICMPv6 type 1: 1 administratively prohibited, 4 port unreachable, 5 source policy, 6 reject route.
REJECT_CODES = {socket.AF_INET: {2, 3, 9, 10, 13}, socket.AF_INET6: {1, 4, 5, 6}}
UNREACH_TYPE = {socket.AF_INET: 3, socket.AF_INET6: 1}
ICMP_MESSAGES = {
    (socket.AF_INET, 3): {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable",
                          3: "port unreachable", 4: "fragmentation needed", 5: "source route failed",
                          6: "network unknown", 7: "host unknown", 9: "network prohibited",
                          10: "host prohibited", 13: "communication administratively prohibited"},
    (socket.AF_INET6, 1): {0: "no route to destination", 1: "administratively prohibited",
                           2: "beyond scope of source address", 3: "address unreachable",
                           4: "port unreachable", 5: "source address failed policy",
                           6: "reject route to destination"},
}


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


def classify_failure(code, icmp, local_address=None):
    """(state, reason) of a failed connect from its errno and the ICMP error the kernel queued.

    A connect()'s errno alone confuses a firewall's ICMP reject with an RST (port
    unreachable -> ECONNREFUSED), with a missing route (host/admin prohibited ->
    EHOSTUNREACH) or with our own firewall (ICMPv6 admin prohibited -> EACCES); the
    error queue says which it was and who sent it.
    """
    if icmp and icmp["origin"] in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
        family = icmp["family"]
        message = ICMP_MESSAGES.get((family, icmp["type"]), {}).get(icmp["code"])
        if message is None:
            message = "ICMP%s type %d code %d" % ("v6" if family == socket.AF_INET6 else "", icmp["type"],
                                                  icmp["code"])
        own = local_address is not None and _same_address(icmp["from"], local_address)
        if icmp["type"] == UNREACH_TYPE[family] and icmp["code"] in REJECT_CODES[family]:
            if own:
                return "rejected", "%s from this host itself (its own firewall rejects the SYN)" % message
            return "rejected", "%s from %s (a firewall rejects the SYN)" % (message, icmp["from"])
        if own:
            return "unreachable", "%s from this host itself (no %s answer: nobody holds the address)" % (
                message, "NDP" if family == socket.AF_INET6 else "ARP")
        return "unreachable", "%s from %s" % (message, icmp["from"])
    if code in _CLOSED:
        return "closed", "connection refused (the host answered with RST: nothing listens there)"
    if code in _UNREACHABLE:
        return "unreachable", "%s (no route to it)" % errno.errorcode.get(code, code)
    if code in _LOCALLY_FILTERED:
        return "filtered", "%s (refused by this host's own firewall)" % errno.errorcode.get(code, code)
    if code in _TIMED_OUT:
        return "filtered", "the kernel gave up the handshake (no answer)"
    return None, None


def _same_address(one, other):
    try:
        return ipaddress.ip_address(one.split("%")[0]) == ipaddress.ip_address(other.split("%")[0])
    except (AttributeError, ValueError):
        return False


# --- the engine -------------------------------------------------------------------------

# Sockets kept open at once at most, whatever max_workers says: the file-descriptor limit
# minus room for the rest of the process.
FD_RESERVE = 64
_NUMERIC = socket.AI_NUMERICHOST | getattr(socket, "AI_NUMERICSERV", 0)


class _Attempt(object):
    """One target on its way through the engine."""

    __slots__ = ("index", "target", "family", "sockaddr", "facts", "timings", "started", "deadline",
                 "sock", "stage", "outbox", "received", "talk_started")

    def __init__(self, index, target, family, sockaddr, resolve_ms):
        self.index = index
        self.target = target
        self.family = family
        self.sockaddr = sockaddr
        # a literal target's address is the string it already holds: one copy per target, not two
        address = target.host if sockaddr[0] == target.host else sockaddr[0]
        self.facts = {"address": address, "family": "ipv6" if family == socket.AF_INET6 else "ipv4"}
        self.timings = {"resolve_ms": resolve_ms}
        self.started = self.deadline = self.talk_started = None
        self.sock = None
        self.stage = "queued"
        self.outbox = b""
        self.received = b""


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
                       errno=exc.errno, errno_name=_EAI_NAMES.get(exc.errno))
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
            return _result(targets[names[key][0]], "dns_error", {}, "name resolution: %s" % reason)

        # the stdlib resolver has no timeout of its own: the global deadline bounds it
        answers = run_concurrently(lookup, keys, unresolved, timeout + 5.0, max_workers=32)
        for key, answer in zip(keys, answers):
            for index in names[key]:
                if isinstance(answer, tuple):
                    resolved[index] = (answer[0], (answer[1][0], targets[index].port) + tuple(answer[1][2:]),
                                       answer[2])
                elif answer["state"] == "dns_error" and index != names[key][0]:
                    resolved[index] = _result(targets[index], "dns_error", answer["timings"], answer["error"],
                                              errno=answer["detail"]["errno"],
                                              errno_name=answer["detail"]["errno_name"])
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


class _Engine(object):
    """Non-blocking connects (and banner conversations) for many targets, one thread, epoll."""

    def __init__(self, targets, max_open, neighbours):
        self.targets = targets
        self.max_open = _open_limit(max_open)
        self.neighbours = neighbours
        self.results = [None] * len(targets)
        self.selector = selectors.DefaultSelector()
        self.deadlines = []  # heap of (deadline, index)
        self.active = {}
        self.timed_out = []  # attempts whose handshake got no answer: judged at the end
        self.rejected_by = {}  # address -> ICMP evidence of a reject seen in this run
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
            self._finish(attempt, "error", "cannot open a socket: %s" % exc, **_errno_facts(exc.errno))
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
                self._finish(attempt, "error", "probe crashed: %s: %s" % (type(exc).__name__, exc))
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
            self._finish(attempt, "open")
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
            if icmp is not None:  # an ICMP error that did not abort the handshake (soft error)
                self._connect_failed(attempt, icmp["errno"], icmp)
                return
            self._close(attempt)
            attempt.stage = "timed out"
            self.timed_out.append(attempt)
            return
        self._finish_talk(attempt, False if attempt.target.expect else None)

    # --- verdicts

    def _connect_failed(self, attempt, code, icmp=None):
        attempt.timings["connect_ms"] = ms_since(attempt.started)
        facts = _errno_facts(code)
        if icmp is None and attempt.sock is not None:
            icmp = read_icmp_error(attempt.sock)
        local = None
        if attempt.sock is not None:
            try:
                local = attempt.sock.getsockname()[0]
            except OSError:
                pass
        if code == errno.ECONNRESET and icmp is None:
            # the handshake completed and the server dropped us at once
            self._finish(attempt, "open", "connected, then reset by the server at once",
                         expect_matched=False if attempt.target.expect else None, **facts)
            return
        state, reason = classify_failure(code, icmp, local)
        if icmp is not None:
            facts.update(icmp_type=icmp["type"], icmp_code=icmp["code"], icmp_from=icmp["from"])
            if state == "rejected" and not _same_address(icmp["from"], local):
                self.rejected_by.setdefault(attempt.facts["address"], icmp)
        if state is None:
            self._finish(attempt, "error", "connect failed: %s" % (errno.errorcode.get(code, code)), **facts)
            return
        self._finish(attempt, state, reason, **facts)

    def _judge_timeouts(self):
        """Timeouts are judged last, with what the whole run saw: the neighbour table (ARP/NDP
        still unanswered: nobody holds the address) and the ICMP rejects of sibling targets."""
        if not self.timed_out:
            return
        table = self.neighbours()
        for attempt in self.timed_out:
            address, timeout = attempt.facts["address"], attempt.target.timeout
            state = table.get(_normal(address))
            sibling = self.rejected_by.get(address)
            if state in ("INCOMPLETE", "FAILED"):
                self._finish(attempt, "unreachable", "no %s answer for %s within %g s (no host has this address)"
                             % ("NDP" if attempt.family == socket.AF_INET6 else "ARP", address, timeout),
                             neighbour_state=state)
            elif sibling is not None:
                # Hosts rate-limit their ICMP errors (net.ipv4.icmp_ratelimit): of many SYNs to
                # rejected ports only a few get their ICMP answer, the rest look dropped.
                self._finish(attempt, "rejected",
                             "no answer within %g s, but %s rejected other ports with ICMP in this run (%s): "
                             "its ICMP errors are rate-limited, so this SYN was most likely rejected too"
                             % (timeout, address, ICMP_MESSAGES.get((sibling["family"],
                                                                     UNREACH_TYPE[sibling["family"]]), {})
                                .get(sibling["code"], "code %d" % sibling["code"])),
                             icmp_inferred=True, icmp_type=sibling["type"], icmp_code=sibling["code"],
                             icmp_from=sibling["from"])
            else:
                self._finish(attempt, "filtered",
                             "no answer within %g s (SYN dropped on the way or by the target)" % timeout)

    def _finish_talk(self, attempt, matched, conversation_error=None, regex_error=None):
        target = attempt.target
        attempt.timings["expect_ms"] = ms_since(attempt.talk_started)
        facts = {"expect_matched": matched}
        if target.expect is not None:
            facts["banner"] = attempt.received.decode("utf-8", "replace")
        error = None
        if regex_error:
            facts["regex_timed_out"] = True
            error = "connected, but %s" % regex_error
        elif conversation_error is not None:
            facts.update(_errno_facts(conversation_error.errno))
            facts["conversation_error"] = str(conversation_error)
            error = "connected, but the conversation failed%s: %s" % (
                " before %r was seen" % target.expect.pattern if target.expect else "", conversation_error)
        elif matched is False:
            error = "connected, but %r was not seen within %g s" % (target.expect.pattern, target.timeout)
        self._finish(attempt, "open", error, **facts)

    def _finish(self, attempt, state, error=None, **facts):
        self._close(attempt)
        attempt.timings["total_ms"] = attempt.timings.get("resolve_ms", 0.0) + ms_since(attempt.started)
        merged = dict(attempt.facts)
        merged.update(facts)
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


def _normal(address):
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address


def _kernel_neighbours():
    """{address: kernel neighbour state} for both families (``ip neigh``, or /proc/net/arp)."""
    table = neighbour_table(default_run)
    return {_normal(address): state for address, state in table.items()}


def check_targets(targets, max_workers=DEFAULT_MAX_SOCKETS, neighbours=_kernel_neighbours):
    """Probe every TcpTarget at once; results come back in the targets' order.

    ``max_workers`` bounds the sockets open at the same moment (within the process's file
    limit). Every target's time is bounded by its own timeout (twice with send/expect);
    queued targets start as soon as a socket is free, so each gets its real verdict.
    ``neighbours() -> {address: state}`` reads the kernel's ARP/NDP table for timeouts.
    """
    if not targets:
        return []
    return _Engine(list(targets), max_workers, neighbours).run()


def check_target(target):
    """Probe one TcpTarget and return the shared result shape."""
    return check_targets([target])[0]


__all__ = ["DEFAULT_TIMEOUT", "FAMILIES", "STATES", "TcpTarget", "check_target", "check_targets",
           "classify_failure", "parse_extended_err", "parse_targets", "InputError", "read_icmp_error",
           "state_meets"]
