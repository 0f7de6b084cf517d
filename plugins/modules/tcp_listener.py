#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a temporary TCP listener on the managed host (sudo socket -s PORT), stopped by time or on demand."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tcp_listener
short_description: Start a temporary TCP listener on the managed host, for a bounded time (socket -s PORT)
description:
  - Starts a small TCP server on I(bind):I(port) of the managed host that answers every connection,
    so that a port forward, a NAT rule or a firewall opening can be proven (for instance with
    M(netcheck.netcheck.port_check) from another host) before the real service exists.
  - In C(reply) mode it sends a fixed text (I(reply)) and closes the connection; in C(echo) mode it
    sends back whatever it receives. Every connection is served in its own thread.
  - The listener stops by itself after I(duration) seconds, so a forgotten test leaves nothing
    behind; C(state=stopped) stops it earlier.
  - It is a detached C(python3) process (its own session, no shell). A pid file per bind address
    and port in I(state_dir) records its pid and parameters; the listener removes it when it exits.
  - Idempotent. A listener already running with the same parameters is left alone (C(changed=false);
    its lifetime is not extended); one running with other parameters is restarted. When another
    process holds the port, the task fails with a message naming the port and nothing is stopped.
  - Only a process whose command line proves that it is this module's listener (for that address,
    port and pid file, in the same network namespace) is ever signalled; a pid file pointing at any
    other process is treated as stale.
  - Input is validated before anything is started or stopped; the message names the field.
version_added: "0.1.0"
author:
  - netcheck maintainers (@netcheck)
options:
  port:
    description: TCP port to listen on, 1 to 65535.
    type: int
    required: true
  bind:
    description:
      - IP address to listen on. C(0.0.0.0) listens on every IPv4 address, C(::) on every IPv6 and
        IPv4 address (dual stack). Names are not accepted (nothing is resolved).
    type: str
    default: 0.0.0.0
  state:
    description:
      - C(started) makes the listener run with these parameters, C(stopped) stops it.
    type: str
    choices: [started, stopped]
    default: started
  duration:
    description:
      - Seconds after which the listener stops by itself, 1 to 86400. Counted from its start;
        running the task again with the same parameters does not extend it.
    type: int
    default: 300
  mode:
    description:
      - C(reply) sends I(reply) to every connection, then closes it. C(echo) sends back what it receives
        until the client closes the connection.
    type: str
    choices: [echo, reply]
    default: reply
  reply:
    description:
      - Text (UTF-8) sent to every connection in C(reply) mode; C({port}) and C({bind}) in it are
        replaced by the port and the bind address. Not allowed with C(mode=echo).
      - When not given in C(reply) mode, C(netcheck listener on port {port}) followed by a newline.
    type: str
  state_dir:
    description:
      - Directory of the pid files, created when missing. Runs that share a listener must use the
        same one.
    type: path
    default: /run/netcheck-listeners
attributes:
  check_mode:
    details: Reports what it would start, restart or stop and changes nothing (a port held by another
      process fails the task in check mode too).
  diff_mode:
    details: Shows the listener's state and parameters before and after.
  platform:
    platforms: posix
    details: Linux (reads C(/proc) to recognise its own listener).
extends_documentation_fragment:
  - netcheck.netcheck.attributes.changes
notes:
  - Listening on a port below 1024 needs root (C(become=true)), and so does the default I(state_dir)
    under C(/run); without root, point I(state_dir) at a directory the user may write.
  - Several network namespaces of one machine share its file system; give each namespace its own
    I(state_dir) when they run listeners on the same address and port.
  - The listener itself is reached from the network, so the managed host's firewall must let the
    port in for the test to mean anything; that is usually what is being tested.
seealso:
  - module: netcheck.netcheck.port_check
    description: Checks from another host that the listener answers (I(send) / I(expect) against its reply).
  - module: ansible.builtin.wait_for
    description: Waits for a port on the managed host; this module makes something listen there.
"""

EXAMPLES = r"""
- name: Answer on port 8080 for ten minutes, before the real service is deployed
  netcheck.netcheck.tcp_listener:
    port: 8080
    duration: 600
  become: true
  delegate_to: app1.example.internal

- name: Prove that the load balancer forwards port 80 to app1:8080
  netcheck.netcheck.port_check:
    targets:
      - host: lb1.example.internal
        port: 80
        expect: 'netcheck listener on port 8080'

- name: Echo everything back on IPv4 and IPv6, for five minutes
  netcheck.netcheck.tcp_listener:
    port: 9000
    bind: "::"
    mode: echo

- name: A custom reply, on one address only
  netcheck.netcheck.tcp_listener:
    port: 2525
    bind: 10.0.1.20
    reply: "220 {bind}:{port} netcheck test\r\n"
    duration: 120
  register: listener

- name: Stop it without waiting for the duration
  netcheck.netcheck.tcp_listener:
    port: 2525
    bind: 10.0.1.20
    state: stopped
"""

RETURN = r"""
running:
  description: Whether this module's listener runs on I(bind):I(port) after the task (in check mode, right now).
  returned: success
  type: bool
  sample: true
pid:
  description: The pid of that running listener; null when none runs.
  returned: success
  type: int
  sample: 48211
port:
  description: The port.
  returned: success
  type: int
  sample: 8080
bind:
  description: The bind address, in canonical form (for instance C(::) for C(0::0)).
  returned: success
  type: str
  sample: 0.0.0.0
mode:
  description:
    - With C(state=started), the requested mode. With C(state=stopped), the mode of the listener that
      was found running, or null when there was none.
  returned: success
  type: str
  sample: reply
expires_at:
  description: When the running listener stops by itself (ISO 8601, UTC); null when none runs.
  returned: success
  type: str
  sample: "2025-06-01T12:10:00+00:00"
msg:
  description: What was done, in one line.
  returned: success
  type: str
  sample: "listener on 0.0.0.0:8080 started (pid 48211, mode reply) until 2025-06-01T12:10:00+00:00"
"""

from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.listener import LISTENER_SPEC, ListenerError, manage
from ..module_utils.netcheck.probe import InputError, format_hostport
from ..module_utils.netcheck.spec import argument_spec

RETURNED = ("running", "pid", "port", "bind", "mode", "expires_at")


def describe(info):
    """The listener as the diff shows it."""
    if not info["running"]:
        return {"state": "stopped"}
    return {"state": "started", "mode": info["mode"], "duration": info["duration"], "reply": info["reply"]}


def message(outcome, state, check_mode):
    where = format_hostport(outcome["bind"], outcome["port"])
    would = "would be " if check_mode else ""
    if state == "stopped":
        if not outcome["changed"]:
            return "no listener on %s" % where
        return "listener on %s (pid %s) %sstopped" % (where, outcome["stopped_pid"], would)
    if not outcome["changed"]:
        verb = "already running"
    elif outcome["restarted"]:
        verb = "%srestarted with new parameters" % would
    else:
        verb = "%sstarted" % would
    if check_mode and outcome["changed"]:
        return "listener on %s %s (mode %s)" % (where, verb, outcome["mode"])
    return "listener on %s %s (pid %s, mode %s) until %s" % (
        where, verb, outcome["pid"], outcome["mode"], outcome["expires_at"])


def main():
    module = NetcheckModule(argument_spec(LISTENER_SPEC))
    state = module.params["state"]
    try:
        listener, before, outcome = manage(module.params, module.check_mode)
    except (InputError, ListenerError) as exc:
        module.fail_json(msg=str(exc))

    result = {key: outcome[key] for key in RETURNED}
    result.update(changed=outcome["changed"], msg=message(outcome, state, module.check_mode))
    if module.diff_requested:
        after = {"state": "stopped"}
        if state == "started":
            after = {"state": "started", "mode": listener["mode"], "duration": listener["duration"],
                     "reply": listener["reply"]}
        result["diff"] = {"before": describe(before), "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
