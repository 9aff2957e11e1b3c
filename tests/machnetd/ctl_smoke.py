#!/usr/bin/env python3
"""Smoke test of a running machnetd's control protocol (src/ipc/control_protocol.h),
run by test_machnetd_ctl.sh.

    ctl_smoke.py --socket /run/machnet/machnetd.sock [--udp]

Every message is laid out from tests/ipc/ipc_abi's JSON (mnd_abi.py: set
MACHNET_IPC_ABI or MACHNET_BUILDDIR), never from a copy of the header.

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
import subprocess
import sys
import time

import mnd_abi

ABI = mnd_abi.load()
MAGIC = ABI.const("MN_CTL_MAGIC")
VERSION = ABI.const("MN_CTL_VERSION")
INFO, ATTACH, BIND, UNBIND, DETACH, STATS = (
    ABI.const("MN_CTL_" + n) for n in ("INFO", "ATTACH", "BIND", "UNBIND", "DETACH", "STATS"))
HDR = ABI.struct("mn_ctl_header")
INFO_REPLY = ABI.struct("mn_ctl_info_reply")
ATTACH_REQ = ABI.struct("mn_ctl_attach_request")
ATTACH_REPLY = ABI.struct("mn_ctl_attach_reply")
BIND_REQ = ABI.struct("mn_ctl_bind_request")
BIND_REPLY = ABI.struct("mn_ctl_bind_reply")
UNBIND_REQ = ABI.struct("mn_ctl_unbind_request")
UDP = 17


def header(mtype, seq, version=VERSION, magic=MAGIC):
    return dict(magic=magic, version=version, type=mtype, seq=seq)


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

    def request(self, mtype, layout=HDR, version=VERSION, **body):
        """Sends `layout` (a request structure) with the header filled in;
        returns the reply's status and raw bytes."""
        self.seq += 1
        h = header(mtype, self.seq, version)
        self.s.send(HDR.pack(**h) if layout is HDR else layout.pack(h=h, **body))
        r = self.s.recv(70000)
        rh = HDR.unpack(r)
        assert rh["magic"] == MAGIC and rh["type"] == mtype and rh["seq"] == self.seq, \
            "reply header mismatch"
        return rh["status"], r

    def info(self):
        st, r = self.request(INFO)
        return st, INFO_REPLY.unpack(r) if st == 0 else None

    def attach(self, comm="smoke"):
        st, r = self.request(ATTACH, ATTACH_REQ, comm=comm)
        return st, ATTACH_REPLY.unpack(r) if st == 0 else None

    def bind(self, port, ip=0):
        st, r = self.request(BIND, BIND_REQ, ip=ip, port=port, proto=UDP)
        return st, BIND_REPLY.unpack(r)["port"]

    def unbind(self, port):
        st, _ = self.request(UNBIND, UNBIND_REQ, port=port, proto=UDP)
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


# A lease holder in a process of its own: sends the ATTACH and BIND requests
# it is given (hex), prints its queue (read at the offset it is given).
CHILD = r"""
import socket, struct, sys, os, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(bytes.fromhex(sys.argv[2]))
r = s.recv(1000)
q = struct.unpack_from("<H", r, int(sys.argv[4]))[0]
s.send(bytes.fromhex(sys.argv[3]))
s.recv(1000)
child = 0
if sys.argv[5] == "fork":
    child = os.fork()
    if child == 0:
        time.sleep(30)  # keeps the socket open; the parent is killed
        os._exit(0)
print(q, child, flush=True)
time.sleep(30)
"""


def victim(path, port, mode):
    attach = ATTACH_REQ.pack(h=header(ATTACH, 1), comm="victim")
    bind = BIND_REQ.pack(h=header(BIND, 2), ip=0, port=port, proto=UDP)
    queue_off = next(f["offset"] for f in ATTACH_REPLY.fields if f["name"] == "queue")
    p = subprocess.Popen([sys.executable, "-c", CHILD, path, attach.hex(), bind.hex(),
                          str(queue_off), mode], stdout=subprocess.PIPE)
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
    ip = info["ip"]
    nq, free0, dpid = info["nb_queues"], info["free_leases"], info["daemon_pid"]
    dev = info["device"]
    check(nq >= 3 and free0 == nq - 1, f"INFO: {nq} queues, {free0} free, device {dev}, pid {dpid}")

    st, _ = c1.request(INFO, version=99)
    check(st == -errno.EPROTONOSUPPORT, "wrong version -> -EPROTONOSUPPORT")
    st, _ = c1.bind(5000)
    check(st == -errno.EINVAL, "BIND without a lease -> -EINVAL")

    st, r = c1.attach()
    check(st == 0 and r["queue"] >= 1, f"ATTACH -> queue {r['queue'] if r else None}")
    q1 = r["queue"]
    check(r["lcore_id"] == q1 and r["shm_name"] == ABI.strings["MN_SHM_NAME"],
          "lcore_id == queue, shm name")
    check(r["eal_prefix"].startswith("machnetd-"), f"eal prefix {r['eal_prefix']}")
    st, _ = c1.attach()
    check(st == -errno.EALREADY, "second ATTACH on one connection -> -EALREADY")

    st, p = c1.bind(5000)
    check(st == 0 and p == 5000, "BIND 5000")
    st, _ = c1.bind(5000)
    check(st == -errno.EADDRINUSE, "BIND 5000 again (same lease) -> -EADDRINUSE")
    st, p = c1.bind(0)
    # Outside the kernel's ephemeral range (the daemon runs in this test's
    # network namespace: its ip_local_port_range is ours).
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        klo, khi = (int(x) for x in f.read().split())
    check(st == 0 and (p > khi or p < klo), f"ephemeral BIND -> {p}, outside the kernel's {klo}-{khi}")
    st, _ = c1.bind(5001, ip=0x01020304)
    check(st == -errno.EADDRNOTAVAIL, "BIND to a foreign address -> -EADDRNOTAVAIL")
    st, p2 = c1.bind(5002, ip=ip)
    check(st == 0, "BIND with the host address")

    c2 = Client(path)
    st, r = c2.attach("second")
    check(st == 0 and r["queue"] != q1, f"second client ATTACH -> queue {r['queue'] if r else None}")
    q2 = r["queue"]
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
        st, _ = c.attach("filler")
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
    for what, msg in [("short", b"abc"), ("bad magic", HDR.pack(**header(INFO, 1, magic=1)))]:
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
        dst = socket.inet_ntoa(ip.to_bytes(4, "big"))
        # Nobody polls the leased queue q1 (this client is no engine): only
        # what lands on a queue the daemon polls is steered to ring q1. The
        # NIC spreads flows over the queues, so send from 16 source ports.
        for _ in range(16):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.sendto(b"x" * 100, (dst, 5005))
            u.close()
        deadline = time.monotonic() + 5
        while True:
            pool = next(p for p in c1.stats()["pools"] if p["queue"] == q1)
            if pool["ring"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
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
