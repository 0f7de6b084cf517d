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
import tempfile
import time

from .probe import InputError, validate_port
from .spec import check_keys

DEFAULT_TAG = "netcheck-port-forward"
PROTOS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6", "both")
BACKENDS = ("auto", "nft", "legacy")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_IFACE = re.compile(r"[A-Za-z0-9_.@-]{1,15}\Z")
_COMMANDS = {"ipv4": "iptables", "ipv6": "ip6tables"}
DEFAULT_LOCK_TIMEOUT = 10
DEFAULT_STATE_DIR = "/run/netcheck"

# The options a user writes (spec.py explains the format): port_forward's argument_spec
# and the port_forward role's argument_specs are made from these.
FORWARD_SPEC = {
    "proto": {"type": "str", "choices": list(PROTOS), "default": "tcp", "description": "The protocol."},
    "from_port": {"type": "int", "required": True, "description": "The port the traffic arrives on (1-65535)."},
    "to_port": {"type": "int", "description": "The port it goes to (default from_port, which needs to_addr)."},
    "to_addr": {"type": "str", "description": "DNAT to this address (another host) instead of this host."},
    "in_interface": {"type": "str", "description": "Only traffic arriving on this interface."},
    "source": {"type": "str", "description": "Only traffic from this address or CIDR."},
    "local": {"type": "bool", "default": False,
              "description": "Also forward connections made on this host to its own addresses (nat OUTPUT)."},
    "family": {"type": "str", "choices": list(FAMILIES), "default": "ipv4",
               "description": "ipv4, ipv6 or both (iptables and ip6tables)."},
    "masquerade": {"type": "bool", "description": "With to_addr, masquerade the forwarded connections (default true)."},
}
PORT_FORWARD_SPEC = {
    "forwards": {"type": "list", "elements": "dict", "default": [], "options": FORWARD_SPEC,
                 "description": "The forwards to make present or absent."},
    "state": {"type": "str", "choices": ["present", "absent", "listed"], "default": "present",
              "description": "present, absent, or listed (read-only)."},
    "tag": {"type": "str", "default": DEFAULT_TAG, "description": "The comment marking our rules."},
    "backend": {"type": "str", "choices": list(BACKENDS), "default": "auto",
                "description": "auto (where the host's rules already are), nft or legacy."},
    "persist": {"type": "bool", "default": False, "description": "Save the rules for the next boot."},
    "persist_path": {"type": "path", "description": "Where to save the IPv4 rules with persist (IPv6: + .v6)."},
    "set_sysctl": {"type": "bool", "default": False, "description": "Set the kernel settings the forwards need."},
    "rollback_timeout": {"type": "int", "default": 0,
                         "description": "Seconds after which the change is taken back unless confirmed (0: never)."},
    "confirm": {"type": "str", "description": "A rollback.id of an earlier run: cancels that rollback."},
    "lock_timeout": {"type": "int", "default": DEFAULT_LOCK_TIMEOUT,
                     "description": "Seconds to wait for the xtables lock and for another run on the host."},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR,
                  "description": "Where the lock and the rollback plans live on the host."},
}


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

    def as_dict(self):
        """The forward with every default filled in (what the rules are made from)."""
        return {key: getattr(self, key) for key in self.__slots__}

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
        check_keys(raw, FORWARD_SPEC, where)
        proto = raw.get("proto") or "tcp"
        if proto not in PROTOS:
            raise InputError("%s.proto: %r is not one of %s" % (where, proto, ", ".join(PROTOS)))
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

_SHORT_OPTIONS = {"-p": "proto", "-i": "in", "-o": "out", "-s": "src", "-d": "dst", "-j": "target",
                  "-g": "goto", "-f": "fragment"}


def rule_key(chain, options):
    """A comparable form of a rule: the chain and its options, order and quoting aside."""
    return json.dumps([chain, sorted(options.items())])


def _address(value):
    """An address or network as iptables-save prints it, made comparable where Python can
    read it; anything else (a non-contiguous mask such as 10.0.0.0/255.0.255.0) as written."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return value


def parse_rule(line):
    """An ``iptables-save`` rule line (``-A CHAIN ...``) as (chain, options) or None.

    Accepts every rule iptables-save prints: an option takes every word up to the next
    option (none for a flag such as ``--rsource``, several for ``--set-xmark``), ``!``
    negates the option after it, and a repeated option keeps each value. Match module
    names (``-m tcp``) are dropped; every other option is kept, so that a rule with one
    extra match is a different rule. None only for a line that is not a rule at all.
    """
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    chain, options, index = tokens[1], {}, 2
    while index < len(tokens):
        negated = tokens[index] == "!"
        if negated:
            index += 1
            if index >= len(tokens):
                break
        token = tokens[index]
        index += 1
        values = []
        while index < len(tokens) and not (tokens[index].startswith("-") and len(tokens[index]) > 1) \
                and tokens[index] != "!":
            values.append(tokens[index])
            index += 1
        if token == "-m":
            continue
        name = _SHORT_OPTIONS.get(token, token.lstrip("-"))
        value = " ".join(values)
        if name in ("src", "dst"):
            value = _address(value)
        name = ("!" if negated else "") + name
        key, copy = name, 1
        while key in options:
            copy += 1
            key = "%s#%d" % (name, copy)
        options[key] = value
    return chain, options


def parse_save(text):
    """Rules of the nat table in ``iptables-save`` output: [{chain, number, rule, options}].

    A rule this parser cannot read keeps its number with ``options`` None: it is listed,
    never ours, never matched.
    """
    rules, numbers, table = [], {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if table != "nat" or not line.startswith("-A "):
            continue
        parsed = parse_rule(line)
        chain = parsed[0] if parsed else line.split()[1]
        numbers[chain] = numbers.get(chain, 0) + 1
        rules.append({"chain": chain, "number": numbers[chain], "rule": line,
                      "options": parsed[1] if parsed else None})
    return rules


def is_ours(rule, tag):
    return rule["options"] is not None and rule["options"].get("comment") == tag


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

XTABLES_LOCK = "/run/xtables.lock"


def lock_holders(path=None, locks="/proc/locks"):
    """``pid N (command line)`` of every process holding a lock on ``path`` (default: the
    xtables lock, or $XTABLES_LOCKFILE as iptables reads it), from /proc/locks."""
    path = path or os.environ.get("XTABLES_LOCKFILE") or XTABLES_LOCK
    try:
        inode = os.stat(path).st_ino
        with open(locks) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6:  # "->": waiting for the lock, not holding it
            continue
        if fields[5].rsplit(":", 1)[-1] != str(inode):
            continue
        pid = fields[4]
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            command = "?"
        holders.append("pid %s (%s)" % (pid, command[:120]))
    return holders


class Netfilter(object):
    """One family's iptables on this host, on the backend that holds its rules."""

    def __init__(self, family, run, which, backend="auto", lock_timeout=DEFAULT_LOCK_TIMEOUT):
        self.family = family
        self.run = run
        self.which = which
        self.lock_timeout = lock_timeout
        self.backend, self.backend_reason = self._pick_backend(backend)
        base = _COMMANDS[family]
        suffix = "-" + self.backend if self.backend else ""
        self.save_cmd = self._binary(base + suffix + "-save", base + "-save")
        self.restore_cmd = self._binary(base + suffix + "-restore", base + "-restore")
        self.cmd = self._binary(base + suffix, base)

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

    def restore_argv(self):
        # -w SECONDS: iptables-restore -w alone waits for the xtables lock (legacy backend) forever
        return [self.restore_cmd, "-w", str(self.lock_timeout), "--noflush"]

    def restore(self, batch):
        argv = self.restore_argv()
        rc, out, err = self.run(argv, data=batch)
        if rc != 0:
            message = (err or out).strip()
            if "xtables lock" in message:
                holders = lock_holders()
                raise NetfilterError("%s: the xtables lock was not free within %d s (lock_timeout); held by %s"
                                     % (argv[0], self.lock_timeout, ", ".join(holders) or "an unknown process"))
            raise NetfilterError("%s failed (rc %d): %s\nbatch:\n%s" % (" ".join(argv), rc, message, batch))

    def undo_argvs(self, adds, deletes):
        """The commands that take back one change: delete each rule added, and add back each
        rule removed unless it is there again ([check argv or None, argv])."""
        wait = ["-w", str(self.lock_timeout), "-t", "nat"]
        steps = [[None, [self.cmd] + wait + ["-D"] + shlex.split(line)[1:]] for line in adds]
        for line in deletes:
            spec = shlex.split(line)[1:]
            steps.append([[self.cmd] + wait + ["-C"] + spec, [self.cmd] + wait + ["-A"] + spec])
        return steps


def plan(rules, forwards, family, tag, state):
    """What to add and delete in a family's nat table: (adds, deletes) as restore lines."""
    present = {}
    for rule in rules:
        if rule["options"] is not None:
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
                    if is_ours(rule, tag) and rule["rule"] not in deletes:
                        deletes.append(rule["rule"])
    return adds, deletes


def batch_for(adds, deletes):
    lines = ["*nat"] + ["-D" + line[2:] for line in deletes] + adds + ["COMMIT", ""]
    return "\n".join(lines)


def listing(rules, tag):
    return [{"chain": r["chain"], "number": r["number"], "rule": r["rule"], "ours": is_ours(r, tag)} for r in rules]


def simulate(before, adds, deletes):
    """The iptables-save text after adding and deleting lines (for check mode's diff)."""
    lines = [line for line in before.splitlines() if line not in deletes]
    if "COMMIT" in lines:
        at = len(lines) - 1 - lines[::-1].index("COMMIT")
        lines[at:at] = adds
    else:
        lines = ["*nat"] + adds + ["COMMIT"]
    return "\n".join(lines) + "\n"


def rules_only(text):
    """iptables-save text without its timestamps and counters (which differ on every call)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")) + "\n"


# --- locking, kernel settings, persistence, rollback -----------------------------------

def validate_state_dir(path, field="state_dir"):
    """Make ``path`` (the lock, rollback plans) if missing; InputError when it cannot be a directory."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InputError("%s: %r is not an absolute path" % (field, path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError("%s: %s exists and is not a directory" % (field, path))
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise InputError("%s: cannot make %s: %s" % (field, path, exc.strerror or exc))
    return path


class HostLock(object):
    """An exclusive lock across every run on this host (flock on a file in state_dir)."""

    def __init__(self, state_dir, timeout=60.0):
        self.path = os.path.join(state_dir, "netfilter.lock")
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.handle.close()
                    raise NetfilterError("another run held %s for more than %g s (lock_timeout); held by %s" % (
                        self.path, self.timeout, ", ".join(lock_holders(self.path)) or "an unknown process"))
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
    """Save every table the way the distribution reloads them at boot; returns where.

    The file is written beside its final name and renamed over it, so a reader never sees
    half a file; when anything fails, the temporary file is removed and NetfilterError says why.
    """
    tool = which("netfilter-persistent")
    if path is None and tool:
        rc, out, err = run([tool, "save"])
        if rc != 0:
            raise NetfilterError("netfilter-persistent save failed: %s" % (err or out).strip())
        return "netfilter-persistent (%s)" % PERSIST_PATHS[netfilter.family][0]
    if path is None:
        existing = [p for p in PERSIST_PATHS[netfilter.family] if os.path.isdir(os.path.dirname(p))]
        path = existing[0] if existing else PERSIST_PATHS[netfilter.family][0]
    content = netfilter.save(table=None)
    temporary = None
    try:
        if os.path.isdir(path):
            raise NetfilterError("persist_path: %s is a directory, not a file" % path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                                             dir=os.path.dirname(path))
        with os.fdopen(handle, "w") as out:
            out.write(content)
        os.chmod(temporary, 0o600)
        os.rename(temporary, path)
        temporary = None
    except OSError as exc:
        raise NetfilterError("persist_path: cannot write %s: %s" % (path, exc.strerror or exc))
    finally:
        if temporary is not None:
            os.unlink(temporary)
    return path


# Runs detached (python3 -c WATCHER plan-file): unless the confirmation file appears before
# the deadline, takes back exactly the change of one run - deletes the rules it added, adds
# back the rules it removed (when they are not there again) - and leaves every other rule,
# including one added by someone else meanwhile, alone. Self-contained: module_utils are
# gone from the host once the module has returned.
WATCHER = r"""
import json, os, subprocess, sys, time
plan_path = sys.argv[1]
with open(plan_path) as handle:
    plan = json.load(handle)
while time.time() < plan["deadline"] and not os.path.exists(plan["confirmed"]):
    time.sleep(0.1)
if os.path.exists(plan["confirmed"]):
    os.unlink(plan["confirmed"])
else:
    codes = []
    for check, command in plan["steps"]:
        if check is not None and subprocess.call(check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
            continue
        codes.append(subprocess.call(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with open(plan["note"], "w") as note:
        note.write("rolled back at %f, command exit codes %s\n" % (time.time(), codes))
os.unlink(plan_path)
"""
ROLLBACK_ID = re.compile(r"\d+-[0-9a-f]{8}\Z")
# how long a rollback's note ("rolled back at ...") stays for a late confirm to read
ROLLBACK_NOTE_AGE_S = 86400


def _rollback_paths(state_dir, rollback_id):
    base = os.path.join(state_dir, "rollback-%s" % rollback_id)
    return {"plan": base + ".json", "confirmed": base + ".confirmed", "note": base + ".rolled-back"}


def prune_rollback_files(state_dir, now=None, max_age=ROLLBACK_NOTE_AGE_S):
    """Remove the rollback files of runs long over (a watcher removes its own; these are
    notes of rollbacks done and leftovers of a watcher that died). Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for name in sorted(os.listdir(state_dir)):
        path = os.path.join(state_dir, name)
        if name.startswith("rollback-") and now - os.path.getmtime(path) > max_age:
            os.unlink(path)
            removed.append(path)
    return removed


def arm_rollback(netfilters, plans, state_dir, timeout, python, spawn):
    """Write the undo steps of this run's change and start its watcher; returns {id, deadline, timeout, plan}."""
    rollback_id = "%d-%s" % (int(time.time()), os.urandom(4).hex())
    deadline = time.time() + timeout
    paths = _rollback_paths(state_dir, rollback_id)
    steps = []
    for family, (adds, deletes) in sorted(plans.items()):
        steps += netfilters[family].undo_argvs(adds, deletes)
    with open(paths["plan"], "w") as handle:
        json.dump({"deadline": deadline, "confirmed": paths["confirmed"], "note": paths["note"], "steps": steps},
                  handle)
    spawn([python, "-c", WATCHER, paths["plan"]])
    return {"id": rollback_id, "deadline": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline)),
            "timeout": timeout, "plan": paths["plan"]}


def confirm_rollback(rollback_id, state_dir):
    """Tell the watcher of ``rollback_id`` that the controller still reaches this host."""
    if not isinstance(rollback_id, str) or not ROLLBACK_ID.match(rollback_id):
        raise InputError("confirm: %r is not a rollback id" % rollback_id)
    paths = _rollback_paths(state_dir, rollback_id)
    if os.path.exists(paths["note"]):
        raise NetfilterError("confirm: too late, rollback %s already took the change back" % rollback_id)
    if not os.path.exists(paths["plan"]):
        where = state_dir if os.path.isdir(state_dir) else "%s (which does not exist)" % state_dir
        raise NetfilterError("confirm: no pending rollback %s in state_dir %s" % (rollback_id, where))
    with open(paths["confirmed"], "w") as handle:
        handle.write("%f\n" % time.time())
    return True


# --- the whole run ------------------------------------------------------------------

class Host(object):
    """What a run needs of the managed host: ``run(argv, data=None)``, ``which(name)``,
    ``spawn(argv)`` (detached, outlives the module) and the Python to spawn."""

    def __init__(self, run, which, spawn, python):
        self.run = run
        self.which = which
        self.spawn = spawn
        self.python = python


def manage(params, host, check_mode=False):
    """The port_forward module's whole run on validated ``params`` (PORT_FORWARD_SPEC):
    lock, read, plan, arm the rollback, apply, set sysctls, persist.

    Returns (result, diff, warnings). Raises InputError before anything is done, and
    NetfilterError (with ``.result``, what was done so far) when the host refuses.
    """
    if params["confirm"]:
        state_dir = params["state_dir"]
        if not check_mode:
            confirm_rollback(params["confirm"], state_dir)
        return {"changed": True, "confirmed": params["confirm"]}, None, []
    tag = validate_tag(params["tag"])
    forwards = parse_forwards(params["forwards"])
    state = params["state"]
    if state != "listed" and not forwards:
        raise InputError("forwards: give at least one forward for state %s" % state)
    if not 0 <= params["rollback_timeout"] <= 3600:
        raise InputError("rollback_timeout: %s must be between 0 and 3600 seconds" % params["rollback_timeout"])
    if not 1 <= params["lock_timeout"] <= 3600:
        raise InputError("lock_timeout: %s must be between 1 and 3600 seconds" % params["lock_timeout"])
    state_dir = validate_state_dir(params["state_dir"])

    families = ["ipv4", "ipv6"] if state == "listed" else sorted(
        {family for forward in forwards for family in forward.families()})
    result = dict(changed=False, forwards=[f.as_dict() for f in forwards], backend={}, added=[], removed=[],
                  rules={}, sysctl={}, persisted_to=None, rollback=None)
    diff = {"before": "", "after": ""}
    warnings = []
    try:
        with HostLock(state_dir, params["lock_timeout"]):
            prune_rollback_files(state_dir)
            netfilters, before, plans = {}, {}, {}
            for family in families:
                if family == "ipv6" and state == "listed" and not host.which("ip6tables"):
                    continue
                netfilter = Netfilter(family, host.run, host.which, params["backend"], params["lock_timeout"])
                netfilters[family] = netfilter
                result["backend"][family] = {"name": netfilter.backend, "reason": netfilter.backend_reason}
                before[family] = netfilter.save()
                if state != "listed":
                    plans[family] = plan(parse_save(before[family]), forwards, family, tag, state)
            for adds, deletes in plans.values():
                result["added"] += adds
                result["removed"] += deletes
            result["changed"] = bool(result["added"] or result["removed"])
            if state == "present":
                result["sysctl"] = kernel_settings(forwards)

            if result["changed"] and not check_mode:
                changed = {family: change for family, change in plans.items() if change[0] or change[1]}
                if params["rollback_timeout"]:
                    result["rollback"] = arm_rollback(netfilters, changed, state_dir, params["rollback_timeout"],
                                                      host.python, host.spawn)
                for family, (adds, deletes) in changed.items():
                    netfilters[family].restore(batch_for(adds, deletes))
            if params["set_sysctl"] and result["sysctl"] and not all(f["ok"] for f in result["sysctl"].values()):
                if not check_mode:
                    apply_kernel_settings(result["sysctl"])
                result["changed"] = True

            for family, netfilter in netfilters.items():
                adds, deletes = plans.get(family, ([], []))
                if check_mode or not (adds or deletes):
                    after = simulate(before[family], adds, deletes) if (adds or deletes) else before[family]
                else:
                    after = netfilter.save()
                result["rules"][family] = listing(parse_save(after), tag)
                diff["before"] += "# %s nat\n%s" % (family, rules_only(before[family]))
                diff["after"] += "# %s nat\n%s" % (family, rules_only(after))

            if params["persist"] and state != "listed" and not check_mode:
                places = []
                for family, netfilter in netfilters.items():
                    path = params["persist_path"]
                    if path and family == "ipv6":
                        path += ".v6"
                    try:
                        places.append(persist(netfilter, host.run, host.which, path))
                    except NetfilterError as exc:
                        # the rules are in place: the run changed the host, only saving them failed
                        warnings.append("the %s rules are applied but not saved for the next boot: %s"
                                        % (family, exc))
                result["persisted_to"] = ", ".join(places) or None
    except NetfilterError as exc:
        exc.result = result
        raise
    return result, (diff if state != "listed" else None), warnings


__all__ = ["BACKENDS", "DEFAULT_TAG", "FAMILIES", "FORWARD_SPEC", "Forward", "Host", "HostLock", "InputError",
           "Netfilter", "NetfilterError", "PORT_FORWARD_SPEC", "PROTOS", "apply_kernel_settings", "arm_rollback",
           "batch_for", "confirm_rollback", "desired_rules", "is_ours", "kernel_settings", "listing", "lock_holders",
           "manage", "parse_forwards", "parse_rule", "parse_save", "persist", "plan", "prune_rollback_files",
           "rule_key", "simulate", "validate_state_dir", "validate_tag"]
