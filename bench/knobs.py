"""Where the time goes: check.yml, the floor and per-task cost under one Ansible setting changed at a time.

Run (as root): .venv/bin/python bench/knobs.py [--hosts 8] [--reps 3] [--only baseline,strategy-free]
                 [--mitogen DIR]   (DIR: where `pip install --target DIR mitogen` put it)

On one lab of --hosts hosts, each experiment overrides one setting (environment variables,
the same for every way) of the repository's ansible.cfg and times --reps cold runs (in rounds:
every experiment once per round, so load drifts touch them alike) of: check.yml over the full mesh
(as bench/mesh.py), the floor (`-m ping`) and bench/ten_tasks.yml
(ten ping tasks: per-task cost = (ten - floor) / 9). The baseline also times fact gathering
(`-m setup`) and measures the module payloads Ansible ships (AnsiballZ files kept with
pipelining off). Writes bench/results/<date>-knobs.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import mesh  # noqa: E402

EXPERIMENTS = {
    "baseline": {},
    "pipelining-off": {"ANSIBLE_PIPELINING": "False"},
    "ssh-multiplexing-off": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ServerAliveInterval=15"},
    "forks-5": {"ANSIBLE_FORKS": "5"},
    "strategy-free": {"ANSIBLE_STRATEGY": "free"},
    "poll-0.05": {"ANSIBLE_INTERNAL_POLL_INTERVAL": "0.05"},
    "poll-0.01": {"ANSIBLE_INTERNAL_POLL_INTERVAL": "0.01"},
    "mitogen-linear": {"ANSIBLE_STRATEGY": "mitogen_linear"},
}
# the settings that change what one more task costs (the others are timed on check.yml and the floor only)
PER_TASK = ("baseline", "pipelining-off", "mitogen-linear")
PAYLOAD_MODULES = ["netcheck.netcheck.icmp_ping", "netcheck.netcheck.port_check", "netcheck.netcheck.http_check",
                   "ansible.builtin.command", "ansible.builtin.wait_for", "ansible.builtin.uri", "ansible.builtin.ping"]


def median_of(runs):
    return round(statistics.median(runs), 3)


def plan(lab, name, env, workdir, extras):
    """The runs of one experiment: {way: argv}, all under that experiment's settings."""
    runner = mesh.Runner(lab.config.inventory_path, env, workdir)
    extra_vars = Path(workdir) / "mesh_vars.json"
    extra_vars.write_text(json.dumps(mesh.check_yml_mesh_vars(lab.config.web_port)))
    ways = {
        "ours": runner.argv("ours", extra_vars, lab.config.web_port),
        "floor": runner.argv("floor", extra_vars, lab.config.web_port),
    }
    if extras and name in PER_TASK:
        ways["ten_tasks"] = [str(mesh.BIN / "ansible-playbook"), "-i", runner.inventory, str(BENCH / "ten_tasks.yml")]
    if extras and name == "baseline":
        ways["setup"] = [str(mesh.BIN / "ansible"), "all", "-i", runner.inventory, "-m", "ansible.builtin.setup"]
    return runner, ways


def summary(name, env, sample, count):
    if "failed" in sample:
        return {"experiment": name, "env": env, "failed": sample["failed"]}
    walls, cpus = sample["walls"], sample["cpus"]
    row = {"experiment": name, "env": env, "load": sample["load"]}
    for way in walls:
        row[way] = {"runs_s": [round(w, 3) for w in walls[way]], "median_s": median_of(walls[way]),
                    "min_s": round(min(walls[way]), 3), "cpu_s_per_host": round(statistics.median(cpus[way]) / count, 3)}
    # what the controller holds per checked pair (the mesh has count * count pairs, 3 layers each)
    row["result_bytes_per_pair"] = round(len(json.dumps(sample["ours_document"])) / float(count * count), 1)
    if "ten_tasks" in walls:
        row["per_task_s"] = round((row["ten_tasks"]["median_s"] - row["floor"]["median_s"]) / 9, 3)
    if "setup" in walls:
        row["facts_s_over_floor"] = round(row["setup"]["median_s"] - row["floor"]["median_s"], 3)
    return row


def run_round(runner, ways, sample):
    """One repetition of every way of one experiment; a setting that breaks the run is a result too."""
    try:
        for way, argv in ways.items():
            wall, cpu, document = runner.run(argv)
            sample["walls"].setdefault(way, []).append(wall)
            sample["cpus"].setdefault(way, []).append(cpu)
            if way == "ours":
                sample["ours_document"] = document
    except SystemExit as failure:
        sample["failed"] = str(failure)[:4000]
    sample["load"] = [round(x, 2) for x in os.getloadavg()]


def payload_sizes(lab, workdir):
    """Bytes of the AnsiballZ file Ansible builds for each module (kept on a lab host, pipelining off)."""
    remote_tmp = Path(tempfile.mkdtemp(prefix="remote", dir=workdir))
    env = {"ANSIBLE_PIPELINING": "False", "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote_tmp)}
    runner = mesh.Runner(lab.config.inventory_path, env, workdir)
    host = lab.hosts()[0]
    args = {"netcheck.netcheck.icmp_ping": {"targets": [host.ip], "count": 1},
            "netcheck.netcheck.port_check": {"targets": [{"host": host.ip, "port": 22}]},
            "netcheck.netcheck.http_check": {"urls": ["http://%s:%d/" % (host.ip, lab.config.web_port)]},
            "ansible.builtin.command": {"argv": ["true"]},
            "ansible.builtin.wait_for": {"host": host.ip, "port": 22, "timeout": 3},
            "ansible.builtin.uri": {"url": "http://%s:%d/" % (host.ip, lab.config.web_port), "method": "HEAD"},
            "ansible.builtin.ping": {}}
    sizes = {}
    for module in PAYLOAD_MODULES:
        before = set(remote_tmp.rglob("AnsiballZ_*.py"))
        try:
            runner.run([str(mesh.BIN / "ansible"), host.name, "-i", runner.inventory, "-m", module,
                        "-a", json.dumps(args[module])])
        except SystemExit as failure:  # the payload was shipped even when the module failed
            print("  payload of %s: the run failed: %s" % (module, str(failure)[:300]))
        new = sorted(set(remote_tmp.rglob("AnsiballZ_*.py")) - before)
        sizes[module] = new[-1].stat().st_size if new else None
    shutil.rmtree(remote_tmp, ignore_errors=True)
    return sizes


def write(out, args, rows, sizes):
    report = {"meta": {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hosts": args.hosts,
                       "reps": args.reps, "cpus": os.cpu_count(), "ansible_core": mesh.ansible_core_version()},
              "experiments": rows, "payload_bytes": sizes}
    out.write_text(json.dumps(report, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-extras", dest="extras", action="store_false",
                        help="skip the ten-task, fact-gathering and payload measurements")
    parser.add_argument("--only", help="comma-separated experiments (default all): " + ", ".join(EXPERIMENTS))
    parser.add_argument("--mitogen", help="directory holding ansible_mitogen (pip install --target DIR mitogen)")
    parser.add_argument("--out", help="result JSON (default bench/results/<date>-knobs.json)")
    parser.add_argument("--lab-name", default=os.environ.get("NETCHECK_BENCH_LAB_NAME", "ncbench"))
    parser.add_argument("--subnet", default=os.environ.get("NETCHECK_BENCH_LAB_SUBNET", "10.77.99.0/24"))
    parser.add_argument("--subnet6", default=os.environ.get("NETCHECK_BENCH_LAB_SUBNET6", "fd6e:6574:6368:63::/64"))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(EXPERIMENTS)
    if not args.mitogen and "mitogen-linear" in names:
        names.remove("mitogen-linear")
        print("mitogen-linear skipped: --mitogen DIR not given")
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root")
    lab = mesh.Lab(mesh.LabConfig(name=args.lab_name, subnet=args.subnet, subnet6=args.subnet6))
    rows, sizes = [], None
    out = Path(args.out or BENCH / "results" / ("%s-knobs.json" % time.strftime("%Y-%m-%d", time.gmtime())))
    try:
        lab.up(args.hosts)
        with tempfile.TemporaryDirectory(prefix="ncknobs") as workdir:
            plans, samples = {}, {}
            for name in names:
                env = dict(EXPERIMENTS[name])
                if name.startswith("mitogen"):
                    env["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(args.mitogen) / "ansible_mitogen" / "plugins" / "strategy")
                plans[name] = (env,) + plan(lab, name, env, workdir, args.extras)
                samples[name] = {"walls": {}, "cpus": {}}
            # rounds outside, experiments inside: the machine's load drifts over every experiment alike
            for rep in range(args.reps):
                for name in names:
                    if "failed" not in samples[name]:
                        run_round(plans[name][1], plans[name][2], samples[name])
                        print("  round %d %-22s %s" % (rep + 1, name, samples[name].get("failed", "")[:300]
                                                       or "check.yml %.2f s" % samples[name]["walls"]["ours"][-1]),
                              flush=True)
                rows = [summary(name, plans[name][0], samples[name], args.hosts) for name in names]
                write(out, args, rows, None)  # an interrupted run keeps the rounds done
            if "baseline" in names:
                sizes = payload_sizes(lab, workdir)
    finally:
        lab.down()
    write(out, args, rows, sizes)
    base = next((r for r in rows if r["experiment"] == "baseline"), None)
    print("experiment | check.yml s | vs baseline | CPU s/host | floor s | per task s | load")
    for row in rows:
        if "failed" in row:
            print("%s | failed | - | - | - | - | -" % row["experiment"])
            continue
        change = "%+.0f%%" % (100.0 * (row["ours"]["median_s"] / base["ours"]["median_s"] - 1)) if base else "-"
        print("%s | %.2f | %s | %.2f | %.2f | %s | %.1f" % (row["experiment"], row["ours"]["median_s"], change,
                                                            row["ours"]["cpu_s_per_host"], row["floor"]["median_s"],
                                                            row.get("per_task_s", "-"), row["load"][0]))
    if base and "facts_s_over_floor" in base:
        print("fact gathering (-m setup) over the floor: %.2f s for %d hosts" % (base["facts_s_over_floor"], args.hosts))
    if sizes:
        print("module payloads (AnsiballZ bytes): %s" % ", ".join("%s %s" % (m.split(".")[-1], s) for m, s in sizes.items()))
    print("results: %s" % out)


if __name__ == "__main__":
    sys.exit(main())
