/* Emitting into a cluster from C: swarmcast nodes joined through Redis, and a producer
 * process without a server that publishes to every node's clients.
 *
 *   cluster --redis URL node [--port P] [--seconds S]
 *       a C server joined to the cluster (swarmcast_config_set_redis), logging through
 *       the log callback; run several, behind a load balancer or not. Runs S seconds
 *       (default: until Ctrl-C).
 *   cluster --redis URL emit [--nsp /ns] [--room R]... [--except R]... [--count N] EVENT JSON
 *       publishes EVENT with the JSON argument N times (default 1) through a Redis
 *       emitter (swarmcast_redis_emitter_*), as a worker or a cron job would.
 *
 * With Redis on the default port:
 *   ./build/cluster --redis redis://127.0.0.1:6379 node --port 5001 &
 *   ./build/cluster --redis redis://127.0.0.1:6379 node --port 5002 &
 *   ./build/cluster --redis redis://127.0.0.1:6379 emit status '{"agent":7,"state":"busy"}'
 * and a socket.io client of either node gets the event. `swarmcast serve --redis URL`
 * (the CLI), Python servers with message_queue= and socket.io servers using
 * @socket.io/redis-streams-adapter can be nodes of the same cluster. */
#define _POSIX_C_SOURCE 200809L /* sigaction, nanosleep */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swarmcast.h"

#define MAX_ROOMS 16

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int check(swarmcast_result rc, const char *what) {
    if (rc != SWARMCAST_RESULT_OK) {
        char msg[128];
        size_t n = 0;
        swarmcast_result_message((uint32_t)rc, msg, sizeof msg, &n);
        fprintf(stderr, "%s: %s\n", what, msg);
    }
    return rc == SWARMCAST_RESULT_OK;
}

/* The library's log records (its own thread, one call at a time). */
static void on_log(void *userdata, uint32_t level, const char *target, const char *message,
                   size_t message_len) {
    static const char *names[] = {"?", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    (void)userdata;
    fprintf(stderr, "%-5s %s: %.*s\n", names[level <= 5 ? level : 0], target, (int)message_len,
            message);
}

static int run_node(const char *url, int port, int seconds) {
    swarmcast_config *config = NULL;
    swarmcast_server *server = NULL;
    if (!check(swarmcast_config_new(&config), "config")) return 1;
    swarmcast_config_set_port(config, (uint16_t)port);
    swarmcast_config_add_cors_origin(config, "*");
    /* "socket.io": the stream every node and emitter of this cluster shares. */
    int ok = check(swarmcast_config_set_redis(config, url, "socket.io"), "redis url") &&
             check(swarmcast_server_new(config, &server), "server");
    swarmcast_config_free(config);
    if (!ok) return 1;
    if (!check(swarmcast_server_start(server), "start")) {
        swarmcast_server_free(server);
        return 1;
    }
    uint16_t local = 0;
    swarmcast_server_local_port(server, &local);
    printf("listening on http://127.0.0.1:%u\n", (unsigned)local);
    fflush(stdout);

    /* A node whose Redis is away still serves its own clients; it joins when Redis
     * answers (the log callback says when it goes and comes back). */
    bool was_ready = false;
    for (int tick = 0; !stopping && (seconds <= 0 || tick < seconds * 10); tick++) {
        bool ready = false;
        swarmcast_server_cluster_ready(server, &ready);
        if (ready != was_ready) {
            printf("%s the cluster\n", ready ? "joined" : "cut off from");
            fflush(stdout);
            was_ready = ready;
        }
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    check(swarmcast_server_stop(server), "stop");
    swarmcast_server_free(server);
    return 0;
}

static int run_emit(const char *url, const char *nsp, const char **rooms, size_t rooms_n,
                    const char **except, size_t except_n, int count, const char *event,
                    const char *json) {
    swarmcast_redis_emitter *emitter = NULL;
    if (!check(swarmcast_redis_emitter_new(url, "socket.io", &emitter), "redis")) return 1;
    int failed = 0;
    for (int i = 0; i < count && !failed; i++) {
        failed = !check(swarmcast_redis_emitter_emit(emitter, nsp, rooms, rooms_n, except,
                                                     except_n, event, json, strlen(json)),
                        "emit");
    }
    swarmcast_redis_emitter_free(emitter);
    if (!failed) printf("published %d x %s\n", count, event);
    return failed;
}

static int usage(void) {
    fprintf(stderr,
            "usage: cluster --redis URL node [--port P] [--seconds S]\n"
            "       cluster --redis URL emit [--nsp /ns] [--room R]... [--except R]... "
            "[--count N] EVENT JSON\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *url = NULL, *mode = NULL, *nsp = "/", *event = NULL, *json = NULL;
    const char *rooms[MAX_ROOMS], *except[MAX_ROOMS];
    size_t rooms_n = 0, except_n = 0;
    int port = 5000, seconds = 0, count = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--redis") == 0 && v) {
            url = v, i++;
        } else if (strcmp(a, "--port") == 0 && v) {
            port = atoi(v), i++;
        } else if (strcmp(a, "--seconds") == 0 && v) {
            seconds = atoi(v), i++;
        } else if (strcmp(a, "--count") == 0 && v) {
            count = atoi(v), i++;
        } else if (strcmp(a, "--nsp") == 0 && v) {
            nsp = v, i++;
        } else if (strcmp(a, "--room") == 0 && v && rooms_n < MAX_ROOMS) {
            rooms[rooms_n++] = v, i++;
        } else if (strcmp(a, "--except") == 0 && v && except_n < MAX_ROOMS) {
            except[except_n++] = v, i++;
        } else if (mode == NULL) {
            mode = a;
        } else if (event == NULL) {
            event = a;
        } else if (json == NULL) {
            json = a;
        } else {
            return usage();
        }
    }
    if (url == NULL || mode == NULL) return usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Warnings and errors of the library (Redis unreachable, ...) on stderr. */
    check(swarmcast_set_log_callback(on_log, NULL, SWARMCAST_LOG_LEVEL_WARN), "log callback");

    int rc;
    if (strcmp(mode, "node") == 0) {
        rc = run_node(url, port, seconds);
    } else if (strcmp(mode, "emit") == 0 && event != NULL && json != NULL) {
        rc = run_emit(url, nsp, rooms, rooms_n, except, except_n, count, event, json);
    } else {
        rc = usage();
    }
    swarmcast_set_log_callback(NULL, NULL, 0);
    return rc;
}
