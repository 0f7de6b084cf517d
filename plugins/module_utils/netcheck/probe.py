# -*- coding: utf-8 -*-
"""The shared result shape, input validation and concurrency helper of every probe.

Plain standard-library Python: this file is shipped to the remote host by
Ansible and must import nothing but the stdlib, so that it also runs (and is
unit-tested) without Ansible.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time

# Every probe reports one of these shapes per target.
RESULT_KEYS = ("target", "kind", "state", "ok", "timings", "error", "detail")

DEFAULT_MAX_WORKERS = 256


class InputError(ValueError):
    """Bad input, found before anything is sent. The message names the field."""


def probe_result(target, kind, state, ok=False, timings=None, error=None, detail=None):
    """Build the one result shape that every probe returns.

    target  -- what was probed, as the user would write it (``host:port``, a URL...)
    kind    -- the probe (``tcp``, ``icmp``, ``http``...)
    state   -- the verdict of that probe (``open``, ``closed``, ``filtered``...)
    ok      -- whether the verdict meets the user's expectation
    timings -- phase name -> milliseconds (floats, rounded to 0.001)
    error   -- human-readable reason when something went wrong, else None
    detail  -- probe-specific facts (errno, banner, address...)
    """
    return {
        "target": target,
        "kind": kind,
        "state": state,
        "ok": bool(ok),
        "timings": {name: round(value, 3) for name, value in (timings or {}).items()},
        "error": error,
        "detail": dict(detail or {}),
    }


def summarize(results):
    """Counts over a list of results: total, ok, failed, and how many per state."""
    states = {}
    for result in results:
        states[result["state"]] = states.get(result["state"], 0) + 1
    passed = sum(1 for result in results if result["ok"])
    return {"total": len(results), "ok": passed, "failed": len(results) - passed, "states": states}


def failure_message(results, summary, shown=10):
    """The task's message when targets missed their expectation: how many, and the first few why."""
    missed = [r for r in results if not r["ok"]]
    lines = ["%s: %s" % (r["target"], r["error"] or r["state"]) for r in missed[:shown]]
    if len(missed) > shown:
        lines.append("... and %d more" % (len(missed) - shown))
    return "%d of %d targets missed their expectation: %s" % (summary["failed"], summary["total"], "; ".join(lines))


def outcome(results, start, **extra):
    """What a probing module returns: every result, their summary, the wall time; never a change.

    ``results`` may be empty (input rejected before anything was sent); ``start`` is the
    module's time.monotonic() at its beginning.
    """
    facts = dict(results=results, summary=summarize(results), changed=False,
                 elapsed_ms=round(ms_since(start), 3))
    facts.update(extra)
    return facts


def read_text(path):
    """The text of a file (a /proc or /sys entry), or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def ms_since(start):
    """Milliseconds elapsed since ``start`` (a time.monotonic() value)."""
    return (time.monotonic() - start) * 1000.0


# --- validation -----------------------------------------------------------

# RFC 1123 host name: dot-separated labels of letters, digits and hyphens
# (underscores are tolerated because real DNS zones contain them).
# \Z, not $: "$" also matches before a trailing newline
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")


def format_hostport(host, port):
    """``host:port``, with IPv6 literals in brackets as URLs and ssh write them."""
    if ":" in host:
        return "[%s]:%s" % (host, port)
    return "%s:%s" % (host, port)


def validate_host(value, field):
    """Return the host (IP literal or DNS name) or raise InputError naming ``field``.

    Accepts IPv4, IPv6 (optionally in brackets, optionally with a %scope) and
    RFC 1123 host names. Rejects everything else, notably whitespace and shell
    metacharacters, so that no user string can become anything but a host.
    """
    if not isinstance(value, str) or not value.strip():
        raise InputError("%s: a host is required (got %r)" % (field, value))
    host = value
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    address, _, scope = host.partition("%")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        if scope and not _SCOPE.match(scope):
            raise InputError("%s: %r has a bad IPv6 scope" % (field, value))
        return host
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise InputError("%s: %r is not a host name or IP address" % (field, value))
    if all(label.isdigit() for label in name.split(".")):
        # "300.1.1.1" or "1234": digits only but not a valid IPv4 address
        raise InputError("%s: %r is not a valid IPv4 address" % (field, value))
    return host


def reject_unknown_keys(value, known, path):
    """``value`` (a mapping a user wrote) or InputError naming the first unknown key's path and
    listing the known keys (``targets[0].expected_sate: unknown key; known: host, port, ...``)."""
    known = list(known)
    for key in value:
        if key not in known:
            raise InputError("%s.%s: unknown key; known: %s" % (path, key, ", ".join(known)))
    return value


def target_mappings(raw_targets, field, known, shorthand=None, expected="a mapping", what="target"):
    """Yield ``(path, mapping)`` for every target a user wrote, checked the same way in every probe:
    a non-empty list; a bare string stands for ``{shorthand: string}`` where a probe allows it;
    anything else than a mapping, or an unknown key, raises InputError naming the path."""
    if not isinstance(raw_targets, (list, tuple)) or not raw_targets:
        raise InputError("%s: give at least one %s" % (field, what))
    for index, raw in enumerate(raw_targets):
        where = "%s[%d]" % (field, index)
        if shorthand and isinstance(raw, str):
            raw = {shorthand: raw}
        if not isinstance(raw, dict):
            raise InputError("%s: expected %s, got %r" % (where, expected, raw))
        yield where, reject_unknown_keys(raw, known, where)


def validate_port(value, field):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("%s: %r is not a port number" % (field, value))
    if not 1 <= value <= 65535:
        raise InputError("%s: %s is not a port (1-65535)" % (field, value))
    return value


def validate_timeout(value, field, maximum=3600.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError("%s: %r is not a number of seconds" % (field, value))
    if not math.isfinite(value) or value <= 0:
        raise InputError("%s: %s must be greater than 0 seconds" % (field, value))
    if value > maximum:
        raise InputError("%s: %s is more than the %g s allowed" % (field, value, maximum))
    return float(value)


def validate_regex(value, field):
    try:
        return re.compile(value)
    except (re.error, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InputError("%s: %r is not a valid regular expression (%s)" % (field, value, exc))


# --- the module's own input shape -------------------------------------------

def shape_error(argument_spec, params, prefix=""):
    """The first option whose value has a shape that ansible-core cannot validate, named with its
    path (``targets[1]: expected a mapping, got int``), or None. Values are never echoed: they
    may be secrets.

    ansible-core 2.19 raises a bare TypeError (a traceback, no field named) when an option with
    sub-options gets a number, a boolean or a list of them instead of a mapping, an OverflowError
    when an int option gets an infinite float, and names no field for a string it cannot read as
    a mapping.
    """
    for name, spec in argument_spec.items():
        value = (params or {}).get(name)
        field = prefix + name
        if isinstance(value, float) and not math.isfinite(value) and spec.get("type") in ("int", "float"):
            return "%s: not a finite number" % field
        if spec.get("type") == "list" and spec.get("elements") in ("int", "float") and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, float) and not math.isfinite(item):
                    return "%s[%d]: not a finite number" % (field, index)
        if value is None or not spec.get("options"):
            continue
        if spec.get("type") == "list":
            if not isinstance(value, list):
                return "%s: expected a list of mappings, got %s" % (field, type(value).__name__)
            items = [("%s[%d]" % (field, index), item) for index, item in enumerate(value)]
        else:
            items = [(field, value)]
        for where, item in items:
            if isinstance(item, str) and (item.lstrip().startswith("{") or "=" in item):
                continue  # Ansible reads JSON or key=value text as a mapping
            if not isinstance(item, dict):
                return "%s: expected a mapping, got %s" % (where, type(item).__name__)
            inner = shape_error(spec["options"], item, where + ".")
            if inner:
                return inner
    return None


# --- concurrency ----------------------------------------------------------

def run_concurrently(probe, items, on_unfinished, deadline_s, max_workers=DEFAULT_MAX_WORKERS):
    """Run ``probe(item)`` for every item at once and return the results in item order.

    At most ``max_workers`` probes run at the same time. Each probe is expected to
    bound itself with its own timeout, and ``deadline_s`` is the longest one probe may
    take: items beyond ``max_workers`` wait for a worker, so the global safety net is
    ``deadline_s`` times the number of rounds (ceil(items / max_workers)). When it
    passes, every probe not finished yet is reported as ``on_unfinished(item, reason)``
    and the call returns without waiting for it (its worker thread is a daemon and dies
    with the process). A probe that raises is reported the same way, with the exception
    as the reason.
    """
    items = list(items)
    if not items:
        return []
    results = [None] * len(items)
    done = threading.Event()
    remaining = [len(items)]
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                index = next_index[0]
                if index >= len(items) or done.is_set():
                    return
                next_index[0] += 1
            try:
                outcome = probe(items[index])
            except Exception as exc:  # a probe bug must not hide the other results
                outcome = on_unfinished(items[index], "probe crashed: %s: %s" % (type(exc).__name__, exc))
            with lock:
                results[index] = outcome
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

    # Daemon threads rather than a ThreadPoolExecutor: the executor joins its
    # workers at interpreter exit, which would defeat the global deadline.
    workers = max(1, min(max_workers, len(items)))
    rounds = int(math.ceil(len(items) / float(workers)))
    for _ in range(workers):
        threading.Thread(target=worker, daemon=True).start()
    total_s = deadline_s * rounds
    done.wait(total_s)
    with lock:
        done.set()  # stop workers from taking new items
        reason = "no verdict within the global deadline of %g s" % total_s
        return [r if r is not None else on_unfinished(items[i], reason) for i, r in enumerate(results)]


__all__ = [
    "DEFAULT_MAX_WORKERS", "InputError", "failure_message", "outcome", "RESULT_KEYS", "format_hostport", "ms_since",
    "probe_result", "read_text", "reject_unknown_keys", "run_concurrently",
    "target_mappings", "shape_error", "summarize", "validate_host", "validate_port", "validate_regex",
    "validate_timeout",
]
