#!/usr/bin/env python3
"""A pre-fork UDP server and its client (test_machnetd_fork_share.sh).

  fork_share_app.py serve PORT WORKERS
      binds PORT, forks WORKERS processes that all recvfrom on the inherited
      socket and answer each request with "<pid>|<request>"; the parent only
      waits for them. Prints "serving on port PORT, workers PID,PID,...".
  fork_share_app.py client HOST PORT REQUESTS WINDOW OUT [KILL_PID KILL_AT]
      sends REQUESTS requests "req:<id>", at most WINDOW outstanding, each
      once (no resend: a lost request stays unanswered), waits for the last
      answers, and writes {id: [pids that answered]} to OUT (JSON). With
      KILL_PID, sends it SIGKILL once KILL_AT answers have come.
  fork_share_app.py bench HOST PORT SECONDS WINDOW
      closed loop with WINDOW outstanding requests for SECONDS; prints
      "bench: N requests/s" (lost requests are sent again after 50 ms).
Plain blocking sockets: the same program runs on kernel sockets and under
the preload.
"""
import json
import os
import select
import signal
import socket
import sys
import time


def serve(port, workers):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            me = str(os.getpid()).encode()
            try:
                while True:
                    data, addr = s.recvfrom(65536)
                    s.sendto(me + b"|" + data, addr)
            except OSError as e:
                print(f"worker {os.getpid()}: {e}", flush=True)
                os._exit(1)
        pids.append(pid)
    print(f"serving on port {port}, workers {','.join(map(str, pids))}", flush=True)

    def stop(*_):
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in pids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        print(f"worker {pid} ended (status {status})", flush=True)


def client(host, port, requests, window, out, kill_pid=0, kill_at=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.setblocking(False)
    answers = {}
    bad = 0
    sent = 0
    got = 0
    killed = False
    last_progress = time.monotonic()
    outstanding = 0
    while True:
        while sent < requests and outstanding < window:
            s.sendto(f"req:{sent}".encode(), (host, port))
            sent += 1
            outstanding += 1
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            # Nothing for a while: what is outstanding is lost; go on.
            if time.monotonic() - last_progress > 1.0:
                if sent >= requests:
                    break
                outstanding = 0
                last_progress = time.monotonic()
            continue
        while True:
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            parts = data.split(b"|", 1)
            f = parts[-1].split(b":")
            if addr != (host, port) or len(parts) != 2 or len(f) != 2 or f[0] != b"req":
                print(f"client: stray reply {data[:60]!r} from {addr}", flush=True)
                bad += 1
                continue
            answers.setdefault(int(f[1]), []).append(int(parts[0]))
            got += 1
            outstanding = max(0, outstanding - 1)
            last_progress = time.monotonic()
            if kill_pid and not killed and got >= kill_at:
                os.kill(kill_pid, signal.SIGKILL)
                killed = True
                print(f"client: killed {kill_pid} after {got} answers", flush=True)
    with open(out, "w") as fo:
        json.dump({"requests": requests, "answers": answers, "bad": bad}, fo)
    unanswered = requests - len(answers)
    twice = sum(1 for v in answers.values() if len(v) > 1)
    print(f"client: {requests} requests, {len(answers)} answered, {unanswered} unanswered, "
          f"{twice} answered more than once, {bad} bad replies", flush=True)
    return 0


def bench(host, port, seconds, window):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.setblocking(False)
    pending = {}
    nxt = 0
    done = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while len(pending) < window:
            s.sendto(f"req:{nxt}".encode(), (host, port))
            pending[nxt] = now
            nxt += 1
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            while True:
                try:
                    data, _ = s.recvfrom(65536)
                except BlockingIOError:
                    break
                f = data.split(b"|", 1)[-1].split(b":")
                if len(f) == 2 and pending.pop(int(f[1]), None) is not None:
                    done += 1
        # Lost requests: sent again under a new id.
        for k in [k for k, t in pending.items() if now - t > 0.05]:
            del pending[k]
    rate = done / (time.monotonic() - t0)
    print(f"bench: {rate:.0f} requests/s ({done} in {seconds} s, window {window})", flush=True)
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "serve":
        return serve(int(a[1]), int(a[2]))
    if len(a) in (6, 8) and a[0] == "client":
        extra = [int(x) for x in a[6:8]]
        return client(a[1], int(a[2]), int(a[3]), int(a[4]), a[5], *extra)
    if len(a) == 5 and a[0] == "bench":
        return bench(a[1], int(a[2]), float(a[3]), int(a[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
