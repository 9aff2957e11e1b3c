#!/usr/bin/env bash
# Installs every build and test dependency of machnet from Debian's packages
# and prepares the machine (hugepages reserved, hugetlbfs mounted).
# Idempotent: a second run installs nothing and changes nothing.
#   tools/install-deps.sh [--no-hugepages]
set -euo pipefail

PACKAGES=(
  # build
  build-essential autoconf automake libtool pkg-config clang-format git
  # DPDK (ethdev, mbuf, ip_frag, the af_xdp/memif/tap/ring PMDs) and what its
  # pkg-config file requires
  dpdk dpdk-dev libdpdk-dev
  # XDP steering program: clang -target bpf, libbpf
  clang libbpf-dev libxdp-dev
  # libFuzzer runtime for clang -fsanitize=fuzzer
  libclang-rt-14-dev
  # machnet.conf parser (linked statically into the shim and the libraries)
  libinih-dev
  # machnetd event loop, tests
  libevent-dev libgtest-dev libgmock-dev googletest
  # Mellanox PMDs (mlx4/mlx5) need rdma-core; configure reports whether usable
  libibverbs-dev rdma-core
  # test topology and peers
  iproute2 ethtool iputils-ping python3 socat sockperf procps kmod nftables
  # real TCP programs for the stream socket tests
  redis-server redis-tools nginx-light wrk curl
  # memcached's UDP protocol under the preload (tests/tools/test_kv.sh, tools/bench --paths kv)
  memcached
  # dual-stack UDP acceptance (iperf3 -u)
  iperf3
  # manual pages: rendered and linted by make check (tests/docs/)
  groff-base mandoc
  # tools/bench --report: PNG plots (tests/tools/)
  gnuplot-nox
  # packages: build the .debs and the rpm, check and install them (tools/test-packages)
  debhelper dpkg-dev fakeroot lintian autopkgtest rpm cpio systemd
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: needs root (apt-get, sysctl, mount)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--no-hugepages" ]; then exit 0; fi

# 2 MiB hugepages: each engine takes a few hundred MB; tests run up to four at once.
want=${MACHNET_HUGEPAGES:-1024}
have=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
if [ "$have" -lt "$want" ]; then
  echo "$want" > /proc/sys/vm/nr_hugepages
  have=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
  if [ "$have" -lt "$want" ]; then
    echo "install-deps: only $have of $want hugepages could be reserved" >&2
  fi
fi
# --in-memory engines need no mount; machnetd (DPDK primary with secondaries) does.
if ! grep -qs " /dev/hugepages hugetlbfs " /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
fi
# AF_XDP needs the BPF filesystem for nothing we use, but bpftool-style debugging does.
if ! grep -qs " /sys/fs/bpf bpf " /proc/mounts; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
echo "install-deps: ready ($(awk '/^HugePages_Total/ {print $2}' /proc/meminfo) hugepages of 2 MiB, hugetlbfs on /dev/hugepages)"
