"""The namespace lab: N Linux network namespaces on a bridge, each a small "server".

Every host gets its own network stack (interfaces, routes, ARP table, iptables),
an sshd that accepts only the lab's key and presents its own host key, and a web
server on port 8080. The controller (this machine's root namespace) holds the
first address of the subnet on the bridge. No lab namespace has a default route:
traffic to anything but the lab subnet fails with ENETUNREACH and never leaves
the machine.

``up`` is declarative and idempotent (exactly N hosts afterwards; a second run
changes nothing); ``down`` removes every namespace, veth, bridge and process the
lab made, and nothing else.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MAX_HOSTS = 200
# Host i gets network address + HOST_OFFSET + i; UNASSIGNED_OFFSET is never handed out.
HOST_OFFSET = 10
UNASSIGNED_OFFSET = 250
SSHD = "/usr/sbin/sshd"
REMOTE_PYTHON = "/usr/bin/python3"


class LabError(RuntimeError):
    pass


def run(argv, check=True, capture=True):
    """Run a command (argv list, never a shell) and return its stdout."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError("%s failed (rc %d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc.stdout or ""


def wait_for_ports(addresses, deadline_s=20.0):
    """Poll every (address, port) until it accepts a connection, within one bounded deadline.

    A lab service is up when its port answers, not when its process has started.
    """
    pending = list(addresses)
    deadline = time.monotonic() + deadline_s
    while pending:
        still = []
        for address in pending:
            try:
                socket.create_connection(address, timeout=0.5).close()
            except OSError:
                still.append(address)
        pending = still
        if pending and time.monotonic() > deadline:
            raise LabError("nothing answers on %s within %g s" % (pending, deadline_s))
        if pending:
            time.sleep(0.05)


# --- the kernel's neighbour (ARP / NDP) table --------------------------------------
# One table per address family serves every network namespace of the machine, bounded
# by the root namespace's gc_thresh1/2/3 (128 / 512 / 1,024 by default). A full mesh of
# N hosts needs about N*N entries: at 32 hosts that overflows the default, new entries
# cannot be made ("neighbor table overflow!") and pairs fail with no neighbour at all.
NEIGH_FAMILIES = ("ipv4", "ipv6")
NEIGH_KEYS = ("gc_thresh1", "gc_thresh2", "gc_thresh3")
SYSCTL_ROOT = Path("/proc/sys")
# /run is a tmpfs: the registry vanishes on reboot, exactly when the kernel forgets the raised values
NEIGH_REGISTRY = Path("/run/netcheck/neigh")
# the kernel's defaults: room kept for everything that is not a registered lab
NEIGH_RESERVE = {"gc_thresh2": 512, "gc_thresh3": 1024}


def neighbour_entries_needed(count):
    """Neighbour entries a lab of ``count`` hosts needs in each family's table, with margin.

    Each host reaches every other host and the controller (count * count entries, a
    host reaches itself over loopback), and the controller reaches every host (count);
    IPv6 adds a few multicast entries per host (solicited-node, all-routers). The margin
    (a quarter, plus 8 per host and 32) covers those and entries not yet collected.
    """
    entries = count * count + count
    return entries + entries // 4 + 8 * count + 32


def neighbour_targets(originals, needs):
    """The thresholds while labs with these needs are up: the kernel's defaults stay for
    everything else on the machine (labs that do not register, the host's own traffic) and
    each registered lab adds its own need on top; values already higher stay as they are.
    gc_thresh1 (nothing is collected below it) is left alone."""
    extra = sum(needs)
    return {"gc_thresh1": originals["gc_thresh1"],
            "gc_thresh2": max(originals["gc_thresh2"], NEIGH_RESERVE["gc_thresh2"] + extra),
            "gc_thresh3": max(originals["gc_thresh3"], NEIGH_RESERVE["gc_thresh3"] + extra)}


class NeighbourTable:
    """Raises the shared neighbour-table thresholds for the labs that are up, and restores them.

    Every lab that raises registers its need in ``registry/labs/<name>.json`` (under one
    lock); the first one records the values it found in ``registry/originals.json``. The
    thresholds are always originals + the needs of the labs registered now, and are only
    ever raised while a registered lab is up: a lab going down lowers them to what the
    labs still up need, never below, and to the originals only when it was the last.
    Values someone else changed since we set them are left alone.
    """

    def __init__(self, registry=NEIGH_REGISTRY, sysctl_root=SYSCTL_ROOT, link_exists=None):
        self.registry = Path(registry)
        self.sysctl_root = Path(sysctl_root)
        self.link_exists = link_exists or Lab._link_exists

    def _path(self, family, key):
        return self.sysctl_root / "net" / family / "neigh" / "default" / key

    def read(self):
        return {family: {key: int(self._path(family, key).read_text()) for key in NEIGH_KEYS}
                for family in NEIGH_FAMILIES}

    def _write(self, family, values):
        # raise the top first and lower the bottom first, so thresh1 <= thresh2 <= thresh3 holds throughout
        current = int(self._path(family, "gc_thresh3").read_text())
        order = reversed(NEIGH_KEYS) if values["gc_thresh3"] >= current else NEIGH_KEYS
        for key in order:
            try:
                self._path(family, key).write_text("%d\n" % values[key])
            except OSError as exc:
                raise LabError("cannot set net.%s.neigh.default.%s to %d (%s): the kernel's neighbour table, "
                               "shared by every namespace, would overflow with this many lab hosts"
                               % (family, key, values[key], exc.strerror or exc))

    def _locked(self):
        (self.registry / "labs").mkdir(parents=True, exist_ok=True)
        handle = open(self.registry / "lock", "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def _entries(self):
        """Registered labs whose bridge still exists; a lab that vanished without `down` is dropped."""
        entries = {}
        for path in sorted((self.registry / "labs").glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                entry = None
            if entry and self.link_exists(entry["bridge"]):
                entries[entry["name"]] = entry
            else:
                path.unlink()
        return entries

    def _apply(self, entries, originals, may_lower):
        """Move each family towards originals + the registered needs; returns the values now set.

        Raising takes the larger of the target and what is there, key by key. Lowering
        (``may_lower``, a lab went down) happens only where the values are still the ones
        we set last: a value someone else changed since is theirs, and stays.
        """
        current = self.read()
        applied = {}
        for family in NEIGH_FAMILIES:
            target = neighbour_targets(originals["values"][family], [e["need"] for e in entries.values()])
            ours = current[family] == originals["set"].get(family)
            if not (may_lower and ours):
                target = {key: max(target[key], current[family][key]) for key in NEIGH_KEYS}
            if target != current[family]:
                self._write(family, target)
            applied[family] = target
        return applied

    def register(self, name, bridge, count):
        """Make room for a lab of ``count`` hosts (never lowering). Returns a description of a change."""
        need = neighbour_entries_needed(count)
        with self._locked():
            entries = self._entries()
            originals_path = self.registry / "originals.json"
            if originals_path.exists():
                originals = json.loads(originals_path.read_text())
            else:
                # the first lab to register: what is there now is what the machine had
                originals = {"values": self.read(), "set": {}}
            entries[name] = {"name": name, "bridge": bridge, "need": need, "hosts": count}
            (self.registry / "labs" / (name + ".json")).write_text(json.dumps(entries[name]) + "\n")
            before = self.read()
            originals["set"] = self._apply(entries, originals, may_lower=False)
            originals_path.write_text(json.dumps(originals, indent=1) + "\n")
            if originals["set"] == before:
                return None
            return "neighbour table thresholds %s (were %s; %s needs %d entries)" % (
                self._describe(originals["set"]), self._describe(before), name, need)

    def release(self, name):
        """Forget a lab; lower the thresholds to what the labs still up need (the originals if none)."""
        with self._locked():
            own = self.registry / "labs" / (name + ".json")
            originals_path = self.registry / "originals.json"
            if not own.exists():
                return None
            own.unlink()
            if not originals_path.exists():
                return None
            originals = json.loads(originals_path.read_text())
            entries = self._entries()
            before = self.read()
            applied = self._apply(entries, originals, may_lower=True)
            if entries:
                originals["set"] = applied
                originals_path.write_text(json.dumps(originals, indent=1) + "\n")
            else:
                originals_path.unlink()
            if applied == before:
                return None
            return "neighbour table thresholds %s (was %s)" % (self._describe(applied), self._describe(before))

    @staticmethod
    def _describe(values):
        return ", ".join("%s %s" % (family, "/".join(str(values[family][k]) for k in NEIGH_KEYS))
                         for family in NEIGH_FAMILIES)


@dataclass
class LabConfig:
    """Everything that names or places the lab. Two labs with different names coexist."""

    name: str = "nclab"
    subnet: str = "10.77.0.0/24"
    subnet6: str = "fd6e:6574:6368:0::/64"
    bridge: str = ""
    state_dir: Path = None
    inventory_path: Path = None
    web_port: int = 8080

    def __post_init__(self):
        if not re.match(r"^[a-z][a-z0-9]{1,9}$", self.name):
            raise LabError("lab name %r: 2-10 lower-case letters and digits, starting with a letter" % self.name)
        self.bridge = self.bridge or self.name + "-br"
        if len(self.bridge) > 15:
            raise LabError("bridge name %r is longer than 15 characters" % self.bridge)
        self.state_dir = Path(self.state_dir or REPO / ".lab" / self.name)
        # ansible.cfg's default inventory is inventory/nclab.yml: the default lab's
        self.inventory_path = Path(self.inventory_path or REPO / "inventory" / (self.name + ".yml"))
        self.network = ipaddress.ip_network(self.subnet)
        self.network6 = ipaddress.ip_network(self.subnet6)
        if self.network.version != 4 or self.network.prefixlen > 24:
            raise LabError("subnet %s: an IPv4 network of /24 or larger is needed" % self.subnet)
        if self.network6.version != 6 or self.network6.prefixlen > 120:
            raise LabError("subnet6 %s: an IPv6 network of /120 or larger is needed" % self.subnet6)

    @classmethod
    def from_env(cls, **overrides):
        """Defaults, then NETCHECK_LAB_* environment variables, then explicit overrides."""
        env = {
            "name": os.environ.get("NETCHECK_LAB_NAME"),
            "subnet": os.environ.get("NETCHECK_LAB_SUBNET"),
            "subnet6": os.environ.get("NETCHECK_LAB_SUBNET6"),
            "bridge": os.environ.get("NETCHECK_LAB_BRIDGE"),
            "state_dir": os.environ.get("NETCHECK_LAB_DIR"),
            "inventory_path": os.environ.get("NETCHECK_LAB_INVENTORY"),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in env.items() if v is not None})

    # --- addressing -------------------------------------------------------
    @property
    def controller_ip(self):
        return str(self.network.network_address + 1)

    @property
    def controller_ip6(self):
        return str(self.network6.network_address + 1)

    @property
    def unassigned_ip(self):
        """An address of the lab subnet that no host ever holds: ARP for it fails."""
        return str(self.network.network_address + UNASSIGNED_OFFSET)

    def host_name(self, index):
        return "%s%d" % (self.name, index)

    def host_ip(self, index):
        return str(self.network.network_address + HOST_OFFSET + index)

    def host_mac(self, index):
        """A fixed MAC per address (02: locally administered, then the IPv4 address), as a real
        server keeps its MAC: a host removed and made again is not a new MAC that the other hosts'
        neighbour caches still hold the old one of (which is NEIGHBOUR_MISMATCH, for real)."""
        return "02:00:" + ":".join("%02x" % byte for byte in ipaddress.ip_address(self.host_ip(index)).packed)

    def host_ip6(self, index):
        # ::11 for 10.77.0.11: the same digits as the IPv4 address, easy to read
        return str(self.network6.network_address + int(str(HOST_OFFSET + index), 16))

    def veth_name(self, index):
        return "%s%dv" % (self.name, index)

    def host_dir(self, index):
        return self.state_dir / "hosts" / self.host_name(index)

    @property
    def key_path(self):
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_path(self):
        return self.state_dir / "known_hosts"


@dataclass
class LabHost:
    index: int
    name: str
    ip: str
    ip6: str
    namespace: str
    mac: str = None

    def as_dict(self):
        return dict(self.__dict__)


@dataclass
class Lab:
    config: LabConfig = field(default_factory=LabConfig.from_env)
    neighbour_table: NeighbourTable = None

    def __post_init__(self):
        self.changes = []
        self.neighbour_table = self.neighbour_table or NeighbourTable()

    # --- helpers ------------------------------------------------------------
    def _changed(self, what):
        self.changes.append(what)

    def _write(self, path, content, mode=0o644):
        """Write a file only when its content differs, in place (bind mounts keep seeing it)."""
        path = Path(path)
        if path.exists() and path.read_text() == content:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            handle.write(content)
        os.chmod(path, mode)
        self._changed("wrote %s" % path)
        return True

    def namespaces(self):
        """This lab's namespaces that exist now, as {index: name}."""
        found = {}
        pattern = re.compile(r"^%s(\d+)$" % re.escape(self.config.name))
        for line in run(["ip", "netns", "list"]).splitlines():
            match = pattern.match(line.split()[0]) if line.strip() else None
            if match:
                found[int(match.group(1))] = match.group(0)
        return found

    @staticmethod
    def _link_exists(name, netns=None):
        argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0

    @staticmethod
    def _addresses(dev, netns=None):
        argv = ["ip"] + (["-n", netns] if netns else []) + ["-j", "addr", "show", "dev", dev]
        data = json.loads(run(argv) or "[]")
        return {"%s/%s" % (a["local"], a["prefixlen"]) for link in data for a in link.get("addr_info", [])}

    def _ensure_addresses(self, dev, cidrs, netns=None):
        """Give dev exactly these global addresses (link-local ones are the kernel's)."""
        prefix = ["ip"] + (["-n", netns] if netns else [])
        where = " on %s%s" % (dev, " in " + netns if netns else "")
        current = {a for a in self._addresses(dev, netns) if not a.startswith("fe80:")}
        for stale in sorted(current - set(cidrs)):
            run(prefix + ["addr", "del", stale, "dev", dev])
            self._changed("removed address %s%s" % (stale, where))
        for cidr in cidrs:
            if cidr not in current:
                # nodad: an IPv6 address usable at once, without duplicate-address detection
                run(prefix + ["addr", "add", cidr, "dev", dev] + (["nodad"] if ":" in cidr else []))
                self._changed("address %s%s" % (cidr, where))

    @staticmethod
    def _pid_alive(pidfile, needle):
        """The pid in pidfile when that process runs and its command line contains needle."""
        try:
            pid = int(Path(pidfile).read_text().split()[0])
            cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            return None
        return pid if needle in cmdline else None

    def hosts(self, count=None):
        """LabHost records for hosts 1..count (default: those that exist now)."""
        indexes = range(1, count + 1) if count is not None else sorted(self.namespaces())
        cfg = self.config
        result = []
        for i in indexes:
            host = LabHost(i, cfg.host_name(i), cfg.host_ip(i), cfg.host_ip6(i), cfg.host_name(i))
            try:
                host.mac = json.loads(run(["ip", "-n", host.namespace, "-j", "link", "show", "dev", "eth0"],
                                          check=False) or "[{}]")[0].get("address")
            except (ValueError, IndexError):
                host.mac = None
            result.append(host)
        return result

    # --- up -------------------------------------------------------------------
    def preflight(self):
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, bridges, sshd)")
        for tool in ("ip", "ssh-keygen", SSHD):
            if not shutil.which(tool):
                raise LabError("%s not found: install iproute2 and openssh-server (see README)" % tool)

    def up(self, count):
        if not 1 <= count <= MAX_HOSTS:
            raise LabError("host count %s: between 1 and %d" % (count, MAX_HOSTS))
        self.preflight()
        self.changes = []
        cfg = self.config
        users = self._subnet_users()
        if users:  # checked before anything is made
            raise LabError("subnet %s or %s is already in use (%s): give this lab another subnet"
                           % (cfg.subnet, cfg.subnet6, ", ".join(users)))
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(cfg.state_dir, 0o700)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self._ensure_keypair(cfg.key_path, "netcheck-lab-client")
        self._write(cfg.state_dir / "authorized_keys", Path(str(cfg.key_path) + ".pub").read_text(), 0o600)
        self._ensure_bridge()
        # before any host talks: a full mesh of many hosts overflows the kernel's default table
        raised = self.neighbour_table.register(cfg.name, cfg.bridge, count)
        if raised:
            self._changed(raised)
        for extra in sorted(i for i in self.namespaces() if i > count):
            self._remove_host(extra)
        for index in range(1, count + 1):
            self._ensure_host(index, count)
        hosts = self.hosts(count)
        self._wait_for_services(hosts)
        self._write(cfg.known_hosts_path, self._known_hosts(hosts), 0o600)
        self._write(cfg.inventory_path, self.inventory_yaml(hosts), 0o600)
        return self.changes

    def _ensure_keypair(self, path, comment):
        if Path(path).exists() and Path(str(path) + ".pub").exists():
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        for stale in (Path(path), Path(str(path) + ".pub")):
            if stale.exists():
                stale.unlink()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
        self._changed("generated key %s" % path)

    def _subnet_users(self):
        """Other interfaces of this machine's root namespace on the lab's subnets (or parts of
        them): a second lab on the same subnet would answer for the same addresses."""
        cfg = self.config
        users = set()
        for link in json.loads(run(["ip", "-j", "addr", "show"]) or "[]"):
            if link.get("ifname") == cfg.bridge:
                continue
            for addr in link.get("addr_info", []):
                network = cfg.network if addr.get("family") == "inet" else cfg.network6
                iface = ipaddress.ip_interface("%s/%s" % (addr["local"], addr["prefixlen"]))
                # a wider network elsewhere (10.0.0.0/8 on eth0) is fine: the lab's route is longer
                if iface.version == network.version and iface.network.subnet_of(network):
                    users.add("%s on %s" % (iface, link["ifname"]))
        return sorted(users)

    def _ensure_bridge(self):
        cfg = self.config
        if not self._link_exists(cfg.bridge):
            run(["ip", "link", "add", cfg.bridge, "type", "bridge"])
            self._changed("bridge %s" % cfg.bridge)
        run(["ip", "link", "set", cfg.bridge, "up"])
        self._ensure_addresses(cfg.bridge, ["%s/%d" % (cfg.controller_ip, cfg.network.prefixlen),
                                            "%s/%d" % (cfg.controller_ip6, cfg.network6.prefixlen)])

    def _etc_files(self, count):
        """/etc/netns/<ns>/ files: `ip netns exec` bind-mounts them over /etc/ for that host."""
        cfg = self.config
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += ["%s\t%s" % (cfg.host_ip(i), cfg.host_name(i)) for i in range(1, count + 1)]
        lines += ["%s\t%s-v6" % (cfg.host_ip6(i), cfg.host_name(i)) for i in range(1, count + 1)]
        lines.append("%s\t%s-controller" % (cfg.controller_ip, cfg.name))
        # DNS stays inside the namespace: nothing listens on its loopback, so lookups of
        # names not in hosts fail at once instead of leaving the lab.
        return {"resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
                "hosts": "\n".join(lines) + "\n"}

    def _ensure_host(self, index, count):
        cfg = self.config
        ns, veth = cfg.host_name(index), cfg.veth_name(index)
        for filename, content in self._etc_files(count).items():
            self._write(Path("/etc/netns") / ns / filename, content)
        if ns not in self.namespaces().values():
            run(["ip", "netns", "add", ns])
            self._changed("namespace %s" % ns)
        if not self._link_exists(veth):
            if self._link_exists("eth0", ns):
                run(["ip", "-n", ns, "link", "del", "eth0"])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "address", cfg.host_mac(index),
                 "netns", ns])
            self._changed("veth %s <-> %s:eth0" % (veth, ns))
        run(["ip", "link", "set", veth, "master", cfg.bridge, "up"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        self._ensure_addresses("eth0", ["%s/%d" % (cfg.host_ip(index), cfg.network.prefixlen),
                                        "%s/%d" % (cfg.host_ip6(index), cfg.network6.prefixlen)], ns)
        self._ensure_sshd(index)
        self._ensure_web(index)

    def _sshd_config(self, index):
        cfg, hdir = self.config, self.config.host_dir(index)
        return "\n".join([
            "# netcheck lab host %s (generated by python -m lab up)" % cfg.host_name(index),
            "ListenAddress %s" % cfg.host_ip(index),
            "ListenAddress %s" % cfg.host_ip6(index),
            "Port 22",
            "HostKey %s" % (hdir / "ssh_host_ed25519_key"),
            "PidFile %s" % (hdir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (cfg.state_dir / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "UseDNS no",
            # the state directory may sit below a group-writable path such as /tmp
            "StrictModes no",
            "PrintMotd no",
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            "",
        ])

    def _ensure_sshd(self, index):
        cfg, hdir = self.config, self.config.host_dir(index)
        ns = cfg.host_name(index)
        hdir.mkdir(parents=True, exist_ok=True)
        self._ensure_keypair(hdir / "ssh_host_ed25519_key", "netcheck-lab-host-%s" % ns)
        config_path = hdir / "sshd_config"
        rewritten = self._write(config_path, self._sshd_config(index), 0o600)
        pid = self._pid_alive(hdir / "sshd.pid", str(config_path))
        if pid and not rewritten:
            return
        if pid:
            self._stop_pid(pid)
        run([SSHD, "-t", "-f", str(config_path)])
        run(["ip", "netns", "exec", ns, SSHD, "-f", str(config_path), "-E", str(hdir / "sshd.log")])
        self._changed("sshd in %s" % ns)

    def _ensure_web(self, index):
        cfg, hdir = self.config, self.config.host_dir(index)
        ns = cfg.host_name(index)
        pidfile = hdir / "web.pid"
        script = str(Path(__file__).with_name("webserver.py"))
        if self._pid_alive(pidfile, script):
            return
        with open(hdir / "web.log", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, script, "--bind", "::",
                 "--port", str(cfg.web_port), "--name", ns],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        # `ip netns exec` execs the command, so this pid is the server's own
        pidfile.write_text("%d\n" % proc.pid)
        self._changed("web server :%d in %s" % (cfg.web_port, ns))

    def _wait_for_services(self, hosts):
        wait_for_ports([(h.ip, port) for h in hosts for port in (22, self.config.web_port)])

    def _known_hosts(self, hosts):
        lines = []
        for host in hosts:
            key = (self.config.host_dir(host.index) / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append("%s,%s %s %s" % (host.ip, host.ip6, key[0], key[1]))
        return "\n".join(lines) + "\n"

    def inventory(self, hosts):
        cfg = self.config
        ssh_args = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" % (
            cfg.known_hosts_path)
        return {
            "all": {
                "children": {
                    "lab": {
                        "hosts": {
                            h.name: {"ansible_host": h.ip, "lab_ipv6": h.ip6, "lab_namespace": h.namespace}
                            for h in hosts
                        },
                        "vars": {
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(cfg.key_path),
                            "ansible_ssh_common_args": ssh_args,
                            "ansible_python_interpreter": REMOTE_PYTHON,
                            "lab_name": cfg.name,
                            "lab_controller_ip": cfg.controller_ip,
                            "lab_unassigned_ip": cfg.unassigned_ip,
                            # what check.yml checks in the lab: every lab host answers ping,
                            # its ssh and web server answer, and the web server speaks HTTP
                            "netcheck_icmp_group_targets": [{"group": "lab"}],
                            "netcheck_tcp_group_targets": [
                                {"group": "lab", "port": 22, "expect": "^SSH-2\\.0-"},
                                {"group": "lab", "port": cfg.web_port},
                            ],
                            "netcheck_http_group_targets": [
                                {"group": "lab", "port": cfg.web_port, "path": "/",
                                 "expect_headers": {"x-lab-host": "^%s[0-9]+$" % cfg.name}},
                            ],
                        },
                    }
                }
            }
        }

    def inventory_yaml(self, hosts):
        header = "# Written by `python -m lab up`; `python -m lab down` removes it.\n"
        return header + yaml.safe_dump(self.inventory(hosts), default_flow_style=False, sort_keys=False)

    # --- down -------------------------------------------------------------------
    @staticmethod
    def _gone(pid):
        """True once pid has exited. A zombie counts as gone: this machine's init may not
        reap it, and a web server started by this very process is our child until waited."""
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        try:
            stat = Path("/proc/%d/stat" % pid).read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    def _stop_pid(self, pid, grace_s=3.0):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self._gone(pid):
                return
            time.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _remove_host(self, index):
        cfg = self.config
        ns = cfg.host_name(index)
        if ns in self.namespaces().values():
            # every process inside the namespace is the lab's: sshd, its sessions, the web server
            for _ in range(3):
                pids = [int(p) for p in run(["ip", "netns", "pids", ns], check=False).split()]
                pids = [p for p in pids if not self._gone(p)]
                if not pids:
                    break
                for pid in pids:
                    self._stop_pid(pid, grace_s=1.0)
            run(["ip", "netns", "del", ns])
            self._changed("removed namespace %s" % ns)
        # deleting the namespace destroys the veth pair, asynchronously: it may vanish under us
        if self._link_exists(cfg.veth_name(index)):
            run(["ip", "link", "del", cfg.veth_name(index)], check=False)
        # a web server that lost its namespace early would still be listed in its pidfile
        pid = self._pid_alive(cfg.host_dir(index) / "web.pid", "webserver.py")
        if pid:
            self._stop_pid(pid)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        shutil.rmtree(cfg.host_dir(index), ignore_errors=True)

    def down(self):
        self.changes = []
        for index in sorted(self.namespaces()):
            self._remove_host(index)
        for host_dir in sorted((self.config.state_dir / "hosts").glob(self.config.name + "*")):
            match = re.match(r"^%s(\d+)$" % re.escape(self.config.name), host_dir.name)
            if match:
                self._remove_host(int(match.group(1)))
        if self._link_exists(self.config.bridge):
            run(["ip", "link", "del", self.config.bridge])
            self._changed("removed bridge %s" % self.config.bridge)
        restored = self.neighbour_table.release(self.config.name)
        if restored:
            self._changed(restored)
        if self.config.inventory_path.exists():
            self.config.inventory_path.unlink()
            self._changed("removed %s" % self.config.inventory_path)
        if self.config.state_dir.exists():
            shutil.rmtree(self.config.state_dir)
            self._changed("removed %s" % self.config.state_dir)
        return self.changes

    # --- status -------------------------------------------------------------------
    def status(self):
        cfg = self.config
        hosts = []
        for host in self.hosts():
            hdir = cfg.host_dir(host.index)
            entry = host.as_dict()
            entry["sshd_pid"] = self._pid_alive(hdir / "sshd.pid", str(hdir / "sshd_config"))
            entry["web_pid"] = self._pid_alive(hdir / "web.pid", "webserver.py")
            hosts.append(entry)
        return {
            "name": cfg.name,
            "bridge": cfg.bridge if self._link_exists(cfg.bridge) else None,
            "subnet": cfg.subnet,
            "subnet6": cfg.subnet6,
            "controller_ip": cfg.controller_ip,
            "unassigned_ip": cfg.unassigned_ip,
            "inventory": str(cfg.inventory_path) if cfg.inventory_path.exists() else None,
            "hosts": hosts,
        }
