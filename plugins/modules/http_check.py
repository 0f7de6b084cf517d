#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: curl -I for many URLs at once from the managed host, with phase timings and TLS facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_check
short_description: Check many HTTP(S) URLs at once from the managed host (curl -I), with phase timings and TLS facts
description:
  - Sends one request (C(HEAD) by default, like C(curl -I), or C(GET)) to every URL in I(urls), all
    at the same time, and reports the status, reason, HTTP version, response headers (lower-case
    names), the redirect chain, the time of each phase and, for https, the TLS version, cipher and
    certificate (subject, issuer, validity, days left, whether it was verified).
  - Phases are timed separately, as Prometheus blackbox_exporter does; C(resolve) (DNS),
    C(connect) (TCP handshake), C(tls) (TLS handshake), C(processing) (request sent to first byte)
    and C(transfer) (the rest of the answer). A check that fails names the phase where it stopped,
    for instance C(processing) when no response came within the timeout after the request was sent.
  - Each URL has expectations, with module-level defaults that a URL may override; the status must
    be in I(status_codes), the headers must match I(expect_headers), the body must match
    I(body_regex) (GET). The task fails when any URL misses one; the result lists every URL with
    C(failed_checks) naming each expectation missed.
  - Header values given in I(headers) (Authorization, cookies) are never written to the output,
    even with C(-vvv), and C(Authorization), C(Proxy-Authorization) and C(Cookie) are not sent on
    to a redirect that leaves the origin (scheme, host and port) they were given for.
  - Input is validated before any request; a bad URL or option fails the task with a message naming
    the field, and nothing is sent.
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  urls:
    description: The URLs to check, all at once. Each item may override the module-level options below.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description:
          - An C(http://) or C(https://) URL with a host name, IPv4 address or bracketed IPv6 address,
            and any port, path and query. Credentials in the URL are refused (use I(headers)).
        type: str
        required: true
      name:
        description: A label for this URL, returned as C(detail.name). Must be a string.
        type: raw
      method:
        description: Overrides I(method) for this URL.
        type: str
        choices: [HEAD, GET]
      status_codes:
        description: Overrides I(status_codes) for this URL.
        type: list
        elements: int
      headers:
        description: Headers added to the module-level I(headers) for this URL (values never logged).
        type: dict
      expect_headers:
        description: Added to the module-level I(expect_headers) for this URL.
        type: dict
      follow_redirects:
        description: Overrides I(follow_redirects) for this URL.
        type: str
        choices: [none, safe, all]
      keep_headers_across_origins:
        description: Overrides I(keep_headers_across_origins) for this URL.
        type: bool
      validate_certs:
        description: Overrides I(validate_certs) for this URL.
        type: bool
      ca_path:
        description: Overrides I(ca_path) for this URL.
        type: path
      timeout:
        description: Overrides I(timeout) for this URL.
        type: float
      body_regex:
        description: Overrides I(body_regex) for this URL (needs GET).
        type: str
  method:
    description: C(HEAD) (like C(curl -I)) or C(GET).
    type: str
    choices: [HEAD, GET]
    default: HEAD
  status_codes:
    description: The status codes that pass (100-599).
    type: list
    elements: int
    default: [200]
  headers:
    description: Headers sent with every request (C(Host), C(Authorization)...); their values are never logged.
    type: dict
    default: {}
  expect_headers:
    description:
      - Response headers to check, name (any case) to a Python regular expression searched in the
        value; C(null) means the header must be absent.
    type: dict
    default: {}
  follow_redirects:
    description:
      - C(none) reports the redirect itself; C(safe) follows up to 10 redirects but never from https
        to http; C(all) follows up to 10 redirects anywhere. The chain is returned either way.
    type: str
    choices: [none, safe, all]
    default: safe
  keep_headers_across_origins:
    description:
      - By default a redirect to another origin (scheme, host or port) drops every header of
        I(headers), since any of them may be a secret (C(X-Api-Key), C(X-Auth-Token)...).
      - C(true) sends them on to the other origin, except C(Authorization), C(Proxy-Authorization)
        and C(Cookie), which never leave the origin they were given for.
    type: bool
    default: false
  ca_path:
    description: A PEM file of CA certificates to verify against, instead of the system's (on the managed host).
    type: path
  timeout:
    description: Seconds for each request (all its phases together); each redirect gets its own.
    type: float
    default: 5
  body_regex:
    description: A Python regular expression the body must match (GET only; the first 1 MiB is read).
    type: str
  confirm_budget:
    description:
      - Seconds that confirming silent connects may add to the run, at most (0 turns it off).
      - A URL whose connect got no answer, on a host that answered another URL's connect of this
        run with an ICMP error, is probed again as M(netcheck.netcheck.port_check) does (paced by the host's ICMP
        rate limit, up to 2 more connects); its C(detail.outcome.reason) is C(icmp_unreach) only
        when an ICMP error for that address and port came back, else C(no_answer).
      - A run without such URLs pays nothing. See docs/http_check.md.
    type: float
    default: 10
attributes:
  check_mode:
    details: The module only sends HEAD or GET requests; it runs in check mode too.
extends_documentation_fragment:
  - netcheck.netcheck.attributes
  - netcheck.netcheck.probe
  - netcheck.netcheck.probe.validate_certs
notes:
  - C(ttfb_ms) is the time from the start of the final request (resolve included) to the first
    byte of the answer, read (not polled), so TLS session tickets sent after the handshake do
    not count as the answer; C(connect_ms), C(tls_ms) and C(ttfb_ms) agree with curl's
    C(time_connect), C(time_appconnect) and C(time_starttransfer) (as differences and sums).
  - After a failed certificate verification the certificate is fetched once more without
    verification, only to report its facts (C(tls.verified) is then false and C(tls.verify_error) says why).
seealso:
  - module: ansible.builtin.uri
    description: Full HTTP client; this module checks many URLs at once and times each phase.
  - module: netcheck.netcheck.port_check
    description: TCP checks from the managed host.
"""

EXAMPLES = r"""
- name: curl -I every front end, and the API with a token
  netcheck.netcheck.http_check:
    urls:
      - url: https://www.example.internal/
      - url: http://10.0.1.20:8080/health
      - url: "https://[2001:db8::20]/status?verbose=1"
      - url: https://api.example.internal/v1/ping
        method: GET
        headers:
          Authorization: "Bearer {{ api_token }}"
        body_regex: '"status":\s*"ok"'
    expect_headers:
      strict-transport-security: "max-age="
      x-powered-by: null          # must not leak
  register: web

- name: A page that must be gone, and a redirect that must stay a redirect
  netcheck.netcheck.http_check:
    urls:
      - {url: "http://10.0.1.20:8080/old", status_codes: [404]}
      - {url: "http://www.example.internal/", follow_redirects: none, status_codes: [301]}

- name: Internal TLS with our own CA
  netcheck.netcheck.http_check:
    ca_path: /etc/pki/internal-ca.pem
    urls:
      - url: https://vault.example.internal:8200/v1/sys/health

- name: Warn about certificates that expire within 30 days
  ansible.builtin.debug:
    msg: "{{ item.target }} expires in {{ item.detail.tls.days_left }} days"
  loop: "{{ web.results | selectattr('detail.tls') | selectattr('detail.tls.days_left', 'lt', 30) }}"
"""

RETURN = r"""
results:
  description: One entry per URL, in the order of I(urls); the shape every probe of this project returns.
  returned: always (empty when the input was rejected)
  type: list
  elements: dict
  contains:
    target:
      description: The URL as given.
      type: str
      sample: "http://10.77.0.12:8080/"
    kind:
      description: Always C(http).
      type: str
      sample: http
    state:
      description: C(answered) when a response came back, C(failed) when a phase failed (see C(detail.phase)).
      type: str
      choices: [answered, failed, error]
      sample: answered
    ok:
      description: Whether the URL answered and met every expectation.
      type: bool
      sample: true
    timings:
      description: >-
        Milliseconds per phase of the final request: C(resolve_ms), C(connect_ms), C(tls_ms) (https),
        C(processing_ms), C(transfer_ms), C(ttfb_ms), and C(total_ms) for the whole check (redirects
        included). A failed check has the phases it completed and C(total_ms).
      type: dict
      sample: {"resolve_ms": 0.05, "connect_ms": 0.2, "processing_ms": 1.1, "transfer_ms": 0.1, "ttfb_ms": 1.4, "total_ms": 1.6}
    error:
      description: The phase and reason of a failure, or the failed checks joined by C(; ); null when ok.
      type: str
      sample: "status 404 not in [200]"
    detail:
      description: Facts of the HTTP probe.
      type: dict
      contains:
        url: {description: The URL as given., type: str}
        name: {description: "The label given, or null.", type: str}
        method: {description: C(HEAD) or C(GET)., type: str}
        final_url: {description: The URL of the last request (after redirects)., type: str}
        address: {description: The address connected to for the last request., type: str}
        status: {description: The HTTP status code of the last response; null when none came., type: int}
        reason: {description: Its reason phrase., type: str}
        http_version: {description: C(HTTP/1.1) or C(HTTP/1.0)., type: str}
        headers: {description: "Response headers with lower-case names (repeated headers joined with C(, )).", type: dict}
        redirects:
          description: The redirect chain, each C({url, status, location}).
          type: list
          elements: dict
        tls:
          description: >-
            For https, C({version, cipher, verified, verify_error, subject, issuer, not_before,
            not_after, days_left, expired, san, serial}); null for http.
          type: dict
        body_bytes: {description: "Body bytes read (GET, at most 1 MiB); null for HEAD.", type: int}
        failed_checks:
          description: Every expectation missed, in words.
          type: list
          elements: str
        phase:
          description: The phase where the check stopped (resolve, connect, tls, request, processing, transfer, redirect); null when it answered.
          type: str
        outcome:
          description: >-
            Why the check ended as it did, as data (docs/results.md): C(reason) (C(http_answer);
            C(dns); for the connect the words of M(netcheck.netcheck.port_check), C(rst), C(icmp_unreach), C(icmp_error),
            C(no_answer), C(local_firewall), C(no_route), C(no_neighbour); C(tls_handshake),
            C(tls_verify), C(tls_name); C(http_timeout), C(not_http), C(conversation_failed);
            C(probe_error)), C(phase), C(errno), C(errno_name), C(icmp_type), C(icmp_code),
            C(icmp_from), C(icmp_family), C(probes), C(answers), C(confirmed), C(verdict_ms).
          type: dict
      sample:
        url: "https://10.77.0.12:8443/"
        name: null
        method: HEAD
        final_url: "https://10.77.0.12:8443/"
        address: 10.77.0.12
        status: 200
        reason: OK
        http_version: HTTP/1.1
        headers: {"content-type": "application/json", "x-lab-host": "nclab2"}
        redirects: []
        tls:
          version: TLSv1.3
          cipher: TLS_AES_256_GCM_SHA384
          verified: true
          verify_error: null
          subject: "commonName=10.77.0.12"
          issuer: "commonName=netcheck test CA"
          not_before: "2026-11-24T10:00:00Z"
          not_after: "2027-11-25T10:00:00Z"
          days_left: 364
          expired: false
          san: ["IP Address:10.77.0.12"]
          serial: "1A2B"
        body_bytes: null
        failed_checks: []
        phase: null
        outcome: {"reason": "http_answer", "phase": null, "errno": null, "errno_name": null, "icmp_type": null,
                  "icmp_code": null, "icmp_from": null, "icmp_family": null, "probes": 1, "answers": 1,
                  "confirmed": true, "verdict_ms": 4.2}
summary:
  description: Counts over I(results).
  returned: always
  type: dict
  sample: {"total": 2, "ok": 1, "failed": 1, "states": {"answered": 2}}
elapsed_ms:
  description: Wall time of all the checks together, in milliseconds.
  returned: always
  type: float
  sample: 12.5
"""

import time

from ..module_utils.netcheck.http import HTTP_MODULE_SPEC, HTTP_REQUEST_SPEC, check_urls, parse_targets
from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.probe import InputError, outcome
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(HTTP_MODULE_SPEC))
    params = module.params
    start = time.monotonic()
    if params["confirm_budget"] < 0:
        module.fail_json(msg="confirm_budget: %s must be 0 or more seconds" % params["confirm_budget"],
                         **outcome([], start))
    if params["max_workers"] < 1:
        module.fail_json(msg="max_workers: %s must be at least 1" % params["max_workers"], **outcome([], start))
    try:
        targets = parse_targets(params["urls"], {key: params[key] for key in HTTP_REQUEST_SPEC})
    except InputError as exc:
        module.fail_json(msg=str(exc), **outcome([], start))

    result = outcome(check_urls(targets, params["max_workers"], params["confirm_budget"]), start)
    module.finish(result, "%d URLs as expected" % result["summary"]["total"])


if __name__ == "__main__":
    main()
