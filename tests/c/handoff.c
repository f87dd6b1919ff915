/* Emits handed to the library's thread (swarmcast_config_set_emit_in_background).
 * tests/c/handoff_client.mjs (the official socket.io-client) connects and first sends
 * "work" with an ack: its callback emits 500 events to the client and then answers,
 * and the client checks it got the 500 before the answer. Then it subscribes to the
 * keyed state map "agents" and sends "ready"; this program then emits 1,000 events to
 * its socket with a state change after every 100th, deletes the first key, emits 300
 * events to a room the socket is put in, takes it out of the room, emits once more to
 * the room (reaching nobody) and "end" to the socket, then disconnects it. The client
 * checks it got exactly 0..1299 with each change's delta after the event before it,
 * the delete after 999, and "end", in order, before its disconnect: neither the state
 * changes, the room change nor the disconnect overtook the emits handed off before
 * them. Errors an emit can see are
 * returned at once; swarmcast_server_flush waits until the emits are out.
 *
 * Usage: handoff. Prints "PORT <n>" once listening, then waits (bounded) for the
 * client. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define NS "/"
#define J(s) (s), strlen(s)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static char sid[64];
static int ready;
static int gone;

static void on_ready(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata;
    pthread_mutex_lock(&lock);
    snprintf(sid, sizeof sid, "%s", event->socket_id);
    ready = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (ack != NULL) {
        swarmcast_ack_free(ack);
    }
}

/* "work": 500 emits to the caller, then the answer to its ack, which must not overtake
 * them (the answer waits for the emits handed off before it). */
static void on_work(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    swarmcast_server *server = userdata;
    char body[32];
    int failed = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(body, sizeof body, "{\"w\":%d}", i);
        failed += swarmcast_server_emit_to_socket(server, NS, event->socket_id, "w", J(body)) !=
                  SWARMCAST_RESULT_OK;
    }
    check(failed == 0, "500 emits from the work callback handed off");
    if (ack != NULL) {
        CHECK_RC(swarmcast_ack_send(ack, J("\"done\"")), SWARMCAST_RESULT_OK);
    }
}

static void on_disconnect(void *userdata, const char *nsp, const char *socket_id,
                          const char *reason) {
    (void)userdata;
    (void)nsp;
    (void)socket_id;
    (void)reason;
    pthread_mutex_lock(&lock);
    gone = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Wait (at most `seconds`) until *flag is set. */
static int wait_for(int *flag, int seconds) {
    struct timespec deadline;
    int ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (!*flag) {
        if (pthread_cond_timedwait(&cond, &lock, &deadline) != 0) {
            break;
        }
    }
    ok = *flag;
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Emit {"i": first..last-1} to the socket (room NULL) or to `room`; how many failed. */
static int emit_range(swarmcast_server *server, const char *room, int first, int last) {
    char body[32];
    int failed = 0;
    for (int i = first; i < last; i++) {
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        swarmcast_result rc =
            room == NULL ? swarmcast_server_emit_to_socket(server, NS, sid, "n", J(body))
                         : swarmcast_server_emit_to_room(server, NS, room, "n", J(body));
        failed += rc != SWARMCAST_RESULT_OK;
    }
    return failed;
}

int main(void) {
    swarmcast_config *config = NULL;
    swarmcast_server *server = NULL;
    uint16_t port = 0;

    CHECK_RC(swarmcast_config_new(&config), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_port(config, 0), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_emit_in_background(NULL, true), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_emit_in_background(config, true), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_subscribe_pattern(config, "state:agents"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_new(config, &server), SWARMCAST_RESULT_OK);
    swarmcast_config_free(config);
    if (server == NULL) {
        return check_summary();
    }
    CHECK_RC(swarmcast_server_on_event(server, NS, "ready", on_ready, NULL), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_event(server, NS, "work", on_work, server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_disconnect(server, NS, on_disconnect, NULL), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_local_port(server, &port), SWARMCAST_RESULT_OK);
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);

    check(wait_for(&ready, 30), "the client connected and sent ready");
    if (ready) {
        /* Keyed state changes go through the same queue: each comes after the 100
         * emits made before it. */
        int failed = 0;
        for (int k = 0; k < 10; k++) {
            char key[16], value[16];
            failed += emit_range(server, NULL, 100 * k, 100 * k + 100);
            snprintf(key, sizeof key, "k%d", 100 * k + 99);
            snprintf(value, sizeof value, "%d", 100 * k + 99);
            failed += swarmcast_server_state_set(server, NS, "agents", key, J(value)) !=
                      SWARMCAST_RESULT_OK;
        }
        check(failed == 0, "1,000 emits to the socket and 10 state changes handed off");
        /* The delete waits for the set handed off before it: the key is there. */
        bool deleted = false;
        CHECK_RC(swarmcast_server_state_delete(server, NS, "agents", "k99", &deleted),
                 SWARMCAST_RESULT_OK);
        check(deleted, "the delete saw the set handed off before it");
        CHECK_RC(swarmcast_server_join(server, NS, sid, "agents"), SWARMCAST_RESULT_OK);
        check(emit_range(server, "agents", 1000, 1300) == 0, "300 emits to its room handed off");
        CHECK_RC(swarmcast_server_leave(server, NS, sid, "agents"), SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_emit_to_room(server, NS, "agents", "n", J("{\"i\":-1}")),
                 SWARMCAST_RESULT_OK);
        CHECK_RC(swarmcast_server_emit_to_socket(server, NS, sid, "n", J("{\"i\":\"end\"}")),
                 SWARMCAST_RESULT_OK);

        /* What an emit can see is still returned by the call. */
        CHECK_RC(swarmcast_server_emit(server, NS, "n", J("{bad")), SWARMCAST_RESULT_INVALID_JSON);
        CHECK_RC(swarmcast_server_emit(server, "/nowhere", "n", J("1")),
                 SWARMCAST_RESULT_UNKNOWN_NAMESPACE);
        CHECK_RC(swarmcast_server_emit(server, NS, "connect", J("1")),
                 SWARMCAST_RESULT_RESERVED_EVENT);
        CHECK_RC(swarmcast_server_emit_to_socket(server, NS, "no-such-socket", "n", J("1")),
                 SWARMCAST_RESULT_UNKNOWN_SOCKET);
        CHECK_RC(swarmcast_server_flush(NULL, 0), SWARMCAST_RESULT_NULL_PARAMETER);
        CHECK_RC(swarmcast_server_flush(server, 10000), SWARMCAST_RESULT_OK);

        CHECK_RC(swarmcast_server_disconnect_socket(server, NS, sid), SWARMCAST_RESULT_OK);
        check(wait_for(&gone, 30), "the disconnect callback ran");
    }
    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_OK);
    swarmcast_server_free(server);
    return check_summary();
}
