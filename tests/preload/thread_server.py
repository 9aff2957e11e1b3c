#!/usr/bin/env python3
"""A UDP echo server whose socket is served by another thread, its client,
and the kernel's statistics of a process's AF_XDP sockets.

  thread_server.py serve PORT         bind in the main thread, echo every
                                      datagram from a second thread
  thread_server.py client HOST PORT N [WINDOW]
                                      N numbered requests, at most WINDOW
                                      waiting (one unanswered for 0.3 s no
                                      longer holds its place); 2 s for the
                                      last replies; exit 0 only if every
                                      request was answered
  thread_server.py xsk-stats PID      XDP_STATISTICS of each AF_XDP socket
                                      of PID (pidfd_getfd, getsockopt), one
                                      line per socket: name=value ...
Unmodified socket code: the server runs on the kernel and under the preload.
"""
import ctypes
import os
import socket
import struct
import sys
import threading
import time

STALE_S = 0.3
GRACE_S = 2.0


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))

    def loop():
        while True:
            data, addr = s.recvfrom(70000)
            s.sendto(data, addr)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    print(f"thread_server: serving port {port} from a second thread", flush=True)
    t.join()


def client(host, port, n, window):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.05)
    pad = b"r" * 56
    waiting = {}  # request number -> time sent
    sent = answered = 0
    last_reply = time.monotonic()
    while sent < n or waiting:
        now = time.monotonic()
        live = sum(1 for t in waiting.values() if now - t < STALE_S)
        while sent < n and live < window:
            s.sendto(struct.pack("!Q", sent) + pad, (host, port))
            waiting[sent] = time.monotonic()
            sent += 1
            live += 1
        try:
            data, _ = s.recvfrom(70000)
        except socket.timeout:
            if sent == n and time.monotonic() - last_reply > GRACE_S:
                break
            continue
        last_reply = time.monotonic()
        k = struct.unpack("!Q", data[:8])[0]
        if waiting.pop(k, None) is not None:
            answered += 1
    lost = sorted(waiting)
    print(f"thread_server: {answered} of {n} answered, {len(lost)} lost"
          + (f" (requests {lost[:10]})" if lost else ""), flush=True)
    return 1 if lost else 0


XDP_STATS = ["rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
             "rx_fill_ring_empty_descs", "tx_ring_empty_descs"]
SOL_XDP = 283
XDP_STATISTICS = 7
SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and the other unified tables


def xsk_stats(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    found = 0
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                continue
        except OSError:
            continue
        mine = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
        if mine < 0:
            sys.exit(f"pidfd_getfd({pid}, {fd}): {os.strerror(ctypes.get_errno())}")
        stats = (ctypes.c_uint64 * len(XDP_STATS))()
        size = ctypes.c_uint32(ctypes.sizeof(stats))
        if libc.getsockopt(mine, SOL_XDP, XDP_STATISTICS, stats, ctypes.byref(size)) == 0:
            print(" ".join(f"{k}={v}" for k, v in zip(XDP_STATS, stats)))
            found += 1
        os.close(mine)
    os.close(pidfd)
    return 0 if found else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "serve":
        sys.exit(serve(int(a[1])))
    elif len(a) in (4, 5) and a[0] == "client":
        sys.exit(client(a[1], int(a[2]), int(a[3]), int(a[4]) if len(a) == 5 else 16))
    elif len(a) == 2 and a[0] == "xsk-stats":
        sys.exit(xsk_stats(int(a[1])))
    else:
        sys.exit(__doc__)
