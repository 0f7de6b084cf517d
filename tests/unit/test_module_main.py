"""Every module's main(), driven in-process as ansible-core's own unit tests drive modules: real
AnsibleModule, arguments through patch_module_args, exit_json / fail_json caught. Argument handling
(unknown keys, field-naming errors, nothing done on bad input) and check mode. Traffic goes to
loopback only; port_forward runs against a stand-in iptables (never the machine's own tables)."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common import arg_spec
from ansible.module_utils.testing import patch_module_args

from collection_loader import load_module


class _Exit(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


@pytest.fixture(autouse=True)
def caught_exits(monkeypatch):
    def exit_json(self, **result):
        raise _Exit(False, result)

    def fail_json(self, msg, **result):
        raise _Exit(True, dict(result, msg=msg))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run(name, args, check_mode=False):
    """(failed, result) of the module's main() with these arguments."""
    module = load_module(name)
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(_Exit) as caught:
            module.main()
    return caught.value.failed, caught.value.result


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- port_check -------------------------------------------------------------------------

def test_port_check_rejects_an_unknown_target_key_naming_its_path():
    failed, result = run("port_check", {"targets": [{"host": "127.0.0.1", "port": 22, "expected_sate": "open"}]})
    assert failed and "targets.expected_sate" in result["msg"]


def test_port_check_names_a_bad_field_and_probes_nothing():
    failed, result = run("port_check", {"targets": [{"host": "127.0.0.1", "port": 70000}]})
    assert failed and "targets[0].port: 70000 is not a port" in result["msg"] and result["results"] == []


def test_port_check_runs_in_check_mode_and_changes_nothing():
    port = free_port()
    failed, result = run("port_check", {"targets": [{"host": "127.0.0.1", "port": port, "expected": "closed"}]},
                         check_mode=True)
    assert not failed and result["changed"] is False
    assert [r["state"] for r in result["results"]] == ["closed"]


@pytest.fixture
def deprecations(monkeypatch):
    """The deprecations AnsibleModule's argument validation emits during the test, as (msg, version)."""
    seen = []
    monkeypatch.setattr(arg_spec, "deprecate", lambda msg, version=None, **more: seen.append((msg, version)))
    return seen


def test_port_check_takes_expected_state_as_a_deprecated_alias_and_returns_expected(deprecations):
    port = free_port()
    failed, result = run("port_check", {"targets": [{"host": "127.0.0.1", "port": port, "expected_state": "closed"},
                                                    {"host": "127.0.0.1", "port": port, "expected": "closed"}]})
    assert not failed and [r["state"] for r in result["results"]] == ["closed", "closed"]
    for entry in result["results"]:  # one key in the result, whichever spelling was given
        assert entry["ok"] is True and entry["detail"]["expected"] == "closed"
        assert "expected_state" not in entry["detail"]
    assert deprecations == [("Alias 'targets[0].expected_state' is deprecated. See the module docs for more "
                             "information", "1.0.0")]


def test_port_check_without_the_alias_prints_no_deprecation(deprecations):
    failed, result = run("port_check", {"targets": [{"host": "127.0.0.1", "port": free_port(), "expected": "closed"}]})
    assert not failed and result["results"][0]["detail"]["expected"] == "closed"
    assert deprecations == []


# --- http_check -------------------------------------------------------------------------

def test_http_check_rejects_an_unknown_url_key_naming_its_path():
    failed, result = run("http_check", {"urls": [{"url": "http://127.0.0.1/", "status_code": [200]}]})
    assert failed and "urls.status_code" in result["msg"]


def test_http_check_names_a_bad_url_and_sends_nothing():
    failed, result = run("http_check", {"urls": [{"url": "ftp://127.0.0.1/"}]})
    assert failed and result["msg"].startswith("urls[0].url: unsupported scheme") and result["results"] == []


def test_http_check_runs_in_check_mode_against_loopback():
    port = free_port()
    failed, result = run("http_check", {"urls": [{"url": "http://127.0.0.1:%d/" % port}], "timeout": 2},
                         check_mode=True)
    assert failed and result["changed"] is False  # nothing listens there: the URL fails, the task says so
    assert result["results"][0]["state"] == "failed" and result["results"][0]["detail"]["phase"] == "connect"


# --- icmp_ping ----------------------------------------------------------------------------

def test_icmp_ping_rejects_an_unknown_key_and_a_bad_count():
    failed, result = run("icmp_ping", {"targets": [{"host": "127.0.0.1", "reachable": True, "rechable": 1}]})
    assert failed and "targets.rechable" in result["msg"]
    failed, result = run("icmp_ping", {"targets": [{"host": "127.0.0.1"}], "count": 0})
    assert failed and result["msg"].startswith("count:") and result["results"] == []


def test_icmp_ping_runs_in_check_mode_against_loopback():
    failed, result = run("icmp_ping", {"targets": [{"host": "127.0.0.1"}], "count": 1, "neighbour": False},
                         check_mode=True)
    assert not failed and result["changed"] is False and result["results"][0]["detail"]["received"] == 1


# --- port_forward (a stand-in iptables) -----------------------------------------------------

@pytest.fixture
def fake_iptables(monkeypatch):
    """iptables-nft with an empty nat table; records every command; nothing real is run."""
    calls = []
    nat = {"text": "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"}

    def run_command(self, argv, data=None, binary_data=False, **kwargs):
        calls.append(list(argv))
        name = os.path.basename(argv[0])
        if name.endswith("-save"):
            return 0, nat["text"] if "nft" in name else "", ""
        if argv[1:] == ["--version"]:
            return 0, "iptables v1.8.9 (nf_tables)", ""
        return 0, "", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/sbin/" + name)
    return calls


def test_port_forward_rejects_an_unknown_forward_key_before_any_command(fake_iptables, tmp_path):
    failed, result = run("port_forward", {"forwards": [{"from_port": 80, "to_port": 8080, "prot": "tcp"}],
                                          "state_dir": str(tmp_path)})
    assert failed and "forwards.prot" in result["msg"] and fake_iptables == []


@pytest.mark.parametrize("args, message", [
    ({"tag": "my tag"}, "tag: 'my tag'"),
    ({"rollback_timeout": 4000}, "rollback_timeout: 4000"),
    ({"lock_timeout": 0}, "lock_timeout: 0"),
    ({"forwards": [{"from_port": 80, "to_addr": "not-an-ip"}]}, "forwards[0].to_addr"),
])
def test_port_forward_names_the_bad_field_before_any_command(fake_iptables, tmp_path, args, message):
    failed, result = run("port_forward", dict({"forwards": [{"from_port": 80, "to_port": 8080}],
                                               "state_dir": str(tmp_path)}, **args))
    assert failed and message in result["msg"] and fake_iptables == []


def test_port_forward_check_mode_says_what_it_would_add_and_restores_nothing(fake_iptables, tmp_path):
    failed, result = run("port_forward", {"forwards": [{"from_port": 80, "to_port": 8080}],
                                          "state_dir": str(tmp_path)}, check_mode=True)
    assert not failed and result["changed"] is True and len(result["added"]) == 1
    assert result["forwards"][0]["to_port"] == 8080
    assert not any(os.path.basename(argv[0]).endswith("-restore") for argv in fake_iptables)


# --- tcp_listener ----------------------------------------------------------------------------

def test_tcp_listener_names_a_bad_bind_and_starts_nothing(tmp_path):
    failed, result = run("tcp_listener", {"port": free_port(), "bind": "localhost", "state_dir": str(tmp_path)})
    assert failed and result["msg"].startswith("bind: 'localhost' is not an IP address")
    assert os.listdir(tmp_path) == []


def test_tcp_listener_check_mode_would_start_and_starts_nothing(tmp_path):
    port = free_port()
    failed, result = run("tcp_listener", {"port": port, "bind": "127.0.0.1", "state_dir": str(tmp_path)},
                         check_mode=True)
    assert not failed and result["changed"] is True and result["running"] is False
    assert os.listdir(tmp_path) == []


# --- public_ip ----------------------------------------------------------------------------------

def test_public_ip_needs_url_without_imds():
    failed, result = run("public_ip", {"imds": False})
    assert failed and "imds is False but all of the following are missing: url" in result["msg"]


def test_public_ip_check_mode_asks_the_url_and_returns_the_shared_shape():
    from lab import whatismyip
    server = whatismyip.EchoServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        failed, result = run("public_ip", {"imds": False, "url": server.url}, check_mode=True)
    finally:
        server.shutdown()
        server.server_close()
    assert not failed and result["changed"] is False
    assert result["public_ip"] == "127.0.0.1" and result["source"] == "url" and result["endpoint"] == server.url
    assert [r["state"] for r in result["results"]] == ["answered"]


@pytest.mark.parametrize("name, args, message", [
    ("port_check", {"targets": [{"host": "127.0.0.1", "port": 22, "name": 5}]}, "targets[0].name: must be a string"),
    ("port_check", {"targets": [{"host": "127.0.0.1", "port": 22, "send": 5}]}, "targets[0].send: must be a string"),
    ("http_check", {"urls": [{"url": "http://127.0.0.1/", "name": ["x"]}]}, "urls[0].name: must be a string"),
    ("icmp_ping", {"targets": [{"host": "127.0.0.1", "name": 5}]}, "targets[0].name: must be a string"),
])
def test_a_label_or_text_that_is_not_a_string_is_refused_not_converted(name, args, message):
    failed, result = run(name, args)
    assert failed and message in result["msg"] and result["results"] == []


# --- path_probe ---------------------------------------------------------------------------

def test_path_probe_names_a_bad_field_and_probes_nothing():
    failed, result = run("path_probe", {"targets": [{"host": "127.0.0.1", "protocol": "tcp"}]})
    assert failed and "targets[0].port: a tcp trace needs the port" in result["msg"]
    failed, result = run("path_probe", {"targets": [{"host": "127.0.0.1", "port": 22}], "max_hops": 99})
    assert failed and "max_hops: 99 is not between 1 and 64" in result["msg"] and "paths" not in result
    failed, result = run("path_probe", {"targets": [{"host": "127.0.0.1", "port": 22, "hops": 3}]})
    assert failed and "targets.hops" in result["msg"]


def test_path_probe_traces_a_loopback_listener_in_check_mode_and_returns_what_return_documents():
    import yaml
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    try:
        failed, result = run("path_probe", {"targets": [{"host": "127.0.0.1", "port": server.getsockname()[1],
                                                         "name": "self"}]}, check_mode=True)
    finally:
        server.close()
    assert not failed and result["changed"] is False
    (entry,) = result["paths"]
    assert entry["trace"]["stop"]["code"] == "REACHED" and entry["trace"]["hops"][0]["answer"] == "syn_ack"
    assert entry["mtu"] is None and entry["error"] is None and entry["name"] == "self"
    documented = yaml.safe_load(load_module("path_probe").RETURN)["paths"]["contains"]
    assert set(entry) == set(documented)
