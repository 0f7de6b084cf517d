"""Hypothesis through each probing module's real main(), in-process, with the real AnsibleModule
(its argument spec included), as ansible-core's own unit tests drive modules.

Whatever the input: the module ends with exit_json or fail_json, never a traceback; a
failure with no results names the field it refuses. Targets are loopback literals or junk
only, and name resolution is switched off (a name never leaves this host): nothing but
127.0.0.1 and ::1 is ever contacted.
"""

from __future__ import annotations

import json
import os
import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible.module_utils.testing import patch_module_args
from collection_loader import load_module

CASES = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
# what Ansible's own argument-spec errors say when they name a field
# Outcomes recorded for docs/reliability.md when NETCHECK_FUZZ_TABLE names a file (scripts/reliability_table.py).
RECORD = os.environ.get("NETCHECK_FUZZ_TABLE")
ANSIBLE_FIELD_WORDS = ("argument", "parameter", "value of", "missing required", "Unsupported", "must be one of",
                       "is of type", "elements")


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """Only literals resolve: a generated name must never become a DNS query."""
    real = socket.getaddrinfo

    def numeric_only(host, port, family=0, type=0, proto=0, flags=0):
        if host not in (None, "127.0.0.1", "::1") and not _is_literal(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


def _is_literal(host):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host).split("%", 1)[0])
    except (OSError, ValueError):
        return False
    return str(host).startswith("127.") or str(host).split("%", 1)[0] == "::1"


def run_module(name, args, capsys):
    """main() of a module with ``args``; the JSON it printed (exit_json or fail_json)."""
    module = load_module(name)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def assert_clean_outcome(result, args, module):
    assert "exception" not in result, result.get("exception")
    outcome = "ran, every target as expected"
    if result.get("failed") and not result.get("results"):
        msg = result["msg"]
        named = [key for key in _keys(args) if key in msg]
        assert named or any(word in msg for word in ANSIBLE_FIELD_WORDS), msg
        outcome = "refused, naming the field"
    elif result.get("failed"):
        outcome = "ran, some target missed its expectation"
    if RECORD:
        with open(RECORD, "a") as handle:
            handle.write(json.dumps({"module": module, "outcome": outcome}) + "\n")


def _keys(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
                 st.text(max_size=12), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def maybe(good, bad=junk):
    """Mostly a good value (so that whole cases get through and run), sometimes a bad one."""
    return st.sampled_from([True, True, True, True, False]).flatmap(lambda ok: good if ok else bad)


hosts = maybe(st.sampled_from(["127.0.0.1", "::1", "[::1]"]),
              st.one_of(st.sampled_from(["localhost.invalid", "127.0.0.1;reboot", "300.1.1.1", "", " ", "a b",
                                         "\u00e9t\u00e9"]), junk))
seconds = maybe(st.floats(0.05, 0.3))
labels = maybe(st.text(max_size=6))


@given(targets=maybe(st.lists(st.fixed_dictionaries(
    {"host": hosts, "port": maybe(st.sampled_from([9, 1, 65535]))},
    optional={"timeout": seconds, "send": maybe(st.text(max_size=8)),
              "expect": maybe(st.sampled_from(["^SSH", "^(a+)+$", "."]), st.sampled_from(["(", "x{99999999999}"])),
              "expected": maybe(st.sampled_from(["open", "closed", "rejected", "filtered", "dns_error"])),
              "family": maybe(st.sampled_from(["any", "ipv4", "ipv6"])),
              "name": labels}), min_size=1, max_size=3),
    st.lists(st.fixed_dictionaries({"host": hosts, "port": junk, "colour": junk}), max_size=2)),
       timeout=seconds, max_workers=maybe(st.integers(1, 64), st.integers(-2, 0)))  # noqa: E126 (aligned with the first argument of given)
@CASES
def test_port_check_main_never_crashes_and_names_the_bad_field(capsys, targets, timeout, max_workers):
    args = {"targets": targets, "timeout": timeout, "max_workers": max_workers}
    assert_clean_outcome(run_module("port_check", args, capsys), args, "port_check")


@given(targets=st.lists(maybe(st.fixed_dictionaries(
    {"host": hosts}, optional={"reachable": maybe(st.booleans()), "name": labels}),
    st.fixed_dictionaries({"host": hosts, "ttl": junk})), min_size=1, max_size=3),
    count=maybe(st.integers(1, 2), st.integers(-1, 0)), interval=maybe(st.floats(0.001, 0.02)),
    timeout=seconds, size=maybe(st.integers(0, 1500), st.integers(65508, 70000)),
    method=maybe(st.sampled_from(["auto", "raw"]), st.sampled_from(["carrier pigeon", ""])),
    warn=maybe(st.fixed_dictionaries({}, optional={"rtt_ms": maybe(st.floats(0, 100)),
                                                   "loss_pct": maybe(st.floats(0, 100))})),
    neighbour=maybe(st.booleans()))
@CASES
def test_icmp_ping_main_never_crashes_and_names_the_bad_field(capsys, targets, count, interval, timeout, size,
                                                              method, warn, neighbour):
    args = {"targets": targets, "count": count, "interval": interval, "timeout": timeout, "size": size,
            "method": method, "warn": warn, "neighbour": neighbour}
    assert_clean_outcome(run_module("icmp_ping", args, capsys), args, "icmp_ping")


urls = maybe(st.sampled_from(["http://127.0.0.1:9/", "http://[::1]:9/x", "https://127.0.0.1:9/",
                              "http://127.0.0.1:9/caf\u00e9?q=\u00fc"]),
             st.one_of(st.sampled_from(["ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http://127.0.0.1:0/",
                                        "http://127.0.0.1:9/a b", "http://", "http://x.invalid/"]), junk))


@given(urls=st.lists(st.fixed_dictionaries(
    {"url": urls},
    optional={"method": maybe(st.sampled_from(["GET", "HEAD"]), st.sampled_from(["POST", ""])),
              "status_codes": maybe(st.lists(st.integers(100, 599), min_size=1, max_size=2),
                                    st.lists(st.integers(0, 700), max_size=2)),
              "headers": maybe(st.dictionaries(st.sampled_from(["X-A", "X-Api-Key"]), st.text("abc", max_size=5),
                                               max_size=2),
                               st.dictionaries(st.sampled_from(["bad name", "X-A"]), junk, max_size=2)),
              "expect_headers": maybe(st.dictionaries(st.sampled_from(["x-a", "server"]),
                                                      st.sampled_from([None, "^x"]), max_size=2),
                                      st.dictionaries(st.sampled_from(["a b", "x"]), st.just("("), min_size=1)),
              "follow_redirects": maybe(st.sampled_from(["none", "safe", "all"])),
              "ca_path": maybe(st.none(), st.sampled_from(["/etc/passwd", "/nonexistent", "/etc"])),
              "timeout": seconds,
              "keep_headers_across_origins": maybe(st.booleans()), "name": labels}), min_size=1, max_size=2))
@CASES
def test_http_check_main_never_crashes_and_names_the_bad_field(capsys, urls):
    args = {"urls": urls}
    assert_clean_outcome(run_module("http_check", args, capsys), args, "http_check")


def test_a_non_string_send_or_name_is_refused_not_turned_into_a_string(capsys):
    for bad, field in (({"send": 42}, "targets[0].send"), ({"name": 7}, "targets[0].name")):
        args = {"targets": [dict({"host": "127.0.0.1", "port": 9}, **bad)]}
        result = run_module("port_check", args, capsys)
        assert result["failed"] and result["msg"].startswith(field), result["msg"]
    result = run_module("icmp_ping", {"targets": [{"host": "127.0.0.1", "name": 7}]}, capsys)
    assert result["msg"].startswith("targets[0].name: must be a string")
    result = run_module("http_check", {"urls": [{"url": "http://127.0.0.1:9/", "name": ["x"]}]}, capsys)
    assert result["msg"].startswith("urls[0].name: must be a string")
    assert re.search(r"^\d+ of \d+|^urls|^targets", result["msg"])


@pytest.mark.parametrize("module, args, message", [
    ("icmp_ping", {"targets": [{"host": "127.0.0.1"}], "warn": 5}, "warn: expected a mapping, got int"),
    ("icmp_ping", {"targets": [{"host": "127.0.0.1"}], "crit": False}, "crit: expected a mapping, got bool"),
    ("icmp_ping", {"targets": [{"host": "127.0.0.1"}], "crit": ""}, "crit: expected a mapping, got str"),
    ("port_check", {"targets": [{"host": "127.0.0.1", "port": 9}, 7]}, "targets[1]: expected a mapping, got int"),
    ("http_check", {"urls": [True]}, "urls[0]: expected a mapping, got bool"),
])
def test_a_value_that_crashes_ansible_cores_own_validation_fails_naming_the_field(capsys, module, args, message):
    # ansible-core 2.19 raises a bare TypeError for most of these (found by the fuzz cases above)
    result = run_module(module, args, capsys)
    assert result["failed"] is True and message in result["msg"]


def test_an_infinite_number_fails_naming_the_field(capsys):
    result = run_module("port_check", {"targets": [{"host": "127.0.0.1", "port": float("inf")}]}, capsys)
    assert result["failed"] is True and result["msg"] == "targets[0].port: not a finite number"
