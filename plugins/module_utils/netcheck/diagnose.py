# -*- coding: utf-8 -*-
"""Where does it break? One verdict per target, from every layer's evidence.

Two halves, kept apart so that the verdict can be tested with crafted results:

* :func:`diagnose_targets` runs the EXISTING probes (icmp.ping_targets, tcp.check_targets,
  http.check_urls, neighbour.next_hops) for many targets at once in one invocation, plus an
  active ARP probe (root, IPv4, on-link) to tell a MAC seen on the wire from one only read
  from the kernel's cache.
* :func:`verdict` is a pure function from those layer results to
  ``{first_failing_layer, code, hint, evidence, notes}``.

Layers are independent evidence, not a ladder that stops at the first failure: every probe
runs, and the verdict names the lowest layer whose failure explains what was seen. ICMP
dropped while a TCP port answers is a note (``ICMP_FILTERED``), not a failure, unless the
target's ICMP is expected to answer. A verdict of ``OK`` needs at least one layer checked.

Stdlib only, Python 3.8+ (runs on the managed host).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time

from . import http as http_probe
from . import icmp as icmp_probe
from . import tcp as tcp_probe
from .limits import LIMITS_SPEC, parse_arp_cache_stat, read_ntables
from .neighbour import default_run, next_hops
from .probe import (
    InputError, ms_since, probe_result, read_text, reject_unknown_keys, run_concurrently, target_mappings,
    validate_host, validate_port, validate_regex, validate_timeout,
)
from .spec import select as select_options

KIND = "diagnose"
LAYERS = ("link", "network", "transport", "application")
ICMP_MODES = ("auto", "reachable", "unreachable", "skip")
# what a port may be expected to be; "rejected" is tcp.py's state for an ICMP error answering the SYN
PORT_EXPECTATIONS = ("open", "closed", "filtered", "rejected", "unreachable")
ARP_CACHE_STAT = "/proc/net/stat/arp_cache"
DEFAULT_ARP_TIMEOUT = 0.5

# code -> (layer, hint). The one list of verdict codes; docs/verdict.md documents each one.
CODES = {
    "OK": ("none", "every layer checked answered as expected"),
    "DNS_FAILED": ("network", "the name did not resolve on the source host: fix DNS or use an address"),
    "NO_ROUTE": ("network", "the source host has no route to the address: add a route or fix the subnet"),
    "GATEWAY_UNREACHABLE": ("network", "the gateway of the route does not answer ARP/NDP: the router is down "
                                       "or the route names the wrong gateway"),
    "NEIGHBOUR_FAILED": ("link", "no ARP/NDP answer from the address on-link: the host is down, the address "
                                 "is not assigned, or it is in another subnet"),
    "NEIGHBOUR_TABLE_FULL": ("link", "the source host's neighbour table overflowed (table_fulls rose): no "
                                     "entry could be made; raise net.ipv4.neigh.default.gc_thresh1/2/3"),
    "NEIGHBOUR_MISMATCH": ("link", "the MAC answering ARP on the wire differs from the kernel's cached MAC: "
                                   "a stale entry or a duplicate address"),
    "ICMP_UNREACHABLE": ("network", "an ICMP destination-unreachable came back: a REJECT rule (admin "
                                    "prohibited) or a router without a route"),
    "ICMP_FILTERED": ("network", "echo requests go unanswered: a firewall or security group drops ICMP"),
    "ICMP_ANSWERED": ("network", "the target answers ping although it is expected not to"),
    "PORT_CLOSED": ("transport", "the host answered the SYN with RST: nothing listens on the port"),
    "PORT_FILTERED": ("transport", "the SYN went unanswered: a firewall drops it (or the listener's accept "
                                   "queue is full)"),
    "PORT_REJECTED": ("transport", "the SYN was answered with an ICMP unreachable: a firewall REJECT rule"),
    # set on the controller (plugin_utils/run.py): the target's own listener shows the full queue
    "ACCEPT_QUEUE_FULL": ("transport", "the SYN went unanswered while the target's listener has its accept "
                                       "queue full: the service does not accept connections fast enough"),
    "PORT_OPEN": ("transport", "the port accepts connections although it is expected not to: a firewall "
                               "rule is missing"),
    "PORT_UNREACHABLE": ("transport", "the port was expected to be unreachable but answered otherwise"),
    "TLS_FAILED": ("application", "the TLS handshake or the certificate verification failed"),
    "HTTP_STATUS": ("application", "the network is fine; the application answers a status not expected"),
    "HTTP_TIMEOUT": ("application", "connected, but no HTTP answer in time: the application hangs"),
    "WRONG_SERVICE": ("application", "the port answers, but not as the expected service (banner, header "
                                     "marker or certificate name differ): a proxy, a load balancer or a "
                                     "forward terminated the connection"),
    "PROBE_ERROR": ("none", "a probe could not give a verdict (see evidence)"),
    "NOT_CHECKED": ("none", "no layer was checked, so nothing can be said"),
}

_LAYER_RANK = {"link": 0, "network": 1, "transport": 2, "application": 3, "none": 4}


# --- input -------------------------------------------------------------------------

class DiagnoseTarget(object):
    """One validated target: what to probe and what is expected of it."""

    __slots__ = ("name", "host", "icmp", "ports", "urls", "neighbour", "http_targets")

    def __init__(self, name, host, icmp, ports, urls, neighbour):
        self.name = name
        self.host = host
        self.icmp = icmp
        self.ports = ports  # [{"port", "expected", "timeout", "send", "expect", "name"}]
        self.urls = urls    # raw http.py url dicts, validated
        self.neighbour = neighbour
        self.http_targets = []

    def expected(self):
        """The expectations of this target, as the run model's pair shows them."""
        return {"icmp": self.icmp,
                "ports": {str(p["port"]): p["expected"] for p in self.ports},
                "urls": [u["url"] for u in self.urls]}


# The options a user writes (module_utils/netcheck/spec.py explains the format): net_diagnose's
# argument_spec, its action plugin's group specs and the netcheck role's argument_specs are made
# from these, which reuse the TCP, ICMP, HTTP and limits probes' own options.
DIAGNOSE_PORT_SPEC = dict(
    port=tcp_probe.TCP_TARGET_SPEC["port"],
    expected={"type": "str", "choices": list(PORT_EXPECTATIONS), "default": "open",
              "description": "The state the port must be in (filtered for a port that must stay closed to this host)."},
    timeout=dict(tcp_probe.TCP_TARGET_SPEC["timeout"],
                 description="Seconds for the handshake, and again for expect (default: tcp_timeout)."),
    **select_options(tcp_probe.TCP_TARGET_SPEC, ("send", "expect", "name")))
DIAGNOSE_TARGET_SPEC = {
    "host": {"type": "str", "required": True, "description": "Name or IP address of the target."},
    "name": {"type": "raw", "description": "The label of the target in the result (default: host)."},
    "icmp": {"type": "str", "choices": list(ICMP_MODES), "default": "auto",
             "description": "auto, reachable (must answer), unreachable (must not) or skip (no ping)."},
    "neighbour": {"type": "bool", "default": True, "description": "Read the route and the next hop's ARP/NDP entry."},
    "ports": {"type": "list", "elements": "dict", "options": DIAGNOSE_PORT_SPEC,
              "description": "TCP ports to connect to."},
    "urls": {"type": "list", "elements": "dict", "options": http_probe.HTTP_URL_SPEC,
             "description": "HTTP(S) URLs to fetch, each with http_check's per-URL options."},
}
DIAGNOSE_MODULE_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": DIAGNOSE_TARGET_SPEC,
                "description": "The targets, all checked at once."},
    "tcp_timeout": {"type": "float", "default": tcp_probe.DEFAULT_TIMEOUT,
                    "description": "Default seconds per TCP connection (a filtered port takes this long)."},
    "icmp": {"type": "dict", "default": {}, "description": "How each target is pinged (one round for all targets).",
             "options": select_options(icmp_probe.ICMP_MODULE_SPEC,
                                       ("count", "interval", "timeout", "size", "method"))},
    "http": {"type": "dict", "default": {}, "options": select_options(http_probe.HTTP_REQUEST_SPEC),
             "description": "Defaults for every URL (a URL may override each one)."},
    "arp_probe": {"type": "bool",
                  "description": "Send ARP requests on the wire to on-link IPv4 next hops (unset: as root)."},
    "arp_timeout": {"type": "float", "default": DEFAULT_ARP_TIMEOUT, "description": "Seconds an ARP probe waits."},
    "limits": {"type": "bool", "default": False, "description": "Also return this host's connection limits."},
    "limit_ports": dict(LIMITS_SPEC["ports"],
                        description="With limits, the listening ports whose process, descriptors and queue "
                                    "are returned."),
    "max_workers": {"type": "int", "default": 256, "description": "How many probes of one layer run at once at most."},
}


def parse_targets(raw_targets, defaults=None, field="targets"):
    """Validate every target before anything is sent; InputError names the first bad field.

    ``defaults`` may hold ``tcp_timeout`` and ``http`` (http.py's URL defaults).
    """
    defaults = defaults or {}
    tcp_timeout = validate_timeout(defaults.get("tcp_timeout", tcp_probe.DEFAULT_TIMEOUT), "tcp_timeout")
    targets = []
    for where, raw in target_mappings(raw_targets, field, DIAGNOSE_TARGET_SPEC, shorthand="host",
                                      expected="a mapping with host"):
        host = validate_host(raw.get("host"), where + ".host")
        name = raw.get("name") or host
        if not isinstance(name, str):
            raise InputError("%s.name: must be a string" % where)
        icmp = raw.get("icmp") or "auto"
        if icmp not in ICMP_MODES:
            raise InputError("%s.icmp: %r is not one of %s" % (where, icmp, ", ".join(ICMP_MODES)))
        neighbour = raw.get("neighbour")
        neighbour = True if neighbour is None else neighbour
        if not isinstance(neighbour, bool):
            raise InputError("%s.neighbour: must be true or false" % where)
        ports = _parse_ports(raw.get("ports") or [], where + ".ports", tcp_timeout)
        urls = raw.get("urls") or []
        if not isinstance(urls, (list, tuple)):
            raise InputError("%s.urls: expected a list" % where)
        urls = [{"url": u} if isinstance(u, str) else u for u in urls]
        target = DiagnoseTarget(name, host, icmp, ports, list(urls), neighbour)
        if urls:
            target.http_targets = http_probe.parse_targets(urls, defaults.get("http"), where + ".urls")
        if icmp == "skip" and not ports and not urls:
            # the neighbour entry alone says nothing: it is read after traffic was sent
            raise InputError("%s: nothing to check (icmp skip, no ports, no urls)" % where)
        targets.append(target)
    return targets


def _parse_ports(raw_ports, field, default_timeout):
    if not isinstance(raw_ports, (list, tuple)):
        raise InputError("%s: expected a list of ports" % field)
    ports = []
    for index, raw in enumerate(raw_ports):
        where = "%s[%d]" % (field, index)
        if not isinstance(raw, dict):
            raw = {"port": raw}
        reject_unknown_keys(raw, DIAGNOSE_PORT_SPEC, where)
        spec = {key: raw.get(key) for key in DIAGNOSE_PORT_SPEC}
        spec["expected"] = spec["expected"] or "open"
        if spec["expected"] not in PORT_EXPECTATIONS:
            raise InputError("%s.expected: %r is not one of %s"
                             % (where, spec["expected"], ", ".join(PORT_EXPECTATIONS)))
        validate_port(spec["port"], where + ".port")
        spec["timeout"] = default_timeout if spec["timeout"] is None else validate_timeout(spec["timeout"],
                                                                                           where + ".timeout")
        if spec["send"] is not None and not isinstance(spec["send"], str):
            raise InputError("%s.send: must be a string" % where)
        if spec["expect"] is not None:
            validate_regex(spec["expect"], where + ".expect")
        if spec["name"] is not None and not isinstance(spec["name"], str):
            raise InputError("%s.name: must be a string" % where)
        ports.append(spec)
    return ports


# --- the neighbour layer ------------------------------------------------------------

def read_arp_cache_stat(path=ARP_CACHE_STAT, run=None):
    """{"entries", "table_fulls"} of the IPv4 neighbour table: ``ip ntable`` (any namespace), else /proc."""
    if run is not None:
        tables = read_ntables(run)
        if tables and tables.get("ipv4"):
            return {"entries": tables["ipv4"]["entries"], "table_fulls": tables["ipv4"]["table_fulls"]}
    return parse_arp_cache_stat(read_text(path))


def arp_request_frame(source_mac, source_ip, target_ip):
    """An Ethernet broadcast ARP who-has frame (RFC 826)."""
    header = b"\xff" * 6 + source_mac + struct.pack("!H", 0x0806)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + source_mac + socket.inet_aton(source_ip)
    return header + arp + b"\x00" * 6 + socket.inet_aton(target_ip)


def parse_arp_reply(frame, target_ip):
    """The sender MAC ("aa:bb:..") of an ARP reply from ``target_ip``, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    opcode = struct.unpack("!H", frame[20:22])[0]
    if opcode != 2 or frame[28:32] != socket.inet_aton(target_ip):
        return None
    return ":".join("%02x" % b for b in bytearray(frame[22:28]))


def arp_probe(dev, target_ip, source_ip, timeout=DEFAULT_ARP_TIMEOUT):
    """Ask the wire who has ``target_ip`` (raw AF_PACKET, root): (macs that answered, error).

    Waits for the first answer and a short grace after it, so that two hosts holding the same
    address both show; bounded by ``timeout`` in every case.
    """
    if not hasattr(socket, "AF_PACKET"):
        return None, "no AF_PACKET on this platform"
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    except OSError as exc:
        return None, "raw ARP socket refused: %s" % (exc.strerror or exc)
    macs = []
    try:
        sock.bind((dev, 0x0806))
        source_mac = sock.getsockname()[4][:6]
        sock.send(arp_request_frame(source_mac, source_ip or "0.0.0.0", target_ip))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                break
            mac = parse_arp_reply(sock.recv(2048), target_ip)
            if mac and mac not in macs:
                macs.append(mac)
                deadline = min(deadline, time.monotonic() + 0.05)
    except OSError as exc:
        return None, "ARP probe on %s failed: %s" % (dev, exc.strerror or exc)
    finally:
        sock.close()
    return macs, None


# the kernel's neighbour states (NUD_*) that hold a MAC; detail.kernel_state keeps the kernel's own word
_NEIGHBOUR_OK = ("REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP")
# the neighbour layer's states, words of docs/results.md: the next hop has a MAC, the address is the
# source's own, nobody answers ARP/NDP (no entry, INCOMPLETE or FAILED), or no route at all
NEIGHBOUR_RESULT_STATES = ("reachable", "local", "unreachable", "no_route")


def neighbour_result(address, route, neighbour, wire=None, table=None):
    """The neighbour layer in the shared result shape (kind ``neighbour``).

    ``wire`` is {"macs": [...], "error": str|None} from :func:`arp_probe` (None: not probed);
    ``table`` is {"before": stat, "after": stat} of /proc/net/stat/arp_cache.
    """
    kernel_state = neighbour.get("state")
    if route.get("dev") is None:
        state = "no_route"
    elif kernel_state == "LOCAL":
        state = "local"
    elif kernel_state in _NEIGHBOUR_OK:
        state = "reachable"
    else:
        state = "unreachable"
    wire = wire or {}
    macs = wire.get("macs")
    detail = {
        "address": address, "route": route, "next_hop": neighbour.get("ip"), "via_gateway":
        bool(neighbour.get("via_gateway")), "dev": neighbour.get("dev"), "mac": neighbour.get("mac"),
        "kernel_state": kernel_state, "wire_macs": macs, "wire_error": wire.get("error"),
        "seen_on_wire": None if macs is None else bool(macs) and (neighbour.get("mac") in macs),
        "table_entries": (table or {}).get("after", {}).get("entries") if table and table.get("after") else None,
        "table_fulls_delta": _table_fulls_delta(table),
    }
    ok = state in ("reachable", "local")
    error = None if ok else (neighbour.get("error") or route.get("error")
                             or "neighbour state %s" % (kernel_state or "NONE"))
    return probe_result(detail["next_hop"] or address, "neighbour", state, ok, {}, error, detail)


def _table_fulls_delta(table):
    if not table or not table.get("before") or not table.get("after"):
        return None
    return table["after"]["table_fulls"] - table["before"]["table_fulls"]


# --- the verdict (pure) ------------------------------------------------------------------

class _Findings(object):
    def __init__(self):
        self.failures = []  # (layer, code, evidence lines, hint override)
        self.notes = []

    def fail(self, code, evidence, hint=None, layer=None):
        self.failures.append((layer or CODES[code][0], code, list(evidence), hint or CODES[code][1]))

    def note(self, code, hint=None):
        self.notes.append({"code": code, "hint": hint or CODES[code][1]})


def _icmp_errors(icmp):
    return [e for e in (icmp or {}).get("detail", {}).get("icmp_errors") or [] if e.get("type") is not None]


def _answered_somewhere(layers):
    """Whether the target answered at any layer but ICMP (a SYN answered, an HTTP answer)."""
    for result in layers.get("tcp") or []:
        if result["state"] in ("open", "closed"):
            return True
    for result in layers.get("http") or []:
        if result["state"] == "answered" or (result.get("detail", {}).get("phase") not in (None, "resolve", "connect")):
            return True
    return False


def _expects_an_answer(expected):
    if expected is None:
        return True
    ports = (expected.get("ports") or {}).values()
    if any(e in ("open", "closed", "rejected") for e in ports) or expected.get("urls"):
        return True
    icmp = expected.get("icmp")
    return icmp == "reachable" or (icmp == "auto" and not ports)


def checked_layers(layers):
    """The layers this pair's probes actually exercised, bottom up."""
    seen = set()
    neighbour = layers.get("neighbour")
    if neighbour is not None:
        seen.add("network")  # the route was looked up
        if neighbour["state"] not in ("local", "no_route"):
            seen.add("link")
    if layers.get("icmp") is not None:
        seen.add("network")
    for result in layers.get("tcp") or []:
        if result["state"] != "dns_error":
            seen.add("transport")
        if result["detail"].get("expect_matched") is not None:
            seen.add("application")
    for result in layers.get("http") or []:
        phase = result.get("detail", {}).get("phase")
        if phase != "resolve":
            seen.add("transport")
        if result["state"] == "answered" or phase in ("tls", "request", "processing", "transfer", "redirect"):
            seen.add("application")
    return [layer for layer in LAYERS if layer in seen]


def verdict(layers, expected, resolve_error=None):
    """The verdict of one pair from its layers' results and its expectations.

    ``layers``   {"neighbour": result|None, "icmp": result|None, "tcp": [results], "http": [results]}
    ``expected`` {"icmp": mode, "ports": {"22": "open", ...}, "urls": [...]}
    Returns (ok, checked, verdict dict).
    """
    findings = _Findings()
    checked = checked_layers(layers)
    if resolve_error:
        findings.fail("DNS_FAILED", ["resolve: %s" % resolve_error])
        checked = sorted(set(checked) | {"network"}, key=LAYERS.index)
    neighbour_down = _judge_neighbour(layers.get("neighbour"), expected, findings)
    _judge_icmp(layers, expected, findings, neighbour_down)
    ports = (expected or {}).get("ports") or {}
    for result in layers.get("tcp") or []:
        _judge_port(result, ports.get(str(result["detail"].get("port")), "open"), layers, findings, neighbour_down)
    for result in layers.get("http") or []:
        _judge_http(result, layers, findings, neighbour_down)

    evidence = _evidence(layers)
    if findings.failures:
        ranked = sorted(findings.failures, key=lambda f: _LAYER_RANK[f[0]])
        layer, code, lines, hint = ranked[0]
        # every failure's own facts first, then the rest of the evidence
        lines = [line for failure in ranked for line in failure[2]]
        for other in ranked[1:]:
            if other[1] != code and not any(n["code"] == other[1] for n in findings.notes):
                findings.note(other[1], other[3])
        return False, checked, _verdict(layer, code, hint, _unique(lines + evidence), findings.notes)
    if not checked:
        return False, checked, _verdict("none", "NOT_CHECKED", CODES["NOT_CHECKED"][1], evidence, findings.notes)
    return True, checked, _verdict("none", "OK", CODES["OK"][1], evidence, findings.notes)


def _verdict(layer, code, hint, evidence, notes):
    return {"first_failing_layer": layer, "code": code, "hint": hint, "evidence": evidence, "notes": notes}


def _unique(lines):
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _judge_neighbour(neighbour, expected, findings):
    """Record link/network failures; return True when the next hop is known not to answer."""
    if neighbour is None:
        return False
    detail = neighbour["detail"]
    state = neighbour["state"]
    if state == "no_route":
        findings.fail("NO_ROUTE", ["route: %s" % (detail["route"].get("error") or "no route")])
        return True
    if state == "unreachable":
        if not _expects_an_answer(expected):
            return True
        hop = detail.get("next_hop")
        fact = "neighbour %s on %s: %s, no MAC" % (hop, detail.get("dev"), detail.get("kernel_state") or state)
        if detail.get("table_fulls_delta"):
            findings.fail("NEIGHBOUR_TABLE_FULL", [fact, "arp_cache table_fulls rose by %d during the check "
                                                   "(%s entries)" % (detail["table_fulls_delta"],
                                                                     detail.get("table_entries"))])
        elif detail.get("via_gateway"):
            findings.fail("GATEWAY_UNREACHABLE", [fact + " (the gateway of the route)"])
        else:
            findings.fail("NEIGHBOUR_FAILED", [fact])
        return True
    macs = detail.get("wire_macs")
    if macs and detail.get("mac") and detail["mac"] not in macs:
        findings.fail("NEIGHBOUR_MISMATCH", ["kernel caches %s for %s, the wire answers %s"
                                             % (detail["mac"], detail.get("next_hop"), ", ".join(macs))])
    elif macs and len(macs) > 1:
        findings.fail("NEIGHBOUR_MISMATCH", ["%d MACs answer ARP for %s: %s (a duplicate address)"
                                             % (len(macs), detail.get("next_hop"), ", ".join(macs))])
    return False


def _unreach_fact(error):
    return "ICMP %s (type %s code %s) from %s" % (error.get("message"), error.get("type"), error.get("code"),
                                                  error.get("from"))


def _judge_icmp(layers, expected, findings, neighbour_down):
    icmp = layers.get("icmp")
    if icmp is None:
        return
    mode = (expected or {}).get("icmp", "auto")
    detail = icmp["detail"]
    answered = detail.get("received", 0) > 0
    if mode == "unreachable":
        if answered:
            findings.fail("ICMP_ANSWERED", ["ping: %d of %d echoes answered" % (detail["received"], detail["sent"])])
        return
    if answered:
        if icmp["state"] == "crit":
            findings.fail("ICMP_UNREACHABLE", [icmp["error"] or "ping: crit"], hint="ping answers, but the RTT or "
                          "the loss is past the crit threshold", layer="network")
        return
    if neighbour_down:
        return  # the lower layer explains it
    errors = _icmp_errors(icmp)
    other_answer = _answered_somewhere(layers)
    if errors:
        code, facts = "ICMP_UNREACHABLE", [_unreach_fact(errors[0])]
    else:
        code, facts = "ICMP_FILTERED", ["ping: 0 of %d echoes answered, no ICMP error" % detail.get("sent", 0)]
    if mode == "reachable" or not other_answer and not (layers.get("tcp") or layers.get("http")):
        findings.fail(code, facts)
    else:
        # a firewall that drops or rejects ICMP is not a fault when the service answers
        findings.note(code, CODES[code][1] + " (" + facts[0] + ")")


def _judge_port(result, expected_state, layers, findings, neighbour_down):
    detail = result["detail"]
    state = result["state"]
    label = "tcp %s" % result["target"]
    if state == expected_state:
        if state == "open" and detail.get("expect_matched") is False:
            findings.fail("WRONG_SERVICE", ["%s: open, but %r not seen (banner %r)"
                                            % (label, detail.get("expect"), (detail.get("banner") or "")[:60])])
        elif state == "open" and detail.get("conversation_error"):
            findings.fail("WRONG_SERVICE", ["%s: open, conversation failed: %s"
                                            % (label, detail["conversation_error"])])
        return
    if neighbour_down and state in ("unreachable", "filtered"):
        return  # the neighbour failure explains it
    fact = "%s: %s, expected %s (%s)" % (label, state, expected_state, result.get("error") or state)
    if state == "open":
        findings.fail("PORT_OPEN", [fact])
    elif state == "closed":
        findings.fail("PORT_CLOSED", [fact])
    elif state == "rejected":
        icmp_type, icmp_code = detail.get("icmp_type"), detail.get("icmp_code")
        if icmp_type is not None:
            fact += "; ICMP type %s code %s from %s" % (
                icmp_type, icmp_code, detail.get("icmp_from") or detail.get("icmp_sender") or detail.get("icmp_source") or "?")
        findings.fail("PORT_REJECTED", [fact])
    elif state == "filtered":
        hint = None
        if detail.get("errno") in (errno.EPERM, errno.EACCES):
            hint = "the source host's own firewall refused the SYN (an OUTPUT rule)"
        elif not _answered_somewhere(layers) and not _icmp_answered(layers):
            hint = ("nothing answered at all while the next hop answers ARP: a firewall drops everything, "
                    "or the host is down behind a router")
        findings.fail("PORT_FILTERED", [fact], hint=hint)
    elif state == "unreachable":
        routed = (layers.get("neighbour") or {}).get("state") not in (None, "no_route")
        if detail.get("errno") == errno.ENETUNREACH and not routed:
            findings.fail("NO_ROUTE", [fact])
        elif expected_state in ("filtered", "rejected", "closed"):
            findings.fail("PORT_UNREACHABLE", [fact])
        else:
            # the route exists and the next hop answers ARP: the ICMP unreachable came from a REJECT rule
            findings.fail("PORT_REJECTED", [fact + "; the next hop answers ARP, so an ICMP unreachable "
                                                   "(REJECT rule) answered the SYN"])
    elif state == "dns_error":
        findings.fail("DNS_FAILED", [fact])
    else:
        findings.fail("PROBE_ERROR", [fact])


def _icmp_answered(layers):
    icmp = layers.get("icmp")
    return bool(icmp) and icmp["detail"].get("received", 0) > 0


_NAME_MISMATCH = ("hostname mismatch", "ip address mismatch", "doesn't match", "does not match")


def _judge_http(result, layers, findings, neighbour_down):
    if result["ok"]:
        return
    detail = result.get("detail", {})
    phase = detail.get("phase")
    label = "http %s" % result["target"]
    fact = "%s: %s" % (label, result.get("error"))
    if result["state"] == "answered":
        checks = detail.get("failed_checks") or []
        marker = [c for c in checks if not c.startswith("status ")]
        status = "%s: status %s %s" % (label, detail.get("status"), detail.get("reason") or "")
        if marker:
            findings.fail("WRONG_SERVICE", [status.strip() + "; " + "; ".join(marker)])
        else:
            findings.fail("HTTP_STATUS", [status.strip() + "; " + "; ".join(checks)])
        return
    if phase == "resolve":
        findings.fail("DNS_FAILED", [fact])
    elif phase == "connect":
        if neighbour_down:
            return
        message = (result.get("error") or "").lower()
        if "refused" in message:
            findings.fail("PORT_CLOSED", [fact])
        elif "no answer" in message or "timed out" in message:
            findings.fail("PORT_FILTERED", [fact])
        elif "unreachable" in message or "no route" in message:
            findings.fail("PORT_REJECTED", [fact])
        else:
            findings.fail("PROBE_ERROR", [fact])
    elif phase == "tls":
        verify = ((detail.get("tls") or {}).get("verify_error") or result.get("error") or "").lower()
        if any(words in verify for words in _NAME_MISMATCH):
            tls = detail.get("tls") or {}
            findings.fail("WRONG_SERVICE", [fact, "certificate subject %s, SAN %s"
                                            % (tls.get("subject"), ", ".join(tls.get("san") or []) or "-")])
        else:
            findings.fail("TLS_FAILED", [fact])
    elif phase in ("processing",):
        findings.fail("HTTP_TIMEOUT", [fact])
    elif phase == "transfer":
        if "timeout" in (result.get("error") or ""):
            findings.fail("HTTP_TIMEOUT", [fact])
        else:
            findings.fail("WRONG_SERVICE", [fact + " (not an HTTP answer)"])
    elif phase == "redirect":
        findings.fail("HTTP_STATUS", [fact])
    else:
        findings.fail("PROBE_ERROR", [fact])


def _evidence(layers):
    """One fact per layer that was checked (what a reader needs to trust the verdict)."""
    lines = []
    neighbour = layers.get("neighbour")
    if neighbour is not None:
        d = neighbour["detail"]
        route = d.get("route") or {}
        if neighbour["state"] == "local":
            lines.append("route: local address")
        elif route.get("dev"):
            hop = "via gateway %s" % d.get("next_hop") if d.get("via_gateway") else "on-link"
            wire = ""
            if d.get("wire_macs") is not None:
                wire = ", wire: %s" % (", ".join(d["wire_macs"]) or "no ARP answer")
            lines.append("neighbour: %s dev %s %s %s%s" % (
                hop, route.get("dev"), d.get("mac") or "no MAC", d.get("kernel_state"), wire))
    icmp = layers.get("icmp")
    if icmp is not None:
        d = icmp["detail"]
        text = "icmp: %s/%s echoes answered" % (d.get("received"), d.get("sent"))
        if d.get("rtt_avg_ms") is not None:
            text += ", rtt avg %.3f ms" % d["rtt_avg_ms"]
        errors = _icmp_errors(icmp)
        if errors:
            text += ", " + _unreach_fact(errors[0])
        lines.append(text)
    # a port or URL that failed is already stated by its failure; the others show what answered
    for result in layers.get("tcp") or []:
        if result["ok"]:
            lines.append("tcp %s: %s in %.1f ms" % (result["target"], result["state"],
                                                    result["timings"].get("total_ms", 0.0)))
    for result in layers.get("http") or []:
        if not result["ok"]:
            continue
        d = result.get("detail", {})
        if result["state"] == "answered":
            lines.append("http %s: %s %s" % (result["target"], d.get("status"), d.get("reason") or ""))
        else:
            lines.append("http %s: %s at %s" % (result["target"], result["state"], d.get("phase")))
    return [line.strip() for line in lines]


# --- orchestration -----------------------------------------------------------------

def _resolve(host):
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return None, "name resolution failed: %s" % exc.strerror
    return infos[0][4][0], None


def diagnose_targets(targets, icmp_options=None, run=default_run, arp_probe_enabled=None,
                     arp_timeout=DEFAULT_ARP_TIMEOUT, arp_cache_path=ARP_CACHE_STAT, max_workers=256):
    """Probe every DiagnoseTarget at every layer asked, concurrently; one pair per target.

    ``icmp_options``: count, interval, timeout, size, method (icmp.ping_targets' options).
    ``arp_probe_enabled``: None = when running as root.
    """
    start = time.monotonic()
    icmp_options = dict(icmp_options or {})
    if arp_probe_enabled is None:
        arp_probe_enabled = hasattr(os, "geteuid") and os.geteuid() == 0
    table_before = read_arp_cache_stat(arp_cache_path, run if arp_cache_path == ARP_CACHE_STAT else None)

    resolved = run_concurrently(lambda t: _resolve(t.host), targets, lambda t, reason: (None, reason), 30.0,
                                max_workers)
    addresses = [address for address, _ in resolved]

    # every TCP port and URL of every target, and one ICMP round for all targets
    tcp_items, http_items, ping_items = [], [], []
    for index, target in enumerate(targets):
        address = addresses[index]
        if address is None:
            continue
        for port in target.ports:
            expected = port["expected"] if port["expected"] in tcp_probe.STATES else "open"
            (tcp_target,) = tcp_probe.parse_targets([{
                "host": address, "port": port["port"], "timeout": port["timeout"], "send": port["send"],
                "expect": port["expect"], "expected_state": expected, "name": port["name"] or target.name}],
                port["timeout"])
            tcp_items.append((index, tcp_target))
        for http_target in target.http_targets:
            http_items.append((index, http_target))
        if target.icmp != "skip":
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            ping_items.append((index, icmp_probe.PingTarget(target.host, address, family, target.icmp != "unreachable",
                                                            target.name)))

    outcome = {"tcp": [], "http": [], "icmp": [], "icmp_error": None}

    def run_tcp():
        if tcp_items:
            outcome["tcp"] = tcp_probe.check_targets([t for _, t in tcp_items], max_workers)

    def run_http():
        if http_items:
            outcome["http"] = http_probe.check_urls([t for _, t in http_items], max_workers)

    def run_icmp():
        if not ping_items:
            return
        try:
            results, method, _ = icmp_probe.ping_targets(
                [t for _, t in ping_items], count=icmp_options.get("count", 3),
                interval=icmp_options.get("interval", 0.2), timeout=icmp_options.get("timeout", 1.0),
                size=icmp_options.get("size", 56), method=icmp_options.get("method", "auto"), run=run)
            outcome["icmp"] = results
        except (icmp_probe.MethodUnavailable, InputError, OSError) as exc:
            # the other layers still give their evidence; the pair says ICMP was not checked
            outcome["icmp_error"] = str(exc)

    tcp_thread, http_thread, icmp_thread = threads = [threading.Thread(target=job, daemon=True)
                                                      for job in (run_tcp, run_http, run_icmp)]
    icmp_started = time.monotonic()
    for thread in threads:
        thread.start()
    tcp_thread.join()
    http_thread.join()
    # The neighbour entries are read once traffic was sent to every target (so ARP/NDP has been
    # tried): TCP and HTTP are done and the first echoes had one ICMP interval to be answered
    # (the kernel retries ARP only after a second). ICMP's later echoes overlap the lookups and
    # the ARP wire probes. Two commands for every target together, each address looked up once.
    icmp_thread.join(max(0.0, icmp_started + float(icmp_options.get("interval", 0.2)) - time.monotonic()))
    looked_up = next_hops([address for target, address in zip(targets, addresses)
                           if target.neighbour and address is not None], run)
    hops = [looked_up.get(address) if target.neighbour and address is not None else None
            for target, address in zip(targets, addresses)]
    wire = _wire_probes(hops, arp_probe_enabled, arp_timeout, max_workers)
    icmp_thread.join()
    table_after = read_arp_cache_stat(arp_cache_path, run if arp_cache_path == ARP_CACHE_STAT else None)
    table = {"before": table_before, "after": table_after}

    pairs = []
    for index, target in enumerate(targets):
        layers = {"neighbour": None, "icmp": None,
                  "tcp": [r for (i, _), r in zip(tcp_items, outcome["tcp"]) if i == index],
                  "http": [r for (i, _), r in zip(http_items, outcome["http"]) if i == index]}
        for (i, _), result in zip(ping_items, outcome["icmp"]):
            if i == index:
                layers["icmp"] = result
        if hops[index] is not None:
            route, neighbour = hops[index]
            hop = neighbour.get("ip")
            layers["neighbour"] = neighbour_result(addresses[index], route, neighbour, wire.get(hop), table)
        ok, checked, judged = verdict(layers, target.expected(), resolved[index][1])
        if outcome["icmp_error"] and target.icmp != "skip":
            judged["notes"].append({"code": "PROBE_ERROR", "hint": "ICMP not checked: " + outcome["icmp_error"]})
        total = max([r["timings"].get("total_ms", 0.0) for r in layers["tcp"] + layers["http"]]
                    + [layers["icmp"]["timings"].get("total_ms", 0.0) if layers["icmp"] else 0.0])
        pairs.append({
            "target": target.name, "address": addresses[index], "kind": KIND, "ok": ok, "checked": checked,
            "layers": layers, "verdict": judged, "expected": target.expected(),
            "timings": {"total": round(total, 3)},
        })
    return pairs, {"elapsed_ms": round(ms_since(start), 3), "arp_cache": table,
                   "icmp_error": outcome["icmp_error"]}


def _wire_probes(hops, enabled, timeout, max_workers):
    """One ARP probe per distinct on-link IPv4 next hop: {next hop: {"macs", "error"}}."""
    if not enabled:
        return {}
    wanted = {}
    for hop in hops:
        if hop is None:
            continue
        route, neighbour = hop
        address = neighbour.get("ip")
        if (address and ":" not in address and route.get("dev") and route.get("dev") != "lo"
                and neighbour.get("state") not in ("LOCAL", None)):
            wanted[address] = (route["dev"], route.get("src"))
    items = sorted(wanted.items())

    def probe(item):
        address, (dev, src) = item
        macs, error = arp_probe(dev, address, src, timeout)
        return {"macs": macs, "error": error}

    results = run_concurrently(probe, items, lambda item, reason: {"macs": None, "error": reason},
                               timeout + 5.0, max_workers)
    return {address: result for (address, _), result in zip(items, results)}


def summarize_pairs(pairs):
    """Counts over pairs: total, ok, failed, and how many per verdict code."""
    by_code = {}
    for pair in pairs:
        code = pair["verdict"]["code"]
        by_code[code] = by_code.get(code, 0) + 1
    passed = sum(1 for pair in pairs if pair["ok"])
    return {"total": len(pairs), "ok": passed, "failed": len(pairs) - passed, "by_code": by_code}


__all__ = ["CODES", "DiagnoseTarget", "ICMP_MODES", "KIND", "LAYERS", "PORT_EXPECTATIONS", "arp_probe",
           "arp_request_frame", "checked_layers", "diagnose_targets", "neighbour_result", "parse_arp_cache_stat",
           "parse_arp_reply", "parse_targets", "read_arp_cache_stat", "summarize_pairs", "verdict"]
