/* ThreadSanitizer and bindings/c/tsan.supp (tests/c/run.sh builds this with
 * -fsanitize=thread). The Rust runtime inside libswarmcast is not instrumented, so TSan
 * misreads its synchronisation (futexes, atomics) and reports races on memory only Rust
 * touches; the suppressions silence those. What they must not silence is a race in
 * the program's own code, callbacks included: `shared` below is written without a lock
 * by the log callback (on the library's log thread) and by main, and run.sh checks that
 * this race, and only it, is reported.
 *
 * Starts and stops servers (runtime, handler threads, a client of our own) and a log
 * callback, then prints "# done". */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static long shared; /* the deliberate race */

static void on_log(void *userdata, uint32_t level, const char *target, const char *message,
                   size_t message_len) {
    (void)userdata, (void)level, (void)target, (void)message, (void)message_len;
    shared++; /* no lock: TSan must see this */
}

static void on_event(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    (void)userdata, (void)event;
    if (ack != NULL) swarmcast_ack_send(ack, "1", 1);
}

/* One long-polling handshake, to run the HTTP and session paths. */
static void poke(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        const char req[] = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
        char buf[1024];
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
            while (read(fd, buf, sizeof buf) > 0) {
            }
        }
    }
    if (fd >= 0) close(fd);
}

int main(void) {
    CHECK_RC(swarmcast_set_log_callback(on_log, NULL, SWARMCAST_LOG_LEVEL_INFO),
             SWARMCAST_RESULT_OK);
    for (int round = 0; round < 3; round++) {
        swarmcast_config *c = NULL;
        swarmcast_server *s = NULL;
        swarmcast_config_new(&c);
        swarmcast_config_set_port(c, 0);
        swarmcast_config_set_handler_threads(c, 3);
        CHECK_RC(swarmcast_server_new(c, &s), SWARMCAST_RESULT_OK);
        swarmcast_config_free(c);
        swarmcast_server_on_event(s, "/", "ping", on_event, NULL);
        CHECK_RC(swarmcast_server_start(s), SWARMCAST_RESULT_OK);
        uint16_t port = 0;
        swarmcast_server_local_port(s, &port);
        for (int i = 0; i < 5; i++) {
            poke(port);
            swarmcast_server_emit(s, "/", "tick", "{\"n\":1}", 7);
        }
        shared++; /* no lock: the other side of the race */
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        CHECK_RC(swarmcast_server_stop(s), SWARMCAST_RESULT_OK);
        swarmcast_server_free(s);
    }
    CHECK_RC(swarmcast_set_log_callback(NULL, NULL, 0), SWARMCAST_RESULT_OK);
    printf("# done\n");
    return check_summary();
}
