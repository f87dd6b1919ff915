/* Restart: one server started, stopped and started again (twice). After each start
 * tests/c/restart_client.mjs connects with the official socket.io-client, sends "ping"
 * (acked with the round) and gets a "news" event emitted from the callback, then
 * leaves; the callbacks registered before the first start serve every round.
 *
 * Usage: restart ROUNDS. Prints "PORT_<round> <n>" once listening in each round, then
 * waits (bounded) for that round's client to leave. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define NS "/"
#define J(s) (s), strlen(s)

typedef struct {
    swarmcast_server *server;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int round;
    int connects;
    int pings;
    int disconnects;
} ctx_t;

static ctx_t ctx = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static bool on_connect(void *userdata, const swarmcast_connect_info *info,
                       swarmcast_connect_refusal *refusal) {
    ctx_t *c = (ctx_t *)userdata;
    (void)refusal;
    if (strstr(info->auth_json, "\"token\":\"good\"") == NULL) {
        return false;
    }
    pthread_mutex_lock(&c->lock);
    c->connects++;
    pthread_mutex_unlock(&c->lock);
    return true;
}

static void on_ping(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    ctx_t *c = (ctx_t *)userdata;
    char body[64];
    int round;
    pthread_mutex_lock(&c->lock);
    c->pings++;
    round = c->round;
    pthread_mutex_unlock(&c->lock);
    snprintf(body, sizeof body, "{\"round\":%d}", round);
    if (ack != NULL) {
        CHECK_RC(swarmcast_ack_send(ack, J(body)), SWARMCAST_RESULT_OK);
    }
    CHECK_RC(swarmcast_server_emit_to_socket(c->server, NS, event->socket_id, "news", J(body)),
             SWARMCAST_RESULT_OK);
}

static void on_disconnect(void *userdata, const char *nsp, const char *socket_id,
                          const char *reason) {
    ctx_t *c = (ctx_t *)userdata;
    (void)nsp;
    (void)socket_id;
    (void)reason;
    pthread_mutex_lock(&c->lock);
    c->disconnects++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Wait (at most 30 s) until `want` sockets have left. */
static int wait_disconnects(int want) {
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&ctx.lock);
    while (ctx.disconnects < want) {
        if (pthread_cond_timedwait(&ctx.cond, &ctx.lock, &deadline) != 0) {
            break;
        }
    }
    ok = ctx.disconnects >= want;
    pthread_mutex_unlock(&ctx.lock);
    return ok;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 2;
    swarmcast_config *config = NULL;
    uint16_t port = 0;
    int round;

    CHECK_RC(swarmcast_config_new(&config), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_port(config, 0), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_new(config, &ctx.server), SWARMCAST_RESULT_OK);
    swarmcast_config_free(config);
    if (ctx.server == NULL) {
        return check_summary();
    }
    CHECK_RC(swarmcast_server_on_connect(ctx.server, NS, on_connect, &ctx), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_event(ctx.server, NS, "ping", on_ping, &ctx),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_disconnect(ctx.server, NS, on_disconnect, &ctx),
             SWARMCAST_RESULT_OK);

    for (round = 0; round < rounds; round++) {
        pthread_mutex_lock(&ctx.lock);
        ctx.round = round;
        pthread_mutex_unlock(&ctx.lock);
        CHECK_RC(swarmcast_server_start(ctx.server), SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_start(ctx.server), SWARMCAST_RESULT_ALREADY_STARTED);
        CHECK_RC(swarmcast_server_on_event(ctx.server, NS, "ping", on_ping, &ctx),
                 SWARMCAST_RESULT_ALREADY_STARTED);
        CHECK_RC(swarmcast_server_local_port(ctx.server, &port), SWARMCAST_RESULT_OK);
        printf("PORT_%d %u\n", round, (unsigned)port);
        fflush(stdout);
        check(wait_disconnects(round + 1), "round %d: the client came and left", round);
        CHECK_RC(swarmcast_server_stop(ctx.server), SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_stop(ctx.server), SWARMCAST_RESULT_NOT_RUNNING);
        CHECK_RC(swarmcast_server_emit(ctx.server, NS, "news", J("1")),
                 SWARMCAST_RESULT_NOT_RUNNING);
        CHECK_RC(swarmcast_server_local_port(ctx.server, &port), SWARMCAST_RESULT_NOT_RUNNING);
        /* Stopped: callbacks can be registered again (the same ones here). */
        CHECK_RC(swarmcast_server_on_event(ctx.server, NS, "ping", on_ping, &ctx),
                 SWARMCAST_RESULT_OK);
    }
    pthread_mutex_lock(&ctx.lock);
    check(ctx.connects == rounds, "one accepted connect per round (%d)", ctx.connects);
    check(ctx.pings == rounds, "one ping per round (%d)", ctx.pings);
    check(ctx.disconnects == rounds, "one disconnect per round (%d)", ctx.disconnects);
    pthread_mutex_unlock(&ctx.lock);
    swarmcast_server_free(ctx.server);
    return check_summary();
}
