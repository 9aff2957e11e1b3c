#!/usr/bin/env bash
# The development package: hello_world.c from its examples, compiled against
# the installed header with `pkg-config --cflags --libs machnet`, links
# libmachnet.so.0 from the package's directory and says hello over net_memif
# (a server and a client process, standalone engines).
. "$(dirname "$0")/lib.sh"
require_hugepages

src=""
for d in /usr/share/doc/libmachnet-dev/examples /usr/share/doc/machnet-devel/examples; do
  [ -f "$d/hello_world.c" ] && src=$d/hello_world.c && break
done
[ -n "$src" ] || fail "hello_world.c is not among the development package's examples"
flags=$(pkg-config --cflags --libs machnet) || fail "pkg-config knows no machnet"
pkg-config --exact-version="$(machnetd --version | awk '{print $3}' | tr -d ,)" machnet ||
  fail "machnet.pc's version $(pkg-config --modversion machnet) is not machnetd's"
cp "$src" "$TMP/hello_world.c"
# shellcheck disable=SC2086
(cd "$TMP" && ${CC:-cc} -Wall -Werror -o hello_world hello_world.c $flags) >"$TMP/cc.log" 2>&1 ||
  fail "cc hello_world.c $flags: $(cat "$TMP/cc.log")"
lib=$(ldd "$TMP/hello_world" | awk '$1 == "libmachnet.so.0" {print $3}')
[ -n "$lib" ] && from_libdir "$lib" || fail "hello_world does not link $LIBDIR/libmachnet.so.0: $(ldd "$TMP/hello_world")"
ok "built $src with '$flags'"

sock=$TMP/memif.sock
net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250))
start_bg server "$TMP/hello_world" --set machnetd=off --server --port 7 --ip "$net.11/24" \
  --device "net_memif0,role=server,id=0,socket=$sock,socket-abstract=no,mac=02:00:00:00:01:01"
SERVER=$LAST_PID
wait_for_line server "listening on" 20
timeout 30 "$TMP/hello_world" --set machnetd=off --client "$net.11" --port 7 --ip "$net.12/24" \
  --device "net_memif0,role=client,id=0,socket=$sock,socket-abstract=no,mac=02:00:00:00:01:02" \
  >"$TMP/client.log" 2>&1 || fail "hello_world client: $(cat "$TMP/client.log")"
grep -q 'reply "hello"' "$TMP/client.log" || fail "hello_world client got no reply"
rc=0
for _ in $(seq 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
stop_bg "$SERVER" || rc=$?
[ $rc -eq 0 ] || fail "hello_world server exited $rc"
grep -q 'received "hello"' "$TMP/server.log" || fail "hello_world server received nothing"
ok "hello_world server and client exchanged \"hello\" over net_memif"
