# -*- coding: utf-8 -*-
"""TCP port probe: the ``telnet HOST PORT`` of the project, for many targets at once.

Stdlib only (runs on the remote host). A target's verdict is one of
``open`` (handshake completed), ``closed`` (RST / ECONNREFUSED), ``filtered``
(no answer before the timeout, or refused by the source host's own firewall),
``unreachable`` (EHOSTUNREACH / ENETUNREACH: no route, or ARP got no answer)
and ``dns_error`` (the name did not resolve).
"""

from __future__ import annotations

import errno
import socket
import time

from .neighbour import parse_proc_arp
from .probe import (
    DEFAULT_MAX_WORKERS, InputError, format_hostport, ms_since, probe_result,
    run_concurrently, validate_host, validate_port, validate_regex, validate_timeout,
)

KIND = "tcp"
STATES = ("open", "closed", "filtered", "unreachable", "dns_error")
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
TCP_MODULE_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": TCP_TARGET_SPEC,
                "description": "The endpoints to check, all at once."},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT, "description": "Default per-target timeout in seconds."},
    "max_workers": {"type": "int", "default": DEFAULT_MAX_WORKERS,
                    "description": "How many targets are checked at the same moment at most."},
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
    if not isinstance(raw_targets, (list, tuple)) or not raw_targets:
        raise InputError("%s: give at least one target" % field)
    validate_timeout(default_timeout, "timeout")
    targets = []
    for index, raw in enumerate(raw_targets):
        where = "%s[%d]" % (field, index)
        if not isinstance(raw, dict):
            raise InputError("%s: expected a mapping with host and port, got %r" % (where, raw))
        unknown = set(raw) - set(TcpTarget.__slots__)
        if unknown:
            raise InputError("%s: unknown key(s) %s" % (where, ", ".join(sorted(map(str, unknown)))))
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
        "banner": None,
        "expect": target.expect.pattern if target.expect else None,
        "expect_matched": None,
        "conversation_error": None,
    }
    facts.update(detail)
    ok = state == target.expected_state and facts["expect_matched"] is not False
    if ok:
        error = None
    elif error is None:
        error = "%s, expected %s" % (state, target.expected_state)
    return probe_result(target.label, KIND, state, ok, timings, error, facts)


def _errno_facts(code):
    return {"errno": code, "errno_name": errno.errorcode.get(code)}


def _state_for_errno(code):
    if code in _CLOSED:
        return "closed"
    if code in _UNREACHABLE:
        return "unreachable"
    if code in _LOCALLY_FILTERED or code in _TIMED_OUT:
        return "filtered"
    return None


def _converse(sock, target, deadline):
    """Send ``target.send`` and read until ``target.expect`` matches, EOF or the deadline.

    Returns (text read, matched or None when there was nothing to expect).
    """
    if target.send:
        sock.sendall(target.send.encode("utf-8"))
    if target.expect is None:
        return None, None
    received = b""
    while len(received) < MAX_READ_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(MAX_READ_BYTES - len(received))
        except socket.timeout:
            break
        if not chunk:
            break
        received += chunk
        if target.expect.search(received.decode("utf-8", "replace")):
            return received.decode("utf-8", "replace"), True
    return received.decode("utf-8", "replace"), False


def check_target(target):
    """Probe one TcpTarget and return the shared result shape."""
    start = time.monotonic()
    timings = {}
    try:
        infos = socket.getaddrinfo(target.host, target.port, FAMILIES[target.family], socket.SOCK_STREAM)
    except socket.gaierror as exc:
        timings["resolve_ms"] = timings["total_ms"] = ms_since(start)
        return _result(target, "dns_error", timings, "name resolution failed: %s" % exc.strerror,
                       errno=exc.errno, errno_name=_EAI_NAMES.get(exc.errno))
    timings["resolve_ms"] = ms_since(start)
    family, socktype, proto, _, sockaddr = infos[0]
    facts = {"address": sockaddr[0], "family": "ipv6" if family == socket.AF_INET6 else "ipv4"}

    sock = socket.socket(family, socktype, proto)
    try:
        sock.settimeout(target.timeout)
        connect_start = time.monotonic()
        try:
            sock.connect(sockaddr)
        except socket.timeout:
            timings["connect_ms"] = timings["total_ms"] = ms_since(start)
            if _arp_unanswered(family, sockaddr[0]):
                # on-link and ARP got no answer yet: nobody holds the address, nothing filtered
                return _result(target, "unreachable", timings,
                               "no ARP answer for %s within %g s (no host has this address)"
                               % (sockaddr[0], target.timeout), **facts)
            return _result(target, "filtered", timings,
                           "no answer within %g s (SYN dropped on the way or by the target)" % target.timeout,
                           **facts)
        except OSError as exc:
            timings["connect_ms"] = ms_since(connect_start)
            timings["total_ms"] = ms_since(start)
            facts.update(_errno_facts(exc.errno))
            if exc.errno == errno.ECONNRESET:
                facts["expect_matched"] = False if target.expect else None
                return _result(target, "open", timings, "connected, then reset by the server at once", **facts)
            state = _state_for_errno(exc.errno)
            if state is None:
                return _result(target, "error", timings, "connect failed: %s" % exc, **facts)
            reason = exc.strerror or str(exc)
            if state == "closed":
                reason += " (the host answered with RST: nothing listens there)"
            elif exc.errno in _LOCALLY_FILTERED:
                reason += " (refused by this host's own firewall)"
            return _result(target, state, timings, reason, **facts)
        timings["connect_ms"] = ms_since(connect_start)
        facts["local_address"] = sock.getsockname()[0]
        if target.send or target.expect:
            talk_start = time.monotonic()
            try:
                banner, matched = _converse(sock, target, talk_start + target.timeout)
            except OSError as exc:
                banner, matched = None, False if target.expect else None
                facts.update(_errno_facts(exc.errno))
                facts["conversation_error"] = str(exc)
            timings["expect_ms"] = ms_since(talk_start)
            facts["banner"] = banner
            facts["expect_matched"] = matched
        timings["total_ms"] = ms_since(start)
        error = None
        if facts.get("conversation_error"):
            error = "connected, but the conversation failed%s: %s" % (
                " before %r was seen" % target.expect.pattern if target.expect else "", facts["conversation_error"])
        elif facts.get("expect_matched") is False:
            error = "connected, but %r was not seen within %g s" % (target.expect.pattern, target.timeout)
        return _result(target, "open", timings, error, **facts)
    finally:
        sock.close()


def _arp_unanswered(family, address, path="/proc/net/arp"):
    """Whether the kernel is still waiting for (or gave up on) an ARP answer for an IPv4 address."""
    if family != socket.AF_INET:
        return False
    try:
        with open(path) as handle:
            entry = parse_proc_arp(handle.read(), address)
    except OSError:
        return False
    return bool(entry) and entry["state"] == "INCOMPLETE"


def _unfinished(target, reason):
    return _result(target, "error", {}, reason)


def check_targets(targets, max_workers=DEFAULT_MAX_WORKERS):
    """Probe every TcpTarget concurrently; results come back in the targets' order."""
    # Each probe is bounded by its connect timeout plus its expect timeout; DNS has no
    # timeout of its own in the stdlib, so the global deadline leaves it some room.
    deadline = max(t.timeout for t in targets) * 2 + 5.0
    return run_concurrently(check_target, targets, _unfinished, deadline, max_workers)


__all__ = ["DEFAULT_TIMEOUT", "FAMILIES", "STATES", "TcpTarget", "check_target", "check_targets",
           "parse_targets", "InputError"]
