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
from . import path as path_probe
from . import tcp as tcp_probe
from .limits import LIMITS_SPEC, conntrack_limits, conntrack_verdict, parse_arp_cache_stat, read_ntables
from .neighbour import default_run, next_hops
from .outcome import icmp_name, outcome
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
    "ICMP_LOSS": ("network", "the target answers ping but loses echoes past the loss threshold: a congested, "
                             "flapping or rate-limiting link"),
    "HIGH_LATENCY": ("network", "the target answers ping, but its average round trip is past the latency "
                                "threshold: a congested or distant link"),
    "PORT_CLOSED": ("transport", "the host answered the SYN with RST: nothing listens on the port"),
    "PORT_FILTERED": ("transport", "the SYN went unanswered: a firewall drops it (or the listener's accept "
                                   "queue is full)"),
    "PORT_REJECTED": ("transport", "the SYN was answered with an ICMP unreachable: a firewall REJECT rule"),
    # set on the controller (plugin_utils/run.py): the target's own listener shows the full queue
    "ACCEPT_QUEUE_FULL": ("transport", "the SYN went unanswered while the target's listener has its accept "
                                       "queue full: the service does not accept connections fast enough"),
    "PORT_OPEN": ("transport", "the port accepts connections although it is expected not to: a firewall "
                               "rule is missing"),
    "PORT_UNREACHABLE": ("transport", "the connection failed on the source's side (unreachable, neither a route "
                                      "nor a neighbour failure) where another state was expected"),
    "TLS_FAILED": ("application", "the TLS handshake or the certificate verification failed"),
    "HTTP_STATUS": ("application", "the network is fine; the application answers a status not expected"),
    "HTTP_TIMEOUT": ("application", "connected, but no HTTP answer in time: the application hangs"),
    "WRONG_SERVICE": ("application", "the port answers, but not as the expected service (banner, header "
                                     "marker or certificate name differ): a proxy, a load balancer or a "
                                     "forward terminated the connection"),
    "PROBE_ERROR": ("none", "a probe could not give a verdict (see evidence)"),
    "NOT_CHECKED": ("none", "no layer was checked, so nothing can be said"),
}
# where on the path (path.py, docs/path.md): DROPPED_AFTER_HOP, REJECTED_AT_HOP, ROUTING_LOOP,
# TTL_EXPIRED, MTU_BLACKHOLE, PMTU_REDUCED (a note), CONNTRACK_FULL; set after the verdict by the
# path probes of failing checks (diagnose_targets' path_options)
CODES.update(path_probe.PATH_CODES)

_LAYER_RANK = {"link": 0, "network": 1, "transport": 2, "application": 3, "none": 4}


# --- input -------------------------------------------------------------------------

class DiagnoseTarget(object):
    """One validated target: what to probe and what is expected of it."""

    __slots__ = ("name", "host", "icmp", "ports", "urls", "neighbour", "http_targets",
                 "icmp_warn", "icmp_crit")

    def __init__(self, name, host, icmp, ports, urls, neighbour, icmp_warn=None, icmp_crit=None):
        self.name = name
        self.host = host
        self.icmp = icmp
        self.ports = ports  # [{"port", "expected", "timeout", "send", "expect", "name"}]
        self.urls = urls    # raw http.py url dicts, validated
        self.neighbour = neighbour
        self.http_targets = []
        self.icmp_warn = icmp_warn if icmp_warn is not None else dict(DEFAULT_ICMP_WARN)
        self.icmp_crit = icmp_crit if icmp_crit is not None else dict(DEFAULT_ICMP_CRIT)

    def expected(self):
        """The expectations of this target, as the run model's pair shows them."""
        return {"icmp": self.icmp,
                "ports": {str(p["port"]): p["expected"] for p in self.ports},
                "urls": [u["url"] for u in self.urls],
                "status_codes": {t.url: list(t.status_codes) for t in self.http_targets},
                "icmp_warn": dict(self.icmp_warn), "icmp_crit": dict(self.icmp_crit)}


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
    "icmp_warn": {"type": "dict", "options": icmp_probe.ICMP_THRESHOLD_SPEC,
                  "description": "This target's ICMP_LOSS/HIGH_LATENCY warning thresholds (each key overrides icmp.warn)."},
    "icmp_crit": {"type": "dict", "options": icmp_probe.ICMP_THRESHOLD_SPEC,
                  "description": "This target's ICMP_LOSS/HIGH_LATENCY failure thresholds (each key overrides icmp.crit)."},
}
DIAGNOSE_MODULE_SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": DIAGNOSE_TARGET_SPEC,
                "description": "The targets, all checked at once."},
    "tcp_timeout": {"type": "float", "default": tcp_probe.DEFAULT_TIMEOUT,
                    "description": "Default seconds per TCP connection (a filtered port takes this long)."},
    "icmp": {"type": "dict", "default": {}, "description": "How each target is pinged (one round for all targets).",
             "options": dict(select_options(icmp_probe.ICMP_MODULE_SPEC,
                                            ("count", "interval", "timeout", "size", "method")),
                             warn={"type": "dict", "options": icmp_probe.ICMP_THRESHOLD_SPEC,
                                   "description": "Loss and average RTT from which a target that answers is "
                                                  "ICMP_LOSS/HIGH_LATENCY as a warning (default loss_pct 20, "
                                                  "rtt_ms 200)."},
                             crit={"type": "dict", "options": icmp_probe.ICMP_THRESHOLD_SPEC,
                                   "description": "Loss and average RTT from which it is a failure (default "
                                                  "loss_pct 50, rtt_ms 500)."})},
    "http": {"type": "dict", "default": {}, "options": select_options(http_probe.HTTP_REQUEST_SPEC),
             "description": "Defaults for every URL (a URL may override each one)."},
    "arp_probe": {"type": "bool",
                  "description": "Ask the wire who has each on-link next hop: ARP (IPv4), NDP (IPv6); unset: as root."},
    "arp_timeout": {"type": "float", "default": DEFAULT_ARP_TIMEOUT, "description": "Seconds an ARP or NDP probe waits."},
    "fail_on_warn": {"type": "bool", "default": False,
                     "description": "A check at warning severity (ICMP_LOSS, HIGH_LATENCY past warn) fails its pair too."},
    "limits": {"type": "bool", "default": False, "description": "Also return this host's connection limits."},
    "limit_ports": dict(LIMITS_SPEC["ports"],
                        description="With limits, the listening ports whose process, descriptors and queue "
                                    "are returned."),
    "max_workers": {"type": "int", "default": 256, "description": "How many probes of one layer run at once at most."},
    "confirm_budget": dict(tcp_probe.TCP_MODULE_SPEC["confirm_budget"],
                           description="Seconds the paced re-probes of silent ports and URLs may add to the run "
                                       "(0: none; port_check's confirmation)."),
    "path": {"type": "dict", "default": {}, "options": path_probe.PATH_OPTIONS_SPEC,
             "description": "Where on the path: trace the flows of failing checks, path MTU, conntrack (docs/path.md)."},
}


def parse_targets(raw_targets, defaults=None, field="targets"):
    """Validate every target before anything is sent; InputError names the first bad field.

    ``defaults`` may hold ``tcp_timeout``, ``http`` (http.py's URL defaults) and ``icmp_warn`` /
    ``icmp_crit`` (the run's thresholds; a target's own keys override them one by one).
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
        warn = thresholds(icmp_probe.validate_thresholds(defaults.get("icmp_warn"), "icmp.warn"),
                          icmp_probe.validate_thresholds(raw.get("icmp_warn"), where + ".icmp_warn"), DEFAULT_ICMP_WARN)
        crit = thresholds(icmp_probe.validate_thresholds(defaults.get("icmp_crit"), "icmp.crit"),
                          icmp_probe.validate_thresholds(raw.get("icmp_crit"), where + ".icmp_crit"), DEFAULT_ICMP_CRIT)
        target = DiagnoseTarget(name, host, icmp, ports, list(urls), neighbour, warn, crit)
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


def _collect_answers(sock, parse, timeout):
    """The MACs ``parse`` finds in what ``sock`` receives: waits for the first answer and a short grace
    after it (so that two hosts holding the same address both show); bounded by ``timeout``."""
    macs = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        mac = parse(sock.recv(2048))
        if mac and mac not in macs:
            macs.append(mac)
            deadline = min(deadline, time.monotonic() + 0.05)
    return macs


def arp_probe(dev, target_ip, source_ip, timeout=DEFAULT_ARP_TIMEOUT):
    """Ask the wire who has ``target_ip`` (raw AF_PACKET, root): (macs that answered, error), bounded by
    ``timeout`` (:func:`_collect_answers`)."""
    if not hasattr(socket, "AF_PACKET"):
        return None, "no AF_PACKET on this platform"
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    except OSError as exc:
        return None, "raw ARP socket refused: %s" % (exc.strerror or exc)
    try:
        sock.bind((dev, 0x0806))
        source_mac = sock.getsockname()[4][:6]
        sock.send(arp_request_frame(source_mac, source_ip or "0.0.0.0", target_ip))
        macs = _collect_answers(sock, lambda frame: parse_arp_reply(frame, target_ip), timeout)
    except OSError as exc:
        return None, "ARP probe on %s failed: %s" % (dev, exc.strerror or exc)
    finally:
        sock.close()
    return macs, None


# --- NDP on the wire (IPv6): a Neighbour Solicitation, as ndisc6 sends it --------------------

ND_SOLICIT, ND_ADVERT = 135, 136
_ND_SOURCE_LLADDR, _ND_TARGET_LLADDR = 1, 2


def solicited_node(address):
    """The solicited-node multicast address of an IPv6 address (RFC 4291): ff02::1:ffXX:XXXX."""
    packed = socket.inet_pton(socket.AF_INET6, address)
    return socket.inet_ntop(socket.AF_INET6, b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + packed[13:])


def neighbour_solicitation(target_ip, source_mac):
    """An ICMPv6 Neighbour Solicitation for ``target_ip`` with our MAC as source link-layer option
    (the checksum is left 0: the kernel fills it in for raw ICMPv6 sockets)."""
    return (struct.pack("!BBHI", ND_SOLICIT, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, target_ip)
            + struct.pack("!BB", _ND_SOURCE_LLADDR, 1) + source_mac)


def parse_neighbour_advert(message, target_ip):
    """The target link-layer address ("aa:bb:..") of a Neighbour Advertisement for ``target_ip``,
    "" when it carries none, or None when the message is something else."""
    if len(message) < 24 or message[0] != ND_ADVERT:
        return None
    if message[8:24] != socket.inet_pton(socket.AF_INET6, target_ip):
        return None
    options = message[24:]
    while len(options) >= 8:
        kind, length = options[0], options[1] * 8
        if length == 0:
            break
        if kind == _ND_TARGET_LLADDR and length >= 8:
            return ":".join("%02x" % b for b in bytearray(options[2:8]))
        options = options[length:]
    return ""


def _device_mac(dev):
    text = read_text("/sys/class/net/%s/address" % dev) or ""
    try:
        return bytes(bytearray(int(part, 16) for part in text.strip().split(":")))
    except ValueError:
        return b""


def ndp_probe(dev, target_ip, timeout=DEFAULT_ARP_TIMEOUT):
    """Ask the wire who has ``target_ip`` (ICMPv6 NS to its solicited-node group, raw socket, root):
    (macs that answered, error); bounded by ``timeout`` like :func:`arp_probe`."""
    target_ip = target_ip.split("%")[0]
    try:
        index = socket.if_nametoindex(dev)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    except OSError as exc:
        return None, "raw ICMPv6 socket refused: %s" % (exc.strerror or exc)
    try:
        # NDP messages must carry hop limit 255 (RFC 4861), or the target ignores them
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        mac = _device_mac(dev)
        if len(mac) != 6:
            return None, "no MAC for %s" % dev
        sock.sendto(neighbour_solicitation(target_ip, mac), (solicited_node(target_ip), 0, 0, index))
        macs = _collect_answers(sock, lambda packet: parse_neighbour_advert(packet, target_ip), timeout)
    except OSError as exc:
        return None, "NDP probe on %s failed: %s" % (dev, exc.strerror or exc)
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

    ``wire`` is {"macs": [...], "error": str|None} from :func:`arp_probe` / :func:`ndp_probe` (None: not probed);
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
    detail["outcome"] = _neighbour_outcome(state, macs, wire.get("error"))
    ok = state in ("reachable", "local")
    error = None if ok else (neighbour.get("error") or route.get("error")
                             or "neighbour state %s" % (kernel_state or "NONE"))
    return probe_result(detail["next_hop"] or address, "neighbour", state, ok, {}, error, detail)


def _neighbour_outcome(state, wire_macs, wire_error):
    """The neighbour layer's outcome: probes/answers count the ARP/NDP request on the wire (0 probes:
    the state rests on the kernel's cache alone, confirmed None)."""
    probed = wire_macs is not None and not wire_error
    probes = 1 if probed else 0
    if state == "no_route":
        return outcome("no_route", "neighbour", probes=0)
    if state == "local":
        return outcome("local_address", "neighbour", probes=0)
    if probed and not wire_macs:
        return outcome("no_neighbour", "neighbour", probes=1, answers=0, confirmed=False)
    if state == "unreachable":
        return outcome("no_neighbour", "neighbour", probes=probes, answers=0)
    return outcome("neighbour_answer", "neighbour", probes=probes, answers=1 if wire_macs else 0,
                   confirmed=True if probed else None)


def _table_fulls_delta(table):
    if not table or not table.get("before") or not table.get("after"):
        return None
    return table["after"]["table_fulls"] - table["before"]["table_fulls"]


# --- the verdict (pure) ------------------------------------------------------------------
#
# One verdict per check: the route/neighbour, the ICMP echo, each TCP port, each URL. Each check
# is judged from its own result's fields (state, detail.outcome: reason, phase, ICMP type/code/
# sender) and the target's expectations, never from message words. The pair's verdict is its
# lowest failing check; every other failing check still counts (failed_checks) and shows.

SEVERITIES = ("ok", "warn", "fail")
# check_icmp's idea (rta/pl): a target that answers but loses echoes or answers slowly is degraded
DEFAULT_ICMP_WARN = {"loss_pct": 20.0, "rtt_ms": 200.0}
DEFAULT_ICMP_CRIT = {"loss_pct": 50.0, "rtt_ms": 500.0}
THRESHOLD_KEYS = ("loss_pct", "rtt_ms")
_LAYER_OF_KIND = {"resolve": "network", "neighbour": "link", "icmp": "network", "tcp": "transport",
                  "http": "application"}
# outcome reasons that mean the target (or a router for the flow) answered something
_ANSWER_REASONS = ("syn_ack", "rst", "reset_after_connect", "icmp_unreach", "icmp_error", "tls_handshake", "tls_verify",
                   "tls_name", "http_timeout", "not_http", "http_answer", "banner_mismatch",
                   "conversation_failed", "regex_timeout")


def outcome_of(result):
    """The structured outcome of a probe result (``detail.outcome``), or None for a probe without one."""
    if not result:
        return None
    found = (result.get("detail") or {}).get("outcome")
    return found if isinstance(found, dict) else None


def _reason(result):
    return (outcome_of(result) or {}).get("reason")


def _errno(result):
    found = (outcome_of(result) or {}).get("errno")
    return found if found is not None else (result.get("detail") or {}).get("errno")


def check_name(kind, result=None):
    """``neighbour``, ``icmp``, ``tcp/22``, ``http <url>``, ``resolve``: how a check is named everywhere."""
    if kind == "tcp":
        return "tcp/%s" % (result.get("detail") or {}).get("port")
    if kind == "http":
        return "http %s" % result.get("target")
    return kind


class _Check(object):
    """The verdict of one check while it is being judged."""

    def __init__(self, kind, name, result):
        self.kind, self.name, self.result = kind, name, result
        self.code, self.severity, self.hint, self.layer = "OK", "ok", None, _LAYER_OF_KIND[kind]
        self.evidence = []

    def fail(self, code, evidence, hint=None, severity="fail"):
        self.code, self.severity = code, severity
        self.layer = CODES[code][0] if CODES[code][0] != "none" else _LAYER_OF_KIND[self.kind]
        self.hint = hint or CODES[code][1]
        self.evidence = list(evidence)

    def note(self, code, evidence, hint=None):
        """Something seen that is not a fault for this target (ICMP dropped while the service answers)."""
        self.code, self.severity, self.hint, self.evidence = code, "ok", hint or CODES[code][1], list(evidence)

    def passed(self, evidence):
        self.evidence = list(evidence)

    def record(self, fail_on_warn=False):
        ok = self.severity == "ok" or (self.severity == "warn" and not fail_on_warn)
        return {"check": self.name, "layer": self.layer, "ok": ok, "severity": self.severity, "code": self.code,
                "hint": self.hint or ("as expected" if self.code == "OK" else CODES[self.code][1]),
                "evidence": self.evidence, "outcome": outcome_of(self.result)}


def _icmp_errors(icmp):
    return [e for e in (icmp or {}).get("detail", {}).get("icmp_errors") or [] if e.get("type") is not None]


def _tcp_answered(result):
    if result["state"] in ("open", "closed"):
        return True
    reason = _reason(result)
    return reason in _ANSWER_REASONS if reason else result["state"] == "rejected"


def _http_answered(result):
    reason = _reason(result)
    if reason:
        return reason in _ANSWER_REASONS
    detail = result.get("detail") or {}
    return result["state"] == "answered" or detail.get("phase") not in (None, "resolve", "connect")


def _answered_somewhere(layers):
    """Whether the target answered at any layer but ICMP (a SYN answered, an HTTP answer)."""
    return (any(_tcp_answered(r) for r in layers.get("tcp") or [])
            or any(_http_answered(r) for r in layers.get("http") or []))


def _icmp_answered(layers):
    icmp = layers.get("icmp")
    return bool(icmp) and (icmp["detail"].get("received", 0) > 0 or bool(_icmp_errors(icmp)))


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


def thresholds(run_values=None, target_values=None, default=None):
    """The loss/latency thresholds of one target: the run's, each key overridden by the target's."""
    merged = dict(default or {})
    merged.update({k: v for k, v in (run_values or {}).items() if k in THRESHOLD_KEYS and v is not None})
    merged.update({k: v for k, v in (target_values or {}).items() if k in THRESHOLD_KEYS and v is not None})
    return {k: merged.get(k) for k in THRESHOLD_KEYS}


def verdict(layers, expected, resolve_error=None, fail_on_warn=False):
    """The verdict of one pair from its layers' results and its expectations.

    ``layers``   {"neighbour": result|None, "icmp": result|None, "tcp": [results], "http": [results]}
    ``expected`` {"icmp": mode, "ports": {"22": "open", ...}, "urls": [...], "status_codes": {url: [..]},
                  "icmp_warn": {loss_pct, rtt_ms}, "icmp_crit": {...}}
    Returns (ok, checked, verdict dict); the verdict holds ``checks``, one per check.
    """
    expected = expected or {}
    checked = checked_layers(layers)
    judged = []
    if resolve_error:
        check = _Check("resolve", "resolve", None)
        check.fail("DNS_FAILED", ["resolve: %s" % resolve_error])
        judged.append(check)
        checked = sorted(set(checked) | {"network"}, key=LAYERS.index)
    down = None
    if layers.get("neighbour") is not None:
        check = _Check("neighbour", "neighbour", layers["neighbour"])
        down = _judge_neighbour(check, layers, expected)
        judged.append(check)
    if layers.get("icmp") is not None:
        check = _Check("icmp", "icmp", layers["icmp"])
        _judge_icmp(check, layers, expected, down)
        judged.append(check)
    ports = expected.get("ports") or {}
    for result in layers.get("tcp") or []:
        check = _Check("tcp", check_name("tcp", result), result)
        _judge_port(check, ports.get(str(result["detail"].get("port")), "open"), layers, down)
        judged.append(check)
    for result in layers.get("http") or []:
        check = _Check("http", check_name("http", result), result)
        _judge_http(check, (expected.get("status_codes") or {}).get(result["target"]), down)
        judged.append(check)

    checks = [c.record(fail_on_warn) for c in judged]
    notes = [{"code": c["code"], "hint": c["hint"]} for c in checks if c["ok"] and c["code"] != "OK"]
    failing = sorted([c for c in checks if not c["ok"]], key=lambda c: _LAYER_RANK[c["layer"]])
    warned = [c for c in checks if c["severity"] == "warn"]
    evidence = _evidence(layers)
    if failing:
        first = failing[0]
        # every failing check's own facts first (the lowest first), then what answered
        lines = [line for c in failing for line in c["evidence"]]
        for other in failing[1:]:
            if other["code"] != first["code"] and not any(n["code"] == other["code"] for n in notes):
                notes.append({"code": other["code"], "hint": "%s: %s" % (other["check"], other["hint"])})
        result = _verdict(first["layer"], first["code"], first["hint"], path_probe.unique_lines(lines + evidence), notes)
        ok = False
    elif not checked:
        result, ok = _verdict("none", "NOT_CHECKED", CODES["NOT_CHECKED"][1], evidence, notes), False
    else:
        result, ok = _verdict("none", "OK", CODES["OK"][1], evidence, notes), True
        if warned:
            # the run passes; the pair still says what is degraded
            result["evidence"] = path_probe.unique_lines([line for c in warned for line in c["evidence"]] + evidence)
    result.update(failed_checks=len(failing), warned_checks=len(warned), checks=checks)
    return ok, checked, result


def _verdict(layer, code, hint, evidence, notes):
    # hop: where on the path the flow died, set by the path probes (path.resummarize), else None
    return {"first_failing_layer": layer, "code": code, "hint": hint, "evidence": evidence, "notes": notes,
            "hop": None}


def _neighbour_fact(detail, state):
    route = detail.get("route") or {}
    hop = "via gateway %s" % detail.get("next_hop") if detail.get("via_gateway") else "on-link"
    wire = ""
    if detail.get("wire_macs") is not None:
        wire = ", wire: %s" % (", ".join(detail["wire_macs"]) or "no %s answer" % _protocol(detail))
    elif detail.get("wire_error"):
        wire = ", wire: not probed (%s)" % detail["wire_error"]
    return "neighbour %s: %s dev %s %s %s%s" % (detail.get("next_hop"), hop, route.get("dev") or detail.get("dev"),
                                                detail.get("mac") or "no MAC", detail.get("kernel_state") or state,
                                                wire)


def _protocol(detail):
    return "NDP" if ":" in str(detail.get("next_hop") or "") else "ARP"


def _wire_silent(detail):
    """An ARP request (NDP solicitation) went out on the wire for this next hop and nothing answered it."""
    return detail.get("wire_macs") == [] and not detail.get("wire_error")


def _neighbour_failure(check, detail, fact):
    if detail.get("table_fulls_delta"):
        check.fail("NEIGHBOUR_TABLE_FULL", [fact, "arp_cache table_fulls rose by %d during the check (%s entries)"
                                            % (detail["table_fulls_delta"], detail.get("table_entries"))])
    elif detail.get("via_gateway"):
        check.fail("GATEWAY_UNREACHABLE", [fact + " (the gateway of the route)"])
    else:
        check.fail("NEIGHBOUR_FAILED", [fact])


def _judge_neighbour(check, layers, expected):
    """Judge the route and next hop; return the failing neighbour check when the next hop is known
    not to answer (the checks above it are explained by it), else None."""
    neighbour = layers["neighbour"]
    detail = neighbour["detail"]
    state = neighbour["state"]
    fact = _neighbour_fact(detail, state)
    if state == "no_route":
        check.fail("NO_ROUTE", ["route: %s" % ((detail.get("route") or {}).get("error") or "no route")])
        return check
    if state == "local":
        check.passed(["route: local address"])
        return None
    if state == "unreachable":
        if not _expects_an_answer(expected):
            check.passed([fact + " (no answer expected)"])
            return check
        _neighbour_failure(check, detail, fact)
        return check
    macs = detail.get("wire_macs")
    if macs and detail.get("mac") and detail["mac"] not in macs:
        check.fail("NEIGHBOUR_MISMATCH", ["kernel caches %s for %s, the wire answers %s"
                                          % (detail["mac"], detail.get("next_hop"), ", ".join(macs))])
        return None
    if macs and len(macs) > 1:
        check.fail("NEIGHBOUR_MISMATCH", ["%d MACs answer ARP for %s: %s (a duplicate address)"
                                          % (len(macs), detail.get("next_hop"), ", ".join(macs))])
        return None
    if _wire_silent(detail):
        if _answered_somewhere(layers) or _icmp_answered(layers):
            check.passed([fact + " (the target answered at another layer)"])
            return None
        # the kernel's cache keeps a host that went down REACHABLE for a while: only the wire tells
        stale = fact + "; the kernel's %s entry is stale: nothing answered %s on the wire" % (
            detail.get("kernel_state"), _protocol(detail))
        if not _expects_an_answer(expected):
            check.passed([stale + " (no answer expected)"])
            return check
        _neighbour_failure(check, detail, stale)
        return check
    check.passed([fact])
    return None


def _explained_by(check, down, fact):
    """A check that got no answer because the next hop does not answer: the neighbour's code."""
    if down.severity == "ok":
        check.passed([fact + " (the next hop does not answer, and no answer is expected)"])
        return
    check.fail(down.code, [fact, "%s: %s" % (down.name, down.code)],
               hint="%s (this check got no answer because of it)" % CODES[down.code][1])


def _unreach_fact(error):
    return "ICMP %s (type %s code %s) from %s" % (error.get("message") or icmp_name(
        error.get("family") or "ipv4", error.get("type"), error.get("code")), error.get("type"), error.get("code"),
        error.get("from"))


def _threshold_level(value, warn, crit, key):
    if value is None:
        return None
    if crit.get(key) is not None and value >= crit[key]:
        return "fail"
    if warn.get(key) is not None and value >= warn[key]:
        return "warn"
    return None


def _limit(value, unit):
    return "-" if value is None else "%g%s" % (value, unit)


def _judge_icmp(check, layers, expected, down):
    icmp = layers["icmp"]
    mode = expected.get("icmp", "auto")
    detail = icmp["detail"]
    received, sent = detail.get("received", 0), detail.get("sent", 0)
    fact = "icmp: %s/%s echoes answered" % (received, sent)
    if detail.get("rtt_avg_ms") is not None:
        fact += ", loss %g%%, rtt avg %.3f ms" % (detail.get("loss_pct") or 0.0, detail["rtt_avg_ms"])
    if mode == "unreachable":
        if received:
            check.fail("ICMP_ANSWERED", ["ping: %d of %d echoes answered" % (received, sent)])
        else:
            check.passed([fact + " (none expected)"])
        return
    if received:
        warn = expected.get("icmp_warn") or {}
        crit = expected.get("icmp_crit") or {}
        loss = _threshold_level(detail.get("loss_pct"), warn, crit, "loss_pct")
        slow = _threshold_level(detail.get("rtt_avg_ms"), warn, crit, "rtt_ms")
        if loss or slow:
            limits = []
            for key, word, unit in (("loss_pct", "loss", "%"), ("rtt_ms", "rtt avg", " ms")):
                limits.append("%s warn %s crit %s" % (word, _limit(warn.get(key), unit), _limit(crit.get(key), unit)))
            facts = [fact, "thresholds: " + ", ".join(limits)]
            # the worse of the two decides; at the same severity loss is named first
            if loss == "fail" or (loss and slow != "fail"):
                check.fail("ICMP_LOSS", facts, severity=loss)
            else:
                check.fail("HIGH_LATENCY", facts, severity=slow)
        else:
            check.passed([fact])
        return
    if down is not None:
        _explained_by(check, down, fact)
        return
    errors = _icmp_errors(icmp)
    if errors:
        code, facts = "ICMP_UNREACHABLE", [_unreach_fact(errors[0])]
    else:
        code, facts = "ICMP_FILTERED", ["ping: 0 of %d echoes answered, no ICMP error" % sent]
    if mode == "reachable" or not (layers.get("tcp") or layers.get("http")):
        check.fail(code, facts)
    else:
        # a firewall that drops or rejects ICMP is not a fault when other checks are asked
        check.note(code, facts, CODES[code][1] + " (" + facts[0] + ")")


def _icmp_fact(result):
    """``ICMP type 3 code 13 from 10.0.0.12`` from the outcome (else the detail), or ''."""
    found = outcome_of(result) or {}
    detail = result.get("detail") or {}
    icmp_type = found.get("icmp_type", detail.get("icmp_type"))
    if icmp_type is None:
        return ""
    icmp_code = found.get("icmp_code", detail.get("icmp_code"))
    family = found.get("icmp_family") or detail.get("family") or "ipv4"
    return "ICMP %s (type %s code %s) from %s" % (icmp_name(family, icmp_type, icmp_code), icmp_type, icmp_code,
                                                  found.get("icmp_from") or detail.get("icmp_from") or "?")


def _probes_fact(result):
    found = outcome_of(result) or {}
    if (found.get("probes") or 0) > 1:
        return "; %d probes, %d answered" % (found["probes"], found.get("answers") or 0)
    return ""


def _hop_answers_on_wire(layers):
    detail = (layers.get("neighbour") or {}).get("detail") or {}
    return bool(detail.get("wire_macs")) and detail.get("seen_on_wire") is not False


_LOCAL_FIREWALL_HINT = "the source host's own firewall refused the SYN (an OUTPUT rule)"
_LOCAL_REJECT_HINT = "the source host's own firewall rejected the SYN with an ICMP error (an OUTPUT REJECT rule)"


def _judge_port(check, expected, layers, down):
    result = check.result
    detail = result["detail"]
    state = result["state"]
    label = "tcp %s" % result["target"]
    if tcp_probe.state_meets(state, expected):
        if state == "open" and detail.get("expect_matched") is False:
            check.fail("WRONG_SERVICE", ["%s: open, but %r not seen (banner %r)"
                                         % (label, detail.get("expect"), (detail.get("banner") or "")[:60])])
        elif state == "open" and detail.get("conversation_error"):
            check.fail("WRONG_SERVICE", ["%s: open, conversation failed: %s" % (label, detail["conversation_error"])])
        else:
            facts = ["%s: %s as expected (%s) in %.1f ms" % (label, state, expected,
                                                             result["timings"].get("total_ms", 0.0))]
            if state == "rejected":
                facts[0] += "; " + _icmp_fact(result)
            check.passed(facts)
        return
    reason = _reason(result)
    fact = "%s: %s, expected %s (%s)%s" % (label, state, expected, result.get("error") or state,
                                           _probes_fact(result))
    if down is not None and state in ("unreachable", "filtered"):
        _explained_by(check, down, fact)
    elif state == "open":
        check.fail("PORT_OPEN", [fact])
    elif state == "closed":
        check.fail("PORT_CLOSED", [fact])
    elif state == "rejected":
        icmp = _icmp_fact(result)
        if icmp:  # the ICMP error is the whole story: its name, type, code and sender
            fact = "%s: rejected, expected %s; %s%s" % (label, expected, icmp, _probes_fact(result))
        check.fail("PORT_REJECTED", [fact],
                   hint=_LOCAL_REJECT_HINT if reason == "local_firewall" else None)
    elif state == "filtered":
        hint = None
        if reason == "local_firewall" or (reason is None and _errno(result) in (errno.EPERM, errno.EACCES)):
            hint = _LOCAL_FIREWALL_HINT
        elif not _answered_somewhere(layers) and not _icmp_answered(layers):
            if _hop_answers_on_wire(layers):
                hint = ("nothing answered at all while the next hop answers ARP/NDP on the wire: a firewall drops "
                        "everything, or the host is down behind a router")
            else:
                hint = ("nothing answered at all (the next hop was not probed on the wire, its cached MAC proves "
                        "nothing): a firewall drops everything, or the host is down")
        check.fail("PORT_FILTERED", [fact], hint=hint)
    elif state == "unreachable":
        neighbour = layers.get("neighbour") or {}
        if reason == "no_route" or (reason is None and _errno(result) == errno.ENETUNREACH
                                    and neighbour.get("state") in (None, "no_route")):
            check.fail("NO_ROUTE", [fact])
        elif reason == "no_neighbour":
            check.fail("GATEWAY_UNREACHABLE" if (neighbour.get("detail") or {}).get("via_gateway")
                       else "NEIGHBOUR_FAILED", [fact])
        else:
            check.fail("PORT_UNREACHABLE", [fact])
    elif state == "dns_error":
        check.fail("DNS_FAILED", [fact])
    else:
        check.fail("PROBE_ERROR", [fact])


# connect outcome reason -> code (a URL's connection fails the way a port does)
_HTTP_CONNECT_CODES = {"rst": "PORT_CLOSED", "icmp_unreach": "PORT_REJECTED", "icmp_error": "PORT_REJECTED",
                       "no_answer": "PORT_FILTERED",
                       "local_firewall": "PORT_FILTERED", "no_route": "NO_ROUTE", "no_neighbour": "NEIGHBOUR_FAILED",
                       "dns": "DNS_FAILED"}
_HTTP_CODES = {"tls_handshake": "TLS_FAILED", "tls_verify": "TLS_FAILED", "tls_name": "WRONG_SERVICE",
               "http_timeout": "HTTP_TIMEOUT", "not_http": "WRONG_SERVICE", "reset_after_connect": "WRONG_SERVICE",
               "conversation_failed": "WRONG_SERVICE",
               "regex_timeout": "PROBE_ERROR", "probe_error": "PROBE_ERROR"}


def _judge_http(check, status_codes, down):
    result = check.result
    detail = result.get("detail", {})
    label = "http %s" % result["target"]
    if result["ok"]:
        check.passed(["%s: %s %s" % (label, detail.get("status"), detail.get("reason") or "")
                      if result["state"] == "answered" else "%s: %s" % (label, result["state"])])
        return
    fact = "%s: %s%s" % (label, result.get("error"), _probes_fact(result))
    if result["state"] == "answered":
        failed = detail.get("failed_checks") or []
        status_ok = detail.get("status") in (status_codes or [200])
        status = ("%s: status %s %s" % (label, detail.get("status"), detail.get("reason") or "")).strip()
        # a marker (header, body) missed besides the status: another service answered
        if len(failed) > (0 if status_ok else 1):
            check.fail("WRONG_SERVICE", [status + "; " + "; ".join(failed)])
        else:
            check.fail("HTTP_STATUS", [status + "; " + "; ".join(failed)])
        return
    reason = _reason(result)
    phase = (outcome_of(result) or {}).get("phase") or detail.get("phase")
    if reason is None:
        reason = _legacy_http_reason(result, phase)
    if phase in ("resolve", "connect") or reason in _HTTP_CONNECT_CODES:
        if down is not None and reason in ("no_answer", "no_neighbour", None):
            _explained_by(check, down, fact)
            return
        code = _HTTP_CONNECT_CODES.get(reason, "PROBE_ERROR")
        facts = [fact]
        if code == "PORT_REJECTED" and _icmp_fact(result):
            facts = [fact + "; " + _icmp_fact(result)]
        hint = _LOCAL_FIREWALL_HINT if reason == "local_firewall" else None
        if code == "PORT_REJECTED" and reason == "local_firewall":
            hint = _LOCAL_REJECT_HINT
        check.fail(code, facts, hint=hint)
    elif reason == "tls_name":
        tls = detail.get("tls") or {}
        check.fail("WRONG_SERVICE", [fact, "certificate subject %s, SAN %s"
                                     % (tls.get("subject"), ", ".join(tls.get("san") or []) or "-")])
    elif reason in _HTTP_CODES:
        code = _HTTP_CODES[reason]
        check.fail(code, [fact + (" (not an HTTP answer)" if reason == "not_http" else "")])
    elif phase == "redirect":
        check.fail("HTTP_STATUS", [fact])
    else:
        check.fail("PROBE_ERROR", [fact])


def _legacy_http_reason(result, phase):
    """The reason of an http result made before outcomes existed (recorded data), from its fields."""
    detail = result.get("detail") or {}
    if phase == "processing":
        return "http_timeout"
    if phase == "tls":
        tls = detail.get("tls") or {}
        return "tls_verify" if tls.get("verify_error") else "tls_handshake"
    return None


def _evidence(layers):
    """One fact per check that answered as expected (a reader needs those to trust the verdict)."""
    lines = []
    neighbour = layers.get("neighbour")
    if neighbour is not None:
        d = neighbour["detail"]
        route = d.get("route") or {}
        if neighbour["state"] == "local":
            lines.append("route: local address")
        elif route.get("dev"):
            lines.append(_neighbour_fact(d, neighbour["state"]))
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
                     arp_timeout=DEFAULT_ARP_TIMEOUT, arp_cache_path=ARP_CACHE_STAT, max_workers=256,
                     fail_on_warn=False, confirm_budget=tcp_probe.DEFAULT_CONFIRM_BUDGET, path_options=None):
    """Probe every DiagnoseTarget at every layer asked, concurrently; one pair per target.

    ``icmp_options``: count, interval, timeout, size, method (icmp.ping_targets' options).
    ``arp_probe_enabled``: None = when running as root. ``fail_on_warn``: a warning check fails its pair.
    ``confirm_budget``: seconds the re-probes of silent ports, and again of silent URLs, may add
    (tcp.Confirmer; one SharedConfirmation: the two passes take turns, at most twice the budget).
    ``path_options``: None = no path probe; else path.PATH_OPTIONS_SPEC's options: after the verdicts,
    the flows of failing checks routed via a gateway are traced (healthy pairs send nothing).
    """
    start = time.monotonic()
    conntrack_before = conntrack_limits() if path_options is not None else None
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
                "expect": port["expect"], "expected": expected, "name": port["name"] or target.name}],
                port["timeout"])
            tcp_items.append((index, tcp_target))
        for http_target in target.http_targets:
            http_items.append((index, http_target))
        if target.icmp != "skip":
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            ping_items.append((index, icmp_probe.PingTarget(target.host, address, family, target.icmp != "unreachable",
                                                            target.name)))

    probed = {"tcp": [], "http": [], "icmp": [], "icmp_error": None}
    # ports and URLs of one target spend one ICMP rate limit: their confirmations share the evidence
    # and take turns, so that the re-probes of one never use up the tokens the other's need
    shared = tcp_probe.SharedConfirmation()

    def run_tcp():
        if tcp_items:
            probed["tcp"] = tcp_probe.check_targets([t for _, t in tcp_items], max_workers,
                                                    confirm_budget=confirm_budget, shared=shared)

    def run_http():
        if http_items:
            probed["http"] = http_probe.check_urls([t for _, t in http_items], max_workers, confirm_budget, shared)

    def run_icmp():
        if not ping_items:
            return
        try:
            results, method, _ = icmp_probe.ping_targets(
                [t for _, t in ping_items], count=icmp_options.get("count", 3),
                interval=icmp_options.get("interval", 0.2), timeout=icmp_options.get("timeout", 1.0),
                size=icmp_options.get("size", 56), method=icmp_options.get("method", "auto"), run=run)
            probed["icmp"] = results
        except (icmp_probe.MethodUnavailable, InputError, OSError) as exc:
            # the other layers still give their evidence; the pair says ICMP was not checked
            probed["icmp_error"] = str(exc)

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
                  "tcp": [r for (i, _), r in zip(tcp_items, probed["tcp"]) if i == index],
                  "http": [r for (i, _), r in zip(http_items, probed["http"]) if i == index]}
        for (i, _), result in zip(ping_items, probed["icmp"]):
            if i == index:
                layers["icmp"] = result
        if hops[index] is not None:
            route, neighbour = hops[index]
            hop = neighbour.get("ip")
            layers["neighbour"] = neighbour_result(addresses[index], route, neighbour, wire.get(hop), table)
        ok, checked, judged = verdict(layers, target.expected(), resolved[index][1], fail_on_warn)
        if probed["icmp_error"] and target.icmp != "skip":
            judged["notes"].append({"code": "PROBE_ERROR", "hint": "ICMP not checked: " + probed["icmp_error"]})
        total = max([_own_ms(r) for r in layers["tcp"] + layers["http"]]
                    + [_own_ms(layers["icmp"]) if layers["icmp"] else 0.0])
        pairs.append({
            "target": target.name, "address": addresses[index], "kind": KIND, "ok": ok, "checked": checked,
            "layers": layers, "verdict": judged, "expected": target.expected(),
            "timings": {"total": round(total, 3)},
        })
    path_stats = None
    if path_options is not None:
        path_stats = path_probe.run_path_probes(pairs, path_options, conntrack_verdict(conntrack_before,
                                                                                       conntrack_limits()))
    return pairs, {"elapsed_ms": round(ms_since(start), 3), "arp_cache": table,
                   "icmp_error": probed["icmp_error"], "path": path_stats}


def _own_ms(result):
    """A result's own time to its verdict (outcome.verdict_ms), else its total_ms."""
    own = (outcome_of(result) or {}).get("verdict_ms")
    return own if own is not None else result["timings"].get("total_ms", 0.0) or 0.0


def _wire_probes(hops, enabled, timeout, max_workers):
    """One ARP (IPv4) or NDP (IPv6) probe per distinct on-link next hop: {next hop: {"macs", "error"}}."""
    if not enabled:
        return {}
    wanted = {}
    for hop in hops:
        if hop is None:
            continue
        route, neighbour = hop
        address = neighbour.get("ip")
        if (address and route.get("dev") and route.get("dev") != "lo"
                and neighbour.get("state") not in ("LOCAL", None)):
            wanted[address] = (route["dev"], route.get("src"))
    items = sorted(wanted.items())

    def probe(item):
        address, (dev, src) = item
        if ":" in address:
            macs, error = ndp_probe(dev, address, timeout)
        else:
            macs, error = arp_probe(dev, address, src, timeout)
        return {"macs": macs, "error": error}

    results = run_concurrently(probe, items, lambda item, reason: {"macs": None, "error": reason},
                               timeout + 5.0, max_workers)
    return {address: result for (address, _), result in zip(items, results)}


def summarize_pairs(pairs):
    """Counts over pairs: total, ok, failed, warned (ok with a warning check), how many per verdict
    code, and how many checks failed in all."""
    by_code = {}
    for pair in pairs:
        code = pair["verdict"]["code"]
        by_code[code] = by_code.get(code, 0) + 1
    passed = sum(1 for pair in pairs if pair["ok"])
    return {"total": len(pairs), "ok": passed, "failed": len(pairs) - passed,
            "warned": sum(1 for pair in pairs if pair["ok"] and pair["verdict"].get("warned_checks")),
            "failed_checks": sum(pair["verdict"].get("failed_checks", 0) for pair in pairs), "by_code": by_code}


__all__ = ["CODES", "DiagnoseTarget", "ICMP_MODES", "KIND", "LAYERS", "PORT_EXPECTATIONS", "arp_probe", "ndp_probe",
           "neighbour_solicitation", "parse_neighbour_advert", "solicited_node",
           "arp_request_frame", "checked_layers", "diagnose_targets", "neighbour_result", "parse_arp_cache_stat",
           "parse_arp_reply", "parse_targets", "read_arp_cache_stat", "summarize_pairs", "verdict"]
