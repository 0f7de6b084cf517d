#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: the managed host's public IP address (curl wgetip.com), EC2 metadata first."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: public_ip
short_description: Find the managed host's public IP address (EC2 instance metadata, then a what-is-my-IP URL)
description:
  - Asks, from the managed host, which public IP address the host has, as C(curl wgetip.com) would.
  - First the EC2 instance metadata service, version 2 (IMDSv2), unless I(imds=false) -
    C(PUT /latest/api/token) with the header C(X-aws-ec2-metadata-token-ttl-seconds), then, with
    the token in C(X-aws-ec2-metadata-token), C(GET /latest/meta-data/public-ipv4),
    C(local-ipv4) and C(instance-id). Off EC2 the metadata address does not answer, so this
    first step is bounded by the short I(imds_timeout).
  - An instance without a public IPv4 address gets a 404 for C(public-ipv4); the module then
    reports no public address from the metadata service and asks I(url), when one is given.
  - Then, when the metadata service was skipped, did not answer or had no public address, I(url) -
    a "what is my IP" service that answers the caller's address as plain text.
  - Every answer must be an IP address (Python's C(ipaddress) decides); anything else is an error
    that names the source.
  - The task fails when no source gave an address; I(attempts) still tells what was tried and why
    each source failed.
  - The metadata token is a credential - it is never returned or logged.
  - HTTP goes through Ansible's C(ansible.module_utils.urls); the metadata service is asked without
    any proxy and without C(~/.netrc) credentials, I(url) without C(~/.netrc) credentials.
  - The module changes nothing on the host, so it runs in check mode too.
version_added: "0.4.0"
author:
  - netcheck maintainers
options:
  imds:
    description:
      - Ask the EC2 instance metadata service (IMDSv2) first.
      - Set to C(false) on hosts known not to run on EC2, to skip the I(imds_timeout) wait.
    type: bool
    default: true
  imds_endpoint:
    description:
      - Base URL of the metadata service. The default is the one EC2 serves on every instance;
        C(http://[fd00:ec2::254]) is its IPv6 address on Nitro instances.
    type: str
    default: http://169.254.169.254
  imds_timeout:
    description:
      - Seconds to wait for each request to the metadata service (more than 0, at most 3600).
      - Off EC2 the address usually does not answer at all, so this is what a host off EC2 waits
        before I(url) is asked.
    type: float
    default: 1
  url:
    description:
      - A "what is my IP" URL (C(http) or C(https)) whose answer is the caller's address as text,
        for example C(https://checkip.amazonaws.com/) or C(https://wgetip.com/).
      - Asked when I(imds=false), or when the metadata service did not give a public address.
      - Required when I(imds=false).
      - Honours the managed host's C(https_proxy)/C(http_proxy) environment; through a proxy the
        answer is the proxy's address.
    type: str
  url_timeout:
    description: Seconds to wait for the answer of I(url) (more than 0, at most 3600).
    type: float
    default: 3
  validate_certs:
    description:
      - Verify the TLS certificate of an C(https) I(url) or I(imds_endpoint).
      - Set to C(false) only for a service you trust on a network you trust.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: The module only reads; it asks the same sources in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
notes:
  - The address is the one the source sees. Behind NAT that is the NAT gateway's address, and EC2's
    C(public-ipv4) is the instance's public (or Elastic) IPv4 address.
  - Only IPv4 is asked from the metadata service; I(url) may answer IPv6 when the host reaches it over IPv6.
  - Input is validated before anything is sent; a bad option fails the task with a message naming it.
seealso:
  - module: ansible.builtin.uri
    description: General HTTP requests; this module asks for one fact, with EC2 metadata first.
  - name: Instance metadata service version 2
    description: How IMDSv2 tokens and the C(meta-data) keys work.
    link: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
"""

EXAMPLES = r"""
- name: Public IP of an EC2 instance, from its metadata service (nothing else is asked)
  netcheck.netcheck.public_ip:
  register: pub

- name: Show it, with the private address and the instance
  ansible.builtin.debug:
    msg: "{{ pub.public_ip }} ({{ pub.source }}), private {{ pub.local_ip }}, {{ pub.instance_id }}"

- name: Off EC2 - ask a what-is-my-IP service only
  netcheck.netcheck.public_ip:
    imds: false
    url: https://checkip.amazonaws.com/
    url_timeout: 5

- name: EC2 first; instances without a public IPv4 (and hosts off EC2) ask the URL
  netcheck.netcheck.public_ip:
    imds_timeout: 0.5
    url: https://wgetip.com/
  register: pub
  ignore_errors: true

- name: Why no address? Each source tried, with its error
  ansible.builtin.debug:
    msg: "{{ pub.attempts | rejectattr('ok') | map(attribute='error') | list }}"
  when: pub is failed

- name: Fail the play when a host leaves through another address than the one we reach it on
  ansible.builtin.assert:
    that: pub.public_ip == ansible_host
    fail_msg: "{{ inventory_hostname }} leaves as {{ pub.public_ip }}, not {{ ansible_host }}"
  when: pub is succeeded
"""

RETURN = r"""
public_ip:
  description: The public IP address found, or null when no source gave one.
  returned: always
  type: str
  sample: 203.0.113.17
source:
  description: Where I(public_ip) came from - C(imds) (EC2 instance metadata), C(url) (I(url)), or null.
  returned: always
  type: str
  sample: imds
  choices: [imds, url]
local_ip:
  description:
    - The instance's private IPv4 address, from the metadata service (C(local-ipv4)).
    - Null when the metadata service was skipped or did not answer, or has no such key.
  returned: always
  type: str
  sample: 172.31.5.20
instance_id:
  description: The EC2 instance ID, from the metadata service; null as for I(local_ip).
  returned: always
  type: str
  sample: i-0abc123def4567890
attempts:
  description:
    - One entry per source asked, in the order asked (empty when the input was rejected).
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: C(imds) or C(url).
      type: str
      sample: imds
    endpoint:
      description: The metadata service's base URL (I(imds_endpoint)), or I(url).
      type: str
      sample: http://169.254.169.254
    ok:
      description: Whether this source gave a public IP address.
      type: bool
      sample: false
    error:
      description: Why this source gave no address (naming the request that failed), else null.
      type: str
      sample: "PUT http://169.254.169.254/latest/api/token: no answer within 1 s"
    elapsed_ms:
      description: Time spent on this source, all its requests together, in milliseconds.
      type: float
      sample: 1001.874
  sample:
    - source: imds
      endpoint: http://169.254.169.254
      ok: false
      error: "PUT http://169.254.169.254/latest/api/token: Network is unreachable"
      elapsed_ms: 0.312
    - source: url
      endpoint: https://checkip.amazonaws.com/
      ok: true
      error: null
      elapsed_ms: 48.25
"""

import ipaddress
import socket
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ..module_utils.netcheck.http import parse_url
from ..module_utils.netcheck.probe import InputError, ms_since, validate_timeout
from ansible.module_utils.urls import open_url

TOKEN_PATH = "/latest/api/token"
METADATA_PATH = "/latest/meta-data/"
TOKEN_TTL_S = 21600
MAX_ANSWER_BYTES = 1024  # an address is at most 45 characters; anything longer is not one
USER_AGENT = "netcheck-public_ip/0.4"


class SourceError(Exception):
    """A source gave no usable answer; the message says which request and why."""


class Fetcher(object):
    """GET/PUT one URL through ansible's open_url and return (status, text)."""

    def __init__(self, validate_certs, opener=open_url):
        self.validate_certs = validate_certs
        self.opener = opener

    def __call__(self, method, url, headers, timeout, imds, accept=(200,)):
        where = "%s %s" % (method, url)
        try:
            # the metadata service is link-local: never through a proxy, and it does not redirect
            response = self.opener(url, method=method, headers=headers, timeout=timeout,
                                   validate_certs=self.validate_certs, use_proxy=not imds,
                                   follow_redirects="none" if imds else "safe",
                                   http_agent=USER_AGENT, use_netrc=False)
            try:
                status, body = response.getcode(), response.read(MAX_ANSWER_BYTES + 1)
            finally:
                response.close()
        except HTTPError as exc:
            try:
                exc.close()
            except Exception:  # only tidying up; the status is what matters
                pass
            if exc.code in accept:
                return exc.code, None
            raise SourceError("%s: HTTP %d %s" % (where, exc.code, exc.reason))
        except Exception as exc:  # the URL layer raises many types; every one means "no answer"
            raise SourceError("%s: %s" % (where, describe_failure(exc, timeout)))
        if status not in accept:
            raise SourceError("%s: HTTP %s" % (where, status))
        if len(body) > MAX_ANSWER_BYTES:
            raise SourceError("%s: answered more than %d bytes, not an address" % (where, MAX_ANSWER_BYTES))
        try:
            return status, body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise SourceError("%s: answered non-ASCII bytes %r, not an address" % (where, body[:60]))


def describe_failure(exc, timeout):
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer within %g s" % timeout
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def as_address(text, where):
    """The IP address in ``text`` (what a source answered), or SourceError naming the source."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise SourceError("%s: answered %r, which is not an IP address" % (where, text[:60]))


def ask_imds(fetch, endpoint, timeout, hide):
    """(public_ip or None, local_ip, instance_id) from IMDSv2, or SourceError.

    ``hide(token)`` is told the token at once, so that Ansible masks it in anything shown.
    """
    base = endpoint.rstrip("/")
    _, token = fetch("PUT", base + TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
                     timeout, imds=True)
    if not token:
        raise SourceError("PUT %s: answered an empty token" % (base + TOKEN_PATH))
    hide(token)
    headers = {"X-aws-ec2-metadata-token": token}
    values = {}
    for key in ("public-ipv4", "local-ipv4", "instance-id"):
        url = base + METADATA_PATH + key
        # 404: the instance has no such value (no public IPv4, an IPv6-only instance)
        status, text = fetch("GET", url, headers, timeout, imds=True, accept=(200, 404))
        values[key] = text if status == 200 else None
    for key in ("public-ipv4", "local-ipv4"):
        if values[key] is not None:  # an empty answer is an error too, not "no address"
            values[key] = as_address(values[key], "GET %s" % (base + METADATA_PATH + key))
    return values["public-ipv4"], values["local-ipv4"], values["instance-id"] or None


def ask_url(fetch, url, timeout):
    _, text = fetch("GET", url, {"Accept": "text/plain"}, timeout, imds=False)
    return as_address(text, "GET %s" % url)


def find_public_ip(params, fetch, hide=lambda secret: None):
    """Ask the sources in order; returns the module's result (without ``changed``/``msg``)."""
    result = dict(public_ip=None, source=None, local_ip=None, instance_id=None, attempts=[])

    def attempt(source, endpoint, ask):
        start = time.monotonic()
        entry = dict(source=source, endpoint=endpoint, ok=False, error=None, elapsed_ms=0.0)
        try:
            address = ask()
        except SourceError as exc:
            address, entry["error"] = None, str(exc)
        entry["elapsed_ms"] = round(ms_since(start), 3)
        result["attempts"].append(entry)
        return address

    if params["imds"]:
        def ask():
            public, result["local_ip"], result["instance_id"] = ask_imds(
                fetch, params["imds_endpoint"], params["imds_timeout"], hide)
            if public is None:
                raise SourceError("GET %s%spublic-ipv4: HTTP 404, the instance has no public IPv4 address" % (
                    params["imds_endpoint"].rstrip("/"), METADATA_PATH))
            return public

        address = attempt("imds", params["imds_endpoint"], ask)
        if address:
            result.update(public_ip=address, source="imds")
            result["attempts"][-1]["ok"] = True
            return result
    if params["url"]:
        address = attempt("url", params["url"], lambda: ask_url(fetch, params["url"], params["url_timeout"]))
        if address:
            result.update(public_ip=address, source="url")
            result["attempts"][-1]["ok"] = True
    return result


def validate(params):
    """Checks the argument_spec cannot express; InputError names the field."""
    validate_timeout(params["imds_timeout"], "imds_timeout")
    validate_timeout(params["url_timeout"], "url_timeout")
    parse_url(params["imds_endpoint"], "imds_endpoint")
    if params["url"] is not None:
        parse_url(params["url"], "url")


def failure_message(result, params):
    reasons = ["%s (%s): %s" % (a["source"], a["endpoint"], a["error"]) for a in result["attempts"]]
    message = "no source gave a public IP address: " + "; ".join(reasons)
    if params["imds"] and not params["url"]:
        message += " (no url to ask next)"
    return message


def main():
    module = AnsibleModule(
        argument_spec=dict(
            imds=dict(type="bool", default=True),
            imds_endpoint=dict(type="str", default="http://169.254.169.254"),
            imds_timeout=dict(type="float", default=1.0),
            url=dict(type="str"),
            url_timeout=dict(type="float", default=3.0),
            validate_certs=dict(type="bool", default=True),
        ),
        required_if=[("imds", False, ("url",))],
        supports_check_mode=True,
    )
    params = module.params
    empty = dict(public_ip=None, source=None, local_ip=None, instance_id=None, attempts=[], changed=False)
    try:
        validate(params)
    except InputError as exc:
        module.fail_json(msg=str(exc), **empty)

    result = find_public_ip(params, Fetcher(params["validate_certs"]), hide=module.no_log_values.add)
    if result["public_ip"] is None:
        module.fail_json(msg=failure_message(result, params), changed=False, **result)
    module.exit_json(msg="public IP %s (from %s)" % (result["public_ip"], result["source"]), changed=False,
                     **result)


if __name__ == "__main__":
    main()
