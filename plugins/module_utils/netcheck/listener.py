# -*- coding: utf-8 -*-
"""A temporary TCP listener on the managed host: the project's ``sudo socket -s 8080``.

It proves that a port forward (or a firewall opening) works before the real service
exists: something answers on the port for a bounded time, then goes away by itself.

The listener is a detached Python process (``python3 -c LISTENER_CODE ARGS...``, its
own session, no shell, stdio on /dev/null) that serves every connection in a thread,
either echoing what it receives (``echo``) or sending a fixed text and closing
(``reply``), and exits after ``duration`` seconds. A pid file per bind address and
port (JSON: the pid and the start parameters) lets a later run find it again; the
listener removes that file when it exits.

A pid file alone is never trusted: a pid counts as our listener only while it is
alive, runs in this network namespace and its /proc/PID/cmdline is our listener's
for that bind address, port and pid file. Nothing else is ever signalled.

Stdlib only: this file is shipped to the remote host by Ansible.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from .probe import InputError, validate_port

DEFAULT_STATE_DIR = "/run/netcheck-listeners"
DEFAULT_DURATION = 300
MAX_DURATION = 86400
MODES = ("echo", "reply")
DEFAULT_MODE = "reply"
DEFAULT_REPLY = "netcheck listener on port {port}\n"
MAX_REPLY_BYTES = 65536
READY_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
WILDCARDS = ("0.0.0.0", "::")

# The options a user writes (spec.py explains the format): tcp_listener's argument_spec.
LISTENER_SPEC = {
    "port": {"type": "int", "required": True, "description": "TCP port to listen on, 1 to 65535."},
    "bind": {"type": "str", "default": "0.0.0.0",
             "description": "IP address to listen on (0.0.0.0: every IPv4 address, ::: every address)."},
    "state": {"type": "str", "choices": ["started", "stopped"], "default": "started",
              "description": "started or stopped."},
    "duration": {"type": "int", "default": DEFAULT_DURATION,
                 "description": "Seconds after which the listener stops by itself (1 to 86400)."},
    "mode": {"type": "str", "choices": list(MODES), "default": DEFAULT_MODE,
             "description": "reply (send reply, then close) or echo (send back what comes)."},
    "reply": {"type": "str", "description": "Text sent to every connection in reply mode ({port}, {bind} filled in)."},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR, "description": "Directory of the pid files."},
}

# The first line of LISTENER_CODE, so of argv[2] of every listener: how a pid is recognised.
LISTENER_MARKER = "# netcheck tcp_listener v1"

LISTENER_CODE = LISTENER_MARKER + r'''
import json, os, signal, socket, sys, threading, time

bind, port, duration, mode, reply, pid_file = (
    sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
deadline = time.monotonic() + duration
payload = reply.encode("utf-8")
# a test listener must not become a way to exhaust the host's threads or descriptors
slots = threading.BoundedSemaphore(128)


def remove_pid_file():
    # only our own record: a newer listener may have replaced it
    try:
        with open(pid_file) as handle:
            if json.load(handle).get("pid") != os.getpid():
                return
        os.unlink(pid_file)
    except (OSError, ValueError, AttributeError):
        pass


def finish(*_):
    remove_pid_file()
    os._exit(0)


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, finish)


def serve(conn):
    try:
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        if mode == "reply":
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            # read what the client sent before closing: closing with unread data
            # answers RST, which can destroy the reply before the client reads it
            conn.settimeout(1.0)
            while conn.recv(65536):
                pass
        else:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()
        slots.release()


family = socket.AF_INET6 if ":" in bind else socket.AF_INET
try:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if bind == "::":
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual stack
    server.bind((bind, port))
    server.listen(128)
except OSError as exc:
    remove_pid_file()
    os._exit(exc.errno if exc.errno and exc.errno < 256 else 1)

while True:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        break
    server.settimeout(min(0.5, remaining))
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    except OSError:
        time.sleep(0.05)  # EMFILE and friends: do not spin
        continue
    if not slots.acquire(blocking=False):
        conn.close()
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
finish()
'''


class ListenerError(RuntimeError):
    """The listener could not be started or stopped; the message says why and names the port."""


# --- validation -----------------------------------------------------------------------

def validate_bind(value, field="bind"):
    """An IP literal (IPv4 or IPv6, '0.0.0.0' or '::' for every address), returned canonical."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("%s: an IP address is required (got %r)" % (field, value))
    if "%" in value:
        raise InputError("%s: %r: scoped IPv6 addresses are not supported" % (field, value))
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InputError("%s: %r is not an IP address (use 0.0.0.0 or :: for every address; "
                         "names are not resolved)" % (field, value))


def validate_duration(value, field="duration"):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("%s: %r is not a whole number of seconds" % (field, value))
    if not 1 <= value <= MAX_DURATION:
        raise InputError("%s: %s is not between 1 and %d seconds" % (field, value, MAX_DURATION))
    return value


def validate_mode(value, field="mode"):
    if value not in MODES:
        raise InputError("%s: %r is not one of %s" % (field, value, ", ".join(MODES)))
    return value


def validate_reply(value, mode, port, bind, field="reply"):
    """The reply text to send (``{port}`` and ``{bind}`` filled in); None in echo mode."""
    if mode != "reply":
        if value is not None:
            raise InputError("%s: only allowed with mode reply (mode is %s)" % (field, mode))
        return None
    text = DEFAULT_REPLY if value is None else value
    if not isinstance(text, str):
        raise InputError("%s: %r is not text" % (field, text))
    # plain replacement, not str.format: a reply may well contain braces (JSON, templates)
    text = text.replace("{port}", str(port)).replace("{bind}", bind)
    if "\0" in text:
        raise InputError("%s: must not contain NUL characters" % field)
    if len(text.encode("utf-8")) > MAX_REPLY_BYTES:
        raise InputError("%s: longer than %d bytes" % (field, MAX_REPLY_BYTES))
    return text


def validate_state_dir(value, field="state_dir"):
    if value is None:
        return DEFAULT_STATE_DIR
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise InputError("%s: %r is not a directory path" % (field, value))
    return os.path.abspath(value)


def validate_listener(port, bind="0.0.0.0", duration=DEFAULT_DURATION, mode=DEFAULT_MODE, reply=None):
    """Every start parameter checked before anything happens: the canonical parameters as a dict."""
    port = validate_port(port, "port")
    bind = validate_bind(bind)
    duration = validate_duration(duration)
    mode = validate_mode(mode)
    reply = validate_reply(reply, mode, port, bind)
    return {"bind": bind, "port": port, "duration": duration, "mode": mode, "reply": reply}


# --- pid files and identity -------------------------------------------------------------

def _netns_id():
    """This process's network namespace (the inode of /proc/self/ns/net), or "" where unknown.

    Part of the pid file name: hosts that share a filesystem but not a network stack
    (containers, network namespaces) each keep their own record of the same port.
    """
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/net"))
    except OSError:
        return ""


def pid_file_path(port, bind, state_dir=None):
    """``<state_dir>/listener-<netns>-<bind>-<port>.json`` (IPv6 addresses in brackets)."""
    return _pid_file(port, bind, validate_state_dir(state_dir))


def _pid_file(port, bind, state_dir):
    label = "[%s]" % bind if ":" in bind else bind
    netns = _netns_id()
    name = "listener-%s%s-%d.json" % (netns + "-" if netns else "", label, port)
    return os.path.join(state_dir, name)


def _read_record(path):
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or isinstance(record.get("pid"), bool) or not isinstance(record.get("pid"), int):
        return None
    return record if record["pid"] > 0 else None


def _write_record(path, record):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as handle:
        json.dump(record, handle, sort_keys=True)
    os.replace(temporary, path)  # readers never see half a record


def _remove_record(path, pid):
    """Remove the pid file if it still names ``pid`` (a newer listener may own it now)."""
    record = _read_record(path)
    if record is None or record["pid"] == pid:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")[:-1]]


def _same_network_namespace(pid):
    # all namespaces of a machine share /run: a listener of another namespace is not ours here
    try:
        return os.readlink("/proc/%d/ns/net" % pid) == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def is_our_listener(pid, port, bind, path):
    """Whether ``pid`` is alive and is our listener for bind:port recorded in ``path``.

    A zombie has an empty cmdline, so an exited listener does not count either.
    """
    argv = _cmdline(pid)
    return (len(argv) >= 9 and argv[1] == "-c" and argv[2].startswith(LISTENER_MARKER)
            and argv[3] == bind and argv[4] == str(port) and argv[8] == path
            and _same_network_namespace(pid))


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def _not_running(port, bind, path):
    return {"running": False, "pid": None, "port": port, "bind": bind, "mode": None, "reply": None,
            "duration": None, "started_at": None, "expires_at": None, "pid_file": path}


def status(port, bind="0.0.0.0", state_dir=None):
    """Whether our listener runs on bind:port, with its start parameters when it does.

    Keys: running, pid, port, bind, mode, reply, duration, started_at, expires_at
    (ISO 8601, UTC), pid_file. A pid file whose process is gone or is not our listener
    reads as not running.
    """
    port = validate_port(port, "port")
    bind = validate_bind(bind)
    return _status(port, bind, pid_file_path(port, bind, state_dir))


def _status(port, bind, path):
    record = _read_record(path)
    if record is None or not is_our_listener(record["pid"], port, bind, path):
        return _not_running(port, bind, path)
    return {"running": True, "pid": record["pid"], "port": port, "bind": bind,
            "mode": record.get("mode"), "reply": record.get("reply"), "duration": record.get("duration"),
            "started_at": record.get("started_at"), "expires_at": record.get("expires_at"),
            "pid_file": path}


# --- the port and its other owners ---------------------------------------------------------

def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    # local_address is HEXADDR:HEXPORT; state 0A is LISTEN
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError):
            continue
    return inodes


def port_holders(port):
    """Best effort: ``pid (command)`` of the processes listening on ``port`` in this namespace."""
    wanted = {"socket:[%s]" % inode for inode in _listening_inodes(port)}
    holders = []
    if not wanted:
        return holders
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (entry, fd)) in wanted:
                    with open("/proc/%s/comm" % entry) as handle:
                        holders.append("%s (%s)" % (entry, handle.read().strip()))
                    break
            except OSError:
                continue
    return holders


def _port_taken_error(port, bind):
    holders = port_holders(port)
    by = " by pid %s" % ", ".join(holders) if holders else " by another process"
    return ListenerError("port %d: already in use on %s%s, which is not a netcheck listener; "
                         "nothing was stopped" % (port, bind, by))


def _family(bind):
    return socket.AF_INET6 if ":" in bind else socket.AF_INET


def check_port_free(port, bind):
    """Raise ListenerError naming the port when bind:port cannot be bound right now."""
    sock = socket.socket(_family(bind), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener does
        if bind == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _port_taken_error(port, bind)
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenerError("port %d: cannot listen on %s: not an address of this host" % (port, bind))
        raise ListenerError("port %d: cannot listen on %s: %s" % (port, bind, exc.strerror or exc))
    finally:
        sock.close()


def _probe_address(bind):
    # a wildcard listener is reached on loopback; ':: ' is dual stack, so 127.0.0.1 answers too
    return "127.0.0.1" if bind in WILDCARDS else bind


def wait_until_accepting(port, bind, timeout, process=None):
    """Connect to bind:port until it accepts or ``timeout`` seconds pass; True when it accepted.

    Gives up early when ``process`` (a Popen) has exited.
    """
    deadline = time.monotonic() + timeout
    address = _probe_address(bind)
    while True:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((address, port), timeout=min(0.5, max(0.05, deadline - time.monotonic()))):
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# --- start and stop ------------------------------------------------------------------

def _result(changed, info, **extra):
    outcome = dict(info)
    outcome.update(extra)
    outcome["changed"] = changed
    return outcome


def _launch(params, path):
    started = time.time()
    argv = [sys.executable, "-c", LISTENER_CODE, params["bind"], str(params["port"]),
            str(params["duration"]), params["mode"], params["reply"] or "", path]
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd="/")
    record = dict(params, pid=process.pid, started_at=_iso(started), expires_at=_iso(started + params["duration"]))
    _write_record(path, record)
    return process, record


def start(port, bind="0.0.0.0", duration=DEFAULT_DURATION, mode=DEFAULT_MODE, reply=None, state_dir=None,
          check_mode=False, ready_timeout=READY_TIMEOUT):
    """Make our listener run on bind:port with these parameters; idempotent.

    Already running with the same parameters: nothing happens (changed False; its
    lifetime is not extended). Running with other parameters: restarted. Port held by
    another process: ListenerError naming the port, and nothing is signalled. In check
    mode nothing is started or stopped; the result says what would happen.

    Returns status() keys plus ``changed`` and ``restarted``.
    """
    params = validate_listener(port, bind, duration, mode, reply)
    return _start(params, pid_file_path(params["port"], params["bind"], state_dir), check_mode, ready_timeout)


def _start(params, path, check_mode=False, ready_timeout=READY_TIMEOUT):
    current = _status(params["port"], params["bind"], path)
    if current["running"]:
        if all(current[key] == params[key] for key in ("duration", "mode", "reply")):
            return _result(False, current, restarted=False)
        if check_mode:
            return _result(True, current, mode=params["mode"], restarted=True)
        _stop(params["port"], params["bind"], path)
        restarted = True
    else:
        check_port_free(params["port"], params["bind"])
        if check_mode:
            return _result(True, _not_running(params["port"], params["bind"], path),
                           mode=params["mode"], restarted=False)
        restarted = False

    process, record = _launch(params, path)
    if not wait_until_accepting(params["port"], params["bind"], ready_timeout, process):
        code = process.poll()
        if code is None:
            process.kill()  # our own child: it never accepted
            process.wait()
        _remove_record(path, process.pid)
        if code == errno.EADDRINUSE:
            raise _port_taken_error(params["port"], params["bind"])
        if code is None:
            raise ListenerError("port %d: the listener on %s did not accept within %g s"
                                % (params["port"], params["bind"], ready_timeout))
        raise ListenerError("port %d: the listener on %s exited at once (%s)"
                            % (params["port"], params["bind"], os.strerror(code) if code > 0 else "exit %d" % code))
    # reap it if this process lives longer than the listener (the module usually does not)
    threading.Thread(target=process.wait, daemon=True).start()
    info = _status(params["port"], params["bind"], path)
    if not info["running"]:
        raise ListenerError("port %d: the listener on %s started but its pid file %s is missing"
                            % (params["port"], params["bind"], path))
    return _result(True, info, restarted=restarted)


def _wait_gone(pid, port, bind, path, timeout):
    deadline = time.monotonic() + timeout
    while is_our_listener(pid, port, bind, path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(port, bind="0.0.0.0", state_dir=None, check_mode=False, timeout=STOP_TIMEOUT):
    """Stop our listener on bind:port; idempotent (nothing running: changed False).

    Only a pid whose cmdline proves it is our listener is signalled (SIGTERM, then
    SIGKILL after ``timeout``). A stale pid file is removed, which is not a change.
    Returns status() keys (not running; ``mode`` is the stopped listener's) plus
    ``changed`` and ``stopped_pid``.
    """
    port = validate_port(port, "port")
    bind = validate_bind(bind)
    return _stop(port, bind, pid_file_path(port, bind, state_dir), check_mode, timeout)


def _stop(port, bind, path, check_mode=False, timeout=STOP_TIMEOUT):
    current = _status(port, bind, path)
    if not current["running"]:
        if not check_mode and os.path.exists(path):
            record = _read_record(path)
            _remove_record(path, record["pid"] if record else None)
        return _result(False, current, stopped_pid=None)
    pid = current["pid"]
    if check_mode:
        return _result(True, current, stopped_pid=pid)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not is_our_listener(pid, port, bind, path):  # checked again right before each signal
            break
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            break
        if _wait_gone(pid, port, bind, path, timeout):
            break
    if is_our_listener(pid, port, bind, path):
        raise ListenerError("port %d: listener pid %d on %s did not stop" % (port, pid, bind))
    _remove_record(path, pid)
    return _result(True, _not_running(port, bind, path), mode=current["mode"], stopped_pid=pid)


def manage(params, check_mode=False):
    """tcp_listener's whole run on its params (LISTENER_SPEC), each validated once here:
    (listener, before, outcome): the canonical start parameters, status() ahead of the
    change, and what start() or stop() returns."""
    listener = validate_listener(params["port"], params["bind"], params["duration"], params["mode"],
                                 params["reply"])
    path = _pid_file(listener["port"], listener["bind"], validate_state_dir(params["state_dir"]))
    before = _status(listener["port"], listener["bind"], path)
    if params["state"] == "started":
        return listener, before, _start(listener, path, check_mode)
    return listener, before, _stop(listener["port"], listener["bind"], path, check_mode)


__all__ = [
    "DEFAULT_DURATION", "DEFAULT_MODE", "DEFAULT_REPLY", "DEFAULT_STATE_DIR", "LISTENER_CODE", "LISTENER_MARKER",
    "LISTENER_SPEC", "ListenerError", "MAX_DURATION", "MODES", "check_port_free", "manage", "is_our_listener", "pid_file_path",
    "port_holders", "start", "status", "stop", "validate_bind", "validate_duration", "validate_listener",
    "validate_mode", "validate_reply", "validate_state_dir", "wait_until_accepting",
]
