#!/usr/bin/env python3
"""Stream connections that stay open until the test says so, so that
machnet-stat --pid can read the counters of a live process.

  hold_conn.py server PORT
      echo server (one thread per connection); prints "listening on PORT".
  hold_conn.py client HOST PORT N GO_FILE
      N connections one after the other, each echoing 64 KiB verified byte
      for byte; prints "held N" and keeps them open until GO_FILE exists.
"""
import os
import socket
import sys
import threading
import time


def echo(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def server(port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(64)
    print(f"listening on {port}", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def client(host, port, n, go_file):
    held = []
    payload = os.urandom(65536)
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(len(payload) - len(got))
            if not chunk:
                sys.exit("connection closed before the echo came back")
            got += chunk
        if got != payload:
            sys.exit("echo differs")
        held.append(s)
    print(f"held {n}", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.05)
    for s in held:
        s.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        server(int(sys.argv[2]))
    elif len(sys.argv) == 6 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(__doc__)
