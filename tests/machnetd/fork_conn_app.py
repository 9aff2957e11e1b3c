#!/usr/bin/env python3
"""Stream connections across fork() for test_machnetd_fork_conn.sh.

forking PORT: socketserver.ForkingTCPServer on PORT: the parent accepts,
  forks a child per connection and closes its copy; the child serves it.
  Prints "listening PORT pid PID".
keeping PORT: accepts, forks a child that execs /bin/true without touching
  the connection (as a program spawning a helper does), reaps it, then
  serves the connection itself. Prints "listening PORT pid PID".
  Both servers answer each request (4-byte length, then that many bytes)
  with "PID\\n" and the bytes back, until EOF.
client IP PORT N SIZE OUT: N connections, eight of them open at a time;
  each sends three requests of SIZE random bytes and checks every answer
  byte for byte; writes {"pids": {pid: count}, "errors": [...]} to OUT.
raw IP PORT N SIZE OUT: N connections to a byte echo (socat ... SYSTEM:cat):
  each sends SIZE random bytes, shuts its write side down (half close) and
  reads until EOF; the bytes must come back exactly. Same OUT (no pids).
"""
import collections
import concurrent.futures
import errno
import json
import os
import socket
import socketserver
import struct
import sys
import time


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        got = c.recv(min(n - len(buf), 1 << 16))
        if not got:
            return None
        buf += got
    return bytes(buf)


def serve_one(c):
    me = f"{os.getpid()}\n".encode()
    while True:
        hdr = recv_exact(c, 4)
        if hdr is None:
            return
        body = recv_exact(c, struct.unpack("!I", hdr)[0])
        if body is None:
            return
        c.sendall(me + body)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        serve_one(self.request)


def forking(port):
    socketserver.ForkingTCPServer.allow_reuse_address = True
    with socketserver.ForkingTCPServer(("0.0.0.0", port), Handler) as srv:
        print(f"listening {port} pid {os.getpid()}", flush=True)
        srv.serve_forever()


def keeping(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    print(f"listening {port} pid {os.getpid()}", flush=True)
    while True:
        c, _ = s.accept()
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["true"])
        os.waitpid(pid, 0)
        with c:
            serve_one(c)


def one_client(ip, port, size, i):
    with socket.create_connection((ip, port), timeout=20) as c:
        pid = None
        for k in range(3):
            data = os.urandom(size)
            c.sendall(struct.pack("!I", len(data)) + data)
            f = c.makefile("rb")
            line = f.readline()
            if not line:
                return None, f"{i}: EOF before answer {k}"
            back = f.read(size)
            f.close()
            if back != data:
                return None, f"{i}: answer {k} differs ({len(back or b'')} of {size} bytes)"
            p = line.strip().decode()
            if pid is not None and p != pid:
                return None, f"{i}: answered by {pid}, then {p}"
            pid = p
        return pid, None


def one_raw(ip, port, size, i):
    with socket.create_connection((ip, port), timeout=20) as c:
        data = os.urandom(size)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        back = bytearray()
        while True:
            got = c.recv(1 << 16)
            if not got:
                break
            back += got
        if back != data:
            return None, f"{i}: {len(back)} of {size} bytes came back, equal: {bytes(back) == data[:len(back)]}"
        return "echo", None


def run_clients(fn, ip, port, n, size, out):
    pids = collections.Counter()
    errors = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(fn, ip, port, size, i) for i in range(n)]
        for i, fu in enumerate(futs):
            try:
                pid, err = fu.result()
            except OSError as e:
                pid, err = None, f"{i}: {errno.errorcode.get(e.errno, e.errno)} {e}"
            if err:
                errors.append(err)
            else:
                pids[pid] += 1
    with open(out, "w") as f:
        json.dump({"pids": pids, "errors": errors}, f)
    secs = time.monotonic() - t0
    print(f"{n} connections in {secs:.2f} s ({n / secs:.1f}/s): {len(pids)} answering pids, "
          f"errors {len(errors)}", flush=True)
    return 0 if not errors else 1


def main():
    cmd = sys.argv[1]
    if cmd == "forking":
        forking(int(sys.argv[2]))
    elif cmd == "keeping":
        keeping(int(sys.argv[2]))
    elif cmd in ("client", "raw"):
        fn = one_client if cmd == "client" else one_raw
        ip, port, n, size, out = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        return run_clients(fn, ip, port, n, size, out)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
