# Shared helpers for the preload tests (sourced after tests/integration/lib.sh
# conventions: root, namespaces from machnet-netns, cleanup by PID).
# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

PRELOAD_LIB="$BUILDDIR/.libs/libmachnet_preload.so"
ENGINE_LIB="$BUILDDIR/.libs/libmachnet.so"
RUN="$BUILDDIR/tools/machnet-run"
UDP_CALLS="$BUILDDIR/tests/preload/udp_calls"
PEER="$SRCDIR/tests/preload/peer.py"
# What LD_PRELOAD must hold to preload the shim: in an --enable-sanitizers
# build the shim needs the ASan runtime, which must come first in a program
# that is not itself instrumented (and whose leaks are not ours).
PRELOAD_VAR=$PRELOAD_LIB
asan_rt=$(ldd "$PRELOAD_LIB" 2>/dev/null | awk '/libasan/ {print $3}')
if [ -n "$asan_rt" ]; then
  PRELOAD_VAR="$asan_rt $PRELOAD_LIB"
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
fi
# The system python, not a version-manager shim: it is what gets preloaded.
PYTHON=$(command -v /usr/bin/python3 || command -v python3)

require_preload_build() {
  for f in "$PRELOAD_LIB" "$ENGINE_LIB" "$UDP_CALLS"; do
    [ -e "$f" ] || fail "$f not built (make check builds it)"
  done
}

# engine_config FILE [extra lines...]: the engine on AF_XDP in host A with
# its own address MN_NET.101, loaded from the build tree. Standalone
# (machnetd = off) unless an extra line says otherwise: a daemon that happens
# to listen on the default socket must not capture a test's engine.
engine_config() {
  local file=$1 l standalone="machnetd = off"
  shift
  for l in "$@"; do case $l in "machnetd ="* | "machnetd="*) standalone="" ;; esac; done
  {
    echo "# written by $(basename "$0")"
    echo "device = net_af_xdp0,iface=$MN_IF_A,start_queue=0,queue_count=1"
    echo "ip = $MN_NET.101/$MN_PREFIX_LEN"
    echo "library = $ENGINE_LIB"
    [ -z "$standalone" ] || echo "$standalone"
    for l in "$@"; do echo "$l"; done
  } >"$file"
}

# preload_in_a CONFIG: sets PRE_A, the command prefix that runs a program in
# host A under the preload (an array, not a function: start_bg must know the
# program's own PID, and ip netns exec / machnet-run both exec).
preload_in_a() {
  PRE_A=(ip netns exec "$MN_NS_A" "$RUN" --preload "$PRELOAD_LIB" --config "$1" --)
}
