"""diagnose.verdict with crafted layer results: every code, its layer, its hint, and `checked`."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import diagnose
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import CODES, checked_layers, verdict
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.outcome import outcome
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import InputError, probe_result


def neighbour(state="reachable", mac="aa:aa:aa:aa:aa:01", wire=None, via_gateway=False, dev="eth0", fulls=None):
    route = {"dev": dev, "gateway": "10.0.0.1" if via_gateway else None, "src": "10.0.0.11", "type": "unicast",
             "source": "ip route get", "error": None if dev else "RTNETLINK answers: Network is unreachable"}
    kernel = {"ip": "10.0.0.1" if via_gateway else "10.0.0.12", "state": state.upper() if state else None,
              "mac": mac, "dev": dev, "via_gateway": via_gateway, "error": None}
    if state == "local":
        kernel["state"] = "LOCAL"
    table = None
    if fulls is not None:
        table = {"before": {"entries": 1024, "table_fulls": 0}, "after": {"entries": 1024, "table_fulls": fulls}}
    return diagnose.neighbour_result("10.0.0.12", route, kernel, None if wire is None else {"macs": wire}, table)


def icmp(received=3, sent=3, errors=()):
    detail = {"received": received, "sent": sent, "rtt_avg_ms": 0.1 if received else None,
              "icmp_errors": list(errors)}
    return probe_result("10.0.0.12", "icmp", "ok" if received else "unreachable", bool(received),
                        {"total_ms": 400.0}, None, detail)


def tcp(port=22, state="open", expect_matched=None, err=None, **detail):
    facts = {"port": port, "expect_matched": expect_matched, "errno": err, "banner": None, "expect": None,
             "conversation_error": None}
    facts.update(detail)
    return probe_result("10.0.0.12:%d" % port, "tcp", state, state == "open", {"total_ms": 1.0}, None, facts)


def http(state="answered", status=200, phase=None, failed_checks=(), error=None, tls=None, reason=None, **fields):
    detail = {"status": status if state == "answered" else None, "reason": "OK", "phase": phase,
              "failed_checks": list(failed_checks), "tls": tls}
    if reason is not None:
        detail["outcome"] = outcome(reason, phase=phase, **fields)
    return probe_result("http://10.0.0.12:8080/", "http", state, state == "answered" and not failed_checks,
                        {"total_ms": 2.0}, error, detail)


def layers(nb=None, ic=None, tcps=(), https=()):
    return {"neighbour": nb, "icmp": ic, "tcp": list(tcps), "http": list(https)}


def expected(icmp_mode="auto", ports=None, urls=()):
    return {"icmp": icmp_mode, "ports": ports or {}, "urls": list(urls)}


def judge(lay, exp=None, resolve_error=None):
    ok, checked, result = verdict(lay, exp or expected(), resolve_error)
    assert result["hint"], "every verdict has a hint"
    assert result["first_failing_layer"] == ("none" if result["code"] in ("OK", "NOT_CHECKED") else
                                             CODES[result["code"]][0] if CODES[result["code"]][0] != "none"
                                             else result["first_failing_layer"])
    return ok, checked, result


def test_every_layer_answering_is_ok_with_all_four_layers_checked():
    ok, checked, result = judge(layers(neighbour(wire=["aa:aa:aa:aa:aa:01"]), icmp(), [tcp()], [http()]),
                                expected(ports={"22": "open"}, urls=["u"]))
    assert ok and result["code"] == "OK"
    assert checked == ["link", "network", "transport", "application"]
    assert result["evidence"]


def test_nothing_checked_is_never_ok():
    ok, checked, result = judge(layers())
    assert not ok and checked == [] and result["code"] == "NOT_CHECKED"


def test_icmp_dropped_while_a_port_answers_is_ok_with_a_note():
    ok, _, result = judge(layers(neighbour(), icmp(received=0), [tcp()]), expected(ports={"22": "open"}))
    assert ok and result["code"] == "OK"
    assert [n["code"] for n in result["notes"]] == ["ICMP_FILTERED"]


def test_icmp_dropped_when_icmp_is_expected_is_a_failure():
    ok, _, result = judge(layers(neighbour(), icmp(received=0), [tcp()]), expected("reachable", {"22": "open"}))
    assert not ok and result["code"] == "ICMP_FILTERED" and result["first_failing_layer"] == "network"


def test_icmp_admin_prohibited_is_icmp_unreachable_with_type_and_code():
    error = {"seq": 0, "from": "10.0.0.12", "type": 3, "code": 13,
             "message": "communication administratively prohibited"}
    ok, _, result = judge(layers(neighbour(), icmp(received=0, errors=[error])), expected("reachable"))
    assert not ok and result["code"] == "ICMP_UNREACHABLE"
    assert "type 3 code 13" in result["evidence"][0]


def test_no_arp_answer_on_link_is_neighbour_failed_at_the_link_layer():
    ok, checked, result = judge(layers(neighbour("failed", mac=None), icmp(received=0), [tcp(state="unreachable",
                                                                                             err=errno.EHOSTUNREACH)]),
                                expected(ports={"22": "open"}))
    assert not ok and result["code"] == "NEIGHBOUR_FAILED" and result["first_failing_layer"] == "link"
    assert "link" in checked
    assert "PORT_REJECTED" not in [n["code"] for n in result["notes"]], "the neighbour failure explains the port"


def test_a_failed_gateway_is_gateway_unreachable():
    ok, _, result = judge(layers(neighbour("incomplete", mac=None, via_gateway=True), icmp(received=0)))
    assert result["code"] == "GATEWAY_UNREACHABLE" and result["first_failing_layer"] == "network"


def test_a_failed_neighbour_while_table_fulls_rose_is_table_full():
    ok, _, result = judge(layers(neighbour("none", mac=None, fulls=7), icmp(received=0)))
    assert result["code"] == "NEIGHBOUR_TABLE_FULL"
    assert any("table_fulls rose by 7" in line for line in result["evidence"])


def test_recorded_arp_cache_counters_give_the_table_fulls_delta(tmp_path):
    before = ("entries  allocs table_fulls\n00000400 00000010 00000000\n00000400 00000011 00000001\n")
    after = ("entries  allocs table_fulls\n00000400 00000010 00000005\n00000400 00000011 00000003\n")
    path = tmp_path / "arp_cache"
    path.write_text(before)
    first = diagnose.read_arp_cache_stat(str(path))
    path.write_text(after)
    second = diagnose.read_arp_cache_stat(str(path))
    assert first == {"entries": 1024, "table_fulls": 1} and second == {"entries": 1024, "table_fulls": 8}


def test_no_route_is_no_route():
    ok, checked, result = judge(layers(neighbour(None, mac=None, dev=None)))
    assert result["code"] == "NO_ROUTE" and checked == ["network"]


def test_a_cached_mac_that_differs_from_the_wire_is_a_mismatch():
    ok, _, result = judge(layers(neighbour(wire=["bb:bb:bb:bb:bb:02"]), icmp(), [tcp()]),
                          expected(ports={"22": "open"}))
    assert result["code"] == "NEIGHBOUR_MISMATCH" and result["first_failing_layer"] == "link"
    assert result["evidence"][0].endswith("bb:bb:bb:bb:bb:02")


def test_two_macs_on_the_wire_is_a_duplicate_address():
    _, _, result = judge(layers(neighbour(wire=["aa:aa:aa:aa:aa:01", "bb:bb:bb:bb:bb:02"]), icmp()))
    assert result["code"] == "NEIGHBOUR_MISMATCH" and "duplicate" in result["evidence"][0]


def test_dns_failure_is_dns_failed():
    ok, checked, result = judge(layers(), resolve_error="name resolution failed: Name or service not known")
    assert not ok and result["code"] == "DNS_FAILED" and checked == ["network"]


@pytest.mark.parametrize("state, err, code", [
    ("closed", errno.ECONNREFUSED, "PORT_CLOSED"),
    ("filtered", errno.ETIMEDOUT, "PORT_FILTERED"),
    ("rejected", errno.EHOSTUNREACH, "PORT_REJECTED"),
    ("unreachable", errno.EHOSTUNREACH, "PORT_UNREACHABLE"),  # never inferred a reject from a cached MAC
])
def test_port_states_give_transport_codes(state, err, code):
    ok, checked, result = judge(layers(neighbour(), icmp(), [tcp(state=state, err=err)]),
                                expected(ports={"22": "open"}))
    assert not ok and result["code"] == code and result["first_failing_layer"] == "transport"
    assert checked == ["link", "network", "transport"]


def test_rejected_with_icmp_detail_names_type_and_code():
    result = judge(layers(neighbour(), icmp(), [tcp(state="rejected", icmp_type=3, icmp_code=13,
                                                    icmp_from="10.0.0.12")]), expected(ports={"22": "open"}))[2]
    assert result["code"] == "PORT_REJECTED"
    assert "ICMP communication administratively prohibited (type 3 code 13) from 10.0.0.12" in result["evidence"][0]


def test_a_port_expected_filtered_that_is_filtered_is_ok():
    ok, _, result = judge(layers(neighbour(), icmp(), [tcp(state="filtered")]), expected(ports={"22": "filtered"}))
    assert ok and result["code"] == "OK"


def test_a_port_expected_filtered_that_opens_is_port_open():
    ok, _, result = judge(layers(neighbour(), icmp(), [tcp(state="open")]), expected(ports={"22": "filtered"}))
    assert not ok and result["code"] == "PORT_OPEN"


def test_the_source_firewall_gets_its_own_hint():
    _, _, result = judge(layers(neighbour(), icmp(), [tcp(state="filtered", err=errno.EPERM)]),
                         expected(ports={"22": "open"}))
    assert result["code"] == "PORT_FILTERED" and "own firewall" in result["hint"]


def test_a_banner_that_does_not_match_is_wrong_service():
    _, checked, result = judge(layers(neighbour(), icmp(), [tcp(state="open", expect_matched=False,
                                                                expect="^SSH-", banner="HTTP/1.0 400")]),
                               expected(ports={"22": "open"}))
    assert result["code"] == "WRONG_SERVICE" and "application" in checked


def test_http_503_is_http_status():
    _, _, result = judge(layers(neighbour(), icmp(), [], [http(status=503, failed_checks=["status 503 not in [200]"])]),
                         expected(urls=["u"]))
    assert result["code"] == "HTTP_STATUS" and result["first_failing_layer"] == "application"


def test_a_missing_header_marker_is_wrong_service_even_with_a_bad_status():
    _, _, result = judge(layers(neighbour(), icmp(), [], [http(status=502, failed_checks=[
        "status 502 not in [200]", "header x-lab-host missing"])]), expected(urls=["u"]))
    assert result["code"] == "WRONG_SERVICE"


def test_no_answer_after_connect_is_http_timeout():
    _, checked, result = judge(layers(neighbour(), icmp(), [], [http("failed", phase="processing",
                                                                     error="processing: no response")]),
                               expected(urls=["u"]))
    assert result["code"] == "HTTP_TIMEOUT" and checked[-1] == "application"


def test_a_certificate_for_another_name_is_wrong_service_and_a_self_signed_one_tls_failed():
    mismatch = {"verify_error": "Hostname mismatch, certificate is not valid for '10.0.0.12'.",
                "subject": "commonName=other.example", "san": ["DNS:other.example"]}
    _, _, result = judge(layers(neighbour(), icmp(), [], [http("failed", phase="tls", tls=mismatch, reason="tls_name",
                                                               error="tls: certificate verification failed")]),
                         expected(urls=["u"]))
    assert result["code"] == "WRONG_SERVICE" and any("other.example" in e for e in result["evidence"])
    selfsigned = {"verify_error": "self-signed certificate"}
    _, _, result = judge(layers(neighbour(), icmp(), [], [http("failed", phase="tls", tls=selfsigned,
                                                               reason="tls_verify",
                                                               error="tls: certificate verification failed")]),
                         expected(urls=["u"]))
    assert result["code"] == "TLS_FAILED"


def test_http_connect_refused_is_port_closed():
    _, _, result = judge(layers(neighbour(), icmp(), [], [http("failed", phase="connect", reason="rst",
                                                               error="connect: connection refused")]),
                         expected(urls=["u"]))
    assert result["code"] == "PORT_CLOSED"


def test_the_lowest_failing_layer_wins_and_the_others_become_notes():
    _, _, result = judge(layers(neighbour(), icmp(), [tcp(state="closed")], [http(status=503, failed_checks=[
        "status 503 not in [200]"])]), expected(ports={"22": "open"}, urls=["u"]))
    assert result["code"] == "PORT_CLOSED"
    assert "HTTP_STATUS" in [n["code"] for n in result["notes"]]


def test_icmp_expected_unreachable_that_answers_is_icmp_answered():
    _, _, result = judge(layers(neighbour(), icmp()), expected("unreachable"))
    assert result["code"] == "ICMP_ANSWERED"


def test_a_host_expected_unreachable_whose_arp_fails_is_ok():
    ok, _, result = judge(layers(neighbour("failed", mac=None), icmp(received=0)), expected("unreachable"))
    assert ok and result["code"] == "OK"


def test_a_local_target_has_no_link_layer():
    assert checked_layers(layers(neighbour("local", mac=None), icmp())) == ["network"]


def test_every_code_has_a_layer_and_a_hint():
    for code, (layer, hint) in CODES.items():
        assert layer in ("none", "link", "network", "transport", "application") and hint


def test_arp_frames_are_built_and_parsed():
    frame = diagnose.arp_request_frame(b"\x02\x00\x00\x00\x00\x01", "10.0.0.11", "10.0.0.12")
    assert len(frame) == 42 and frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    reply = bytearray(frame)
    reply[20:22] = b"\x00\x02"
    reply[22:28] = b"\x02\x00\x00\x00\x00\x09"
    reply[28:32] = bytes([10, 0, 0, 12])
    assert diagnose.parse_arp_reply(bytes(reply), "10.0.0.12") == "02:00:00:00:00:09"
    assert diagnose.parse_arp_reply(bytes(reply), "10.0.0.13") is None
    assert diagnose.parse_arp_reply(frame, "10.0.0.12") is None  # a request, not a reply


@pytest.mark.parametrize("raw, message", [
    ([{"host": "x", "ports": [{"port": 70000}]}], "targets[0].ports[0].port"),
    ([{"host": "x", "ports": [{"port": 22, "expected": "ajar"}]}], "targets[0].ports[0].expected"),
    ([{"host": "x", "ports": [{"port": 22, "colour": 1}]}], "targets[0].ports[0].colour: unknown key; known: port"),
    ([{"host": "x"}, {"host": "bad host"}], "targets[1].host"),
    ([{"host": "x", "icmp": "maybe"}], "targets[0].icmp"),
    ([{"host": "x", "urls": [{"url": "ftp://x/"}]}], "targets[0].urls[0].url"),
    ([{"host": "x", "icmp": "skip"}], "nothing to check"),
])
def test_bad_input_names_the_field(raw, message):
    with pytest.raises(InputError) as caught:
        diagnose.parse_targets(raw)
    assert message in str(caught.value)


def test_loopback_run_gives_pairs_in_the_contract_shape(closed_port):
    targets = diagnose.parse_targets([{"host": "127.0.0.1", "icmp": "skip",
                                       "ports": [{"port": closed_port, "expected": "closed"}]}])
    pairs, meta = diagnose.diagnose_targets(targets, arp_probe_enabled=False)
    (pair,) = pairs
    assert set(pair) == {"target", "address", "kind", "ok", "checked", "layers", "verdict", "expected", "timings"}
    assert set(pair["verdict"]) == {"first_failing_layer", "code", "hint", "evidence", "notes", "hop", "failed_checks",
                                    "warned_checks", "checks"}
    (check,) = [c for c in pair["verdict"]["checks"] if c["check"].startswith("tcp/")]
    assert check["ok"] and check["severity"] == "ok" and check["code"] == "OK"
    assert pair["ok"] and pair["verdict"]["code"] == "OK" and pair["checked"] == ["network", "transport"]
    assert pair["layers"]["tcp"][0]["state"] == "closed" and pair["layers"]["icmp"] is None
    assert pair["layers"]["neighbour"]["state"] == "local"


def test_table_counters_come_from_ip_ntable_in_any_namespace():
    ntable = ('[{"family":"inet","name":"arp_cache","thresh1":128,"thresh2":512,"thresh3":1024,'
              '"entries":1024,"table_fulls":41}]')
    seen = []

    def run(argv):
        seen.append(argv)
        return 0, ntable, ""

    assert diagnose.read_arp_cache_stat("/nonexistent", run) == {"entries": 1024, "table_fulls": 41}
    assert seen == [["ip", "-s", "-j", "ntable", "show"]]


# --- one verdict per check -----------------------------------------------------------------

def tcp_outcome(port, state, reason, expected="open", **fields):
    """A tcp result as the probe makes it: state, ok by tcp.state_meets, detail.outcome."""
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import state_meets
    result = tcp(port=port, state=state, outcome=outcome(reason, phase="connect", **fields))
    result["ok"] = state_meets(state, expected)
    return result


def checks_by_name(result):
    return {c["check"]: c for c in result["checks"]}


def test_every_check_has_its_own_verdict_and_the_pair_shows_the_lowest_one():
    """PORT_OPEN on 22 (must be filtered) must not hide 5432 closed (the database is down)."""
    lay = layers(neighbour(wire=["aa:aa:aa:aa:aa:01"]), icmp(),
                 [tcp_outcome(22, "open", "syn_ack", "filtered"), tcp_outcome(5432, "closed", "rst")])
    ok, _, result = judge(lay, expected(ports={"22": "filtered", "5432": "open"}))
    found = checks_by_name(result)
    assert not ok and result["code"] == "PORT_OPEN" and result["failed_checks"] == 2
    assert (found["tcp/22"]["code"], found["tcp/22"]["severity"], found["tcp/22"]["ok"]) == ("PORT_OPEN", "fail", False)
    assert (found["tcp/5432"]["code"], found["tcp/5432"]["ok"]) == ("PORT_CLOSED", False)
    assert found["tcp/5432"]["evidence"] == [e for e in result["evidence"] if "5432" in e][:1]
    assert found["tcp/5432"]["outcome"]["reason"] == "rst"
    assert (found["icmp"]["code"], found["neighbour"]["code"]) == ("OK", "OK")
    assert set(found) == {"neighbour", "icmp", "tcp/22", "tcp/5432"}
    assert all(set(c) == {"check", "layer", "ok", "severity", "code", "hint", "evidence", "outcome"}
               for c in result["checks"])


def test_expected_filtered_accepts_rejected_as_port_check_does():
    """The pair can never be ok in its TCP layer and fail as a pair."""
    rejected = tcp_outcome(22, "rejected", "icmp_unreach", "filtered",
                           icmp={"type": 3, "code": 10, "from": "10.0.0.12", "family": "ipv4"})
    assert rejected["ok"] is True
    ok, _, result = judge(layers(neighbour(), icmp(), [rejected]), expected(ports={"22": "filtered"}))
    assert ok and result["code"] == "OK" and checks_by_name(result)["tcp/22"]["ok"]
    assert "host administratively prohibited (type 3 code 10)" in checks_by_name(result)["tcp/22"]["evidence"][0]


@pytest.mark.parametrize("reason, code", [("rst", "PORT_CLOSED"), ("icmp_unreach", "PORT_REJECTED"),
                                          ("no_answer", "PORT_FILTERED"), ("local_firewall", "PORT_FILTERED"),
                                          ("no_route", "NO_ROUTE"), ("no_neighbour", "NEIGHBOUR_FAILED"),
                                          ("dns", "DNS_FAILED")])
def test_a_urls_connect_outcome_gives_the_code_whatever_its_message_says(reason, code):
    """The code comes from outcome.reason: a message reworded (or misleading) changes nothing."""
    result = http("failed", phase="connect", reason=reason, error="connect: the words say something else: refused")
    _, _, verdict_ = judge(layers(neighbour(), icmp(), [], [result]), expected(urls=["u"]))
    assert checks_by_name(verdict_)["http http://10.0.0.12:8080/"]["code"] == code


def test_host_and_admin_prohibited_rejects_of_a_url_are_port_rejected_with_type_code_and_sender():
    result = http("failed", phase="connect", reason="icmp_unreach", error="connect: x",
                  icmp={"type": 1, "code": 1, "from": "fd00::12", "family": "ipv6"})
    _, _, verdict_ = judge(layers(neighbour(), icmp(), [], [result]), expected(urls=["u"]))
    assert verdict_["code"] == "PORT_REJECTED"
    assert "administratively prohibited (type 1 code 1) from fd00::12" in verdict_["evidence"][0]


@pytest.mark.parametrize("reason, code", [("tls_handshake", "TLS_FAILED"), ("tls_verify", "TLS_FAILED"),
                                          ("tls_name", "WRONG_SERVICE"), ("http_timeout", "HTTP_TIMEOUT"),
                                          ("not_http", "WRONG_SERVICE"), ("probe_error", "PROBE_ERROR")])
def test_application_outcomes_give_their_codes(reason, code):
    phase = {"tls_handshake": "tls", "tls_verify": "tls", "tls_name": "tls", "http_timeout": "processing",
             "not_http": "transfer", "probe_error": None}[reason]
    result = http("failed", phase=phase, reason=reason, error="whatever")
    _, _, verdict_ = judge(layers(neighbour(), icmp(), [], [result]), expected(urls=["u"]))
    assert verdict_["code"] == code


def test_a_stale_reachable_entry_with_no_arp_answer_on_the_wire_is_neighbour_failed():
    """The host went down; the kernel still says REACHABLE; the ARP request on the wire got no answer."""
    stale = neighbour("reachable", wire=[])
    assert stale["detail"]["outcome"]["reason"] == "no_neighbour" and stale["detail"]["outcome"]["probes"] == 1
    lay = layers(stale, icmp(received=0), [tcp_outcome(22, "filtered", "no_answer")])
    ok, _, result = judge(lay, expected(ports={"22": "open"}))
    found = checks_by_name(result)
    assert not ok and result["code"] == "NEIGHBOUR_FAILED" and result["first_failing_layer"] == "link"
    assert "stale" in found["neighbour"]["evidence"][0] and "no ARP answer" in found["neighbour"]["evidence"][0]
    # the checks above got no answer because of it: they say so with the neighbour's code, never ICMP_FILTERED
    assert found["icmp"]["code"] == "NEIGHBOUR_FAILED" and found["tcp/22"]["code"] == "NEIGHBOUR_FAILED"
    assert result["failed_checks"] == 3
    text = " ".join(result["evidence"] + [result["hint"]] + [c["hint"] for c in result["checks"]])
    assert "answers ARP" not in text


def test_no_wire_answer_while_the_target_answers_a_port_is_not_a_neighbour_failure():
    lay = layers(neighbour("reachable", wire=[]), icmp(received=0), [tcp_outcome(22, "open", "syn_ack")])
    ok, _, result = judge(lay, expected(ports={"22": "open"}))
    assert ok and result["code"] == "OK"


def test_nothing_answering_claims_an_arp_answer_only_when_the_wire_gave_one():
    silent = [tcp_outcome(22, "filtered", "no_answer")]
    _, _, cached = judge(layers(neighbour("reachable"), icmp(received=0), silent), expected(ports={"22": "open"}))
    assert cached["code"] == "PORT_FILTERED" and "answers ARP" not in cached["hint"]
    assert "not probed on the wire" in cached["hint"]
    _, _, wired = judge(layers(neighbour("reachable", wire=["aa:aa:aa:aa:aa:01"]), icmp(received=0), silent),
                        expected(ports={"22": "open"}))
    assert "answers ARP/NDP on the wire" in wired["hint"]


def icmp_figures(received=3, sent=3, rtt=0.1):
    result = icmp(received, sent)
    result["detail"].update(loss_pct=round(100.0 * (sent - received) / sent, 2), rtt_avg_ms=rtt)
    return result


THRESHOLDS = {"icmp_warn": {"loss_pct": 20.0, "rtt_ms": 200.0}, "icmp_crit": {"loss_pct": 50.0, "rtt_ms": 500.0}}


@pytest.mark.parametrize("received, sent, rtt, code, severity", [
    (8, 10, 0.1, "ICMP_LOSS", "warn"),          # 20 % loss: at warn
    (5, 10, 0.1, "ICMP_LOSS", "fail"),          # 50 % loss: at crit
    (19, 40, 0.1, "ICMP_LOSS", "fail"),         # 52.5 % loss is not OK
    (10, 10, 250.0, "HIGH_LATENCY", "warn"),
    (10, 10, 600.0, "HIGH_LATENCY", "fail"),
    (7, 10, 600.0, "HIGH_LATENCY", "fail"),     # the worse one decides: crit latency beats warn loss
    (9, 10, 0.1, "OK", "ok"),
])
def test_loss_and_latency_thresholds_give_warn_or_fail_with_the_figures(received, sent, rtt, code, severity):
    lay = layers(neighbour(), icmp_figures(received, sent, rtt), [tcp()])
    ok, _, result = judge(lay, dict(expected(ports={"22": "open"}), **THRESHOLDS))
    check = checks_by_name(result)["icmp"]
    assert (check["code"], check["severity"]) == (code, severity)
    assert ok is (severity != "fail")
    if code != "OK":
        assert "%d/%d echoes answered" % (received, sent) in check["evidence"][0]
        assert "thresholds: loss warn 20% crit 50%, rtt avg warn 200 ms crit 500 ms" in check["evidence"][1]
    if severity == "warn":
        assert result["code"] == "OK" and result["warned_checks"] == 1 and check["ok"]
    if severity == "fail":
        assert result["code"] == code and result["failed_checks"] == 1


def test_a_warning_fails_the_pair_when_the_run_says_so():
    lay = layers(neighbour(), icmp_figures(8, 10), [tcp()])
    ok, _, result = diagnose.verdict(lay, dict(expected(ports={"22": "open"}), **THRESHOLDS), None, fail_on_warn=True)
    assert not ok and result["code"] == "ICMP_LOSS" and result["failed_checks"] == 1
    assert checks_by_name(result)["icmp"]["severity"] == "warn"


def test_thresholds_merge_per_key_run_then_target():
    assert diagnose.thresholds({"loss_pct": 30}, {"rtt_ms": 5}, diagnose.DEFAULT_ICMP_WARN) == {"loss_pct": 30,
                                                                                                "rtt_ms": 5}
    (target,) = diagnose.parse_targets([{"host": "10.0.0.12", "icmp_crit": {"loss_pct": 10}}],
                                       {"icmp_crit": {"rtt_ms": 50}})
    assert target.expected()["icmp_crit"] == {"loss_pct": 10, "rtt_ms": 50}
    assert target.expected()["icmp_warn"] == diagnose.DEFAULT_ICMP_WARN
    with pytest.raises(InputError, match=r"targets\[0\].icmp_warn.loss_pct"):
        diagnose.parse_targets([{"host": "x", "icmp_warn": {"loss_pct": 120}}])


def test_every_code_of_the_table_is_emitted_by_some_check():
    """CODES is the list the docs, the cells and the sample data are made from: no code only on paper."""
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import diagnose as d
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.path import PATH_CODES as path_codes
    source = open(d.__file__).read()
    for code in CODES:
        if code in ("OK", "NOT_CHECKED", "ACCEPT_QUEUE_FULL"):
            continue  # the pair's own words, and the controller's (run.py)
        if code in path_codes:
            continue  # where on the path: made by path.py's hook after the verdict (tests/unit/test_path.py)
        assert ('"%s"' % code) in source.split("# --- the verdict (pure)")[1], code


def test_no_code_changes_when_every_message_is_reworded():
    """Misleading words in every error text ("refused", "timed out", "mismatch" ...) change no code."""
    import copy
    cases = [
        layers(neighbour(), icmp(), [tcp_outcome(22, "filtered", "no_answer"), tcp_outcome(80, "closed", "rst"),
                                     tcp_outcome(81, "rejected", "icmp_unreach",
                                                 icmp={"type": 3, "code": 13, "from": "10.0.0.12", "family": 4})]),
        layers(neighbour(), icmp(), [], [http("failed", phase="connect", reason="no_answer", error="x"),
                                         http("failed", phase="tls", reason="tls_verify", error="x"),
                                         http("failed", phase="tls", reason="tls_name", error="x"),
                                         http("failed", phase="processing", reason="http_timeout", error="x")]),
        layers(neighbour("reachable", wire=[]), icmp(received=0), [tcp_outcome(22, "filtered", "no_answer")]),
    ]
    words = "connection refused; timed out; no route to host; hostname mismatch; unreachable; no answer"
    for case in cases:
        exp = expected(ports={str(r["detail"]["port"]): "open" for r in case["tcp"]}, urls=["u"])
        before = [c["code"] for c in verdict(case, exp)[2]["checks"]]
        reworded = copy.deepcopy(case)
        for result in [reworded["neighbour"], reworded["icmp"]] + reworded["tcp"] + reworded["http"]:
            result["error"] = words
            if (result.get("detail") or {}).get("tls"):
                result["detail"]["tls"]["verify_error"] = words
        assert [c["code"] for c in verdict(reworded, exp)[2]["checks"]] == before


def test_ndp_solicitations_and_advertisements_are_built_and_parsed():
    assert diagnose.solicited_node("fd6e:6574:6368:7a::12") == "ff02::1:ff00:12"
    assert diagnose.solicited_node("2001:db8::abcd:ef01") == "ff02::1:ffcd:ef01"
    solicit = diagnose.neighbour_solicitation("fd00::12", b"\x02\x00\x00\x00\x00\x01")
    assert solicit[0] == 135 and len(solicit) == 32 and solicit[-6:] == b"\x02\x00\x00\x00\x00\x01"
    advert = bytearray(solicit)
    advert[0] = 136
    advert[24] = 2  # target link-layer address option
    advert[26:32] = b"\x02\x00\x00\x00\x00\x09"
    assert diagnose.parse_neighbour_advert(bytes(advert), "fd00::12") == "02:00:00:00:00:09"
    assert diagnose.parse_neighbour_advert(bytes(advert), "fd00::13") is None
    assert diagnose.parse_neighbour_advert(solicit, "fd00::12") is None  # a solicitation, not an advert
    assert diagnose.parse_neighbour_advert(bytes(advert[:24]), "fd00::12") == ""  # no option


def test_a_stale_ipv6_entry_says_ndp():
    stale = neighbour("reachable", wire=[])
    stale["detail"]["next_hop"] = "fd00::12"
    _, _, result = judge(layers(stale, icmp(received=0)), expected("reachable"))
    assert result["code"] == "NEIGHBOUR_FAILED" and "nothing answered NDP on the wire" in result["evidence"][0]


@pytest.mark.parametrize("state, wire, reason, probes, answers, confirmed", [
    ("reachable", ["aa:aa:aa:aa:aa:01"], "neighbour_answer", 1, 1, True),   # the wire answered
    ("reachable", None, "neighbour_answer", 0, 0, None),                    # the kernel's cache only
    ("reachable", [], "no_neighbour", 1, 0, False),                         # cached, silent on the wire
    ("failed", None, "no_neighbour", 0, 0, None),
    ("local", None, "local_address", 0, 0, None),
    (None, None, "no_route", 0, 0, None),
])
def test_the_neighbour_layer_has_its_own_outcome(state, wire, reason, probes, answers, confirmed):
    mac = None if state in ("failed", "local", None) else "aa:aa:aa:aa:aa:01"
    result = neighbour(state, mac=mac, wire=wire, dev=None if state is None else "eth0")
    record = result["detail"]["outcome"]
    assert (record["reason"], record["probes"], record["answers"], record["confirmed"]) == (
        reason, probes, answers, confirmed)


def test_the_summary_counts_warned_targets_and_every_failing_check():
    def pair(ok, failed, warned, code):
        return {"ok": ok, "verdict": {"code": code, "failed_checks": failed, "warned_checks": warned}}
    summary = diagnose.summarize_pairs([pair(False, 2, 0, "PORT_OPEN"), pair(True, 0, 1, "OK"), pair(True, 0, 0, "OK")])
    assert summary == {"total": 3, "ok": 2, "failed": 1, "warned": 1, "failed_checks": 2,
                       "by_code": {"PORT_OPEN": 1, "OK": 2}}
