#!/usr/bin/env python3
"""Dual-stack UDP sockets (AF_INET6, IPV6_V6ONLY off) as unmodified
programs open them; run under the preload in host A, with the kernel peer
(peer.py serve) in host B.

  dualstack.py server PORT COUNT      AF_INET6 socket bound to ::PORT, echoes
                                      COUNT datagrams; checks every address
                                      it is given (recvfrom, recvmsg,
                                      getsockname) is a v4-mapped
                                      sockaddr_in6
  dualstack.py client PEER PORT       connect / sendto / recvfrom / recvmsg to
                                      ::ffff:PEER; prints the address the
                                      peer saw ("whoami"); native IPv6
                                      (::1) and ::ffff:127.0.0.1 through the
                                      same offloaded socket; IPV6_V6ONLY
Prints "ok: ..." per check, raises on the first failure.
"""
import socket
import sys


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}", flush=True)


def v4_mapped(addr):
    return isinstance(addr, tuple) and len(addr) == 4 and addr[0].startswith("::ffff:")


def server(port, count):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    name = s.getsockname()
    check(name == ("::", port, 0, 0), f"server getsockname {name}")
    print(f"dualstack: serving on [::]:{port}", flush=True)
    for i in range(count):
        if i % 2:
            data, anc, flags, addr = s.recvmsg(70000)
        else:
            data, addr = s.recvfrom(70000)
        if not v4_mapped(addr):
            raise SystemExit(f"FAIL: datagram {i} from {addr!r}: not a v4-mapped sockaddr_in6")
        s.sendto(data, addr)
    print(f"ok: server echoed {count} datagrams, every sender v4-mapped (last {addr})", flush=True)


def whoami(s, peer=None):
    s.settimeout(2.0)
    for _ in range(3):
        if peer:
            s.sendto(b"whoami", peer)
        else:
            s.send(b"whoami")
        try:
            data, addr = s.recvfrom(100)
            return data.decode(), addr
        except socket.timeout:
            pass
    raise SystemExit("FAIL: no answer to whoami")


def client(peer_ip, port):
    mapped = "::ffff:" + peer_ip
    # connect() to a v4-mapped peer.
    c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    c.connect((mapped, port))
    seen, addr = whoami(c)
    print(f"dualstack: connected socket seen by the peer as {seen}", flush=True)
    check(addr == (mapped, port, 0, 0), f"connected recvfrom address {addr}")
    check(c.getpeername() == (mapped, port, 0, 0), f"getpeername {c.getpeername()}")
    name = c.getsockname()
    check(v4_mapped(name) and name[1] != 0, f"connected getsockname {name}")
    c.send(b"hello")
    data, anc, flags, addr = c.recvmsg(100)
    check(data == b"hello" and addr == (mapped, port, 0, 0), f"recvmsg {data!r} from {addr}")
    c.close()

    # sendto() on an unbound socket: decided at the first send.
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    seen_u, addr = whoami(u, (mapped, port))
    print(f"dualstack: unconnected socket seen by the peer as {seen_u}", flush=True)
    check(addr == (mapped, port, 0, 0), f"unconnected recvfrom address {addr}")
    check(seen_u == seen, "both sockets took the same path")

    # The same offloaded socket reaches native IPv6 and IPv4 loopback peers
    # through the kernel.
    k6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    k6.bind(("::1", 0))
    k6.settimeout(2.0)
    u.sendto(b"native", k6.getsockname())
    data, src = k6.recvfrom(100)
    check(data == b"native", f"native IPv6 peer {k6.getsockname()[:2]} got a datagram from {src[:2]}")
    k6.sendto(b"back", src)
    data, addr = u.recvfrom(100)
    check(data == b"back" and addr[0] == "::1", f"reply from native IPv6 peer {addr[:2]}")
    k4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    k4.bind(("127.0.0.1", 0))
    k4.settimeout(2.0)
    u.sendto(b"loop", ("::ffff:127.0.0.1", k4.getsockname()[1]))
    data, src = k4.recvfrom(100)
    check(data == b"loop", f"IPv4 loopback peer got a datagram from {src}")
    k4.sendto(b"back4", src)
    data, addr = u.recvfrom(100)
    check(data == b"back4" and addr[0] == "::ffff:127.0.0.1", f"reply from IPv4 loopback {addr[:2]}")

    # IPV6_V6ONLY: never offloaded; it cannot reach IPv4 peers at all.
    o = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    o.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    o.bind(("::", 0))
    try:
        o.sendto(b"whoami", (mapped, port))
        check(False, "IPV6_V6ONLY socket sent to an IPv4 peer")
    except OSError as e:
        check(True, f"IPV6_V6ONLY socket to an IPv4 peer fails as on the kernel ({e.strerror})")
    print(f"dualstack: seen as {seen}")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
