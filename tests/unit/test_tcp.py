"""Unit tests of netcheck.tcp: input parsing (including property tests), and probes against
REAL sockets on the loopback interface only (127.0.0.1 and ::1; 'localhost' is the only name
ever resolved). Verdicts that would need another network (filtered, unreachable) are checked
with a fake socket instead."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import socketserver
import struct
import sys
import threading
import time

import pytest
from loopback import needs_ipv6, serving
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import outcome, tcp
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import ICMP_CODES
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS, InputError, validate_host
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import (
    DEFAULT_TIMEOUT, MAX_READ_BYTES, TcpTarget, check_target, check_targets, parse_targets,
)

OPTION_NAMES = list(TcpTarget.__slots__)


# --- a tiny threaded server on 127.0.0.1 ----------------------------------------------


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog of 5 drops SYNs of concurrent probes


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def loopback_server(script, address="127.0.0.1"):
    """Serve on ``address`` (loopback only): ``script(conn)`` runs for every connection."""
    assert address in ("127.0.0.1", "::1")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(5)
            try:
                script(self.request)
            except OSError:
                pass

    server = (_ThreadingServer6 if address == "::1" else _ThreadingServer)((address, 0), Handler)
    with serving(server) as port:
        yield port


def _hold(conn):
    """Keep the connection open until the client closes it (or 5 s pass)."""
    while conn.recv(1024):
        pass


def banner_then_close(banner):
    def script(conn):
        conn.sendall(banner)
    return script


def banner_then_hold(banner):
    def script(conn):
        conn.sendall(banner)
        _hold(conn)
    return script


def echo(received=None):
    def script(conn):
        data = conn.recv(4096)
        if received is not None:
            received.append(data)
        if data:
            conn.sendall(b"echo:" + data)
        _hold(conn)
    return script


def reset_after_first_message(conn):
    """Wait for the client's first bytes, then close with SO_LINGER 0: the client gets an RST.

    Waiting for the client's ``send`` makes sure the reset comes after its connect() returned.
    """
    conn.recv(1024)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def target(host="127.0.0.1", port=1, timeout=2.0, send=None, expect=None, expected="open",
           family="any", name=None):
    return TcpTarget(host, port, timeout, send, re.compile(expect) if expect is not None else None,
                     expected, family, name)


# --- parse_targets: good input ---------------------------------------------------------

def test_parse_targets_builds_tcp_targets_from_good_input():
    raw = [
        {"host": "127.0.0.1", "port": 22},
        {"host": "[::1]", "port": 443, "timeout": 1, "send": "QUIT\r\n", "expect": r"^220 ",
         "expected": "closed", "family": "ipv6", "name": "lab-h1"},
    ]
    first, second = parse_targets(raw)
    assert isinstance(first, TcpTarget) and isinstance(second, TcpTarget)
    assert (first.host, first.port, first.send, first.expect, first.expected, first.family, first.name) == (
        "127.0.0.1", 22, None, None, "open", "any", None)
    assert first.label == "127.0.0.1:22"
    assert (second.host, second.port, second.timeout, second.send) == ("::1", 443, 1.0, "QUIT\r\n")
    assert second.expect.pattern == r"^220 " and second.expect.search("220 ready")
    assert (second.expected, second.family, second.name) == ("closed", "ipv6", "lab-h1")
    assert second.label == "[::1]:443"


def test_parse_targets_applies_the_default_timeout_when_none_is_given():
    missing, explicit_none, own = parse_targets(
        [{"host": "a", "port": 1}, {"host": "b", "port": 2, "timeout": None}, {"host": "c", "port": 3, "timeout": 0.5}],
        default_timeout=7.5)
    assert missing.timeout == 7.5
    assert explicit_none.timeout == 7.5
    assert own.timeout == 0.5


def test_parse_targets_default_timeout_is_three_seconds():
    assert DEFAULT_TIMEOUT == 3.0
    assert parse_targets([{"host": "a", "port": 1}])[0].timeout == 3.0


def test_parse_targets_accepts_a_tuple_and_keeps_the_order():
    hosts = [t.host for t in parse_targets(({"host": "b", "port": 1}, {"host": "a", "port": 2}))]
    assert hosts == ["b", "a"]


@pytest.mark.parametrize("state", tcp.STATES)
def test_parse_targets_accepts_every_state_as_expected(state):
    assert parse_targets([{"host": "a", "port": 1, "expected": state}])[0].expected == state


def test_parse_targets_takes_expected_state_as_the_old_name_of_expected():
    old, both = parse_targets([{"host": "a", "port": 1, "expected_state": "closed"},
                               {"host": "a", "port": 2, "expected": "filtered", "expected_state": "filtered"}])
    assert (old.expected, both.expected) == ("closed", "filtered")
    assert "expected_state" not in tcp.TcpTarget.__slots__  # one name inside: the alias is read, never kept


def test_parse_targets_refuses_expected_and_its_old_name_disagreeing():
    with pytest.raises(InputError, match=r"^targets\[0\]\.expected_state: 'closed' differs from expected 'open'"):
        parse_targets([{"host": "a", "port": 1, "expected": "open", "expected_state": "closed"}])


def test_a_bad_old_name_is_named_as_written():
    with pytest.raises(InputError, match=r"^targets\[0\]\.expected_state: 'up' is not one of"):
        parse_targets([{"host": "a", "port": 1, "expected_state": "up"}])


@pytest.mark.parametrize("family", ["any", "ipv4", "ipv6"])
def test_parse_targets_accepts_every_family(family):
    assert parse_targets([{"host": "a", "port": 1, "family": family}])[0].family == family


# --- parse_targets: bad input names the field ------------------------------------------

GOOD = {"host": "127.0.0.1", "port": 22}


@pytest.mark.parametrize("raw_targets, prefix", [
    ([GOOD, {"host": "127.0.0.1", "port": 0}], "targets[1].port: "),
    ([GOOD, {"host": "127.0.0.1", "port": 65536}], "targets[1].port: "),
    ([GOOD, {"host": "127.0.0.1", "port": "22"}], "targets[1].port: "),
    ([GOOD, {"host": "127.0.0.1", "port": True}], "targets[1].port: "),
    ([{"host": "127.0.0.1"}], "targets[0].port: "),
    ([{"port": 22}], "targets[0].host: "),
    ([{"host": "", "port": 22}], "targets[0].host: "),
    ([{"host": "a;reboot", "port": 22}], "targets[0].host: "),
    ([{"host": "$(id)", "port": 22}], "targets[0].host: "),
    ([{"host": "300.1.1.1", "port": 22}], "targets[0].host: "),
    ([{"host": 10, "port": 22}], "targets[0].host: "),
    ([{"host": "a", "port": 22, "timeout": 0}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": -1}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": float("nan")}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": float("inf")}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": 1e9}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": "3"}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "timeout": True}], "targets[0].timeout: "),
    ([{"host": "a", "port": 22, "expect": "("}], "targets[0].expect: "),
    ([{"host": "a", "port": 22, "expect": 5}], "targets[0].expect: "),
    ([{"host": "a", "port": 22, "expected": "up"}], "targets[0].expected: "),
    ([{"host": "a", "port": 22, "expected": "error"}], "targets[0].expected: "),
    ([{"host": "a", "port": 22, "family": "inet"}], "targets[0].family: "),
    ([{"host": "a", "port": 22, "send": 5}], "targets[0].send: "),
    ([{"host": "a", "port": 22, "name": ["x"]}], "targets[0].name: "),
    ([{"host": "a", "port": 22, "prot": 23}], "targets[0].prot: unknown key; known: host, port"),
    ([GOOD, GOOD, {"host": "a", "port": 22, "zeta": 1, "alpha": 2}], "targets[2].zeta: unknown key; known: host, port"),
    ([GOOD, "127.0.0.1:22"], "targets[1]: expected a mapping"),
    ([None], "targets[0]: expected a mapping"),
    ([], "targets: give at least one target"),
    ((), "targets: give at least one target"),
    (None, "targets: give at least one target"),
    ("127.0.0.1:22", "targets: give at least one target"),
    (GOOD, "targets: give at least one target"),
])
def test_parse_targets_rejects_bad_input_with_a_message_starting_with_the_field_path(raw_targets, prefix):
    with pytest.raises(InputError) as caught:
        parse_targets(raw_targets)
    assert str(caught.value).startswith(prefix), str(caught.value)


def test_parse_targets_reports_the_first_bad_field_of_the_first_bad_target():
    with pytest.raises(InputError, match=r"^targets\[1\]\.host: "):
        parse_targets([GOOD, {"host": "bad host", "port": 0}, {"host": "x", "port": -1}])


def test_parse_targets_rejects_a_bad_default_timeout():
    with pytest.raises(InputError, match=r"^timeout: "):
        parse_targets([GOOD], default_timeout=0)


def test_parse_targets_uses_the_given_field_name_in_messages():
    with pytest.raises(InputError, match=r"^checks\[0\]\.port: "):
        parse_targets([{"host": "a", "port": 0}], field="checks")


def test_parse_targets_rejects_a_list_as_family_with_input_error():
    with pytest.raises(InputError, match=r"^targets\[0\]\.family: "):
        parse_targets([{"host": "a", "port": 22, "family": ["ipv4"]}])


def test_parse_targets_rejects_a_non_string_key_with_input_error():
    with pytest.raises(InputError, match=r"^targets\[0\]\.1: unknown key"):
        parse_targets([{"host": "a", "port": 22, 1: "x"}])


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 1500 + ")" * 1500])
def test_parse_targets_rejects_a_pathological_expect_with_input_error(pattern):
    with pytest.raises(InputError, match=r"^targets\[0\]\.expect: "):
        parse_targets([{"host": "a", "port": 22, "expect": pattern}])


# --- parse_targets: property tests -----------------------------------------------------

VALUES = st.one_of(
    st.text(max_size=24), st.integers(), st.floats(), st.none(), st.booleans(),
    st.lists(st.one_of(st.text(max_size=6), st.integers(), st.none()), max_size=3),
)
KEYS = st.one_of(st.sampled_from(OPTION_NAMES), st.text(max_size=12))
RAW_TARGET = st.dictionaries(KEYS, VALUES, max_size=9)
# A valid host and port, and for each other option either a valid value or a random one:
# reaches the checks of the later fields too.
OPTION_VALUES = {
    "timeout": st.one_of(st.none(), st.floats(min_value=0.001, max_value=3600), VALUES),
    "send": st.one_of(st.none(), st.text(max_size=12), VALUES),
    "expect": st.one_of(st.none(), st.text(max_size=12), VALUES),
    "expected": st.one_of(st.sampled_from(tcp.STATES), VALUES),
    "family": st.one_of(st.sampled_from(sorted(tcp.FAMILIES)), VALUES),
    "name": st.one_of(st.none(), st.text(max_size=12), VALUES),
}
NEARLY_GOOD_TARGET = st.fixed_dictionaries(
    {"host": st.sampled_from(["127.0.0.1", "::1", "[::1]", "localhost", "db1.example.internal"]),
     "port": st.integers(min_value=1, max_value=65535)},
    optional=OPTION_VALUES,
)
RAW_TARGETS = st.one_of(
    st.lists(NEARLY_GOOD_TARGET, min_size=1, max_size=4),
    st.lists(st.one_of(NEARLY_GOOD_TARGET, RAW_TARGET, VALUES), min_size=1, max_size=4),
    st.one_of(RAW_TARGET, VALUES),  # not a list at all
)
DEFAULT_TIMEOUTS = st.one_of(st.just(3.0), st.floats(min_value=0.1, max_value=60), VALUES)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hits_known_family_bug(raw_targets):
    """Input that reaches the unhashable-family TypeError, pinned by
    test_parse_targets_rejects_a_list_as_family_with_input_error (xfail); drop this filter once fixed."""
    return isinstance(raw_targets, list) and any(
        isinstance(raw, dict) and isinstance(raw.get("family"), list) and raw["family"] for raw in raw_targets)


@contextlib.contextmanager
def no_sockets():
    """Make every way of opening a socket or resolving a name fail loudly, and record attempts."""
    attempts = []

    def forbidden(name):
        def call(*args, **kwargs):
            attempts.append((name, args))
            raise AssertionError("parse_targets used the network: socket.%s%r" % (name, args))
        return call

    with pytest.MonkeyPatch.context() as patch:
        for name in ("socket", "create_connection", "getaddrinfo", "gethostbyname"):
            patch.setattr(socket, name, forbidden(name))
        yield attempts


@PROPERTY
@given(raw_targets=RAW_TARGETS, default_timeout=DEFAULT_TIMEOUTS)
def test_parse_targets_only_ever_returns_targets_or_raises_input_error_and_opens_no_socket(raw_targets,
                                                                                           default_timeout):
    assume(not _hits_known_family_bug(raw_targets))
    with no_sockets() as attempts:
        try:
            targets = parse_targets(raw_targets, default_timeout)
        except InputError as exc:
            assert str(exc).startswith(("targets", "timeout: ")), str(exc)
        else:
            assert len(targets) == len(raw_targets)
            assert all(isinstance(t, TcpTarget) for t in targets)
            assert all(t.expected in tcp.STATES and t.family in tcp.FAMILIES for t in targets)
    assert attempts == []


def test_the_no_sockets_guard_really_blocks_sockets():
    with no_sockets() as attempts:
        with pytest.raises(AssertionError):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(AssertionError):
            socket.getaddrinfo("localhost", 22)
    assert [name for name, _ in attempts] == ["socket", "getaddrinfo"]


# Whitespace (every code point str.isspace() calls whitespace) and shell metacharacters.
WHITESPACE = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
METACHARACTERS = list(";&|$`<>(){}'\"\\*!")
FORBIDDEN = WHITESPACE + METACHARACTERS
# Mostly the ASCII ones a shell cares about, sometimes any Unicode space.
BAD_CHARACTER = st.one_of(st.sampled_from(METACHARACTERS + list(" \t\n\r\x0b\x0c")), st.sampled_from(WHITESPACE))
HOSTISH = st.one_of(
    st.sampled_from(["", "localhost", "127.0.0.1", "::1", "[::1]", "fe80::1%eth0", "db1.example.internal", "."]),
    st.text(alphabet="abz019.-_:%[]", max_size=16),
    st.text(max_size=8),
)


@PROPERTY
@given(prefix=HOSTISH, bad=BAD_CHARACTER, suffix=st.one_of(st.just(""), HOSTISH))
@example(prefix="localhost", bad=" ", suffix="")
@example(prefix="fe80::1%eth0", bad=";", suffix="id")
@example(prefix="127.0.0.1", bad="\t", suffix="")
@example(prefix="localhost", bad="\n", suffix="")
@example(prefix="::1%lo", bad="\n", suffix="")
@example(prefix="", bad="$", suffix="(id)")
def test_validate_host_never_accepts_whitespace_or_shell_metacharacters(prefix, bad, suffix):
    value = prefix + bad + suffix
    with pytest.raises(InputError):
        validate_host(value, "targets[0].host")


# --- check_target against real loopback sockets ----------------------------------------

def test_open_port_is_reported_open_and_ok(listening_port):
    result = check_target(target(port=listening_port, name="me"))
    assert tuple(result) == RESULT_KEYS
    assert result["target"] == "127.0.0.1:%d" % listening_port
    assert (result["kind"], result["state"], result["ok"], result["error"]) == ("tcp", "open", True, None)
    detail = result["detail"]
    assert detail["address"] == "127.0.0.1" and detail["family"] == "ipv4"
    assert detail["local_address"] == "127.0.0.1"
    assert (detail["host"], detail["port"], detail["name"]) == ("127.0.0.1", listening_port, "me")
    assert detail["errno"] is None and detail["banner"] is None and detail["expect_matched"] is None


def test_open_port_timings_have_resolve_connect_and_total_with_total_not_less_than_connect(listening_port):
    timings = check_target(target(port=listening_port))["timings"]
    assert set(timings) == {"resolve_ms", "connect_ms", "total_ms"}
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert timings["total_ms"] >= timings["connect_ms"]
    assert timings["total_ms"] >= timings["resolve_ms"]


def test_closed_port_is_reported_closed_fast(closed_port):
    start = time.monotonic()
    result = check_target(target(port=closed_port, timeout=5))
    elapsed = time.monotonic() - start
    assert result["state"] == "closed"
    assert result["ok"] is False
    assert result["detail"]["errno"] == errno.ECONNREFUSED
    assert result["detail"]["errno_name"] == "ECONNREFUSED"
    assert "RST" in result["error"]
    assert "local_address" not in result["detail"]
    assert set(result["timings"]) == {"resolve_ms", "connect_ms", "total_ms"}
    assert result["timings"]["total_ms"] >= result["timings"]["connect_ms"]
    assert elapsed < 1.0, "a refused connection must not wait for the 5 s timeout"


def test_expected_closed_on_a_closed_port_is_ok_without_error(closed_port):
    result = check_target(target(port=closed_port, expected="closed"))
    assert (result["state"], result["ok"], result["error"]) == ("closed", True, None)
    assert result["detail"]["expected"] == "closed"


def test_expected_closed_on_an_open_port_fails_saying_what_was_found(listening_port):
    result = check_target(target(port=listening_port, expected="closed"))
    assert (result["state"], result["ok"]) == ("open", False)
    assert result["error"] == "open, expected closed"


def test_banner_matching_expect_is_ok_and_kept():
    with loopback_server(banner_then_close(b"SSH-2.0-netcheck_test\r\n")) as port:
        result = check_target(target(port=port, expect=r"^SSH-2\.0-"))
    assert (result["state"], result["ok"], result["error"]) == ("open", True, None)
    assert result["detail"]["expect_matched"] is True
    assert result["detail"]["banner"].startswith("SSH-2.0-netcheck_test")
    assert result["detail"]["expect"] == r"^SSH-2\.0-"
    assert set(result["timings"]) == {"resolve_ms", "connect_ms", "expect_ms", "total_ms"}
    assert result["timings"]["total_ms"] >= result["timings"]["connect_ms"]


def test_send_is_delivered_and_the_echoed_answer_matches_expect():
    received = []
    with loopback_server(echo(received)) as port:
        result = check_target(target(port=port, send="ping 42\n", expect=r"echo:ping \d+"))
    assert received == [b"ping 42\n"]
    assert result["ok"] is True and result["detail"]["expect_matched"] is True
    assert result["detail"]["banner"] == "echo:ping 42\n"


def test_send_without_expect_is_delivered_and_ok_without_banner():
    received = []
    with loopback_server(echo(received)) as port:
        result = check_target(target(port=port, send="hello\r\n"))
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    assert received == [b"hello\r\n"]
    assert (result["state"], result["ok"], result["error"]) == ("open", True, None)
    assert result["detail"]["banner"] is None and result["detail"]["expect_matched"] is None


def test_expect_matches_text_that_arrives_over_several_reads():
    def script(conn):
        conn.sendall(b"220 first line\r\n")
        time.sleep(0.1)
        conn.sendall(b"250 second line\r\n")
        _hold(conn)

    with loopback_server(script) as port:
        result = check_target(target(port=port, expect=r"250 second", timeout=2))
    assert result["ok"] is True and result["detail"]["expect_matched"] is True
    # The first read held only the first line: the probe kept reading until the pattern matched.
    assert result["detail"]["banner"] == "220 first line\r\n250 second line\r\n"
    assert result["timings"]["expect_ms"] >= 80


def test_expect_mismatch_when_the_server_closes_is_open_but_not_ok_and_names_the_pattern():
    with loopback_server(banner_then_close(b"220 smtp.example ESMTP\r\n")) as port:
        start = time.monotonic()
        result = check_target(target(port=port, expect=r"^SSH-2\.0-", timeout=3))
        elapsed = time.monotonic() - start
    assert result["state"] == "open"
    assert result["ok"] is False
    assert result["detail"]["expect_matched"] is False
    assert result["detail"]["banner"] == "220 smtp.example ESMTP\r\n"
    # The error quotes the pattern with repr(): '^SSH-2\\.0-'
    assert repr(r"^SSH-2\.0-") in result["error"]
    assert elapsed < 2.0, "EOF must end the read, not the timeout"


def test_expect_mismatch_on_a_silent_server_waits_about_the_timeout():
    with loopback_server(banner_then_hold(b"")) as port:
        start = time.monotonic()
        result = check_target(target(port=port, expect="never", timeout=0.3))
        elapsed = time.monotonic() - start
    assert (result["state"], result["ok"], result["detail"]["expect_matched"]) == ("open", False, False)
    assert result["detail"]["banner"] == ""
    assert "'never'" in result["error"] and "0.3 s" in result["error"]
    assert result["timings"]["expect_ms"] >= 250
    assert 0.25 <= elapsed < 2.0


def test_banner_is_capped_at_4096_bytes():
    with loopback_server(banner_then_hold(b"x" * 10000)) as port:
        result = check_target(target(port=port, expect="NEVER", timeout=1))
    assert MAX_READ_BYTES == 4096
    assert result["detail"]["banner"] == "x" * MAX_READ_BYTES
    assert result["detail"]["expect_matched"] is False


def test_a_reset_during_the_conversation_is_open_but_not_ok_with_the_errno():
    with loopback_server(reset_after_first_message) as port:
        # The reset comes at once; the 5 s only guard a loaded machine.
        result = check_target(target(port=port, send="hi\r\n", expect="hello", timeout=5))
    assert (result["state"], result["ok"]) == ("open", False)
    assert result["detail"]["expect_matched"] is False
    assert result["detail"]["errno_name"] == "ECONNRESET"
    assert "hello" in result["error"]


@needs_ipv6
def test_ipv6_loopback_open_port_is_open():
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.bind(("::1", 0))
    server.listen(8)
    try:
        port = server.getsockname()[1]
        (parsed,) = parse_targets([{"host": "[::1]", "port": port, "timeout": 2}])
        result = check_target(parsed)
    finally:
        server.close()
    assert result["target"] == "[::1]:%d" % port
    assert (result["state"], result["ok"]) == ("open", True)
    assert result["detail"]["address"] == "::1"
    assert result["detail"]["family"] == "ipv6"
    assert result["detail"]["local_address"] == "::1"


@needs_ipv6
def test_ipv6_loopback_closed_port_is_closed():
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.bind(("::1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = check_target(target(host="::1", port=port))
    assert result["state"] == "closed" and result["detail"]["family"] == "ipv6"


@needs_ipv6
def test_ipv6_banner_expect_on_loopback():
    with loopback_server(banner_then_close(b"+OK pop3 ready\r\n"), address="::1") as port:
        result = check_target(target(host="::1", port=port, expect=r"^\+OK"))
    assert result["ok"] is True and result["detail"]["family"] == "ipv6"


def test_localhost_resolves_and_connects(listening_port):
    result = check_target(target(host="localhost", port=listening_port, family="ipv4"))
    assert result["target"] == "localhost:%d" % listening_port
    assert (result["state"], result["ok"]) == ("open", True)
    assert result["detail"]["address"] == "127.0.0.1"
    assert result["detail"]["host"] == "localhost"


def test_family_ipv4_for_an_ipv6_literal_is_a_dns_error():
    # getaddrinfo of a literal: no packet leaves the machine.
    result = check_target(target(host="::1", port=22, family="ipv4"))
    assert result["state"] == "dns_error"
    assert result["ok"] is False
    assert result["error"].startswith("name resolution failed: ")
    assert result["detail"]["errno_name"] and result["detail"]["errno_name"].startswith("EAI_")
    assert result["detail"]["address"] is None
    assert set(result["timings"]) == {"resolve_ms", "total_ms"}


def test_unresolvable_name_is_a_dns_error_naming_the_resolver_code(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    result = check_target(target(host="nosuch.invalid", port=22))
    assert result["state"] == "dns_error"
    assert result["error"] == "name resolution failed: Name or service not known"
    assert result["detail"]["errno"] == socket.EAI_NONAME
    assert result["detail"]["errno_name"] == "EAI_NONAME"


def test_expected_dns_error_is_ok(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    result = check_target(target(host="gone.invalid", port=22, expected="dns_error"))
    assert (result["state"], result["ok"], result["error"]) == ("dns_error", True, None)


# --- verdicts that need another network: the classifier, fed what the kernel reports ----
# (the same faults made for real, with iptables in a lab host: tests/integration/test_faults.py)

def _icmp(kind, code, sender, family=socket.AF_INET, code_errno=errno.EHOSTUNREACH):
    origin = tcp.SO_EE_ORIGIN_ICMP6 if family == socket.AF_INET6 else tcp.SO_EE_ORIGIN_ICMP
    return {"origin": origin, "family": family, "type": kind, "code": code, "errno": code_errno, "from": sender}


V4_UNREACH_CODES = sorted(ICMP_CODES[("ipv4", 3)])
V6_UNREACH_CODES = sorted(ICMP_CODES[("ipv6", 1)])


@pytest.mark.parametrize("family, kind, code", [(socket.AF_INET, 3, c) for c in V4_UNREACH_CODES]
                         + [(socket.AF_INET6, 1, c) for c in V6_UNREACH_CODES])
@pytest.mark.parametrize("sender", ["target", "router"])
def test_every_icmp_unreachable_from_the_target_or_a_router_is_rejected_with_its_type_code_and_sender(
        family, kind, code, sender):
    # nmap: "filtered (port-unreach / host-unreach / net-unreach / admin-prohibited ...)" for every code
    six = family == socket.AF_INET6
    address = {("target", False): "10.0.0.2", ("router", False): "10.0.9.1",
               ("target", True): "fd00::2", ("router", True): "fd00:9::1"}[sender, six]
    evidence = _icmp(kind, code, address, family)
    state, reason = tcp.classify_connect(evidence["errno"], evidence, "fd00::1" if six else "10.0.0.1")
    assert (state, reason) == ("rejected", "icmp_unreach")
    record = outcome.outcome(reason, "connect", evidence["errno"], tcp.icmp_facts(evidence))
    assert (record["icmp_type"], record["icmp_code"], record["icmp_from"]) == (kind, code, address)
    assert record["icmp_family"] == ("ipv6" if six else "ipv4")
    assert "%s from %s" % (outcome.icmp_name(family, kind, code), address) in tcp.describe(state, record)


@pytest.mark.parametrize("family, kind, code, local", [
    (socket.AF_INET, 3, 1, "10.0.0.1"), (socket.AF_INET6, 1, 3, "fd00::1"), (socket.AF_INET6, 1, 3, "fd00:0::1%eth0")])
def test_the_sources_own_no_neighbour_unreachable_is_unreachable_no_neighbour(family, kind, code, local):
    evidence = _icmp(kind, code, local.split("%")[0], family)
    assert tcp.classify_connect(errno.EHOSTUNREACH, evidence, local) == ("unreachable", "no_neighbour")
    state, words = tcp.classify_failure(errno.EHOSTUNREACH, evidence, local)
    assert "from this host itself (no %s answer" % ("NDP" if family == socket.AF_INET6 else "ARP") in words


@pytest.mark.parametrize("family, kind, code", [(socket.AF_INET, 3, 3), (socket.AF_INET, 3, 13),
                                                (socket.AF_INET6, 1, 1), (socket.AF_INET6, 1, 4)])
def test_a_reject_from_the_sources_own_address_is_its_own_firewall(family, kind, code):
    local = "fd00::1" if family == socket.AF_INET6 else "10.0.0.1"
    evidence = _icmp(kind, code, local, family)
    assert tcp.classify_connect(errno.ECONNREFUSED, evidence, local) == ("rejected", "local_firewall")
    assert "this host itself (its own firewall" in tcp.classify_failure(errno.ECONNREFUSED, evidence, local)[1]


@pytest.mark.parametrize("family, kind, code", [(socket.AF_INET, 11, 0), (socket.AF_INET, 12, 0),
                                                (socket.AF_INET6, 3, 0), (socket.AF_INET6, 4, 1)])
def test_other_icmp_errors_for_the_flow_are_rejected_as_icmp_error(family, kind, code):
    evidence = _icmp(kind, code, "10.0.9.1" if family == socket.AF_INET else "fd00:9::1", family)
    assert tcp.classify_connect(errno.EHOSTUNREACH, evidence, "10.0.0.1") == ("rejected", "icmp_error")


def test_the_host_unreachable_a_target_sends_itself_is_rejected_not_unreachable():
    # REJECT --reject-with icmp-host-unreachable on the target (whose port 22 is open): nmap says
    # filtered (host-unreach); only the source's own "no ARP answer" is unreachable
    evidence = _icmp(3, 1, "10.0.0.2")
    assert tcp.classify_connect(errno.EHOSTUNREACH, evidence, "10.0.0.1") == ("rejected", "icmp_unreach")


def test_a_local_error_of_the_stack_is_not_icmp_evidence():
    local_error = {"origin": tcp.SO_EE_ORIGIN_LOCAL, "family": socket.AF_INET, "type": 0, "code": 0,
                   "errno": errno.EMSGSIZE, "from": None}
    assert tcp.classify_connect(errno.ECONNREFUSED, local_error, "10.0.0.1") == ("closed", "rst")


@pytest.mark.parametrize("code, state, reason, words", [
    (errno.ECONNREFUSED, "closed", "rst", "RST"),
    (errno.EHOSTUNREACH, "unreachable", "no_route", "no route"),
    (errno.ENETUNREACH, "unreachable", "no_route", "no route"),
    (errno.ENETDOWN, "unreachable", "no_route", "no route"),
    (errno.EPERM, "filtered", "local_firewall", "own firewall"),
    (errno.EACCES, "filtered", "local_firewall", "own firewall"),
    (errno.ETIMEDOUT, "filtered", "no_answer", "no answer"),
    (errno.EINVAL, None, "probe_error", None),
])
def test_without_icmp_evidence_the_errno_decides(code, state, reason, words):
    assert tcp.classify_connect(code, None, "10.0.0.1") == (state, reason)
    got_state, message = tcp.classify_failure(code, None, "10.0.0.1")
    assert got_state == state
    assert words is None or words in message


@given(code=st.integers(min_value=0, max_value=200), kind=st.integers(min_value=0, max_value=255),
       icmp_code=st.integers(min_value=0, max_value=255), six=st.booleans(), own=st.booleans(),
       origin=st.sampled_from([tcp.SO_EE_ORIGIN_LOCAL, tcp.SO_EE_ORIGIN_ICMP, tcp.SO_EE_ORIGIN_ICMP6]))
def test_the_classifier_only_ever_says_words_of_the_closed_sets(code, kind, icmp_code, six, own, origin):
    family = socket.AF_INET6 if six else socket.AF_INET
    local = "fd00::1" if six else "10.0.0.1"
    evidence = {"origin": origin, "family": family, "type": kind, "code": icmp_code, "errno": code,
                "from": local if own else ("fd00::2" if six else "10.0.0.2")}
    state, reason = tcp.classify_connect(code, evidence, local)
    assert state in tcp.STATES + (None,)
    assert reason in outcome.REASONS
    assert (state is None) == (reason == "probe_error")
    if origin != tcp.SO_EE_ORIGIN_LOCAL and not own:
        assert state == "rejected"  # an ICMP error from elsewhere for this flow: nmap's filtered
    record = outcome.outcome(reason, "connect", code, tcp.icmp_facts(evidence))
    assert isinstance(tcp.describe(state, record, local, 1.0), str)


def test_parse_extended_err_reads_type_code_and_sender_of_both_families():
    v4 = struct.pack("=IBBBBII", errno.EHOSTUNREACH, tcp.SO_EE_ORIGIN_ICMP, 3, 10, 0, 0, 0)
    v4 += struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton("10.77.0.12"))
    assert tcp.parse_extended_err(v4) == {"origin": tcp.SO_EE_ORIGIN_ICMP, "family": socket.AF_INET, "type": 3,
                                          "code": 10, "errno": errno.EHOSTUNREACH, "from": "10.77.0.12"}
    v6 = struct.pack("=IBBBBII", errno.EACCES, tcp.SO_EE_ORIGIN_ICMP6, 1, 1, 0, 0, 0)
    v6 += struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, "fd00::12"), 0)
    assert tcp.parse_extended_err(v6)["from"] == "fd00::12"
    assert tcp.parse_extended_err(v6)["family"] == socket.AF_INET6
    assert tcp.parse_extended_err(b"\0" * 4) is None
    assert tcp.parse_extended_err(struct.pack("=IBBBBII", 0, 0, 0, 0, 0, 0, 0)) is None  # origin none


def test_an_expected_filtered_accepts_an_icmp_reject_as_nmap_does():
    assert tcp.state_meets("rejected", "filtered")
    assert tcp.state_meets("filtered", "filtered")
    assert not tcp.state_meets("filtered", "rejected")
    assert not tcp.state_meets("closed", "filtered")


def test_a_closed_loopback_port_has_no_icmp_evidence_and_is_closed(closed_port):
    result = check_target(target(port=closed_port))
    assert result["state"] == "closed"
    assert (result["detail"]["icmp_type"], result["detail"]["icmp_from"]) == (None, None)
    assert result["detail"]["errno_name"] == "ECONNREFUSED"


# --- check_targets ---------------------------------------------------------------------

def test_check_targets_returns_results_in_target_order(listening_port, closed_port):
    targets = parse_targets([
        {"host": "127.0.0.1", "port": closed_port, "name": "a"},
        {"host": "127.0.0.1", "port": listening_port, "name": "b"},
        {"host": "localhost", "port": listening_port, "family": "ipv4", "name": "c"},
        {"host": "127.0.0.1", "port": closed_port, "expected": "closed", "name": "d"},
    ], default_timeout=2)
    results = check_targets(targets)
    assert [r["detail"]["name"] for r in results] == ["a", "b", "c", "d"]
    assert [r["state"] for r in results] == ["closed", "open", "open", "closed"]
    assert [r["ok"] for r in results] == [False, True, True, True]
    assert all(tuple(r) == RESULT_KEYS for r in results)


def test_check_targets_probes_concurrently():
    with loopback_server(banner_then_hold(b"")) as port:
        targets = parse_targets([{"host": "127.0.0.1", "port": port, "expect": "never"}] * 20,
                                default_timeout=0.3)
        start = time.monotonic()
        results = check_targets(targets)
        elapsed = time.monotonic() - start
    assert len(results) == 20
    assert [(r["state"], r["detail"]["expect_matched"]) for r in results] == [("open", False)] * 20, results
    assert elapsed < 2.0, "20 x 0.3 s took %.2f s: not concurrent" % elapsed


def test_check_targets_with_one_worker_still_checks_every_target(listening_port, closed_port):
    targets = parse_targets([{"host": "127.0.0.1", "port": p} for p in (listening_port, closed_port) * 3])
    results = check_targets(targets, max_workers=1)
    assert [r["state"] for r in results] == ["open", "closed"] * 3


def test_queued_targets_get_their_real_verdict_not_a_global_deadline_error():
    # 8 silent servers' worth of waiting through one socket at a time: each target waits its
    # turn, and still gets its own verdict (the old pool gave "no verdict within the global deadline")
    with loopback_server(banner_then_hold(b"")) as port:
        targets = parse_targets([{"host": "127.0.0.1", "port": port, "expect": "never"}] * 8, default_timeout=0.2)
        start = time.monotonic()
        results = check_targets(targets, max_workers=1)
        elapsed = time.monotonic() - start
    assert [(r["state"], r["detail"]["expect_matched"]) for r in results] == [("open", False)] * 8
    assert all("global deadline" not in (r["error"] or "") for r in results)
    assert 1.5 <= elapsed < 4.0


def test_a_backtracking_expect_ends_at_the_timeout_and_says_the_regex_timed_out():
    with loopback_server(banner_then_hold(b"a" * 40 + b"!")) as port:
        start = time.monotonic()
        result = check_target(target(port=port, expect=r"^(a+)+$", timeout=1.0))
        elapsed = time.monotonic() - start
    assert result["state"] == "open" and not result["ok"]
    assert result["detail"]["regex_timed_out"] is True
    assert "still searching" in result["error"]
    assert elapsed < 2.5, elapsed


def test_the_timed_out_search_process_is_killed_and_the_next_target_still_matches():
    with loopback_server(banner_then_hold(b"a" * 40 + b"!")) as bad, \
            loopback_server(banner_then_hold(b"SSH-2.0-x\r\n")) as good:
        results = check_targets(parse_targets([
            {"host": "127.0.0.1", "port": bad, "expect": r"^(a+)+$", "timeout": 0.5},
            {"host": "127.0.0.1", "port": good, "expect": r"^SSH-2\.0-", "timeout": 3},
        ]))
    assert [r["ok"] for r in results] == [False, True]


@contextlib.contextmanager
def draining_listener():
    """A loopback port whose connections are accepted and closed at once (a backlog of 4096)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)

    def drain():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_more_targets_than_the_soft_file_limit_all_finish():
    # the engine bounds its open sockets by RLIMIT_NOFILE, whatever max_workers asks for
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with draining_listener() as port:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        try:
            results = check_targets(parse_targets([{"host": "127.0.0.1", "port": port}] * 1000), max_workers=100000)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert {r["state"] for r in results} == {"open"}


def test_neighbour_table_reads_both_families_from_ip_neigh():
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.neighbour import neighbour_table
    out = ('[{"dst":"10.77.0.99","dev":"eth0","state":["FAILED"]},'
           '{"dst":"fd6e::99","dev":"eth0","state":["INCOMPLETE"]},'
           '{"dst":"10.77.0.12","dev":"eth0","lladdr":"6a:b6:c8:2c:c2:da","state":["REACHABLE"]}]')
    table = neighbour_table(lambda argv: (0, out, ""))
    assert table == {"10.77.0.99": "FAILED", "fd6e::99": "INCOMPLETE", "10.77.0.12": "REACHABLE"}


def test_the_regex_process_is_not_left_behind():
    import os
    import subprocess as _subprocess
    with loopback_server(banner_then_hold(b"a" * 40 + b"!")) as port:
        result = check_target(target(port=port, expect=r"^(a+)+$", timeout=0.3))
    assert result["detail"]["regex_timed_out"] is True
    # every search process was killed and reaped: no child of ours still runs (or lingers as a zombie)
    ps = _subprocess.run(["ps", "-o", "pid=,stat=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True,
                         check=False)
    assert "-I -S -c" not in ps.stdout, ps.stdout


@given(st.binary(max_size=64))
def test_parse_extended_err_reads_any_bytes_without_raising(data):
    parsed = tcp.parse_extended_err(data)
    assert parsed is None or set(parsed) == {"origin", "family", "type", "code", "errno", "from"}
