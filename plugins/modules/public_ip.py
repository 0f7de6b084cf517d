#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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
  - The task fails when no source gave an address; C(results) still tells what was tried and why
    each source failed.
  - The metadata token is a credential - it is never returned or logged.
  - HTTP goes through the HTTP probe of M(netcheck.netcheck.http_check) (the same phases, timings and
    failures), directly to the host asked; no proxy and no C(~/.netrc) credentials are used.
  - A redirect is followed only within its origin (scheme, host and port), at most 5 times; a redirect
    to another host (C(169.254.169.254) included) is not followed and that source gives no address.
    C(endpoint) and each result's C(detail.final_url) show the URL that answered.
  - The module changes nothing on the host, so it runs in check mode too.
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
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
    type: str
  url_timeout:
    description: Seconds to wait for the answer of I(url) (more than 0, at most 3600).
    type: float
    default: 3
attributes:
  check_mode:
    details: The module only reads; it asks the same sources in check mode.
extends_documentation_fragment:
  - netcheck.netcheck.attributes
  - netcheck.netcheck.probe.validate_certs
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
    msg: "{{ pub.results | rejectattr('ok') | map(attribute='error') | list }}"
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
endpoint:
  description: The URL whose answer gave I(public_ip) (after same-origin redirects); null when none did.
  returned: always
  type: str
  sample: http://169.254.169.254/latest/meta-data/public-ipv4
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
results:
  description: One entry per source asked, in the order asked (empty when the input was rejected); the shape every probe of this project returns.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The source's endpoint as given (I(imds_endpoint) or I(url)).
      type: str
      sample: http://169.254.169.254
    kind:
      description: Always C(public_ip).
      type: str
      sample: public_ip
    state:
      description: >-
        C(answered) (the source gave an address), C(no_address) (it answered, but not with an address),
        C(failed) (no HTTP answer; C(detail.phase) says where it stopped).
      type: str
      choices: [answered, no_address, failed]
      sample: answered
    ok:
      description: Whether this source gave a public IP address.
      type: bool
      sample: true
    timings:
      description: C(total_ms), the time spent on this source, all its requests together.
      type: dict
      sample: {"total_ms": 3.2}
    error:
      description: Why this source gave no address (naming the request that failed), else null.
      type: str
      sample: "PUT http://169.254.169.254/latest/api/token: no answer within 1 s"
    detail:
      description: Facts of the public IP probe.
      type: dict
      contains:
        source: {description: C(imds) or C(url)., type: str}
        endpoint: {description: The endpoint as given., type: str}
        final_url: {description: The last URL asked (after same-origin redirects)., type: str}
        status: {description: The HTTP status of the last answer; null when none came., type: int}
        address: {description: The address this source gave; null when it gave none., type: str}
        local_ip: {description: The metadata service's local-ipv4 (imds only)., type: str}
        instance_id: {description: The metadata service's instance-id (imds only)., type: str}
        phase: {description: "Where a failed request stopped: resolve, connect, tls, request, processing, transfer.", type: str}
      sample:
        source: url
        endpoint: https://checkip.amazonaws.com/
        final_url: https://checkip.amazonaws.com/
        status: 200
        address: 203.0.113.17
        local_ip: null
        instance_id: null
        phase: null
summary:
  description: Counts over I(results).
  returned: always
  type: dict
  sample: {"total": 2, "ok": 1, "failed": 1, "states": {"failed": 1, "answered": 1}}
elapsed_ms:
  description: Wall time of the whole invocation in milliseconds.
  returned: always
  type: float
  sample: 48.3
"""

import time

from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.probe import InputError, outcome
from ..module_utils.netcheck.public_ip import (
    PUBLIC_IP_SPEC, failure_message, find_public_ip, summary_facts, validate,
)
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(PUBLIC_IP_SPEC), required_if=[("imds", False, ("url",))])
    start = time.monotonic()
    try:
        validate(module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc), **outcome([], start, **summary_facts([])))
    results = find_public_ip(module.params, hide=module.no_log_values.add)
    result = outcome(results, start, **summary_facts(results))
    if result["public_ip"] is None:
        module.fail_json(msg=failure_message(results, module.params), **result)
    module.exit_json(msg="public IP %s (from %s)" % (result["public_ip"], result["source"]), **result)


if __name__ == "__main__":
    main()
