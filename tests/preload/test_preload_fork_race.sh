#!/usr/bin/env bash
# Lock safety of the preload (machnet.conf(5), "fork and exec", "Signal
# handlers"):
#   - fork() while other threads sit in epoll_wait, recvfrom, sendto and
#     socket/bind/close/epoll_create on offloaded sockets: 500 children each
#     close the inherited fds, use a new epoll set and a kernel socket, and
#     exit; none may hang (a watchdog kill fails the test);
#   - fork() while another thread's first bind starts the engine: the
#     children neither hang nor start an engine of their own;
#   - close() of an offloaded socket from a signal handler that interrupted
#     a send or receive on another offloaded socket, 2000 times: no hang, the
#     fd number is free for the next open, the port for the next bind.
. "$(dirname "$0")/lib_preload.sh"
require_root
require_preload_build
CHECK="$BUILDDIR/tests/preload/fork_race_check"
SIGCHECK="$BUILDDIR/tests/preload/sig_close_check"
[ -x "$CHECK" ] && [ -x "$SIGCHECK" ] || fail "fork_race_check or sig_close_check not built"
netns_up
ENGINE_IP="$MN_NET.101"
engine_config "$TMP/machnet.conf"
preload_in_a "$TMP/machnet.conf"

start_bg peer ip netns exec "$MN_NS_B" "$PYTHON" "$PEER" serve 7600
wait_for_line peer "serving on"

# A bound for a hang, not a timing assertion: each run takes seconds.
WATCHDOG=300

echo "# fork racing the engine's start"
for run in 1 2 3; do
  timeout -s KILL $WATCHDOG "${PRE_A[@]}" "$CHECK" "$MN_IP_B" 7600 43100 start \
    >"$TMP/start.out" 2>&1 || fail "fork_race_check start, run $run (status $?): $(tail -20 "$TMP/start.out")"
  cat "$TMP/start.out"
  grep -q "^start: [1-9][0-9]* forks during the engine's start, [1-9][0-9]* children exited 0, 0 failed$" \
    "$TMP/start.out" || fail "start run $run: children failed"
  grep -qx "parent after start: peer saw $ENGINE_IP" "$TMP/start.out" || fail "start run $run: the engine did not start"
done
echo "ok: forks during the engine's start"

echo "# fork racing epoll_wait, recvfrom, sendto, close"
timeout -s KILL $WATCHDOG "${PRE_A[@]}" "$CHECK" "$MN_IP_B" 7600 43000 threads 500 \
  >"$TMP/threads.out" 2>&1 || fail "fork_race_check threads (status $?): $(tail -20 "$TMP/threads.out")"
cat "$TMP/threads.out"
grep -qx "parent before forks: peer saw $ENGINE_IP" "$TMP/threads.out" || fail "the parent's socket was not offloaded"
grep -qx "threads: 500 forks, 500 children exited 0, 0 failed" "$TMP/threads.out" || fail "children failed"
grep -qx "parent after forks: peer saw $ENGINE_IP" "$TMP/threads.out" || fail "the parent's socket broke"
echo "ok: 500 forks under load, every child done"

# The kernel frees an exited engine's AF_XDP socket asynchronously; the next
# engine waits up to 2 s for the queue, which a loaded machine can exceed
# after a process that forked hundreds of children.
sleep 2
echo "# close() from a signal handler"
timeout -s KILL $WATCHDOG "${PRE_A[@]}" "$SIGCHECK" "$MN_IP_B" 7600 43200 2000 \
  >"$TMP/sig.out" 2>&1 || fail "sig_close_check (status $?; 137: watchdog): $(tail -20 "$TMP/sig.out")"
cat "$TMP/sig.out"
grep -qx "before: peer saw $ENGINE_IP" "$TMP/sig.out" || fail "the victim was not offloaded"
grep -q "^handler closed 2000 offloaded sockets" "$TMP/sig.out" || fail "sig_close_check did not finish"
grep -qx "after: peer saw $ENGINE_IP" "$TMP/sig.out" || fail "the main socket broke"
echo "PASS"
