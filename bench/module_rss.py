"""Peak memory of one port_check module run with many loopback targets (issue 15: under 64 MiB).

Run: .venv/bin/python bench/module_rss.py [--targets 10000] [--reps 2] [--inventory inventory/<lab>.yml]

In-process: a child Python runs the module's main() as AnsiballZ would (the arguments as JSON
bytes, the answer on stdout, here into a file) against 127.0.0.1 ports 20000-24999, and reports
its peak RSS (VmHWM), CPU seconds and the threads it started. Nothing is patched in
ansible-core: the module prints its answer with exit_json as on a host.

With --inventory (a lab from `python -m lab up 1`): the same task over SSH through
`bench/rss_python`, which adds the module process's peak RSS to the answer; the targets are
127.0.0.1 of the lab host, its own loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIRST_PORT, PORTS = 20000, 5000  # nothing listens there on a lab host

CHILD = textwrap.dedent("""
    import json, os, sys, threading
    sys.path[:0] = [{tests!r}]
    from ansible.module_utils import basic
    from collection_loader import load_module

    def peak_kib():
        # VmHWM, the peak of this process's own memory: ru_maxrss would also count the parent's
        # resident set at the fork (Linux keeps the high-water mark across exec)
        with open("/proc/self/status") as status:
            return int([line for line in status if line.startswith("VmHWM:")][0].split()[1])

    started = []
    start_thread = threading.Thread.start

    def counted_start(self):
        started.append(self.name)
        start_thread(self)

    def rss_kib():
        with open("/proc/self/status") as status:
            return int([line for line in status if line.startswith("VmRSS:")][0].split()[1])

    threading.Thread.start = counted_start  # counts the probe's threads; changes nothing else
    module = load_module("port_check")
    phases = {{"loaded_kib": rss_kib()}}
    probe = module.check_targets

    def observed_probe(*args, **kwargs):  # the resident set before and after the probe; nothing changed
        phases["params_kib"] = rss_kib()
        results = probe(*args, **kwargs)
        phases["probed_kib"] = rss_kib()
        return results

    module.check_targets = observed_probe
    # what AnsiballZ hands the module: the arguments as JSON bytes, nothing else kept
    # (patch_module_args would keep the 10,000 dicts alive through the run)
    basic._ANSIBLE_ARGS = json.dumps({{"ANSIBLE_MODULE_ARGS": {{"targets": [
        {{"host": "127.0.0.1", "port": {first} + i % {ports}}} for i in range({count})]}}}}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    before = os.times()
    try:
        module.main()
    except SystemExit:
        pass
    sys.stdout.flush()
    after = os.times()
    sys.stderr.write(json.dumps({{"peak_kib": peak_kib(), "phases": phases,
                                  "cpu_s": after.user + after.system - before.user - before.system,
                                  "threads_started": len(started)}}))
""")

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - netcheck.netcheck.port_check:
        targets: "{{ bench_targets }}"
      register: checked
      ignore_errors: true
    - ansible.builtin.copy:
        content: "{{ {'peak_kib': checked.bench_maxrss_kib, 'results': checked.results | length,
                      'states': checked.summary.states} | to_json }}"
        dest: "{{ bench_answer }}"
      delegate_to: localhost
"""


def in_process(count, first_port=FIRST_PORT, ports=PORTS):
    """One port_check main() in a child Python on ``count`` targets (127.0.0.1, ports first_port
    onwards, ``ports`` of them in turn): its peak RSS, CPU, threads started and what it answered."""
    with tempfile.TemporaryFile() as answer:
        proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(REPO / "tests"), first=first_port,
                                                                  ports=ports, count=count)],
                              stdout=answer, stderr=subprocess.PIPE, text=True, timeout=300, cwd=str(REPO), check=False)
        facts = json.loads(proc.stderr.strip().splitlines()[-1])
        answer.seek(0)
        text = answer.read()
        result = json.loads(text)
    phases = {name[:-4] + "_mib": round(kib / 1024.0, 1) for name, kib in facts["phases"].items()}
    return {"peak_mib": round(facts["peak_kib"] / 1024.0, 1), "cpu_s": round(facts["cpu_s"], 2),
            "rss": phases, "answer_mib": round(len(text) / 1048576.0, 1),
            "threads_started": facts["threads_started"],
            "results": len(result["results"]), "states": result["summary"]["states"],
            # ansible-core 2.21 leaves the invocation out of a module's answer; 2.19 echoes every target
            "module_args_targets": len(result["invocation"]["module_args"]["targets"]) if "invocation" in result
            else None}


def over_ssh(count, inventory):
    with tempfile.TemporaryDirectory(prefix="module_rss") as work:
        work = Path(work)
        (work / "play.yml").write_text(PLAYBOOK)
        targets = [{"host": "127.0.0.1", "port": FIRST_PORT + i % PORTS} for i in range(count)]
        (work / "vars.json").write_text(json.dumps({"bench_targets": targets,
                                                    "bench_answer": str(work / "answer.json")}))
        argv = [str(BIN / "ansible-playbook"), "-i", inventory, str(work / "play.yml"),
                "-e", "@%s" % (work / "vars.json"),
                "-e", "ansible_python_interpreter=%s" % (REPO / "bench" / "rss_python")]
        proc = subprocess.run(argv, cwd=str(REPO), capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal"), check=False)
        if proc.returncode != 0 or not (work / "answer.json").exists():
            raise SystemExit("ansible-playbook failed (%d): %s" % (proc.returncode, proc.stderr[-2000:]))
        facts = json.loads((work / "answer.json").read_text())
    return {"peak_mib": round(facts["peak_kib"] / 1024.0, 1), "results": facts["results"], "states": facts["states"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--inventory", help="a one-host lab inventory: also measure over SSH")
    args = parser.parse_args()
    for rep in range(args.reps):
        facts = in_process(args.targets)
        print("in-process %d targets: %s" % (args.targets, json.dumps(facts)))
        rss = facts["rss"]
        print("  where it goes: %.1f MiB loaded (Python, ansible-core, the module); +%.1f the parsed input; "
              "+%.1f the results; +%.1f exit_json (its copy of the answer by remove_values, the %.1f MiB JSON "
              "text made and then printed as a second string)"
              % (rss["loaded_mib"], rss["params_mib"] - rss["loaded_mib"], rss["probed_mib"] - rss["params_mib"],
                 facts["peak_mib"] - rss["probed_mib"], facts["answer_mib"]))
        if args.inventory:
            print("over SSH   %d targets: %s" % (args.targets, json.dumps(over_ssh(args.targets, args.inventory))))


if __name__ == "__main__":
    main()
