"""tcp_listener over SSH against lab hosts: a listener started on dst, proven with port_check from src."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from harness import wait_for

PORT = 9090
REPLY = "netcheck listener on port %d\n" % PORT
RETURNED = {"changed", "pid", "port", "bind", "mode", "expires_at", "running", "msg"}


def process_exited(pid):
    """The lab shares the machine's pid namespace: gone from /proc, or a zombie not reaped yet."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def state_dir(tmp_path, dst):
    # every lab namespace shares this file system: a directory of this test's own
    DST_NAMESPACE[:] = [dst.namespace]
    return str(tmp_path / "listeners")


@pytest.fixture
def listener(ansible, dst, state_dir):
    """Run tcp_listener on dst with this test's state_dir; returns the task result.

    Every bind:port it touched is stopped at teardown.
    """
    touched = set()

    def run(check=False, **args):
        args.setdefault("port", PORT)
        args["state_dir"] = state_dir
        touched.add((args["port"], args.get("bind", "0.0.0.0")))
        return ansible.module(dst.name, "tcp_listener", args, check=check).result(dst.name)

    yield run
    for port, bind in touched:
        # every listener writes its pid file before it is reported started and keeps it while it
        # runs: no file, nothing of this test's left to stop (and one SSH round trip saved)
        if os.path.exists(pid_file(state_dir, port, bind)):
            ansible.module(dst.name, "tcp_listener", {"port": port, "bind": bind, "state": "stopped",
                                                      "state_dir": state_dir})


def pid_file(state_dir, port, bind="0.0.0.0"):
    """The record the listeners of dst's network namespace keep (named by that namespace's inode)."""
    netns = os.stat("/run/netns/%s" % DST_NAMESPACE[0]).st_ino if DST_NAMESPACE else ""
    label = "[%s]" % bind if ":" in bind else bind
    return os.path.join(state_dir, "listener-%s-%s-%d.json" % (netns, label, port))


DST_NAMESPACE = []  # set by the state_dir fixture: pid file names carry the namespace's inode


def probe(ansible, src, host, port=PORT, **target):
    """port_check from src to host:port; returns that target's result."""
    run = ansible.module(src.name, "port_check", {"targets": [dict(host=host, port=port, timeout=2, **target)]})
    return run.result(src.name)["results"][0]


def test_started_listener_answers_another_host_with_its_reply(ansible, listener, src, dst, state_dir):
    before = datetime.datetime.now(datetime.timezone.utc)
    result = listener(duration=60)
    assert not result.get("failed"), result.get("msg")
    assert RETURNED <= set(result) and not {"reply", "duration", "stopped_pid", "restarted"} & set(result)
    assert result["changed"] is True and result["running"] is True
    assert (result["port"], result["bind"], result["mode"]) == (PORT, "0.0.0.0", "reply")
    assert isinstance(result["pid"], int) and os.path.exists("/proc/%d" % result["pid"])
    expires = datetime.datetime.fromisoformat(result["expires_at"])
    assert before + datetime.timedelta(seconds=58) <= expires <= before + datetime.timedelta(seconds=65)
    assert result["msg"].startswith("listener on 0.0.0.0:%d started (pid %d" % (PORT, result["pid"]))
    with open(pid_file(state_dir, PORT)) as handle:
        assert json.load(handle)["pid"] == result["pid"]

    entry = probe(ansible, src, dst.ip, send="hello\r\n", expect=r"^netcheck listener on port %d\n$" % PORT)
    assert entry["state"] == "open" and entry["ok"] is True, entry["error"]
    assert entry["detail"]["banner"] == REPLY


def test_second_start_with_the_same_parameters_is_not_a_change(listener):
    first = listener(duration=60)
    again = listener(duration=60)
    assert again["changed"] is False and again["running"] is True
    assert again["pid"] == first["pid"] and again["expires_at"] == first["expires_at"]
    assert "already running" in again["msg"]


def test_start_with_another_reply_restarts_and_the_new_reply_is_served(ansible, listener, src, dst):
    first = listener(duration=60)
    second = listener(duration=60, reply="forwarded to {bind}:{port}\n")
    assert second["changed"] is True and second["pid"] != first["pid"]
    assert wait_for(lambda: process_exited(first["pid"]), timeout=5)
    entry = probe(ansible, src, dst.ip, expect="^forwarded to 0.0.0.0:%d$" % PORT)
    assert entry["ok"] is True, entry["error"]


def test_echo_mode_sends_back_what_another_host_sent(ansible, listener, src, dst):
    assert listener(mode="echo", duration=60)["mode"] == "echo"
    entry = probe(ansible, src, dst.ip, send="netcheck-echo-4711\n", expect="netcheck-echo-4711")
    assert entry["ok"] is True, entry["error"]
    assert entry["detail"]["banner"] == "netcheck-echo-4711\n"


def test_dual_stack_listener_answers_over_ipv6_and_ipv4(ansible, listener, src, dst, state_dir):
    assert listener(bind="::", duration=60)["bind"] == "::"
    assert os.path.exists(pid_file(state_dir, PORT, "::"))  # so that the teardown finds it
    for address in (dst.ip6, dst.ip):
        entry = probe(ansible, src, address, expect="^netcheck listener on port %d" % PORT)
        assert entry["ok"] is True, (address, entry["error"])


def test_check_mode_reports_a_start_and_starts_nothing(ansible, listener, src, dst, state_dir):
    result = listener(check=True, duration=60)
    assert result["changed"] is True
    assert result["running"] is False and result["pid"] is None and result["expires_at"] is None
    assert "would be started" in result["msg"]
    assert probe(ansible, src, dst.ip, expected="closed")["ok"] is True
    assert not os.path.exists(state_dir)


def test_check_mode_stop_leaves_the_listener_running(ansible, listener, src, dst):
    pid = listener(duration=60)["pid"]
    result = listener(check=True, state="stopped")
    assert result["changed"] is True and result["running"] is True and result["pid"] == pid
    assert probe(ansible, src, dst.ip)["state"] == "open"


def test_stop_closes_the_port_and_a_second_stop_is_not_a_change(ansible, listener, src, dst, state_dir):
    pid = listener(duration=60)["pid"]
    stopped = listener(state="stopped")
    assert stopped["changed"] is True and stopped["running"] is False
    assert stopped["pid"] is None and stopped["expires_at"] is None and stopped["mode"] == "reply"
    assert wait_for(lambda: process_exited(pid), timeout=5)
    assert not os.path.exists(pid_file(state_dir, PORT))
    entry = probe(ansible, src, dst.ip, expected="closed")
    assert entry["state"] == "closed" and entry["ok"] is True
    again = listener(state="stopped")
    assert again["changed"] is False and again["running"] is False and again["mode"] is None


def test_listener_is_gone_by_itself_after_its_duration(ansible, listener, src, dst, state_dir):
    result = listener(port=PORT + 1, duration=2)
    assert result["running"] is True
    path = pid_file(state_dir, PORT + 1)
    assert os.path.exists(path)
    # each port_check run takes about a second; 2 s of life plus the half-second accept tick
    closed = wait_for(lambda: probe(ansible, src, dst.ip, port=PORT + 1)["state"] == "closed", timeout=15)
    assert closed, "the listener still answered 15 s after a 2 s duration"
    assert wait_for(lambda: process_exited(result["pid"]), timeout=5)
    assert not os.path.exists(path)


def test_port_held_by_another_service_fails_naming_the_port_and_the_service_keeps_running(
        ansible, listener, lab, src, dst):
    web = lab.config.web_port  # the lab's own web server listens there
    result = listener(port=web, duration=60)
    assert result["failed"] is True
    assert result["msg"].startswith("port %d: already in use on 0.0.0.0 by pid" % web)
    assert "nothing was stopped" in result["msg"]
    entry = probe(ansible, src, dst.ip, port=web, send="HEAD / HTTP/1.0\r\n\r\n", expect=r"^HTTP/1\.[01] 200")
    assert entry["ok"] is True, entry["error"]


@pytest.mark.parametrize("args, message", [
    ({"bind": "localhost"}, "bind: 'localhost' is not an IP address"),
    ({"duration": 0}, "duration: 0 is not between 1 and 86400 seconds"),
    ({"mode": "echo", "reply": "hi"}, "reply: only allowed with mode reply"),
], ids=["bind", "duration", "reply"])
def test_bad_input_fails_naming_the_field_and_starts_nothing(listener, state_dir, args, message):
    result = listener(**args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not os.path.exists(state_dir)


def test_diff_shows_the_listener_before_and_after(ansible, dst, state_dir, tmp_path):
    playbook = tmp_path / "listener.yml"
    playbook.write_text(json.dumps([{
        "hosts": dst.name, "gather_facts": False,
        "tasks": [{"netcheck.netcheck.tcp_listener": {"port": PORT, "duration": 60, "state_dir": state_dir}}],
    }]))
    run = ansible.playbook(playbook, "--check", "--diff")
    result = run.result(dst.name)
    assert result["changed"] is True
    assert result["diff"] == {"before": {"state": "stopped"},
                              "after": {"state": "started", "mode": "reply", "duration": 60, "reply": REPLY}}
