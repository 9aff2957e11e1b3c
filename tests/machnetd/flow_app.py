#!/usr/bin/env python3
"""UDP programs for the machnetd acceptance tests, run under machnet-run.

  flow_app.py serve TAG PORT[,PORT...]
      echo every datagram on each port with "TAG|" prepended, until SIGTERM;
      then print the datagrams served per port.
  flow_app.py client TAG HOST PORT[,PORT...] N EXPECT [--hold] [--bind PORT] [--go FILE]
                     [--timeout S]
      send N numbered datagrams (sizes 16..1400, content derived from TAG,
      port and number) to each port in turn, one at a time; each reply must
      be "EXPECT|" + the datagram, from (HOST, port). A datagram unanswered
      for 1 s is sent again (at most 3 times; counted as a retry). Exit 0
      only if every datagram was answered exactly. --hold: print the summary,
      then wait for SIGTERM before exiting (so the lease can be inspected).
      --bind PORT: bind the socket to PORT first (an offloaded bind: the
      engine attaches then). --go FILE: print "bound", and start sending
      only once FILE exists. --timeout S: wait S seconds for a reply instead
      of 1 before sending again.
  flow_app.py loop HOST PORT BIND_PORT READY_AFTER
      echo round trips with an echo server (peer.py), content checked, as
      fast as they come back, until SIGTERM or SIGKILL; "ready" after
      READY_AFTER good ones. SIGTERM prints the totals; exit 0 only if no
      reply was missing (1 s) or wrong.
  flow_app.py daemon-loss HOST PORT
      an echo round trip, "ready", then a thread blocks in recvfrom on a
      second socket while the main thread keeps sending (10 ms apart) until
      sendto fails; prints the errno of each and how long after the first
      failed send the blocked receive returned. Exit 0 when sendto failed
      with ENETDOWN and the blocked receive returned with an error.
  flow_app.py blast HOST PORT BIND_PORT RATE N GO_FILE
      bind BIND_PORT, print "bound", wait for GO_FILE, then send N numbered
      datagrams to HOST:PORT at RATE per second; print "sent N".
  flow_app.py sink PORT N
      bind PORT, print "listening", count numbered datagrams (from blast)
      until N arrived or 3 s passed without one after the first; print
      "sink: got X of N, missing M, duplicates D" (exit 0 only if X == N).
  flow_app.py bind-same PORT           bind PORT twice in this process
  flow_app.py bind-hold PORT NEPH HOST
      bind PORT, then NEPH sockets that get ephemeral ports by sending one
      datagram each to HOST:9; print every local port, "ready", then wait
      for SIGTERM.
  flow_app.py bind-try PORT            bind PORT once, print the outcome
Plain socket code: the same program runs on the kernel and under the preload.
"""
import errno
import os
import selectors
import signal
import socket
import sys
import threading
import time

PID = os.getpid()


def say(msg):
    print(f"flow_app[{PID}]: {msg}", flush=True)


def payload(tag, port, i):
    head = f"{tag}:{port}:{i}:".encode()
    size = 16 + (i * 37 + port) % 1385
    body = bytes((i * 7 + port + k) & 0xFF for k in range(max(0, size - len(head))))
    return head + body


def on_term(handler):
    signal.signal(signal.SIGTERM, lambda *_: handler())


def serve(tag, ports):
    sel = selectors.DefaultSelector()
    counts = {}
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, p)
        counts[p] = 0
    prefix = tag.encode() + b"|"

    def done():
        say(f"{tag} served " + " ".join(f"{p}:{n}" for p, n in sorted(counts.items())))
        sys.exit(0)

    on_term(done)
    say(f"{tag} serving on ports {','.join(map(str, ports))}")
    while True:
        for key, _ in sel.select(timeout=1.0):
            while True:
                try:
                    data, addr = key.fileobj.recvfrom(65536)
                except BlockingIOError:
                    break
                counts[key.data] += 1
                key.fileobj.sendto(prefix + data, addr)


def client(tag, host, ports, n, expect, hold, go, bind_port, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    if bind_port:
        s.bind(("0.0.0.0", bind_port))
    if go:
        say(f"{tag} bound to port {s.getsockname()[1]}")
        while not os.path.exists(go):
            time.sleep(0.005)
    prefix = expect.encode() + b"|"
    good = bad = retries = stray = 0
    rtts = []
    for i in range(n):
        for p in ports:
            msg = payload(tag, p, i)
            ok = False
            for attempt in range(4):
                if attempt:
                    retries += 1
                t0 = time.monotonic()
                s.sendto(msg, (host, p))
                deadline = t0 + timeout
                got = None
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    s.settimeout(left)
                    try:
                        data, addr = s.recvfrom(65536)
                    except socket.timeout:
                        break
                    if data == prefix + msg and addr == (host, p):
                        got = True
                        break
                    # A late answer to an earlier retry is stray; anything
                    # else (wrong tag, wrong source, damaged) is bad.
                    if addr == (host, p) and data.startswith(prefix) and \
                            data[len(prefix):].split(b":")[:2] == [tag.encode(), str(p).encode()]:
                        stray += 1
                        continue
                    bad += 1
                    say(f"{tag} #{i} port {p}: wrong reply {len(data)} bytes from {addr}: "
                        f"{data[:40]!r}")
                if got:
                    rtts.append(time.monotonic() - t0)
                    ok = True
                    break
            if ok:
                good += 1
            else:
                bad += 1
                say(f"{tag} #{i} port {p}: no reply after 4 sends")
    total = n * len(ports)
    rtts.sort()
    med = rtts[len(rtts) // 2] * 1e6 if rtts else 0
    say(f"{tag} client: {good} of {total} replies exact from {expect} "
        f"(ports {','.join(map(str, ports))} x {n}), {bad} bad, {retries} retries, "
        f"{stray} stray, median rtt {med:.0f} us")
    rc = 0 if good == total and bad == 0 else 1
    if hold:
        on_term(lambda: sys.exit(rc))
        say("holding")
        while True:
            time.sleep(3600)
    return rc


def loop(host, port, bind_port, ready_after):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if bind_port:
        s.bind(("0.0.0.0", bind_port))
    s.settimeout(1.0)
    st = {"ok": 0, "missing": 0, "bad": 0}
    t_start = time.monotonic()

    def done():
        secs = time.monotonic() - t_start
        say(f"loop: {st['ok']} round trips ok, {st['missing']} missing, {st['bad']} bad "
            f"in {secs:.1f} s")
        sys.exit(0 if st["missing"] == 0 and st["bad"] == 0 and st["ok"] > 0 else 1)

    on_term(done)
    i = 0
    while True:
        msg = b"loop %d %d " % (PID, i) + bytes(i % 200)
        s.sendto(msg, (host, port))
        try:
            while True:
                data, addr = s.recvfrom(65536)
                if data == msg and addr == (host, port):
                    st["ok"] += 1
                    break
                st["bad"] += 1
                say(f"loop: wrong reply {data[:30]!r} from {addr}")
        except socket.timeout:
            st["missing"] += 1
            say(f"loop: round trip {i} missing")
        i += 1
        if st["ok"] == ready_after:
            say(f"ready after {ready_after} round trips on port {s.getsockname()[1]}")


def daemon_loss(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("0.0.0.0", 0))
    s.sendto(b"hello", (host, port))
    data, addr = s.recvfrom(100)
    if data != b"hello":
        say(f"bad echo {data!r}")
        return 1
    # An ephemeral port decided by a send, then a receive with no timeout.
    r.sendto(b"r", (host, port))
    res = {}

    def rx():
        try:
            while True:
                d, _ = r.recvfrom(2000)
                if d != b"r":  # the echo of "r" may come first
                    res["recv"] = f"got {d!r}"
                    break
        except OSError as e:
            res["recv"] = errno.errorcode.get(e.errno, str(e.errno))
        res["recv_t"] = time.monotonic()

    t = threading.Thread(target=rx, daemon=True)
    t.start()
    time.sleep(0.05)
    say("ready: blocked in recvfrom, sending every 10 ms")
    n = 0
    s.settimeout(0.05)
    while True:
        try:
            s.sendto(b"ping %d" % n, (host, port))
            n += 1
            try:
                s.recvfrom(100)
            except socket.timeout:
                pass
        except OSError as e:
            res["send"] = errno.errorcode.get(e.errno, str(e.errno))
            break
        time.sleep(0.01)
    t_fail = time.monotonic()
    t.join(10)
    recv = res.get("recv", "still blocked after 10 s")
    dt = (res["recv_t"] - t_fail) * 1000 if "recv_t" in res else -1
    when = (f"{abs(dt):.0f} ms {'after' if dt >= 0 else 'before'} the first failed send"
            if "recv_t" in res else "")
    say(f"sendto failed with {res['send']} after {n} sends; blocked recvfrom returned "
        f"{recv} ({when})")
    # A second send on the dead engine fails the same way, at once.
    try:
        s.sendto(b"again", (host, port))
        again = "succeeded"
    except OSError as e:
        again = errno.errorcode.get(e.errno, str(e.errno))
    say(f"next sendto: {again}")
    ok = res["send"] == "ENETDOWN" and recv in errno.errorcode.values() and again == "ENETDOWN"
    return 0 if ok else 1


def bind_same(port):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("0.0.0.0", port))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b.bind(("0.0.0.0", port))
        say(f"second bind of {port}: ok")
    except OSError as e:
        say(f"second bind of {port}: {errno.errorcode.get(e.errno, e.errno)}")
    return 0


def bind_try(port):
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b.bind(("0.0.0.0", port))
        say(f"bind {port}: ok")
    except OSError as e:
        say(f"bind {port}: {errno.errorcode.get(e.errno, e.errno)}")
    return 0


def bind_hold(port, neph, host):
    socks = []
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("0.0.0.0", port))
    socks.append(a)
    for _ in range(neph):
        e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        e.sendto(b"x", (host, 9))
        socks.append(e)
    say("ports " + " ".join(str(s.getsockname()[1]) for s in socks))
    on_term(lambda: sys.exit(0))
    say("ready")
    while True:
        time.sleep(3600)


def blast(host, port, bind_port, rate, n, go):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", bind_port))
    say(f"bound to port {bind_port}")
    while not os.path.exists(go):
        time.sleep(0.01)
    t0 = time.monotonic()
    for i in range(n):
        # Paced against the start, so a late wake-up catches up.
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s.sendto(b"blast %d " % i + bytes(64), (host, port))
    say(f"sent {n}")


def sink(port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    say(f"listening on port {port}")
    seen = set()
    dups = 0
    s.settimeout(None)
    while len(seen) < n:
        try:
            data, _ = s.recvfrom(65536)
        except socket.timeout:
            break
        s.settimeout(3.0)
        i = int(data.split(b" ")[1])
        if i in seen:
            dups += 1
        seen.add(i)
    say(f"sink: got {len(seen)} of {n}, missing {n - len(seen)}, duplicates {dups}")
    sys.exit(0 if len(seen) == n and dups == 0 else 1)


def ports_arg(s):
    return [int(x) for x in s.split(",")]


if __name__ == "__main__":
    a = sys.argv[1:]
    cmd = a[0] if a else ""
    if cmd == "serve" and len(a) == 3:
        serve(a[1], ports_arg(a[2]))
    elif cmd == "client" and len(a) >= 6:
        opts = a[6:]
        go = opts[opts.index("--go") + 1] if "--go" in opts else None
        bind_port = int(opts[opts.index("--bind") + 1]) if "--bind" in opts else 0
        timeout = float(opts[opts.index("--timeout") + 1]) if "--timeout" in opts else 1.0
        sys.exit(client(a[1], a[2], ports_arg(a[3]), int(a[4]), a[5], "--hold" in opts, go,
                        bind_port, timeout))
    elif cmd == "loop" and len(a) == 5:
        loop(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "daemon-loss" and len(a) == 3:
        sys.exit(daemon_loss(a[1], int(a[2])))
    elif cmd == "blast" and len(a) == 7:
        blast(a[1], int(a[2]), int(a[3]), float(a[4]), int(a[5]), a[6])
    elif cmd == "sink" and len(a) == 3:
        sink(int(a[1]), int(a[2]))
    elif cmd == "bind-same" and len(a) == 2:
        sys.exit(bind_same(int(a[1])))
    elif cmd == "bind-try" and len(a) == 2:
        sys.exit(bind_try(int(a[1])))
    elif cmd == "bind-hold" and len(a) == 4:
        bind_hold(int(a[1]), int(a[2]), a[3])
    else:
        sys.exit(__doc__)
