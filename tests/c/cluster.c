/* The Redis cluster from C, against a real redis-server (tests/c/run.sh starts one on
 * a free loopback port and passes its URL):
 *
 * 1. bad input: NULL pointers, bad URLs, an unreachable Redis, bad names and JSON,
 *    reserved events, for swarmcast_redis_emitter_* and swarmcast_config_set_redis;
 * 2. the log callback: its level filter, turning it off, no call from inside it, and a
 *    node whose Redis is unreachable (it starts, is not ready, logs why, cannot
 *    restart);
 * 3. two C servers joined through Redis, one client of each (tests/c/cluster_client.mjs,
 *    socket.io-client): a C Redis emitter emits to everyone, to a room, to two rooms and
 *    to everyone but a room, and a server's own emit crosses to the other node; each
 *    client checks it got exactly its events, in order. The emitter also sets and
 *    deletes keys of a keyed state map, which run.sh reads back from Redis.
 *
 * Usage: cluster REDIS_URL. Prints "PORTS <a> <b>" once both nodes listen, then waits
 * (bounded) for the clients. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define J(s) (s), strlen(s)
#define STREAM "socket.io"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback port nobody listens on (bound, then released). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        return 1; /* port 1: refused as well */
    }
    close(fd);
    return ntohs(addr.sin_port);
}

/* --- the log callback's records ------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    int count;
    int above_filter; /* records more verbose than the filter set */
    uint32_t filter;
    int listening;    /* "swarmcast listening" at INFO from a swarmcast target */
    int redis_warned; /* a WARN or ERROR record about Redis */
    int url_warned;   /* the reason a Redis URL was refused, at WARN */
    int bad_message;  /* strlen(message) != message_len, or no target */
    int tried_set;
    swarmcast_result set_inside; /* swarmcast_set_log_callback from the callback */
} logs_t;

static logs_t logs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void on_log(void *userdata, uint32_t level, const char *target, const char *message,
                   size_t message_len) {
    logs_t *l = (logs_t *)userdata;
    int try_set = 0;
    pthread_mutex_lock(&l->lock);
    l->count++;
    if (level > l->filter) l->above_filter++;
    if (target == NULL || strncmp(target, "swarmcast", 9) != 0 ||
        strlen(message) != message_len) {
        l->bad_message++;
    }
    if (level == SWARMCAST_LOG_LEVEL_INFO && strstr(message, "swarmcast listening") != NULL) {
        l->listening++;
    }
    if (level <= SWARMCAST_LOG_LEVEL_WARN && strstr(message, "redis") != NULL) {
        l->redis_warned++;
    }
    if (level == SWARMCAST_LOG_LEVEL_WARN && strstr(message, "invalid redis url") != NULL) {
        l->url_warned++;
    }
    if (!l->tried_set) {
        l->tried_set = 1;
        try_set = 1;
    }
    pthread_mutex_unlock(&l->lock);
    if (try_set) {
        /* Outside our lock: the result is what matters (it must not wait). */
        swarmcast_result rc = swarmcast_set_log_callback(on_log, userdata, level);
        pthread_mutex_lock(&l->lock);
        l->set_inside = rc;
        pthread_mutex_unlock(&l->lock);
    }
}

static int logs_get(int *field) {
    pthread_mutex_lock(&logs.lock);
    int v = *field;
    pthread_mutex_unlock(&logs.lock);
    return v;
}

/* Wait (at most `ms`) until *field > 0. */
static int logs_wait(int *field, long ms) {
    for (long waited = 0; waited < ms; waited += 20) {
        if (logs_get(field) > 0) return 1;
        sleep_ms(20);
    }
    return logs_get(field) > 0;
}

static swarmcast_result set_filter(uint32_t level) {
    pthread_mutex_lock(&logs.lock);
    logs.filter = level;
    pthread_mutex_unlock(&logs.lock);
    return swarmcast_set_log_callback(on_log, &logs, level);
}

/* A plain server on a free port, started; NULL on failure. */
static swarmcast_server *start_plain(void) {
    swarmcast_config *c = NULL;
    swarmcast_server *s = NULL;
    if (swarmcast_config_new(&c) != SWARMCAST_RESULT_OK) return NULL;
    swarmcast_config_set_port(c, 0);
    swarmcast_result rc = swarmcast_server_new(c, &s);
    swarmcast_config_free(c);
    if (rc != SWARMCAST_RESULT_OK) return NULL;
    if (swarmcast_server_start(s) != SWARMCAST_RESULT_OK) {
        swarmcast_server_free(s);
        return NULL;
    }
    return s;
}

/* --- 1. bad input ------------------------------------------------------------------ */

static void bad_input(const char *url) {
    swarmcast_redis_emitter *e = NULL;
    swarmcast_redis_emitter *untouched = (swarmcast_redis_emitter *)&e;
    char unreachable[64];
    snprintf(unreachable, sizeof unreachable, "redis://127.0.0.1:%d", free_port());

    CHECK_RC(swarmcast_redis_emitter_new(NULL, STREAM, &e), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_new(url, NULL, &e), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_new(url, STREAM, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_new(url, "", &e), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_new("not a url", STREAM, &e),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_new("http://127.0.0.1:6379", STREAM, &e),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_new("redis\xff://x", STREAM, &e),
             SWARMCAST_RESULT_INVALID_UTF8);
    e = untouched;
    double t0 = now_s();
    CHECK_RC(swarmcast_redis_emitter_new(unreachable, STREAM, &e),
             SWARMCAST_RESULT_REDIS_FAILED);
    check(now_s() - t0 < SWARMCAST_REDIS_TIMEOUT_MS / 1000.0 + 2,
          "an unreachable Redis fails within SWARMCAST_REDIS_TIMEOUT_MS (%.1f s)", now_s() - t0);
    check(e == untouched, "a failed _new leaves *out_emitter untouched");
    swarmcast_redis_emitter_free(NULL); /* no-op */
    check(1, "swarmcast_redis_emitter_free(NULL) is a no-op");

    e = NULL;
    CHECK_RC(swarmcast_redis_emitter_new(url, STREAM, &e), SWARMCAST_RESULT_OK);
    if (e == NULL) return;
    const char *blue[] = {"blue"};
    const char *empty[] = {""};
    const char *null_room[] = {NULL};
    CHECK_RC(swarmcast_redis_emitter_emit(NULL, "/", NULL, 0, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, NULL, NULL, 0, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "nons", NULL, 0, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 1, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", null_room, 1, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", empty, 1, NULL, 0, "ev", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 2, "ev", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, empty, 1, "ev", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, NULL, J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "connect", J("1")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "disconnect", J("1")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "swarmcast:delta", J("1")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "ev", NULL, 1),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "ev", J("{bad json")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "ev", J("1e400")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "ev", J("\"\xff\"")),
             SWARMCAST_RESULT_INVALID_UTF8);
    /* Valid: nobody listens yet, Redis takes it anyway. */
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "ev", J("{\"a\":1}")),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_redis_emitter_emit(e, "/other", blue, 1, blue, 1, "ev", J("[1,2]")),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_redis_emitter_state_set(NULL, "/", "m", "k", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "", "k", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "m", NULL, J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "m", "", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "m", "k", J("[1,")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_redis_emitter_state_delete(NULL, "/", "m", "k"),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_redis_emitter_state_delete(e, "x", "m", "k"),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_redis_emitter_state_delete(e, "/", "m", ""),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    swarmcast_redis_emitter_free(e);

    swarmcast_config *c = NULL;
    CHECK_RC(swarmcast_config_new(&c), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_redis(NULL, url, STREAM), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_redis(c, NULL, STREAM), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_redis(c, url, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_redis(c, url, ""), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_redis(c, "not a url", STREAM),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_redis(c, url, STREAM), SWARMCAST_RESULT_OK);
    swarmcast_server *s = NULL;
    bool ready = true;
    CHECK_RC(swarmcast_server_new(c, &s), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_cluster_ready(NULL, &ready), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_cluster_ready(s, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_cluster_ready(s, &ready), SWARMCAST_RESULT_OK);
    check(!ready, "a node is not ready before its start");
    swarmcast_server_free(s);
    swarmcast_config_free(c);

    CHECK_RC(swarmcast_set_log_callback(on_log, &logs, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_set_log_callback(on_log, &logs, 6), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_set_log_callback(NULL, NULL, 0), SWARMCAST_RESULT_OK);
}

/* --- 2. the log callback, and a node whose Redis is unreachable ------------------ */

static void log_callback(void) {
    CHECK_RC(set_filter(SWARMCAST_LOG_LEVEL_WARN), SWARMCAST_RESULT_OK);
    swarmcast_server *s = start_plain();
    check(s != NULL, "a server starts with a log callback set");
    sleep_ms(300);
    check(logs_get(&logs.listening) == 0, "at WARN, the INFO record \"swarmcast listening\" is filtered out");
    check(logs_get(&logs.above_filter) == 0, "at WARN, no INFO/DEBUG/TRACE record arrives");
    swarmcast_server_free(s);

    CHECK_RC(set_filter(SWARMCAST_LOG_LEVEL_INFO), SWARMCAST_RESULT_OK);
    s = start_plain();
    check(logs_wait(&logs.listening, 5000), "at INFO, \"swarmcast listening\" reaches the callback");
    {
        bool ready = false;
        CHECK_RC(swarmcast_server_cluster_ready(s, &ready), SWARMCAST_RESULT_OK);
        check(ready, "a server without a cluster is always ready");
        CHECK_RC(swarmcast_server_wait_cluster_ready(s, 0), SWARMCAST_RESULT_OK);
    }
    check(logs_get(&logs.bad_message) == 0, "every record has a swarmcast target and message_len");
    pthread_mutex_lock(&logs.lock);
    swarmcast_result inside = logs.set_inside;
    pthread_mutex_unlock(&logs.lock);
    check(logs_get(&logs.tried_set) == 1 && inside == SWARMCAST_RESULT_IN_CALLBACK,
          "swarmcast_set_log_callback from the log callback is SWARMCAST_RESULT_IN_CALLBACK");
    swarmcast_server_free(s);

    /* The words behind a result code go to the log. */
    CHECK_RC(set_filter(SWARMCAST_LOG_LEVEL_WARN), SWARMCAST_RESULT_OK);
    swarmcast_redis_emitter *e = NULL;
    CHECK_RC(swarmcast_redis_emitter_new("redis://:bad port", STREAM, &e),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    check(logs_wait(&logs.url_warned, 5000),
          "the reason a Redis URL was refused reaches the log callback at WARN");

    /* A node whose Redis is unreachable: starts (it serves its own clients), is not
     * ready, says why in the log, and cannot start again after a stop. */
    char unreachable[64];
    snprintf(unreachable, sizeof unreachable, "redis://127.0.0.1:%d", free_port());
    swarmcast_config *c = NULL;
    swarmcast_config_new(&c);
    swarmcast_config_set_port(c, 0);
    CHECK_RC(swarmcast_config_set_redis(c, unreachable, STREAM), SWARMCAST_RESULT_OK);
    s = NULL;
    CHECK_RC(swarmcast_server_new(c, &s), SWARMCAST_RESULT_OK);
    swarmcast_config_free(c);
    if (s != NULL) {
        CHECK_RC(swarmcast_server_start(s), SWARMCAST_RESULT_OK);
        check(logs_wait(&logs.redis_warned, 8000),
              "an unreachable Redis is logged at WARN or ERROR");
        bool ready = true;
        CHECK_RC(swarmcast_server_cluster_ready(s, &ready), SWARMCAST_RESULT_OK);
        check(!ready, "a node whose Redis is unreachable is not ready");
        double t1 = now_s();
        CHECK_RC(swarmcast_server_wait_cluster_ready(s, 300), SWARMCAST_RESULT_REDIS_FAILED);
        check(now_s() - t1 >= 0.25 && now_s() - t1 < 2,
              "swarmcast_server_wait_cluster_ready gives up at its deadline (%.2f s)",
              now_s() - t1);
        CHECK_RC(swarmcast_server_wait_cluster_ready(s, SWARMCAST_MAX_DURATION_MS + 1),
                 SWARMCAST_RESULT_INVALID_ARGUMENT);
        double t0 = now_s();
        CHECK_RC(swarmcast_server_stop(s), SWARMCAST_RESULT_OK);
        check(now_s() - t0 < 10, "its stop is bounded (%.1f s)", now_s() - t0);
        CHECK_RC(swarmcast_server_wait_cluster_ready(s, 100), SWARMCAST_RESULT_NOT_RUNNING);
        CHECK_RC(swarmcast_server_start(s), SWARMCAST_RESULT_INVALID_CONFIG);
        swarmcast_server_free(s);
    }

    CHECK_RC(swarmcast_set_log_callback(NULL, NULL, 0), SWARMCAST_RESULT_OK);
    int before = logs_get(&logs.count);
    s = start_plain();
    sleep_ms(300);
    swarmcast_server_free(s);
    check(logs_get(&logs.count) == before, "after swarmcast_set_log_callback(NULL), nothing arrives");
}

/* --- 3. two nodes, one emitter ---------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    int disconnects;
    int errors;
} node_ctx_t;

static node_ctx_t nodes = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
static swarmcast_server *node_a;
static swarmcast_server *node_b;

/* The client says which room it wants: auth {"room": "<name>"}. */
static bool on_connect(void *userdata, const swarmcast_connect_info *info,
                       swarmcast_connect_refusal *refusal) {
    swarmcast_server *self = (swarmcast_server *)userdata;
    (void)refusal;
    const char *room = strstr(info->auth_json, "\"blue\"") != NULL ? "blue" : "red";
    if (swarmcast_server_join(self, "/", info->socket_id, room) != SWARMCAST_RESULT_OK) {
        pthread_mutex_lock(&nodes.lock);
        nodes.errors++;
        pthread_mutex_unlock(&nodes.lock);
    }
    return true;
}

static void on_ready(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata;
    (void)event;
    if (ack != NULL) swarmcast_ack_send(ack, J("{\"ok\":true}"));
    pthread_mutex_lock(&nodes.lock);
    nodes.ready++;
    pthread_cond_broadcast(&nodes.cond);
    pthread_mutex_unlock(&nodes.lock);
}

static void on_disconnect(void *userdata, const char *nsp, const char *sid, const char *reason) {
    (void)userdata;
    (void)nsp;
    (void)sid;
    (void)reason;
    pthread_mutex_lock(&nodes.lock);
    nodes.disconnects++;
    pthread_cond_broadcast(&nodes.cond);
    pthread_mutex_unlock(&nodes.lock);
}

/* Wait until *field >= want, at most `seconds`. */
static int nodes_wait(int *field, int want, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&nodes.lock);
    while (*field < want) {
        if (pthread_cond_timedwait(&nodes.cond, &nodes.lock, &deadline) != 0) break;
    }
    int ok = *field >= want;
    pthread_mutex_unlock(&nodes.lock);
    return ok;
}

static swarmcast_server *start_node(const char *url, const char *name) {
    swarmcast_config *c = NULL;
    swarmcast_server *s = NULL;
    swarmcast_config_new(&c);
    swarmcast_config_set_port(c, 0);
    CHECK_RC(swarmcast_config_set_redis(c, url, STREAM), SWARMCAST_RESULT_OK);
    swarmcast_result rc = swarmcast_server_new(c, &s);
    swarmcast_config_free(c);
    check(rc == SWARMCAST_RESULT_OK, "node %s created", name);
    if (rc != SWARMCAST_RESULT_OK) return NULL;
    swarmcast_server_on_connect(s, "/", on_connect, s);
    swarmcast_server_on_event(s, "/", "ready", on_ready, NULL);
    swarmcast_server_on_disconnect(s, "/", on_disconnect, NULL);
    CHECK_RC(swarmcast_server_start(s), SWARMCAST_RESULT_OK);
    return s;
}

static int wait_ready(swarmcast_server *s, int seconds) {
    bool ready = false;
    for (int i = 0; i < seconds * 20; i++) {
        if (swarmcast_server_cluster_ready(s, &ready) == SWARMCAST_RESULT_OK && ready) return 1;
        sleep_ms(50);
    }
    return 0;
}

static void two_nodes(const char *url) {
    node_a = start_node(url, "A");
    node_b = start_node(url, "B");
    uint16_t pa = 0, pb = 0;
    if (node_a == NULL || node_b == NULL ||
        swarmcast_server_local_port(node_a, &pa) != SWARMCAST_RESULT_OK ||
        swarmcast_server_local_port(node_b, &pb) != SWARMCAST_RESULT_OK) {
        check(0, "both nodes listen");
        swarmcast_server_free(node_a);
        swarmcast_server_free(node_b);
        return;
    }
    check(wait_ready(node_a, 5) && wait_ready(node_b, 5), "both nodes are joined to the cluster");
    CHECK_RC(swarmcast_server_wait_cluster_ready(node_a, 5000), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_wait_cluster_ready(NULL, 5000), SWARMCAST_RESULT_NULL_PARAMETER);

    swarmcast_redis_emitter *e = NULL;
    CHECK_RC(swarmcast_redis_emitter_new(url, STREAM, &e), SWARMCAST_RESULT_OK);

    printf("PORTS %u %u\n", (unsigned)pa, (unsigned)pb);
    fflush(stdout);
    check(nodes_wait(&nodes.ready, 2, 30), "a client of each node is ready");

    const char *blue[] = {"blue"};
    const char *both[] = {"blue", "red"};
    /* A server's own broadcast crosses to the other node. */
    CHECK_RC(swarmcast_server_emit(node_a, "/", "from-a", J("{\"n\":1}")), SWARMCAST_RESULT_OK);
    if (e != NULL) {
        CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "hello", J("{\"n\":2}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_emit(e, "/", blue, 1, NULL, 0, "blue-only",
                                              J("{\"n\":3}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, blue, 1, "not-blue",
                                              J("{\"n\":4}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_emit(e, "/", both, 2, NULL, 0, "both-rooms",
                                              J("[\"x\",{\"n\":5}]")),
                 SWARMCAST_RESULT_OK);
        /* Keyed state: a1 set, a2 set then deleted. run.sh reads the map back from
         * Redis (the nodes' live deltas to subscribers are not checked here: see the
         * note in run.sh). */
        CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "agents", "a1", J("{\"s\":\"idle\"}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_state_set(e, "/", "agents", "a2", J("{\"s\":\"busy\"}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_state_delete(e, "/", "agents", "a2"),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_redis_emitter_emit(e, "/", NULL, 0, NULL, 0, "done", J("null")),
                 SWARMCAST_RESULT_OK);
    }
    check(nodes_wait(&nodes.disconnects, 2, 30), "both clients left after \"done\"");
    pthread_mutex_lock(&nodes.lock);
    int errors = nodes.errors;
    pthread_mutex_unlock(&nodes.lock);
    check(errors == 0, "the connect callbacks put the clients in their rooms");
    swarmcast_redis_emitter_free(e);
    CHECK_RC(swarmcast_server_stop(node_a), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_stop(node_b), SWARMCAST_RESULT_OK);
    swarmcast_server_free(node_a);
    swarmcast_server_free(node_b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cluster REDIS_URL\n");
        return 2;
    }
    bad_input(argv[1]);
    log_callback();
    two_nodes(argv[1]);
    return check_summary();
}
