/* Bad input from C returns the documented codes and never crashes: NULL arguments,
 * bad UTF-8, invalid JSON, reserved names, unknown namespaces and sockets, calls in the
 * wrong lifecycle phase (double start, double stop, emit after stop), a port in use,
 * free(NULL). Run under AddressSanitizer (leaks included) by tests/c/run.sh. */
#include <string.h>

#include "check.h"

#define NS "/"
#define J(s) (s), strlen(s)

static bool accept_all(void *userdata, const swarmcast_connect_info *info,
                       swarmcast_connect_refusal *refusal) {
    (void)userdata;
    (void)info;
    (void)refusal;
    return true;
}

static void on_event(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata;
    (void)event;
    swarmcast_ack_free(ack);
}

static void test_version_and_messages(void) {
    char buf[128];
    size_t n = 99;
    check(strcmp(swarmcast_version(), SWARMCAST_VERSION) == 0,
          "header SWARMCAST_VERSION \"%s\" matches the library's \"%s\"", SWARMCAST_VERSION,
          swarmcast_version());

    CHECK_RC(swarmcast_result_message(SWARMCAST_RESULT_OK, NULL, sizeof buf, &n),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_result_message(SWARMCAST_RESULT_OK, buf, sizeof buf, NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_result_message(SWARMCAST_RESULT_OK, buf, 0, &n),
             SWARMCAST_RESULT_INSUFFICIENT_SIZE);
    check(n == 99, "out_n untouched on failure");

    {
        int all_ok = 1;
        uint32_t code;
        for (code = 0; code <= SWARMCAST_RESULT_NOT_FOUND; code++) {
            memset(buf, 'x', sizeof buf);
            if (swarmcast_result_message(code, buf, sizeof buf, &n) != SWARMCAST_RESULT_OK ||
                n == 0 || n != strlen(buf) || strstr(buf, "unknown") != NULL) {
                all_ok = 0;
                printf("# code %u: \"%s\"\n", (unsigned)code, buf);
            }
        }
        check(all_ok, "every code 0..%u has a message", (unsigned)SWARMCAST_RESULT_NOT_FOUND);
    }
    CHECK_RC(swarmcast_result_message(4242, buf, sizeof buf, &n), SWARMCAST_RESULT_OK);
    check(strstr(buf, "unknown") != NULL, "an unknown code is described as unknown: \"%s\"",
          buf);
    {
        char small[5];
        CHECK_RC(swarmcast_result_message(SWARMCAST_RESULT_NULL_PARAMETER, small, sizeof small,
                                          &n),
                 SWARMCAST_RESULT_OK);
        check(n == 4 && small[4] == '\0', "a message is truncated and NUL-terminated");
    }
}

static void test_config(void) {
    swarmcast_config *config = NULL;
    CHECK_RC(swarmcast_config_new(NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_new(&config), SWARMCAST_RESULT_OK);

    CHECK_RC(swarmcast_config_set_port(NULL, 0), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_host(config, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_set_host(config, ""), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_host(config, "127.0.0.\xff"), SWARMCAST_RESULT_INVALID_UTF8);
    CHECK_RC(swarmcast_config_set_host(config, "127.0.0.1"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_path(config, "socket.io"), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_path(config, "/socket.io"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_cors_origin(config, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "http://127.0.0.1:8050"),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_ping_interval_ms(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_ping_timeout_ms(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_max_payload(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_queue_packets(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_queue_bytes(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_connect_timeout_ms(config, 0),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_worker_threads(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_handler_threads(config, 0), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_slow_consumer(config, 7), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_slow_consumer(config, SWARMCAST_SLOW_CONSUMER_REPORT),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_emit_max_wait_ms(config, UINT64_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_emit_max_wait_ms(config, 0), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_emit_max_wait_ms(config, 2000), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_namespace(config, "agents"), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_namespace(config, "/agents"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_subscribe_pattern(config, ""),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_subscribe_pattern(config, "state:*"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_ping_interval_ms(config, 1000), SWARMCAST_RESULT_OK);

    swarmcast_config_free(config);
    swarmcast_config_free(NULL);
    check(1, "swarmcast_config_free(NULL) is a no-op");
}

/* Every config value is bounded (the sharp edges: 100000 handler threads,
 * a ping interval no client survives, an origin that is not one). */
static void test_config_limits(void) {
    swarmcast_config *config = NULL;
    CHECK_RC(swarmcast_config_new(&config), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_handler_threads(config, 100000),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_handler_threads(config, SWARMCAST_MAX_THREADS + 1),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_handler_threads(config, SWARMCAST_MAX_THREADS),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_handler_threads(config, 2), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_worker_threads(config, SIZE_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_ping_interval_ms(config, UINT64_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_ping_interval_ms(config, SWARMCAST_MAX_DURATION_MS + 1),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_ping_interval_ms(config, SWARMCAST_MAX_DURATION_MS),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_ping_timeout_ms(config, UINT64_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_connect_timeout_ms(config, UINT64_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_max_payload(config, SIZE_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_queue_bytes(config, SIZE_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_queue_packets(config, SIZE_MAX),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "not a url"),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_cors_origin(config, ""), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "http://localhost:8050/"),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "localhost:8050"),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "*"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_add_cors_origin(config, "https://[::1]:8443"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_host(config, "not a host"), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_host(config, "localhost"), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_config_set_path(config, "/socket io"), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_config_set_path(config, "/sio?x=1"), SWARMCAST_RESULT_INVALID_ARGUMENT);
    swarmcast_config_free(config);
}

/* Names and JSON payloads are checked before anything is sent. */
static void test_names_and_json(swarmcast_server *server) {
    static char deep[100000 * 2 + 1];
    static char deep_ok[SWARMCAST_MAX_JSON_DEPTH * 2 + 1];
    size_t i;
    CHECK_RC(swarmcast_server_emit(server, NS, "", J("1")), SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_emit_to_room(server, NS, "", "status", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_emit(server, NS, "swarmcast:snapshot", J("{}")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_emit(server, NS, "swarmcast:delta", J("{}")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_emit_volatile_to_room(server, NS, "r", "swarmcast:delta", J("{}")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_on_event(server, NS, "connect", on_event, NULL),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_on_event(server, NS, "disconnect", on_event, NULL),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_on_event(server, NS, "", on_event, NULL),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_join(server, NS, "no-such-socket", ""),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_leave(server, NS, "no-such-socket", ""),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_state_set(server, NS, "", "k", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_state_set(server, NS, "m", "", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("1e400")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("{\"x\":[-1e999]}")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("1.5e300")), SWARMCAST_RESULT_OK);
    for (i = 0; i < 100000; i++) {
        deep[i] = '[';
        deep[100000 + i] = ']';
    }
    CHECK_RC(swarmcast_server_emit(server, NS, "status", deep, 200000),
             SWARMCAST_RESULT_INVALID_JSON);
    for (i = 0; i < SWARMCAST_MAX_JSON_DEPTH; i++) {
        deep_ok[i] = '[';
        deep_ok[SWARMCAST_MAX_JSON_DEPTH + i] = ']';
    }
    CHECK_RC(swarmcast_server_emit(server, NS, "status", deep_ok, 2 * SWARMCAST_MAX_JSON_DEPTH),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", deep_ok,
                                   2 * SWARMCAST_MAX_JSON_DEPTH - 1),
             SWARMCAST_RESULT_INVALID_JSON);
}

static swarmcast_server *new_server(uint16_t port) {
    swarmcast_config *config = NULL;
    swarmcast_server *server = NULL;
    if (swarmcast_config_new(&config) != SWARMCAST_RESULT_OK) {
        return NULL;
    }
    swarmcast_config_set_port(config, port);
    swarmcast_config_add_namespace(config, "/agents");
    if (swarmcast_server_new(config, &server) != SWARMCAST_RESULT_OK) {
        server = NULL;
    }
    swarmcast_config_free(config);
    return server;
}

static void test_server_before_start(swarmcast_server *server) {
    uint16_t port = 1;
    bool deleted = false;
    swarmcast_server *out = (swarmcast_server *)&port; /* must stay untouched */

    CHECK_RC(swarmcast_server_new(NULL, &out), SWARMCAST_RESULT_NULL_PARAMETER);
    check(out == (swarmcast_server *)&port, "out_server untouched on failure");
    {
        swarmcast_config *config = NULL;
        swarmcast_config_new(&config);
        CHECK_RC(swarmcast_server_new(config, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
        swarmcast_config_free(config);
    }
    swarmcast_server_free(NULL);
    check(1, "swarmcast_server_free(NULL) is a no-op");
    swarmcast_ack_free(NULL);
    check(1, "swarmcast_ack_free(NULL) is a no-op");
    CHECK_RC(swarmcast_ack_send(NULL, J("1")), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_connect_refusal_set_message(NULL, "x"), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_connect_refusal_set_data(NULL, J("1")), SWARMCAST_RESULT_NULL_PARAMETER);

    CHECK_RC(swarmcast_server_local_port(server, &port), SWARMCAST_RESULT_NOT_RUNNING);
    check(port == 1, "out_port untouched on failure");
    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_NOT_RUNNING);

    /* Callbacks */
    CHECK_RC(swarmcast_server_on_connect(NULL, NS, accept_all, NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_on_connect(server, NS, NULL, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_on_connect(server, "nope", accept_all, NULL),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_on_event(server, NS, NULL, on_event, NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_on_event(server, NS, "\xc3\x28", on_event, NULL),
             SWARMCAST_RESULT_INVALID_UTF8);
    CHECK_RC(swarmcast_server_on_event(server, NS, "ping", on_event, NULL), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_any_event(server, NS, on_event, NULL), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_on_disconnect(server, NS, NULL, NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    /* Registering a callback declares its namespace. */
    CHECK_RC(swarmcast_server_emit(server, "/chat", "status", J("1")),
             SWARMCAST_RESULT_UNKNOWN_NAMESPACE);
    CHECK_RC(swarmcast_server_on_event(server, "/chat", "msg", on_event, NULL), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit(server, "/chat", "status", J("1")), SWARMCAST_RESULT_OK);

    /* Emits before the start reach nobody and succeed; bad input is refused. */
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("{\"ok\":true}")), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit(NULL, NS, "status", J("1")), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_emit(server, NULL, "status", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_emit(server, NS, NULL, J("1")), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", NULL, 0),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("{")), SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("")), SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("[1,]")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("1 2")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("{'a':1}")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("\"\xff\xfe\"")),
             SWARMCAST_RESULT_INVALID_UTF8);
    /* The length is honoured: the bytes after it are not read. */
    CHECK_RC(swarmcast_server_emit(server, NS, "status", "[1,2]garbage", 5), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit(server, NS, "\xff", J("1")), SWARMCAST_RESULT_INVALID_UTF8);
    CHECK_RC(swarmcast_server_emit(server, NS, "connect", J("1")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_emit(server, NS, "disconnect", J("1")),
             SWARMCAST_RESULT_RESERVED_EVENT);
    CHECK_RC(swarmcast_server_emit(server, "/nope", "status", J("1")),
             SWARMCAST_RESULT_UNKNOWN_NAMESPACE);
    CHECK_RC(swarmcast_server_emit(server, "nope", "status", J("1")),
             SWARMCAST_RESULT_INVALID_ARGUMENT);
    CHECK_RC(swarmcast_server_emit(server, "/agents", "status", J("1")), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit_to_room(server, NS, NULL, "status", J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_emit_to_room(server, NS, "room", "status", J("1")),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit_to_socket(server, NS, "no-such-socket", "status", J("1")),
             SWARMCAST_RESULT_UNKNOWN_SOCKET);
    CHECK_RC(swarmcast_server_emit_volatile(server, NS, "tick", J("1")), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_emit_volatile_to_room(server, NS, "room", "tick", J("nul")),
             SWARMCAST_RESULT_INVALID_JSON);

    test_names_and_json(server);

    /* Rooms */
    CHECK_RC(swarmcast_server_join(server, NS, "no-such-socket", "room"),
             SWARMCAST_RESULT_UNKNOWN_SOCKET);
    CHECK_RC(swarmcast_server_leave(server, NS, "no-such-socket", "room"),
             SWARMCAST_RESULT_UNKNOWN_SOCKET);
    CHECK_RC(swarmcast_server_join(server, NS, "no-such-socket", NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_disconnect_socket(server, NS, "no-such-socket"),
             SWARMCAST_RESULT_UNKNOWN_SOCKET);

    /* The handshake request of a socket */
    {
        char req[64];
        size_t req_n = 0;
        CHECK_RC(swarmcast_server_socket_request(server, NS, "no-such-socket",
                                                 SWARMCAST_REQUEST_FIELD_QUERY, NULL, req,
                                                 sizeof req, &req_n),
                 SWARMCAST_RESULT_UNKNOWN_SOCKET);
        CHECK_RC(swarmcast_server_socket_request(NULL, NS, "x", SWARMCAST_REQUEST_FIELD_QUERY,
                                                 NULL, req, sizeof req, &req_n),
                 SWARMCAST_RESULT_NULL_PARAMETER);
        CHECK_RC(swarmcast_server_socket_request(server, NS, "x", SWARMCAST_REQUEST_FIELD_QUERY,
                                                 NULL, NULL, sizeof req, &req_n),
                 SWARMCAST_RESULT_NULL_PARAMETER);
        CHECK_RC(swarmcast_server_socket_request(server, NS, "x", SWARMCAST_REQUEST_FIELD_QUERY,
                                                 NULL, req, sizeof req, NULL),
                 SWARMCAST_RESULT_NULL_PARAMETER);
        CHECK_RC(swarmcast_server_socket_request(server, NS, "x", SWARMCAST_REQUEST_FIELD_HEADER,
                                                 NULL, req, sizeof req, &req_n),
                 SWARMCAST_RESULT_NULL_PARAMETER);
        check(req_n == 0, "out_n untouched on failure");
    }

    /* Keyed state works before the start. */
    CHECK_RC(swarmcast_server_state_set(server, NS, "agents", "a1", J("{\"status\":\"idle\"}")),
             SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_state_set(server, NS, "agents", "a1", J("{status}")),
             SWARMCAST_RESULT_INVALID_JSON);
    CHECK_RC(swarmcast_server_state_set(server, NS, "agents", NULL, J("1")),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_state_delete(server, NS, "agents", "a1", NULL),
             SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_state_delete(server, NS, "agents", "a1", &deleted),
             SWARMCAST_RESULT_OK);
    check(deleted, "state delete of a present key reports it");
    CHECK_RC(swarmcast_server_state_delete(server, NS, "agents", "a1", &deleted),
             SWARMCAST_RESULT_OK);
    check(!deleted, "state delete of an absent key reports it");
}

static void test_lifecycle(void) {
    swarmcast_server *server = new_server(0);
    swarmcast_server *other = NULL;
    uint16_t port = 0;
    check(server != NULL, "server created");
    if (server == NULL) {
        return;
    }
    test_server_before_start(server);

    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_local_port(server, &port), SWARMCAST_RESULT_OK);
    check(port != 0, "a free port was picked (%u)", (unsigned)port);
    CHECK_RC(swarmcast_server_local_port(server, NULL), SWARMCAST_RESULT_NULL_PARAMETER);
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_ALREADY_STARTED);
    CHECK_RC(swarmcast_server_on_connect(server, NS, accept_all, NULL),
             SWARMCAST_RESULT_ALREADY_STARTED);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("[1,2,3]")), SWARMCAST_RESULT_OK);

    /* The same port again: the second server cannot bind. */
    other = new_server(port);
    check(other != NULL, "second server created");
    if (other != NULL) {
        CHECK_RC(swarmcast_server_start(other), SWARMCAST_RESULT_BIND_FAILED);
        /* A failed start can be retried (the port is still taken here). */
        CHECK_RC(swarmcast_server_start(other), SWARMCAST_RESULT_BIND_FAILED);
        CHECK_RC(swarmcast_server_emit(other, NS, "status", J("1")), SWARMCAST_RESULT_NOT_RUNNING);
        CHECK_RC(swarmcast_server_stop(other), SWARMCAST_RESULT_NOT_RUNNING);
        swarmcast_server_free(other);
    }

    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_NOT_RUNNING);
    /* A stopped server starts again (tests/c/restart.c has clients); stop it again. */
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_local_port(server, &port), SWARMCAST_RESULT_NOT_RUNNING);
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("1")), SWARMCAST_RESULT_NOT_RUNNING);
    CHECK_RC(swarmcast_server_emit_to_room(server, NS, "room", "status", J("1")),
             SWARMCAST_RESULT_NOT_RUNNING);
    CHECK_RC(swarmcast_server_emit_volatile(server, NS, "tick", J("1")),
             SWARMCAST_RESULT_NOT_RUNNING);
    CHECK_RC(swarmcast_server_join(server, NS, "x", "room"), SWARMCAST_RESULT_NOT_RUNNING);
    CHECK_RC(swarmcast_server_state_set(server, NS, "agents", "a1", J("1")),
             SWARMCAST_RESULT_NOT_RUNNING);
    /* Argument errors are still reported first. */
    CHECK_RC(swarmcast_server_emit(server, NS, "status", J("{")), SWARMCAST_RESULT_INVALID_JSON);
    swarmcast_server_free(server);

    /* Freeing a running server stops it; freeing a never-started one is fine too. */
    server = new_server(0);
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    swarmcast_server_free(server);
    check(1, "a running server can be freed without a stop");
    server = new_server(0);
    swarmcast_server_free(server);
    check(1, "a server that never started can be freed");
}

int main(void) {
    test_version_and_messages();
    test_config();
    test_config_limits();
    test_lifecycle();
    return check_summary();
}
