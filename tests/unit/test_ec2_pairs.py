"""Which checks of a run the EC2 explainer takes (plugins/plugin_utils/ec2_pairs.py): one flow per
failing check, chosen by its code and outcome reason (``pair["verdict"]["checks"]``), else by the
layers' result fields; never by message words. Hand-made Describe data from test_ec2_explain.world()."""

from __future__ import annotations

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import ec2_pairs  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import ec2_explain as ex  # noqa: E402
from test_ec2_explain import DB_IP, WEB_IP, _pair, _run, _twin_vpc, state_of, world  # noqa: E402

# hints and messages that say the opposite of the fields: a check is chosen by its fields only
MISLEADING = "no answer within the timeout (filtered)"


def check(name, ok, code, reason=None, phase=None):
    outcome = None if reason is None else {"reason": reason, "phase": phase, "icmp_type": None, "icmp_code": None,
                                           "icmp_from": None, "errno": None}
    return {"check": name, "layer": "transport", "ok": ok, "severity": None if ok else "fail", "code": code,
            "hint": MISLEADING, "evidence": [MISLEADING], "outcome": outcome}


def test_each_silent_check_is_one_flow_and_rejects_resets_and_the_source_firewall_are_not():
    pair = _pair("web1", "db1", DB_IP, "PORT_FILTERED")  # layers empty: the checks decide
    pair["verdict"]["checks"] = [
        check("neighbour", True, "OK", "neighbour_answer"),
        check("icmp", False, "ICMP_FILTERED", "no_answer", "echo"),
        check("tcp/22", True, "OK", "syn_ack"),
        check("tcp/5432", False, "PORT_FILTERED", "no_answer", "connect"),
        check("tcp/8080", False, "PORT_REJECTED", "icmp_unreach", "connect"),
        check("tcp/8081", False, "PORT_CLOSED", "rst", "connect"),
        check("tcp/9000", False, "PORT_FILTERED", "local_firewall", "connect"),
        check("http http://%s:8443/health" % DB_IP, False, "PORT_FILTERED", "no_answer", "connect"),
        check("http https://%s/" % DB_IP, False, "HTTP_TIMEOUT", "http_timeout", "processing"),
    ]
    assert ex.flows_of_pair(pair) == [("icmp", None, "ICMP_FILTERED"), ("tcp", 5432, "PORT_FILTERED"),
                                      ("tcp", 8443, "PORT_FILTERED")]
    run = _run(pair)
    assert ex.explain_run(run, state=state_of(world())) == {"explained": 1, "error": None}
    flows = pair["explain"]["flows"]
    assert [item["flow"]["check"] for item in flows] == ["icmp", "tcp/5432", "http http://%s:8443/health" % DB_IP]
    assert [item["code"] for item in flows] == ["ENI_SG_RULES_MISMATCH", "CONFIGURATION_ALLOWS",
                                                "ENI_SG_RULES_MISMATCH"]
    assert pair["explain"]["flow"]["check"] == "icmp"  # the first blocked flow leads


def test_icmp_dropped_while_the_ports_answer_is_a_note_and_still_explained():
    pair = _pair("web1", "db1", DB_IP, "OK")
    pair["verdict"]["checks"] = [check("icmp", True, "ICMP_FILTERED", "no_answer", "echo"),
                                 check("tcp/5432", True, "OK", "syn_ack")]
    assert ex.flows_of_pair(pair) == [("icmp", None, "ICMP_FILTERED")]


def test_checks_without_an_outcome_fall_back_to_their_code():
    pair = _pair("web1", "db1", DB_IP, "PORT_FILTERED")
    pair["verdict"]["checks"] = [check("tcp/5432", False, "PORT_FILTERED"), check("tcp/8080", False, "PORT_CLOSED"),
                                 check("icmp", False, "ICMP_FILTERED")]
    assert ex.flows_of_pair(pair) == [("tcp", 5432, "PORT_FILTERED"), ("icmp", None, "ICMP_FILTERED")]
    assert ex.flows_of_pair(pair, codes=("PORT_FILTERED",)) == [("tcp", 5432, "PORT_FILTERED")]


def test_a_healthy_pair_or_one_failing_elsewhere_is_not_explained():
    healthy = _pair("web1", "db1", DB_IP, "OK")
    healthy["verdict"]["checks"] = [check("icmp", True, "OK", "echo_reply"), check("tcp/5432", True, "OK", "syn_ack")]
    closed = _pair("web1", "db1", DB_IP, "PORT_CLOSED")
    closed["verdict"]["checks"] = [check("tcp/5432", False, "PORT_CLOSED", "rst")]
    run = _run(healthy, closed)
    assert ex.explain_run(run, state=state_of(world())) == {"explained": 0, "error": None}
    assert healthy["explain"] is None and closed["explain"] is None


def test_layers_fallback_skips_the_source_hosts_own_firewall():
    pair = _pair("web1", "db1", DB_IP, "PORT_FILTERED", tcp=[(5432, "filtered"), (8080, "filtered"),
                                                             (9000, "filtered")])
    pair["layers"]["tcp"][1]["detail"]["errno_name"] = "EPERM"  # an OUTPUT rule of the source refused it
    pair["layers"]["tcp"][2]["detail"]["outcome"] = {"reason": "local_firewall"}
    assert ex.flows_of_pair(pair) == [("tcp", 5432, "PORT_FILTERED")]


def test_path_mtu_verdict_of_a_check_is_explained_by_name():
    pair = _pair("web1", "db1", DB_IP, "MTU_BLACKHOLE")
    pair["verdict"]["checks"] = [check("tcp/443", False, "MTU_BLACKHOLE", "no_answer", "transfer"),
                                 check("icmp", True, "OK", "echo_reply")]
    assert ex.flows_of_pair(pair) == [("tcp", 443, "MTU_BLACKHOLE")]
    old = _pair("web1", "db1", DB_IP, "MTU_BLACKHOLE", tcp=[(443, "open")])
    assert ex.flows_of_pair(old) == [("tcp", 443, "MTU_BLACKHOLE")]


def test_explain_run_tells_apart_one_address_in_two_vpcs_by_the_inventorys_instance():
    data = _twin_vpc(world())
    pair = _pair("web1", "db1", DB_IP, "PORT_FILTERED", tcp=[(5432, "filtered")])
    ex.explain_run(_run(pair), state=ex.Ec2State(**data))
    assert pair["explain"]["code"] == "NOT_EVALUATED" and "held by 2 network interfaces" in pair["explain"]["message"]
    pair["explain"] = None
    instances = {"db1": {"instance_id": "i-db", "vpc_id": "vpc-a"}, "web1": {"instance_id": "i-web", "vpc_id": None}}
    ex.explain_run(_run(pair), {"instances": instances}, state=ex.Ec2State(**data))
    assert pair["explain"]["code"] == "CONFIGURATION_ALLOWS" and pair["explain"]["flow"]["target_instance"] == "i-db"


def test_url_ports_come_from_the_url():
    assert ec2_pairs._url_port("https://[fd00::1]/x") == 443
    assert ec2_pairs._url_port("http://10.0.0.1:8080/health") == 8080
    assert ec2_pairs._url_port("http://10.0.0.1/") == 80
    assert ec2_pairs._url_port("not a url") is None


def test_layers_fallback_takes_each_silent_port_of_any_failing_pair_and_an_inferred_reject():
    # before per-check verdicts one pair code hid the others: ICMP_FILTERED above a dropped port,
    # and a dropped port next to a rejected one was called rejected with a sibling's ICMP copied in
    pair = _pair("web1", "db1", DB_IP, "ICMP_FILTERED", tcp=[(5432, "rejected"), (8080, "rejected"), (22, "open")],
                 notes=["PORT_REJECTED"])
    pair["layers"]["tcp"][0]["detail"]["icmp_inferred"] = True
    assert ex.flows_of_pair(pair) == [("tcp", 5432, "PORT_FILTERED"), ("icmp", None, "ICMP_FILTERED")]


def test_port_open_although_expected_closed_names_the_rule_that_lets_it_in():
    pair = _pair("web1", "db1", DB_IP, "PORT_OPEN")
    pair["verdict"]["checks"] = [check("tcp/5432", False, "PORT_OPEN", "syn_ack", "connect")]
    ex.explain_run(_run(pair), state=state_of(world()))
    explain = pair["explain"]
    assert explain["status"] == "allowed" and explain["flow"]["check"] == "tcp/5432"
    assert explain["message"] == ("configuration allows it: ingress rule tcp 5432 from sg-web of sg-db lets tcp/5432 in"
                                  " from %s, although it is expected closed" % WEB_IP)
    assert explain["fix"].startswith("remove or narrow ingress rule tcp 5432 from sg-web of sg-db")
    assert explain["rule"]["group_id"] == "sg-db"


def test_path_mtu_check_of_the_path_probe_is_explained_with_the_measured_interface_mtu():
    from test_ec2_explain import OTHER_IP, _inter_region

    pair = _pair("web1", "other1", OTHER_IP, "MTU_BLACKHOLE")
    blackhole = {"check": "path_mtu", "layer": "network", "ok": False, "severity": "fail", "code": "MTU_BLACKHOLE",
                 "hint": MISLEADING, "evidence": [], "outcome": None,
                 "mtu": {"code": "MTU_BLACKHOLE", "interface_mtu": 9001, "largest_passed": 8500}}
    pair["verdict"]["checks"] = [check("tcp/9000", True, "OK", "syn_ack"), blackhole]
    assert ex.flows_of_pair(pair) == [("tcp", 9000, "MTU_BLACKHOLE")]
    ex.explain_run(_run(pair), state=_inter_region(world()))
    explain = pair["explain"]
    assert explain["status"] == "blocked" and explain["code"] == "PMTUD_ICMP_BLOCKED"
    assert explain["flow"]["check"] == "path_mtu" and explain["mtu"][0]["instance_mtu"] == 9001
    # an interface at 1500 sends nothing the 8500-byte path must refuse: no finding from its side
    blackhole["mtu"]["interface_mtu"] = 1500
    pair["explain"] = None
    ex.explain_run(_run(pair), state=_inter_region(world()))
    assert pair["explain"]["mtu"] == [] and pair["explain"]["code"] != "PMTUD_ICMP_BLOCKED"
