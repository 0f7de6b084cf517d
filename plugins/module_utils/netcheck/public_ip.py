# -*- coding: utf-8 -*-
"""Public IP probe: which address the managed host leaves with (``curl wgetip.com``), EC2 metadata first.

Stdlib only, on top of the HTTP probe (http.py): every GET goes through its
``request_once`` (phase timings, deadline, TLS), so the two probes fail the same way
and name the same phases. Sources, in order:

``imds``  the EC2 instance metadata service, version 2: ``PUT /latest/api/token``, then
          with the token ``GET /latest/meta-data/public-ipv4``, ``local-ipv4`` and
          ``instance-id``. A 404 for public-ipv4 means the instance has none.
``url``   a "what is my IP" URL answering the caller's address as plain text.

A redirect is followed only within its origin (scheme, host and port): a redirect to
another host - 169.254.169.254 included - is refused, since whatever that host says is
not the answer of the source that was asked. Each source gives one result of the
shared shape (kind ``public_ip``); ``detail.final_url`` is the endpoint that answered.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin

from .http import PhaseError, REDIRECT_CODES, parse_targets, parse_url, request_once
from .probe import InputError, ms_since, probe_result, validate_timeout

KIND = "public_ip"
# answered: the source gave an address; no_address: it answered, but not with an address
# (HTTP error, 404 from the metadata service, text that is not an IP, a refused redirect);
# failed: no HTTP answer at all (detail.phase says where it stopped)
STATES = ("answered", "no_address", "failed")
SOURCES = ("imds", "url")
TOKEN_PATH = "/latest/api/token"
METADATA_PATH = "/latest/meta-data/"
TOKEN_TTL_S = 21600
MAX_ANSWER_BYTES = 1024  # an address is at most 45 characters; anything longer is not one
MAX_REDIRECTS = 5
USER_AGENT = "netcheck-public_ip/0.5"
DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"

# The options a user writes (spec.py explains the format): public_ip's argument_spec.
PUBLIC_IP_SPEC = {
    "imds": {"type": "bool", "default": True, "description": "Ask the EC2 instance metadata service (IMDSv2) first."},
    "imds_endpoint": {"type": "str", "default": DEFAULT_IMDS_ENDPOINT,
                      "description": "Base URL of the metadata service."},
    "imds_timeout": {"type": "float", "default": 1.0,
                     "description": "Seconds for each request to the metadata service."},
    "url": {"type": "str", "description": "A what-is-my-IP URL answering the caller's address as text."},
    "url_timeout": {"type": "float", "default": 3.0, "description": "Seconds for the answer of url."},
    "validate_certs": {"type": "bool", "default": True, "description": "Verify the TLS certificate of an https URL."},
}


class SourceError(Exception):
    """A source gave no address: ``state`` (no_address or failed), the message naming the
    request, and the phase where a failed request stopped."""

    def __init__(self, message, state="no_address", phase=None):
        Exception.__init__(self, message)
        self.state = state
        self.phase = phase


def validate(params):
    """What the argument_spec cannot express; InputError names the field."""
    validate_timeout(params["imds_timeout"], "imds_timeout")
    validate_timeout(params["url_timeout"], "url_timeout")
    parse_url(params["imds_endpoint"], "imds_endpoint")
    if params["url"] is not None:
        parse_url(params["url"], "url")
    if not params["imds"] and not params["url"]:
        raise InputError("url: required when imds is false")


def _origin(url):
    return parse_url(url, "url")[:3]


def http_get(url, headers, timeout, validate_certs, detail):
    """(status, body) of a GET through the HTTP probe, following redirects within the origin only.

    ``detail`` gets ``final_url`` (the URL that answered) and ``status`` as they are learnt.
    """
    for _ in range(MAX_REDIRECTS + 1):
        detail["final_url"] = url
        target = parse_targets([{"url": url, "method": "GET", "follow_redirects": "none", "timeout": timeout,
                                 "validate_certs": validate_certs}])[0]
        facts = {"address": None, "tls": None}
        try:
            body = request_once(url, target, time.monotonic() + timeout, {}, facts, dict(headers))
        except PhaseError as exc:
            raise SourceError("GET %s: %s" % (url, exc.message), "failed", exc.phase)
        detail["status"] = facts["status"]
        location = facts["headers"].get("location")
        if facts["status"] not in REDIRECT_CODES or not location:
            return facts["status"], body
        next_url = urljoin(url, location)
        try:
            same_origin = _origin(next_url) == _origin(url)
        except InputError as exc:
            raise SourceError("GET %s: cannot follow the redirect: %s" % (url, exc))
        if not same_origin:
            raise SourceError("GET %s: redirected to %s, another origin: not followed" % (url, next_url))
        url = next_url
    raise SourceError("GET %s: more than %d redirects" % (url, MAX_REDIRECTS))


def http_put(url, headers, timeout):
    """(status, body) of the metadata token request (plain HTTP, link-local, never redirected)."""
    scheme, host, port, path = parse_url(url, "imds_endpoint")
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("PUT", path, headers=dict(headers, **{"User-Agent": USER_AGENT}))
        response = conn.getresponse()
        return response.status, response.read(MAX_ANSWER_BYTES + 1)
    except (socket.timeout, TimeoutError):
        raise SourceError("PUT %s: no answer within %g s" % (url, timeout), "failed", "connect")
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SourceError("PUT %s: %s" % (url, reason.lower()), "failed", "connect")
    finally:
        conn.close()


def as_text(body, where):
    if len(body) > MAX_ANSWER_BYTES:
        raise SourceError("%s: answered more than %d bytes, not an address" % (where, MAX_ANSWER_BYTES))
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SourceError("%s: answered non-ASCII bytes %r, not an address" % (where, body[:60]))


def as_address(text, where):
    """The IP address in ``text`` (what a source answered), or SourceError naming the request."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise SourceError("%s: answered %r, which is not an IP address" % (where, text[:60]))


def ask_imds(endpoint, timeout, detail, hide):
    """The public IPv4 from IMDSv2 (``detail`` gets local_ip and instance_id on the way).

    ``hide(token)`` is told the token at once, so that Ansible masks it in anything shown.
    """
    base = endpoint.rstrip("/")
    detail["final_url"] = base + TOKEN_PATH
    status, body = http_put(base + TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)}, timeout)
    detail["status"] = status
    if status != 200:
        raise SourceError("PUT %s: HTTP %d" % (base + TOKEN_PATH, status))
    token = as_text(body, "PUT %s" % (base + TOKEN_PATH))
    if not token:
        raise SourceError("PUT %s: answered an empty token" % (base + TOKEN_PATH))
    hide(token)
    values = {}
    for key in ("local-ipv4", "instance-id", "public-ipv4"):
        url = base + METADATA_PATH + key
        status, body = http_get(url, {"X-aws-ec2-metadata-token": token}, timeout, True, detail)
        if status == 404:  # the instance has no such value (no public IPv4, an IPv6-only instance)
            values[key] = None
        elif status != 200:
            raise SourceError("GET %s: HTTP %d" % (url, status))
        else:
            values[key] = as_text(body, "GET %s" % url)
            if key != "instance-id":  # an empty answer is an error too, not "no address"
                values[key] = as_address(values[key], "GET %s" % url)
        detail.update(local_ip=values.get("local-ipv4"), instance_id=values.get("instance-id") or None)
    if values["public-ipv4"] is None:
        raise SourceError("GET %s%spublic-ipv4: HTTP 404, the instance has no public IPv4 address"
                          % (base, METADATA_PATH))
    return values["public-ipv4"]


def ask_url(url, timeout, validate_certs, detail):
    status, body = http_get(url, {"Accept": "text/plain", "User-Agent": USER_AGENT}, timeout, validate_certs,
                            detail)
    if status != 200:
        raise SourceError("GET %s: HTTP %d" % (detail["final_url"], status))
    return as_address(as_text(body, "GET %s" % detail["final_url"]), "GET %s" % detail["final_url"])


def check_source(source, endpoint, ask):
    """One source asked: the shared result shape (``ask(detail)`` returns the address)."""
    start = time.monotonic()
    detail = {"source": source, "endpoint": endpoint, "final_url": None, "status": None, "address": None,
              "local_ip": None, "instance_id": None, "phase": None}
    state, error = "answered", None
    try:
        detail["address"] = ask(detail)
    except SourceError as exc:
        state, error, detail["phase"] = exc.state, str(exc), exc.phase
    return probe_result(endpoint, KIND, state, state == "answered", {"total_ms": ms_since(start)}, error, detail)


def find_public_ip(params, hide=lambda secret: None):
    """Ask the sources in order, until one gives an address; returns the results (shared shape)."""
    results = []
    if params["imds"]:
        results.append(check_source("imds", params["imds_endpoint"], lambda detail: ask_imds(
            params["imds_endpoint"], params["imds_timeout"], detail, hide)))
    if params["url"] and not (results and results[-1]["ok"]):
        results.append(check_source("url", params["url"], lambda detail: ask_url(
            params["url"], params["url_timeout"], params["validate_certs"], detail)))
    return results


def summary_facts(results):
    """The module's top-level facts from the results: public_ip, source, endpoint, local_ip, instance_id."""
    found = [r for r in results if r["ok"]]
    imds = [r["detail"] for r in results if r["detail"]["source"] == "imds"]
    return {
        "public_ip": found[0]["detail"]["address"] if found else None,
        "source": found[0]["detail"]["source"] if found else None,
        "endpoint": found[0]["detail"]["final_url"] if found else None,
        "local_ip": imds[0]["local_ip"] if imds else None,
        "instance_id": imds[0]["instance_id"] if imds else None,
    }


def failure_message(results, params):
    reasons = ["%s (%s): %s" % (r["detail"]["source"], r["target"], r["error"]) for r in results]
    message = "no source gave a public IP address: " + "; ".join(reasons)
    if params["imds"] and not params["url"]:
        message += " (no url to ask next)"
    return message


__all__ = ["KIND", "PUBLIC_IP_SPEC", "SOURCES", "STATES", "SourceError", "as_address", "check_source",
           "failure_message", "find_public_ip", "summary_facts", "validate"]
