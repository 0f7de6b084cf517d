"""The fault matrix of issue 18, shared by tests/integration/test_verdict_matrix.py and
bench/verdict_agreement.py: per port of one target a DROP, every REJECT type, a tcp-reset and
nothing listening, IPv4 and IPv6; nmap (-sS -Pn --reason, run in the source's namespace) as the
oracle. Only lab addresses: the target's own, inside namespaces the lab made."""

from __future__ import annotations

import ipaddress
import subprocess
from xml.etree import ElementTree

# (port, rule target, --reject-with, expected state, expected reason, ICMP type, ICMP code)
V4_FAULTS = [
    (9501, "DROP", None, "filtered", "no_answer", None, None),
    (9502, "REJECT", "icmp-port-unreachable", "rejected", "icmp_unreach", 3, 3),
    (9503, "REJECT", "icmp-host-unreachable", "rejected", "icmp_unreach", 3, 1),
    (9504, "REJECT", "icmp-net-unreachable", "rejected", "icmp_unreach", 3, 0),
    (9505, "REJECT", "icmp-host-prohibited", "rejected", "icmp_unreach", 3, 10),
    (9506, "REJECT", "icmp-net-prohibited", "rejected", "icmp_unreach", 3, 9),
    (9507, "REJECT", "icmp-admin-prohibited", "rejected", "icmp_unreach", 3, 13),
    (9508, "REJECT", "tcp-reset", "closed", "rst", None, None),
    (9509, None, None, "closed", "rst", None, None),  # nothing listens: the kernel's RST
    (22, None, None, "open", "syn_ack", None, None),  # sshd: the host itself is up
]
V6_FAULTS = [
    (9501, "DROP", None, "filtered", "no_answer", None, None),
    (9511, "REJECT", "icmp6-adm-prohibited", "rejected", "icmp_unreach", 1, 1),
    (9512, "REJECT", "icmp6-port-unreachable", "rejected", "icmp_unreach", 1, 4),
    (9513, "REJECT", "icmp6-addr-unreachable", "rejected", "icmp_unreach", 1, 3),
    (9514, "REJECT", "icmp6-no-route", "rejected", "icmp_unreach", 1, 0),
    (9508, "REJECT", "tcp-reset", "closed", "rst", None, None),
    (9509, None, None, "closed", "rst", None, None),
    (22, None, None, "open", "syn_ack", None, None),
]
# DROP ports next to REJECT ports of the same host: filtered and rejected, each on its own evidence
MIXED_DROP, MIXED_REJECT = (9521, 9522, 9523), (9524, 9525, 9526)
# one target, 50 REJECT ports and 5 DROP ports in one run: the target rate-limits its ICMP errors
RATE_REJECT, RATE_DROP = tuple(range(9600, 9650)), tuple(range(9650, 9655))


def fault_rules():
    """(command, rule) pairs for the target's INPUT chain making every fault above."""
    rules = []
    for command, faults in (("iptables", V4_FAULTS), ("ip6tables", V6_FAULTS)):
        for port, target, reject_with, *_ in faults:
            if target is None:
                continue
            rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", target]
            rules.append((command, rule + (["--reject-with", reject_with] if reject_with else [])))
        for port in MIXED_DROP + RATE_DROP:
            rules.append((command, ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]))
        reject = "icmp-port-unreachable" if command == "iptables" else "icmp6-port-unreachable"
        for first, last in ((MIXED_REJECT[0], MIXED_REJECT[-1]), (RATE_REJECT[0], RATE_REJECT[-1])):
            rules.append((command, ["INPUT", "-p", "tcp", "--dport", "%d:%d" % (first, last), "-j", "REJECT",
                                    "--reject-with", reject]))
    return rules


def add_rules(namespace):
    """Make every fault inside the target's namespace; returns what undo_rules needs."""
    added = []
    for command, rule in fault_rules():
        subprocess.run(["ip", "netns", "exec", namespace, command, "-w", "-I"] + rule, check=True,
                       capture_output=True, timeout=30)
        added.append((command, rule))
    return added


def undo_rules(namespace, added):
    for command, rule in reversed(added):
        subprocess.run(["ip", "netns", "exec", namespace, command, "-w", "-D"] + rule, check=False,
                       capture_output=True, timeout=30)


# nmap's pause between probes, by family: the target's ICMP rate-limit interval (Linux: 1 s for
# IPv4, 0.1 s for IPv6), so that the oracle, too, gets every ICMP answer. Unpaced, nmap reads a
# rate-limited reject as "filtered (no-response)" (seen here: 2 of 9 REJECT ports of one host).
SCAN_DELAY = {4: "1100ms", 6: "150ms"}


def nmap_states(namespace, address, ports, timeout=600):
    """{port: (state, reason, reason_ip)} as nmap -sS -Pn --reason sees them from ``namespace``."""
    six = ":" in address
    argv = ["ip", "netns", "exec", namespace, "nmap", "-sS", "-Pn", "-n", "--reason", "-oX", "-",
            "--scan-delay", SCAN_DELAY[6 if six else 4], "--max-retries", "2",
            "-p", ",".join(str(port) for port in ports)]
    argv += ["-6"] if six else []
    proc = subprocess.run(argv + [address], capture_output=True, text=True, timeout=timeout, check=True)
    return parse_nmap_xml(proc.stdout)


def parse_nmap_xml(text):
    """Every port of nmap's XML: the listed ones, and those it folds into <extraports> (more than
    25 in one state), whose <extrareasons> name their ports (nmap 7.92 and later)."""
    states = {}
    root = ElementTree.fromstring(text)
    for port in root.iter("port"):
        state = port.find("state")
        states[int(port.get("portid"))] = (state.get("state"), state.get("reason"), state.get("reason_ip"))
    for extra in root.iter("extraports"):
        for reasons in extra.iter("extrareasons"):
            for part in (reasons.get("ports") or "").split(","):
                if not part:
                    continue
                first, _, last = part.partition("-")
                for number in range(int(first), int(last or first) + 1):
                    states[number] = (extra.get("state"), reasons.get("reason"), None)
    return states


# nmap's reason words for the ICMP unreachables it reads (seen here, nmap 7.93):
# (family, type, code) -> reason
NMAP_REASONS = {
    ("ipv4", 3, 0): "net-unreach", ("ipv4", 3, 1): "host-unreach", ("ipv4", 3, 2): "proto-unreach",
    ("ipv4", 3, 3): "port-unreach", ("ipv4", 3, 9): "net-prohibited", ("ipv4", 3, 10): "host-prohibited",
    ("ipv4", 3, 13): "admin-prohibited",
    ("ipv6", 1, 0): "no-route", ("ipv6", 1, 1): "admin-prohibited", ("ipv6", 1, 3): "host-unreach",
    ("ipv6", 1, 4): "port-unreach",
}


def agrees(result, nmap):
    """Whether a port_check result says what nmap says: open/closed alike; our rejected is nmap's
    filtered with the reason word of the same ICMP type and code, from the same sender (nmap names
    the sender only when it is not the target); our filtered is nmap's filtered (no-response)."""
    state, reason, sender = nmap
    ours = result["state"]
    if ours in ("open", "closed"):
        return state == ours
    if ours == "filtered":
        return state == "filtered" and reason == "no-response"
    if ours == "rejected":
        record = result["detail"]["outcome"]
        expected = NMAP_REASONS.get((record["icmp_family"], record["icmp_type"], record["icmp_code"]))
        same_reason = reason == expected if expected else reason not in ("no-response", None)
        return (state == "filtered" and same_reason
                and ipaddress.ip_address(sender or result["detail"]["address"])
                == ipaddress.ip_address(record["icmp_from"]))
    return False
