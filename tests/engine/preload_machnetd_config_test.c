/* The shim's machnetd keys (preload/rules.c): machnetd = auto|on|off and
 * machnetd.socket, from the file and from MACHNET_MACHNETD /
 * MACHNET_MACHNETD_SOCKET, with errors naming their origin. Plain C like the
 * shim; no root, no network. */
#include "check.h"
#include "ipc/control_protocol.h"

int main(void) {
  check_begin("mn_machnetd_cfg");
  unsetenv("MACHNET_MACHNETD");
  unsetenv("MACHNET_MACHNETD_SOCKET");
  struct mn_config c;
  char err[600];

  /* defaults: look for the daemon at its default socket */
  CHECK(load_text("", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_AUTO);
  CHECK(strcmp(c.machnetd_socket, MN_CTL_DEFAULT_SOCKET) == 0);
  CHECK(c.engine_ip == 0 && !c.have_device);

  CHECK(load_text("machnetd = off\nmachnetd.socket = /tmp/x.sock\n", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_OFF);
  CHECK(strcmp(c.machnetd_socket, "/tmp/x.sock") == 0);
  CHECK(load_text("[machnetd]\nsocket = /tmp/y.sock\n", &c, err, sizeof(err)) == 0);
  CHECK(strcmp(c.machnetd_socket, "/tmp/y.sock") == 0);
  CHECK(load_text("machnetd = on\n", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_ON);
  CHECK(load_text("machnetd = yes\n", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_ON);
  CHECK(load_text("machnetd = auto\n", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_AUTO);

  /* the environment wins */
  setenv("MACHNET_MACHNETD", "off", 1);
  setenv("MACHNET_MACHNETD_SOCKET", "/tmp/env.sock", 1);
  CHECK(load_text("machnetd = on\nmachnetd.socket = /tmp/file.sock\n", &c, err, sizeof(err)) == 0);
  CHECK(c.machnetd == MN_MACHNETD_OFF);
  CHECK(strcmp(c.machnetd_socket, "/tmp/env.sock") == 0);
  unsetenv("MACHNET_MACHNETD_SOCKET");

  /* errors name their origin */
  setenv("MACHNET_MACHNETD", "sometimes", 1);
  CHECK(load_text("", &c, err, sizeof(err)) == -1);
  CHECK(strstr(err, "env MACHNET_MACHNETD") != NULL && strstr(err, "auto, on or off") != NULL);
  unsetenv("MACHNET_MACHNETD");
  CHECK(load_text("\nmachnetd = maybe\n", &c, err, sizeof(err)) == -1);
  CHECK(strstr(err, ":2:") != NULL && strstr(err, "machnetd") != NULL);
  char line[400];
  memset(line, 0, sizeof(line));
  strcpy(line, "machnetd.socket = /");
  memset(line + strlen(line), 'a', 150);
  strcat(line, "\n");
  CHECK(load_text(line, &c, err, sizeof(err)) == -1);
  CHECK(strstr(err, "machnetd.socket") != NULL);

  return check_end("preload_machnetd_config_test");
}
