/*
 * hello_world: the smallest program on the machnet native API, in plain C.
 *
 *   hello_world --device DEV --ip 10.0.0.1/24 --server [--port 888]
 *   hello_world --device DEV --ip 10.0.0.2/24 --client 10.0.0.1 [--port 888]
 *
 * The client connects, sends "hello" and waits for the server's "hello"
 * back; the server answers one client and exits. Engine settings also come
 * from --config FILE, $MACHNET_CONFIG and MACHNET_* variables (machnet(3)).
 */
#include <errno.h>
#include <getopt.h>
#include <machnet/machnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OVERRIDES 64

static int die(const char* what) {
  int e = errno;
  fprintf(stderr, "hello_world: %s: %s (%s)\n", what, strerror(e), machnet_last_error());
  return 1;
}

static int run_server(machnet_channel_t* ch, unsigned port) {
  char buf[64];
  machnet_flow_t flow;
  if (machnet_listen(ch, NULL, (uint16_t)port) != 0) return die("listen");
  printf("hello_world: listening on port %u\n", port);
  fflush(stdout);
  ssize_t n = machnet_recv(ch, buf, sizeof(buf) - 1, &flow, 0);
  if (n <= 0) return n == 0 ? (fprintf(stderr, "hello_world: peer closed\n"), 1) : die("recv");
  buf[n] = '\0';
  printf("hello_world: received \"%s\"\n", buf);
  if (machnet_send(ch, &flow, "hello", 5, 0) != 0) return die("send");
  /* Graceful close: the reply and the FIN leave before detach returns. */
  if (machnet_close(ch, &flow) != 0) return die("close");
  return 0;
}

static int run_client(machnet_channel_t* ch, const char* server, unsigned port) {
  char buf[64];
  machnet_flow_t flow, from;
  if (machnet_connect(ch, NULL, server, (uint16_t)port, &flow, 2000) != 0) return die("connect");
  if (machnet_send(ch, &flow, "hello", 5, 0) != 0) return die("send");
  machnet_set_timeout(ch, 5000);
  ssize_t n = machnet_recv(ch, buf, sizeof(buf) - 1, &from, 0);
  if (n <= 0) return n == 0 ? (fprintf(stderr, "hello_world: peer closed\n"), 1) : die("recv");
  buf[n] = '\0';
  printf("hello_world: reply \"%s\"\n", buf);
  machnet_close(ch, &flow);
  return strcmp(buf, "hello") == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'f'}, {"device", required_argument, NULL, 'd'},
      {"ip", required_argument, NULL, 'i'},     {"set", required_argument, NULL, 's'},
      {"server", no_argument, NULL, 'S'},       {"client", required_argument, NULL, 'c'},
      {"port", required_argument, NULL, 'p'},   {NULL, 0, NULL, 0}};
  const char* overrides[MAX_OVERRIDES + 1];
  char* owned[MAX_OVERRIDES];
  int n_over = 0, server = 0, c;
  const char *config = NULL, *peer = NULL;
  unsigned port = 888;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    const char* key = NULL;
    switch (c) {
      case 'f':
        config = optarg;
        break;
      case 'd':
        key = "device";
        break;
      case 'i':
        key = "ip";
        break;
      case 's':
        key = "";
        break;
      case 'S':
        server = 1;
        break;
      case 'c':
        peer = optarg;
        break;
      case 'p':
        port = (unsigned)strtoul(optarg, NULL, 10);
        break;
      default:
        return 2;
    }
    if (key != NULL) {
      if (n_over == MAX_OVERRIDES) return 2;
      size_t len = strlen(key) + strlen(optarg) + 2;
      owned[n_over] = malloc(len);
      if (owned[n_over] == NULL) return 1;
      snprintf(owned[n_over], len, "%s%s%s", key, *key ? "=" : "", optarg);
      overrides[n_over] = owned[n_over];
      n_over++;
    }
  }
  overrides[n_over] = NULL;
  if (server == (peer != NULL) || port == 0 || port > 65535) {
    fprintf(stderr,
            "usage: hello_world [--config F] [--device D] [--ip A/L] [--set K=V]...\n"
            "                   (--server | --client SERVER_IP) [--port P]\n");
    return 2;
  }
  if (machnet_init_config(config, overrides) != 0) return die("init");
  machnet_channel_t* ch = machnet_attach();
  if (ch == NULL) return die("attach");
  int rc = server ? run_server(ch, port) : run_client(ch, peer, port);
  machnet_detach(ch);
  for (int i = 0; i < n_over; i++) free(owned[i]);
  return rc;
}
