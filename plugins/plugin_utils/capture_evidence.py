# -*- coding: utf-8 -*-
"""Two-point evidence: where a TCP connection attempt was lost, from captures on both ends.

Given the per-flow summaries (packet_capture's ``summary``) of the source A and the
target B of a failing pair, this says which of these happened, the one thing no
single-host tool can tell:

* ``source``       no SYN of this flow on A's wire ("the SYN never left A"): A's own firewall
                   (OUTPUT) or routing;
* ``between``      the SYN left A and never reached B: a firewall, security group or route between;
* ``target``       the SYN reached B and B answered RST: nothing listens on the port;
* ``target_firewall`` the SYN reached B and no answer left B (or B answered with an ICMP
                   error): B's own firewall;
* ``return_path``  B's SYN-ACK (or RST) left B and never reached A: the way back;
* ``source_input`` the SYN-ACK reached A's wire but A never completed the handshake:
                   A's own firewall (INPUT) dropped the answer.

``two_point`` returns ``None`` when either capture is missing or when both ends saw
the handshake complete (the loss, if any, is above TCP).

A capture sees a packet on the wire side of the host's firewall: tcpdump taps
received packets before netfilter's INPUT and sent packets after OUTPUT. That is
what makes "reached B" and "left A" mean what they say.
"""

from __future__ import annotations

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import normal_address, same_address

WHERE = ("source", "between", "target", "target_firewall", "return_path", "source_input")


def _flows(summary):
    """The flows of a summary, given as packet_capture's result, its ``summary``, or the flows list."""
    if summary is None:
        return None
    if isinstance(summary, list):
        return summary
    if isinstance(summary, dict):
        if "flows" in summary:
            return summary["flows"] or []
        if isinstance(summary.get("summary"), dict):
            return summary["summary"].get("flows") or []
    return None


def _sum(flows, side, key):
    return sum(((flow.get(side + "_flags") or {}).get(key) or 0) for flow in flows)


def _icmp_from(flows, address=None):
    errors = []
    for flow in flows:
        for error in flow.get("icmp_errors") or []:
            if address is None or error.get("from") == address:
                errors.append(error)
    return errors


def _matching(flows, port, resp_h=None, orig_h=None):
    return [f for f in flows if f.get("proto") == "tcp" and f.get("resp_p") == port
            and (resp_h is None or f.get("resp_h") == resp_h)
            and (orig_h is None or f.get("orig_h") == orig_h)]


def two_point(source_name, target_name, target_address, port, source_summary, target_summary,
              source_addresses=None):
    """Where the connection attempt from source to target_address:port was lost.

    ``source_addresses``: the addresses the source may have sent from (its inventory address,
    the route's choice). Only flows of this source count: on A, flows to target_address:port
    from those addresses (any, when none is given); on B, flows to the port from the addresses
    A was seen sending from or those given, never another host's flows to the same port.

    Returns {"where": one of WHERE, "sentence": plain words, "facts": the counts it read}
    or None (a capture is missing, or both ends saw the handshake complete)."""
    source_flows, target_flows = _flows(source_summary), _flows(target_summary)
    if source_flows is None or target_flows is None:
        return None
    a, b = source_name, target_name
    given = {normal_address(x) for x in source_addresses or [] if x}
    at_a = [f for f in _matching(source_flows, port, resp_h=None)
            if same_address(f.get("resp_h"), target_address)
            and (not given or normal_address(f.get("orig_h")) in given)]
    senders = given | {normal_address(f["orig_h"]) for f in at_a}
    # on B the flow may carry another destination address (NAT): match the sender and the port
    at_b = [f for f in _matching(target_flows, port) if normal_address(f.get("orig_h")) in senders]
    facts = {
        "syn_left_a": _sum(at_a, "orig", "syn"), "syn_reached_b": _sum(at_b, "orig", "syn"),
        "syn_ack_left_b": _sum(at_b, "resp", "syn_ack"), "syn_ack_reached_a": _sum(at_a, "resp", "syn_ack"),
        "rst_left_b": _sum(at_b, "resp", "rst"), "rst_reached_a": _sum(at_a, "resp", "rst"),
        "ack_left_a": sum(1 for f in at_a if "A" in (f.get("history") or "")),
        "flows_at_a": len(at_a), "flows_at_b": len(at_b),
    }
    where_port = "%s:%s" % (target_address, port)
    icmp_at_a = _icmp_from(at_a)
    icmp_from_b = _icmp_from(at_b) or [e for e in icmp_at_a if same_address(e.get("from"), target_address)]

    if facts["syn_left_a"] == 0:
        # a capture sees sent packets after OUTPUT: no SYN on A's wire means A itself stopped it
        seen_at_b = ""
        if facts["syn_reached_b"]:
            seen_at_b = " (yet %s saw %d SYN(s) from %s's address: was %s's capture running?)" % (
                b, facts["syn_reached_b"], a, a)
        where, sentence = "source", (
            "The SYN never left %s: its capture has no SYN to %s, so %s's own firewall (OUTPUT) or routing "
            "stopped it%s." % (a, where_port, a, seen_at_b))
    elif facts["syn_reached_b"] == 0:
        via = ""
        others = [e for e in icmp_at_a if not same_address(e.get("from"), target_address)]
        if others:
            via = " (%s answered %s)" % (others[0]["from"], others[0]["name"])
        where, sentence = "between", (
            "SYN left %s and never reached %s%s: dropped between them (a firewall, security group, "
            "network ACL or route)." % (a, b, via))
    elif facts["syn_ack_left_b"] == 0 and facts["rst_left_b"] > 0:
        lost = "" if facts["rst_reached_a"] else "; the RST never reached %s" % a
        where, sentence = "target", (
            "SYN reached %s, %s sent RST: nothing listens on port %s%s." % (b, b, port, lost))
    elif facts["syn_ack_left_b"] == 0:
        if icmp_from_b:
            where, sentence = "target_firewall", (
                "SYN reached %s, %s answered %s: %s's own firewall rejects port %s."
                % (b, b, icmp_from_b[0]["name"], b, port))
        else:
            where, sentence = "target_firewall", (
                "SYN reached %s, no answer left %s: %s's own firewall (INPUT) dropped it." % (b, b, b))
    elif facts["syn_ack_reached_a"] == 0:
        where, sentence = "return_path", (
            "SYN-ACK left %s and never reached %s: the return path drops it (asymmetric route, "
            "a stateful firewall or security group on the way back)." % (b, a))
    elif facts["ack_left_a"] == 0:
        where, sentence = "source_input", (
            "SYN-ACK reached %s's wire but %s never answered it: %s's own firewall (INPUT) dropped it."
            % (a, a, a))
    else:
        return None
    return {"where": where, "sentence": sentence, "facts": facts}
