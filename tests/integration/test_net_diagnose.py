"""net_diagnose and conn_limits against a 4-host lab, with every fault made for real.

One module run from the first host covers every code at once (each fault is its own target);
check.yml's matrix and exit code are in test_check_playbook.py. Every fault is undone in
teardown; all traffic stays in the lab.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import REPO, netns
from lab import wait_for_ports
from verdict_lab import HOSTS, QUEUE_PORT, accept_queue_filled, grown_lab

STOPPED_PORT, SILENT_PORT, TLS_PORT = 9010, 9011, 9443
REJECTS = {9002: "icmp-port-unreachable", 9003: "icmp-host-prohibited", 9004: "icmp-admin-prohibited",
           9005: "icmp-net-unreachable", 9006: "tcp-reset"}
WRONG_MAC = "02:00:5e:00:53:01"


@pytest.fixture(scope="module")
def four(lab):
    with grown_lab(lab, HOSTS) as hosts:
        yield hosts


def _offset(lab, n):
    return str(lab.config.network.network_address + n)


def _start(namespace, *argv):
    return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def _certificate_for_another_name(folder):
    """A CA and a server certificate for other.example (not the address it is served on)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("netcheck verdict CA")).issuer_name(name("netcheck verdict CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("other.example")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("other.example")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def faults(four, lab, tmp_path_factory):
    """Every fault of the module run at once; all undone at teardown."""
    src, dst, quiet, rejecting = four
    script = str(REPO / "lab" / "webserver.py")
    pki = _certificate_for_another_name(tmp_path_factory.mktemp("verdict-pki"))
    # the dropped port is on a host that rejects no other port: a SYN unanswered on a host that rejected
    # other ports in the same run is taken as rejected (ICMP errors are rate-limited; tcp.py)
    rules = [(quiet.namespace, "INPUT", "-p", "tcp", "--dport", "9001", "-j", "DROP")]
    for port, kind in REJECTS.items():
        rules.append((dst.namespace, "INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                      "--reject-with", kind))
    rules.append((quiet.namespace, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"))
    rules.append((rejecting.namespace, "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "REJECT",
                  "--reject-with", "icmp-admin-prohibited"))
    routes = [("unreachable", _offset(lab, 200) + "/32"),
              (_offset(lab, 240) + "/32", "via", _offset(lab, 251))]
    procs = []
    try:
        for namespace, *rule in rules:
            netns(namespace, "iptables", "-w", "-I", *rule)
        for route in routes:
            netns(src.namespace, "ip", "route", "add", *route)
        # a second address of dst, whose cached MAC on src is wrong (never the controller's: ssh needs it)
        netns(dst.namespace, "ip", "addr", "add", _offset(lab, 60) + "/24", "dev", "eth0")
        netns(src.namespace, "ip", "neigh", "replace", _offset(lab, 60), "lladdr", WRONG_MAC, "dev", "eth0",
              "nud", "permanent")
        # a web server that answered, then stopped
        stopped = _start(dst.namespace, script, "--port", str(STOPPED_PORT), "--name", dst.name)
        wait_for_ports([(dst.ip, STOPPED_PORT)], deadline_s=10)
        _stop(stopped)
        procs.append(_start(dst.namespace, script, "--port", str(SILENT_PORT), "--name", dst.name, "--silent"))
        procs.append(_start(dst.namespace, script, "--port", str(TLS_PORT), "--name", dst.name,
                            "--tls-cert", pki["cert"], "--tls-key", pki["key"]))
        wait_for_ports([(dst.ip, SILENT_PORT), (dst.ip, TLS_PORT)], deadline_s=10)
        yield pki
    finally:
        for proc in procs:
            _stop(proc)
        netns(src.namespace, "ip", "neigh", "del", _offset(lab, 60), "dev", "eth0", check=False)
        netns(dst.namespace, "ip", "addr", "del", _offset(lab, 60) + "/24", "dev", "eth0", check=False)
        for route in routes:
            netns(src.namespace, "ip", "route", "del", *route, check=False)
        for namespace, *rule in rules:
            netns(namespace, "iptables", "-w", "-D", *rule, check=False)


@pytest.fixture(scope="module")
def diagnosis(four, lab, faults, ansible):
    """One net_diagnose run from the first host against every fault: {target name: pair}."""
    src, dst, quiet, rejecting = four
    web = "http://%s:%%d%%s" % dst.ip
    targets = [
        {"name": "all-good", "host": dst.ip, "icmp": "reachable", "ports": [{"port": 22, "expect": "^SSH-2\\.0-"}],
         "urls": [{"url": web % (8080, "/"), "expect_headers": {"x-lab-host": "^%s$" % dst.name}}]},
        {"name": "dropped", "host": quiet.ip, "icmp": "skip", "ports": [{"port": 9001}]},
        {"name": "stopped-web", "host": dst.ip, "icmp": "skip", "urls": [{"url": web % (STOPPED_PORT, "/")}]},
        {"name": "status-503", "host": dst.ip, "icmp": "skip", "urls": [{"url": web % (8080, "/status/503")}]},
        {"name": "silent", "host": dst.ip, "icmp": "skip", "urls": [{"url": web % (SILENT_PORT, "/"), "timeout": 2}]},
        {"name": "tls-other-name", "host": dst.ip, "icmp": "skip",
         "urls": [{"url": "https://%s:%d/" % (dst.ip, TLS_PORT), "ca_path": faults["ca"]}]},
        {"name": "tls-untrusted", "host": dst.ip, "icmp": "skip",
         "urls": [{"url": "https://%s:%d/" % (dst.ip, TLS_PORT)}]},
        {"name": "banner", "host": dst.ip, "icmp": "skip",
         "ports": [{"port": 8080, "expect": "^SSH-2\\.0-", "timeout": 1}]},
        {"name": "marker", "host": dst.ip, "icmp": "skip",
         "urls": [{"url": web % (8080, "/"), "expect_headers": {"x-lab-host": "^not-this-host$"}}]},
        {"name": "icmp-dropped-port-open", "host": quiet.ip, "ports": [{"port": 22}]},
        {"name": "icmp-dropped-expected", "host": quiet.ip, "icmp": "reachable"},
        {"name": "icmp-rejected", "host": rejecting.ip, "icmp": "reachable"},
        {"name": "unassigned", "host": lab.config.unassigned_ip, "ports": [{"port": 22}]},
        {"name": "no-route", "host": _offset(lab, 200), "ports": [{"port": 22}]},
        {"name": "gateway-down", "host": _offset(lab, 240), "ports": [{"port": 22}]},
        {"name": "dns", "host": "no-such-host.invalid", "ports": [{"port": 22}]},
        {"name": "mismatch", "host": _offset(lab, 60)},
    ]
    targets += [{"name": "reject-%s" % kind, "host": dst.ip, "icmp": "skip", "ports": [{"port": port}]}
                for port, kind in REJECTS.items()]
    started = time.monotonic()
    run = ansible.module(src.name, "net_diagnose", {"targets": targets, "tcp_timeout": 1, "http": {"timeout": 3}})
    result = run.result(src.name)
    result["wall_s"] = time.monotonic() - started
    assert result.get("results"), result
    return result


def _assert_code(diagnosis, name, code, layer, checked=None):
    (pair,) = [p for p in diagnosis["results"] if p["target"] == name]
    verdict = pair["verdict"]
    assert verdict["code"] == code, (name, verdict)
    assert verdict["first_failing_layer"] == layer, (name, verdict)
    assert verdict["hint"] and verdict["evidence"], (name, verdict)
    assert pair["ok"] is (code == "OK")
    if checked is not None:
        assert pair["checked"] == checked, (name, pair["checked"])
    return pair


ALL = ["link", "network", "transport", "application"]
L4 = ["link", "network", "transport"]


def test_a_healthy_target_is_ok_at_every_layer_with_the_mac_seen_on_the_wire(diagnosis, four):
    pair = _assert_code(diagnosis, "all-good", "OK", "none", ALL)
    neighbour = pair["layers"]["neighbour"]
    assert neighbour["detail"]["mac"] == four[1].mac and neighbour["detail"]["seen_on_wire"] is True
    assert pair["layers"]["icmp"]["detail"]["received"] == 3
    assert diagnosis["failed"] is True  # other targets miss, so the task fails, with every result


@pytest.mark.parametrize("name, code, layer, checked", [
    ("dropped", "PORT_FILTERED", "transport", L4),
    ("reject-icmp-host-prohibited", "PORT_REJECTED", "transport", L4),
    ("reject-icmp-admin-prohibited", "PORT_REJECTED", "transport", L4),
    ("reject-icmp-net-unreachable", "PORT_REJECTED", "transport", L4),
    ("reject-tcp-reset", "PORT_CLOSED", "transport", L4),
    ("stopped-web", "PORT_CLOSED", "transport", L4),
    ("status-503", "HTTP_STATUS", "application", ALL),
    ("silent", "HTTP_TIMEOUT", "application", ALL),
    ("tls-other-name", "WRONG_SERVICE", "application", ALL),
    ("tls-untrusted", "TLS_FAILED", "application", ALL),
    ("banner", "WRONG_SERVICE", "application", ALL),
    ("marker", "WRONG_SERVICE", "application", ALL),
    ("icmp-dropped-expected", "ICMP_FILTERED", "network", ["link", "network"]),
    ("icmp-rejected", "ICMP_UNREACHABLE", "network", ["link", "network"]),
    ("unassigned", "NEIGHBOUR_FAILED", "link", L4),
    ("no-route", "NO_ROUTE", "network", None),
    ("gateway-down", "GATEWAY_UNREACHABLE", "network", L4),
    ("dns", "DNS_FAILED", "network", ["network"]),
    ("mismatch", "NEIGHBOUR_MISMATCH", "link", ["link", "network"]),
])
def test_each_real_fault_gives_its_code_layer_hint_and_checked_layers(diagnosis, name, code, layer, checked):
    _assert_code(diagnosis, name, code, layer, checked)


def test_a_port_unreachable_reject_is_closed_today_and_rejected_once_tcp_reads_the_icmp_error(diagnosis):
    (pair,) = [p for p in diagnosis["results"] if p["target"] == "reject-icmp-port-unreachable"]
    # without IP_RECVERR, connect() reads an ICMP port-unreachable as ECONNREFUSED, like a RST
    assert pair["verdict"]["code"] in ("PORT_CLOSED", "PORT_REJECTED")
    assert pair["verdict"]["first_failing_layer"] == "transport"


def test_icmp_dropped_while_the_port_answers_is_ok_with_a_note(diagnosis):
    pair = _assert_code(diagnosis, "icmp-dropped-port-open", "OK", "none", L4)
    assert [n["code"] for n in pair["verdict"]["notes"]] == ["ICMP_FILTERED"]


def test_icmp_unreachable_names_the_type_and_code(diagnosis, four):
    (pair,) = [p for p in diagnosis["results"] if p["target"] == "icmp-rejected"]
    assert "type 3 code 13" in " ".join(pair["verdict"]["evidence"])
    assert four[3].ip in " ".join(pair["verdict"]["evidence"])


def test_the_mismatch_names_both_macs(diagnosis, four):
    (pair,) = [p for p in diagnosis["results"] if p["target"] == "mismatch"]
    detail = pair["layers"]["neighbour"]["detail"]
    assert detail["mac"] == WRONG_MAC and detail["seen_on_wire"] is False and detail["wire_macs"]
    assert WRONG_MAC in pair["verdict"]["evidence"][0] and four[1].mac in pair["verdict"]["evidence"][0]


def test_every_fault_is_diagnosed_in_one_bounded_run(diagnosis):
    assert len(diagnosis["results"]) == 22
    assert diagnosis["summary"]["ok"] == 2
    # the slowest layer bounds the run (TLS, 3 s HTTP timeout, ICMP round), not the number of targets
    assert diagnosis["elapsed_ms"] < 8000, diagnosis["elapsed_ms"]


# --- conn_limits ---------------------------------------------------------------------------

def test_conn_limits_listener_limit_and_descriptors_equal_proc_for_the_web_server(four, lab, ansible):
    dst = four[1]
    web_pid = int((lab.config.host_dir(dst.index) / "web.pid").read_text().split()[0])
    result = ansible.module(dst.name, "conn_limits", {"ports": [8080]}).result(dst.name)
    (listener,) = result["listeners"]
    (process,) = listener["processes"]
    assert process["pid"] == web_pid
    limits_line = [line for line in Path("/proc/%d/limits" % web_pid).read_text().splitlines()
                   if line.startswith("Max open files")][0].split()
    assert process["max_open_files"]["soft"] == int(limits_line[3])
    assert process["max_open_files"]["hard"] == int(limits_line[4])
    assert process["open_fds"] == len(os.listdir("/proc/%d/fd" % web_pid))
    assert result["kernel"]["file_max"] == int(Path("/proc/sys/fs/file-max").read_text())
    assert result["neighbour"]["ipv4"]["gc_thresh3"] >= 1024
    assert listener["backlog"] and listener["accept_queue"] == 0 and listener["queue_full"] is False


@pytest.fixture
def full_accept_queue(four):
    with accept_queue_filled(four[2], QUEUE_PORT) as target:
        yield target


def test_conn_limits_reports_an_accept_queue_overflow(full_accept_queue, ansible):
    target = full_accept_queue
    # more connects than the queue holds: their SYNs are dropped and counted as overflows
    extra = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex((target.ip, QUEUE_PORT))
        extra.append(sock)
    try:
        result = ansible.module(target.name, "conn_limits", {"ports": [QUEUE_PORT]}).result(target.name)
        # net_diagnose returns the same facts under limits, by the same names: with targets (the
        # module) and limits only (its action plugin runs conn_limits)
        with_targets = ansible.module(target.name, "net_diagnose", {
            "targets": [{"host": target.ip, "icmp": "skip", "neighbour": False, "ports": [{"port": 22}]}],
            "limits": True, "limit_ports": [QUEUE_PORT]}).result(target.name)
        limits_only = ansible.module(target.name, "net_diagnose", {
            "targets": [], "layers": ["limits"],
            "limit_ports": [QUEUE_PORT]}).result(target.name)
    finally:
        for sock in extra:
            sock.close()
    (listener,) = result["listeners"]
    assert listener["backlog"] == 1 and listener["accept_queue"] == 2 and listener["queue_full"] is True
    assert result["netstat"]["ListenOverflows"] > 0
    assert any("accept queue full" in w for w in result["limit_warnings"])
    for answer in (with_targets, limits_only):
        assert not answer.get("failed"), answer.get("msg")
        assert set(answer["limits"]) == set(result) - {"changed", "invocation", "_ansible_parsed", "_ansible_no_log"}
        assert any("accept queue full" in w for w in answer["limits"]["limit_warnings"])
    assert limits_only["results"] == [] and limits_only["msg"] == "no targets in the layers asked; limits only"
