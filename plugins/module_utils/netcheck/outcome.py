# -*- coding: utf-8 -*-
"""Outcomes as data: the one table of ICMP facts and the closed set of reasons.

Every probe (tcp, http, icmp, neighbour), the verdict (diagnose), the capture evidence and
the EC2 explanation read and write the same fields, never message words:

``outcome`` (in a result's ``detail``)::

    {"reason":     one word of REASONS (why the state is what it is),
     "phase":      where the exchange stopped (resolve, connect, conversation, tls, request,
                   processing, transfer, redirect, echo, neighbour) or None,
     "errno":      int or None, "errno_name": "ECONNREFUSED" ... or None,
     "icmp_type":  int or None, "icmp_code": int or None, "icmp_from": address or None,
     "icmp_family": "ipv4" | "ipv6" | None,
     "probes":     how many attempts were sent for this flow (1 + re-probes),
     "answers":    how many of them got an answer (a SYN-ACK, an RST or an ICMP error),
     "confirmed":  True when the state rests on an answer for THIS flow, False when it rests
                   on silence (no_answer), None when nothing was sent,
     "verdict_ms": this target's own time to its verdict}

Messages are rendered from these fields; code that decides (the verdict, ec2_explain, the
capture evidence) reads the fields. Stdlib only, Python 3.8+.
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import socket

# --- reasons: a closed enum, documented in docs/results.md --------------------------------

REASONS = {
    # transport
    "syn_ack": "the handshake completed",
    "rst": "the host answered the SYN with RST",
    "reset_after_connect": "the handshake completed, then the server reset the connection",
    "icmp_unreach": "an ICMP destination unreachable answered this flow (type/code/sender in the outcome)",
    "no_answer": "no answer for this flow before the timeout, after every probe",
    "local_firewall": "the source host's own firewall refused to send (EPERM/EACCES) or rejected it with ICMP from its own address",
    "no_route": "the source host has no route to the address",
    "no_neighbour": "nobody answered ARP/NDP for the address (or its gateway) on the source's link",
    "dns": "the name did not resolve",
    # application
    "tls_handshake": "the TLS handshake failed",
    "tls_verify": "the certificate did not verify",
    "tls_name": "the certificate does not name the host",
    "http_timeout": "connected, but no (complete) HTTP answer in time",
    "not_http": "the answer is not HTTP",
    "http_answer": "an HTTP answer came back",
    "banner_mismatch": "connected, but the expected text was not seen",
    "conversation_failed": "connected, but the conversation failed",
    "regex_timeout": "the expect pattern did not finish within its deadline",
    # ICMP
    "echo_reply": "echo replies came back",
    "icmp_error": "an ICMP error other than unreachable (time exceeded, parameter problem) answered this flow, or any ICMP error answered the echo requests",
    # neighbour
    "neighbour_answer": "the next hop answered ARP/NDP",
    "local_address": "the address is the source host's own",
    # the probe itself
    "probe_error": "the probe could not finish",
}


def outcome(reason, phase=None, errno=None, icmp=None, probes=1, answers=None, confirmed=None,
            verdict_ms=None):
    """Build the outcome record; ``icmp`` is {"type", "code", "from", "family"} or None."""
    if reason not in REASONS:
        raise ValueError("unknown outcome reason %r" % (reason,))
    icmp = icmp or {}
    family = icmp.get("family")
    if family in (socket.AF_INET, socket.AF_INET6):
        family = "ipv6" if family == socket.AF_INET6 else "ipv4"
    if answers is None:
        answers = 0 if reason in ("no_answer", "no_neighbour", "dns", "local_firewall", "no_route") else probes
    if confirmed is None and probes:
        confirmed = reason != "no_answer"
    return {
        "reason": reason, "phase": phase,
        "errno": errno, "errno_name": _errno.errorcode.get(errno) if errno is not None else None,
        "icmp_type": icmp.get("type"), "icmp_code": icmp.get("code"), "icmp_from": icmp.get("from"),
        "icmp_family": family if icmp.get("type") is not None else None,
        "probes": probes, "answers": answers, "confirmed": confirmed,
        "verdict_ms": None if verdict_ms is None else round(verdict_ms, 3),
    }


# --- ICMP and ICMPv6: the one table of type and code names ---------------------------------

# (family word, type) -> name
ICMP_TYPES = {
    ("ipv4", 0): "echo reply", ("ipv4", 3): "destination unreachable", ("ipv4", 4): "source quench",
    ("ipv4", 5): "redirect", ("ipv4", 8): "echo request", ("ipv4", 11): "time exceeded",
    ("ipv4", 12): "parameter problem",
    ("ipv6", 1): "destination unreachable", ("ipv6", 2): "packet too big", ("ipv6", 3): "time exceeded",
    ("ipv6", 4): "parameter problem", ("ipv6", 128): "echo request", ("ipv6", 129): "echo reply",
}
UNREACH_TYPE = {"ipv4": 3, "ipv6": 1}
TIME_EXCEEDED_TYPE = {"ipv4": 11, "ipv6": 3}
# (family word, type) -> {code: name}
ICMP_CODES = {
    ("ipv4", 3): {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable",
                  3: "port unreachable", 4: "fragmentation needed", 5: "source route failed",
                  6: "destination network unknown", 7: "destination host unknown",
                  8: "source host isolated", 9: "network administratively prohibited",
                  10: "host administratively prohibited", 11: "network unreachable for TOS",
                  12: "host unreachable for TOS", 13: "communication administratively prohibited",
                  14: "host precedence violation", 15: "precedence cutoff"},
    ("ipv4", 11): {0: "TTL exceeded in transit", 1: "fragment reassembly time exceeded"},
    ("ipv6", 1): {0: "no route to destination", 1: "administratively prohibited",
                  2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
                  5: "source address failed policy", 6: "reject route to destination"},
    ("ipv6", 3): {0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"},
}

# The types that quote the packet they answer (the capture attaches them to that flow), and among
# them the errors that mean "this packet did not arrive" (an echo, a SYN).
QUOTING_TYPES = {"ipv4": frozenset({3, 4, 5, 11, 12}), "ipv6": frozenset({1, 2, 3, 4})}
ERROR_TYPES = {"ipv4": frozenset({3, 11, 12}), "ipv6": frozenset({1, 2, 3, 4})}

# The same types and codes as short words (capture summaries: "destination-unreachable/admin-prohibited"):
# a second column of this table, keyed exactly as ICMP_TYPES and ICMP_CODES (a unit test checks).
ICMP_TYPE_WORDS = {
    ("ipv4", 0): "echo-reply", ("ipv4", 3): "destination-unreachable", ("ipv4", 4): "source-quench",
    ("ipv4", 5): "redirect", ("ipv4", 8): "echo-request", ("ipv4", 11): "time-exceeded",
    ("ipv4", 12): "parameter-problem",
    ("ipv6", 1): "destination-unreachable", ("ipv6", 2): "packet-too-big", ("ipv6", 3): "time-exceeded",
    ("ipv6", 4): "parameter-problem", ("ipv6", 128): "echo-request", ("ipv6", 129): "echo-reply",
}
ICMP_CODE_WORDS = {
    ("ipv4", 3): {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable", 3: "port-unreachable",
                  4: "fragmentation-needed", 5: "source-route-failed", 6: "net-unknown", 7: "host-unknown",
                  8: "source-host-isolated", 9: "net-prohibited", 10: "host-prohibited", 11: "net-tos-unreachable",
                  12: "host-tos-unreachable", 13: "admin-prohibited", 14: "host-precedence-violation",
                  15: "precedence-cutoff"},
    ("ipv4", 11): {0: "ttl-exceeded", 1: "reassembly-time-exceeded"},
    ("ipv6", 1): {0: "no-route", 1: "admin-prohibited", 2: "beyond-scope", 3: "address-unreachable",
                  4: "port-unreachable", 5: "failed-policy", 6: "reject-route"},
    ("ipv6", 3): {0: "hop-limit-exceeded", 1: "reassembly-time-exceeded"},
}


def family_word(family):
    """'ipv4' / 'ipv6' from an AF_* constant, 4/6, or the word itself."""
    if family in (socket.AF_INET6, 6, "ipv6"):
        return "ipv6"
    return "ipv4"


def icmp_name(family, icmp_type, icmp_code=None):
    """A readable name: 'port unreachable', 'time exceeded', 'ICMPv6 type 200 code 1'."""
    family = family_word(family)
    codes = ICMP_CODES.get((family, icmp_type))
    if codes is not None and icmp_code in codes:
        return codes[icmp_code]
    name = ICMP_TYPES.get((family, icmp_type))
    if name is not None:
        return name if icmp_code in (None, 0) else "%s (code %s)" % (name, icmp_code)
    return "ICMP%s type %s code %s" % ("v6" if family == "ipv6" else "", icmp_type, icmp_code)


def icmp_word(family, icmp_type, icmp_code):
    """The short words of a type and code: 'destination-unreachable/admin-prohibited', 'time-exceeded/code-7'."""
    family = family_word(family)
    kind = ICMP_TYPE_WORDS.get((family, icmp_type), "type-%s" % icmp_type)
    code = ICMP_CODE_WORDS.get((family, icmp_type), {}).get(icmp_code, "code-%s" % icmp_code)
    return "%s/%s" % (kind, code)


def is_unreachable(family, icmp_type):
    return icmp_type == UNREACH_TYPE[family_word(family)]


def is_fragmentation_needed(family, icmp_type, icmp_code):
    family = family_word(family)
    return (family == "ipv4" and icmp_type == 3 and icmp_code == 4) or (family == "ipv6" and icmp_type == 2)


# --- one address normaliser ------------------------------------------------------------------

def normal_address(address):
    """The canonical text of an address (scope id dropped, IPv6 compressed); other text unchanged."""
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(str(address).split("%", 1)[0]))
    except ValueError:
        return address


def same_address(one, other):
    """Whether two address texts name the same address (False when either is not an address)."""
    try:
        return ipaddress.ip_address(one.split("%")[0]) == ipaddress.ip_address(other.split("%")[0])
    except (AttributeError, ValueError):
        return False


# --- one timeout classifier -------------------------------------------------------------------

TIMEOUT_ERRNOS = frozenset({_errno.ETIMEDOUT, _errno.EAGAIN, _errno.EWOULDBLOCK})


def is_timeout(exc):
    """Whether an exception means "no answer in time" (socket.timeout, ETIMEDOUT ...), by type and errno."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return True
    return isinstance(exc, OSError) and exc.errno in TIMEOUT_ERRNOS


__all__ = ["ERROR_TYPES", "ICMP_CODES", "ICMP_CODE_WORDS", "ICMP_TYPES", "ICMP_TYPE_WORDS", "QUOTING_TYPES", "REASONS",
           "TIME_EXCEEDED_TYPE", "UNREACH_TYPE", "family_word",
           "icmp_name", "icmp_word", "is_fragmentation_needed", "is_timeout", "is_unreachable", "normal_address", "outcome",
           "same_address"]
