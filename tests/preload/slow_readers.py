#!/usr/bin/env python3
"""Slow readers must not starve a fast one (run on the kernel and under the
preload; the same program both times).

  slow_readers.py serve ECHO_PORT SLOW_BASE N   bind N sockets on SLOW_BASE..
                                                that are never read, echo on
                                                ECHO_PORT until killed
  slow_readers.py flood HOST SLOW_BASE N COUNT  COUNT datagrams to each slow
                                                port, paced in rounds
  slow_readers.py ping HOST ECHO_PORT COUNT     COUNT requests, each answered
                                                byte for byte (3 tries of 1 s);
                                                exit 0 only if all were
"""
import os
import socket
import sys
import time


def serve(echo_port, base, n):
    slow = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", base + i))
        slow.append(s)  # kept open, never read
    e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    e.bind(("0.0.0.0", echo_port))
    print(f"slow_readers: {n} slow sockets, echo on {echo_port}", flush=True)
    while True:
        data, addr = e.recvfrom(65536)
        e.sendto(data, addr)


def flood(host, base, n, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * 64
    sent = 0
    for _ in range(0, count, 100):
        for i in range(n):
            for _ in range(100):
                s.sendto(payload, (host, base + i))
                sent += 1
        time.sleep(0.005)
    print(f"slow_readers: flooded {n} ports with {sent} datagrams", flush=True)


def ping(host, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    missing = 0
    for i in range(count):
        payload = os.urandom(32) + i.to_bytes(4, "big")
        for _ in range(3):
            s.sendto(payload, (host, port))
            try:
                data = s.recv(65536)
                while data != payload:  # a late reply to an earlier try
                    data = s.recv(65536)
                break
            except socket.timeout:
                data = None
        if data is None:
            missing += 1
            if missing == 10:  # starved: no need to wait out the rest
                missing = count - i - 1 + missing
                break
    print(f"slow_readers: {count - missing} of {count} answered", flush=True)
    return 1 if missing else 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(int(args[0]), int(args[1]), int(args[2]))
    elif cmd == "flood":
        flood(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        sys.exit(ping(args[0], int(args[1]), int(args[2])))
