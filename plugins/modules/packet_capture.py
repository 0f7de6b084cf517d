#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: bounded tcpdump captures on the managed host, summarised per flow."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: packet_capture
short_description: Bounded tcpdump packet captures on the managed host, with a per-flow summary
description:
  - Runs C(tcpdump) on the managed host with a filter, and always with three bounds that the
    module itself enforces - a wall-clock I(duration) (its own timer, then SIGINT), a packet count
    (I(max_packets), tcpdump's C(-c)) and a file size (I(max_bytes), polled). The result says which
    bound ended the capture (C(ended_by)).
  - C(state=captured) (one-shot) captures until a bound and returns. C(state=started) returns a
    capture I(id) at once and leaves a detached supervisor that still stops at the bounds if nothing
    stops it; C(state=stopped) stops it and returns the result. C(state=absent) removes captures.
  - No tcpdump outlives its capture. tcpdump dies with its supervisor (parent-death signal); the
    one-shot mode stops when the controller's connection goes away (C(ended_by=controller_lost));
    every run of the module stops any tcpdump whose supervisor is gone.
  - The filter is given structured (I(filter) as a mapping of C(host), C(net), C(port), C(proto),
    combined with C(and) / C(or) / C(not)) or as a raw BPF expression (I(filter) as a string). It is
    compiled with C(tcpdump -d) before anything starts, so a bad one fails with tcpdump's own message
    and nothing runs.
  - The pcap is written in the module's own directory C(/var/tmp/netcheck-capture/<id>/), mode 0600,
    owned by the SSH user when the module runs through C(sudo) (or by I(owner)), so that
    M(ansible.builtin.fetch) gets it without C(become). It is summarised on the host with the standard
    library (link types Ethernet, Linux cooked v1/v2, raw IP) - per flow the 5-tuple, packets and bytes
    per direction, SYN / SYN-ACK / RST / FIN counts, Zeek's C(conn_state) and C(history), the handshake
    RTT and where it was measured, retransmissions and the ICMP errors that answer the flow; ICMP echo
    requests and replies per pair. See C(docs/capture.md).
  - Input is validated before anything starts; the message names the field.
version_added: "0.3.0"
author:
  - netcheck maintainers (@netcheck)
options:
  state:
    description:
      - C(captured) captures until a bound and returns the result (one-shot).
      - C(started) starts a capture in the background and returns its I(id) once tcpdump listens.
      - C(stopped) stops the capture I(id) (if still running) and returns its result.
      - C(absent) removes the capture I(id), or without I(id) every finished capture of this host
        older than I(max_age) seconds.
    type: str
    choices: [captured, started, stopped, absent]
    default: captured
  id:
    description:
      - The capture's id. Required with C(stopped). With C(captured) / C(started) a new capture gets
        this id (letters, digits, C(_), C(-), C(.), at most 64), or a generated one when omitted.
    type: str
  filter:
    description:
      - What to capture. A string is a raw BPF expression (C(tcp port 80 and host 10.0.0.5)).
      - A mapping is a structured filter. A term has one or more of C(host) (an IP address or a name,
        resolved on the host; or a list of them, any of which matches), C(net) (CIDR, or a list), C(port) (a number or a C(low-high) range), C(proto)
        (C(tcp), C(udp), C(icmp), C(icmp6), C(ip), C(ip6), C(arp), C(sctp)) and C(direction)
        (C(src), C(dst), C(src or dst), C(src and dst)), which combine with C(and). Terms combine with
        the keys C(and) and C(or) (each a list of filters) and C(not) (one filter).
      - Omitted, everything on the interface is captured (still within the bounds).
    type: raw
  interface:
    description:
      - The interface to capture on; C(any) captures on all of them (Linux cooked v2 link type).
      - Default, the interface that routes to the first of I(targets) (C(ip route get)), else to the
        first host or network the structured filter names.
    type: str
  targets:
    description: Hosts the capture is about; the first one chooses the default I(interface).
    type: list
    elements: str
    default: []
  snaplen:
    description: Bytes kept of every packet, 1 to 262144.
    type: int
    default: 262144
  duration:
    description: Seconds after which the capture stops, 1 to 86400, even when nothing matches.
    type: int
    default: 60
  max_packets:
    description: Packets after which the capture stops, 1 to 100000000 (tcpdump's C(-c)).
    type: int
    default: 100000
  max_bytes:
    description:
      - Size of the pcap after which the capture stops, 1024 to 4294967296 bytes. The size is polled
        every 0.1 s, so the file may exceed it by what arrives in that time.
    type: int
    default: 104857600
  file_name:
    description:
      - Name of the pcap inside the capture's directory, a plain name ending in C(.pcap); a path is
        refused. Default C(<interface>.pcap).
    type: str
  owner:
    description:
      - User (name or uid) the pcap belongs to. Default, the user C(sudo) ran the module for
        (C(SUDO_UID)), else the user the module runs as.
    type: str
  summary:
    description: Return the per-flow summary (C(summary)); the file facts are returned either way.
    type: bool
    default: true
  max_age:
    description: With C(state=absent) and no I(id), remove only finished captures older than this (seconds).
    type: int
    default: 0
attributes:
  check_mode:
    details: Validates everything and compiles the filter (C(tcpdump -d)); starts, stops and removes nothing.
  diff_mode:
    support: none
  platform:
    details: Linux, with C(tcpdump) and C(iproute2). Capturing needs root (C(become=true)).
extends_documentation_fragment:
  - netcheck.netcheck.attributes.changes
notes:
  - Capturing needs root; the pcap is then handed to the SSH user (C(SUDO_UID)) so that fetching it
    needs no C(become).
  - Packets sent by the host often carry wrong TCP/UDP checksums in the capture (checksum offload);
    that is normal and the summary does not check checksums.
  - C(-i any) records no Ethernet headers (Linux cooked); a packet that crosses two interfaces of the
    host is seen twice.
seealso:
  - module: ansible.builtin.fetch
    description: Copies the pcap to the controller (see capture.yml).
  - module: netcheck.netcheck.port_check
    description: The TCP check whose packets a capture usually explains.
"""

EXAMPLES = r"""
- name: Capture port 5432 traffic with the database for 30 s and summarise it
  netcheck.netcheck.packet_capture:
    filter: {host: 10.0.6.20, port: 5432}
    duration: 30
  become: true
  register: cap

- name: Start a capture, run the check, stop it
  netcheck.netcheck.packet_capture:
    state: started
    filter:
      or:
        - {proto: tcp, port: 8080}
        - {proto: icmp}
    targets: [10.0.5.11]          # the interface that routes there
    duration: 300                 # stops by itself in the worst case
  become: true
  register: started

- name: The check the capture is about
  netcheck.netcheck.port_check:
    targets: [{host: 10.0.5.11, port: 8080}]

- name: Stop the capture and get the summary
  netcheck.netcheck.packet_capture:
    state: stopped
    id: "{{ started.id }}"
  become: true
  register: stopped

- name: Fetch the pcap without become (it belongs to the SSH user)
  ansible.builtin.fetch:
    src: "{{ stopped.pcap.path }}"
    dest: "runs/{{ inventory_hostname }}/"
    flat: false

- name: Raw BPF on every interface, stop at 1000 packets or 1 MiB
  netcheck.netcheck.packet_capture:
    filter: "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0"
    interface: any
    max_packets: 1000
    max_bytes: 1048576
  become: true

- name: Remove every finished capture older than a day
  netcheck.netcheck.packet_capture:
    state: absent
    max_age: 86400
  become: true
"""

RETURN = r"""
id:
  description: The capture's id.
  returned: always except state=absent without id
  type: str
  sample: 20261126T101500-3fa2c1d9
running:
  description: Whether the capture still runs after the task.
  returned: success
  type: bool
  sample: false
interface:
  description: The interface captured on.
  returned: state is captured, started or stopped
  type: str
  sample: eth0
filter:
  description: The BPF expression given to tcpdump (empty for everything).
  returned: state is captured, started or stopped
  type: str
  sample: "(host 10.77.0.12) and (port 80)"
snaplen:
  description: Bytes kept per packet.
  returned: state is captured, started or stopped
  type: int
  sample: 262144
bounds:
  description: The three bounds of the capture.
  returned: state is captured, started or stopped
  type: dict
  sample: {duration: 60, max_packets: 100000, max_bytes: 104857600}
pid:
  description: The detached supervisor's pid.
  returned: state=started
  type: int
  sample: 48211
tcpdump_pid:
  description: tcpdump's pid.
  returned: state=started
  type: int
  sample: 48212
expires_at:
  description: When the duration bound stops the capture (ISO 8601, UTC).
  returned: state=started
  type: str
  sample: "2026-11-26T10:16:00+00:00"
ended_by:
  description:
    - What ended the capture. C(count), C(duration), C(size) are the bounds; C(stopped) is
      C(state=stopped); C(controller_lost) means the controller went away during a one-shot capture;
      C(supervisor_lost) that the supervisor was killed (its tcpdump was then stopped); C(error) that
      tcpdump failed (see C(error)). Null in check mode.
  returned: state is captured or stopped
  type: str
  sample: duration
started_at:
  description: When tcpdump started (ISO 8601, UTC).
  returned: state is captured or stopped
  type: str
  sample: "2026-11-26T10:15:00+00:00"
ended_at:
  description: When it ended.
  returned: state is captured or stopped
  type: str
  sample: "2026-11-26T10:16:00+00:00"
elapsed_s:
  description: Seconds the capture ran.
  returned: state is captured or stopped
  type: float
  sample: 60.104
error:
  description: Why tcpdump failed, or null.
  returned: state is captured or stopped
  type: str
  sample: null
pcap:
  description:
    - The pcap. C(path), C(exists), C(size) (bytes), C(sha256), C(mode) (C(0600)), C(owner_uid),
      C(packets), C(first_ts) and C(last_ts) (epoch seconds of the first and last packet, null when
      empty), C(link_type) and C(link_type_name) (1 EN10MB, 113 LINUX_SLL, 276 LINUX_SLL2, 101 RAW),
      C(truncated) (the last record was cut). With C(state=started) only C(path).
  returned: state is captured, started or stopped
  type: dict
  sample: {path: /var/tmp/netcheck-capture/20261126T101500-3fa2c1d9/eth0.pcap, exists: true, size: 1904,
           sha256: 9f2c..., mode: "0600", owner_uid: 1000, packets: 14, first_ts: 1795684500.12,
           last_ts: 1795684501.3, link_type: 1, link_type_name: EN10MB, truncated: false}
tcpdump:
  description: >-
    tcpdump's own closing counts (C(captured), C(received_by_filter), C(dropped_by_kernel),
    C(dropped_by_interface), null when it printed none), its exit code C(rc) and the end of its C(stderr).
  returned: state is captured or stopped
  type: dict
  sample: {captured: 14, received_by_filter: 14, dropped_by_kernel: 0, dropped_by_interface: 0, rc: 0,
           stderr: "tcpdump: listening on eth0 ..."}
summary:
  description:
    - The per-flow summary, null when I(summary=false) or no pcap was written.
    - C(flows), one per connection, oriented originator to responder as in Zeek's conn.log -
      C(proto), C(orig_h), C(orig_p), C(resp_h), C(resp_p), C(first_ts), C(last_ts), C(duration_ms),
      C(orig_pkts) / C(resp_pkts), C(orig_ip_bytes) / C(resp_ip_bytes) (IP lengths),
      C(orig_bytes) / C(resp_bytes) (payload), C(orig_flags) / C(resp_flags) (TCP C(syn), C(syn_ack),
      C(rst), C(fin) counts; null for other protocols), C(conn_state) (S0, S1, SF, REJ, S2, S3, RSTO,
      RSTR, RSTOS0, RSTRH, SH, SHR, OTH), C(history) (Zeek's letters), C(local) (C(orig), C(resp) or
      null, the side this host is on), C(handshake) (C(rtt_ms), C(measured_at) originator, responder
      or between, C(syn_to_synack_ms), C(synack_to_ack_ms); null without a SYN and SYN-ACK),
      C(retransmissions) (C(orig), C(resp)), C(icmp_errors) (the ICMP errors quoting this flow -
      C(from), C(type), C(code), C(name), C(count), C(first_ts), C(last_ts), C(family)).
    - C(icmp_echo), per pair - C(requester), C(responder), C(requests), C(replies), C(first_ts), C(last_ts).
    - C(undecoded), packets that were not IP (ARP...) or could not be read.
  returned: state is captured or stopped
  type: dict
  sample: {flows: [{proto: tcp, orig_h: 10.77.0.11, orig_p: 40512, resp_h: 10.77.0.12, resp_p: 80,
           conn_state: REJ, history: Sr, orig_pkts: 1, resp_pkts: 1, icmp_errors: []}],
           icmp_echo: [{requester: 10.77.0.11, responder: 10.77.0.12, requests: 3, replies: 3}], undecoded: 2}
summary_error:
  description: Why no summary could be made (not a pcap, no file), or null.
  returned: state is captured or stopped
  type: str
  sample: null
removed:
  description: The ids of the captures removed.
  returned: state=absent
  type: list
  elements: str
  sample: [20261126T101500-3fa2c1d9]
reaped:
  description: Captures whose supervisor was gone and whose tcpdump this run stopped.
  returned: success
  type: list
  elements: str
  sample: []
msg:
  description: What was done, in one line.
  returned: always
  type: str
  sample: "capture 20261126T101500-3fa2c1d9 on eth0 ended by duration: 14 packets, 1904 bytes"
"""

from ..module_utils.netcheck.capture import CAPTURE_SPEC, CaptureError, manage
from ..module_utils.netcheck.module import NetcheckModule
from ..module_utils.netcheck.probe import InputError
from ..module_utils.netcheck.spec import argument_spec


def main():
    module = NetcheckModule(argument_spec(CAPTURE_SPEC), required_if=[("state", "stopped", ("id",))])
    try:
        result, failed = manage(module.params, module.run, module.check_mode)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    except (CaptureError, OSError) as exc:
        module.fail_json(msg="packet_capture: %s" % exc)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
