#!/usr/bin/env python3
"""Kernel UDP peer for the integration tests.

  udp_peer.py client HOST PORT SIZES COUNT   send each size COUNT times, check each echo
  udp_peer.py echo PORT [BIND]              echo every datagram back to its sender
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
    elif sys.argv[1] == "echo":
        echo(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0")
    else:
        sys.exit(__doc__)
