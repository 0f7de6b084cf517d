"""One verdict per check, from real faults on the session lab (IPv4 and IPv6), through net_diagnose.

Every TCP fault a firewall makes is set on ports of ONE target (DROP, each REJECT type, tcp-reset,
nothing listening), and the same ports are asked again as URLs: each check must carry its own
code, reason and evidence, and the pair must count every failing check. The same ports with the
expectations a firewall owner writes (DROP and REJECT ports ``expected: filtered``) make an OK pair.
A host that went down while the source's ARP cache still says REACHABLE is NEIGHBOUR_FAILED.
ICMP loss is made exact with iptables' ``statistic --mode nth`` (every 5th / every 2nd echo
dropped) and judged against warn/crit thresholds. Every fault is undone in teardown.
"""

from __future__ import annotations

import ipaddress
import shutil

import pytest

from harness import netns, wait_for

DROPPED, CLOSED, OPEN = 9201, 9209, 22
# REJECTed by the target, but the ICMP error is dropped on its way back (the source's INPUT drops
# the ICMP error related to that one port): the source sees silence, so the port is filtered
ICMP_LOST = 9208
REJECTS4 = {9202: "icmp-port-unreachable", 9203: "icmp-host-prohibited", 9204: "icmp-admin-prohibited",
            9205: "icmp-net-unreachable", 9206: "icmp-host-unreachable", 9207: "tcp-reset"}
REJECTS6 = {9202: "icmp6-port-unreachable", 9203: "icmp6-adm-prohibited", 9204: "icmp6-addr-unreachable",
            9205: "icmp6-no-route", 9207: "tcp-reset"}
# the ICMP (type, code) each REJECT sends (iptables-extensions(8))
ICMP4 = {"icmp-port-unreachable": (3, 3), "icmp-host-prohibited": (3, 10), "icmp-admin-prohibited": (3, 13),
         "icmp-net-unreachable": (3, 0), "icmp-host-unreachable": (3, 1)}
ICMP6 = {"icmp6-port-unreachable": (1, 4), "icmp6-adm-prohibited": (1, 1), "icmp6-addr-unreachable": (1, 3),
         "icmp6-no-route": (1, 0)}


def _rules(dst):
    rules = []
    for tool, address, rejects in (("iptables", dst.ip, REJECTS4), ("ip6tables", dst.ip6, REJECTS6)):
        rules.append((tool, "INPUT", "-d", address, "-p", "tcp", "--dport", str(DROPPED), "-j", "DROP"))
        for port, kind in rejects.items():
            rules.append((tool, "INPUT", "-d", address, "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                          "--reject-with", kind))
    return rules


def _icmp_lost_rules(dst):
    """(namespace-side, tool, rule): the target rejects ICMP_LOST, the source drops that port's ICMP error."""
    rules = []
    for tool, address, proto, reject in (("iptables", dst.ip, "icmp", "icmp-port-unreachable"),
                                         ("ip6tables", dst.ip6, "ipv6-icmp", "icmp6-port-unreachable")):
        rules.append(("target", tool, "INPUT", "-d", address, "-p", "tcp", "--dport", str(ICMP_LOST), "-j", "REJECT",
                      "--reject-with", reject))
        rules.append(("source", tool, "INPUT", "-s", address, "-p", proto, "-m", "conntrack", "--ctstate", "RELATED",
                      "--ctorigdstport", str(ICMP_LOST), "-j", "DROP"))
    return rules


@pytest.fixture(scope="module")
def port_faults(hosts):
    src, dst, _ = hosts
    rules = [("target",) + tuple(rule) for rule in _rules(dst)] + _icmp_lost_rules(dst)
    where = {"target": dst.namespace, "source": src.namespace}
    try:
        for side, tool, *rule in rules:
            netns(where[side], tool, "-w", "-I", *rule)
        yield rules
    finally:
        for side, tool, *rule in rules:
            netns(where[side], tool, "-w", "-D", *rule, check=False)


def _ports(rejects, expect_firewall=False):
    """Every faulty port and 22; with ``expect_firewall`` the expectations a firewall's owner writes."""
    ports = [{"port": OPEN}, {"port": DROPPED, "expected": "filtered" if expect_firewall else "open"},
             {"port": CLOSED, "expected": "closed" if expect_firewall else "open"}]
    for port, kind in rejects.items():
        wanted = "open"
        if expect_firewall:
            wanted = "closed" if kind == "tcp-reset" else "filtered"
        ports.append({"port": port, "expected": wanted})
    return ports


def _url(address, port):
    host = "[%s]" % address if ":" in address else address
    return "http://%s:%d/" % (host, port)


@pytest.fixture(scope="module")
def diagnosis(hosts, port_faults, ansible):
    """Two net_diagnose runs: every port (as they are, and as a firewall's owner expects them) and the
    same ports as URLs in ONE run, and the port whose ICMP error is lost (as a port and as a URL) in
    another. Ports and URLs of one target spend its one ICMP rate limit (IPv4: one error a second
    after a burst): their confirmations share the evidence and take turns (tcp.SharedConfirmation),
    so a URL is rejected exactly when its port is. The lost port is apart: the target spends a
    token on each of its re-probes and the source never sees it, which no prober can account for.
    The budget is raised for the first run: about 20 IPv4 flows to confirm at one a second."""
    src, dst, _ = hosts
    found = {}
    for layer in ("ports and urls", "lost"):
        targets = []
        for family, address, rejects in (("v4", dst.ip, REJECTS4), ("v6", dst.ip6, REJECTS6)):
            if layer == "ports and urls":
                targets.append({"name": "ports-" + family, "host": address, "icmp": "skip", "ports": _ports(rejects)})
                targets.append({"name": "firewall-" + family, "host": address, "icmp": "skip",
                                "ports": _ports(rejects, expect_firewall=True)})
                targets.append({"name": "urls-" + family, "host": address, "icmp": "skip",
                                "urls": [{"url": _url(address, p)} for p in [DROPPED, CLOSED] + sorted(rejects)]})
            else:
                targets.append({"name": "lost-" + family, "host": address, "icmp": "skip",
                                "ports": [{"port": ICMP_LOST}], "urls": [{"url": _url(address, ICMP_LOST)}]})
        run = ansible.module(src.name, "net_diagnose", {"targets": targets, "tcp_timeout": 1, "http": {"timeout": 2},
                                                        "confirm_budget": 40 if layer == "ports and urls" else 10})
        result = run.result(src.name)
        assert result.get("results"), result
        found.update({pair["target"]: pair for pair in result["results"]})
    return found


def _checks(pair):
    return {check["check"]: check for check in pair["verdict"]["checks"]}


def _expected_check(kind, icmp_table, address, sender):
    """(code, reason, evidence words) a port made with ``kind`` must give."""
    if kind == "tcp-reset":
        return "PORT_CLOSED", "rst", None
    icmp_type, icmp_code = icmp_table[kind]
    return "PORT_REJECTED", "icmp_unreach", "(type %d code %d) from %s" % (icmp_type, icmp_code, sender)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_each_port_of_one_target_has_its_own_code_reason_and_evidence(diagnosis, hosts, family):
    dst = hosts[1]
    address = dst.ip if family == "v4" else dst.ip6
    rejects, table = (REJECTS4, ICMP4) if family == "v4" else (REJECTS6, ICMP6)
    pair = diagnosis["ports-" + family]
    checks = _checks(pair)
    assert checks["tcp/%d" % OPEN]["code"] == "OK" and checks["tcp/%d" % OPEN]["ok"]
    dropped = checks["tcp/%d" % DROPPED]
    assert (dropped["code"], dropped["outcome"]["reason"]) == ("PORT_FILTERED", "no_answer"), dropped
    closed = checks["tcp/%d" % CLOSED]
    assert (closed["code"], closed["outcome"]["reason"]) == ("PORT_CLOSED", "rst"), closed
    for port, kind in rejects.items():
        check = checks["tcp/%d" % port]
        code, reason, words = _expected_check(kind, table, address, ipaddress.ip_address(address).compressed)
        assert (check["code"], check["outcome"]["reason"]) == (code, reason), (kind, check)
        if words:
            assert words in check["evidence"][0], (kind, check["evidence"])
            assert check["outcome"]["icmp_from"] == ipaddress.ip_address(address).compressed
    # the pair: the first failing check's code, and every failing check counted (none hidden)
    failing = [c for c in pair["verdict"]["checks"] if not c["ok"]]
    assert pair["verdict"]["failed_checks"] == len(failing) == 2 + len(rejects)
    assert pair["verdict"]["code"] == "PORT_FILTERED" and not pair["ok"]
    for check in failing:
        assert check["evidence"][0] in pair["verdict"]["evidence"]


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_a_reject_whose_icmp_error_is_lost_on_the_way_back_is_filtered_as_port_and_url(diagnosis, hosts, family):
    """The target answers with an ICMP error that never reaches the source: the source saw silence,
    so the port is filtered (no_answer), never a reject inferred from what the target does elsewhere."""
    dst = hosts[1]
    address = dst.ip if family == "v4" else dst.ip6
    checks = _checks(diagnosis["lost-" + family])
    for name in ("tcp/%d" % ICMP_LOST, "http " + _url(address, ICMP_LOST)):
        lost = checks[name]
        assert (lost["code"], lost["outcome"]["reason"], lost["outcome"]["answers"]) == (
            "PORT_FILTERED", "no_answer", 0), (name, lost)
        assert lost["outcome"]["icmp_type"] is None and "ICMP" not in lost["evidence"][0], lost
    assert diagnosis["lost-" + family]["verdict"]["failed_checks"] == 2


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_a_firewall_working_as_intended_is_ok_with_filtered_accepting_rejected(diagnosis, family):
    pair = diagnosis["firewall-" + family]
    assert pair["ok"] and pair["verdict"]["code"] == "OK", [
        (c["check"], c["code"], c["evidence"]) for c in pair["verdict"]["checks"] if not c["ok"]]
    rejected = [c for c in pair["verdict"]["checks"] if c["outcome"]["reason"] == "icmp_unreach"]
    assert rejected and all(c["ok"] and c["code"] == "OK" for c in rejected)
    # the TCP layer and the pair agree, port by port
    assert all(r["ok"] for r in pair["layers"]["tcp"])


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_the_same_ports_as_urls_give_the_same_codes(diagnosis, hosts, family):
    dst = hosts[1]
    address = dst.ip if family == "v4" else dst.ip6
    ports, urls = _checks(diagnosis["ports-" + family]), _checks(diagnosis["urls-" + family])
    rejects = REJECTS4 if family == "v4" else REJECTS6
    for port in [DROPPED, CLOSED] + sorted(rejects):
        url_check = urls["http " + _url(address, port)]
        port_check = ports["tcp/%d" % port]
        assert (url_check["code"], url_check["outcome"]["reason"]) == (
            port_check["code"], port_check["outcome"]["reason"]), (port, url_check["outcome"]["probes"], url_check["outcome"]["verdict_ms"])
        assert url_check["layer"] == "transport"


# --- a host down while the source's ARP cache still says REACHABLE ------------------------------

def _neighbour_state(namespace, address):
    line = netns(namespace, "ip", "neigh", "show", address).stdout.split()
    return line[-1] if line else None


@pytest.fixture(params=["v4", "v6"])
def gone_host(request, lab, hosts):
    """An address that answered (ARP/NDP and ping) and is gone now, still REACHABLE in the source's cache."""
    src, dst, _ = hosts
    if request.param == "v4":
        address, prefix, flags, ping = str(lab.config.network.network_address + 63), lab.config.network.prefixlen, [], []
    else:
        address, prefix = str(lab.config.network6.network_address + 0x63), lab.config.network6.prefixlen
        flags, ping = ["nodad"], ["-6"]  # no duplicate address detection: usable at once
    netns(dst.namespace, "ip", "addr", "add", "%s/%d" % (address, prefix), "dev", "eth0", *flags)
    try:
        assert wait_for(lambda: netns(src.namespace, "ping", *ping, "-c", "1", "-W", "1", address,
                                      check=False).returncode == 0, 10)
        assert wait_for(lambda: _neighbour_state(src.namespace, address) == "REACHABLE", 5)
        netns(dst.namespace, "ip", "addr", "del", "%s/%d" % (address, prefix), "dev", "eth0")
        assert _neighbour_state(src.namespace, address) == "REACHABLE"
        yield address
    finally:
        netns(dst.namespace, "ip", "addr", "del", "%s/%d" % (address, prefix), "dev", "eth0", check=False)
        netns(src.namespace, "ip", "neigh", "del", address, "dev", "eth0", check=False)


def test_a_down_host_still_reachable_in_the_cache_is_neighbour_failed(gone_host, hosts, ansible):
    src = hosts[0]
    run = ansible.module(src.name, "net_diagnose", {"targets": [{"name": "gone", "host": gone_host,
                                                                 "ports": [{"port": 22}]}], "tcp_timeout": 1})
    (pair,) = run.result(src.name)["results"]
    neighbour = pair["layers"]["neighbour"]["detail"]
    # the kernel still holds the MAC (REACHABLE, or DELAY once the probes' traffic went out); the wire does not
    assert neighbour["mac"] and neighbour["kernel_state"] in ("REACHABLE", "DELAY", "PROBE", "STALE"), neighbour
    assert neighbour["wire_macs"] == [] and neighbour["seen_on_wire"] is False, neighbour
    verdict = pair["verdict"]
    assert (verdict["code"], verdict["first_failing_layer"]) == ("NEIGHBOUR_FAILED", "link"), verdict
    checks = _checks(pair)
    assert checks["neighbour"]["outcome"]["reason"] == "no_neighbour"
    assert checks["neighbour"]["outcome"]["probes"] == 1 and checks["neighbour"]["outcome"]["answers"] == 0
    assert "stale" in checks["neighbour"]["evidence"][0]
    assert checks["icmp"]["code"] == "NEIGHBOUR_FAILED" and checks["tcp/22"]["code"] == "NEIGHBOUR_FAILED"
    words = " ".join(verdict["evidence"] + [verdict["hint"]] + [n["hint"] for n in verdict["notes"]]
                     + [c["hint"] for c in verdict["checks"]])
    assert "ICMP_FILTERED" not in [n["code"] for n in verdict["notes"]]
    assert "answers ARP" not in words


def test_a_live_ipv6_neighbour_answers_ndp_on_the_wire(hosts, ansible):
    src, dst, _ = hosts
    run = ansible.module(src.name, "net_diagnose", {"targets": [{"host": dst.ip6, "ports": [{"port": 22}]}]})
    (pair,) = run.result(src.name)["results"]
    neighbour = pair["layers"]["neighbour"]["detail"]
    assert neighbour["wire_macs"] == [dst.mac] and neighbour["seen_on_wire"] is True, neighbour
    assert pair["ok"] and _checks(pair)["neighbour"]["outcome"]["confirmed"] is True


# --- loss against thresholds ---------------------------------------------------------------------

COUNT = 20


@pytest.fixture
def lossy(lab, hosts):
    """Exactly 20 % of src's echoes to dst dropped (every 5th), 50 % to the third host (every 2nd),
    IPv4 and IPv6, and 20 % to a second address of dst (for a per-target threshold)."""
    src, dst, third = hosts
    extra = str(lab.config.network.network_address + 64)
    rules = []
    for tool, proto, kind, address, every, namespace in (
            ("iptables", "icmp", "--icmp-type", dst.ip, 5, dst.namespace),
            ("iptables", "icmp", "--icmp-type", extra, 5, dst.namespace),
            ("iptables", "icmp", "--icmp-type", third.ip, 2, third.namespace),
            ("ip6tables", "ipv6-icmp", "--icmpv6-type", third.ip6, 2, third.namespace)):
        rules.append((namespace, tool, "INPUT", "-s", src.ip6 if tool == "ip6tables" else src.ip, "-d", address,
                      "-p", proto, kind, "echo-request", "-m", "statistic", "--mode", "nth", "--every", str(every),
                      "--packet", "0", "-j", "DROP"))
    netns(dst.namespace, "ip", "addr", "add", extra + "/%d" % lab.config.network.prefixlen, "dev", "eth0")
    try:
        for namespace, tool, *rule in rules:
            netns(namespace, tool, "-w", "-I", *rule)
        yield extra
    finally:
        for namespace, tool, *rule in rules:
            netns(namespace, tool, "-w", "-D", *rule, check=False)
        netns(dst.namespace, "ip", "addr", "del", extra + "/%d" % lab.config.network.prefixlen, "dev", "eth0",
              check=False)


def test_twenty_and_fifty_percent_loss_are_a_warning_and_a_failure_with_the_figures(lossy, hosts, ansible):
    src, dst, third = hosts
    targets = [{"name": "loss20", "host": dst.ip, "ports": [{"port": 22}]},
               {"name": "loss20-strict", "host": lossy, "icmp_crit": {"loss_pct": 15}},
               {"name": "loss50", "host": third.ip, "ports": [{"port": 22}]},
               {"name": "loss50-v6", "host": third.ip6, "ports": [{"port": 22}]}]
    run = ansible.module(src.name, "net_diagnose", {
        "targets": targets, "tcp_timeout": 1, "icmp": {"count": COUNT, "interval": 0.02, "timeout": 1,
                                                       "warn": {"loss_pct": 20, "rtt_ms": 200},
                                                       "crit": {"loss_pct": 50, "rtt_ms": 500}}})
    pairs = {p["target"]: p for p in run.result(src.name)["results"]}
    for name, lost, code, severity, ok in (("loss20", 4, "ICMP_LOSS", "warn", True),
                                           ("loss20-strict", 4, "ICMP_LOSS", "fail", False),
                                           ("loss50", 10, "ICMP_LOSS", "fail", False),
                                           ("loss50-v6", 10, "ICMP_LOSS", "fail", False)):
        pair = pairs[name]
        detail = pair["layers"]["icmp"]["detail"]
        assert (detail["sent"], detail["received"]) == (COUNT, COUNT - lost), (name, detail)
        check = _checks(pair)["icmp"]
        assert (check["code"], check["severity"], pair["ok"]) == (code, severity, ok), (name, check)
        assert "%d/%d echoes answered, loss %g%%" % (COUNT - lost, COUNT, 100.0 * lost / COUNT) in check["evidence"][0]
        assert check["evidence"][1].startswith("thresholds: loss warn")
    assert pairs["loss20"]["verdict"]["code"] == "OK" and pairs["loss20"]["verdict"]["warned_checks"] == 1
    assert "crit 15" in _checks(pairs["loss20-strict"])["icmp"]["evidence"][1]
    assert pairs["loss50"]["verdict"]["code"] == "ICMP_LOSS" and pairs["loss50"]["verdict"]["failed_checks"] == 1
    assert run.result(src.name)["failed"] is True
    # fail_on_warn: the same 20 % is a failing pair, its check still a warning
    strict = ansible.module(src.name, "net_diagnose", {
        "targets": targets[:1], "tcp_timeout": 1, "fail_on_warn": True,
        "icmp": {"count": COUNT, "interval": 0.02, "timeout": 1}})
    (pair,) = strict.result(src.name)["results"]
    assert (pair["ok"], pair["verdict"]["code"], _checks(pair)["icmp"]["severity"]) == (False, "ICMP_LOSS", "warn")
    assert strict.result(src.name)["failed"] is True


def test_no_loss_is_ok_with_the_default_thresholds(hosts, ansible):
    src, dst, _ = hosts
    run = ansible.module(src.name, "net_diagnose", {"targets": [{"host": dst.ip, "icmp": "reachable"}],
                                                    "icmp": {"count": 5, "interval": 0.02}})
    (pair,) = run.result(src.name)["results"]
    assert pair["ok"] and _checks(pair)["icmp"]["code"] == "OK"
    assert pair["expected"]["icmp_warn"] == {"loss_pct": 20, "rtt_ms": 200}


# --- nmap as the oracle for net_diagnose's per-check verdicts (mixed ports of one host) ----------

CODE_OF_STATE = {"open": "OK", "closed": "PORT_CLOSED", "filtered": "PORT_FILTERED", "rejected": "PORT_REJECTED"}


@pytest.fixture(scope="module")
def matrix_faults(hosts):
    from verdict_faults import add_rules, undo_rules
    dst = hosts[1]
    added = add_rules(dst.namespace)
    yield dst
    undo_rules(dst.namespace, added)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_nmap_agrees_with_every_check_of_net_diagnose_on_mixed_ports(matrix_faults, hosts, ansible, family):
    """DROP ports next to REJECT ports (every type), tcp-reset, nothing listening and 22 on one host:
    each check's state agrees with nmap -sS -Pn --reason run in the source's namespace, its code
    follows from its state alone, and the firewall owner's expectations make the pair OK."""
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed (the oracle)")
    from verdict_faults import MIXED_DROP, MIXED_REJECT, V4_FAULTS, V6_FAULTS, agrees, nmap_states
    src, dst = hosts[0], matrix_faults
    address, faults = (dst.ip, V4_FAULTS) if family == "v4" else (dst.ip6, V6_FAULTS)
    wanted = {port: state for port, _, _, state, *_ in faults}
    wanted.update({port: "filtered" for port in MIXED_DROP})
    wanted.update({port: "rejected" for port in MIXED_REJECT})
    ports = sorted(wanted)
    intended = {"open": "open", "closed": "closed", "filtered": "filtered", "rejected": "filtered"}
    targets = [{"name": "mixed", "host": address, "icmp": "skip", "ports": [{"port": p} for p in ports]},
               {"name": "intended", "host": address, "icmp": "skip",
                "ports": [{"port": p, "expected": intended[wanted[p]]} for p in ports]}]
    run = ansible.module(src.name, "net_diagnose", {"targets": targets, "tcp_timeout": 2}, timeout=600)
    pairs = {p["target"]: p for p in run.result(src.name)["results"]}
    nmap = nmap_states(src.namespace, address, ports)
    mixed = pairs["mixed"]
    disagreements = []
    for result in mixed["layers"]["tcp"]:
        port = result["detail"]["port"]
        check = _checks(mixed)["tcp/%d" % port]
        if not agrees(result, nmap[port]) or check["code"] != CODE_OF_STATE[result["state"]] \
                or result["state"] != wanted[port]:
            disagreements.append((port, result["state"], check["code"], nmap[port]))
    assert not disagreements, disagreements
    assert mixed["verdict"]["failed_checks"] == sum(1 for p in ports if wanted[p] != "open")
    assert pairs["intended"]["ok"], [(c["check"], c["code"]) for c in pairs["intended"]["verdict"]["checks"]
                                     if not c["ok"]]


def test_fifty_rejects_and_five_drops_of_one_ipv6_host_each_have_their_own_check(matrix_faults, hosts, ansible):
    """The target rate-limits its ICMPv6 errors: most REJECT ports get no answer at first and are
    re-probed, paced, until their own error comes; the DROP ports stay filtered on their own silence.
    Every check agrees with nmap, and the firewall owner's expectations make the pair OK."""
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed (the oracle)")
    from verdict_faults import RATE_DROP, RATE_REJECT, agrees, nmap_states
    src, dst = hosts[0], matrix_faults
    ports = RATE_REJECT + RATE_DROP
    targets = [{"name": "rate", "host": dst.ip6, "icmp": "skip",
                "ports": [{"port": p, "expected": "rejected" if p in RATE_REJECT else "filtered"} for p in ports]}]
    run = ansible.module(src.name, "net_diagnose", {"targets": targets, "tcp_timeout": 2, "confirm_budget": 30},
                         timeout=600)
    (pair,) = run.result(src.name)["results"]
    checks = _checks(pair)
    assert pair["ok"], [(c["check"], c["code"], c["outcome"]) for c in pair["verdict"]["checks"] if not c["ok"]]
    reprobed = [c for c in checks.values() if c["outcome"]["probes"] > 1 and c["outcome"]["reason"] == "icmp_unreach"]
    assert reprobed, "no REJECT port needed a re-probe: the case did not hit the rate limit"
    for port in ports:
        record = checks["tcp/%d" % port]["outcome"]
        if port in RATE_REJECT:
            assert (record["reason"], record["icmp_from"], record["confirmed"]) == ("icmp_unreach", dst.ip6, True)
        else:
            assert (record["reason"], record["answers"]) == ("no_answer", 0), record
    nmap = nmap_states(src.namespace, dst.ip6, list(ports))
    results = {r["detail"]["port"]: r for r in pair["layers"]["tcp"]}
    assert [p for p in ports if not agrees(results[p], nmap[p])] == []
