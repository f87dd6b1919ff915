/* Teardown from C: swarmcast_server_stop_timeout gives up on a blocking callback and
 * says so (TIMED_OUT), swarmcast_wait_teardown waits for it; an ack answered just
 * before the stop reaches a long-polling client; swarmcast_server_free from a callback
 * and swarmcast_wait_teardown. The client is a minimal Engine.IO long-polling client
 * over plain sockets (HTTP/1.0, one request per connection). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define J(s) (s), strlen(s)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One HTTP request; the response body (after the blank line) goes to `body`. */
static int http(uint16_t port, const char *method, const char *query, const char *payload,
                char *body, size_t body_len) {
    char req[1024], resp[8192];
    size_t got = 0;
    ssize_t n;
    struct sockaddr_in addr;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    snprintf(req, sizeof req,
             "%s /socket.io/?EIO=4&transport=polling%s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
             "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
             method, query, payload ? strlen(payload) : 0, payload ? payload : "");
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while (got < sizeof resp - 1 && (n = read(fd, resp + got, sizeof resp - 1 - got)) > 0) {
        got += (size_t)n;
    }
    close(fd);
    resp[got] = '\0';
    {
        const char *start = strstr(resp, "\r\n\r\n");
        snprintf(body, body_len, "%s", start ? start + 4 : "");
    }
    return strncmp(resp, "HTTP/1.1 200", 12) == 0 || strncmp(resp, "HTTP/1.0 200", 12) == 0
               ? 0
               : -1;
}

/* Open a session and join "/": the sid goes to `sid`. */
static int poll_connect(uint16_t port, char *sid, size_t sid_len) {
    char body[4096], q[128];
    const char *p;
    size_t i = 0;
    if (http(port, "GET", "", NULL, body, sizeof body) != 0) return -1;
    p = strstr(body, "\"sid\":\"");
    if (p == NULL) return -1;
    for (p += 7; *p && *p != '"' && i + 1 < sid_len; p++) sid[i++] = *p;
    sid[i] = '\0';
    snprintf(q, sizeof q, "&sid=%s", sid);
    if (http(port, "POST", q, "40", body, sizeof body) != 0) return -1;
    /* The CONNECT answer ("40{...}"). */
    if (http(port, "GET", q, NULL, body, sizeof body) != 0 || strstr(body, "40") == NULL) {
        return -1;
    }
    return 0;
}

/* --- shared state ----------------------------------------------------------------- */
static swarmcast_server *server;
static atomic_int release_block;
static atomic_int blocked;
static atomic_int acked;
static atomic_int running;
static atomic_int disconnects;

static void on_event(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata;
    atomic_fetch_add(&running, 1);
    if (strcmp(event->name, "block") == 0) {
        int i;
        atomic_store(&blocked, 1);
        for (i = 0; i < 1000 && !atomic_load(&release_block); i++) sleep_ms(10);
        sleep_ms(50);
    } else if (strcmp(event->name, "cmd") == 0 && ack != NULL) {
        ack = (swarmcast_ack_send(ack, J("{\"done\":true}")) == SWARMCAST_RESULT_OK) ? NULL
                                                                                    : ack;
        atomic_store(&acked, 1);
    } else if (strcmp(event->name, "free") == 0) {
        swarmcast_server_free(server); /* from a callback: handed to another thread */
        sleep_ms(100);
    }
    swarmcast_ack_free(ack);
    atomic_fetch_sub(&running, 1);
}

static void on_disconnect(void *userdata, const char *nsp, const char *sid, const char *why) {
    (void)userdata;
    (void)nsp;
    (void)sid;
    (void)why;
    sleep_ms(50);
    atomic_fetch_add(&disconnects, 1);
}

static uint16_t start(void) {
    swarmcast_config *config = NULL;
    uint16_t port = 0;
    swarmcast_config_new(&config);
    swarmcast_config_set_port(config, 0);
    swarmcast_server_new(config, &server);
    swarmcast_config_free(config);
    swarmcast_server_on_event(server, "/", "block", on_event, NULL);
    swarmcast_server_on_event(server, "/", "cmd", on_event, NULL);
    swarmcast_server_on_event(server, "/", "free", on_event, NULL);
    swarmcast_server_on_disconnect(server, "/", on_disconnect, NULL);
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    swarmcast_server_local_port(server, &port);
    return port;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void test_stop_timeout(void) {
    char sid[64], q[128], body[4096];
    long t0;
    uint16_t port = start();
    int i;
    check(poll_connect(port, sid, sizeof sid) == 0, "polling client connected");
    snprintf(q, sizeof q, "&sid=%s", sid);
    http(port, "POST", q, "42[\"block\"]", body, sizeof body);
    for (i = 0; i < 500 && !atomic_load(&blocked); i++) sleep_ms(10);
    check(atomic_load(&blocked), "a callback blocks");
    t0 = now_ms();
    CHECK_RC(swarmcast_server_stop_timeout(server, 300), SWARMCAST_RESULT_TIMED_OUT);
    check(now_ms() - t0 < 2500, "stop_timeout(300) returned in %ld ms despite the blocking "
                                "callback", now_ms() - t0);
    CHECK_RC(swarmcast_wait_teardown(50), SWARMCAST_RESULT_TIMED_OUT);
    atomic_store(&release_block, 1);
    CHECK_RC(swarmcast_wait_teardown(10000), SWARMCAST_RESULT_OK);
    check(atomic_load(&running) == 0, "no callback runs once wait_teardown returned");
    CHECK_RC(swarmcast_server_stop_timeout(server, 300), SWARMCAST_RESULT_NOT_RUNNING);
    /* It starts again after a timed-out stop. */
    CHECK_RC(swarmcast_server_start(server), SWARMCAST_RESULT_OK);
    CHECK_RC(swarmcast_server_stop_timeout(server, 5000), SWARMCAST_RESULT_OK);
    swarmcast_server_free(server);
    server = NULL;
}

struct poller {
    uint16_t port;
    char sid[64];
    char body[4096];
};

/* The client posts an event asking for an ack, then takes its time before the next GET:
 * the server stops in between. */
static void *late_poller(void *arg) {
    struct poller *p = arg;
    char q[128], ignored[256];
    snprintf(q, sizeof q, "&sid=%s", p->sid);
    http(p->port, "POST", q, "421[\"cmd\"]", ignored, sizeof ignored);
    sleep_ms(300);
    http(p->port, "GET", q, NULL, p->body, sizeof p->body);
    return NULL;
}

static void test_ack_before_stop_reaches_polling_client(void) {
    struct poller p;
    pthread_t thread;
    int i;
    memset(&p, 0, sizeof p);
    atomic_store(&acked, 0);
    p.port = start();
    check(poll_connect(p.port, p.sid, sizeof p.sid) == 0, "polling client connected");
    pthread_create(&thread, NULL, late_poller, &p);
    for (i = 0; i < 500 && !atomic_load(&acked); i++) sleep_ms(2);
    check(atomic_load(&acked), "the callback answered the ack");
    CHECK_RC(swarmcast_server_stop(server), SWARMCAST_RESULT_OK);
    pthread_join(thread, NULL);
    check(strstr(p.body, "431[{\"done\":true}]") != NULL,
          "the ack answered just before the stop reached the polling client: \"%s\"", p.body);
    swarmcast_server_free(server);
    server = NULL;
}

static void test_free_from_callback(void) {
    char sid[64], q[128], body[256];
    uint16_t port = start();
    atomic_store(&disconnects, 0);
    check(poll_connect(port, sid, sizeof sid) == 0, "polling client connected");
    snprintf(q, sizeof q, "&sid=%s", sid);
    http(port, "POST", q, "42[\"free\"]", body, sizeof body);
    sleep_ms(20);
    CHECK_RC(swarmcast_wait_teardown(10000), SWARMCAST_RESULT_OK);
    check(atomic_load(&running) == 0 && atomic_load(&disconnects) == 1,
          "after wait_teardown, the freeing callback and the disconnect callback have run "
          "(running %d, disconnects %d)",
          atomic_load(&running), atomic_load(&disconnects));
    server = NULL;
}

int main(void) {
    test_stop_timeout();
    test_ack_before_stop_reaches_polling_client();
    test_free_from_callback();
    return check_summary();
}
