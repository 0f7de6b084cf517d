# -*- coding: utf-8 -*-
"""Netfilter (iptables NAT) layer: port forwards written, found, listed and removed safely.

Stdlib only. Commands run through ``run(argv, data=None) -> (rc, stdout, stderr)``
(Ansible passes ``module.run_command``): argv lists only, never a shell.

* The backend (``nft`` or ``legacy``) is the one that already holds the host's
  rules (``iptables-legacy-save`` / ``iptables-nft-save``), else the default.
* Rules are read with ``iptables-save -t nat`` and parsed into structured rules;
  two rules are the same when their options are, whatever the order or quoting.
* Changes go in one ``iptables-restore --noflush`` batch per family (atomic), under
  an exclusive lock, so that concurrent runs cannot add a rule twice.
* Every rule written carries a comment tag; only rules with our tag are ever removed.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shlex
import time

from .probe import InputError, validate_port

DEFAULT_TAG = "netcheck-port-forward"
PROTOS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6", "both")
BACKENDS = ("auto", "nft", "legacy")
NAT_CHAINS = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_IFACE = re.compile(r"[A-Za-z0-9_.@-]{1,15}\Z")
_COMMANDS = {"ipv4": "iptables", "ipv6": "ip6tables"}


class NetfilterError(RuntimeError):
    """A command failed, or the host cannot do what was asked; says which and why."""


# --- input ----------------------------------------------------------------------

class Forward(object):
    __slots__ = ("proto", "from_port", "to_port", "to_addr", "in_interface", "source", "local", "family",
                 "masquerade")

    def __init__(self, **values):
        for key in self.__slots__:
            setattr(self, key, values.get(key))

    def families(self):
        return ["ipv4", "ipv6"] if self.family == "both" else [self.family]

    def describe(self):
        target = "%s:%d" % (self.to_addr, self.to_port) if self.to_addr else "local port %d" % self.to_port
        return "%s %d -> %s%s" % (self.proto, self.from_port, target, " (also local traffic)" if self.local else "")


def validate_tag(tag, field="tag"):
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise InputError("%s: %r must be 1-64 letters, digits, '_', '.', ':' or '-' (no spaces or quotes)"
                         % (field, tag))
    return tag


def parse_forwards(raw_forwards, field="forwards"):
    """Validate forward specs before anything is read or written; InputError names the field."""
    if not isinstance(raw_forwards, (list, tuple)):
        raise InputError("%s: expected a list of forwards" % field)
    forwards = []
    for index, raw in enumerate(raw_forwards):
        where = "%s[%d]" % (field, index)
        if not isinstance(raw, dict):
            raise InputError("%s: expected a mapping, got %r" % (where, raw))
        unknown = set(raw) - set(Forward.__slots__)
        if unknown:
            raise InputError("%s: unknown key(s) %s" % (where, ", ".join(sorted(unknown))))
        proto = raw.get("proto") or "tcp"
        if proto not in PROTOS:
            raise InputError("%s.proto: %r is not one of %s" % (where, proto, ", ".join(PROTOS)))
        if raw.get("from_port") is None:
            raise InputError("%s.from_port: required (the port the traffic arrives on)" % where)
        from_port = validate_port(raw.get("from_port"), where + ".from_port")
        to_port = raw.get("to_port")
        to_port = from_port if to_port is None else validate_port(to_port, where + ".to_port")
        family = raw.get("family") or "ipv4"
        if family not in FAMILIES:
            raise InputError("%s.family: %r is not one of %s" % (where, family, ", ".join(FAMILIES)))
        to_addr = raw.get("to_addr")
        if to_addr is not None:
            try:
                address = ipaddress.ip_address(to_addr)
            except ValueError:
                raise InputError("%s.to_addr: %r is not an IP address" % (where, to_addr))
            if family == "both":
                raise InputError("%s.to_addr: a DNAT target has one family; set family ipv4 or ipv6" % where)
            if (address.version == 6) != (family == "ipv6"):
                raise InputError("%s.to_addr: %s is not an %s address" % (where, to_addr, family))
            to_addr = str(address)
        elif to_port == from_port:
            raise InputError("%s.to_port: forwarding port %d to itself does nothing" % (where, from_port))
        iface = raw.get("in_interface")
        if iface is not None and (not isinstance(iface, str) or not _IFACE.match(iface)):
            raise InputError("%s.in_interface: %r is not an interface name" % (where, iface))
        source = raw.get("source")
        if source is not None:
            try:
                network = ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise InputError("%s.source: %r is not an address or CIDR" % (where, source))
            if family == "both" or (network.version == 6) != (family == "ipv6"):
                raise InputError("%s.source: %s does not match family %s" % (where, source, family))
            source = str(network)
        local = raw.get("local") or False
        if not isinstance(local, bool):
            raise InputError("%s.local: must be true or false" % where)
        masquerade = raw.get("masquerade")
        masquerade = bool(to_addr) if masquerade is None else masquerade
        if not isinstance(masquerade, bool):
            raise InputError("%s.masquerade: must be true or false" % where)
        forwards.append(Forward(proto=proto, from_port=from_port, to_port=to_port, to_addr=to_addr,
                                in_interface=iface, source=source, local=local, family=family,
                                masquerade=masquerade and bool(to_addr)))
    return forwards


# --- rules as data ------------------------------------------------------------------

def rule_key(chain, options):
    """A comparable form of a rule: the chain and its options, order and quoting aside."""
    return json.dumps([chain, sorted(options.items())])


def parse_rule(line):
    """An ``iptables-save`` rule line (``-A CHAIN ...``) as (chain, options) or None.

    Match module names (``-m tcp``) are dropped; every other option is kept, so that a
    rule with one extra match is a different rule.
    """
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    chain, options, index = tokens[1], {}, 2
    while index < len(tokens):
        token = tokens[index]
        negated = False
        if token == "!":
            negated, index = True, index + 1
            token = tokens[index] if index < len(tokens) else ""
        value = tokens[index + 1] if index + 1 < len(tokens) else ""
        index += 2
        if token == "-m":
            continue
        name = {"-p": "proto", "-i": "in", "-o": "out", "-s": "src", "-d": "dst", "-j": "target"}.get(
            token, token.lstrip("-"))
        if name in ("src", "dst"):
            value = str(ipaddress.ip_network(value, strict=False))
        options[("!" if negated else "") + name] = value
    return chain, options


def parse_save(text):
    """Rules of the nat table in ``iptables-save`` output: [{chain, number, line, options}]."""
    rules, numbers, table = [], {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if table != "nat" or not line.startswith("-A "):
            continue
        parsed = parse_rule(line)
        if parsed is None:
            continue
        chain, options = parsed
        numbers[chain] = numbers.get(chain, 0) + 1
        rules.append({"chain": chain, "number": numbers[chain], "rule": line, "options": options})
    return rules


def desired_rules(forward, family, tag):
    """The (chain, argv options after ``-A CHAIN``, parsed options) a forward needs in a family."""
    wanted = []

    def add(chain, argv):
        wanted.append((chain, argv, parse_rule(" ".join(["-A", chain] + [shlex.quote(a) for a in argv]))[1]))

    if forward.to_addr:
        dest = forward.to_addr if family == "ipv4" else "[%s]" % forward.to_addr
        jump = ["-j", "DNAT", "--to-destination", "%s:%d" % (dest, forward.to_port)]
    else:
        jump = ["-j", "REDIRECT", "--to-ports", str(forward.to_port)]
    match = ["-p", forward.proto]
    source = ["-s", forward.source] if forward.source else []
    port = ["-m", forward.proto, "--dport", str(forward.from_port)]
    comment = ["-m", "comment", "--comment", tag]
    iface = ["-i", forward.in_interface] if forward.in_interface else []
    add("PREROUTING", match + iface + source + port + comment + jump)
    if forward.local:
        # only traffic to this host's own addresses: without the addrtype match every
        # outgoing connection to that port, to any host, would be redirected
        add("OUTPUT", match + source + ["-m", "addrtype", "--dst-type", "LOCAL"] + port + comment + jump)
    if forward.to_addr and forward.masquerade:
        # the DNATed host answers through us, so that the client sees the address it called
        add("POSTROUTING", match + ["-d", forward.to_addr, "-m", forward.proto, "--dport", str(forward.to_port),
                                    "-m", "conntrack", "--ctstate", "DNAT"] + comment + ["-j", "MASQUERADE"])
    return wanted


# --- the host's netfilter ------------------------------------------------------------

class Netfilter(object):
    """One family's iptables on this host, on the backend that holds its rules."""

    def __init__(self, family, run, which, backend="auto"):
        self.family = family
        self.run = run
        self.which = which
        self.backend, self.backend_reason = self._pick_backend(backend)
        base = _COMMANDS[family]
        suffix = "-" + self.backend if self.backend else ""
        self.save_cmd = self._binary(base + suffix + "-save", base + "-save")
        self.restore_cmd = self._binary(base + suffix + "-restore", base + "-restore")

    def _binary(self, *names):
        for name in names:
            path = self.which(name)
            if path:
                return path
        raise NetfilterError("%s not found: install iptables" % names[0])

    def _rule_count(self, save_name):
        path = self.which(save_name)
        if not path:
            return None
        rc, out, err = self.run([path])
        if rc != 0:
            return None
        return sum(1 for line in out.splitlines() if line.startswith("-A "))

    def _pick_backend(self, wanted):
        base = _COMMANDS[self.family]
        if wanted != "auto":
            if not self.which("%s-%s" % (base, wanted)):
                raise NetfilterError("backend %s: %s-%s not found" % (wanted, base, wanted))
            return wanted, "forced"
        counts = {name: self._rule_count("%s-%s-save" % (base, name)) for name in ("legacy", "nft")}
        holding = [name for name in ("legacy", "nft") if counts[name]]
        if len(holding) == 1:
            return holding[0], "the host's %s rules are in %s (%d rules)" % (base, holding[0], counts[holding[0]])
        default = self._default_backend(base)
        if len(holding) == 2:
            return default, "rules in both legacy (%d) and nft (%d): using the default, %s" % (
                counts["legacy"], counts["nft"], default)
        return default, "no rules yet: using the default, %s" % default

    def _default_backend(self, base):
        path = self.which(base)
        if not path:
            raise NetfilterError("%s not found: install iptables" % base)
        rc, out, err = self.run([path, "--version"])
        if "legacy" in out:
            return "legacy"
        if "nf_tables" in out:
            return "nft"
        return None

    def save(self, table="nat"):
        argv = [self.save_cmd] + (["-t", table] if table else [])
        rc, out, err = self.run(argv)
        if rc != 0:
            raise NetfilterError("%s failed (rc %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        return out

    def restore(self, batch, noflush=True, table=None):
        argv = [self.restore_cmd, "-w"] + (["--noflush"] if noflush else []) + (["-T", table] if table else [])
        rc, out, err = self.run(argv, data=batch)
        if rc != 0:
            raise NetfilterError("%s failed (rc %d): %s\nbatch:\n%s" % (" ".join(argv), rc, (err or out).strip(),
                                                                      batch))


def plan(rules, forwards, family, tag, state):
    """What to add and delete in a family's nat table: (adds, deletes) as restore lines."""
    present = {}
    for rule in rules:
        present.setdefault(rule_key(rule["chain"], rule["options"]), []).append(rule)
    adds, deletes = [], []
    for forward in forwards:
        if family not in forward.families():
            continue
        for chain, argv, options in desired_rules(forward, family, tag):
            found = present.get(rule_key(chain, options), [])
            line = " ".join(["-A", chain] + [shlex.quote(a) for a in argv])
            if state == "present":
                if not found and line not in adds:
                    adds.append(line)
                for duplicate in found[1:]:  # left by an earlier, unlocked tool: keep one
                    deletes.append(duplicate["rule"])
            else:
                for rule in found:
                    if rule["options"].get("comment") == tag and rule["rule"] not in deletes:
                        deletes.append(rule["rule"])
    return adds, deletes


def batch_for(adds, deletes):
    lines = ["*nat"] + ["-D" + line[2:] for line in deletes] + adds + ["COMMIT", ""]
    return "\n".join(lines)


def listing(rules, tag):
    return [{"chain": r["chain"], "number": r["number"], "rule": r["rule"],
             "ours": r["options"].get("comment") == tag} for r in rules]


# --- locking, kernel settings, persistence, rollback -----------------------------------

class HostLock(object):
    """An exclusive lock across every run on this host (flock on a file in state_dir)."""

    def __init__(self, state_dir, timeout=60.0):
        self.path = os.path.join(state_dir, "netfilter.lock")
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.handle = open(self.path, "a")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NetfilterError("another run holds %s for more than %g s" % (self.path, self.timeout))
                time.sleep(0.05)

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


SYSCTL_ROOT = "/proc/sys"


def kernel_settings(forwards):
    """The sysctls the forwards need: {name: {needed, value}}."""
    needs = {}
    for forward in forwards:
        if forward.to_addr and "ipv4" in forward.families():
            address = ipaddress.ip_address(forward.to_addr)
            if address.is_loopback:
                needs["net.ipv4.conf.all.route_localnet"] = "1"
            else:
                needs["net.ipv4.ip_forward"] = "1"
        if forward.to_addr and "ipv6" in forward.families():
            needs["net.ipv6.conf.all.forwarding"] = "1"
    facts = {}
    for name, value in sorted(needs.items()):
        try:
            with open(os.path.join(SYSCTL_ROOT, *name.split("."))) as handle:
                current = handle.read().strip()
        except OSError:
            current = None
        facts[name] = {"needed": value, "value": current, "ok": current == value, "changed": False}
    return facts


def apply_kernel_settings(facts):
    for name, fact in facts.items():
        if not fact["ok"]:
            with open(os.path.join(SYSCTL_ROOT, *name.split(".")), "w") as handle:
                handle.write(fact["needed"] + "\n")
            fact.update(value=fact["needed"], ok=True, changed=True)


PERSIST_PATHS = {"ipv4": ("/etc/iptables/rules.v4", "/etc/sysconfig/iptables"),
                 "ipv6": ("/etc/iptables/rules.v6", "/etc/sysconfig/ip6tables")}


def persist(netfilter, run, which, path=None):
    """Save every table the way the distribution reloads them at boot; returns where."""
    tool = which("netfilter-persistent")
    if path is None and tool:
        rc, out, err = run([tool, "save"])
        if rc != 0:
            raise NetfilterError("netfilter-persistent save failed: %s" % (err or out).strip())
        return "netfilter-persistent (%s)" % PERSIST_PATHS[netfilter.family][0]
    if path is None:
        existing = [p for p in PERSIST_PATHS[netfilter.family] if os.path.isdir(os.path.dirname(p))]
        path = existing[0] if existing else PERSIST_PATHS[netfilter.family][0]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = netfilter.save(table=None)
    with open(path + ".tmp", "w") as handle:
        handle.write(content)
    os.chmod(path + ".tmp", 0o600)
    os.rename(path + ".tmp", path)
    return path


# Runs detached (python3 -c WATCHER argv...): restores the saved nat table unless the
# confirmation file appears before the deadline. Self-contained: module_utils are gone
# from the host once the module has returned.
WATCHER = r"""
import os, subprocess, sys, time
restore, backup, confirmed, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
while time.time() < deadline:
    if os.path.exists(confirmed):
        break
    time.sleep(0.1)
if not os.path.exists(confirmed):
    with open(backup) as saved:
        code = subprocess.call([restore, "-w", "-T", "nat"], stdin=saved)
    with open(backup + ".rolled-back", "w") as note:
        note.write("restored at %f rc %d\n" % (time.time(), code))
"""


def arm_rollback(netfilters, before, state_dir, timeout, python, spawn):
    """Save the nat tables as they were and start a watcher per family; returns {id, deadline, backups}."""
    rollback_id = "%d-%s" % (int(time.time()), os.urandom(4).hex())
    deadline = time.time() + timeout
    backups = {}
    for family, netfilter in netfilters.items():
        backup = os.path.join(state_dir, "rollback-%s-%s.nat" % (rollback_id, family))
        with open(backup, "w") as handle:
            handle.write(before[family])
        confirmed = os.path.join(state_dir, "rollback-%s.confirmed" % rollback_id)
        spawn([python, "-c", WATCHER, netfilter.restore_cmd, backup, confirmed, "%f" % deadline])
        backups[family] = backup
    return {"id": rollback_id, "deadline": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline)),
            "timeout": timeout, "backups": backups}


def confirm_rollback(rollback_id, state_dir):
    """Tell the watchers of ``rollback_id`` that the controller still reaches this host."""
    if not re.match(r"\d+-[0-9a-f]{8}\Z", rollback_id or ""):
        raise InputError("confirm: %r is not a rollback id" % rollback_id)
    backups = [name for name in os.listdir(state_dir) if name.startswith("rollback-%s-" % rollback_id)]
    if not backups:
        raise NetfilterError("confirm: no pending rollback %s in %s" % (rollback_id, state_dir))
    if any(name.endswith(".rolled-back") for name in backups):
        raise NetfilterError("confirm: too late, rollback %s already restored the old rules" % rollback_id)
    with open(os.path.join(state_dir, "rollback-%s.confirmed" % rollback_id), "w") as handle:
        handle.write("%f\n" % time.time())
    return True


__all__ = ["BACKENDS", "DEFAULT_TAG", "FAMILIES", "Forward", "HostLock", "InputError", "Netfilter", "NetfilterError",
           "PROTOS", "apply_kernel_settings", "arm_rollback", "batch_for", "confirm_rollback", "desired_rules",
           "kernel_settings", "listing", "parse_forwards", "parse_rule", "parse_save", "persist", "plan",
           "rule_key", "validate_tag"]
