"""plugin_utils/run.apply_captures: packet captures joined to the failing pairs of the run model,
from per-flow summaries of crafted pcaps (the module's own reader makes them)."""

from __future__ import annotations

import sys
from pathlib import Path

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.pcap import summarize_bytes
from pcapcraft import ACK, SYN, pcap_bytes, tcp_packet

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.netcheck.netcheck.plugins.plugin_utils import run as runmodel  # noqa: E402

WEB, DB, OTHER = "10.0.0.11", "10.0.0.12", "10.0.0.13"
ADDRESSES = {"web1": WEB, "db1": DB, "app1": OTHER}


def seen(*packets):
    return summarize_bytes(pcap_bytes([(1.0 + i * 0.01, p) for i, p in enumerate(packets)]))


def tcp_result(address, port, state):
    return {"target": "%s:%d" % (address, port), "kind": "tcp", "state": state, "ok": state == "open",
            "timings": {}, "error": None, "detail": {"host": address, "port": port}}


def pair(target, ports):
    """A pair to ``target`` with {port: state}; failing when a port is not open."""
    tcp = [tcp_result(ADDRESSES[target], port, state) for port, state in ports.items()]
    ok = all(r["ok"] for r in tcp)
    return {"target": target, "address": ADDRESSES[target], "kind": "diagnose", "ok": ok,
            "checked": ["transport"], "layers": {"neighbour": None, "icmp": None, "tcp": tcp, "http": []},
            "verdict": {"first_failing_layer": "none" if ok else "transport", "code": "OK" if ok else "PORT_FILTERED",
                        "hint": "h", "evidence": ["tcp: first fact"], "notes": []},
            "timings": {"total": 1.0}}


def mesh(results):
    """The run model of sources {name: [pairs]}."""
    return runmodel.build_run([{"name": name, "address": ADDRESSES[name],
                                "outcome": {"results": pairs, "elapsed_ms": 1.0, "limits": None}}
                               for name, pairs in results.items()], {"playbook": "check.yml"})


def stopped(name, summary, interface="eth0"):
    return {"address": ADDRESSES[name],
            "result": {"id": "run-%s" % name, "interface": interface, "summary": summary,
                       "pcap": {"path": "/var/tmp/netcheck-capture/run-%s/eth0.pcap" % name}}}


# web1 -> db1:5432 is dropped by db1's INPUT: the SYN is on both wires, nothing comes back;
# web1 -> db1:22 and db1 -> web1:22 complete; web1 also talks to app1, which is not this pair's
SYN_5432 = tcp_packet(WEB, 40000, DB, 5432, SYN, 100)
SSH = [tcp_packet(WEB, 40001, DB, 22, SYN, 200), tcp_packet(DB, 22, WEB, 40001, SYN | ACK, 900, 201),
       tcp_packet(WEB, 40001, DB, 22, ACK, 201, 901)]
BACK = [tcp_packet(DB, 40002, WEB, 22, SYN, 300), tcp_packet(WEB, 22, DB, 40002, SYN | ACK, 700, 301),
        tcp_packet(DB, 40002, WEB, 22, ACK, 301, 701)]
TO_APP = [tcp_packet(WEB, 40003, OTHER, 22, SYN, 400), tcp_packet(OTHER, 22, WEB, 40003, SYN | ACK, 500, 401)]
AT_WEB = seen(SYN_5432, SYN_5432, *SSH, *BACK, *TO_APP)
AT_DB = seen(SYN_5432, SYN_5432, *SSH, *BACK)


def filtered_run():
    return mesh({"web1": [pair("db1", {22: "open", 5432: "filtered"}), pair("app1", {22: "open"})],
                 "db1": [pair("web1", {22: "open"})]})


def test_a_drop_on_the_target_becomes_two_point_evidence_on_the_failing_pair(tmp_path):
    run = filtered_run()
    (tmp_path / "web1").mkdir()
    (tmp_path / "web1" / "eth0.pcap").write_bytes(b"fetched")
    runmodel.apply_captures(run, {"web1": stopped("web1", AT_WEB), "db1": stopped("db1", AT_DB)}, str(tmp_path))
    failing, to_app, back = run["pairs"]
    capture = failing["capture"]
    assert set(capture) == {"source", "target", "evidence"}
    (found,) = capture["evidence"]
    assert found["port"] == 5432 and found["where"] == "target_firewall"
    assert found["sentence"] == "SYN reached db1, no answer left db1: db1's own firewall (INPUT) dropped it."
    assert failing["verdict"]["evidence"] == ["tcp: first fact", found["sentence"]]
    # the pcap is named relative to the run directory when it was fetched there, else None
    assert capture["source"]["id"] == "run-web1" and capture["source"]["pcap"] == "web1/eth0.pcap"
    assert capture["target"]["id"] == "run-db1" and capture["target"]["pcap"] is None
    # this pair's flows only, both ways: web1's flow to app1 is left out
    assert sorted((f["orig_h"], f["resp_p"]) for f in capture["source"]["flows"]) == [
        (WEB, 22), (WEB, 5432), (DB, 22)]
    assert sorted((f["orig_h"], f["resp_p"]) for f in capture["target"]["flows"]) == [
        (WEB, 22), (WEB, 5432), (DB, 22)]
    # passing pairs are left alone
    assert to_app["capture"] is None and back["capture"] is None
    # on the terminal the answer is printed once, even past the first four facts
    assert runmodel.render_failures(run).count("     " + found["sentence"]) == 1
    failing["verdict"]["evidence"][1:1] = ["fact 2", "fact 3", "fact 4"]
    assert "     capture: " + found["sentence"] in runmodel.render_failures(run)


def test_a_target_that_was_not_captured_gives_flows_but_no_evidence():
    run = filtered_run()
    runmodel.apply_captures(run, {"web1": stopped("web1", AT_WEB), "db1": {"address": DB, "result": None}})
    capture = run["pairs"][0]["capture"]
    assert capture["target"] is None and capture["evidence"] == []
    assert capture["source"]["pcap"] is None and len(capture["source"]["flows"]) == 3
    assert run["pairs"][0]["verdict"]["evidence"] == ["tcp: first fact"]


def test_a_capture_that_never_stopped_counts_as_no_capture():
    run = filtered_run()
    skipped = {"address": DB, "result": {"skipped": True, "changed": False}}
    runmodel.apply_captures(run, {"web1": {"address": WEB, "result": None}, "db1": skipped})
    assert all(p["capture"] is None for p in run["pairs"])


def test_a_target_labelled_otherwise_is_found_by_its_address():
    run = filtered_run()
    run["pairs"][0]["target"] = "database"
    runmodel.apply_captures(run, {"web1": stopped("web1", AT_WEB), "db1": stopped("db1", AT_DB)})
    capture = run["pairs"][0]["capture"]
    assert capture["target"]["id"] == "run-db1"
    assert capture["evidence"][0]["sentence"].startswith("SYN reached database, no answer left database")
