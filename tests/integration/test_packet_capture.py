"""packet_capture over SSH against lab hosts: real tcpdump, tshark as the independent reader.

Every capture of this file gets an id that starts with this session's prefix, so the
"no tcpdump left" checks look at our own tcpdumps only (other labs may run theirs),
and the teardown removes our directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from harness import BIN, REPO, netns, wait_for

ROOT = Path("/var/tmp/netcheck-capture")
PREFIX = "t%s" % uuid.uuid4().hex[:6]
WEB_PORT = 8080


def new_id(label):
    return "%s-%s-%s" % (PREFIX, label, uuid.uuid4().hex[:4])


def tcpdumps(capture_id):
    """Live (non-zombie) tcpdump processes writing into this capture's directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv and argv[0].endswith(b"tcpdump") and state != "Z" and \
                any(str(ROOT / capture_id).encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def tshark(pcap, *fields, display_filter=None):
    argv = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|"]
    if display_filter:
        argv += ["-Y", display_filter]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line]


def connect(host, address, port, timeout=2.0):
    """A TCP connect (and an HTTP GET when it opens) from a lab host; returns the outcome word."""
    code = ("import socket,sys\n"
            "try:\n"
            " s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
            "except socket.timeout: print('timeout'); sys.exit()\n"
            "except OSError as e: print(e.errno); sys.exit()\n"
            "print('open')\n"
            "try:\n"
            " s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); s.settimeout(2)\n"
            " while s.recv(65536): pass\n"
            "except OSError: pass\n"
            "s.close()\n")
    return netns(host.namespace, sys.executable, "-c", code, address, str(port), str(timeout)).stdout.strip()


def ping(host, address, count=3, size=None):
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1"]
    argv += ["-s", str(size)] if size else []
    return netns(host.namespace, *argv, address, check=False)


@pytest.fixture(scope="module", autouse=True)
def remove_our_captures():
    yield
    for path in ROOT.glob(PREFIX + "-*"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def capture(ansible):
    """Run packet_capture on a host; returns the module's result (failed ones too)."""
    def run(host, check=False, **args):
        return ansible.module(host.name, "packet_capture", args, check=check).result(host.name)
    return run


def start(capture, host, label, **args):
    capture_id = new_id(label)
    started = capture(host, state="started", id=capture_id, **args)
    assert not started.get("failed"), started
    assert started["running"] is True and tcpdumps(capture_id), started
    return capture_id


def stop(capture, host, capture_id):
    result = capture(host, state="stopped", id=capture_id)
    assert not result.get("failed"), result
    assert tcpdumps(capture_id) == []
    return result


# --- filters -------------------------------------------------------------------------

def test_host_filter_keeps_only_the_host(capture, src, dst, hosts):
    other = hosts[2]
    capture_id = start(capture, src, "host", filter={"host": dst.ip}, duration=60)
    assert ping(src, dst.ip).returncode == 0
    assert ping(src, other.ip).returncode == 0
    result = stop(capture, src, capture_id)
    rows = tshark(result["pcap"]["path"], "ip.src", "ip.dst", display_filter="ip")
    assert rows and all(dst.ip in row for row in rows)
    assert sum(1 for row in rows if row == [src.ip, dst.ip]) == 3
    assert not any(other.ip in row for row in rows)
    assert result["ended_by"] == "stopped" and result["filter"] == "host %s" % dst.ip


def test_port_filter_keeps_only_the_port(capture, src, dst):
    capture_id = start(capture, src, "port", filter={"proto": "tcp", "port": WEB_PORT}, targets=[dst.ip])
    assert connect(src, dst.ip, WEB_PORT) == "open"
    assert connect(src, dst.ip, 22) == "open"
    result = stop(capture, src, capture_id)
    ports = tshark(result["pcap"]["path"], "tcp.srcport", "tcp.dstport")
    assert ports and all(str(WEB_PORT) in row for row in ports)
    assert not any("22" in row for row in ports)
    assert result["interface"] == "eth0"   # the interface that routes to targets[0]


def test_net_filter_keeps_only_the_network(capture, src, dst, hosts, lab):
    net = "%s/31" % hosts[1].ip   # .12 and .13, not .11 (src) nor the controller
    capture_id = start(capture, src, "net", filter={"net": net, "proto": "icmp"})
    assert ping(src, hosts[1].ip, 2).returncode == 0
    assert ping(src, hosts[2].ip, 2).returncode == 0
    assert ping(src, lab.config.controller_ip, 2).returncode == 0
    result = stop(capture, src, capture_id)
    rows = tshark(result["pcap"]["path"], "ip.src", "ip.dst")
    peers = Counter(row[1] if row[0] == src.ip else row[0] for row in rows)
    assert peers == {hosts[1].ip: 4, hosts[2].ip: 4}


# --- the summary against tshark --------------------------------------------------------

def tshark_flows(pcap):
    """Per TCP/UDP flow and direction: packets, IP bytes, SYN, SYN-ACK, RST, FIN, as tshark reads them."""
    flows = {}
    rows = tshark(pcap, "ip.src", "ip.dst", "ip.proto", "tcp.srcport", "tcp.dstport", "udp.srcport",
                  "udp.dstport", "ip.len", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.reset",
                  "tcp.flags.fin", display_filter="(tcp or udp) and not icmp")
    for src, dst, proto, tsport, tdport, usport, udport, length, syn, ack, rst, fin in rows:
        sport, dport = (tsport, tdport) if proto == "6" else (usport, udport)
        key = (proto, src, int(sport), dst, int(dport))
        counts = flows.setdefault(key, Counter())
        counts["pkts"] += 1
        counts["ip_bytes"] += int(length)

        def flag(value):
            return value in ("1", "True")  # tshark prints 1 or True
        counts["syn"] += flag(syn) and not flag(ack)
        counts["syn_ack"] += flag(syn) and flag(ack)
        counts["rst"] += flag(rst)
        counts["fin"] += flag(fin)
    return flows


def our_flows(summary):
    flows = {}
    for flow in summary["flows"]:
        proto = {"tcp": "6", "udp": "17"}.get(flow["proto"])
        if proto is None:
            continue
        for side, (h, p, oh, op) in (("orig", ("orig_h", "orig_p", "resp_h", "resp_p")),
                                     ("resp", ("resp_h", "resp_p", "orig_h", "orig_p"))):
            if not flow[side + "_pkts"]:
                continue
            counts = Counter(pkts=flow[side + "_pkts"], ip_bytes=flow[side + "_ip_bytes"])
            counts.update(flow[side + "_flags"] or {})
            flows[(proto, flow[h], flow[p], flow[oh], flow[op])] = +counts
    return flows


@pytest.mark.parametrize("interface", ["eth0", "any"])
def test_summary_equals_tshark(capture, src, dst, interface, iptables_rules):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9999", "-j", "DROP")
    capture_id = start(capture, src, "tshark-" + interface, filter={"host": dst.ip}, interface=interface)
    assert connect(src, dst.ip, WEB_PORT) == "open"          # SF
    assert connect(src, dst.ip, 9) == "111"                  # closed: REJ
    assert connect(src, dst.ip, 9999, timeout=1.5) == "timeout"   # filtered: S0, SYN retransmitted
    assert ping(src, dst.ip, 4).returncode == 0
    result = stop(capture, src, capture_id)
    pcap, summary = result["pcap"]["path"], result["summary"]
    expected_link = {"eth0": 1, "any": 276}[interface]
    assert result["pcap"]["link_type"] == expected_link
    assert tshark_flows(pcap) == {k: Counter(v) for k, v in our_flows(summary).items()}
    states = {flow["resp_p"]: flow["conn_state"] for flow in summary["flows"] if flow["proto"] == "tcp"}
    assert states == {WEB_PORT: "SF", 9: "REJ", 9999: "S0"}
    filtered = [f for f in summary["flows"] if f["resp_p"] == 9999][0]
    retransmitted = tshark(pcap, "frame.number", display_filter="tcp.analysis.retransmission and tcp.port == 9999")
    assert filtered["retransmissions"]["orig"] == len(retransmitted) >= 1
    sf = [f for f in summary["flows"] if f["resp_p"] == WEB_PORT][0]
    assert sf["local"] == "orig" and sf["handshake"]["measured_at"] == "originator"
    assert sf["handshake"]["rtt_ms"] > 0
    echo_requests = len(tshark(pcap, "frame.number", display_filter="icmp.type == 8"))
    echo_replies = len(tshark(pcap, "frame.number", display_filter="icmp.type == 0"))
    assert summary["icmp_echo"] == [dict(summary["icmp_echo"][0], requester=src.ip, responder=dst.ip,
                                         requests=echo_requests, replies=echo_replies)]
    assert echo_requests == echo_replies == 4
    counts = result["tcpdump"]
    assert counts["captured"] == result["pcap"]["packets"] == len(tshark(pcap, "frame.number"))


def test_icmp_admin_prohibited_is_attached_to_its_tcp_flow(capture, src, dst, iptables_rules):
    iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9998", "-j", "REJECT",
                   "--reject-with", "icmp-admin-prohibited")
    capture_id = start(capture, src, "adminprohib", filter={"host": dst.ip})
    assert connect(src, dst.ip, 9998) == "113"    # EHOSTUNREACH
    result = stop(capture, src, capture_id)
    [flow] = [f for f in result["summary"]["flows"] if f["resp_p"] == 9998]
    assert flow["conn_state"] == "S0"
    assert flow["icmp_errors"][0]["from"] == dst.ip
    assert (flow["icmp_errors"][0]["type"], flow["icmp_errors"][0]["code"]) == (3, 13)
    quoted = tshark(result["pcap"]["path"], "tcp.srcport", display_filter="icmp.type == 3 and icmp.code == 13")
    assert [int(row[0]) for row in quoted] == [flow["orig_p"]]


def test_icmp_echo_counts_equal_the_pings_sent(capture, src, dst):
    capture_id = start(capture, src, "echo", filter={"proto": "icmp"}, targets=[dst.ip])
    assert ping(src, dst.ip, 5).returncode == 0
    result = stop(capture, src, capture_id)
    [pair] = result["summary"]["icmp_echo"]
    assert (pair["requester"], pair["responder"], pair["requests"], pair["replies"]) == (src.ip, dst.ip, 5, 5)


# --- bounds and processes --------------------------------------------------------------

def test_packet_count_bound_ends_the_capture(capture, src, dst):
    capture_id = start(capture, src, "count", filter={"proto": "icmp", "host": dst.ip}, max_packets=3)
    ping(src, dst.ip, 5)
    assert wait_for(lambda: not tcpdumps(capture_id), 10)
    result = capture(src, state="stopped", id=capture_id)
    assert result["ended_by"] == "count" and result["changed"] is False
    assert result["pcap"]["packets"] == result["tcpdump"]["captured"] == 3


def test_duration_bound_ends_a_capture_that_matches_nothing(capture, src):
    capture_id = new_id("duration")
    began = time.monotonic()
    result = capture(src, id=capture_id, filter={"proto": "udp", "port": 9}, interface="eth0", duration=2)
    assert result["ended_by"] == "duration", result
    assert 2.0 <= result["elapsed_s"] < 4.0 and time.monotonic() - began < 15
    assert result["pcap"]["packets"] == 0 and result["pcap"]["first_ts"] is None
    assert tcpdumps(capture_id) == []


def test_size_bound_ends_the_capture(capture, src, dst):
    capture_id = start(capture, src, "size", filter={"host": dst.ip, "proto": "icmp"}, max_bytes=4096)
    ping(src, dst.ip, 10, size=1000)
    assert wait_for(lambda: not tcpdumps(capture_id), 10)
    result = capture(src, state="stopped", id=capture_id)
    assert result["ended_by"] == "size"
    assert result["pcap"]["size"] >= 4096 and result["pcap"]["packets"] < 20


def test_a_started_capture_stops_at_its_duration_when_nobody_stops_it(capture, src):
    capture_id = start(capture, src, "selfstop", interface="eth0", filter="udp port 9", duration=2)
    assert wait_for(lambda: not tcpdumps(capture_id) and (ROOT / capture_id / "result.json").exists(), 10)
    assert json.loads((ROOT / capture_id / "result.json").read_text())["ended_by"] == "duration"


def descendants(pid):
    found = [pid]
    for child in Path("/proc/%d/task" % pid).glob("*/children"):
        for token in child.read_text().split():
            found += descendants(int(token))
    return found


def test_killing_the_controller_mid_capture_stops_tcpdump(ansible, src):
    capture_id = new_id("ctlkill")
    argv = [str(BIN / "ansible"), src.name, "-i", ansible.inventory, "-m", "netcheck.netcheck.packet_capture",
            "-a", json.dumps({"id": capture_id, "interface": "eth0", "filter": "udp port 9", "duration": 120})]
    controller = subprocess.Popen(argv, cwd=REPO, env=ansible._env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for(lambda: tcpdumps(capture_id), 30)
        # the controller and its ssh processes die at once, as on kill -9 or a lost laptop
        for pid in descendants(controller.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert wait_for(lambda: not tcpdumps(capture_id) and (ROOT / capture_id / "result.json").exists(), 10)
    finally:
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
        controller.wait(10)
    result = json.loads((ROOT / capture_id / "result.json").read_text())
    assert result["ended_by"] == "controller_lost"


def test_killing_the_supervisor_kills_its_tcpdump(capture, src):
    capture_id = start(capture, src, "supkill", interface="eth0", filter="udp port 9", duration=120)
    record = json.loads((ROOT / capture_id / "capture.json").read_text())
    os.kill(record["supervisor"]["pid"], signal.SIGKILL)
    assert wait_for(lambda: not tcpdumps(capture_id), 5)
    result = capture(src, state="stopped", id=capture_id)
    assert result["ended_by"] == "supervisor_lost"


def test_absent_removes_the_capture(capture, src):
    capture_id = start(capture, src, "absent", interface="eth0", filter="udp port 9", duration=60)
    result = capture(src, state="absent", id=capture_id)
    assert result["changed"] is True and result["removed"] == [capture_id]
    assert not (ROOT / capture_id).exists() and tcpdumps(capture_id) == []
    again = capture(src, state="absent", id=capture_id)
    assert again["changed"] is False


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ({"filter": "tcp port eighty", "interface": "eth0"}, "filter: tcpdump refused .*"),
    ({"filter": "host 10.0.0.1 and and", "interface": "eth0"}, "filter: tcpdump refused .*syntax error"),
    ({"interface": "nosuch0"}, "interface: no interface 'nosuch0'"),
    ({"interface": "eth0", "duration": -1}, "duration: -1 is out of range"),
    ({"interface": "eth0", "max_packets": 0}, "max_packets: 0 is out of range"),
    ({"interface": "eth0", "max_bytes": 10 ** 13}, "max_bytes: 10000000000000 is out of range"),
    ({"interface": "eth0", "snaplen": 10 ** 7}, "snaplen: 10000000 is out of range"),
    ({"interface": "eth0", "file_name": "/tmp/netcheck-evil.pcap"}, "file_name: .* plain file name"),
    ({"interface": "eth0", "file_name": "../../../tmp/netcheck-evil.pcap"}, "file_name: .* plain file name"),
    ({"interface": "eth0", "id": "../../tmp"}, "id: .* is not a capture id"),
    ({"filter": {"host": "10.0.0.1", "prot": "tcp"}, "interface": "eth0"}, "filter: unknown key 'prot'"),
])
def test_bad_input_fails_naming_the_field_and_starts_nothing(capture, src, args, message):
    before = set(os.listdir(ROOT)) if ROOT.exists() else set()
    tcpdumps_before = len([p for p in Path("/proc").iterdir() if p.name.isdigit()
                           and (p / "comm").exists() and _comm(p) == "tcpdump"])
    result = capture(src, **args)
    assert result.get("failed") is True
    import re
    assert re.search(message, result["msg"]), result["msg"]
    after = set(os.listdir(ROOT)) if ROOT.exists() else set()
    assert after == before
    assert not Path("/tmp/netcheck-evil.pcap").exists()
    assert len([p for p in Path("/proc").iterdir() if p.name.isdigit()
                and (p / "comm").exists() and _comm(p) == "tcpdump"]) <= tcpdumps_before


def _comm(path):
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return ""


def test_check_mode_compiles_the_filter_and_starts_nothing(capture, src):
    before = set(os.listdir(ROOT)) if ROOT.exists() else set()
    result = capture(src, check=True, interface="eth0", filter="tcp port 80")
    assert result["changed"] is True and result["running"] is False
    assert (set(os.listdir(ROOT)) if ROOT.exists() else set()) == before
    bad = capture(src, check=True, interface="eth0", filter="tcp port eighty")
    assert bad.get("failed") and bad["msg"].startswith("filter: ")


# --- the file --------------------------------------------------------------------------

def test_pcap_is_0600_and_its_fetched_copy_is_identical(capture, ansible, src, dst, tmp_path):
    capture_id = start(capture, src, "fetch", filter={"host": dst.ip})
    ping(src, dst.ip, 2)
    result = stop(capture, src, capture_id)
    path = result["pcap"]["path"]
    assert path == str(ROOT / capture_id / "eth0.pcap")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600" and result["pcap"]["mode"] == "0600"
    fetched = ansible.module(src.name, "ansible.builtin.fetch",
                             {"src": path, "dest": str(tmp_path) + "/", "flat": True}).result(src.name)
    assert not fetched.get("failed"), fetched
    copy = tmp_path / "eth0.pcap"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == result["pcap"]["sha256"]
    info = subprocess.run(["capinfos", "-c", "-M", str(copy)], capture_output=True, text=True, check=True)
    assert "Number of packets:   %d" % result["pcap"]["packets"] in info.stdout


def test_the_pcap_belongs_to_the_owner(capture, src, dst):
    import pwd
    nobody = pwd.getpwnam("nobody")
    result = capture(src, id=new_id("owner"), filter={"host": dst.ip}, duration=1, owner="nobody")
    assert os.stat(result["pcap"]["path"]).st_uid == nobody.pw_uid == result["pcap"]["owner_uid"]


# --- two-point evidence ----------------------------------------------------------------

def _two_point():
    import importlib
    collections = str(REPO / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    return importlib.import_module(
        "ansible_collections.netcheck.netcheck.plugins.plugin_utils.capture_evidence").two_point


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def bridge_port(lab):
    """Change a lab host's bridge port (root namespace, the lab's own device); undone at teardown."""
    changed = []

    def restore(veth):
        run("bridge", "link", "set", "dev", veth, "state", "3", "learning", "on", "flood", "on",
            "mcast_flood", "on")

    def set_port(host, *settings):
        """Returns the function that undoes it (SSH to the host needs the port back)."""
        veth = lab.config.veth_name(host.index)
        changed.append(veth)
        run("bridge", "link", "set", "dev", veth, *settings)
        return lambda: restore(veth)

    yield set_port
    for veth in changed:
        restore(veth)


def two_point_capture(ansible, src, dst, port, make_fault, src_duration=60):
    """Capture on both ends while src connects to dst:port after ``make_fault()``; the evidence.

    When the fault also cuts SSH to src, src's capture is given a short duration and the
    fault is undone only once that bound ended it, so late answers never reach the capture."""
    label = new_id("2p")
    ids = {src.name: label + "-src", dst.name: label + "-dst"}
    for host, duration in ((src, src_duration), (dst, 60)):
        started = ansible.module(host.name, "packet_capture", {
            "state": "started", "id": ids[host.name], "interface": "eth0",
            "filter": {"proto": "tcp", "port": port}, "duration": duration}).result(host.name)
        assert started["running"], started
    ping(src, dst.ip, 1)   # a fresh neighbour entry, so the SYN is sent even when the path breaks
    undo = make_fault()
    try:
        outcome = connect(src, dst.ip, port, timeout=1.5)
        if src_duration < 60:
            assert wait_for((ROOT / ids[src.name] / "result.json").exists, src_duration + 10)
    finally:
        if undo:
            undo()
    summaries = {}
    for host in (src, dst):
        stopped = ansible.module(host.name, "packet_capture", {"state": "stopped", "id": ids[host.name]})
        summaries[host.name] = stopped.result(host.name)["summary"]
    return outcome, _two_point()(src.name, dst.name, dst.ip, port, summaries[src.name], summaries[dst.name])


def test_two_point_drop_on_the_target_input(ansible, src, dst, iptables_rules):
    def fault():
        iptables_rules(dst.namespace, "INPUT", "-p", "tcp", "--dport", "9991", "-j", "DROP")
    outcome, evidence = two_point_capture(ansible, src, dst, 9991, fault)
    assert outcome == "timeout"
    assert evidence["where"] == "target_firewall"
    assert evidence["sentence"] == "SYN reached %s, no answer left %s: %s's own firewall (INPUT) dropped it." % (
        dst.name, dst.name, dst.name)


def test_two_point_drop_on_the_sender_output(ansible, src, dst, iptables_rules):
    def fault():
        iptables_rules(src.namespace, "OUTPUT", "-p", "tcp", "--dport", "9992", "-j", "DROP")
    outcome, evidence = two_point_capture(ansible, src, dst, 9992, fault)
    assert outcome in ("timeout", "1")     # a local OUTPUT DROP may fail connect() with EPERM
    assert evidence["where"] == "source"
    assert evidence["sentence"].startswith("The SYN never left %s: its capture has no SYN to %s:9992"
                                           % (src.name, dst.ip))


def test_two_point_loss_between_the_hosts(ansible, src, dst, bridge_port):
    def fault():
        return bridge_port(dst, "state", "0")   # the switch port of dst stops forwarding
    outcome, evidence = two_point_capture(ansible, src, dst, 9993, fault)
    assert outcome == "timeout"
    assert evidence["where"] == "between"
    assert evidence["sentence"].startswith("SYN left %s and never reached %s" % (src.name, dst.name))


def test_two_point_nothing_listens(ansible, src, dst):
    outcome, evidence = two_point_capture(ansible, src, dst, 9994, lambda: None)
    assert outcome == "111"
    assert evidence["where"] == "target"
    assert evidence["sentence"] == "SYN reached %s, %s sent RST: nothing listens on port 9994." % (dst.name, dst.name)


def test_two_point_return_path(ansible, lab, src, dst, bridge_port):
    def fault():
        # the switch forgets src and no longer floods to it: what src sends still goes out,
        # what comes back to src is lost on the way
        undo = bridge_port(src, "learning", "off", "flood", "off", "mcast_flood", "off")
        subprocess.run(["bridge", "fdb", "del", src.mac, "dev", lab.config.veth_name(src.index), "master"],
                       capture_output=True, timeout=30, check=False)
        return undo
    outcome, evidence = two_point_capture(ansible, src, dst, WEB_PORT, fault, src_duration=6)
    assert outcome == "timeout"
    assert evidence["where"] == "return_path"
    assert evidence["sentence"].startswith("SYN-ACK left %s and never reached %s" % (dst.name, src.name))


def test_results_have_exactly_the_documented_keys(capture, src, dst):
    import yaml
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.netcheck.netcheck.plugins.modules import packet_capture
    documented = set(yaml.safe_load(packet_capture.RETURN))
    ansible_keys = {"changed", "failed", "invocation", "_ansible_no_log", "warnings", "deprecations"}
    capture_id = start(capture, src, "keys", filter={"host": dst.ip})
    stopped = stop(capture, src, capture_id)
    removed = capture(src, state="absent", id=capture_id)
    assert set(stopped) - ansible_keys == documented - {"removed", "pid", "tcpdump_pid", "expires_at"}
    assert set(removed) - ansible_keys == {"id", "running", "removed", "reaped", "msg"}
