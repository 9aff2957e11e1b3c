#!/usr/bin/env python3
"""What a running machnetd reports (machnet-stat --json), for the tests.

  mnd_stat.py figures SOCKET PREFIX
      one "key value" line per figure that must come back to its starting
      value once every application is gone: free/active leases, ports held,
      per pool in_use/baseline/ring/unaccounted, memzones, the daemon's
      hugepage files (hugetlbfs files named PREFIXmap_*); then, marked
      "info", the host's free hugepages, the daemon's DPDK heap (telemetry
      /eal/heap_info, socket 0) and counters that only grow.
  mnd_stat.py leases SOCKET
      one line per lease that is not free: queue, state, pid, comm, counters
  mnd_stat.py expect-leases SOCKET PID...
      exit 0 when exactly these pids hold active leases
  mnd_stat.py port SOCKET PORT        the pid holding PORT, or "free"
  mnd_stat.py members SOCKET PORT
      the pids of PORT's SO_REUSEPORT group members, sorted, one line;
      "free" when nobody holds it, "single PID" when one lease does
  mnd_stat.py group-rx SOCKET PORT
      the datagrams PORT's group received: the port's figure, then each
      member's as pid:count
  mnd_stat.py kill-wait SOCKET PID PORT TIMEOUT_MS [KILL|TERM]
      PID must hold an active lease and PORT; SIGKILL it (or SIGTERM: a
      program that exits cleanly on it, its library detaching), then poll until
      no lease names PID and PORT is free; print the milliseconds it took.
      Exit 1 otherwise or on timeout.
  mnd_stat.py lease-field SOCKET PID FIELD   a counter of PID's lease
  mnd_stat.py daemon-field SOCKET FIELD      a daemon figure
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

STAT = os.environ.get("MACHNET_STAT", "machnet-stat")


def stats(sock):
    out = subprocess.run([STAT, "--socket", sock, "--json"], check=True, capture_output=True,
                         text=True, timeout=10).stdout
    return json.loads(out)


def hugetlbfs_dirs():
    dirs = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "hugetlbfs":
                dirs.append(parts[1])
    return dirs


def hugepage_files(prefix):
    n = 0
    for d in hugetlbfs_dirs():
        try:
            n += sum(1 for f in os.listdir(d) if f.startswith(prefix + "map_"))
        except OSError:
            pass
    return n


def free_hugepages():
    with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
        return int(f.read())


def heap_info(prefix):
    """The daemon's DPDK malloc heap on socket 0, from its telemetry socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2")
    s.recv(4096)  # the greeting
    s.send(b"/eal/heap_info,0")
    d = json.loads(s.recv(65536))["/eal/heap_info"]
    s.close()
    return d


def figures(sock, prefix):
    j = stats(sock)
    d = j["daemon"]
    print(f"free_leases {d['free_leases']}")
    print(f"active_leases {d['active_leases']}")
    held = [l for l in j["leases"] if l["state"] != "free"]
    print(f"leases_not_free {len(held)}")
    print(f"ports_held {len(j['ports']) + j.get('ports_truncated', 0)}")
    print(f"reuseport_groups {d.get('reuseport_groups', 0)}")
    print(f"shared_ports {d.get('shared_ports', 0)}")
    sp = j.get("shared_pool")
    if sp is not None:
        print(f"shared_pool_in_use {sp['in_use']}")
        print(f"shared_pool_ring {sp['ring']}")
    for p in j["pools"]:
        q = p["queue"]
        print(f"pool{q}_in_use {p['in_use']}")
        print(f"pool{q}_baseline {p['baseline']}")
        print(f"pool{q}_ring {p['ring']}")
        print(f"pool{q}_unaccounted {p['unaccounted']}")
    print(f"memzones {d['memzones']}")
    print(f"daemon_hugepage_files {hugepage_files(prefix)}")
    print(f"info hugepages_free {free_hugepages()}")
    h = heap_info(prefix)
    print(f"info heap_size {h['Heap_size']}")
    print(f"info heap_alloc_bytes {h['Alloc_size']}")
    print(f"info heap_alloc_count {h['Alloc_count']}")
    for k in ("attaches", "reclaims", "mbufs_swept", "mbufs_unaccounted", "steered", "steer_drops",
              "icmp_unreachable_tx", "drops_total"):
        print(f"info {k} {d[k]}")


def leases(sock):
    j = stats(sock)
    for l in j["leases"]:
        if l["state"] == "free":
            continue
        print(f"queue {l['queue']} {l['state']} pid {l['pid']} comm {l['comm']} "
              f"rx {l['rx_packets']} tx {l['tx_packets']} udp_rx {l['udp_rx']} "
              f"udp_tx {l['udp_tx']} steered_in {l['steered_in']} steered_out {l['steered_out']} "
              f"steer_drops {l['steer_drops']} drops {l['drops_total']}")


def expect_leases(sock, pids):
    j = stats(sock)
    active = sorted(l["pid"] for l in j["leases"] if l["state"] == "active")
    want = sorted(pids)
    if active != want:
        print(f"active leases of pids {active}, expected {want}")
        return 1
    return 0


def port_owner(j, port):
    for p in j["ports"]:
        if p["port"] == port:
            return p["pid"]
    return None


def kill_wait(sock, pid, port, timeout_ms, sig=signal.SIGKILL):
    j = stats(sock)
    if not any(l["state"] == "active" and l["pid"] == pid for l in j["leases"]) or \
            port_owner(j, port) != pid:
        print(f"pid {pid} holds no active lease or not port {port} (held by {port_owner(j, port)})")
        return 1
    os.kill(pid, sig)
    t0 = time.monotonic()
    while True:
        j = stats(sock)
        dt = (time.monotonic() - t0) * 1000
        named = [l for l in j["leases"] if l["state"] != "free" and l["pid"] == pid]
        if not named and port_owner(j, port) is None:
            print(f"{dt:.1f}")
            return 0
        if dt > timeout_ms:
            print(f"timeout: after {dt:.0f} ms lease "
                  f"{[(l['queue'], l['state']) for l in named]}, port {port} held by "
                  f"{port_owner(j, port)}")
            return 1
        time.sleep(0.002)


def members(sock, port):
    for p in stats(sock)["ports"]:
        if p["port"] == port:
            if "members" not in p:
                return f"single {p['pid']}"
            return " ".join(str(pid) for pid in sorted(m["pid"] for m in p["members"]))
    return "free"


def group_rx(sock, port):
    for p in stats(sock)["ports"]:
        if p["port"] == port and "members" in p:
            return " ".join([str(p["rx_datagrams"])] +
                            [f"{m['pid']}:{m['rx_datagrams']}" for m in p["members"]])
    return "none"


def lease_field(sock, pid, field):
    for l in stats(sock)["leases"]:
        if l["state"] != "free" and l["pid"] == pid:
            print(l[field])
            return 0
    print(f"no lease of pid {pid}")
    return 1


if __name__ == "__main__":
    a = sys.argv[1:]
    cmd = a[0] if a else ""
    if cmd == "figures" and len(a) == 3:
        figures(a[1], a[2])
    elif cmd == "leases" and len(a) == 2:
        leases(a[1])
    elif cmd == "expect-leases" and len(a) >= 2:
        sys.exit(expect_leases(a[1], [int(x) for x in a[2:]]))
    elif cmd == "port" and len(a) == 3:
        owner = port_owner(stats(a[1]), int(a[2]))
        print("free" if owner is None else owner)
    elif cmd == "members" and len(a) == 3:
        print(members(a[1], int(a[2])))
    elif cmd == "group-rx" and len(a) == 3:
        print(group_rx(a[1], int(a[2])))
    elif cmd == "kill-wait" and len(a) in (5, 6) and (len(a) == 5 or a[5] in ("KILL", "TERM")):
        sig = signal.SIGTERM if len(a) == 6 and a[5] == "TERM" else signal.SIGKILL
        sys.exit(kill_wait(a[1], int(a[2]), int(a[3]), float(a[4]), sig))
    elif cmd == "lease-field" and len(a) == 4:
        sys.exit(lease_field(a[1], int(a[2]), a[3]))
    elif cmd == "daemon-field" and len(a) == 3:
        print(stats(a[1])["daemon"][a[2]])
    else:
        sys.exit(__doc__)
