# -*- coding: utf-8 -*-
"""Neighbour (layer 2) probe: the route the kernel takes to an address, and the ARP /
NDP entry of the next hop (the target itself when on-link, else the gateway).

Stdlib only. Commands run through a ``run(argv) -> (rc, stdout, stderr)`` callable
(Ansible modules pass ``module.run_command``); argv lists only, never a shell.
Where ``ip`` is missing, IPv4 falls back to /proc/net/route and /proc/net/arp.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile

from .outcome import normal_address
from .probe import read_text

# Kernel neighbour states (ip-neighbour(8)); PERMANENT and NOARP also exist.
NEIGHBOUR_STATES = ("REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "INCOMPLETE", "PERMANENT", "NOARP", "NONE")
_ATF_COM = 0x02  # /proc/net/arp flag: the entry is complete (a MAC is known)


def default_run(argv):
    """Run argv without a shell; (rc, stdout, stderr). Used when no Ansible module is around."""
    if not shutil.which(argv[0]):
        return 127, "", "%s: command not found" % argv[0]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _ip_json(run, argv):
    if not shutil.which(argv[0]):
        # checked here: ansible's run_command fails the whole task on a missing binary
        return None, "%s: command not found" % argv[0]
    rc, out, err = run(argv)
    if rc != 0:
        return None, (err or out).strip() or "rc %d" % rc
    try:
        return json.loads(out or "[]"), None
    except ValueError:
        return None, "unparsable output of %s" % " ".join(argv)


def parse_proc_route(text, address):
    """Longest-prefix match of an IPv4 address in /proc/net/route text: (dev, gateway or None)."""
    target = struct.unpack("!I", socket.inet_aton(address))[0]
    best = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dev, dest, gateway, flags, mask = fields[0], fields[1], fields[2], int(fields[3], 16), fields[7]
        if not flags & 0x1:  # RTF_UP
            continue
        # the file holds little-endian hex words
        dest_i = struct.unpack("<I", bytes.fromhex(dest))[0]
        mask_i = struct.unpack("<I", bytes.fromhex(mask))[0]
        if target & mask_i != dest_i:
            continue
        prefix = bin(mask_i).count("1")
        if best is None or prefix > best[0]:
            gw = socket.inet_ntoa(bytes.fromhex(gateway)[::-1]) if flags & 0x2 else None  # RTF_GATEWAY
            best = (prefix, dev, gw)
    return (best[1], best[2]) if best else (None, None)


def parse_proc_arp(text, address):
    """The /proc/net/arp entry of an address: {state, mac, dev} or None."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[0] == address:
            complete = int(fields[2], 16) & _ATF_COM
            return {"state": "REACHABLE" if complete else "INCOMPLETE",
                    "mac": fields[3] if complete else None, "dev": fields[5]}
    return None


def route_to(address, run=default_run):
    """How the kernel reaches ``address``: {dev, gateway, src, type, source}."""
    data, error = _ip_json(run, ["ip", "-j", "route", "get", address])
    if data:
        entry = data[0]
        return {"dev": entry.get("dev"), "gateway": entry.get("gateway"), "src": entry.get("prefsrc"),
                "type": entry.get("type", "unicast"), "source": "ip route get", "error": None}
    if data is None and ":" not in address and "command not found" in (error or ""):
        text = read_text("/proc/net/route")
        if text is not None:
            dev, gateway = parse_proc_route(text, address)
            return {"dev": dev, "gateway": gateway, "src": None, "type": "unicast" if dev else None,
                    "source": "/proc/net/route", "error": None if dev else "no route"}
    return {"dev": None, "gateway": None, "src": None, "type": None, "source": "ip route get",
            "error": error or "no route"}


def neighbour_of(address, dev=None, run=default_run):
    """The kernel's neighbour entry for ``address``: {ip, state, mac, dev, source}."""
    argv = ["ip", "-j", "neigh", "show", "to", address] + (["dev", dev] if dev else [])
    data, error = _ip_json(run, argv)
    if data is not None:
        for entry in data:
            if entry.get("dst") == address:
                states = entry.get("state") or ["NONE"]
                return {"ip": address, "state": states[0], "mac": entry.get("lladdr"),
                        "dev": entry.get("dev", dev), "source": "ip neigh", "error": None}
        return {"ip": address, "state": "NONE", "mac": None, "dev": dev, "source": "ip neigh", "error": None}
    if ":" not in address:
        text = read_text("/proc/net/arp")
        if text is not None:
            entry = parse_proc_arp(text, address) or {"state": "NONE", "mac": None, "dev": dev}
            entry.update(ip=address, source="/proc/net/arp", error=None)
            return entry
    return {"ip": address, "state": None, "mac": None, "dev": dev, "source": "ip neigh", "error": error}


def neighbour_table(run=default_run):
    """Every neighbour entry of both families: {address: state} (one ``ip neigh`` call; IPv4 from
    /proc/net/arp where ``ip`` is missing)."""
    data, _ = _ip_json(run, ["ip", "-j", "neigh", "show"])
    if data is not None:
        return {entry["dst"]: (entry.get("state") or ["NONE"])[0] for entry in data if entry.get("dst")}
    text = read_text("/proc/net/arp") or ""
    table = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6:
            table[fields[0]] = "REACHABLE" if int(fields[2], 16) & _ATF_COM else "INCOMPLETE"
    return table


def _no_neighbour(address, route):
    """The neighbour entry of a route that needs none: a local address (``LOCAL``), or no route at
    all (the route's error); None when the next hop's entry must be looked up."""
    if route["type"] == "local" or route["dev"] == "lo":
        return {"ip": address, "state": "LOCAL", "mac": None, "dev": route["dev"], "source": route["source"],
                "error": None}
    if route["dev"] is None:
        return {"ip": None, "state": None, "mac": None, "dev": None, "source": None, "error": route["error"]}
    return None


def next_hop(address, run=default_run):
    """Route and neighbour entry of the next hop towards ``address`` (read after traffic was sent).

    The next hop is the target itself when it is on-link, else the route's gateway.
    A local address (this host's own, or loopback) has no neighbour: state ``LOCAL``.
    """
    route = route_to(address, run)
    neighbour = _no_neighbour(address, route) or neighbour_of(route["gateway"] or address, route["dev"], run)
    neighbour["via_gateway"] = bool(route.get("gateway"))
    return route, neighbour


def _json_documents(text):
    """Every JSON document in ``text`` (``ip -batch`` prints one per command that succeeded)."""
    decoder, index, documents = json.JSONDecoder(), 0, []
    text = text or ""
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return documents
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError:
            return documents
        documents.append(document)


def next_hops(addresses, run=default_run):
    """:func:`next_hop` for many addresses with two commands in all: one ``ip -batch`` of
    ``route get`` and one ``ip neigh show`` (1,000 targets one by one took 8 s).

    Returns {address: (route, neighbour)}; each distinct address is looked up once.
    Where ``ip`` is missing, falls back to :func:`next_hop` per address (/proc files).
    """
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return {}
    if not shutil.which("ip"):
        return {address: next_hop(address, run) for address in unique}
    handle, path = tempfile.mkstemp(prefix="netcheck-routes-", suffix=".batch")
    try:
        with os.fdopen(handle, "w") as batch:
            for address in unique:
                batch.write("route get %s\n" % address)
        _, out, err = run(["ip", "-j", "-force", "-batch", path])
    finally:
        os.unlink(path)
    routes = {}
    for document in _json_documents(out):
        for entry in document if isinstance(document, list) else []:
            if isinstance(entry, dict) and entry.get("dst"):
                routes[normal_address(entry["dst"])] = entry
    table, table_error = _ip_json(run, ["ip", "-j", "neigh", "show"])
    neighbours = {}
    for entry in table or []:
        if entry.get("dst"):
            neighbours[(normal_address(entry["dst"]), entry.get("dev"))] = entry
    failure = (err or "").strip().splitlines()
    answers = {}
    for address in unique:
        entry = routes.get(normal_address(address))
        if entry is None:
            route = {"dev": None, "gateway": None, "src": None, "type": None, "source": "ip route get",
                     "error": failure[0] if failure else "no route"}
        else:
            route = {"dev": entry.get("dev"), "gateway": entry.get("gateway"), "src": entry.get("prefsrc"),
                     "type": entry.get("type", "unicast"), "source": "ip route get", "error": None}
        neighbour = _no_neighbour(address, route)
        if neighbour is None:
            hop = route["gateway"] or address
            found = neighbours.get((normal_address(hop), route["dev"]))
            if table is None:
                neighbour = {"ip": hop, "state": None, "mac": None, "dev": route["dev"], "source": "ip neigh",
                             "error": table_error}
            elif found is None:
                neighbour = {"ip": hop, "state": "NONE", "mac": None, "dev": route["dev"], "source": "ip neigh",
                             "error": None}
            else:
                neighbour = {"ip": hop, "state": (found.get("state") or ["NONE"])[0], "mac": found.get("lladdr"),
                             "dev": route["dev"], "source": "ip neigh", "error": None}
        neighbour["via_gateway"] = bool(route.get("gateway"))
        answers[address] = (route, neighbour)
    return answers


__all__ = ["NEIGHBOUR_STATES", "default_run", "neighbour_of", "neighbour_table", "next_hop", "next_hops",
           "parse_proc_arp", "parse_proc_route", "route_to"]
