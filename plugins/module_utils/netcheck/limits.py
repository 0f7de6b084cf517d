# -*- coding: utf-8 -*-
"""Connection limits of a host: the ``sysctl fs.file-max`` and ``ulimit -aH`` of the project.

Reads /proc only (no command): kernel file limits, this process's limits, the listen and
port limits, the neighbour table's size against its gc_thresh limits and its overflow count,
socket counts, listen queue overflows, and for given ports the listening processes with their
own open-file limit, their open descriptors and their accept queue (as ``ss -lnt`` shows it:
for a LISTEN socket /proc/net/tcp's rx_queue is the accept queue now, tx_queue the backlog).

The conntrack table (``nf_conntrack_count`` against ``nf_conntrack_max``, and the per-CPU
counters of /proc/net/stat/nf_conntrack: drop, early_drop, insert_failed) says whether new
flows vanish because the table is full ("nf_conntrack: table full, dropping packet"): such a
drop looks exactly like a firewall's DROP from the other end. :func:`conntrack_verdict`
compares two readings (before and after a run).

Every parser takes text, so that it is tested with recorded /proc contents. Stdlib only,
Python 3.8+ (runs on the managed host).
"""

from __future__ import annotations

import os
import socket
import struct

from .probe import read_text

PROC = "/proc"
TCP_LISTEN = 0x0A
# a limit is "near" when this share of it is used
NEAR = 0.9

# The options a user writes (module_utils/netcheck/spec.py explains the format); conn_limits'
# argument_spec and net_diagnose's limit_ports are made from it.
LIMITS_SPEC = {
    "ports": {"type": "list", "elements": "int", "default": [],
              "description": "Listening TCP ports whose process, descriptors and accept queue are returned."},
}

RLIMITS = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_STACK", "RLIMIT_AS", "RLIMIT_MEMLOCK")


def _int(text):
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


# --- parsers (text in, facts out) --------------------------------------------------------

def parse_file_nr(text):
    """fs.file-nr: allocated handles, allocated-but-free handles, the maximum."""
    fields = (text or "").split()
    if len(fields) != 3:
        return None
    allocated, free, maximum = (int(f) for f in fields)
    return {"allocated": allocated, "free": free, "max": maximum}


def parse_port_range(text):
    fields = (text or "").split()
    return [int(fields[0]), int(fields[1])] if len(fields) == 2 else None


def parse_proc_limits(text):
    """/proc/PID/limits: {"Max open files": {"soft": 1024, "hard": 524288, "unit": "files"}, ...}.

    ``unlimited`` is None. Columns are fixed-width in the kernel, but the limit names contain
    spaces, so the line is split from the right.
    """
    limits = {}
    for line in (text or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3:
            continue
        # the name ends where the first value (a number or "unlimited") starts
        for index, word in enumerate(parts):
            if word == "unlimited" or word.isdigit():
                break
        else:
            continue
        name = " ".join(parts[:index])
        values = parts[index:]
        if len(values) < 2:
            continue

        def number(word):
            return None if word == "unlimited" else int(word)

        limits[name] = {"soft": number(values[0]), "hard": number(values[1]),
                        "unit": values[2] if len(values) > 2 else None}
    return limits


def parse_sockstat(text):
    """/proc/net/sockstat(6): {"tcp": {"inuse": 5, "orphan": 0, "tw": 0, "alloc": 7, "mem": 1}, ...}."""
    stats = {}
    for line in (text or "").splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        if not name or len(words) % 2:
            continue
        stats[name.strip().lower()] = {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)
                                       if words[i + 1].lstrip("-").isdigit()}
    return stats


def parse_netstat(text, wanted=("ListenOverflows", "ListenDrops")):
    """/proc/net/netstat (pairs of header/value lines per prefix): the TcpExt counters wanted."""
    lines = (text or "").splitlines()
    found = {}
    for header, values in zip(lines[0::2], lines[1::2]):
        names, numbers = header.split(), values.split()
        if not names or names[0] != "TcpExt:" or numbers[0] != "TcpExt:":
            continue
        table = dict(zip(names[1:], numbers[1:]))
        for key in wanted:
            if key in table:
                found[key] = int(table[key])
    return found


def parse_arp_cache_stat(text):
    """/proc/net/stat/arp_cache (one hex line per CPU): {"entries": n, "table_fulls": sum over CPUs}."""
    lines = [line.split() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header = lines[0]
    totals = {"entries": None, "table_fulls": 0}
    for fields in lines[1:]:
        values = dict(zip(header, fields))
        try:
            if totals["entries"] is None and "entries" in values:
                totals["entries"] = int(values["entries"], 16)  # the same on every line: the table's size
            totals["table_fulls"] += int(values.get("table_fulls", "0"), 16)
        except ValueError:
            return None
    return totals


def parse_ntable_json(text):
    """``ip -s -j ntable show``: per family the table's entries, gc_thresh1/2/3 and table_fulls.

    The kernel's neighbour tables are shared by every network namespace; ``ip ntable`` shows
    their counters from any namespace, where /proc/net/stat/arp_cache exists only in the first.
    """
    import json
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return None
    tables = {}
    for entry in data if isinstance(data, list) else []:
        if entry.get("dev") is not None or entry.get("name") not in ("arp_cache", "ndisc_cache"):
            continue
        family = "ipv4" if entry["name"] == "arp_cache" else "ipv6"
        tables[family] = {"entries": entry.get("entries"), "table_fulls": entry.get("table_fulls"),
                          "gc_thresh1": entry.get("thresh1"), "gc_thresh2": entry.get("thresh2"),
                          "gc_thresh3": entry.get("thresh3")}
    return tables or None


def read_ntables(run=None):
    """The neighbour tables' counters via ``ip -s -j ntable show`` (None when ip cannot tell)."""
    import shutil
    import subprocess
    if not shutil.which("ip"):
        return None
    argv = ["ip", "-s", "-j", "ntable", "show"]
    if run is None:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        rc, out = proc.returncode, proc.stdout
    else:
        rc, out, _ = run(argv)
    return parse_ntable_json(out) if rc == 0 else None


def _hex_address(text, family):
    """/proc/net/tcp{,6} ``ADDR:PORT`` (host-order 32-bit words in hex) -> (address, port)."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    # each 32-bit word is written in the host's byte order
    words = [raw[i:i + 4][::-1] if struct.pack("=I", 1) == b"\x01\x00\x00\x00" else raw[i:i + 4]
             for i in range(0, len(raw), 4)]
    return socket.inet_ntop(family, b"".join(words)), int(port, 16)


def parse_proc_net_tcp(text, family=socket.AF_INET):
    """Sockets of /proc/net/tcp{,6}: [{address, port, state, tx_queue, rx_queue, inode, listening}]."""
    sockets = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        address, port = _hex_address(fields[1], family)
        tx_queue, rx_queue = (int(v, 16) for v in fields[4].split(":"))
        state = int(fields[3], 16)
        sockets.append({"address": address, "port": port, "state": state, "tx_queue": tx_queue,
                        "rx_queue": rx_queue, "inode": int(fields[9]), "listening": state == TCP_LISTEN,
                        "family": "ipv6" if family == socket.AF_INET6 else "ipv4"})
    return sockets


def listener_facts(entry, backlogs=None):
    """A LISTEN socket as ``ss -lnt`` shows it: the accept queue now and its backlog.

    /proc/net/tcp's rx_queue of a LISTEN socket is its accept queue; the backlog (ss's Send-Q)
    is not in /proc: it comes from the kernel's sock_diag (``backlogs``: {inode: backlog}).
    """
    accept_queue = entry["rx_queue"]
    backlog = (backlogs or {}).get(entry["inode"])
    return {"address": entry["address"], "port": entry["port"], "family": entry["family"], "inode": entry["inode"],
            # the kernel takes backlog + 1 connections before it drops SYNs (sk_acceptq_is_full uses >)
            "accept_queue": accept_queue, "backlog": backlog,
            "queue_full": None if backlog is None else accept_queue > backlog, "processes": []}


# sock_diag (netlink): what ss reads. Constants from linux/sock_diag.h and linux/inet_diag.h.
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE, NLMSG_ERROR = 3, 2
_DIAG_MSG = struct.Struct("=BBBBHH16s16sIIIIIIII")  # inet_diag_msg: 72 bytes


def listen_backlog_request(family, seq=1):
    """A netlink SOCK_DIAG_BY_FAMILY dump request for the LISTEN TCP sockets of ``family``."""
    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + b"\0" * 48
    return struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_listen_backlogs(data):
    """{inode: backlog} from sock_diag answers (wqueue of a LISTEN socket is its max backlog).

    Returns (backlogs, done): done is True once NLMSG_DONE was seen.
    """
    backlogs, offset = {}, 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind == NLMSG_DONE:
            return backlogs, True
        if kind == NLMSG_ERROR:
            raise OSError("sock_diag answered an error")
        if kind == SOCK_DIAG_BY_FAMILY and length >= 16 + _DIAG_MSG.size:
            fields = _DIAG_MSG.unpack_from(data, offset + 16)
            backlogs[fields[-1]] = fields[-3]  # inode -> wqueue
        offset += (length + 3) & ~3
    return backlogs, False


def listen_backlogs():
    """{inode: backlog} of every LISTEN TCP socket of this network namespace (None: not readable)."""
    if not hasattr(socket, "AF_NETLINK"):
        return None
    backlogs = {}
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except OSError:
        return None
    try:
        sock.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            sock.send(listen_backlog_request(family, seq))
            for _ in range(10000):  # bounded: one datagram per batch of sockets
                found, done = parse_listen_backlogs(sock.recv(65536))
                backlogs.update(found)
                if done:
                    break
    except OSError:
        return None
    finally:
        sock.close()
    return backlogs


CONNTRACK_DROPS = ("drop", "early_drop", "insert_failed")


def parse_conntrack_stat(text):
    """/proc/net/stat/nf_conntrack (a header, then one line of hex counters per CPU): the counters
    summed over CPUs, ``entries`` (the same on every line: the table's entries) and ``cpus``."""
    lines = [line.split() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header = lines[0]
    totals = {"cpus": 0}
    for fields in lines[1:]:
        if len(fields) != len(header):
            return None
        try:
            values = {name: int(value, 16) for name, value in zip(header, fields)}
        except ValueError:
            return None
        totals["cpus"] += 1
        for name, value in values.items():
            if name == "entries":
                totals["entries"] = value
            else:
                totals[name] = totals.get(name, 0) + value
    return totals


def conntrack_limits(proc=PROC):
    """The conntrack table now: count, max, buckets and the summed per-CPU counters (None: no conntrack).

    nf_conntrack_count is this network namespace's; nf_conntrack_max is the machine's (one limit
    for every namespace): never lower it on a shared machine to test this.
    """
    sys_ = proc + "/sys/net/netfilter/"
    count = _int(read_text(sys_ + "nf_conntrack_count"))
    maximum = _int(read_text(sys_ + "nf_conntrack_max"))
    if count is None and maximum is None:
        return None
    stat = parse_conntrack_stat(read_text(proc + "/net/stat/nf_conntrack")) or {}
    facts = {"count": count, "max": maximum, "buckets": _int(read_text(sys_ + "nf_conntrack_buckets")),
             "full": bool(count is not None and maximum and count >= maximum)}
    facts.update({name: stat.get(name) for name in CONNTRACK_DROPS})
    facts["search_restart"] = stat.get("search_restart")
    return facts


def conntrack_verdict(before, after):
    """CONNTRACK_FULL when the table is full now or a drop counter rose between the two readings.

    Returns {"code": "CONNTRACK_FULL" | None, "full", "rose": {counter: increase}, "count", "max", "hint"}.
    """
    if not after:
        return {"code": None, "full": None, "rose": {}, "count": None, "max": None, "hint": None}
    rose = {}
    for name in CONNTRACK_DROPS:
        old, new = (before or {}).get(name), after.get(name)
        if old is not None and new is not None and new > old:
            rose[name] = new - old
    full = bool(after.get("full"))
    code = "CONNTRACK_FULL" if full or rose else None
    hint = None
    if code:
        hint = ("the conntrack table %s (%s of nf_conntrack_max %s%s): new flows are dropped like a firewall's DROP; "
                "raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), shorten conntrack timeouts, or "
                "exempt the flows from tracking (raw table NOTRACK)"
                % ("is full" if full else "dropped flows", after.get("count"), after.get("max"),
                   "; " + ", ".join("%s +%d" % item for item in sorted(rose.items())) if rose else ""))
    return {"code": code, "full": full, "rose": rose, "count": after.get("count"), "max": after.get("max"),
            "hint": hint}


# --- readers (one host, now) ---------------------------------------------------------

def kernel_limits(proc=PROC):
    sys_ = proc + "/sys/"
    return {
        "file_max": _int(read_text(sys_ + "fs/file-max")),
        "nr_open": _int(read_text(sys_ + "fs/nr_open")),
        "file_nr": parse_file_nr(read_text(sys_ + "fs/file-nr")),
        "somaxconn": _int(read_text(sys_ + "net/core/somaxconn")),
        "ip_local_port_range": parse_port_range(read_text(sys_ + "net/ipv4/ip_local_port_range")),
    }


def neighbour_limits(proc=PROC, run=None):
    """Per family: entries, table_fulls and gc_thresh1/2/3 (``ip ntable``, else /proc)."""
    tables = read_ntables(run) if proc == PROC else None
    if tables:
        return tables
    tables = {}
    for family, stat, directory in (("ipv4", "arp_cache", "ipv4"), ("ipv6", "ndisc_cache", "ipv6")):
        counters = parse_arp_cache_stat(read_text("%s/net/stat/%s" % (proc, stat))) or {}
        facts = {"entries": counters.get("entries"), "table_fulls": counters.get("table_fulls")}
        for level in (1, 2, 3):
            path = "%s/sys/net/%s/neigh/default/gc_thresh%d" % (proc, directory, level)
            facts["gc_thresh%d" % level] = _int(read_text(path))
        tables[family] = facts
    return tables


def process_limits(pid=None, proc=PROC):
    """The limits of a process (default: this one): resource's view and /proc/PID/limits."""
    own = pid is None
    pid = os.getpid() if own else pid
    facts = {"pid": pid, "limits": parse_proc_limits(read_text("%s/%d/limits" % (proc, pid))),
             "open_fds": count_fds(pid, proc)}
    if own:
        try:
            import resource
        except ImportError:  # not on every platform
            resource = None
        if resource is not None:
            rlimits = {}
            for name in RLIMITS:
                if hasattr(resource, name):
                    soft, hard = resource.getrlimit(getattr(resource, name))
                    rlimits[name[7:].lower()] = {"soft": None if soft == resource.RLIM_INFINITY else soft,
                                                 "hard": None if hard == resource.RLIM_INFINITY else hard}
            facts["rlimits"] = rlimits
    return facts


def count_fds(pid, proc=PROC):
    try:
        return len(os.listdir("%s/%d/fd" % (proc, pid)))
    except OSError:
        return None


def socket_owners(inodes, proc=PROC):
    """{inode: [pid, ...]} for the socket inodes given, from every /proc/PID/fd link."""
    wanted = {"socket:[%d]" % inode: inode for inode in inodes}
    owners = {inode: [] for inode in inodes}
    if not wanted:
        return owners
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return owners
    for pid in pids:
        directory = "%s/%d/fd" % (proc, pid)
        try:
            fds = os.listdir(directory)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                link = os.readlink(directory + "/" + fd)
            except OSError:
                continue
            if link in wanted and pid not in owners[wanted[link]]:
                owners[wanted[link]].append(pid)
    return owners


def listeners(ports, proc=PROC):
    """The LISTEN sockets on ``ports`` with their processes' open-file limit and descriptor count."""
    found, backlogs = [], listen_backlogs() if ports else {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for entry in parse_proc_net_tcp(read_text("%s/net/%s" % (proc, name)), family):
            if entry["listening"] and entry["port"] in ports:
                found.append(listener_facts(entry, backlogs))
    owners = socket_owners([entry["inode"] for entry in found], proc)
    for entry in found:
        for pid in owners[entry["inode"]]:
            limits = parse_proc_limits(read_text("%s/%d/limits" % (proc, pid)))
            comm = (read_text("%s/%d/comm" % (proc, pid)) or "").strip() or None
            entry["processes"].append({"pid": pid, "comm": comm, "max_open_files": limits.get("Max open files"),
                                       "open_fds": count_fds(pid, proc)})
    return sorted(found, key=lambda e: (e["port"], e["family"], e["address"]))


def warnings_for(facts):
    """Plain-words warnings: limits reached or nearly reached."""
    warnings = []
    file_nr = (facts.get("kernel") or {}).get("file_nr")
    if file_nr and file_nr["max"] and file_nr["allocated"] >= NEAR * file_nr["max"]:
        warnings.append("file handles: %d of fs.file-max %d in use" % (file_nr["allocated"], file_nr["max"]))
    for family, table in sorted((facts.get("neighbour") or {}).items()):
        if table.get("table_fulls"):
            warnings.append("%s neighbour table overflowed %d times (table_fulls): raise gc_thresh1/2/3"
                            % (family, table["table_fulls"]))
        if table.get("entries") is not None and table.get("gc_thresh3") and table["entries"] >= NEAR * table[
                "gc_thresh3"]:
            warnings.append("%s neighbour table: %d entries of gc_thresh3 %d" % (family, table["entries"],
                                                                                 table["gc_thresh3"]))
    conntrack = facts.get("conntrack") or {}
    if conntrack.get("count") is not None and conntrack.get("max") and conntrack["count"] >= NEAR * conntrack["max"]:
        warnings.append("conntrack table: %d entries of nf_conntrack_max %d%s" % (
            conntrack["count"], conntrack["max"], " (full: new flows are dropped)" if conntrack["full"] else ""))
    if conntrack.get("drop") or conntrack.get("early_drop"):
        warnings.append("conntrack dropped flows %d times since boot (drop %d, early_drop %d, insert_failed %d): "
                        "the table was full; raise net.netfilter.nf_conntrack_max"
                        % ((conntrack.get("drop") or 0) + (conntrack.get("early_drop") or 0), conntrack.get("drop") or 0,
                           conntrack.get("early_drop") or 0, conntrack.get("insert_failed") or 0))
    netstat = facts.get("netstat") or {}
    if netstat.get("ListenOverflows"):
        warnings.append("listen queues overflowed %d times (ListenOverflows), %d SYNs dropped (ListenDrops)"
                        % (netstat["ListenOverflows"], netstat.get("ListenDrops", 0)))
    for entry in facts.get("listeners") or []:
        if entry["queue_full"]:
            warnings.append("port %d: accept queue full (%d waiting, backlog %d): the service does not accept "
                            "fast enough" % (entry["port"], entry["accept_queue"], entry["backlog"]))
        for process in entry["processes"]:
            limit = (process.get("max_open_files") or {}).get("soft")
            if limit and process.get("open_fds") is not None and process["open_fds"] >= NEAR * limit:
                warnings.append("port %d: pid %d has %d open files of its limit %d"
                                % (entry["port"], process["pid"], process["open_fds"], limit))
    return warnings


def gather(ports=(), proc=PROC, run=None):
    """Every fact above for this host now; ``ports``: the listening ports to look at."""
    facts = {
        "kernel": kernel_limits(proc),
        "process": process_limits(proc=proc),
        "neighbour": neighbour_limits(proc, run),
        "sockstat": {"ipv4": parse_sockstat(read_text(proc + "/net/sockstat")),
                     "ipv6": parse_sockstat(read_text(proc + "/net/sockstat6"))},
        "netstat": parse_netstat(read_text(proc + "/net/netstat")),
        "listeners": listeners(set(ports), proc),
        "conntrack": conntrack_limits(proc),
    }
    # "limit_warnings", not "warnings": that is a reserved key of module results (Ansible prints and removes it)
    facts["limit_warnings"] = warnings_for(facts)
    return facts


__all__ = ["CONNTRACK_DROPS", "conntrack_limits", "conntrack_verdict", "gather", "parse_conntrack_stat", "kernel_limits",
           "listen_backlog_request", "listen_backlogs", "listener_facts", "listeners",
           "neighbour_limits", "parse_arp_cache_stat", "parse_file_nr", "parse_listen_backlogs", "parse_netstat",
           "parse_ntable_json", "parse_port_range", "parse_proc_limits", "parse_proc_net_tcp", "parse_sockstat",
           "process_limits", "read_ntables", "socket_owners", "warnings_for"]
