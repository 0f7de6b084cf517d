"""Unit tests of netcheck.probe: input validation, the shared result shape, summaries and the
concurrency helper. Nothing here touches the network."""

from __future__ import annotations

import re
import threading
import time

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import (
    RESULT_KEYS, InputError, failure_message, format_hostport, ms_since, probe_result,
    run_concurrently, summarize, validate_host, validate_port, validate_regex, validate_timeout,
)

# A 253-character host name (four labels; the longest RFC 1123 allows without the root dot).
NAME_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
assert len(NAME_253) == 253


# --- validate_host -------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("10.77.0.12", "10.77.0.12"),
    ("::1", "::1"),
    ("2001:db8::20", "2001:db8::20"),
    ("[::1]", "::1"),
    ("[2001:db8::20]", "2001:db8::20"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("[fe80::1%nclab-br]", "fe80::1%nclab-br"),
    ("localhost", "localhost"),
    ("web1", "web1"),
    ("db1.example.internal", "db1.example.internal"),
    ("_sip._tcp.example.com", "_sip._tcp.example.com"),
    ("example.com.", "example.com."),
    ("a1-b2.example", "a1-b2.example"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
    (NAME_253, NAME_253),
    (NAME_253 + ".", NAME_253 + "."),
])
def test_validate_host_accepts_ip_literals_and_host_names(value, expected):
    assert validate_host(value, "targets[0].host") == expected


@pytest.mark.parametrize("value", [
    "",
    " ",
    "\t\n",
    None,
    5,
    ["localhost"],
    "local host",
    " localhost",
    "localhost ",
    "a\tb",
    "host;id",
    ";",
    "$(id)",
    "`id`",
    "a|b",
    "a&b",
    "a>b",
    "'localhost'",
    '"localhost"',
    "host\\name",
    "a*b",
    "!a",
    "{a,b}",
    "300.1.1.1",
    "1.2.3.256",
    "1234",
    "1.2.3",
    "a" * 64,
    "a" * 64 + ".example",
    NAME_253 + "e",
    "-leading.example",
    "trailing-.example",
    "a..b",
    ".example",
    "example..",
    "fe80::1%eth0;id",
    "fe80::1%$(id)",
    "fe80::1%" + "x" * 33,
    "[::1",
    "::1]",
    "http://example.com",
    "example.com:22",
    "üñí.example",
])
def test_validate_host_rejects_bad_hosts_naming_the_field(value):
    with pytest.raises(InputError) as caught:
        validate_host(value, "targets[3].host")
    assert str(caught.value).startswith("targets[3].host: ")


def test_validate_host_rejects_digit_only_names_as_bad_ipv4():
    with pytest.raises(InputError, match="not a valid IPv4 address"):
        validate_host("300.1.1.1", "h")


def test_validate_host_error_is_a_value_error():
    # Callers that only know ValueError still catch it.
    with pytest.raises(ValueError):
        validate_host("a;b", "h")


@pytest.mark.parametrize("value", ["localhost\n", "127.0.0.1\n", "::1%lo\n", "db1.example.internal\n",
                                   "example.com.\n", "[::1]\n", "a\n.example"])
def test_validate_host_rejects_a_trailing_newline(value):
    # A regex "$" would also match before a final "\n"; the host must end where the string ends.
    with pytest.raises(InputError):
        validate_host(value, "h")


# --- validate_port -------------------------------------------------------------------

@pytest.mark.parametrize("value", [1, 22, 443, 65535])
def test_validate_port_accepts_1_to_65535(value):
    assert validate_port(value, "p") == value


@pytest.mark.parametrize("value", [0, -1, 65536, 100000])
def test_validate_port_rejects_out_of_range_numbers(value):
    with pytest.raises(InputError, match=r"^targets\[0\]\.port: .*1-65535"):
        validate_port(value, "targets[0].port")


@pytest.mark.parametrize("value", [True, False, "22", "", None, 22.0, [22], {"port": 22}])
def test_validate_port_rejects_bools_strings_and_other_types(value):
    with pytest.raises(InputError, match=r"^targets\[0\]\.port: .*not a port number"):
        validate_port(value, "targets[0].port")


# --- validate_timeout ----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(1, 1.0), (0.001, 0.001), (2.5, 2.5), (3600, 3600.0)])
def test_validate_timeout_returns_positive_seconds_as_float(value, expected):
    result = validate_timeout(value, "t")
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_validate_timeout_rejects_zero_negative_and_non_finite(value):
    with pytest.raises(InputError, match=r"^targets\[0\]\.timeout: .*greater than 0"):
        validate_timeout(value, "targets[0].timeout")


def test_validate_timeout_rejects_more_than_the_maximum():
    with pytest.raises(InputError, match=r"^t: .*more than the 3600 s allowed"):
        validate_timeout(3600.001, "t")
    with pytest.raises(InputError, match="more than the 10 s allowed"):
        validate_timeout(11, "t", maximum=10)
    assert validate_timeout(10, "t", maximum=10) == 10.0


@pytest.mark.parametrize("value", [True, False, "3", None, [3]])
def test_validate_timeout_rejects_bools_and_non_numbers(value):
    with pytest.raises(InputError, match=r"^t: .*not a number of seconds"):
        validate_timeout(value, "t")


# --- validate_regex ------------------------------------------------------------------

def test_validate_regex_returns_a_compiled_pattern():
    pattern = validate_regex(r"^SSH-2\.0-", "e")
    assert isinstance(pattern, re.Pattern)
    assert pattern.search("SSH-2.0-OpenSSH_9.2")
    assert not pattern.search("220 smtp ready")


@pytest.mark.parametrize("value", ["(", "[a-", "*x", "a{2,1}", None, 5, ["a"]])
def test_validate_regex_rejects_bad_patterns_and_non_strings_naming_the_field(value):
    with pytest.raises(InputError) as caught:
        validate_regex(value, "targets[0].expect")
    assert str(caught.value).startswith("targets[0].expect: ")
    assert "not a valid regular expression" in str(caught.value)


# --- result shape --------------------------------------------------------------------

def test_probe_result_has_exactly_the_shared_keys_in_order():
    result = probe_result("h:1", "tcp", "open", True, {"total_ms": 1.0}, None, {"x": 1})
    assert tuple(result) == RESULT_KEYS
    assert set(RESULT_KEYS) == {"target", "kind", "state", "ok", "timings", "error", "detail"}


def test_probe_result_defaults_give_empty_timings_and_detail_and_not_ok():
    result = probe_result("h:1", "tcp", "closed")
    assert result == {"target": "h:1", "kind": "tcp", "state": "closed", "ok": False,
                      "timings": {}, "error": None, "detail": {}}


def test_probe_result_rounds_timings_to_the_microsecond():
    result = probe_result("h:1", "tcp", "open", True, {"connect_ms": 1.23456789, "total_ms": 2.0004999,
                                                       "resolve_ms": 0.0001})
    assert result["timings"] == {"connect_ms": 1.235, "total_ms": 2.0, "resolve_ms": 0.0}


def test_probe_result_coerces_ok_to_bool():
    assert probe_result("t", "k", "s", ok=1)["ok"] is True
    assert probe_result("t", "k", "s", ok=None)["ok"] is False
    assert probe_result("t", "k", "s", ok="")["ok"] is False


def test_probe_result_copies_detail_so_the_caller_cannot_change_it_afterwards():
    detail = {"errno": None}
    result = probe_result("t", "k", "s", detail=detail)
    detail["errno"] = 111
    assert result["detail"] == {"errno": None}


def test_summarize_counts_ok_failed_and_states():
    results = [probe_result("a", "tcp", "open", True), probe_result("b", "tcp", "open", False),
               probe_result("c", "tcp", "closed", True), probe_result("d", "tcp", "filtered", False),
               probe_result("e", "tcp", "open", True)]
    assert summarize(results) == {"total": 5, "ok": 3, "failed": 2,
                                  "states": {"open": 3, "closed": 1, "filtered": 1}}


def test_summarize_of_nothing_is_all_zero():
    assert summarize([]) == {"total": 0, "ok": 0, "failed": 0, "states": {}}


def test_failure_message_lists_missed_targets_with_their_error_or_state():
    results = [probe_result("a:1", "tcp", "open", True),
               probe_result("b:2", "tcp", "closed", False, error="Connection refused"),
               probe_result("c:3", "tcp", "filtered", False)]
    message = failure_message(results, summarize(results))
    assert message == "2 of 3 targets missed their expectation: b:2: Connection refused; c:3: filtered"


def test_failure_message_shows_the_first_few_and_counts_the_rest():
    results = [probe_result("h:%d" % i, "tcp", "closed", False) for i in range(15)]
    message = failure_message(results, summarize(results), shown=10)
    assert message.startswith("15 of 15 targets missed")
    assert "h:9: closed" in message
    assert "h:10:" not in message
    assert message.endswith("... and 5 more")


def test_format_hostport_brackets_ipv6_only():
    assert format_hostport("10.0.0.1", 22) == "10.0.0.1:22"
    assert format_hostport("web1", 80) == "web1:80"
    assert format_hostport("::1", 22) == "[::1]:22"
    assert format_hostport("fe80::1%eth0", 22) == "[fe80::1%eth0]:22"


def test_ms_since_measures_milliseconds():
    start = time.monotonic()
    time.sleep(0.02)
    elapsed = ms_since(start)
    assert 15.0 <= elapsed < 2000.0


# --- run_concurrently ----------------------------------------------------------------

def _unfinished(item, reason):
    return ("unfinished", item, reason)


def test_run_concurrently_returns_results_in_input_order():
    items = list(range(10))

    def probe(item):
        time.sleep((10 - item) * 0.01)  # the last items finish first
        return item * 100

    assert run_concurrently(probe, items, _unfinished, deadline_s=10) == [i * 100 for i in items]


def test_run_concurrently_accepts_any_iterable():
    assert run_concurrently(lambda x: x + 1, (i for i in range(3)), _unfinished, 5) == [1, 2, 3]


def test_run_concurrently_of_no_items_is_empty_and_calls_nothing():
    def probe(item):  # pragma: no cover - must not run
        raise AssertionError("called")

    assert run_concurrently(probe, [], _unfinished, 5) == []


def test_run_concurrently_runs_items_at_the_same_time():
    def probe(item):
        time.sleep(0.2)
        return item

    start = time.monotonic()
    results = run_concurrently(probe, range(50), _unfinished, deadline_s=30)
    elapsed = time.monotonic() - start
    assert results == list(range(50))
    assert elapsed < 2.0, "50 x 0.2 s took %.2f s: not concurrent" % elapsed


def test_run_concurrently_returns_as_soon_as_all_items_are_done_not_at_the_deadline():
    start = time.monotonic()
    assert run_concurrently(lambda x: x, range(5), _unfinished, deadline_s=30) == list(range(5))
    assert time.monotonic() - start < 1.0


def test_run_concurrently_reports_a_crashing_probe_through_on_unfinished():
    def probe(item):
        if item == 2:
            raise ValueError("boom on %d" % item)
        return item

    results = run_concurrently(probe, range(4), _unfinished, deadline_s=10)
    assert results[:2] == [0, 1] and results[3] == 3
    kind, item, reason = results[2]
    assert (kind, item) == ("unfinished", 2)
    assert "probe crashed" in reason
    assert "ValueError" in reason and "boom on 2" in reason


def test_run_concurrently_reports_a_hanging_probe_at_the_deadline_and_returns_near_it():
    release = threading.Event()

    def probe(item):
        if item == "hang":
            release.wait(30)
            return "late"
        return item

    try:
        start = time.monotonic()
        results = run_concurrently(probe, ["a", "hang", "b"], _unfinished, deadline_s=0.5)
        elapsed = time.monotonic() - start
    finally:
        release.set()  # let the daemon thread end
    assert results[0] == "a" and results[2] == "b"
    kind, item, reason = results[1]
    assert (kind, item) == ("unfinished", "hang")
    assert "deadline" in reason and "0.5" in reason
    assert 0.45 <= elapsed < 1.5


def test_run_concurrently_with_one_worker_runs_one_probe_at_a_time():
    lock = threading.Lock()
    running = [0]
    peak = [0]
    order = []

    def probe(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            order.append(item)
        time.sleep(0.03)
        with lock:
            running[0] -= 1
        return item

    start = time.monotonic()
    results = run_concurrently(probe, range(6), _unfinished, deadline_s=10, max_workers=1)
    elapsed = time.monotonic() - start
    assert results == list(range(6))
    assert peak[0] == 1
    assert order == list(range(6))  # one worker takes the items in order
    assert elapsed >= 6 * 0.03 * 0.9


def test_run_concurrently_never_exceeds_max_workers():
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def probe(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return item

    results = run_concurrently(probe, range(12), _unfinished, deadline_s=10, max_workers=3)
    assert results == list(range(12))
    assert peak[0] == 3


def test_run_concurrently_gives_queued_items_their_own_rounds_before_the_deadline():
    # 10 items of 0.3 s through one worker: 3 s in all, though one item's bound is 0.5 s;
    # every item waits its turn and gets its real result (the old deadline cut 6 of them)
    def probe(item):
        time.sleep(0.3)
        return item

    results = run_concurrently(probe, range(10), _unfinished, deadline_s=0.5, max_workers=1)
    assert results == list(range(10))
