# -*- coding: utf-8 -*-
"""Bounded tcpdump captures on the managed host: start, stop, one-shot, clean up.

Every capture has three bounds, enforced here and not left to tcpdump's own options
(``-G`` counts from the first packet, so it never ends when nothing matches, and
``-C``/``-W`` is a ring buffer, not a stop):

* duration -- our own timer, then SIGINT (tcpdump flushes and prints its counts);
* packets  -- tcpdump's ``-c``;
* bytes    -- the pcap's size, polled every POLL_S (packet-buffered output, ``-U``).

tcpdump always runs as the child of a *supervisor* that watches the three bounds.
For ``state: started`` the supervisor is a detached process (double fork, its own
session) that outlives the Ansible task and still stops at its bounds; for the
one-shot mode (``captured``) it runs inside the module and also stops when the
controller's connection goes away. tcpdump gets PR_SET_PDEATHSIG, so it dies with
its supervisor even if the supervisor is SIGKILLed; every module run also stops any
tcpdump whose supervisor is gone. No tcpdump outlives its capture.

Files live in CAPTURE_ROOT/<id>/ only (root-owned, 0711): the pcap (0600, owned
by the SSH user when the module runs through sudo, so that ``fetch`` works without
``become``), capture.json (parameters and pids) and result.json (how it ended).
A pid is signalled only while its /proc start time is the one recorded.

Stdlib only, Python 3.8+: this file is shipped to the remote host by Ansible.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import ipaddress
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid

from .pcap import LINK_TYPES, PcapError, read_header, summarize_file
from .probe import InputError

CAPTURE_ROOT = "/var/tmp/netcheck-capture"
TCPDUMP = "tcpdump"

DEFAULT_DURATION = 60
MAX_DURATION = 86400
DEFAULT_MAX_PACKETS = 100000
MAX_PACKETS = 100000000
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
MIN_MAX_BYTES = 1024
MAX_MAX_BYTES = 4 * 1024 * 1024 * 1024
DEFAULT_SNAPLEN = 262144
MAX_SNAPLEN = 262144
PROTOCOLS = ("tcp", "udp", "icmp", "icmp6", "ip", "ip6", "arp", "sctp")
DIRECTIONS = ("src", "dst", "src or dst", "src and dst")
ENDED_BY = ("count", "duration", "size", "stopped", "controller_lost", "supervisor_lost", "error")

POLL_S = 0.1
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
STOP_WAIT_S = 15.0

# The options a user writes (module_utils/netcheck/spec.py explains the format); packet_capture's
# argument_spec is made from it.
CAPTURE_SPEC = {
    "state": {"type": "str", "choices": ["captured", "started", "stopped", "absent"], "default": "captured",
              "description": "captured (one-shot), started (in the background), stopped (by id) or absent (removed)."},
    "id": {"type": "str", "description": "The capture's id (required with stopped; generated when omitted)."},
    "filter": {"type": "raw", "description": "A raw BPF expression (a string) or a structured filter (a mapping)."},
    "interface": {"type": "str",
                  "description": "The interface to capture on (default: the one routing to targets[0])."},
    "targets": {"type": "list", "elements": "str", "default": [],
                "description": "Hosts the capture is about; the first one chooses the default interface."},
    "snaplen": {"type": "int", "default": DEFAULT_SNAPLEN, "description": "Bytes kept of every packet (1 to 262144)."},
    "duration": {"type": "int", "default": DEFAULT_DURATION,
                 "description": "Seconds after which the capture stops (1 to 86400)."},
    "max_packets": {"type": "int", "default": DEFAULT_MAX_PACKETS,
                    "description": "Packets after which the capture stops (1 to 100000000)."},
    "max_bytes": {"type": "int", "default": DEFAULT_MAX_BYTES,
                  "description": "Size of the pcap after which the capture stops (1024 to 4294967296 bytes)."},
    "file_name": {"type": "str",
                  "description": "Name of the pcap in the capture's directory (default <interface>.pcap)."},
    "owner": {"type": "str", "description": "User (name or uid) the pcap belongs to (default: the sudo user)."},
    "summary": {"type": "bool", "default": True, "description": "Return the per-flow summary."},
    "max_age": {"type": "int", "default": 0,
                "description": "With state absent and no id, remove only finished captures older than this (s)."},
}

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}\.pcap\Z")
_IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\Z")
_PR_SET_PDEATHSIG = 1


class CaptureError(RuntimeError):
    """A capture could not be started, stopped or read; the message says why."""


# --- validation -----------------------------------------------------------------------

def _integer(value, field, low, high, unit):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("%s: %r is not a whole number of %s" % (field, value, unit))
    if not low <= value <= high:
        raise InputError("%s: %d is out of range (%d to %d %s)" % (field, value, low, high, unit))
    return value


def validate_bounds(duration, max_packets, max_bytes):
    """The three bounds, each checked against its range; the message names the field."""
    return {
        "duration": _integer(duration, "duration", 1, MAX_DURATION, "seconds"),
        "max_packets": _integer(max_packets, "max_packets", 1, MAX_PACKETS, "packets"),
        "max_bytes": _integer(max_bytes, "max_bytes", MIN_MAX_BYTES, MAX_MAX_BYTES, "bytes"),
    }


def validate_snaplen(value, field="snaplen"):
    return _integer(value, field, 1, MAX_SNAPLEN, "bytes")


def validate_id(value, field="id"):
    if not isinstance(value, str) or not _ID.match(value) or ".." in value:
        raise InputError("%s: %r is not a capture id (letters, digits, '_', '-', '.', at most 64, no '..')"
                         % (field, value))
    return value


def validate_file_name(value, field="file_name"):
    """A plain *.pcap file name: the pcap is always written inside the capture's own directory."""
    if not isinstance(value, str) or not _FILE_NAME.match(value) or ".." in value:
        raise InputError("%s: %r must be a plain file name ending in .pcap (it is written in %s/<id>/, "
                         "never at a path of yours)" % (field, value, CAPTURE_ROOT))
    return value


def validate_interface(value, field="interface"):
    """An existing interface of this network namespace, or ``any``."""
    if not isinstance(value, str) or not _IFNAME.match(value):
        raise InputError("%s: %r is not an interface name" % (field, value))
    if value != "any" and not os.path.exists(os.path.join("/sys/class/net", value)):
        known = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else []
        raise InputError("%s: no interface %r on this host (it has: %s, and 'any')"
                         % (field, value, ", ".join(known)))
    return value


def _resolve(host, field):
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError("%s: %r does not resolve (%s)" % (field, host, exc))
    return infos[0][4][0]


def _checked_host(host, field):
    if not isinstance(host, str) or not host or host.startswith("-") or any(c.isspace() for c in host):
        raise InputError("%s: %r is not a host" % (field, host))
    return host


def _checked_net(net, field):
    try:
        return ipaddress.ip_network(str(net), strict=False)
    except ValueError:
        raise InputError("%s: %r is not a network (CIDR, e.g. 10.0.0.0/8)" % (field, net))


def _any_of(value, field, term):
    """One value, or a non-empty list of values of which any matches."""
    if isinstance(value, list):
        if not value:
            raise InputError("%s: an empty list matches nothing" % field)
        parts = [term(item, "%s[%d]" % (field, i)) for i, item in enumerate(value)]
        return parts[0] if len(parts) == 1 else "(%s)" % " or ".join(parts)
    return term(value, field)


def _leaf(spec, field):
    """One structured term: its keys combine with 'and'."""
    allowed = ("host", "net", "port", "proto", "direction")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise InputError("%s: unknown key %r (allowed: %s, or one of and/or/not)"
                         % (field, unknown[0], ", ".join(allowed)))
    direction = spec.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise InputError("%s.direction: %r is not one of %s" % (field, direction, ", ".join(DIRECTIONS)))
    prefix = direction + " " if direction else ""
    terms = []
    if spec.get("proto") is not None:
        if spec["proto"] not in PROTOCOLS:
            raise InputError("%s.proto: %r is not one of %s" % (field, spec["proto"], ", ".join(PROTOCOLS)))
        terms.append(spec["proto"])
    if spec.get("host") is not None:
        terms.append(_any_of(spec["host"], field + ".host", lambda host, where: "%shost %s" % (
            prefix, _resolve(_checked_host(host, where), where))))
    if spec.get("net") is not None:
        terms.append(_any_of(spec["net"], field + ".net", lambda net, where: "%snet %s" % (
            prefix, _checked_net(net, where))))
    if spec.get("port") is not None:
        port = spec["port"]
        if isinstance(port, str) and re.match(r"\d+-\d+\Z", port):
            low, high = (int(p) for p in port.split("-"))
            if not 1 <= low <= high <= 65535:
                raise InputError("%s.port: %r is not a port range (1-65535, low-high)" % (field, port))
            terms.append("%sportrange %d-%d" % (prefix, low, high))
        else:
            if isinstance(port, str) and port.isdigit():
                port = int(port)
            _integer(port, field + ".port", 1, 65535, "(a port)")
            terms.append("%sport %d" % (prefix, port))
    if direction and not any(spec.get(k) is not None for k in ("host", "net", "port")):
        raise InputError("%s.direction: applies to host, net or port, and none is given" % field)
    if not terms:
        raise InputError("%s: an empty term (give host, net, port or proto)" % field)
    return terms[0] if len(terms) == 1 else " and ".join("(%s)" % t for t in terms)


def build_filter(spec, field="filter", depth=0):
    """A BPF expression from a raw string or a structured filter.

    Structured: a mapping with host / net / port / proto (and ``direction``) whose keys
    combine with 'and', or exactly one of ``and: [...]``, ``or: [...]``, ``not: {...}``.
    Every value is validated, so a structured filter can only say what its keys say."""
    if depth > 16:
        raise InputError("%s: nested too deep" % field)
    if spec is None:
        return ""
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("-"):
            raise InputError("%s: %r starts with '-' (a BPF expression never does)" % (field, spec))
        if "\x00" in text:
            raise InputError("%s: contains a NUL byte" % field)
        return text
    if not isinstance(spec, dict):
        raise InputError("%s: a BPF expression (string) or a mapping is required (got %s)"
                         % (field, type(spec).__name__))
    operators = [k for k in ("and", "or", "not") if k in spec]
    if not operators:
        return _leaf(spec, field)
    if len(spec) != 1:
        raise InputError("%s: %r must be alone in its mapping (got %s)"
                         % (field, operators[0], ", ".join(sorted(spec))))
    operator = operators[0]
    operand = spec[operator]
    if operator == "not":
        return "not (%s)" % build_filter(operand, "%s.not" % field, depth + 1)
    if not isinstance(operand, list) or not operand:
        raise InputError("%s.%s: a non-empty list of filters is required" % (field, operator))
    parts = [build_filter(item, "%s.%s[%d]" % (field, operator, i), depth + 1) for i, item in enumerate(operand)]
    if any(not p for p in parts):
        raise InputError("%s.%s: an empty filter cannot be combined" % (field, operator))
    return (" %s " % operator).join("(%s)" % p for p in parts)


def first_host(spec):
    """The first host (or network address) a structured filter names, for the default interface."""
    if isinstance(spec, dict):
        for key in ("host", "net"):
            value = spec.get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                return str(value).split("/", 1)[0] if key == "net" else str(value)
        for key in ("and", "or"):
            for item in spec.get(key) or []:
                found = first_host(item)
                if found:
                    return found
    return None


# --- commands -------------------------------------------------------------------------

def route_interface(address, runner, field="targets[0]"):
    """The interface ``ip route get`` chooses for ``address``."""
    resolved = _resolve(address, field)
    rc, out, err = runner(["ip", "route", "get", resolved])
    match = re.search(r"\bdev (\S+)", out or "")
    if rc != 0 or not match:
        raise InputError("%s: no route to %s to choose the interface from (%s)"
                         % (field, address, (err or out or "").strip()))
    return match.group(1)


def compile_argv(interface, snaplen, bpf):
    """tcpdump -d: compiles the filter for the interface's link type, starts nothing."""
    return [TCPDUMP, "-d", "-i", interface, "-s", str(snaplen), "--"] + ([bpf] if bpf else [])


def capture_argv(interface, snaplen, max_packets, pcap_path, bpf):
    """The capture itself. -Z root keeps tcpdump from switching to the tcpdump user (which
    could not write here, and would clear the parent-death signal); -U writes every
    packet at once so the size bound sees it; --immediate-mode hands every packet over as it
    arrives (libpcap otherwise fills a ring block for up to a second, and the packets of the last
    block are lost when the capture is stopped: a test missed 1 of 5 echoes); -n resolves nothing
    (no DNS traffic)."""
    return ([TCPDUMP, "-i", interface, "-s", str(snaplen), "-c", str(max_packets), "-w", pcap_path,
             "-U", "--immediate-mode", "-n", "-Z", "root", "--"] + ([bpf] if bpf else []))


def check_filter(interface, snaplen, bpf, runner, field="filter"):
    """Compile the filter with tcpdump; its own message names what is wrong."""
    rc, out, err = runner(compile_argv(interface, snaplen, bpf))
    if rc != 0:
        message = (err or out or "").strip().replace("\n", " ")
        if "No such device" in message or "doesn't exist" in message or "no such device" in message:
            raise InputError("interface: %s" % message)
        raise InputError("%s: tcpdump refused %r: %s" % (field, bpf, message))
    return out


def parse_tcpdump_counts(text):
    """tcpdump's own closing counts from its stderr."""
    counts = {"captured": None, "received_by_filter": None, "dropped_by_kernel": None,
              "dropped_by_interface": None}
    patterns = {"captured": r"(\d+) packets? captured", "received_by_filter": r"(\d+) packets? received by filter",
                "dropped_by_kernel": r"(\d+) packets? dropped by kernel",
                "dropped_by_interface": r"(\d+) packets? dropped by interface"}
    for key, pattern in patterns.items():
        found = re.findall(pattern, text or "")
        if found:
            counts[key] = int(found[-1])
    return counts


def local_addresses(runner):
    """This host's own addresses (``ip -o addr``), to tell which side of a flow it is on."""
    rc, out, _err = runner(["ip", "-o", "addr", "show"])
    if rc != 0:
        return []
    return [re.sub(r"/\d+$", "", m) for m in re.findall(r"\binet6? (\S+)", out or "")]


# --- processes ------------------------------------------------------------------------

def _start_time(pid):
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        if fields[0] == "Z":
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive(record):
    """Whether the process recorded as {"pid", "start"} is still that process."""
    if not record or not record.get("pid"):
        return False
    return _start_time(record["pid"]) == record.get("start")


def _signal(record, signum):
    if _alive(record):
        try:
            os.kill(record["pid"], signum)
            return True
        except OSError:
            return False
    return False


def _netns():
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def _die_with_parent():
    """preexec_fn of tcpdump: SIGTERM when the supervisor dies, however it dies."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; the orphan sweep still applies
        pass


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_json(path, data):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.rename(tmp, path)


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


# --- the capture ----------------------------------------------------------------------

def resolve_owner(owner=None):
    """(uid, gid) the pcap belongs to: ``owner`` if given, else the user sudo ran us for, else us."""
    if owner is not None:
        try:
            entry = pwd.getpwuid(int(owner)) if str(owner).isdigit() else pwd.getpwnam(str(owner))
        except (KeyError, ValueError, OverflowError):
            raise InputError("owner: no user %r on this host" % (owner,))
        return entry.pw_uid, entry.pw_gid
    if os.geteuid() == 0 and os.environ.get("SUDO_UID", "").isdigit():
        return int(os.environ["SUDO_UID"]), int(os.environ.get("SUDO_GID", "0") or 0)
    return os.getuid(), os.getgid()


class Capture:
    """One capture's directory and records."""

    def __init__(self, capture_id, root=CAPTURE_ROOT):
        self.id = capture_id
        self.root = root
        self.dir = os.path.join(root, capture_id)
        self.record_path = os.path.join(self.dir, "capture.json")
        self.result_path = os.path.join(self.dir, "result.json")
        self.log_path = os.path.join(self.dir, "tcpdump.log")

    def exists(self):
        return os.path.isfile(self.record_path)

    def record(self):
        return _read_json(self.record_path)

    def result(self):
        return _read_json(self.result_path)

    def running(self):
        record = self.record()
        return bool(record) and self.result() is None and (
            _alive(record.get("supervisor")) or _alive(record.get("tcpdump")))


def ensure_root(root=CAPTURE_ROOT):
    """The module's directory: root-owned, 0711 (others may reach a file they own, not list)."""
    os.makedirs(root, mode=0o711, exist_ok=True)
    info = os.lstat(root)
    if not os.path.isdir(root) or os.path.islink(root):
        raise CaptureError("%s is not a directory" % root)
    if info.st_uid != os.geteuid():
        raise CaptureError("%s belongs to uid %d, not to us: refusing to use it" % (root, info.st_uid))
    os.chmod(root, 0o711)


def new_capture(params, root=CAPTURE_ROOT):
    """Make the capture's directory and record; returns the Capture. Nothing runs yet."""
    ensure_root(root)
    capture_id = params.get("id") or "%s-%s" % (time.strftime("%Y%m%dT%H%M%S"), uuid.uuid4().hex[:8])
    capture = Capture(capture_id, root)
    try:
        os.mkdir(capture.dir, 0o711)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise InputError("id: a capture %r already exists on this host (state=absent removes it)"
                             % capture_id)
        raise
    record = dict(params)
    record.update(id=capture_id, dir=capture.dir, pcap=os.path.join(capture.dir, params["file_name"]),
                  netns=_netns(), status="starting", created_at=_now_iso(), created=time.time(),
                  supervisor=None, tcpdump=None)
    _write_json(capture.record_path, record)
    return capture


class _Stop:
    """Set by SIGTERM/SIGINT/SIGHUP to the supervisor: stop the capture now."""
    requested = False


def supervise(capture, abort=None):
    """Run tcpdump for ``capture`` until a bound, a stop request or ``abort()``; write result.json.

    Returns the result dict. Runs in the detached supervisor or in the module itself."""
    record = capture.record()
    bounds = record["bounds"]
    argv = capture_argv(record["interface"], record["snaplen"], bounds["max_packets"], record["pcap"],
                        record["bpf"])
    log = open(capture.log_path, "wb")
    started = time.monotonic()
    deadline = started + bounds["duration"]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                close_fds=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        log.close()
        result = {"ended_by": "error", "rc": None, "error": "tcpdump did not start: %s" % exc,
                  "started_at": _now_iso(), "ended_at": _now_iso(), "elapsed_s": 0.0}
        _finish(capture, record, result)
        return result
    record["tcpdump"] = {"pid": proc.pid, "start": _start_time(proc.pid)}
    record["started_at"] = _now_iso()
    record["expires"] = time.time() + bounds["duration"]
    _write_json(capture.record_path, record)

    ended_by, ready = None, False
    while True:
        rc = proc.poll()
        if rc is not None:
            ended_by = ended_by or ("count" if rc == 0 else "error")
            break
        if not ready and _listening(capture.log_path):
            ready = True
            record["status"] = "running"
            _write_json(capture.record_path, record)
        if ended_by is None:
            if _Stop.requested:
                ended_by = "stopped"
            elif abort is not None and abort():
                ended_by = "controller_lost"
            elif time.monotonic() >= deadline:
                ended_by = "duration"
            elif _size(record["pcap"]) >= bounds["max_bytes"]:
                ended_by = "size"
            if ended_by is not None:
                stop_sent = time.monotonic()
                proc.send_signal(signal.SIGINT)
        elif time.monotonic() - stop_sent > STOP_GRACE_S:
            proc.kill()
        time.sleep(POLL_S)
    log.close()
    with open(capture.log_path, "rb") as handle:
        stderr = handle.read().decode("utf-8", "replace")
    result = {"ended_by": ended_by, "rc": rc, "started_at": record["started_at"], "ended_at": _now_iso(),
              "elapsed_s": round(time.monotonic() - started, 3), "stderr": _tail(stderr),
              "counts": parse_tcpdump_counts(stderr),
              "error": None if ended_by != "error" else "tcpdump exited with %s: %s" % (rc, _tail(stderr, 500))}
    _finish(capture, record, result)
    return result


def _finish(capture, record, result):
    pcap = record["pcap"]
    try:
        fd = os.open(pcap, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o600)
            os.fchown(fd, record["owner_uid"], record["owner_gid"])
        finally:
            os.close(fd)
    except OSError:
        pass
    record["status"] = "finished"
    _write_json(capture.record_path, record)
    _write_json(capture.result_path, result)


def _listening(log_path):
    try:
        with open(log_path, "rb") as handle:
            return b"listening on" in handle.read(4096)
    except OSError:
        return False


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _tail(text, limit=2000):
    text = (text or "").strip()
    return text[-limit:]


def _on_stop_signal(*_):
    _Stop.requested = True


def wait_ready(capture, timeout=READY_TIMEOUT_S):
    """Wait until tcpdump listens (or the capture ended); True when it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = capture.record() or {}
        if capture.result() is not None:
            return False
        if record.get("status") == "running":
            return True
        time.sleep(0.05)
    return False


def start_detached(capture):
    """Double-fork a supervisor in its own session; return once tcpdump listens."""
    pid = os.fork()
    if pid == 0:  # first child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _become_supervisor(capture)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return _after_start(capture)


def _become_supervisor(capture):
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, 65536)
    os.chdir("/")
    os.umask(0o077)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_stop_signal)
    record = capture.record()
    record["supervisor"] = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    _write_json(capture.record_path, record)
    supervise(capture)


def _after_start(capture):
    if not wait_ready(capture):
        result = capture.result()
        if result is None:
            stop(capture)
            result = capture.result() or {}
        raise CaptureError("tcpdump did not start listening on %s: %s"
                           % ((capture.record() or {}).get("interface"),
                              result.get("error") or result.get("stderr") or "no message"))
    return capture.record()


def controller_gone(fd=1):
    """True once the reader of our stdout (sshd, hence the Ansible controller) has gone away."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
        return any(event & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, event in poller.poll(0))
    except (OSError, ValueError):
        return False


def run_attached(capture, abort=controller_gone):
    """The one-shot mode: supervise in this process, until a bound (or the controller leaves)."""
    record = capture.record()
    record["supervisor"] = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    _write_json(capture.record_path, record)
    old_umask = os.umask(0o077)
    previous = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return supervise(capture, abort=abort)
    finally:
        os.umask(old_umask)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop(capture):
    """Stop a running capture (its supervisor first, tcpdump if the supervisor is gone).

    Returns True when something was running."""
    record = capture.record()
    if record is None:
        return False
    if capture.result() is not None:
        return False
    # only a live tcpdump makes this a change: one that just hit its bound is finishing anyway
    was_running = _alive(record.get("tcpdump"))
    if _signal(record.get("supervisor"), signal.SIGTERM):
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and capture.result() is None and _alive(record.get("supervisor")):
            time.sleep(0.05)
    if capture.result() is None:
        # the supervisor is gone (killed, crashed): end tcpdump ourselves and say so
        record = capture.record()
        was_running = _reap_tcpdump(record) or was_running
        stderr = ""
        try:
            with open(capture.log_path, "rb") as handle:
                stderr = handle.read().decode("utf-8", "replace")
        except OSError:
            pass
        _finish(capture, record, {
            "ended_by": "supervisor_lost", "rc": None, "started_at": record.get("started_at"),
            "ended_at": _now_iso(), "elapsed_s": None, "stderr": _tail(stderr),
            "counts": parse_tcpdump_counts(stderr),
            "error": "the capture's supervisor was gone; its tcpdump was stopped"})
    return was_running


def _reap_tcpdump(record):
    tcpdump = (record or {}).get("tcpdump")
    if not _signal(tcpdump, signal.SIGINT):
        return False
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _alive(tcpdump):
        time.sleep(0.05)
    _signal(tcpdump, signal.SIGKILL)
    return True


def captures(root=CAPTURE_ROOT, netns_only=True):
    """Every capture of this host (this network namespace, when ``netns_only``)."""
    if not os.path.isdir(root):
        return []
    found, here = [], _netns()
    for name in sorted(os.listdir(root)):
        if not _ID.match(name):
            continue
        capture = Capture(name, root)
        record = capture.record()
        if record is None or (netns_only and record.get("netns") != here):
            continue
        found.append(capture)
    return found


def reap_orphans(root=CAPTURE_ROOT):
    """Stop every tcpdump of ours whose supervisor is gone; returns their capture ids."""
    reaped = []
    for capture in captures(root):
        record = capture.record()
        if capture.result() is None and record.get("supervisor") and not _alive(record["supervisor"]) \
                and _alive(record.get("tcpdump")):
            stop(capture)
            reaped.append(capture.id)
    return reaped


def remove(capture):
    """Stop (if running) and delete a capture's directory."""
    stopped = stop(capture)
    shutil.rmtree(capture.dir, ignore_errors=True)
    return stopped


# --- the result -----------------------------------------------------------------------

def file_facts(path):
    """Size, sha256, mode and owner of the pcap, and what its header says."""
    facts = {"path": path, "exists": os.path.isfile(path), "size": None, "sha256": None, "mode": None,
             "owner_uid": None, "link_type": None, "link_type_name": None}
    if not facts["exists"]:
        return facts
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(24)
        digest.update(head)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
        info = os.fstat(handle.fileno())
    facts.update(size=info.st_size, sha256=digest.hexdigest(), mode="%04o" % (info.st_mode & 0o7777),
                 owner_uid=info.st_uid)
    try:
        _order, _divisor, _snaplen, link_type = read_header(head)
        facts.update(link_type=link_type, link_type_name=LINK_TYPES.get(link_type, "unknown"))
    except PcapError:
        pass
    return facts


def report(capture, summarize=True, addresses=()):
    """Everything a finished capture returns: its parameters, how it ended, the file, the flows."""
    record = capture.record()
    result = capture.result() or {}
    facts = file_facts(record["pcap"])
    summary, summary_error = None, None
    if facts["exists"] and facts["size"]:
        try:
            summary = summarize_file(record["pcap"], addresses)
        except (PcapError, OSError, MemoryError) as exc:
            summary_error = str(exc)
    elif not facts["exists"]:
        summary_error = "no pcap was written"
    pcap = dict(facts)
    pcap.update(packets=summary["packets"] if summary else 0,
                first_ts=summary["first_ts"] if summary else None,
                last_ts=summary["last_ts"] if summary else None,
                truncated=summary["truncated"] if summary else False)
    return {
        "id": capture.id,
        "interface": record["interface"],
        "filter": record["bpf"],
        "snaplen": record["snaplen"],
        "bounds": record["bounds"],
        "ended_by": result.get("ended_by"),
        "started_at": result.get("started_at"),
        "ended_at": result.get("ended_at"),
        "elapsed_s": result.get("elapsed_s"),
        "error": result.get("error"),
        "pcap": pcap,
        "tcpdump": dict(result.get("counts") or parse_tcpdump_counts(""), rc=result.get("rc"),
                        stderr=result.get("stderr")),
        "summary": ({"flows": summary["flows"], "icmp_echo": summary["icmp_echo"],
                     "undecoded": summary["undecoded"]} if summarize and summary else None),
        "summary_error": summary_error,
    }


def running_view(capture):
    """What ``state: started`` returns about a running capture."""
    record = capture.record()
    return {
        "id": capture.id, "interface": record["interface"], "filter": record["bpf"],
        "snaplen": record["snaplen"], "bounds": record["bounds"],
        "pid": (record.get("supervisor") or {}).get("pid"),
        "tcpdump_pid": (record.get("tcpdump") or {}).get("pid"),
        "pcap": {"path": record["pcap"]},
        "expires_at": datetime.datetime.fromtimestamp(record.get("expires") or record["created"],
                                                      datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# --- what a new capture needs --------------------------------------------------

def validate_start(p, run):
    """Everything a new capture needs, checked before anything starts (the filter compiled too)."""
    bounds = validate_bounds(p["duration"], p["max_packets"], p["max_bytes"])
    snaplen = validate_snaplen(p["snaplen"])
    if p["id"] is not None:
        validate_id(p["id"])
    bpf = build_filter(p["filter"])
    interface = p["interface"]
    if interface is None:
        if p["targets"]:
            interface = route_interface(p["targets"][0], run, "targets[0]")
        elif first_host(p["filter"]):
            interface = route_interface(first_host(p["filter"]), run, "filter")
        else:
            raise InputError("interface: required when neither targets nor a host or net in the filter "
                             "says which interface routes there")
    interface = validate_interface(interface)
    file_name = validate_file_name(p["file_name"] if p["file_name"] is not None else interface + ".pcap")
    uid, gid = resolve_owner(p["owner"])
    check_filter(interface, snaplen, bpf, run)
    return {"id": p["id"], "interface": interface, "bpf": bpf, "snaplen": snaplen, "bounds": bounds,
            "file_name": file_name, "owner_uid": uid, "owner_gid": gid}


def finished_message(view):
    pcap = view["pcap"]
    return "capture %s on %s ended by %s: %d packets, %s bytes" % (
        view["id"], view["interface"], view["ended_by"], pcap.get("packets") or 0, pcap.get("size") or 0)

# --- the module's whole run ------------------------------------------------------


def manage(params, run, check_mode=False):
    """packet_capture's whole run on its params (CAPTURE_SPEC), each validated before anything
    starts, stops or is removed: ``(result, failed)``, the module's answer and whether the task
    fails. ``run(argv)`` runs a command (the module's run_command). InputError for bad input,
    CaptureError or OSError when the capture itself cannot be made."""
    state = params["state"]
    if params["id"] is not None:
        validate_id(params["id"])
    if params["max_age"] < 0:
        raise InputError("max_age: %d must be 0 or more seconds" % params["max_age"])
    start = validate_start(params, run) if state in ("captured", "started") else None
    reaped = [] if check_mode else reap_orphans()
    if start is not None:
        return _capture(params, start, run, check_mode, reaped)
    if state == "stopped":
        return _stop(params, run, check_mode, reaped)
    return _absent(params, check_mode, reaped)


def _capture(params, start, run, check_mode, reaped):
    if check_mode:
        return dict(changed=True, running=False, id=start["id"], interface=start["interface"], filter=start["bpf"],
                    snaplen=start["snaplen"], bounds=start["bounds"], reaped=reaped,
                    msg="would capture on %s (%s)" % (start["interface"], start["bpf"] or "everything")), False
    capture = new_capture(start)
    if params["state"] == "started":
        start_detached(capture)
        view = running_view(capture)
        return dict(view, changed=True, running=True, reaped=reaped, msg="capture %s started on %s until %s"
                    % (capture.id, view["interface"], view["expires_at"])), False
    run_attached(capture)
    view = report(capture, params["summary"], local_addresses(run))
    if view["ended_by"] == "error":
        return dict(view, changed=True, running=False, reaped=reaped,
                    msg="capture %s failed: %s" % (capture.id, view["error"])), True
    return dict(view, changed=True, running=False, reaped=reaped, msg=finished_message(view)), False


def _stop(params, run, check_mode, reaped):
    capture = Capture(params["id"])
    if not capture.exists():
        raise InputError("id: no capture %r on this host" % params["id"])
    if check_mode:
        running = capture.running()
        return dict(changed=running, running=running, id=capture.id, reaped=reaped,
                    msg="capture %s %s" % (capture.id, "would be stopped" if running else "is not running")), False
    was_running = stop(capture)
    view = report(capture, params["summary"], local_addresses(run))
    return dict(view, changed=was_running, running=False, reaped=reaped, msg=finished_message(view)), False


def _absent(params, check_mode, reaped):
    if params["id"] is not None:
        chosen = [c for c in [Capture(params["id"])] if c.exists()]
    else:
        now = time.time()
        chosen = [c for c in captures() if not c.running()
                  and now - (c.record() or {}).get("created", now) >= params["max_age"]]
    if not check_mode:
        for capture in chosen:
            remove(capture)
    ids = [c.id for c in chosen]
    result = dict(changed=bool(ids), running=False, removed=ids, reaped=reaped,
                  msg="%s %d capture(s)%s" % ("would remove" if check_mode else "removed", len(ids),
                                              (": " + ", ".join(ids)) if ids else ""))
    if params["id"] is not None:
        result["id"] = params["id"]
    return result, False
