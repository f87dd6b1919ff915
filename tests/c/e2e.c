/* End-to-end: a C program runs a swarmcast server; tests/c/receiver.mjs connects with
 * the official socket.io-client. Checked here: the connect callback refuses (message +
 * data) and accepts, events reach their callbacks, an ack is answered inside the
 * callback and another one later from a thread of ours, binary attachments arrive,
 * stop from a callback is refused, several C threads emit numbered events at once
 * (the receiver checks it got all of them, in per-thread order), rooms, direct emits,
 * keyed state, and the disconnect callback with its reason.
 *
 * Usage: e2e THREADS PER_THREAD. Prints "PORT <n>" once listening, then waits (bounded)
 * for the receiver. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define NS "/"
#define J(s) (s), strlen(s)
#define MAX_THREADS 16

typedef struct {
    swarmcast_server *server;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    char sid[128];
    int connects;
    int refusals;
    int disconnects;
    char reason[128];       /* of the receiver's main socket */
    char other_reason[128]; /* of its idle socket, still connected when we stop */
    int handler_errors;
    int later_started;
    pthread_t later_thread;
} ctx_t;

typedef struct {
    ctx_t *ctx;
    int thread;
    int count;
    int errors;
} emitter_t;

static ctx_t ctx = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static int threads_n = 4;
static int per_thread = 250;

static void handler_error(const char *what) {
    pthread_mutex_lock(&ctx.lock);
    ctx.handler_errors++;
    pthread_mutex_unlock(&ctx.lock);
    printf("# handler error: %s\n", what);
    fflush(stdout);
}

/* The handshake request of the accepted client (tests/c/receiver.mjs sets the query
 * `agent=receiver` and the header `X-Agent: c-test`). */
static void check_request(swarmcast_server *server, const char *sid) {
    char buf[256];
    char small[4];
    size_t n = 0;
    if (swarmcast_server_socket_request(server, NS, sid, SWARMCAST_REQUEST_FIELD_REMOTE_ADDR,
                                        NULL, buf, sizeof buf, &n) != SWARMCAST_RESULT_OK ||
        strncmp(buf, "127.0.0.1:", 10) != 0 || n != strlen(buf)) {
        handler_error("request: remote address");
    }
    if (swarmcast_server_socket_request(server, NS, sid, SWARMCAST_REQUEST_FIELD_QUERY, NULL,
                                        buf, sizeof buf, &n) != SWARMCAST_RESULT_OK ||
        strstr(buf, "agent=receiver") == NULL || strstr(buf, "EIO=4") == NULL) {
        handler_error("request: query string");
    }
    if (swarmcast_server_socket_request(server, NS, sid, SWARMCAST_REQUEST_FIELD_HEADER,
                                        "X-Agent", buf, sizeof buf, &n) != SWARMCAST_RESULT_OK ||
        strcmp(buf, "c-test") != 0 || n != 6) {
        handler_error("request: header");
    }
    if (swarmcast_server_socket_request(server, NS, sid, SWARMCAST_REQUEST_FIELD_HEADER,
                                        "x-missing", buf, sizeof buf, &n) !=
        SWARMCAST_RESULT_NOT_FOUND) {
        handler_error("request: a missing header is NOT_FOUND");
    }
    n = 0;
    if (swarmcast_server_socket_request(server, NS, sid, SWARMCAST_REQUEST_FIELD_HEADER,
                                        "x-agent", small, sizeof small, &n) !=
            SWARMCAST_RESULT_INSUFFICIENT_SIZE ||
        n != 6) {
        handler_error("request: a small buffer gets INSUFFICIENT_SIZE and the length needed");
    }
    if (swarmcast_server_socket_request(server, NS, sid, 99, NULL, buf, sizeof buf, &n) !=
        SWARMCAST_RESULT_INVALID_ARGUMENT) {
        handler_error("request: an unknown field is INVALID_ARGUMENT");
    }
}

static bool on_connect(void *userdata, const swarmcast_connect_info *info,
                       swarmcast_connect_refusal *refusal) {
    ctx_t *c = (ctx_t *)userdata;
    if (strcmp(info->nsp, NS) != 0 || info->socket_id[0] == '\0' ||
        strlen(info->auth_json) != info->auth_json_len) {
        handler_error("connect info");
    }
    if (strstr(info->auth_json, "\"token\":\"good\"") != NULL) {
        check_request(c->server, info->socket_id);
        pthread_mutex_lock(&c->lock);
        c->connects++;
        pthread_mutex_unlock(&c->lock);
        return true;
    }
    if (swarmcast_connect_refusal_set_message(refusal, "unauthorized") != SWARMCAST_RESULT_OK ||
        swarmcast_connect_refusal_set_data(refusal, J("{\"hint\":\"token\"}")) !=
            SWARMCAST_RESULT_OK ||
        swarmcast_connect_refusal_set_data(refusal, J("{bad json")) !=
            SWARMCAST_RESULT_INVALID_JSON) {
        handler_error("refusal setters");
    }
    pthread_mutex_lock(&c->lock);
    c->refusals++;
    pthread_mutex_unlock(&c->lock);
    return false;
}

static void on_disconnect(void *userdata, const char *nsp, const char *socket_id,
                          const char *reason) {
    ctx_t *c = (ctx_t *)userdata;
    (void)nsp;
    pthread_mutex_lock(&c->lock);
    c->disconnects++;
    if (strcmp(socket_id, c->sid) == 0) {
        snprintf(c->reason, sizeof c->reason, "%s", reason);
    } else {
        snprintf(c->other_reason, sizeof c->other_reason, "%s", reason);
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void on_ready(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    ctx_t *c = (ctx_t *)userdata;
    char reply[128];
    if (strcmp(event->name, "ready") != 0 || event->args_json_len != strlen(event->args_json)) {
        handler_error("ready event");
    }
    if (swarmcast_server_join(c->server, NS, event->socket_id, "watchers") != SWARMCAST_RESULT_OK) {
        handler_error("join");
    }
    /* Emitting from inside a callback is fine. */
    if (swarmcast_server_emit_to_socket(c->server, NS, event->socket_id, "welcome",
                                        J("{\"from\":\"callback\"}")) != SWARMCAST_RESULT_OK) {
        handler_error("emit inside a callback");
    }
    if (ack == NULL) {
        handler_error("ready without ack");
    } else {
        snprintf(reply, sizeof reply, "{\"threads\":%d,\"per_thread\":%d}", threads_n, per_thread);
        if (swarmcast_ack_send(ack, J(reply)) != SWARMCAST_RESULT_OK) {
            handler_error("ready ack");
        }
    }
    pthread_mutex_lock(&c->lock);
    snprintf(c->sid, sizeof c->sid, "%s", event->socket_id);
    c->ready = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void *answer_later(void *arg) {
    swarmcast_ack *ack = (swarmcast_ack *)arg;
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    if (swarmcast_ack_send(ack, J("{\"ok\":true,\"later\":true}")) != SWARMCAST_RESULT_OK) {
        handler_error("later ack");
    }
    return NULL;
}

static void on_command(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    ctx_t *c = (ctx_t *)userdata;
    if (ack == NULL) {
        handler_error("command without ack");
        return;
    }
    /* A callback cannot stop its own server (it would wait for itself). */
    if (swarmcast_server_stop(c->server) != SWARMCAST_RESULT_IN_CALLBACK) {
        handler_error("stop inside a callback was not refused");
    }
    if (strstr(event->args_json, "\"op\":\"sum\"") != NULL) {
        /* The receiver sends {"op":"sum","values":[1,2,3]}. */
        if (strstr(event->args_json, "[1,2,3]") == NULL) {
            handler_error("sum args");
        }
        if (swarmcast_ack_send(ack, J("{\"ok\":true,\"sum\":6}")) != SWARMCAST_RESULT_OK) {
            handler_error("sum ack");
        }
    } else if (strstr(event->args_json, "\"op\":\"later\"") != NULL) {
        /* Answered from another thread, after the callback returned. */
        pthread_mutex_lock(&c->lock);
        if (c->later_started || pthread_create(&c->later_thread, NULL, answer_later, ack) != 0) {
            swarmcast_ack_free(ack);
            handler_error("later thread");
        } else {
            c->later_started = 1;
        }
        pthread_mutex_unlock(&c->lock);
    } else {
        /* Unknown command: answering with invalid JSON fails and still consumes the ack. */
        if (swarmcast_ack_send(ack, J("{nope")) != SWARMCAST_RESULT_INVALID_JSON) {
            handler_error("bad ack json");
        }
    }
}

static void on_any(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata;
    if (strcmp(event->name, "blob") == 0) {
        char reply[128];
        size_t len = 0;
        unsigned sum = 0;
        size_t i;
        if (event->attachments_len != 1 || strstr(event->args_json, "_placeholder") == NULL) {
            handler_error("blob attachments");
        } else {
            len = event->attachments[0].len;
            for (i = 0; i < len; i++) {
                sum += event->attachments[0].data[i];
            }
        }
        snprintf(reply, sizeof reply, "{\"attachments\":%u,\"len\":%u,\"sum\":%u}",
                 (unsigned)event->attachments_len, (unsigned)len, sum);
        if (ack == NULL || swarmcast_ack_send(ack, J(reply)) != SWARMCAST_RESULT_OK) {
            handler_error("blob ack");
        }
        return;
    }
    if (ack != NULL && strcmp(event->name, "raw") == 0) {
        /* The receiver sends its arguments as text, key order and spelling its own:
         * args_json holds them byte for byte (re-serialised, the keys would be sorted
         * and 100000000000000000000 would become 1e20). */
        const char *expected = "[{\"z\":1,\"a\":\"\\u00e9\"},100000000000000000000]";
        char reply[512];
        snprintf(reply, sizeof reply, "{\"same\":%s}",
                 strcmp(event->args_json, expected) == 0 ? "true" : "false");
        if (strcmp(event->args_json, expected) != 0) {
            printf("# raw args_json: %s\n", event->args_json);
        }
        if (swarmcast_ack_send(ack, J(reply)) != SWARMCAST_RESULT_OK) {
            handler_error("raw ack");
        }
        return;
    }
    if (ack != NULL && strcmp(event->name, "ev") == 0) {
        /* The receiver sends "ev\0il": the name keeps every byte, name_len counts them. */
        char reply[128];
        snprintf(reply, sizeof reply, "{\"name_len\":%u,\"strlen\":%u,\"tail\":\"%s\"}",
                 (unsigned)event->name_len, (unsigned)strlen(event->name),
                 event->name_len == 5 ? event->name + 3 : "");
        if (swarmcast_ack_send(ack, J(reply)) != SWARMCAST_RESULT_OK) {
            handler_error("ev\\0il ack");
        }
        return;
    }
    swarmcast_ack_free(ack);
}

static void *emit_numbered(void *arg) {
    emitter_t *e = (emitter_t *)arg;
    char json[96];
    int n;
    for (n = 0; n < e->count; n++) {
        int len = snprintf(json, sizeof json, "{\"t\":%d,\"n\":%d}", e->thread, n);
        if (swarmcast_server_emit(e->ctx->server, NS, "seq", json, (size_t)len) !=
            SWARMCAST_RESULT_OK) {
            e->errors++;
        }
    }
    return NULL;
}

/* Wait (at most `seconds`) until *flag >= want. */
static int wait_for(int *flag, int want, int seconds) {
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&ctx.lock);
    while (*flag < want) {
        if (pthread_cond_timedwait(&ctx.cond, &ctx.lock, &deadline) != 0) {
            break;
        }
    }
    ok = *flag >= want;
    pthread_mutex_unlock(&ctx.lock);
    return ok;
}

int main(int argc, char **argv) {
    swarmcast_config *config = NULL;
    pthread_t threads[MAX_THREADS];
    emitter_t emitters[MAX_THREADS];
    uint16_t port = 0;
    bool deleted = false;
    char json[128];
    int i;
    int emit_errors = 0;

    if (argc > 1) {
        threads_n = atoi(argv[1]);
    }
    if (argc > 2) {
        per_thread = atoi(argv[2]);
    }
    if (threads_n < 1 || threads_n > MAX_THREADS || per_thread < 1) {
        fprintf(stderr, "usage: e2e THREADS(1..%d) PER_THREAD\n", MAX_THREADS);
        return 2;
    }

    CHECK_RC(swarmcast_config_new(&config), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_port(config, 0), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_handler_threads(config, 2), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_subscribe_pattern(config, "state:*"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_new(config, &ctx.server), SWARMCAST_RESULT_OK);
    swarmcast_config_free(config);
    if (ctx.server == NULL) {
        return check_summary();
    }

    CHECK_RC(swarmcast_server_on_connect(ctx.server, NS, on_connect, &ctx), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_disconnect(ctx.server, NS, on_disconnect, &ctx),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_event(ctx.server, NS, "ready", on_ready, &ctx),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_event(ctx.server, NS, "command", on_command, &ctx),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_any_event(ctx.server, NS, on_any, &ctx), SWARMCAST_RESULT_OK);
    /* State set before the start is there for the first subscriber. */
    CHECK_RC(swarmcast_server_state_set(ctx.server, NS, "agents", "a1",
                                        J("{\"status\":\"booting\"}")),
             SWARMCAST_RESULT_OK);

    CHECK_RC(swarmcast_server_start(ctx.server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_local_port(ctx.server, &port), SWARMCAST_RESULT_OK);
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);

    check(wait_for(&ctx.ready, 1, 30), "the receiver connected and sent ready");
    if (ctx.ready) {
        CHECK_RC(swarmcast_server_state_set(ctx.server, NS, "agents", "a1",
                                            J("{\"status\":\"running\"}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_state_set(ctx.server, NS, "agents", "a2", J("{\"status\":1}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_state_delete(ctx.server, NS, "agents", "a2", &deleted),
                 SWARMCAST_RESULT_OK);
        check(deleted, "a2 was deleted");
        CHECK_RC(swarmcast_server_emit_to_room(ctx.server, NS, "watchers", "room-msg",
                                               J("{\"room\":\"watchers\"}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_emit_to_room(ctx.server, NS, "nobody-here", "room-msg",
                                               J("{\"room\":\"nobody-here\"}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_emit_to_socket(ctx.server, NS, ctx.sid, "direct",
                                                 J("{\"direct\":true}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_emit_volatile(ctx.server, NS, "tick", J("{\"v\":1}")),
                 SWARMCAST_RESULT_OK);

        for (i = 0; i < threads_n; i++) {
            emitters[i].ctx = &ctx;
            emitters[i].thread = i;
            emitters[i].count = per_thread;
            emitters[i].errors = 0;
            if (pthread_create(&threads[i], NULL, emit_numbered, &emitters[i]) != 0) {
                check(0, "pthread_create");
                return 1;
            }
        }
        for (i = 0; i < threads_n; i++) {
            pthread_join(threads[i], NULL);
            emit_errors += emitters[i].errors;
        }
        check(emit_errors == 0, "%d threads x %d emits all returned OK (%d errors)", threads_n,
              per_thread, emit_errors);
        snprintf(json, sizeof json, "{\"threads\":%d,\"per_thread\":%d}", threads_n, per_thread);
        CHECK_RC(swarmcast_server_emit(ctx.server, NS, "done", J(json)), SWARMCAST_RESULT_OK);
    }

    check(wait_for(&ctx.disconnects, 1, 60), "the receiver's main socket disconnected");
    /* Its idle socket is still connected: its disconnect callback runs during the stop,
     * which returns only after every callback has finished. */
    CHECK_RC(swarmcast_server_stop(ctx.server), SWARMCAST_RESULT_OK);
    check(ctx.disconnects == 2 && strcmp(ctx.other_reason, "server shutting down") == 0,
          "the stop delivered the idle socket's disconnect (\"%s\") before returning",
          ctx.other_reason);
    if (ctx.later_started) {
        pthread_join(ctx.later_thread, NULL);
    }
    check(ctx.connects == 2, "two sockets accepted (%d)", ctx.connects);
    check(ctx.refusals == 1, "one socket refused (%d)", ctx.refusals);
    check(ctx.disconnects == 2, "two disconnect callbacks, none for the refused socket (%d)",
          ctx.disconnects);
    check(strcmp(ctx.reason, "client namespace disconnect") == 0, "disconnect reason \"%s\"",
          ctx.reason);
    check(ctx.later_started == 1, "the deferred ack was answered from another thread");
    check(ctx.handler_errors == 0, "no error inside the callbacks (%d)", ctx.handler_errors);
    CHECK_RC(swarmcast_server_emit(ctx.server, NS, "late", J("1")), SWARMCAST_RESULT_NOT_RUNNING);
    swarmcast_server_free(ctx.server);
    return check_summary();
}
