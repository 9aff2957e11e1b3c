#!/usr/bin/env python3
"""Kernel UDP peer for the integration tests.

  udp_peer.py client HOST PORT SIZES COUNT   send each size COUNT times, check each echo
  udp_peer.py echo PORT [BIND]              echo every datagram back to its sender
  udp_peer.py refused HOST PORT             a connected socket must get ECONNREFUSED
  udp_peer.py telemetry PID KEY=MIN...      engine counters over DPDK telemetry
Exits 0 only if every reply came back byte for byte.
"""
import os
import socket
import sys


def client(host, port, sizes, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    bad = 0
    for size in sizes:
        for i in range(count):
            payload = os.urandom(size)
            for attempt in range(3):  # the first datagram may wait for ARP
                s.sendto(payload, (host, port))
                try:
                    data, addr = s.recvfrom(70000)
                    break
                except socket.timeout:
                    data, addr = None, None
            if data != payload or addr != (host, port):
                bad += 1
                print(f"udp_peer: size {size} #{i}: reply "
                      f"{'missing' if data is None else f'{len(data)} bytes, differs'}")
        print(f"udp_peer: {count} x {size} bytes echoed")
    return 1 if bad else 0


def refused(host, port):
    """The peer answers a datagram to a closed port with ICMP port unreachable,
    which Linux reports on a connected socket's next receive."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    s.connect((host, port))
    s.send(b"anyone there?")
    try:
        s.recv(100)
    except ConnectionRefusedError:
        print(f"udp_peer: {host}:{port} refused (ICMP port unreachable)")
        return 0
    except socket.timeout:
        print(f"udp_peer: no ICMP port unreachable from {host}:{port}")
        return 1
    print("udp_peer: unexpected reply")
    return 1


def telemetry(pid, checks):
    """Reads /machnet/counters from engine process PID's telemetry socket and
    checks each KEY=MIN (counter at least MIN)."""
    import json
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(f"/var/run/dpdk/machnet-{pid}/dpdk_telemetry.v2")
    json.loads(s.recv(16384))  # greeting
    s.send(b"/machnet/counters")
    counters = json.loads(s.recv(65536))["/machnet/counters"]
    bad = 0
    for check in checks:
        key, want = check.split("=")
        if counters.get(key, -1) < int(want):
            print(f"udp_peer: telemetry {key} = {counters.get(key)}, want >= {want}")
            bad += 1
    print("udp_peer: telemetry " + " ".join(f"{c.split('=')[0]}={counters.get(c.split('=')[0])}"
                                            for c in checks))
    return 1 if bad else 0


def echo(port, bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, port))
    print(f"udp_peer: echoing on {bind}:{port}", flush=True)
    while True:
        data, addr = s.recvfrom(70000)
        s.sendto(data, addr)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        sizes = [int(x) for x in sys.argv[4].split(",")]
        sys.exit(client(sys.argv[2], int(sys.argv[3]), sizes, int(sys.argv[5])))
    elif sys.argv[1] == "refused":
        sys.exit(refused(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1] == "telemetry":
        sys.exit(telemetry(sys.argv[2], sys.argv[3:]))
    elif sys.argv[1] == "echo":
        echo(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0")
    else:
        sys.exit(__doc__)
