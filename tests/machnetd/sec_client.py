#!/usr/bin/env python3
"""Who may use machnetd, and what a client speaking the control protocol by
hand can do to another process's lease; run (as root) by
test_machnetd_security.sh.

    sec_client.py --socket PATH --group GROUP --outsider USER --member USER
                  --member2 USER --log DAEMON_LOG --stat MACHNET_STAT

Every client runs in a process of its own, forked from this one, that has
dropped to an unprivileged user (its groups from /etc/group, as a login
would have them): --outsider is not in GROUP, --member and --member2 are.
Messages are laid out from tests/ipc/ipc_abi's JSON (mnd_abi.py), loaded
before the fork.

Checks:
  - the outsider's connect() fails with EACCES, and machnet-stat run as
    the outsider says so naming GROUP; a member attaches, and the lease
    carries its uid and pid (SO_PEERCRED);
  - a victim (--member2) attaches and binds a port; an attacker, once of
    another uid and once of the victim's own, knowing the victim's pid and
    queue: BIND/UNBIND/DETACH without a lease, a second ATTACH, BIND and
    UNBIND of the victim's port, a DETACH naming the victim's queue and pid,
    an SCM_CREDENTIALS message claiming the victim's pid. Each refusal is
    answered with its errno, counted (ctl_denied, shown by machnet-stat) and
    logged in one line naming the attacker's pid and uid; afterwards the
    victim's lease and port are untouched;
  - a socket inherited from a process that has exited cannot ATTACH (-ESRCH,
    refused, counted, logged).
Exit status 0 when everything passed.
"""
import argparse
import errno
import grp
import json
import os
import pwd
import re
import socket
import struct
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
ATTACH_REQ = ABI.struct("mn_ctl_attach_request")
ATTACH_REPLY = ABI.struct("mn_ctl_attach_reply")
BIND_REQ = ABI.struct("mn_ctl_bind_request")
UNBIND_REQ = ABI.struct("mn_ctl_unbind_request")
UDP = 17
PORT = 7000

failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


def drop_to(user):
    """In a forked child: become `user` with the groups /etc/group gives it."""
    pw = pwd.getpwnam(user)
    os.initgroups(user, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    assert os.getuid() == pw.pw_uid and os.geteuid() == pw.pw_uid


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(5)
        self.s.connect(path)
        self.seq = 0

    def send(self, mtype, layout=HDR, tail=b"", **body):
        self.seq += 1
        h = dict(magic=MAGIC, version=VERSION, type=mtype, seq=self.seq)
        self.s.send((HDR.pack(**h) if layout is HDR else layout.pack(h=h, **body)) + tail)

    def status(self):
        r = self.s.recv(70000)
        rh = HDR.unpack(r)
        assert rh["magic"] == MAGIC and rh["seq"] == self.seq, "reply header mismatch"
        return rh["status"], r

    def request(self, mtype, layout=HDR, tail=b"", **body):
        self.send(mtype, layout, tail, **body)
        return self.status()

    def stats(self):
        _, r = self.request(STATS)
        return json.loads(r[HDR.size:].split(b"\0", 1)[0].decode())


def as_user(user, fn, *args):
    """Runs fn(*args) in a child that dropped to `user`; returns what it
    returned (JSON through a pipe), or {"error": ...}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            drop_to(user)
            out = fn(*args)
        except Exception as e:  # reported to the parent, which checks
            out = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data.decode()) if data else {"error": "no answer"}


def try_connect(path):
    try:
        Conn(path)
    except OSError as e:
        return {"errno": e.errno, "uid": os.getuid()}
    return {"errno": 0, "uid": os.getuid()}


def attach_once(path):
    c = Conn(path)
    st, r = c.request(ATTACH, ATTACH_REQ, comm="member")
    out = {"status": st, "pid": os.getpid(), "uid": os.getuid()}
    if st == 0:
        out["queue"] = ATTACH_REPLY.unpack(r)["queue"]
        s = c.stats()
        out["lease"] = next(l for l in s["leases"] if l["queue"] == out["queue"])
    return out


def attack(path, victim_pid, victim_queue):
    """Every request a client may forge against the victim's lease."""
    c = Conn(path)
    out = {"pid": os.getpid(), "uid": os.getuid()}
    forged = struct.pack("<iI", victim_pid, victim_queue)  # "whose" lease, as the message says
    out["bind_nolease"] = c.request(BIND, BIND_REQ, ip=0, port=PORT, proto=UDP)[0]
    out["unbind_nolease"] = c.request(UNBIND, UNBIND_REQ, port=PORT, proto=UDP)[0]
    out["detach_nolease"] = c.request(DETACH, tail=forged)[0]
    st, r = c.request(ATTACH, ATTACH_REQ, tail=forged, comm="victim")
    out["attach"] = st
    out["queue"] = ATTACH_REPLY.unpack(r)["queue"] if st == 0 else None
    out["attach_again"] = c.request(ATTACH, ATTACH_REQ, comm="victim")[0]
    out["bind_theirs"] = c.request(BIND, BIND_REQ, ip=0, port=PORT, proto=UDP)[0]
    out["unbind_theirs"] = c.request(UNBIND, UNBIND_REQ, port=PORT, proto=UDP)[0]
    # The kernel itself refuses credentials that are not the sender's.
    h = HDR.pack(magic=MAGIC, version=VERSION, type=INFO, seq=99)
    cred = struct.pack("iII", victim_pid, os.getuid(), os.getgid())
    try:
        c.s.sendmsg([h], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, cred)])
        out["scm_credentials"] = 0
        c.s.recv(1000)
    except OSError as e:
        out["scm_credentials"] = e.errno
    s = c.stats()
    out["lease"] = next(l for l in s["leases"] if l["queue"] == out["queue"]) if out["queue"] else None
    out["detach_forged"] = c.request(DETACH, tail=forged)[0]
    c.s.close()
    return out


def denied(path):
    return Conn(path).stats()["daemon"]["ctl_denied"]


def refusals(log, pid, uid):
    with open(log, errors="replace") as f:
        return [l.rstrip() for l in f if re.search(rf"refused .* from pid {pid} uid {uid} ", l)]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--socket", "--group", "--outsider", "--member", "--member2", "--log", "--stat"):
        ap.add_argument(a, required=True)
    a = ap.parse_args()
    path = a.socket
    gid = grp.getgrnam(a.group).gr_gid
    st = os.stat(path)
    check(st.st_gid == gid and (st.st_mode & 0o777) == 0o660,
          f"socket {path}: mode {st.st_mode & 0o777:o}, group {grp.getgrgid(st.st_gid).gr_name}")

    # 1. Outside the group: the kernel refuses at connect().
    out = as_user(a.outsider, try_connect, path)
    check(out.get("errno") == errno.EACCES and out.get("uid") == pwd.getpwnam(a.outsider).pw_uid,
          f"{a.outsider} (not in {a.group}): connect -> {out}")
    pw = pwd.getpwnam(a.outsider)
    p = subprocess.run([a.stat, "--socket", path], user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "Permission denied" in p.stderr and f"group {a.group}" in p.stderr,
          f"machnet-stat as {a.outsider}: exit {p.returncode}: {p.stderr.strip()}")

    # 2. Inside it: attaches; the lease is the peer's own (SO_PEERCRED).
    m = as_user(a.member, attach_once, path)
    mu = pwd.getpwnam(a.member).pw_uid
    check(m.get("status") == 0 and m["lease"]["uid"] == mu and m["lease"]["pid"] == m["pid"],
          f"{a.member} (in {a.group}): ATTACH -> {m}")
    pw = pwd.getpwnam(a.member)
    p = subprocess.run([a.stat, "--socket", path, "--json"], user=pw.pw_uid, group=pw.pw_gid,
                       extra_groups=[gid], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and json.loads(p.stdout)["daemon"]["pid"] > 0,
          f"machnet-stat as {a.member}: exit {p.returncode}")

    # 3. A victim holding a lease and a port, and attackers who know its pid.
    vr, vw = os.pipe()
    cr, cw = os.pipe()
    vpid = os.fork()
    if vpid == 0:
        os.close(vr)
        os.close(cw)
        try:
            drop_to(a.member2)
            c = Conn(path)
            st, r = c.request(ATTACH, ATTACH_REQ, comm="victim")
            q = ATTACH_REPLY.unpack(r)["queue"] if st == 0 else 0
            st2, _ = c.request(BIND, BIND_REQ, ip=0, port=PORT, proto=UDP)
            os.write(vw, json.dumps({"queue": q, "attach": st, "bind": st2}).encode())
            os.close(vw)
            os.read(cr, 1)  # until told to go
        finally:
            os._exit(0)
    os.close(vw)
    os.close(cr)
    v = json.loads(os.read(vr, 4096).decode())
    check(v["attach"] == 0 and v["bind"] == 0, f"victim pid {vpid} ({a.member2}): queue {v['queue']}, "
          f"port {PORT}")
    vq = v["queue"]

    expect = {"bind_nolease": -errno.EINVAL, "unbind_nolease": -errno.EINVAL,
              "detach_nolease": -errno.EINVAL, "attach": 0, "attach_again": -errno.EALREADY,
              "bind_theirs": -errno.EADDRINUSE, "unbind_theirs": -errno.EINVAL,
              "scm_credentials": errno.EPERM, "detach_forged": 0}
    n_refused = 6  # the daemon's refusals among them
    for user in (a.member, a.member2):
        time.sleep(1.1)  # a fresh window of the daemon's log rate limit (10 lines/s)
        before = denied(path)
        r = as_user(user, attack, path, vpid, vq)
        if "error" in r:
            check(False, f"attacker {user}: {r['error']}")
            continue
        for k, want in expect.items():
            check(r.get(k) == want, f"attacker {user} pid {r['pid']}: {k} -> {r.get(k)} "
                  f"(expected {want})")
        check(r["lease"] is not None and r["lease"]["pid"] == r["pid"] and
              r["lease"]["uid"] == r["uid"] and r["queue"] != vq,
              f"attacker {user}: its ATTACH (naming pid {vpid}) leased queue {r['queue']} to itself")
        s = Conn(path).stats()
        vl = next(l for l in s["leases"] if l["queue"] == vq)
        check(vl["state"] == "active" and vl["pid"] == vpid and
              any(p["port"] == PORT and p["queue"] == vq for p in s["ports"]),
              f"victim's lease {vq} and port {PORT} untouched ({vl['state']}, pid {vl['pid']})")
        got = denied(path) - before
        check(got == n_refused, f"ctl_denied counted {got} refusals of {n_refused}")
        lines = refusals(a.log, r["pid"], r["uid"])
        check(len(lines) == n_refused,
              f"{len(lines)} log lines name pid {r['pid']} uid {r['uid']}: " +
              " | ".join(l.split("refused ", 1)[-1] for l in lines))

    # 4. A socket inherited from a connecting process that exited.
    time.sleep(1.1)
    before = denied(path)
    hr, hw = os.pipe()
    gor, gow = os.pipe()
    mid = os.fork()
    if mid == 0:
        os.close(hr)
        os.close(gow)
        drop_to(a.member)
        c = Conn(path)
        if os.fork() == 0:
            # The heir: asks once the connecting process is gone and reaped.
            os.read(gor, 1)
            try:
                st, _ = c.request(ATTACH, ATTACH_REQ, comm="heir")
            except OSError as e:
                st = str(e)
            os.write(hw, json.dumps({"status": st}).encode())
            os._exit(0)
        os._exit(0)
    os.close(hw)
    os.close(gor)
    os.waitpid(mid, 0)
    os.write(gow, b"x")
    os.close(gow)
    h = json.loads(os.read(hr, 4096).decode() or "{}")
    check(h.get("status") == -errno.ESRCH, f"ATTACH on a socket inherited from exited pid {mid} -> "
          f"{h.get('status')}")
    check(denied(path) - before == 1, "that refusal counted")
    check(len(refusals(a.log, mid, pwd.getpwnam(a.member).pw_uid)) == 1, "and logged")

    # machnet-stat shows the count.
    p = subprocess.run([a.stat, "--socket", path], capture_output=True, text=True, timeout=30)
    total = denied(path)
    check(f"{total} refused" in p.stdout, f"machnet-stat shows {total} refused")

    os.close(cw)  # the victim goes
    os.waitpid(vpid, 0)
    print("PASS" if failures == 0 else f"{failures} FAILED")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
