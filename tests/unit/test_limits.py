"""limits.py parsers with recorded /proc contents, and the live readers against this process."""

from __future__ import annotations

import os
import socket

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import limits

PROC_LIMITS = """Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 524288               files     
Max processes             96365                96365                processes 
Max nice priority         0                    0                    
"""

SOCKSTAT = """sockets: used 21
TCP: inuse 6 orphan 1 tw 3 alloc 12 mem 2
UDP: inuse 0 mem 0
"""

NETSTAT = """TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits
TcpExt: 0 17 19 4
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""

# a LISTEN socket on 127.0.0.1:8080 with 2 connections waiting, and an established one
PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 44481 1 0000 100 0 0 10 0
   1: 0100007F:D2A4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 44482 1 0000 20 4 30 10 -1
"""

PROC_NET_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000 100 0 0 10 0
"""

NTABLE = ('[{"family":"inet","name":"arp_cache","thresh1":128,"thresh2":512,"thresh3":1024,"entries":120,'
          '"table_fulls":3},{"family":"inet","name":"arp_cache","dev":"eth0","refcnt":5},'
          '{"family":"inet6","name":"ndisc_cache","thresh1":128,"thresh2":512,"thresh3":1024,"entries":9,'
          '"table_fulls":0}]')


def test_proc_limits_are_parsed_with_unlimited_as_none():
    parsed = limits.parse_proc_limits(PROC_LIMITS)
    assert parsed["Max open files"] == {"soft": 1024, "hard": 524288, "unit": "files"}
    assert parsed["Max cpu time"] == {"soft": None, "hard": None, "unit": "seconds"}
    assert parsed["Max nice priority"] == {"soft": 0, "hard": 0, "unit": None}


def test_file_nr_port_range_sockstat_and_netstat_are_parsed():
    assert limits.parse_file_nr("693\t0\t2466170\n") == {"allocated": 693, "free": 0, "max": 2466170}
    assert limits.parse_port_range("32768\t60999\n") == [32768, 60999]
    assert limits.parse_sockstat(SOCKSTAT)["tcp"] == {"inuse": 6, "orphan": 1, "tw": 3, "alloc": 12, "mem": 2}
    assert limits.parse_netstat(NETSTAT) == {"ListenOverflows": 17, "ListenDrops": 19}


def test_proc_net_tcp_listen_sockets_and_their_accept_queue():
    (listen, established) = limits.parse_proc_net_tcp(PROC_NET_TCP)
    assert listen["address"] == "127.0.0.1" and listen["port"] == 8080 and listen["listening"]
    assert listen["rx_queue"] == 2 and listen["inode"] == 44481
    assert not established["listening"]
    (six,) = limits.parse_proc_net_tcp(PROC_NET_TCP6, socket.AF_INET6)
    assert six["address"] == "::" and six["port"] == 8080 and six["family"] == "ipv6"
    facts = limits.listener_facts(listen, {44481: 1})
    assert facts["accept_queue"] == 2 and facts["backlog"] == 1 and facts["queue_full"] is True
    assert limits.listener_facts(listen)["queue_full"] is None  # backlog unknown: no claim


def test_neighbour_tables_come_from_ip_ntable():
    tables = limits.parse_ntable_json(NTABLE)
    assert tables["ipv4"] == {"entries": 120, "table_fulls": 3, "gc_thresh1": 128, "gc_thresh2": 512,
                              "gc_thresh3": 1024}
    assert tables["ipv6"]["entries"] == 9


def test_sock_diag_answers_are_parsed_into_backlogs():
    import struct
    msg = struct.pack("=BBBBHH16s16sIIIIIIII", 2, 10, 0, 0, 0x1F90, 0, b"\0" * 16, b"\0" * 16, 0, 0, 0, 0, 2, 128,
                      0, 44481)
    data = struct.pack("=IHHII", 16 + len(msg), 20, 2, 1, 0) + msg + struct.pack("=IHHII", 20, 3, 2, 1, 0) + b"\0" * 4
    assert limits.parse_listen_backlogs(data) == ({44481: 128}, True)
    request = limits.listen_backlog_request(socket.AF_INET)
    assert len(request) == 72 and struct.unpack_from("=IH", request) == (72, 20)


def test_warnings_say_which_limit_is_reached():
    facts = {"kernel": {"file_nr": {"allocated": 95, "free": 0, "max": 100}},
             "neighbour": {"ipv4": {"entries": 1000, "table_fulls": 2, "gc_thresh3": 1024}},
             "netstat": {"ListenOverflows": 5, "ListenDrops": 5},
             "listeners": [{"port": 8080, "accept_queue": 2, "backlog": 1, "queue_full": True,
                            "processes": [{"pid": 7, "open_fds": 1000, "max_open_files": {"soft": 1024}}]}]}
    text = "\n".join(limits.warnings_for(facts))
    for words in ("fs.file-max", "table_fulls", "gc_thresh3", "ListenOverflows", "accept queue full",
                  "1000 open files of its limit 1024"):
        assert words in text


def test_a_live_listener_with_backlog_1_shows_its_full_queue_and_this_process():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    clients = []
    try:
        for _ in range(2):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        (entry,) = limits.listeners([port])
        assert entry["backlog"] == 1 and entry["accept_queue"] == 2 and entry["queue_full"]
        (process,) = entry["processes"]
        assert process["pid"] == os.getpid()
        own = limits.parse_proc_limits(open("/proc/self/limits").read())["Max open files"]
        assert process["max_open_files"] == own
        assert process["open_fds"] == len(os.listdir("/proc/%d/fd" % os.getpid()))
    finally:
        for client in clients:
            client.close()
        server.close()


def test_gather_returns_every_section():
    facts = limits.gather([])
    assert set(facts) == {"kernel", "process", "neighbour", "sockstat", "netstat", "listeners", "conntrack",
                          "limit_warnings"}
    assert facts["process"]["rlimits"]["nofile"]["soft"] > 0
    assert facts["kernel"]["ip_local_port_range"][0] < facts["kernel"]["ip_local_port_range"][1]


# --- conntrack: recorded readings (nf_conntrack_max is the machine's; tests never lower it) ---------

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "conntrack")


def _recorded(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def _proc_with(tmp_path, stat, count, maximum):
    (tmp_path / "sys" / "net" / "netfilter").mkdir(parents=True)
    (tmp_path / "net" / "stat").mkdir(parents=True)
    (tmp_path / "sys" / "net" / "netfilter" / "nf_conntrack_count").write_text("%d\n" % count)
    (tmp_path / "sys" / "net" / "netfilter" / "nf_conntrack_max").write_text("%d\n" % maximum)
    (tmp_path / "sys" / "net" / "netfilter" / "nf_conntrack_buckets").write_text("65536\n")
    (tmp_path / "net" / "stat" / "nf_conntrack").write_text(_recorded(stat))
    return str(tmp_path)


def test_conntrack_stat_is_hex_and_summed_over_cpus():
    stat = limits.parse_conntrack_stat(_recorded("full.stat"))
    assert stat["cpus"] == 2
    assert stat["entries"] == 262144  # the table's entries, once, not summed
    assert (stat["drop"], stat["early_drop"], stat["insert_failed"]) == (41, 511, 1)
    assert limits.parse_conntrack_stat("") is None
    assert limits.parse_conntrack_stat("entries drop\n0000000g 00000001\n") is None  # not hex


def test_a_full_table_is_conntrack_full_with_the_raise_the_limit_hint(tmp_path):
    facts = limits.conntrack_limits(_proc_with(tmp_path, "full.stat", 262144, 262144))
    assert facts["full"] is True and facts["count"] == facts["max"] == 262144
    verdict = limits.conntrack_verdict(facts, facts)
    assert verdict["code"] == "CONNTRACK_FULL" and verdict["rose"] == {}
    assert "nf_conntrack_max" in verdict["hint"]
    warnings = "\n".join(limits.warnings_for({"conntrack": facts}))
    assert "262144 entries of nf_conntrack_max 262144 (full" in warnings


def test_drop_counters_that_rose_during_the_run_are_conntrack_full(tmp_path):
    before = limits.conntrack_limits(_proc_with(tmp_path / "before", "healthy.stat", 12, 262144))
    after = limits.conntrack_limits(_proc_with(tmp_path / "after", "full.stat", 200000, 262144))
    verdict = limits.conntrack_verdict(before, after)
    assert verdict["code"] == "CONNTRACK_FULL" and verdict["full"] is False
    assert verdict["rose"] == {"drop": 41, "early_drop": 511, "insert_failed": 1}


def test_a_quiet_table_is_not_conntrack_full(tmp_path):
    facts = limits.conntrack_limits(_proc_with(tmp_path, "healthy.stat", 12, 262144))
    assert facts["full"] is False and facts["drop"] == 0
    assert limits.conntrack_verdict(facts, facts)["code"] is None
    assert limits.conntrack_verdict(None, None)["code"] is None
    assert limits.conntrack_limits(str(tmp_path / "nowhere")) is None  # no conntrack module: no claim
