"""Unit tests of netcheck.listener: validation, and real listener processes on the loopback
interface only (127.0.0.1 and ::1), each with its own temporary state directory."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import time

import pytest
from loopback import needs_ipv6

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import listener
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.listener import LISTENER_MARKER, ListenerError, pid_file_path, start, status, stop
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import InputError

LOOPBACK = "127.0.0.1"


def wait_for(condition, timeout=5.0):
    """Poll ``condition`` until true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.05)


def process_gone(pid):
    return not os.path.exists("/proc/%d" % pid)


def read_all(address, port, send=None, timeout=3.0):
    with socket.create_connection((address, port), timeout=timeout) as conn:
        if send is not None:
            conn.sendall(send)
            conn.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def refuses(address, port):
    try:
        socket.create_connection((address, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "listeners")


@pytest.fixture
def listeners(state_dir):
    """start() with this test's state_dir; every listener started is stopped at teardown."""
    started = []

    def run(port, bind=LOOPBACK, **options):
        options.setdefault("duration", 30)
        started.append((port, bind))
        return start(port, bind, state_dir=state_dir, **options)

    yield run
    for port, bind in started:
        stop(port, bind, state_dir=state_dir)


@pytest.fixture
def stranger():
    """An unrelated process (``sleep 30``) that no listener code may ever kill."""
    process = subprocess.Popen(["sleep", "30"])

    def exec_done():
        with open("/proc/%d/cmdline" % process.pid, "rb") as handle:
            return handle.read() == b"sleep\x0030\x00"

    # until exec completes the pid is a copy of this very process; make sure it is really `sleep`
    assert wait_for(exec_done), "sleep 30 did not start"
    yield process
    process.kill()
    process.wait()


# --- validation ---------------------------------------------------------------------------

BAD_INPUT = [
    (dict(port=0), "port: 0 is not a port"),
    (dict(port=70000), "port: 70000 is not a port"),
    (dict(port="8080"), "port: '8080' is not a port number"),
    (dict(port=True), "port: True is not a port number"),
    (dict(port=9000, bind="localhost"), "bind: 'localhost' is not an IP address"),
    (dict(port=9000, bind=""), "bind: an IP address is required"),
    (dict(port=9000, bind="10.0.0.300"), "bind: '10.0.0.300' is not an IP address"),
    (dict(port=9000, bind="0.0.0.0; touch /tmp/pwned"), "bind: '0.0.0.0; touch /tmp/pwned' is not an IP address"),
    (dict(port=9000, bind="fe80::1%lo"), "bind: 'fe80::1%lo': scoped IPv6 addresses are not supported"),
    (dict(port=9000, duration=0), "duration: 0 is not between 1 and 86400 seconds"),
    (dict(port=9000, duration=86401), "duration: 86401 is not between 1 and 86400 seconds"),
    (dict(port=9000, duration=1.5), "duration: 1.5 is not a whole number of seconds"),
    (dict(port=9000, duration="60"), "duration: '60' is not a whole number of seconds"),
    (dict(port=9000, mode="chargen"), "mode: 'chargen' is not one of echo, reply"),
    (dict(port=9000, mode="echo", reply="hello"), "reply: only allowed with mode reply"),
    (dict(port=9000, reply="a\0b"), "reply: must not contain NUL"),
    (dict(port=9000, reply="x" * 70000), "reply: longer than 65536 bytes"),
]


@pytest.mark.parametrize("options, message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_names_the_field_and_starts_nothing(state_dir, options, message):
    with pytest.raises(InputError) as raised:
        start(state_dir=state_dir, **options)
    assert message in str(raised.value)
    assert not os.path.exists(state_dir)


def test_default_reply_names_the_port_and_placeholders_are_filled_without_breaking_braces():
    assert listener.validate_listener(9090)["reply"] == "netcheck listener on port 9090\n"
    reply = listener.validate_listener(81, "::", reply='{"port": {port}, "bind": "{bind}"}')["reply"]
    assert reply == '{"port": 81, "bind": "::"}'
    assert listener.validate_listener(9090, mode="echo")["reply"] is None


def test_bind_is_returned_in_canonical_form_and_names_the_pid_file(state_dir):
    assert listener.validate_bind("0::0") == "::"
    netns = os.readlink("/proc/self/ns/net").strip("net:[]")  # one record per network namespace
    assert pid_file_path(80, "::", state_dir) == os.path.join(state_dir, "listener-%s-[::]-80.json" % netns)
    assert pid_file_path(80, "0.0.0.0", state_dir) == os.path.join(state_dir, "listener-%s-0.0.0.0-80.json" % netns)


def test_state_dir_defaults_to_run():
    assert listener.validate_state_dir(None) == "/run/netcheck-listeners"
    assert pid_file_path(9090, "0.0.0.0").startswith("/run/netcheck-listeners/")


# --- a real listener on 127.0.0.1 ---------------------------------------------------------

def test_reply_mode_sends_the_reply_then_closes(listeners, closed_port):
    result = listeners(closed_port)
    assert result["changed"] is True and result["running"] is True
    assert read_all(LOOPBACK, closed_port) == b"netcheck listener on port %d\n" % closed_port
    # a client that talks first still gets the whole reply, not a reset
    assert read_all(LOOPBACK, closed_port, send=b"hello\r\n" * 100) == b"netcheck listener on port %d\n" % closed_port


def test_echo_mode_echoes_every_connection_at_once(listeners, closed_port):
    listeners(closed_port, mode="echo")
    first = socket.create_connection((LOOPBACK, closed_port), timeout=3)
    second = socket.create_connection((LOOPBACK, closed_port), timeout=3)
    with first, second:
        # the first connection stays open while the second is served: one thread each
        second.sendall(b"second\n")
        assert second.recv(100) == b"second\n"
        first.sendall(b"first\n")
        assert first.recv(100) == b"first\n"


def test_started_listener_is_detached_and_recorded_in_its_pid_file(listeners, closed_port, state_dir):
    before = time.time()
    result = listeners(closed_port, duration=120, reply="hi {port}")
    pid = result["pid"]
    assert os.getsid(pid) == pid  # its own session: the caller's hangup does not reach it
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = handle.read().split(b"\0")
    assert argv[1] == b"-c" and argv[2].startswith(LISTENER_MARKER.encode())  # python -c, no shell
    path = pid_file_path(closed_port, LOOPBACK, state_dir)
    with open(path) as handle:
        record = json.load(handle)
    assert record["pid"] == pid
    assert {k: record[k] for k in ("bind", "port", "duration", "mode", "reply")} == {
        "bind": LOOPBACK, "port": closed_port, "duration": 120, "mode": "reply", "reply": "hi %d" % closed_port}
    expires = datetime.datetime.fromisoformat(result["expires_at"]).timestamp()
    assert before + 120 - 1 <= expires <= time.time() + 120 + 1
    assert status(closed_port, LOOPBACK, state_dir)["running"] is True


def test_second_start_with_the_same_parameters_changes_nothing(listeners, closed_port):
    first = listeners(closed_port)
    again = listeners(closed_port)
    assert again["changed"] is False and again["restarted"] is False
    assert again["pid"] == first["pid"] and again["expires_at"] == first["expires_at"]


def test_start_with_other_parameters_restarts_the_listener(listeners, closed_port):
    first = listeners(closed_port, reply="old\n")
    second = listeners(closed_port, reply="new\n")
    assert second["changed"] is True and second["restarted"] is True
    assert second["pid"] != first["pid"]
    assert wait_for(lambda: process_gone(first["pid"]))
    assert read_all(LOOPBACK, closed_port) == b"new\n"


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check_mode"])
def test_port_held_by_another_socket_is_a_clear_error_and_the_owner_is_untouched(
        state_dir, listening_port, check_mode):
    with pytest.raises(ListenerError) as raised:
        start(listening_port, LOOPBACK, duration=30, state_dir=state_dir, check_mode=check_mode)
    message = str(raised.value)
    assert message.startswith("port %d: already in use on %s" % (listening_port, LOOPBACK))
    assert "pid %d" % os.getpid() in message and "nothing was stopped" in message
    assert status(listening_port, LOOPBACK, state_dir)["running"] is False
    assert not os.path.exists(pid_file_path(listening_port, LOOPBACK, state_dir))
    # the owner's socket still listens and accepts
    socket.create_connection((LOOPBACK, listening_port), timeout=1).close()


def test_wildcard_listener_conflicts_with_a_loopback_owner(state_dir, listening_port):
    with pytest.raises(ListenerError, match="port %d: already in use on 0.0.0.0" % listening_port):
        start(listening_port, "0.0.0.0", duration=30, state_dir=state_dir)


def test_stop_closes_the_port_removes_the_pid_file_and_is_idempotent(listeners, closed_port, state_dir):
    pid = listeners(closed_port, mode="echo")["pid"]
    stopped = stop(closed_port, LOOPBACK, state_dir=state_dir)
    assert stopped["changed"] is True and stopped["running"] is False
    assert stopped["stopped_pid"] == pid and stopped["mode"] == "echo"
    assert wait_for(lambda: process_gone(pid))
    assert refuses(LOOPBACK, closed_port)
    assert not os.path.exists(pid_file_path(closed_port, LOOPBACK, state_dir))
    again = stop(closed_port, LOOPBACK, state_dir=state_dir)
    assert again["changed"] is False and again["stopped_pid"] is None and again["mode"] is None


def write_pid_file(state_dir, port, pid):
    path = pid_file_path(port, LOOPBACK, state_dir)
    os.makedirs(state_dir, exist_ok=True)
    with open(path, "w") as handle:
        json.dump({"pid": pid, "bind": LOOPBACK, "port": port, "duration": 30, "mode": "reply",
                   "reply": "netcheck listener on port %d\n" % port}, handle)
    return path


def test_stop_never_kills_a_process_that_is_not_our_listener(state_dir, closed_port, stranger):
    path = write_pid_file(state_dir, closed_port, stranger.pid)
    assert status(closed_port, LOOPBACK, state_dir)["running"] is False
    result = stop(closed_port, LOOPBACK, state_dir=state_dir)
    assert result["changed"] is False and result["stopped_pid"] is None
    assert stranger.poll() is None  # still running
    assert not os.path.exists(path)  # the stale record is gone


def test_start_over_a_stale_pid_file_leaves_its_process_alone(listeners, state_dir, closed_port, stranger):
    write_pid_file(state_dir, closed_port, stranger.pid)
    result = listeners(closed_port)
    assert result["changed"] is True and result["pid"] != stranger.pid
    assert read_all(LOOPBACK, closed_port) == b"netcheck listener on port %d\n" % closed_port
    assert stranger.poll() is None


def test_our_listener_on_another_port_is_not_taken_for_this_one(listeners, state_dir, closed_port, listening_port):
    other = listeners(closed_port)
    # a forged record: the right kind of process, but recorded for a different port
    write_pid_file(state_dir, listening_port, other["pid"])
    assert stop(listening_port, LOOPBACK, state_dir=state_dir)["changed"] is False
    assert status(closed_port, LOOPBACK, state_dir)["pid"] == other["pid"]


def test_listener_exits_by_itself_after_its_duration(state_dir, closed_port):
    pid = start(closed_port, LOOPBACK, duration=1, state_dir=state_dir)["pid"]
    path = pid_file_path(closed_port, LOOPBACK, state_dir)
    assert os.path.exists(path)
    assert wait_for(lambda: process_gone(pid), timeout=6.0), "listener %s still alive after 6 s" % pid
    assert not os.path.exists(path)
    assert refuses(LOOPBACK, closed_port)
    assert status(closed_port, LOOPBACK, state_dir)["running"] is False


def test_check_mode_start_reports_the_change_and_starts_nothing(state_dir, closed_port):
    result = start(closed_port, LOOPBACK, duration=30, mode="echo", state_dir=state_dir, check_mode=True)
    assert result["changed"] is True and result["running"] is False and result["pid"] is None
    assert result["mode"] == "echo"
    assert refuses(LOOPBACK, closed_port)
    assert not os.path.exists(state_dir)


def test_check_mode_stop_and_restart_leave_the_listener_running(listeners, closed_port, state_dir):
    pid = listeners(closed_port)["pid"]
    assert stop(closed_port, LOOPBACK, state_dir=state_dir, check_mode=True)["changed"] is True
    would = start(closed_port, LOOPBACK, duration=30, mode="echo", state_dir=state_dir, check_mode=True)
    assert would["changed"] is True and would["restarted"] is True
    assert status(closed_port, LOOPBACK, state_dir)["pid"] == pid
    assert read_all(LOOPBACK, closed_port) == b"netcheck listener on port %d\n" % closed_port


@needs_ipv6
def test_dual_stack_listener_answers_on_ipv4_and_ipv6_loopback(listeners, closed_port):
    result = listeners(closed_port, bind="::")
    assert result["bind"] == "::"
    expected = b"netcheck listener on port %d\n" % closed_port
    assert read_all("::1", closed_port) == expected
    assert read_all(LOOPBACK, closed_port) == expected
