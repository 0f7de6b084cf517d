"""Which pairs of a run to explain, and with which instances: the run model meets EC2.

``explain_run`` fills ``pair["explain"]`` (docs/report.schema.json) for every pair with a check
that EC2's configuration may explain: a TCP port, a ping or a URL's connect that got no answer
at all (a security group or a network ACL drops silently; a reject, an RST or the source's
own firewall is no EC2 matter), a path-MTU verdict (``MTU_BLACKHOLE``, ``PMTU_REDUCED``), and
a port open although it must not be (``PORT_OPEN``: which rule lets it in).
It reads fields only: each check's ``code`` and ``outcome.reason`` (``pair["verdict"]["checks"]``), else
the layers' results (``state``, ``detail.outcome``, ``detail.errno_name``) - never message
words. A pair's addresses are matched to interfaces by private IP; where one address is held
twice (two unpeered VPCs on one CIDR), the inventory's ``instance_id`` or ``vpc_id`` decides.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_evaluate import (
    LINUX_EPHEMERAL, MTU_CODES, NOT_EVALUATED, OPEN_CODES, explain_flow)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_fetch import Ec2ExplainError, Ec2Fetcher

# The data-plane verdict codes whose checks get explained (docs/verdict.md).
FILTERED_CODES = ("PORT_FILTERED", "ICMP_FILTERED")
PORT_STATES = ("filtered", "timeout")
# Outcome reasons (module_utils/netcheck/outcome.py) that happen on the source host before any
# packet reaches EC2: nothing in the VPC's configuration explains them.
SOURCE_SIDE_REASONS = ("local_firewall", "no_route", "no_neighbour", "dns", "local_address", "probe_error")
SOURCE_FIREWALL_ERRNOS = ("EPERM", "EACCES")


def _is_timeout_code(code):
    return str(code or "").upper().endswith("_TIMEOUT") and code != "HTTP_TIMEOUT"


def _url_port(url):
    try:
        parts = urlsplit(str(url))
        return parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None


def _check_flow(check, codes):
    """(protocol, port, data-plane code, check name) of one check EC2 may explain, or None: a failing
    check, or one whose code is a note of silence (ICMP dropped while the ports answer)."""
    code = check.get("code")
    if check.get("ok") is not False and code not in codes:
        return None
    outcome = check.get("outcome") or {}
    reason = outcome.get("reason")
    if reason in SOURCE_SIDE_REASONS:
        return None
    mtu = code in MTU_CODES
    silent = reason == "no_answer" or (reason is None and (code in codes or _is_timeout_code(code)))
    if code in OPEN_CODES and check.get("ok") is False and str(check.get("check") or "").startswith("tcp/"):
        return "tcp", int(check["check"][4:]), code, check["check"]  # which rule lets it in
    if not (mtu or silent):
        return None
    name = str(check.get("check") or "")
    if name == "icmp":
        if "ICMP_FILTERED" not in codes and not mtu:
            return None
        return "icmp", None, code or "ICMP_FILTERED", name
    if name.startswith("tcp/") and name[4:].isdigit():
        return "tcp", int(name[4:]), code or "PORT_FILTERED", name
    if name.startswith("http ") and (mtu or outcome.get("phase") in (None, "connect")):
        port = _url_port(name[5:])
        return ("tcp", port, code or "PORT_FILTERED", name) if port else None
    return None


def _tcp_port(result):
    detail = result.get("detail") or {}
    if isinstance(detail.get("port"), int) or str(detail.get("port", "")).isdigit():
        return int(detail["port"])
    return None


def _layer_reason(result):
    return ((result.get("detail") or {}).get("outcome") or {}).get("reason")


def _tcp_silent(result):
    """A port_check result that got no answer from the network (not the source's own firewall).

    Under a pair whose code says a port is filtered, every silent port is explained (as before the
    per-check verdicts), also one that was expected filtered."""
    detail = result.get("detail") or {}
    reason = _layer_reason(result)
    if reason in SOURCE_SIDE_REASONS:
        return False
    if reason is not None:
        return reason == "no_answer"
    if result.get("state") == "rejected" and detail.get("icmp_inferred"):
        return True  # before the outcome contract: no ICMP came for this flow, a sibling's was copied
    return result.get("state") in PORT_STATES and detail.get("errno_name") not in SOURCE_FIREWALL_ERRNOS


def _http_connect_silent(result):
    """An http_check result that never connected because nothing answered (a filtered port).

    A timeout after connecting (HTTP_TIMEOUT: the application hangs) is no network matter."""
    detail = result.get("detail") or {}
    outcome = detail.get("outcome") or {}
    if result.get("state") == "timeout":
        return True
    return (result.get("state") == "failed" and outcome.get("reason") == "no_answer"
            and (outcome.get("phase") or detail.get("phase")) == "connect")


def _pair_codes(pair):
    verdict = pair.get("verdict") or {}
    notes = [note.get("code") for note in verdict.get("notes") or [] if isinstance(note, dict)]
    return [verdict.get("code")] + notes


def _unique(flows):
    seen, unique = set(), []
    for flow in flows:
        if flow[:2] not in seen:
            seen.add(flow[:2])
            unique.append(flow)
    return unique


def flows_of_pair(pair, codes=FILTERED_CODES):
    """The (protocol, port, data-plane code) flows of a pair to explain, one per failing check.

    With ``pair["verdict"]["checks"]`` (one verdict per check), each check decides by its code and outcome
    reason; otherwise the layers' results do (``tcp``, ``http``, ``icmp``) under the pair's code."""
    return [flow[:3] for flow in _flows(pair, tuple(codes))]


def pair_checks(pair):
    """The pair's per-check verdicts (``verdict.checks``; ``checks`` on the pair also read), or None."""
    checks = (pair.get("verdict") or {}).get("checks")
    if not isinstance(checks, list) or not checks:
        checks = pair.get("checks")
    return checks if isinstance(checks, list) and checks else None


def _flows(pair, codes):
    checks = pair_checks(pair)
    if checks:
        checks = [check for check in checks if isinstance(check, dict)]
        flows = []
        for check in checks:
            if check.get("check") == "path_mtu" and check.get("code") in MTU_CODES and check.get("ok") is False:
                # the path probe's own check: the flow of the pair's first TCP port, else ping
                ports = [int(c["check"][4:]) for c in checks if str(c.get("check")).startswith("tcp/")
                         and c["check"][4:].isdigit()]
                flows.append(("tcp", ports[0], check["code"], "path_mtu") if ports
                             else ("icmp", None, check["code"], "path_mtu"))
                continue
            flow = _check_flow(check, codes)
            if flow is not None:
                flows.append(flow)
        return _unique(flows)
    pair_codes = _pair_codes(pair)
    code = pair_codes[0]
    layers = pair.get("layers") or {}
    flows = []
    port_code = code if code == "PORT_FILTERED" or _is_timeout_code(code) else None
    # a port is explained when the pair's code says a port is filtered, or when its own result
    # failed silently (one pair code hides the other failing ports: ICMP_FILTERED above PORT_FILTERED)
    filtered_pair = bool(port_code) or "PORT_FILTERED" in pair_codes[1:]
    for result in layers.get("tcp") or []:
        port = _tcp_port(result)
        if port and _tcp_silent(result) and (filtered_pair or result.get("ok") is False):
            flows.append(("tcp", port, port_code or "PORT_FILTERED", "tcp/%d" % port))
    for result in layers.get("http") or []:
        port = _url_port(result.get("target"))
        if port and _http_connect_silent(result) and (filtered_pair or result.get("ok") is False):
            flows.append(("tcp", port, port_code or "PORT_FILTERED", "http %s" % result.get("target")))
    if "ICMP_FILTERED" in pair_codes and "ICMP_FILTERED" in codes:
        flows.append(("icmp", None, "ICMP_FILTERED", "icmp"))
    mtu = next((item for item in pair_codes if item in MTU_CODES), None)
    if mtu and not flows:
        ports = [_tcp_port(result) for result in layers.get("tcp") or [] if _tcp_port(result)]
        flows.append(("tcp", ports[0], mtu, "tcp/%d" % ports[0]) if ports else ("icmp", None, mtu, "icmp"))
    return _unique(flows)


def _source_mtu(pair):
    """The source interface's MTU, when a path-MTU check measured it (``mtu.interface_mtu``)."""
    for check in pair_checks(pair) or []:
        mtu = (check.get("mtu") or {}).get("interface_mtu") if isinstance(check, dict) else None
        if isinstance(mtu, int) and mtu > 0:
            return mtu
    return None


def _source_address(run, pair):
    for source in run.get("sources", []):
        if source.get("name") == pair.get("source") and source.get("address"):
            return source["address"]
    for result in (pair.get("layers") or {}).get("tcp") or []:
        if (result.get("detail") or {}).get("local_address"):
            return result["detail"]["local_address"]
    return pair.get("source_address")


def inventory_options(hostvars, enabled="auto", **given):
    """The ``explain_run`` options for an inventory, or None when the explainer stays off.

    ``enabled``: true, false, or ``auto`` (on when the hosts come from the aws_ec2 inventory,
    whose hostvars hold ``instance_id`` and ``placement.region``). The region is ``given``'s, else
    the one most of the inventory's instances are in. ``instances`` maps each EC2 host's name to
    its ``instance_id`` and ``vpc_id`` (to tell apart interfaces holding the same address).
    ``given`` (region, endpoint_url, profile, ephemeral_ports, codes) passes through where set."""
    if enabled in (False, "false", "no", "off"):
        return None
    regions, instances = {}, {}
    for name, variables in (hostvars or {}).items():
        variables = variables or {}
        if not variables.get("instance_id"):
            continue
        instances[name] = {"instance_id": variables["instance_id"], "vpc_id": variables.get("vpc_id")}
        region = (variables.get("placement") or {}).get("region")
        if region:
            regions[region] = regions.get(region, 0) + 1
    if enabled == "auto" and not regions:
        return None
    options = {key: value for key, value in given.items() if value is not None}
    if not options.get("region") and regions:
        options["region"] = sorted(regions.items(), key=lambda item: (-item[1], item[0]))[0][0]
    if instances:
        options["instances"] = instances
    return options


def explain_run(run, options=None, state=None):
    """Fill ``pair["explain"]`` for every pair with a check EC2's configuration may explain.

    ``options``: region, endpoint_url, profile (for the fetcher), ephemeral_ports ([low, high],
    default Linux's), codes (the verdict codes to explain; default PORT_FILTERED and ICMP_FILTERED;
    checks that got no answer and codes ending in _TIMEOUT always are), instances ({host name:
    {instance_id, vpc_id}}, from ``inventory_options``). ``state`` (an Ec2State) skips the AWS
    calls. Returns ``{"explained": n, "error": message or None}``; on an API error every candidate
    pair gets an explain with status unknown and that message, and nothing raises, so that the
    run's reports are still written."""
    options = dict(options or {})
    codes = tuple(options.get("codes") or FILTERED_CODES)
    ephemeral = tuple(options.get("ephemeral_ports") or LINUX_EPHEMERAL)
    instances = options.get("instances") or {}
    wanted = []
    for pair in run.get("pairs", []):
        flows = _flows(pair, codes)
        if flows:
            wanted.append((pair, _source_address(run, pair), flows))
    if not wanted:
        return {"explained": 0, "error": None}
    error, explained_pairs = None, 0
    if state is None:
        addresses = sorted(set(a for pair, source, _ in wanted for a in (source, pair.get("address")) if a))
        try:
            state = Ec2Fetcher(region=options.get("region"), endpoint_url=options.get("endpoint_url"),
                               profile=options.get("profile")).state_for(addresses)
        except Ec2ExplainError as exc:
            error = str(exc)
    for pair, source, flows in wanted:
        if error is not None:
            pair["explain"] = {"status": "unknown", "code": NOT_EVALUATED, "message": "EC2 not read: %s" % error,
                               "fix": None, "component": None, "rule": None, "explanations": [], "checked": [],
                               "unknown": [error], "mtu": [], "flow": None, "flows": []}
            explained_pairs += 1
            continue
        if source is None or pair.get("address") is None:
            continue
        explained = []
        for protocol, port, data_plane, check in flows:
            explanation = explain_flow(state, source, pair["address"], protocol, port, data_plane, ephemeral,
                                       source_hint=instances.get(pair.get("source")),
                                       target_hint=instances.get(pair.get("target")),
                                       source_mtu=_source_mtu(pair))
            explanation["flow"]["check"] = check
            explained.append(explanation)
        # the pair's explain is its first blocked flow (else its first flow), with every flow under "flows"
        lead = next((item for item in explained if item["status"] == "blocked"), explained[0])
        pair["explain"] = dict(lead, flows=explained)
        explained_pairs += 1
    return {"explained": explained_pairs, "error": error}
