#!/usr/bin/env python3
"""SO_REUSEPORT groups under machnetd (test_machnetd_reuseport.sh).

  reuseport_app.py serve TAG PORT
      (preloaded) a UDP echo server on PORT with SO_REUSEPORT set before
      bind: prints "serving", then answers every datagram with
      "TAG|PID|" + the datagram, until killed.
      A datagram "probe:R" also makes it check, from a second socket on
      PORT connected to the sender, that the sender's port unreachable
      reaches it as ECONNREFUSED; the outcome goes to the sender's port R.
  reuseport_app.py icmp HOST PORT N
      N such probes, each from a fresh source port closed once the server
      answered: every port unreachable must reach the server that took
      the probe (the member its flow hashes to).
  reuseport_app.py try PORT
      (preloaded) SO_REUSEPORT, bind PORT, print "bound" or "bind: ERRNO_NAME";
      exit 0 either way (the caller reads the outcome).
  reuseport_app.py client HOST PORT FLOWS REQUESTS OUT.json
      FLOWS sockets, each on its own ephemeral source port, send
      REQUESTS numbered datagrams round robin over them, one at a time; a
      request unanswered for 1 s is sent again (at most 3 times). A reply
      must come from (HOST, PORT) on the socket that sent the request and
      echo it. Writes per request: the flow (source port), the server
      (TAG|PID) that answered, how many times it was sent and answered.
      Exit 0 only when every request was answered and none more often than
      it was sent.
  reuseport_app.py ctl SOCKET PORT FILL --user USER
      (root; control protocol by hand, laid out from tests/ipc/ipc_abi's
      JSON) against PORT, which an SO_REUSEPORT group of root holds:
        - BIND with an unknown flag: -EINVAL;
        - BIND without MN_CTL_BIND_REUSEPORT: -EADDRINUSE;
        - FILL clients ATTACH and BIND with the flag: each joins (0);
        - one more: -EADDRINUSE (the group is full);
        - a client that dropped to USER (another uid) ATTACHes and BINDs
          with the flag: -EADDRINUSE;
        - groups on other ports until every slot is in use: the next one is
          -ENOMEM; then UNBIND of each;
        - a new port bound with the flag by a client of USER: 0 (its own
          group), then UNBIND: 0.
      Prints one "ok"/"FAIL" line per check and the statuses as JSON;
      closes every connection before it exits (their leases go back).
"""
import errno
import json
import os
import pwd
import socket
import sys
import time

PID = os.getpid()


def probe(s, tag, port, peer, target, result_port):
    """ICMP check: from a second socket on the group's port, connected to
    (peer, target), send until the peer's port unreachable comes back as
    ECONNREFUSED (it reaches this process only if machnetd steers the ICMP
    error to the member the quoted flow hashes to: this one, which took the
    flow's request); then tell the client on result_port."""
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    c.bind(("0.0.0.0", port))
    c.connect((peer, target))
    c.settimeout(0.1)
    outcome = "timeout"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            c.send(b"probe")
            c.recv(100)
        except ConnectionRefusedError:
            outcome = "refused"
            break
        except socket.timeout:
            continue
    c.close()
    s.sendto(f"{outcome} {target} {tag}|{PID}".encode(), (peer, result_port))
    print(f"probe of {peer}:{target}: {outcome}", flush=True)


def serve(tag, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    print(f"serving on port {port} as {tag}|{PID}", flush=True)
    head = f"{tag}|{PID}|".encode()
    while True:
        data, addr = s.recvfrom(65536)
        s.sendto(head + data, addr)
        if data.startswith(b"probe:"):
            probe(s, tag, port, addr[0], addr[1], int(data.split(b":")[1]))


def icmp_client(host, port, probes):
    """Each probe: a socket on a fresh source port X asks the group
    ("probe:R"); the server that answers (the member X's flow hashes to)
    then sends to X from the group's port. X is closed once the answer is
    in: the port unreachable the peer sends back must reach that server,
    which reports to socket R (from the group's port). Exit 0 when every probe came back refused,
    from the server that took it."""
    res = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    res.bind(("0.0.0.0", 0))
    res.settimeout(10)
    rport = res.getsockname()[1]
    # A first round trip: a socket bound to port 0 is offloaded (and its
    # port claimed) when it first sends.
    res.sendto(b"hello", (host, port))
    res.recvfrom(1000)
    ok = 0
    servers = set()
    for k in range(probes):
        x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        x.bind(("0.0.0.0", 0))
        x.settimeout(2)
        xport = x.getsockname()[1]
        x.sendto(f"probe:{rport}".encode(), (host, port))
        taker = None
        try:
            while taker is None:
                data, _ = x.recvfrom(65536)
                # The server's own probes may overtake its answer: skipped.
                if data.count(b"|") >= 2:
                    taker = b"|".join(data.split(b"|", 2)[:2]).decode()
        except socket.timeout:
            print(f"icmp: probe {k} from port {xport}: no answer", flush=True)
            x.close()
            continue
        x.close()
        try:
            data, _ = res.recvfrom(1000)
        except socket.timeout:
            print(f"icmp: probe {k} from port {xport} (taken by {taker}): no result", flush=True)
            continue
        outcome, target, by = data.decode().split()
        good = outcome == "refused" and int(target) == xport and by == taker
        ok += good
        servers.add(by)
        print(f"icmp: probe {k}: flow from port {xport} taken by {taker}; {by} saw "
              f"{outcome}{'' if good else ' (WRONG)'}", flush=True)
    print(f"icmp: {ok} of {probes} port unreachable errors reached the member of their flow "
          f"({len(servers)} members)", flush=True)
    return 0 if ok == probes else 1


def try_bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(("0.0.0.0", port))
        # The bind may be decided at the first use: make it happen now.
        s.setblocking(False)
        try:
            s.recvfrom(10)
        except BlockingIOError:
            pass
        print("bound", flush=True)
    except OSError as e:
        print(f"bind: {errno.errorcode.get(e.errno, e.errno)}", flush=True)


def client(host, port, flows, requests, out):
    # Plain blocking sockets with a timeout (the same under the preload).
    socks = []
    for _ in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        s.settimeout(1.0)
        socks.append(s)
    srcs = {s.getsockname()[1] for s in socks}
    if len(srcs) != flows:
        print(f"client: only {len(srcs)} distinct source ports", flush=True)
        return 1
    res = []
    bad = 0

    def late(data):
        """An answer to an earlier request of this flow (sent again): counted for it."""
        f = data.split(b"|", 2)[-1].decode(errors="replace").split(":")
        if len(f) == 3 and f[0] == "req" and f[1].isdigit() and int(f[1]) < len(res):
            res[int(f[1])]["answers"] += 1
            return True
        return False

    for i in range(requests):
        s = socks[i % flows]
        msg = f"req:{i}:{s.getsockname()[1]}".encode()
        rec = {"id": i, "flow": s.getsockname()[1], "sent": 0, "answers": 0, "server": None}
        res.append(rec)
        while rec["answers"] == 0 and rec["sent"] < 4:
            s.sendto(msg, (host, port))
            rec["sent"] += 1
            while True:
                try:
                    data, addr = s.recvfrom(65536)
                except socket.timeout:
                    break
                parts = data.split(b"|", 2)
                if addr != (host, port) or len(parts) != 3:
                    print(f"client: stray reply {data[:60]!r} from {addr}", flush=True)
                    bad += 1
                    continue
                if parts[2] != msg:
                    if not late(data):
                        print(f"client: wrong echo {parts[2][:60]!r} for {msg!r}", flush=True)
                        bad += 1
                    continue
                rec["answers"] += 1
                rec["server"] = (parts[0] + b"|" + parts[1]).decode()
                break
    # Answers still in flight (to requests sent again) count too.
    time.sleep(0.3)
    for s in socks:
        s.setblocking(False)
        while True:
            try:
                data, _ = s.recvfrom(65536)
            except BlockingIOError:
                break
            late(data)
    unanswered = [r["id"] for r in res if r["answers"] == 0]
    over = [r["id"] for r in res if r["answers"] > r["sent"]]
    resent = sum(r["sent"] - 1 for r in res)
    with open(out, "w") as f:
        json.dump(res, f)
    print(f"client: {requests} requests over {flows} source ports: {len(unanswered)} unanswered, "
          f"{len(over)} answered more often than sent, {resent} sent again, {bad} bad replies",
          flush=True)
    return 0 if not unanswered and not over and bad == 0 else 1


def ctl(path, port, fill, user):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mnd_abi

    abi = mnd_abi.load()
    magic, version = abi.const("MN_CTL_MAGIC"), abi.const("MN_CTL_VERSION")
    attach_t, bind_t, unbind_t = (abi.const("MN_CTL_" + n) for n in ("ATTACH", "BIND", "UNBIND"))
    reuse = abi.const("MN_CTL_BIND_REUSEPORT")
    hdr = abi.struct("mn_ctl_header")
    attach_req = abi.struct("mn_ctl_attach_request")
    bind_req = abi.struct("mn_ctl_bind_request")
    unbind_req = abi.struct("mn_ctl_unbind_request")

    class Conn:
        def __init__(self):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.s.settimeout(5)
            self.s.connect(path)
            self.seq = 0

        def request(self, mtype, layout, **body):
            self.seq += 1
            h = dict(magic=magic, version=version, type=mtype, seq=self.seq)
            self.s.send(layout.pack(h=h, **body))
            rh = hdr.unpack(self.s.recv(70000))
            assert rh["magic"] == magic and rh["seq"] == self.seq, "reply header mismatch"
            return rh["status"]

        def attach(self):
            return self.request(attach_t, attach_req, comm=b"rp_ctl")

        def bind(self, p, flags):
            return self.request(bind_t, bind_req, ip=0, port=p, proto=17, flags=flags)

    failures = 0

    def check(cond, what):
        nonlocal failures
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failures += 1

    out = {}
    conns = []
    c = Conn()
    conns.append(c)
    check(c.attach() == 0, "a control client attaches")
    st = c.bind(port, 0x80)
    check(st == -errno.EINVAL, f"BIND with an unknown flag (0x80): {st} (expected -EINVAL)")
    st = c.bind(port, 0)
    check(st == -errno.EADDRINUSE,
          f"BIND of the group's port without MN_CTL_BIND_REUSEPORT: {st} (expected -EADDRINUSE)")
    st = c.bind(port, reuse)
    check(st == 0, f"member 1 of {fill} joins the group: {st}")
    for k in range(1, fill):
        ck = Conn()
        conns.append(ck)
        a = ck.attach()
        st = ck.bind(port, reuse) if a == 0 else a
        check(st == 0, f"member {k + 1} of {fill} joins the group: attach {a}, bind {st}")
    st = c.bind(port, reuse)
    check(st == -errno.EADDRINUSE, f"a member binding the port again: {st} (expected -EADDRINUSE)")
    extra = Conn()
    conns.append(extra)
    a = extra.attach()
    st = extra.bind(port, reuse)
    out["ninth"] = st
    check(a == 0 and st == -errno.EADDRINUSE,
          f"one more lease (the group is full): attach {a}, bind {st} (expected -EADDRINUSE)")

    # Every group slot in use: the next new group is -ENOMEM. One slot is
    # the test's group; this lease makes groups on other ports until none is
    # left, then gives them back.
    slots = abi.const("MN_SHM_GROUPS")
    made = []
    st = 0
    for p in range(20000, 20000 + slots):
        st = c.bind(p, reuse)
        if st != 0:
            break
        made.append(p)
    check(len(made) == slots - 1 and st == -errno.ENOMEM,
          f"{len(made)} more groups made, then {st} (expected {slots - 1}, then -ENOMEM)")
    gone = [c.request(unbind_t, unbind_req, port=p, proto=17) for p in made]
    check(all(x == 0 for x in gone), f"the {len(made)} groups given back (UNBIND)")

    # Another uid, in a child that dropped to it.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res = {}
        try:
            pw = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            o = Conn()
            res["uid"] = os.getuid()
            res["attach"] = o.attach()
            res["bind"] = o.bind(port, reuse)
            res["own"] = o.bind(port + 1, reuse)
            res["unbind"] = o.request(unbind_t, unbind_req, port=port + 1, proto=17)
        except Exception as e:
            res["error"] = f"{type(e).__name__}: {e}"
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    other = json.loads(data.decode())
    out["other_uid"] = other
    check(other.get("attach") == 0 and other.get("bind") == -errno.EADDRINUSE,
          f"a lease of {user} (uid {other.get('uid')}) joining root's group: {other} "
          f"(expected attach 0, bind -EADDRINUSE)")
    check(other.get("own") == 0 and other.get("unbind") == 0,
          f"{user} makes a group of its own on port {port + 1} and leaves it: "
          f"bind {other.get('own')}, unbind {other.get('unbind')}")
    for ck in conns:
        ck.s.close()
    print(json.dumps(out), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "serve":
        serve(a[1], int(a[2]))
    elif len(a) == 2 and a[0] == "try":
        try_bind(int(a[1]))
    elif len(a) == 4 and a[0] == "icmp":
        sys.exit(icmp_client(a[1], int(a[2]), int(a[3])))
    elif len(a) == 6 and a[0] == "client":
        sys.exit(client(a[1], int(a[2]), int(a[3]), int(a[4]), a[5]))
    elif len(a) == 6 and a[0] == "ctl" and a[4] == "--user":
        sys.exit(ctl(a[1], int(a[2]), int(a[3]), a[5]))
    else:
        sys.exit(__doc__)
