"""Regenerate docs/reliability.md from a real run of the fault suite and the module fuzz.

    sudo .venv/bin/python scripts/reliability_table.py            # runs both, rewrites the page
    .venv/bin/python scripts/reliability_table.py --faults F --fuzz Z   # from rows already recorded

It runs tests/integration/test_faults.py (needs root: it builds its own namespace lab; set
NETCHECK_TEST_LAB_SLOT to choose its subnet) and tests/unit/test_module_fuzz.py with
NETCHECK_FAULT_TABLE / NETCHECK_FUZZ_TABLE pointing at files where each test writes one JSON
row per fault and per fuzz case, then renders the tables. Every figure on the page comes from
that one run; the page says when and with what.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "reliability.md"
FUZZ_OUTCOMES = ("ran, every target as expected", "ran, some target missed its expectation",
                 "refused, naming the field")

INTRO = """# Reliability: faults and bad input

What the probes answer when the network or a server misbehaves, and what the modules do with
any input. **Generated** by `scripts/reliability_table.py` from one run of
`tests/integration/test_faults.py` (every fault made for real in the namespace lab: iptables rules
in the target host, misbehaving servers bound to its address) and `tests/unit/test_module_fuzz.py`
(hypothesis through each module's real `main()`); do not edit by hand, run the script.
Both test modules assert what these tables show, so a regression fails the suite before it
reaches this page.
"""

RULES = """
## Rules behind the verdicts

- Every verdict comes within its timeout plus a small margin (the fault suite asserts 0.6 s):
  a TCP target's handshake and its `send`/`expect` conversation each get one `timeout`; an HTTP
  request's phases share one deadline (every read is bounded by what is left of it); a run of
  `icmp_ping` lasts at most `(count - 1) * interval + timeout`. Confirming silent ports of a host
  that rate-limits its ICMP errors adds at most `confirm_budget` (default 10 s) plus one re-probe.
- Queued work is not lost to a global deadline: port_check starts every target at once in one
  non-blocking engine (up to `max_workers` sockets), and the thread pools of the other probes
  allow one bound per round of work.
- A user regex (`expect`, `body_regex`, `expect_headers`) is searched in a separate process that
  is killed at the deadline: a backtracking pattern ends the check, it does not hang the play.
- An ICMP reject is reported as such (`rejected`, with type, code and sender), never as an RST or
  a missing route; a silent port is never `rejected` on a neighbour's word: a host that
  rate-limits its ICMP errors gets paced re-probes of its silent ports, and a port is `rejected`
  only when its own ICMP error comes (`detail.outcome`). See [port_check](port_check.md#confirmation).
- Input that ansible-core's own validation would crash on (a number where a mapping is expected,
  an infinite port) fails naming the field; no module prints a traceback for any input the fuzz
  generated.
"""


def run_suites(slot):
    tmp = Path(tempfile.mkdtemp(prefix="netcheck-reliability-"))
    faults, fuzz = tmp / "faults.jsonl", tmp / "fuzz.jsonl"
    env = dict(os.environ, NETCHECK_FAULT_TABLE=str(faults), NETCHECK_FUZZ_TABLE=str(fuzz))
    if slot:
        env["NETCHECK_TEST_LAB_SLOT"] = str(slot)
    python = sys.executable
    for suite in ("tests/integration/test_faults.py", "tests/unit/test_module_fuzz.py"):
        proc = subprocess.run([python, "-m", "pytest", suite, "-q", "-p", "no:cacheprovider"], cwd=REPO, env=env,
                              timeout=1800, check=False)
        if proc.returncode != 0:
            raise SystemExit("%s failed: the tables would not be true (rows kept in %s)" % (suite, tmp))
    return faults, fuzz


def read_rows(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _cell(text):
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def fault_table(rows):
    lines = ["| fault (made for real) | probe | state | evidence | time to verdict | timeout |",
             "|---|---|---|---|---:|---:|"]
    for row in rows:
        detail = row.get("detail") or {}
        evidence = row["error"] or ""
        if detail.get("phase") and evidence.startswith(detail["phase"] + ": "):
            evidence = "phase `%s`: %s" % (detail["phase"], evidence[len(detail["phase"]) + 2:])
        if detail.get("icmp_type") is not None:
            evidence += " (ICMP type %s code %s)" % (detail["icmp_type"], detail["icmp_code"])
        if row["probe"] == "icmp_ping" and row["state"] != "dns_error":
            evidence = "loss %s%% (%s of %s echoes answered)%s" % (
                detail.get("loss_pct"), detail.get("received"), detail.get("sent"),
                ("; " + row["error"]) if row["error"] else "")
        total = row.get("total_ms")
        lines.append("| %s | %s | `%s` | %s | %s | %g s |" % (
            _cell(row["fault"]), row["probe"], row["state"], _cell(evidence),
            "%.0f ms" % total if total is not None else "-", row["timeout_s"]))
    return "\n".join(lines)


def fuzz_table(rows):
    counts = collections.OrderedDict()
    for row in rows:
        counts.setdefault(row["module"], collections.Counter())[row["outcome"]] += 1
    lines = ["| module | cases | " + " | ".join(FUZZ_OUTCOMES) + " | tracebacks |",
             "|---|---:|" + "---:|" * (len(FUZZ_OUTCOMES) + 1)]
    for module, counter in counts.items():
        lines.append("| `%s` | %d | %s | 0 |" % (module, sum(counter.values()),
                                                 " | ".join(str(counter[o]) for o in FUZZ_OUTCOMES)))
    return "\n".join(lines)


def render(fault_rows, fuzz_rows, when):
    return "\n".join([
        INTRO,
        "Last generated: %s, Python %s, %s." % (when, platform.python_version(), platform.platform(terse=True)),
        "",
        "## Faults",
        "",
        fault_table(fault_rows),
        "",
        "## Bad input (fuzz through `main()`)",
        "",
        "Targets are loopback literals or junk only and name resolution is switched off, so no case",
        "reaches anything but 127.0.0.1 and ::1. A case passes when the module ends with `exit_json`",
        "or `fail_json` and a refusal names the offending option; a traceback fails the suite (the",
        "column is 0 because the run passed).",
        "",
        fuzz_table(fuzz_rows),
        RULES,
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", help="fault rows already recorded (JSON lines); else the suite runs")
    parser.add_argument("--fuzz", help="fuzz rows already recorded (JSON lines); else the fuzz runs")
    parser.add_argument("--slot", type=int, help="the test lab's slot (NETCHECK_TEST_LAB_SLOT)")
    parser.add_argument("--output", default=str(PAGE))
    args = parser.parse_args()
    if args.faults and args.fuzz:
        faults, fuzz = args.faults, args.fuzz
    else:
        faults, fuzz = run_suites(args.slot)
    page = render(read_rows(faults), read_rows(fuzz), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    Path(args.output).write_text(page)
    print("wrote %s" % args.output)


if __name__ == "__main__":
    main()
