#!/usr/bin/env python3
"""Python UDP programs in each waiting style, run under machnet-run.

  py_udp.py serve MODE PORT            echo every datagram until killed
  py_udp.py client MODE HOST PORT N    send N datagrams of each size to an
                                       echo server, check every reply byte
                                       for byte and its source; exit 0 only
                                       if all came back
MODE: blocking (plain blocking calls, SO_RCVTIMEO), nonblocking
(setblocking(False), EAGAIN loops), selectors (DefaultSelector: epoll),
selectors-poll (PollSelector), selectors-select (SelectSelector), asyncio
(create_datagram_endpoint). Unmodified socket code: the same program runs on
the kernel and under the preload. PY_UDP_SIZES (comma-separated) replaces the
client's sizes, PY_UDP_WAIT_S its wait for each reply (1 s).
"""
import asyncio
import os
import selectors
import socket
import struct
import sys
import time

SIZES = [int(x) for x in os.environ.get("PY_UDP_SIZES", "1,100,1472,8000").split(",")]
WAIT_S = float(os.environ.get("PY_UDP_WAIT_S", "1"))
BUF = 70000


def udp_socket(blocking=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(blocking)
    return s


def make_selector(mode):
    return {"selectors": selectors.DefaultSelector,
            "selectors-poll": selectors.PollSelector,
            "selectors-select": selectors.SelectSelector}[mode]()


# ---- servers ---------------------------------------------------------------

def serve(mode, port):
    if mode == "asyncio":
        return asyncio.run(serve_asyncio(port))
    s = udp_socket(blocking=(mode == "blocking"))
    s.bind(("0.0.0.0", port))
    print(f"py_udp: {mode} server on port {port}", flush=True)
    if mode == "blocking":
        while True:
            data, addr = s.recvfrom(BUF)
            s.sendto(data, addr)
    elif mode == "nonblocking":
        while True:
            try:
                data, addr = s.recvfrom(BUF)
            except BlockingIOError:
                time.sleep(0.0002)
                continue
            s.sendto(data, addr)
    else:
        sel = make_selector(mode)
        sel.register(s, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select(timeout=1.0):
                while True:  # drain: every ready datagram
                    try:
                        data, addr = key.fileobj.recvfrom(BUF)
                    except BlockingIOError:
                        break
                    key.fileobj.sendto(data, addr)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def serve_asyncio(port):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", port))
    print(f"py_udp: asyncio server on port {port} ({type(loop._selector).__name__})",
          flush=True)
    await asyncio.Event().wait()


# ---- clients ---------------------------------------------------------------

def client(mode, host, port, count):
    if mode == "asyncio":
        return asyncio.run(client_asyncio(host, port, count))
    s = udp_socket(blocking=(mode == "blocking"))
    if mode == "blocking":
        # A lost datagram must not hang the test: the kernel's receive timeout.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                     struct.pack("ll", int(WAIT_S), int(WAIT_S % 1 * 1e6)))
    sel = None
    if mode.startswith("selectors"):
        sel = make_selector(mode)
        sel.register(s, selectors.EVENT_READ)

    def receive():
        """One datagram within ~WAIT_S, or None."""
        if mode == "blocking":
            try:
                return s.recvfrom(BUF)
            except BlockingIOError:  # SO_RCVTIMEO
                return None
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if sel is not None and not sel.select(timeout=deadline - time.monotonic()):
                continue
            try:
                return s.recvfrom(BUF)
            except BlockingIOError:
                if sel is None:
                    time.sleep(0.0001)
        return None

    bad = 0
    resent = 0
    late = 0  # receives that took over 0.5 s: a wake-up that never came
    for size in SIZES:
        for i in range(count):
            payload = os.urandom(size)
            got = None
            for attempt in range(3):  # the first datagram may wait for ARP
                resent += attempt > 0
                s.sendto(payload, (host, port))
                t0 = time.monotonic()
                got = receive()
                late += time.monotonic() - t0 > WAIT_S / 2
                if got is not None:
                    break
            if got is None or got[0] != payload or got[1] != (host, port):
                bad += 1
                print(f"py_udp: {mode} size {size} #{i}: "
                      f"{'no reply' if got is None else 'reply differs'}", flush=True)
    print(f"py_udp: {mode} client: {count * len(SIZES) - bad} of {count * len(SIZES)} echoed, "
          f"{resent} resent, {late} late", flush=True)
    return 1 if bad else 0


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))


async def client_asyncio(host, port, count):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    bad = 0
    resent = 0
    late = 0
    for size in SIZES:
        for i in range(count):
            payload = os.urandom(size)
            got = None
            for attempt in range(3):
                resent += attempt > 0
                transport.sendto(payload)
                t0 = time.monotonic()
                try:
                    got = await asyncio.wait_for(proto.queue.get(), WAIT_S)
                    break
                except asyncio.TimeoutError:
                    pass
                finally:
                    late += time.monotonic() - t0 > WAIT_S / 2
            if got is None or got[0] != payload or got[1] != (host, port):
                bad += 1
                print(f"py_udp: asyncio size {size} #{i}: "
                      f"{'no reply' if got is None else 'reply differs'}", flush=True)
    transport.close()
    print(f"py_udp: asyncio client ({type(loop._selector).__name__}): "
          f"{count * len(SIZES) - bad} of {count * len(SIZES)} echoed, {resent} resent, {late} late", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "serve" and len(sys.argv) == 4:
        sys.exit(serve(sys.argv[2], int(sys.argv[3])))
    elif cmd == "client" and len(sys.argv) == 6:
        sys.exit(client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(__doc__)
