#!/usr/bin/env bash
# sockperf UDP ping-pong, throughput and under-load through the preload:
# preloaded client (host A) and a kernel server (host B). One socket (recvfrom) and a feed file of
# 3 sockets with -F e, -F p, -F s; see lib_sockperf.sh.
. "$(dirname "$0")/lib_sockperf.sh"
sockperf_setup
sockperf_suite kernel preload
echo "PASS"
