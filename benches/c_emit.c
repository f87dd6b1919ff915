#define _POSIX_C_SOURCE 199309L
/* ns per swarmcast_server_emit from C: a started server (port 0) with no client, a
 * 200-byte JSON tick, emitted in a loop. Prints one JSON object. Built and run by
 * benches/bench.py against target/release/libswarmcast.a (bindings/c). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "swarmcast.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void) {
  swarmcast_config *config = NULL;
  swarmcast_server *server = NULL;
  if (swarmcast_config_new(&config) != 0) return 1;
  swarmcast_config_set_port(config, 0);
  if (swarmcast_server_new(config, &server) != 0) return 1;
  swarmcast_config_free(config);
  if (swarmcast_server_start(server) != 0) return 1;

  char json[256];
  char pad[153];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = '\0';
  const long n = 1000000;
  long failed = 0;
  double start = 0;
  /* Formatted once: the emit is measured, not snprintf. */
  int len = snprintf(json, sizeof json, "{\"seq\":1,\"ts\":1700000000000000,\"pad\":\"%s\"}", pad);
  for (long i = -n / 10; i < n; i++) { /* the first tenth warms up */
    if (i == 0) start = now_ns();
    if (swarmcast_server_emit(server, "/", "tick", json, (size_t)len) != 0) failed++;
  }
  double ns = (now_ns() - start) / (double)n;
  swarmcast_server_free(server);
  printf("{\"c_emit_ns\": %.1f, \"failed\": %ld, \"emits\": %ld}\n", ns, failed, n);
  return failed ? 2 : 0;
}
