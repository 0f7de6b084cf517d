"""python -m lab up N | down | status | inventory  (run as root).

With ``--topology FILE`` (lab/topologies/routed.yml) the lab is routed: subnets, routers, a NAT
gateway (lab/routed.py); ``reset`` and ``fault KIND ARGS`` work on that lab only.
"""

import argparse
import json
import sys

from .lab import Lab, LabConfig, LabError
from .routed import FAULTS, RoutedLab, Topology, apply_fault


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description="The netcheck namespace lab.")
    parser.add_argument("--name", help="lab name, prefix of its namespaces (default nclab, env NETCHECK_LAB_NAME)")
    parser.add_argument("--subnet", help="IPv4 subnet (default 10.77.0.0/24, env NETCHECK_LAB_SUBNET)")
    parser.add_argument("--subnet6", help="IPv6 subnet (default fd6e:6574:6368::/64, env NETCHECK_LAB_SUBNET6)")
    parser.add_argument("--bridge", help="bridge name (default <name>-br, env NETCHECK_LAB_BRIDGE)")
    parser.add_argument("--inventory", dest="inventory_path",
                        help="where up writes the inventory (default inventory/<name>.yml)")
    parser.add_argument("--topology", help="a routed topology file (lab/topologies/routed.yml); without it, "
                                           "the flat lab of N hosts on one bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="make exactly N hosts (idempotent)")
    up.add_argument("count", type=int, nargs="?", default=3)
    sub.add_parser("down", help="remove everything the lab made")
    sub.add_parser("status", help="print the lab's hosts and processes as JSON")
    sub.add_parser("inventory", help="print the inventory file's path and content")
    sub.add_parser("reset", help="routed lab: undo every fault (routes, MTUs, sysctls, firewall rules)")
    fault = sub.add_parser("fault", help="routed lab: make a fault (%s)" % ", ".join(sorted(FAULTS)))
    fault.add_argument("kind", choices=sorted(FAULTS))
    fault.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.topology:
            return routed(args)
        if args.command in ("reset", "fault"):
            raise LabError("%s needs --topology FILE (a routed lab)" % args.command)
        lab = Lab(LabConfig.from_env(name=args.name, subnet=args.subnet, subnet6=args.subnet6,
                                     bridge=args.bridge, inventory_path=args.inventory_path))
        if args.command == "up":
            changes = lab.up(args.count)
            print("lab %s: %d hosts up, %s" % (lab.config.name, args.count,
                                               "%d changes" % len(changes) if changes else "unchanged"))
            for change in changes:
                print("  changed: %s" % change)
            print("inventory: %s" % lab.config.inventory_path)
        elif args.command == "down":
            changes = lab.down()
            print("lab %s: down, %s" % (lab.config.name, "%d changes" % len(changes) if changes else "unchanged"))
            for change in changes:
                print("  changed: %s" % change)
        elif args.command == "status":
            print(json.dumps(lab.status(), indent=2))
        elif args.command == "inventory":
            path = lab.config.inventory_path
            if not path.exists():
                raise LabError("no inventory at %s: run `python -m lab up N` first" % path)
            print("# %s" % path)
            print(path.read_text(), end="")
    except LabError as exc:
        print("lab: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


def routed(args):
    lab = RoutedLab(Topology.load(args.topology, name=args.name), inventory_path=args.inventory_path)
    if args.command == "up":
        changes = lab.up()
        print("lab %s: routed, %d nodes up, %s" % (lab.topology.name, len(lab.topology.nodes),
                                                   "%d changes" % len(changes) if changes else "unchanged"))
        print("inventory: %s" % lab.config.inventory_path)
    elif args.command == "down":
        changes = lab.down()
        print("lab %s: down, %s" % (lab.topology.name, "%d changes" % len(changes) if changes else "unchanged"))
    elif args.command == "status":
        print(json.dumps(lab.status(), indent=2))
    elif args.command == "inventory":
        if not lab.config.inventory_path.exists():
            raise LabError("no inventory at %s: run `python -m lab --topology %s up` first"
                           % (lab.config.inventory_path, args.topology))
        print("# %s" % lab.config.inventory_path)
        print(lab.config.inventory_path.read_text(), end="")
    elif args.command == "reset":
        lab.reset()
        print("lab %s: every fault undone" % lab.topology.name)
    elif args.command == "fault":
        apply_fault(lab, args.kind, args.args)
        print("lab %s: fault %s %s made" % (lab.topology.name, args.kind, " ".join(args.args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
