"""The routed lab: subnets joined by router namespaces, a NAT gateway, per-link MTU, IPv6 everywhere.

A topology (YAML, see lab/topologies/routed.yml) names networks and nodes:

* a **network** is one L2 segment (a bridge in the root namespace) with an IPv4 and an IPv6
  prefix and an MTU; ``public: true`` marks the "internet" side of a NAT gateway (its hosts get
  no route to the private networks: they only see the gateway's public address);
* a **node** is a namespace on one or more networks: ``host`` (sshd and the web server on 8080,
  listed in the inventory), ``router`` (forwarding on; its FORWARD chain stands in for a network
  ACL) or ``nat`` (a router that masquerades what leaves by its ``outside`` network).

Node number i (its place in the file, from 1) holds .(10+i) on every network it is on (IPv6
::(10+i), the same digits); the controller holds .1 on every network that has a host, so that
Ansible reaches each host on-link. Routes are computed (shortest path through forwarding nodes)
and added with ``proto static``; no namespace gets a default route, so nothing leaves the lab.

Faults (``fault_*``) are made inside routers and hosts and all undone by :meth:`RoutedLab.reset`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .lab import REMOTE_PYTHON, REPO, SSHD, Lab, LabConfig, LabError, LabHost, run, sshd_config, wait_for_ports

ROLES = ("host", "router", "nat")
NODE_OFFSET = 10
MAX_NODES = 60
NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
WEB_PORT = 8080
# the sysctls a forwarding node gets at up and gets back at reset (a fault changes some)
FORWARDING_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    # a loop fault sends packets back out the interface they came in by: no redirects for that
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    # lab routers answer every probe: a real router rate-limits its ICMP errors (about 6 at once,
    # then 1 a second per source), which made tracepath and traceroute, run one after the
    # other on the same fault, see different hops
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv6.icmp.ratelimit": "0",
}
HOST_SYSCTLS = {
    "net.ipv4.ip_default_ttl": "64",
    "net.ipv6.conf.all.hop_limit": "64",
    "net.ipv6.conf.default.hop_limit": "64",
}


@dataclass
class Network:
    name: str
    ipv4: ipaddress.IPv4Network
    ipv6: ipaddress.IPv6Network
    mtu: int = 1500
    public: bool = False
    members: list = field(default_factory=list)


@dataclass
class Node:
    name: str
    index: int
    role: str
    networks: list
    outside: str = None

    @property
    def forwards(self):
        return self.role in ("router", "nat")


def _fields(data, allowed, where):
    if not isinstance(data, dict):
        raise LabError("%s: a mapping is needed" % where)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise LabError("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(allowed)))
    return data


class Topology:
    """A parsed, validated topology: networks, nodes, addresses and the routes every node needs."""

    def __init__(self, data, name=None):
        _fields(data, ("name", "networks", "nodes"), "topology")
        self.name = name or data.get("name")
        if not self.name or not re.match(r"^[a-z][a-z0-9]{1,6}$", str(self.name)):
            raise LabError("topology name %r: 2-7 lower-case letters and digits, starting with a letter"
                           % (self.name,))
        self.networks = {}
        for net_name, spec in (data.get("networks") or {}).items():
            where = "networks.%s" % net_name
            _fields(spec, ("ipv4", "ipv6", "mtu", "public"), where)
            if not NAME.match(str(net_name)):
                raise LabError("%s: a network name is 1-8 lower-case letters and digits" % where)
            try:
                net = Network(net_name, ipaddress.IPv4Network(spec["ipv4"]), ipaddress.IPv6Network(spec["ipv6"]),
                              int(spec.get("mtu", 1500)), bool(spec.get("public", False)))
            except (KeyError, ValueError) as exc:
                raise LabError("%s: ipv4 and ipv6 prefixes are needed (%s)" % (where, exc))
            if not 1280 <= net.mtu <= 65535:
                raise LabError("%s.mtu: %d is not between 1280 and 65535" % (where, net.mtu))
            if net.ipv4.num_addresses < 64 or net.ipv6.num_addresses < 64:
                raise LabError("%s: a prefix of at least 64 addresses is needed" % where)
            self.networks[net_name] = net
        if len(self.networks) < 1:
            raise LabError("topology: at least one network is needed")
        self.nodes = {}
        for index, (node_name, spec) in enumerate((data.get("nodes") or {}).items(), 1):
            where = "nodes.%s" % node_name
            _fields(spec, ("role", "networks", "outside"), where)
            if not NAME.match(str(node_name)):
                raise LabError("%s: a node name is 1-8 lower-case letters and digits" % where)
            role = spec.get("role", "host")
            if role not in ROLES:
                raise LabError("%s.role: %r is not one of %s" % (where, role, ", ".join(ROLES)))
            nets = list(spec.get("networks") or [])
            for net_name in nets:
                if net_name not in self.networks:
                    raise LabError("%s.networks: no network %r" % (where, net_name))
            if not nets:
                raise LabError("%s.networks: a node is on at least one network" % where)
            outside = spec.get("outside")
            if role == "nat" and outside not in nets:
                raise LabError("%s.outside: a nat node names which of its networks is the outside" % where)
            node = Node(node_name, index, role, nets, outside)
            self.nodes[node_name] = node
            for net_name in nets:
                self.networks[net_name].members.append(node)
        if not 1 <= len(self.nodes) <= MAX_NODES:
            raise LabError("topology: between 1 and %d nodes" % MAX_NODES)
        for node in self.nodes.values():
            if len(self.namespace(node)) > 12 or len(self.veth(node, node.networks[0])) > 15:
                raise LabError("nodes.%s: lab name + node name + network name too long for an interface name"
                               % node.name)
        for net in self.networks.values():
            if len(self.bridge(net.name)) > 15:
                raise LabError("networks.%s: bridge name %s is longer than 15 characters"
                               % (net.name, self.bridge(net.name)))

    @classmethod
    def load(cls, path, name=None):
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise LabError("topology %s: %s" % (path, exc))
        return cls(data, name=name)

    # --- names and addresses ------------------------------------------------
    def namespace(self, node):
        return self.name + node.name

    def bridge(self, net_name):
        return "%s-%s" % (self.name, net_name)

    def veth(self, node, net_name):
        """The root-namespace end of a node's link to a network (inside, the interface is the network's name)."""
        return "%s%s-%s" % (self.name, node.name, net_name)

    def address(self, node, net_name, version=4):
        net = self.networks[net_name]
        if version == 4:
            return net.ipv4.network_address + NODE_OFFSET + node.index
        # ::11 beside .11: the same digits
        return net.ipv6.network_address + int(str(NODE_OFFSET + node.index), 16)

    def controller(self, net_name, version=4):
        net = self.networks[net_name]
        return (net.ipv4 if version == 4 else net.ipv6).network_address + 1

    def mac(self, node, net_name):
        return "02:00:" + ":".join("%02x" % byte for byte in self.address(node, net_name).packed)

    def hosts(self):
        return [node for node in self.nodes.values() if node.role == "host"]

    def host_networks(self):
        """Networks with a host on them: the controller holds an address there (for SSH)."""
        return [net for net in self.networks.values() if any(m.role == "host" for m in net.members)]

    # --- routes ----------------------------------------------------------------
    def routes(self, node):
        """{network name: (via node, over network name)} for every network the node is not on.

        Breadth-first through forwarding nodes from the node's own networks: the first router
        met on the way is the next hop. A node only on public networks gets no routes (an
        internet host sees the NAT gateway's public address, never the private networks).
        """
        if all(self.networks[n].public for n in node.networks):
            return {}
        found = {}
        seen_nets = set(node.networks)
        queue = deque()
        for net_name in node.networks:
            for member in self.networks[net_name].members:
                if member is not node and member.forwards:
                    queue.append((member, (member, net_name)))
        seen_nodes = {node.name}
        for _ in range(len(self.nodes) * len(self.networks) + 1):  # bounded: each node is expanded once
            if not queue:
                break
            router, first = queue.popleft()
            if router.name in seen_nodes:
                continue
            seen_nodes.add(router.name)
            for net_name in router.networks:
                if net_name in seen_nets:
                    continue
                seen_nets.add(net_name)
                found[net_name] = first
                for member in self.networks[net_name].members:
                    if member.forwards and member.name not in seen_nodes:
                        queue.append((member, first))
        return found

    def path(self, source, target_name):
        """The forwarding nodes a packet from ``source`` to ``target_name`` crosses, in order (healthy lab)."""
        target = self.nodes[target_name]
        hops = []
        current = source
        for _ in range(len(self.nodes)):  # bounded by the node count
            if set(current.networks) & set(target.networks):
                return hops
            routes = self.routes(current)
            via = routes.get(target.networks[0])
            if via is None:
                return None
            current = via[0]
            hops.append(current)
        return None


class RoutedLab(Lab):
    """Brings a topology up and down; makes and undoes faults inside its namespaces."""

    def __init__(self, topology, state_dir=None, inventory_path=None, neighbour_table=None):
        first = next(iter(topology.networks.values()))
        config = LabConfig(name=topology.name, subnet=str(first.ipv4), subnet6=str(first.ipv6),
                           bridge=topology.bridge(first.name), state_dir=state_dir, inventory_path=inventory_path)
        super().__init__(config=config, neighbour_table=neighbour_table)
        self.topology = topology

    # --- helpers ----------------------------------------------------------------------
    def ns(self, node_name):
        return self.topology.namespace(self.topology.nodes[node_name])

    def node_dir(self, node):
        return self.config.state_dir / "hosts" / self.topology.namespace(node)

    def exec(self, node_name, *argv, check=True):
        """Run a command inside a node's namespace; returns its stdout."""
        return run(["ip", "netns", "exec", self.ns(node_name)] + list(argv), check=check)

    def _sysctl(self, ns, values):
        for key, value in values.items():
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "%s=%s" % (key, value)])

    def routed_namespaces(self):
        """This lab's namespaces that exist now."""
        wanted = {self.topology.namespace(node) for node in self.topology.nodes.values()}
        return sorted(line.split()[0] for line in run(["ip", "netns", "list"]).splitlines()
                      if line.strip() and line.split()[0] in wanted)

    # --- up -----------------------------------------------------------------------------
    def up(self, count=None):
        self.preflight()
        self.changes = []
        topo, cfg = self.topology, self.config
        users = self._routed_subnet_users()
        if users:
            raise LabError("a subnet of topology %s is already in use (%s): give this lab other subnets"
                           % (topo.name, ", ".join(users)))
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._ensure_keypair(cfg.key_path, "netcheck-lab-client")
        self._write(cfg.state_dir / "authorized_keys", Path(str(cfg.key_path) + ".pub").read_text(), 0o600)
        for net in topo.networks.values():
            self._ensure_network(net)
        raised = self.neighbour_table.register(cfg.name, cfg.bridge, len(topo.nodes))
        if raised:
            self._changed(raised)
        for node in topo.nodes.values():
            self._ensure_node(node)
        self.reset()
        hosts = topo.hosts()
        for node in hosts:
            self._ensure_sshd_for(node)
            self._ensure_web_for(node)
        wait_for_ports([(str(topo.address(n, n.networks[0])), port) for n in hosts for port in (22, WEB_PORT)])
        self._write(cfg.known_hosts_path, self._routed_known_hosts(hosts), 0o600)
        self._write(cfg.inventory_path, self.inventory_yaml(), 0o600)
        return self.changes

    def _routed_subnet_users(self):
        users = set()
        ours = {self.topology.bridge(n) for n in self.topology.networks}
        prefixes = [p for net in self.topology.networks.values() for p in (net.ipv4, net.ipv6)]
        for link in json.loads(run(["ip", "-j", "addr", "show"]) or "[]"):
            if link.get("ifname") in ours:
                continue
            for addr in link.get("addr_info", []):
                iface = ipaddress.ip_interface("%s/%s" % (addr["local"], addr["prefixlen"]))
                for prefix in prefixes:
                    if iface.version == prefix.version and iface.network.overlaps(prefix) \
                            and iface.network.prefixlen >= prefix.prefixlen:
                        users.add("%s on %s" % (iface, link["ifname"]))
        return sorted(users)

    def _ensure_network(self, net):
        bridge = self.topology.bridge(net.name)
        if not self._link_exists(bridge):
            run(["ip", "link", "add", bridge, "type", "bridge"])
            self._changed("bridge %s" % bridge)
        run(["ip", "link", "set", "dev", bridge, "mtu", str(net.mtu), "up"])
        if net in self.topology.host_networks():
            self._ensure_addresses(bridge, ["%s/%d" % (self.topology.controller(net.name), net.ipv4.prefixlen),
                                            "%s/%d" % (self.topology.controller(net.name, 6), net.ipv6.prefixlen)])

    def _etc_hosts(self):
        topo = self.topology
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for node in topo.nodes.values():
            for net_name in node.networks:
                lines.append("%s\t%s-%s" % (topo.address(node, net_name), node.name, net_name))
                lines.append("%s\t%s-%s-v6" % (topo.address(node, net_name, 6), node.name, net_name))
        return "\n".join(lines) + "\n"

    def _ensure_node(self, node):
        topo = self.topology
        ns = topo.namespace(node)
        self._write(Path("/etc/netns") / ns / "resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self._write(Path("/etc/netns") / ns / "hosts", self._etc_hosts())
        if ns not in run(["ip", "netns", "list"]).split():
            run(["ip", "netns", "add", ns])
            self._changed("namespace %s" % ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for net_name in node.networks:
            net, veth = topo.networks[net_name], topo.veth(node, net_name)
            if not self._link_exists(veth):
                if self._link_exists(net_name, ns):
                    run(["ip", "-n", ns, "link", "del", "dev", net_name])
                run(["ip", "link", "add", veth, "type", "veth", "peer", "name", net_name,
                     "address", topo.mac(node, net_name), "netns", ns])
                self._changed("veth %s <-> %s:%s" % (veth, ns, net_name))
            run(["ip", "link", "set", "dev", veth, "master", topo.bridge(net_name), "up"])
            run(["ip", "-n", ns, "link", "set", "dev", net_name, "up"])
            self._ensure_addresses(net_name, ["%s/%d" % (topo.address(node, net_name), net.ipv4.prefixlen),
                                              "%s/%d" % (topo.address(node, net_name, 6), net.ipv6.prefixlen)], ns)

    def reset(self):
        """Undo every fault: MTUs, sysctls, routes and firewall rules back to the topology's."""
        topo = self.topology
        for node in topo.nodes.values():
            ns = topo.namespace(node)
            for net_name in node.networks:
                mtu = str(topo.networks[net_name].mtu)
                run(["ip", "-n", ns, "link", "set", "dev", net_name, "mtu", mtu])
                run(["ip", "link", "set", "dev", topo.veth(node, net_name), "mtu", mtu])
            self._sysctl(ns, FORWARDING_SYSCTLS if node.forwards else HOST_SYSCTLS)
            for net_name in node.networks:
                if node.forwards:
                    self._sysctl(ns, {"net.ipv4.conf.%s.rp_filter" % net_name: "0"})
                self._sysctl(ns, {"net.ipv6.conf.%s.hop_limit" % net_name: "64"})
            for version in ("-4", "-6"):
                run(["ip", version, "-n", ns, "route", "flush", "proto", "static"], check=False)
                # path MTUs learned under a fault ("fragmentation needed" answers) would outlive it
                run(["ip", version, "-n", ns, "route", "flush", "cache"], check=False)
            for net_name, (via, over) in sorted(topo.routes(node).items()):
                net = topo.networks[net_name]
                run(["ip", "-n", ns, "route", "replace", str(net.ipv4), "via", str(topo.address(via, over)),
                     "dev", over, "proto", "static"])
                run(["ip", "-n", ns, "-6", "route", "replace", str(net.ipv6), "via",
                     str(topo.address(via, over, 6)), "dev", over, "proto", "static"])
            for tool in ("iptables", "ip6tables"):
                run(["ip", "netns", "exec", ns, tool, "-w", "-F"])
                run(["ip", "netns", "exec", ns, tool, "-w", "-t", "nat", "-F"], check=False)
            if node.role == "nat":
                run(["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING",
                     "-o", node.outside, "-j", "MASQUERADE"])
                run(["ip", "netns", "exec", ns, "ip6tables", "-w", "-t", "nat", "-A", "POSTROUTING",
                     "-o", node.outside, "-j", "MASQUERADE"])

    def _ensure_sshd_for(self, node):
        topo, cfg = self.topology, self.config
        ns, hdir = topo.namespace(node), self.node_dir(node)
        hdir.mkdir(parents=True, exist_ok=True)
        self._ensure_keypair(hdir / "ssh_host_ed25519_key", "netcheck-lab-host-%s" % ns)
        addresses = [str(topo.address(node, n, v)) for n in node.networks for v in (4, 6)]
        config_path = hdir / "sshd_config"
        rewritten = self._write(config_path, sshd_config(ns, addresses, hdir, cfg.state_dir / "authorized_keys"),
                                0o600)
        pid = self._pid_alive(hdir / "sshd.pid", str(config_path))
        if pid and not rewritten:
            return
        if pid:
            self._stop_pid(pid)
        run([SSHD, "-t", "-f", str(config_path)])
        run(["ip", "netns", "exec", ns, SSHD, "-f", str(config_path), "-E", str(hdir / "sshd.log")])
        self._changed("sshd in %s" % ns)

    def _ensure_web_for(self, node):
        ns, hdir = self.topology.namespace(node), self.node_dir(node)
        pidfile = hdir / "web.pid"
        script = str(Path(__file__).with_name("webserver.py"))
        if self._pid_alive(pidfile, script):
            return
        with open(hdir / "web.log", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, script, "--bind", "::", "--port", str(WEB_PORT),
                 "--name", ns], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        pidfile.write_text("%d\n" % proc.pid)
        self._changed("web server :%d in %s" % (WEB_PORT, ns))

    def _routed_known_hosts(self, hosts):
        topo, lines = self.topology, []
        for node in hosts:
            key = (self.node_dir(node) / "ssh_host_ed25519_key.pub").read_text().split()
            names = ",".join(str(topo.address(node, n, v)) for n in node.networks for v in (4, 6))
            lines.append("%s %s %s" % (names, key[0], key[1]))
        return "\n".join(lines) + "\n"

    # --- inventory: hosts grouped by subnet -------------------------------------
    def lab_hosts(self):
        topo = self.topology
        return [LabHost(node.index, topo.namespace(node), str(topo.address(node, node.networks[0])),
                        str(topo.address(node, node.networks[0], 6)), topo.namespace(node),
                        topo.mac(node, node.networks[0])) for node in topo.hosts()]

    def inventory(self, hosts=None):
        topo, cfg = self.topology, self.config
        ssh_args = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" % (
            cfg.known_hosts_path)
        groups = {}
        for node in topo.hosts():
            net_name = node.networks[0]
            groups.setdefault("subnet_%s" % net_name, {"hosts": {}})["hosts"][topo.namespace(node)] = {
                "ansible_host": str(topo.address(node, net_name)),
                "lab_ipv6": str(topo.address(node, net_name, 6)),
                "lab_namespace": topo.namespace(node), "lab_subnet": net_name,
                "lab_node": node.name,
            }
        return {"all": {"children": {"lab": {
            "children": groups,
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(cfg.key_path),
                "ansible_ssh_common_args": ssh_args,
                "ansible_python_interpreter": REMOTE_PYTHON,
                "lab_name": cfg.name,
                "lab_topology": "routed",
                "netcheck_icmp_group_targets": [{"group": "lab"}],
                "netcheck_tcp_group_targets": [{"group": "lab", "port": 22, "expect": "^SSH-2\\.0-"},
                                               {"group": "lab", "port": WEB_PORT}],
            },
        }}}}

    def inventory_yaml(self, hosts=None):
        header = "# Written by `python -m lab up --topology`; `python -m lab down --topology` removes it.\n"
        return header + yaml.safe_dump(self.inventory(), default_flow_style=False, sort_keys=False)

    # --- down -------------------------------------------------------------------
    def down(self):
        self.changes = []
        topo = self.topology
        for node in topo.nodes.values():
            ns = topo.namespace(node)
            if ns in self.routed_namespaces():
                for _ in range(3):  # bounded: processes that outlive one round get a second
                    pids = [int(p) for p in run(["ip", "netns", "pids", ns], check=False).split()]
                    pids = [p for p in pids if not self._gone(p)]
                    if not pids:
                        break
                    for pid in pids:
                        self._stop_pid(pid, grace_s=1.0)
                run(["ip", "netns", "del", ns])
                self._changed("removed namespace %s" % ns)
            for net_name in node.networks:
                if self._link_exists(topo.veth(node, net_name)):
                    run(["ip", "link", "del", topo.veth(node, net_name)], check=False)
            pid = self._pid_alive(self.node_dir(node) / "web.pid", "webserver.py")
            if pid:
                self._stop_pid(pid)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        for net_name in topo.networks:
            if self._link_exists(topo.bridge(net_name)):
                run(["ip", "link", "del", topo.bridge(net_name)])
                self._changed("removed bridge %s" % topo.bridge(net_name))
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

    def status(self):
        topo = self.topology
        nodes = []
        for node in topo.nodes.values():
            hdir = self.node_dir(node)
            nodes.append({
                "name": node.name, "namespace": topo.namespace(node), "role": node.role,
                "exists": topo.namespace(node) in self.routed_namespaces(),
                "addresses": {n: [str(topo.address(node, n)), str(topo.address(node, n, 6))] for n in node.networks},
                "routes": {n: "via %s (%s) on %s" % (topo.address(via, over), via.name, over)
                           for n, (via, over) in sorted(topo.routes(node).items())},
                "sshd_pid": self._pid_alive(hdir / "sshd.pid", str(hdir / "sshd_config")),
                "web_pid": self._pid_alive(hdir / "web.pid", "webserver.py"),
            })
        return {"name": topo.name, "topology": "routed",
                "networks": {n.name: {"ipv4": str(n.ipv4), "ipv6": str(n.ipv6), "mtu": n.mtu, "public": n.public,
                                      "bridge": topo.bridge(n.name)} for n in topo.networks.values()},
                "nodes": nodes,
                "inventory": str(self.config.inventory_path) if self.config.inventory_path.exists() else None}

    # --- faults (all undone by reset) ------------------------------------------------
    def fault_missing_route(self, node_name, network):
        """Delete the node's route to a network (an AWS route table without the route)."""
        net = self.topology.networks[network]
        self.exec(node_name, "ip", "route", "del", str(net.ipv4))
        self.exec(node_name, "ip", "-6", "route", "del", str(net.ipv6))

    def fault_forward(self, router, action="drop", protocol="tcp", port=None, source=None, destination=None):
        """A FORWARD rule in a router (a network ACL deny): DROP, or REJECT with admin-prohibited."""
        for tool, icmp_proto, echo, reject in (
                ("iptables", "icmp", ["--icmp-type", "echo-request"], "icmp-admin-prohibited"),
                ("ip6tables", "ipv6-icmp", ["--icmpv6-type", "echo-request"], "icmp6-adm-prohibited")):
            version = 6 if tool == "ip6tables" else 4
            rule = ["-I", "FORWARD"]
            if protocol == "icmp":
                rule += ["-p", icmp_proto] + echo
            elif protocol:
                rule += ["-p", protocol] + (["--dport", str(port)] if port else [])
            for flag, node_name in (("-s", source), ("-d", destination)):
                if node_name:
                    node = self.topology.nodes[node_name]
                    rule += [flag, str(self.topology.address(node, node.networks[0], version))]
            rule += ["-j", "DROP"] if action == "drop" else ["-j", "REJECT", "--reject-with", reject]
            self.exec(router, tool, "-w", *rule)

    def fault_drop_frag_needed(self, router):
        """Drop the ICMP that path-MTU discovery needs (type 3 code 4, ICMPv6 packet-too-big), made or forwarded."""
        for chain in ("OUTPUT", "FORWARD"):
            self.exec(router, "iptables", "-w", "-I", chain, "-p", "icmp", "--icmp-type", "fragmentation-needed",
                      "-j", "DROP")
            self.exec(router, "ip6tables", "-w", "-I", chain, "-p", "ipv6-icmp", "--icmpv6-type", "packet-too-big",
                      "-j", "DROP")

    def fault_mtu(self, node_name, network, mtu):
        """A smaller MTU on one node's link to a network (both ends of its veth)."""
        node = self.topology.nodes[node_name]
        self.exec(node_name, "ip", "link", "set", "dev", network, "mtu", str(mtu))
        run(["ip", "link", "set", "dev", self.topology.veth(node, network), "mtu", str(mtu)])

    def fault_rp_filter(self, router, source):
        """Strict reverse-path filtering on a router that routes ``source``'s address out another
        interface than the one its packets arrive on: the router drops them silently (IPv4 only)."""
        topo = self.topology
        node, src = topo.nodes[router], topo.nodes[source]
        arriving = topo.routes(node).get(src.networks[0])
        arriving_on = arriving[1] if arriving else src.networks[0]
        other = next((n for n in node.networks if n != arriving_on), None)
        if other is None:
            raise LabError("fault_rp_filter: %s has no second interface to route %s by" % (router, source))
        self._sysctl(self.ns(router), {"net.ipv4.conf.all.rp_filter": "1",
                                       "net.ipv4.conf.%s.rp_filter" % arriving_on: "1"})
        self.exec(router, "ip", "route", "replace", "%s/32" % topo.address(src, src.networks[0]), "dev", other,
                  "proto", "static")

    def fault_routing_loop(self, router, back_to, target):
        """``router`` sends ``target``'s packets back to ``back_to``, which sends them to ``router``
        again: a loop until the TTL runs out (two route tables pointing at each other)."""
        topo = self.topology
        node, other, dst = topo.nodes[router], topo.nodes[back_to], topo.nodes[target]
        shared = next(n for n in node.networks if n in other.networks)
        for version, suffix in ((4, "/32"), (6, "/128")):
            self.exec(router, "ip", "-%d" % version, "route", "replace",
                      "%s%s" % (topo.address(dst, dst.networks[0], version), suffix),
                      "via", str(topo.address(other, shared, version)), "dev", shared, "proto", "static")

    def fault_default_ttl(self, node_name, ttl):
        """A host that sends with a TTL / hop limit too small for the path."""
        node = self.topology.nodes[node_name]
        values = {"net.ipv4.ip_default_ttl": str(ttl), "net.ipv6.conf.all.hop_limit": str(ttl),
                  "net.ipv6.conf.default.hop_limit": str(ttl)}
        values.update({"net.ipv6.conf.%s.hop_limit" % n: str(ttl) for n in node.networks})
        self._sysctl(self.ns(node_name), values)


FAULTS = {
    "missing-route": ("fault_missing_route", ["node", "network"]),
    "forward-drop": ("fault_forward", ["router", "protocol", "port"]),
    "forward-reject": ("fault_forward", ["router", "protocol", "port"]),
    "drop-frag-needed": ("fault_drop_frag_needed", ["router"]),
    "mtu": ("fault_mtu", ["node", "network", "mtu"]),
    "rp-filter": ("fault_rp_filter", ["router", "source"]),
    "loop": ("fault_routing_loop", ["router", "back_to", "target"]),
    "ttl": ("fault_default_ttl", ["node", "ttl"]),
}


def apply_fault(lab, kind, args):
    """The CLI's `fault KIND ARGS...`: one of FAULTS with its positional arguments."""
    if kind not in FAULTS:
        raise LabError("fault %r: one of %s" % (kind, ", ".join(sorted(FAULTS))))
    method, names = FAULTS[kind]
    if len(args) != len(names):
        raise LabError("fault %s takes %s" % (kind, " ".join(n.upper() for n in names)))
    values = dict(zip(names, args))
    if kind.startswith("forward-"):
        values["action"] = kind.split("-")[1]
        values["port"] = int(values["port"]) if values["port"] not in ("-", "") else None
    for key in ("mtu", "ttl"):
        if key in values:
            values[key] = int(values[key])
    for key in ("node", "router", "source", "back_to", "target"):
        if key in values and values[key] not in lab.topology.nodes:
            raise LabError("fault %s: no node %r" % (kind, values[key]))
    positional = [values.pop(n) for n in names if n in ("node", "router")]
    getattr(lab, method)(*positional, **values)


DEFAULT_TOPOLOGY = REPO / "lab" / "topologies" / "routed.yml"

__all__ = ["DEFAULT_TOPOLOGY", "FAULTS", "Network", "Node", "RoutedLab", "Topology", "apply_fault"]
