#!/usr/bin/env python3
"""Kernel UDP peer for the preload tests.

  peer.py serve PORT [BIND]   echo every datagram; answer "whoami" with the
                              sender's IPv4 address (which path it came by);
                              echo "delay:MS" only after MS milliseconds
  peer.py client HOST PORT SIZES COUNT [BIND_PORT]
                              send each size COUNT times, check every echo;
                              exit 0 only if all came back byte for byte
  peer.py whoami HOST PORT    print the address the server saw us as
Unmodified socket code on purpose: it also runs under the preload.
"""
import os
import socket
import sys
import time


def serve(port, bind="0.0.0.0", delay_ms=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, port))
    print(f"peer: serving on {bind}:{port}", flush=True)
    while True:
        data, addr = s.recvfrom(70000)
        if delay_ms:  # every answer late: the requester is asleep by then
            time.sleep(delay_ms / 1000)
        if data == b"whoami":
            s.sendto(addr[0].encode(), addr)
        elif data.startswith(b"delay:"):  # answer late: delay:MS
            time.sleep(int(data[6:]) / 1000)
            s.sendto(data, addr)
        else:
            s.sendto(data, addr)


def client(host, port, sizes, count, bind_port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if bind_port:
        s.bind(("0.0.0.0", bind_port))
    s.settimeout(1.0)
    bad = 0
    for size in sizes:
        for i in range(count):
            payload = os.urandom(size)
            data = addr = None
            for _ in range(3):  # the first datagram may wait for ARP
                s.sendto(payload, (host, port))
                try:
                    data, addr = s.recvfrom(70000)
                    break
                except socket.timeout:
                    pass
            if data != payload or addr != (host, port):
                bad += 1
                print(f"peer: size {size} #{i}: reply "
                      f"{'missing' if data is None else f'{len(data)} bytes from {addr}, differs'}")
        print(f"peer: {count} x {size} bytes echoed", flush=True)
    return 1 if bad else 0


def whoami(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    for _ in range(3):
        s.sendto(b"whoami", (host, port))
        try:
            data, _ = s.recvfrom(100)
            print(data.decode())
            return 0
        except socket.timeout:
            pass
    print("no answer")
    return 1


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "serve":
        serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "0.0.0.0",
              int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif cmd == "client":
        sys.exit(client(sys.argv[2], int(sys.argv[3]), [int(x) for x in sys.argv[4].split(",")],
                        int(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 0))
    elif cmd == "whoami":
        sys.exit(whoami(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit(__doc__)
