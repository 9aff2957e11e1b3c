#!/usr/bin/env python3
"""Stream listeners for test_machnetd_stream_services.sh.

serve PORT [reuseport]: listens on PORT (with SO_REUSEPORT when asked),
  prints "listening PORT pid PID", and answers every connection's line with
  "PID\\n" until killed.
connect IP PORT N OUT: N connections one after another (each from a new
  ephemeral port), each sends a line and reads the server's pid; writes
  {"pids": {pid: count}, "errors": [...]} to OUT.
refused IP PORT: one connection to a port nothing listens on; prints the
  errno name it ends with.
"""
import collections
import errno
import json
import os
import socket
import sys
import threading


def serve(port, reuseport):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    print(f"listening {port} pid {os.getpid()}", flush=True)
    me = f"{os.getpid()}\n".encode()

    def handle(c):
        with c:
            f = c.makefile("rb")
            while f.readline():
                c.sendall(me)

    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def connect(ip, port, n, out):
    pids = collections.Counter()
    errors = []
    for i in range(n):
        try:
            with socket.create_connection((ip, port), timeout=10) as c:
                c.sendall(b"who\n")
                line = c.makefile("rb").readline().strip()
                if not line:
                    errors.append(f"{i}: no answer")
                    continue
                pids[line.decode()] += 1
        except OSError as e:
            errors.append(f"{i}: {errno.errorcode.get(e.errno, e.errno)} {e}")
    with open(out, "w") as f:
        json.dump({"pids": pids, "errors": errors}, f)
    print(f"connect {port}: {dict(pids)} errors {len(errors)}", flush=True)
    return 0 if not errors else 1


def refused(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect((ip, port))
        print("connected")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
    return 0


def main():
    a = sys.argv[1:]
    if a and a[0] == "serve":
        serve(int(a[1]), len(a) > 2 and a[2] == "reuseport")
    elif a and a[0] == "connect" and len(a) == 5:
        sys.exit(connect(a[1], int(a[2]), int(a[3]), a[4]))
    elif a and a[0] == "refused" and len(a) == 3:
        sys.exit(refused(a[1], int(a[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
