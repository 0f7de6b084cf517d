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
import sys
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


def new_module(module_class, argument_spec, **kwargs):
    """``module_class(argument_spec=..., **kwargs)`` (an AnsibleModule), but input whose shape
    ansible-core itself cannot handle fails the task naming the field, instead of a traceback.

    The shape is checked on the raw input (ansible-core's ``_load_params()``, found beside
    ``module_class``) before the real module is built. Only when the input is refused is a loose
    module built (every option raw, every value no_log, so that the failure echoes nothing) to
    fail the task. A ``module_class`` whose ansible-core cannot be found (a test's stand-in) is
    read through the loose module first, as before.

    The module returned writes its result with :class:`StreamedResult` (see there).
    """
    basic = _ansible_basic(module_class)
    if basic is not None and callable(getattr(module_class, "_record_module_result", None)):
        module_class = type(module_class.__name__, (StreamedResult, module_class), {})
    load_params = getattr(basic, "_load_params", None)
    loose_spec = {name: {"type": "raw", "no_log": True} for name in argument_spec}
    if load_params is None:
        loose = module_class(argument_spec=loose_spec, **kwargs)
        error = shape_error(argument_spec, loose.params)
        loose = None  # its copy of the input is not kept for the rest of the run
    else:
        error = shape_error(argument_spec, load_params())
    if error:
        module_class(argument_spec=loose_spec, **kwargs).fail_json(msg=error, changed=False)
    try:
        return module_class(argument_spec=argument_spec, **kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        module_class(argument_spec=loose_spec, **kwargs).fail_json(
            msg="the options could not be read: %s: %s" % (type(exc).__name__, exc), changed=False)


def _ansible_basic(module_class):
    """The ``ansible.module_utils.basic`` that defines ``module_class`` (or a base of it), else None.

    Looked up through the class rather than imported, so that this file stays importable without
    Ansible and a test's stand-in class keeps the old path.
    """
    for cls in getattr(module_class, "__mro__", ()):
        basic = sys.modules.get(getattr(cls, "__module__", None) or "")
        if basic is not None and callable(getattr(basic, "_load_params", None)) and \
                getattr(basic, "AnsibleModule", None) is cls:
            return basic
    return None


# How many levels of mappings the streamed result opens: the result, ``invocation``,
# ``module_args``, and the lists in them (``results``, ``module_args.targets``).
STREAM_DEPTH = 4


class StreamedResult(object):
    """A mixin for AnsibleModule: the result JSON is written to stdout piece by piece.

    Why: ansible-core 2.19 prints a result as ``print('\\n%s' % json.dumps(o))``, so that the
    whole answer exists two or three times at once (the encoder's output, the formatted string,
    its UTF-8 bytes). For 10,000 TCP targets that is 7.7 MB each time, the largest part of the
    run's peak memory. ``_record_module_result`` is the hook ansible-core documents for changing
    how a result is serialized ("modification/bypass of module result serialization"); this
    override writes the very same bytes (each piece made by ansible-core's own encoder for the
    run's serialization profile, with its separators, in the same key order) without ever
    holding more than one result entry encoded.

    It degrades to ansible-core's own printing whenever anything it relies on is not there as
    expected: another ansible-core without the profile or the encoder, an encoder that indents,
    or a hook that someone else replaced (ansible.netcommon does so for in-worker execution).
    """

    def _record_module_result(self, o):
        encoder = self._result_encoder()
        if encoder is None or type(o) is not dict:
            return super(StreamedResult, self)._record_module_result(o)
        out = sys.stdout
        out.write("\n")
        for piece in _json_pieces(encoder, o, STREAM_DEPTH):
            out.write(piece)
        out.write("\n")
        out.flush()
        return None

    def _result_encoder(self):
        """A JSON encoder for this run's profile, exactly as ansible-core's hook makes it, or None."""
        basic = _ansible_basic(type(self))
        own_hook = getattr(getattr(basic, "AnsibleModule", None), "_record_module_result", None)
        if own_hook is None or getattr(own_hook, "__module__", None) != getattr(basic, "__name__", None) \
                or getattr(own_hook, "__qualname__", None) != "AnsibleModule._record_module_result":
            return None  # not ansible-core's own hook any more: let whoever replaced it do its work
        profile = getattr(basic, "_ANSIBLE_PROFILE", None)
        codec = getattr(basic, "_json", None)
        get_encoder = getattr(codec, "get_module_encoder", None)
        direction = getattr(getattr(codec, "Direction", None), "MODULE_TO_CONTROLLER", None)
        if not profile or get_encoder is None or direction is None:
            return None
        try:
            encoder = get_encoder(profile, direction)()
        except Exception:  # an unknown profile: ansible-core's own printing reports it
            return None
        return encoder if getattr(encoder, "indent", None) is None else None


def _json_pieces(encoder, value, depth):
    """Yield the JSON text of ``value`` in pieces whose concatenation is ``encoder.encode(value)``.

    Plain dicts are opened down to ``depth`` levels and plain lists in them too, with the
    encoder's own separators between their items; a list's items (one probe result each) and
    everything deeper are encoded whole. A value the encoder refuses raises as it would have,
    but after part of the answer was written.
    """
    if depth <= 0 or type(value) not in (dict, list) or not value:
        yield encoder.encode(value)
        return
    between, colon = encoder.item_separator, encoder.key_separator
    if type(value) is list:
        yield "["
        for index, item in enumerate(value):
            yield (between if index else "") + encoder.encode(item)
        yield "]"
        return
    yield "{"
    for index, (key, item) in enumerate(value.items()):
        # the key as the encoder writes it (its profile checks or converts keys): {"key": null}
        yield (between if index else "") + encoder.encode({key: None})[1:-len(colon + "null}")] + colon
        for piece in _json_pieces(encoder, item, depth - 1):
            yield piece
    yield "}"


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
    "new_module", "probe_result", "read_text", "StreamedResult", "reject_unknown_keys", "run_concurrently",
    "target_mappings", "shape_error", "summarize", "validate_host", "validate_port", "validate_regex",
    "validate_timeout",
]
