#!/usr/bin/env python3
"""A preloaded UDP program that ends in a chosen way (test_preload_rundir.sh).

  rundir_prog.py MODE GO_FILE

Binds a UDP socket (offloaded: the engine starts), sends one datagram,
prints "ready PID", waits until GO_FILE exists, then ends:
  return       returns from the script (exit() from the main thread)
  thread-exit  libc exit(0) from a second thread while the main one sleeps
  _exit        os._exit(3) (_exit: no atexit handlers)
  wait         sleeps until killed
"""
import ctypes
import os
import signal
import socket
import sys
import threading
import time

mode, go = sys.argv[1], sys.argv[2]
# Python's own SIGINT handler, as in a terminal: a script's background job
# starts with SIGINT ignored, and Python then leaves it so.
signal.signal(signal.SIGINT, signal.default_int_handler)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.sendto(b"hello", ("10.77.0.2", 7000))
print(f"ready {os.getpid()}", flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
if mode == "return":
    sys.exit(0)
elif mode == "thread-exit":
    libc = ctypes.CDLL(None)
    threading.Thread(target=lambda: libc.exit(0), daemon=True).start()
    time.sleep(60)
    sys.exit(9)  # exit() never returned to anyone: not reached
elif mode == "_exit":
    os._exit(3)
elif mode == "wait":
    time.sleep(600)
sys.exit(2)
