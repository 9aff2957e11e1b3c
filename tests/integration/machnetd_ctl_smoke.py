#!/usr/bin/env python3
"""Smoke test of a running machnetd's control protocol (control_protocol.h).

    machnetd_ctl_smoke.py --socket /run/machnet/machnetd.sock [--udp]

Needs a daemon with at least 3 queues (2 leasable) and no other clients.
With --udp the host must reach the daemon's address (a tap with an address
in its subnet): datagrams to a bound port are then steered to the lease's
ring and reclaimed with it.

Exercises INFO, ATTACH (twice: -EALREADY; until -EBUSY), BIND (-EADDRINUSE,
ephemeral, -EADDRNOTAVAIL), UNBIND, DETACH, STATS, protocol version
mismatch, malformed messages, and reclaim after SIGKILL of a lease holder
and after the exit of an attached process whose forked child keeps the
socket open (both within 1 s). Exit status 0 when everything passed.
"""
import argparse
import errno
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

MAGIC = 0x4D4E4350
VERSION = 1
INFO, ATTACH, BIND, UNBIND, DETACH, STATS = 1, 2, 3, 4, 5, 6
HDR = struct.Struct("<IHHIi")
INFO_REPLY = struct.Struct("<IHHIi I B 6s B I H H H H i 64s")
ATTACH_REPLY = struct.Struct("<IHHIi HHHH Q Q I I B 6s B 64s 64s 32s")
BIND_REQ = struct.Struct("<IHHIi I H B B")
BIND_REPLY = struct.Struct("<IHHIi H H I")
UNBIND_REQ = struct.Struct("<IHHIi H B B I")
assert INFO_REPLY.size == 108 and ATTACH_REPLY.size == 216
assert BIND_REQ.size == BIND_REPLY.size == UNBIND_REQ.size == 24

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(2)
        self.s.connect(path)
        self.seq = 0

    def request(self, mtype, body=b"", version=VERSION):
        self.seq += 1
        self.s.send(HDR.pack(MAGIC, version, mtype, self.seq, 0) + body)
        r = self.s.recv(70000)
        magic, ver, rtype, seq, status = HDR.unpack_from(r)
        assert magic == MAGIC and rtype == mtype and seq == self.seq, "reply header mismatch"
        return status, r

    def info(self):
        st, r = self.request(INFO)
        return st, INFO_REPLY.unpack(r[: INFO_REPLY.size]) if st == 0 else None

    def attach(self, comm=b"smoke"):
        st, r = self.request(ATTACH, struct.pack("16s", comm))
        return st, ATTACH_REPLY.unpack(r[: ATTACH_REPLY.size]) if st == 0 else None

    def bind(self, port, ip=0):
        st, r = self.request(BIND, struct.pack("<I H B B", ip, port, 17, 0))
        return st, BIND_REPLY.unpack(r[: BIND_REPLY.size])[5]

    def unbind(self, port):
        st, _ = self.request(UNBIND, struct.pack("<H B B I", port, 17, 0, 0))
        return st

    def detach(self):
        return self.request(DETACH)[0]

    def stats(self):
        st, r = self.request(STATS)
        return json.loads(r[HDR.size :].split(b"\0", 1)[0].decode())

    def close(self):
        self.s.close()


def lease(stats, q):
    return next(l for l in stats["leases"] if l["queue"] == q)


def wait_free(path, q, port, limit=1.0):
    """Seconds until lease q is free and port unbound, or None."""
    t0 = time.monotonic()
    c = Client(path)
    try:
        while time.monotonic() - t0 < limit + 1:
            s = c.stats()
            if lease(s, q)["state"] == "free" and all(p["port"] != port for p in s["ports"]):
                return time.monotonic() - t0
            time.sleep(0.005)
    finally:
        c.close()
    return None


CHILD = r"""
import socket, struct, sys, os, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(struct.pack("<IHHIi", 0x4D4E4350, 1, 2, 1, 0) + struct.pack("16s", b"victim"))
r = s.recv(1000)
q = struct.unpack_from("<H", r, 16)[0]
s.send(struct.pack("<IHHIi", 0x4D4E4350, 1, 3, 2, 0) + struct.pack("<I H B B", 0, int(sys.argv[2]), 17, 0))
s.recv(1000)
child = 0
if sys.argv[3] == "fork":
    child = os.fork()
    if child == 0:
        time.sleep(30)  # keeps the socket open; the parent is killed
        os._exit(0)
print(q, child, flush=True)
time.sleep(30)
"""


def victim(path, port, mode):
    p = subprocess.Popen([sys.executable, "-c", CHILD, path, str(port), mode], stdout=subprocess.PIPE)
    q, child = map(int, p.stdout.readline().split())
    return p, q, child


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", default="/run/machnet/machnetd.sock")
    ap.add_argument("--udp", action="store_true", help="also send datagrams to a bound port")
    a = ap.parse_args()
    path = a.socket

    c1 = Client(path)
    st, info = c1.info()
    check(st == 0, "INFO answers")
    ip = info[5]
    nq, free0, dpid = info[11], info[12], info[14]
    dev = info[15].rstrip(b"\0").decode()
    check(nq >= 3 and free0 == nq - 1, f"INFO: {nq} queues, {free0} free, device {dev}, pid {dpid}")

    st, _ = c1.request(INFO, version=99)
    check(st == -errno.EPROTONOSUPPORT, "wrong version -> -EPROTONOSUPPORT")
    st, _ = c1.bind(5000)
    check(st == -errno.EINVAL, "BIND without a lease -> -EINVAL")

    st, r = c1.attach()
    check(st == 0 and r[5] >= 1, f"ATTACH -> queue {r[5] if r else None}")
    q1 = r[5]
    check(r[7] == q1 and r[18].rstrip(b"\0") == b"machnetd_shm", "lcore_id == queue, shm name")
    check(r[16].rstrip(b"\0").startswith(b"machnetd-"), f"eal prefix {r[16].rstrip(bytes(1))}")
    st, _ = c1.attach()
    check(st == -errno.EALREADY, "second ATTACH on one connection -> -EALREADY")

    st, p = c1.bind(5000)
    check(st == 0 and p == 5000, "BIND 5000")
    st, _ = c1.bind(5000)
    check(st == -errno.EADDRINUSE, "BIND 5000 again (same lease) -> -EADDRINUSE")
    st, p = c1.bind(0)
    check(st == 0 and 32768 <= p <= 60999, f"ephemeral BIND -> {p}")
    st, _ = c1.bind(5001, ip=0x01020304)
    check(st == -errno.EADDRNOTAVAIL, "BIND to a foreign address -> -EADDRNOTAVAIL")
    st, p2 = c1.bind(5002, ip=ip)
    check(st == 0, "BIND with the host address")

    c2 = Client(path)
    st, r = c2.attach(b"second")
    check(st == 0 and r[5] != q1, f"second client ATTACH -> queue {r[5] if r else None}")
    q2 = r[5]
    st, _ = c2.bind(5000)
    check(st == -errno.EADDRINUSE, "other lease BIND 5000 -> -EADDRINUSE")
    check(c2.unbind(5000) == -errno.EINVAL, "UNBIND of another lease's port -> -EINVAL")
    check(c1.unbind(5000) == 0, "UNBIND 5000 by its holder")
    st, _ = c2.bind(5000)
    check(st == 0, "BIND 5000 by the other lease after UNBIND")

    s = c1.stats()
    check(lease(s, q1)["state"] == "active" and lease(s, q1)["comm"] == "smoke", "STATS lease")
    check(any(p["port"] == 5000 and p["queue"] == q2 for p in s["ports"]), "STATS port 5000")
    check("drops" in s["daemon"] and len(s["pools"]) == nq, "STATS daemon and pools")

    # Exhaust the leases.
    extra = []
    while True:
        c = Client(path)
        st, _ = c.attach(b"filler")
        extra.append(c)
        if st != 0:
            check(st == -errno.EBUSY, "ATTACH with no queue free -> -EBUSY")
            break
        if len(extra) > 20:
            check(False, "ATTACH never returns -EBUSY")
            break
    for c in extra:
        c.close()

    # Malformed input closes that connection only.
    for what, msg in [("short", b"abc"), ("bad magic", HDR.pack(1, 1, 1, 1, 0))]:
        c = Client(path)
        c.s.send(msg)
        try:
            got = c.s.recv(100)
        except OSError:
            got = b""
        check(got == b"", f"malformed ({what}) -> connection closed")
        c.close()
    st, _ = Client(path).info()
    check(st == 0, "daemon alive after malformed input")

    check(c2.detach() == 0, "DETACH")
    check(c2.detach() == -errno.EINVAL, "DETACH without a lease -> -EINVAL")
    t = wait_free(path, q2, 5000)
    check(t is not None, f"lease {q2} free after DETACH ({t and round(t * 1000)} ms)")
    c2.close()

    if a.udp:
        st, p = c1.bind(5005)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dst = socket.inet_ntoa(struct.pack(">I", ip))
        for _ in range(10):
            u.sendto(b"x" * 100, (dst, 5005))
        time.sleep(0.3)
        s = c1.stats()
        pool = next(p for p in s["pools"] if p["queue"] == q1)
        check(pool["ring"] >= 1, f"datagrams to a bound port steered to ring {q1}: {pool['ring']}")

    c1.close()
    t = wait_free(path, q1, 5002)
    check(t is not None, f"lease {q1} reclaimed after close ({t and round(t * 1000)} ms)")
    if a.udp:
        s = Client(path).stats()
        pool = next(p for p in s["pools"] if p["queue"] == q1)
        check(pool["ring"] == 0 and pool["in_use"] == pool["baseline"],
              f"pool {q1} back to baseline after reclaim ({pool['in_use']}/{pool['baseline']})")

    # SIGKILL of a lease holder.
    p, q, _ = victim(path, 6000, "plain")
    time.sleep(0.05)
    p.kill()
    t = wait_free(path, q, 6000)
    p.wait()
    check(t is not None and t < 1.0, f"SIGKILL: lease {q} reclaimed in {t and round(t * 1000)} ms")

    # The attaching process dies, its forked child keeps the socket open.
    p, q, child = victim(path, 6001, "fork")
    time.sleep(0.05)
    p.kill()
    t = wait_free(path, q, 6001)
    p.wait()
    check(t is not None and t < 1.0, f"pidfd: lease {q} reclaimed in {t and round(t * 1000)} ms "
          "while a child holds the socket")
    os.kill(child, signal.SIGKILL)  # the forked child still holding the socket

    s = Client(path).stats()
    check(s["daemon"]["ctl_malformed"] >= 2, f"malformed counted: {s['daemon']['ctl_malformed']}")
    print("PASS" if failures == 0 else f"{failures} FAILED")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
