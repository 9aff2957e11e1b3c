# Shared helpers of the stream socket tests (sourced): engines in shared-IP
# AF_XDP mode on both hosts of the two-host topology, so that an offloaded
# stream socket can fall back to the kernel's TCP on the same address (the
# XDP program steers only the engine's UDP ports; TCP stays with the kernel).
# shellcheck source=../preload/lib_preload.sh
. "$(dirname "${BASH_SOURCE[0]}")/../preload/lib_preload.sh"

STREAM_CHECK="$BUILDDIR/tests/stream/stream_check"

# stream_config FILE IFACE IP [extra lines...]: a shared-IP engine on IFACE.
# The probe waits 500 ms for a machnet answer unless a line sets
# transport.probe_timeout_us: these tests forbid kernel TCP between machnet
# hosts, and on a loaded machine a fresh engine or a busy server can answer
# after the 3 ms default (the connect would then, correctly, fall back).
# Plain hosts refuse the probe at once (ICMP), so the longer bound costs the
# fallback cases nothing.
stream_config() {
  local file=$1 ifc=$2 ip=$3
  shift 3
  {
    echo "# written by $(basename "$0")"
    echo "device = net_af_xdp0,iface=$ifc,start_queue=0,queue_count=1"
    echo "ip = $ip/$MN_PREFIX_LEN"
    echo "xdp_shared_ip = yes"
    echo "machnetd = off"
    echo "library = $ENGINE_LIB"
    case " $* " in
      *transport.probe_timeout_us*) ;;
      *) echo "transport.probe_timeout_us = 500000" ;;
    esac
    for l in "$@"; do echo "$l"; done
  } >"$file"
}

# preload_in NS CONFIG: sets PRE, the command prefix that runs a program in
# namespace NS under the preload.
preload_in() {
  PRE=(ip netns exec "$1" "$RUN" --preload "$PRELOAD_LIB" --config "$2" --)
}

# tcp_segments NS: the kernel's TCP segments in and out in namespace NS.
tcp_segments() {
  ip netns exec "$1" awk '/^Tcp:/ && n++ {print $11 + $12}' /proc/net/snmp
}
