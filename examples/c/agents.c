/* A multi-threaded agent simulation that streams to dashboards through swarmcast.
 *
 * Each agent is a pthread that works through tasks and emits, from its own thread:
 *   "agent_status"  {"agent":3,"status":"working","task":17}      (also keyed state)
 *   "task"          {"agent":3,"task":17,"phase":"progress","progress":40}
 *   "metric"        {"agent":3,"cpu":0.42,"queue":5,"done":12}     (volatile)
 * Every agent's latest status is also kept in the keyed live state map "agents":
 * a client that subscribes ({"state":"agents"} via the built-in "subscribe" event) gets
 * the whole map, then only the changes.
 *
 * Clients send "command" with an ack: {"op":"pause","agent":3}, {"op":"resume",
 * "agent":3} or {"op":"stats"}; the handler answers through the ack.
 *
 *   ./agents [--port 5000] [--agents 4] [--seconds 0]      (0: until Ctrl-C)
 *
 * Dashboard side (browser or Node):
 *   const s = io("http://127.0.0.1:5000");
 *   s.on("task", console.log);
 *   s.emit("subscribe", {state: "agents"});
 *   s.emit("command", {op: "pause", agent: 1}, (reply) => console.log(reply));
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, sigaction, rand_r */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swarmcast.h"

#define MAX_AGENTS 64
#define NS "/"

typedef struct {
    int id;
    pthread_t thread;
    unsigned seed;
    /* Guarded by `lock`. */
    int paused;
    int task;
    int done;
    const char *status;
} agent_t;

static swarmcast_server *server;
static agent_t agents[MAX_AGENTS];
static int agent_count = 4;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Report a failed call, with the library's description of the code. */
static int report(const char *what, swarmcast_result rc) {
    if (rc != SWARMCAST_RESULT_OK) {
        char msg[128];
        size_t n = 0;
        swarmcast_result_message((uint32_t)rc, msg, sizeof msg, &n);
        fprintf(stderr, "agents: %s: %s (%u)\n", what, msg, (unsigned)rc);
    }
    return rc == SWARMCAST_RESULT_OK;
}

/* Emit from an agent thread. Full client queues are normal for a demo (slow
 * dashboards are handled by the server's slow-consumer policy); other errors are not. */
static void emit(const char *event, const char *json, int len) {
    swarmcast_result rc = swarmcast_server_emit(server, NS, event, json, (size_t)len);
    if (rc != SWARMCAST_RESULT_QUEUE_FULL && rc != SWARMCAST_RESULT_NOT_RUNNING) {
        report(event, rc);
    }
}

static void set_status(agent_t *a, const char *status, int task) {
    char json[160];
    char key[32];
    int len;
    pthread_mutex_lock(&lock);
    a->status = status;
    a->task = task;
    pthread_mutex_unlock(&lock);
    len = snprintf(json, sizeof json, "{\"agent\":%d,\"status\":\"%s\",\"task\":%d}", a->id,
                   status, task);
    emit("agent_status", json, len);
    snprintf(key, sizeof key, "agent-%d", a->id);
    report("state", swarmcast_server_state_set(server, NS, "agents", key, json, (size_t)len));
}

static void *agent_main(void *arg) {
    agent_t *a = (agent_t *)arg;
    char json[200];
    int task = a->id * 1000;
    while (!stopping) {
        int paused;
        int step;
        pthread_mutex_lock(&lock);
        paused = a->paused;
        pthread_mutex_unlock(&lock);
        if (paused) {
            sleep_ms(100);
            continue;
        }
        task++;
        set_status(a, "working", task);
        for (step = 0; step <= 4 && !stopping; step++) {
            int len = snprintf(json, sizeof json,
                               "{\"agent\":%d,\"task\":%d,\"phase\":\"%s\",\"progress\":%d}",
                               a->id, task, step == 0 ? "started" : step == 4 ? "done" : "progress",
                               step * 25);
            emit("task", json, len);
            /* Metrics are samples: volatile, a slow dashboard just misses some. */
            len = snprintf(json, sizeof json,
                           "{\"agent\":%d,\"cpu\":%.2f,\"queue\":%d,\"done\":%d}", a->id,
                           (double)(rand_r(&a->seed) % 100) / 100.0, rand_r(&a->seed) % 10,
                           a->done);
            swarmcast_server_emit_volatile(server, NS, "metric", json, (size_t)len);
            sleep_ms(20 + rand_r(&a->seed) % 60);
        }
        pthread_mutex_lock(&lock);
        a->done++;
        pthread_mutex_unlock(&lock);
    }
    set_status(a, "stopped", -1);
    return NULL;
}

/* Find "\"agent\":N" in a JSON text; -1 if absent or out of range. A real program would
 * use a JSON parser; the arguments here are small and produced by our dashboard. */
static int agent_arg(const char *json) {
    const char *p = strstr(json, "\"agent\":");
    int id;
    if (p == NULL || sscanf(p + 8, "%d", &id) != 1 || id < 0 || id >= agent_count) {
        return -1;
    }
    return id;
}

/* "command" handler: runs on a swarmcast handler thread, one call at a time per
 * client. The event and its strings live until we return; the ack is ours to answer. */
static void on_command(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) {
    char reply[256];
    int len;
    (void)userdata;
    if (strstr(event->args_json, "\"op\":\"stats\"") != NULL) {
        int i;
        int done = 0;
        int paused = 0;
        pthread_mutex_lock(&lock);
        for (i = 0; i < agent_count; i++) {
            done += agents[i].done;
            paused += agents[i].paused;
        }
        pthread_mutex_unlock(&lock);
        len = snprintf(reply, sizeof reply,
                       "{\"ok\":true,\"agents\":%d,\"paused\":%d,\"tasks_done\":%d}", agent_count,
                       paused, done);
    } else if (strstr(event->args_json, "\"op\":\"pause\"") != NULL ||
               strstr(event->args_json, "\"op\":\"resume\"") != NULL) {
        int pause = strstr(event->args_json, "\"op\":\"pause\"") != NULL;
        int id = agent_arg(event->args_json);
        if (id < 0) {
            len = snprintf(reply, sizeof reply, "{\"ok\":false,\"error\":\"no such agent\"}");
        } else {
            pthread_mutex_lock(&lock);
            agents[id].paused = pause;
            pthread_mutex_unlock(&lock);
            set_status(&agents[id], pause ? "paused" : "resumed", -1);
            len = snprintf(reply, sizeof reply, "{\"ok\":true,\"agent\":%d,\"paused\":%s}", id,
                           pause ? "true" : "false");
        }
    } else {
        len = snprintf(reply, sizeof reply, "{\"ok\":false,\"error\":\"unknown command\"}");
    }
    if (ack != NULL) {
        /* Consumes the ack whatever the result. */
        report("ack", swarmcast_ack_send(ack, reply, (size_t)len));
    }
}

static bool on_connect(void *userdata, const swarmcast_connect_info *info,
                       swarmcast_connect_refusal *refusal) {
    const char *token = (const char *)userdata;
    if (token != NULL && strstr(info->auth_json, token) == NULL) {
        swarmcast_connect_refusal_set_message(refusal, "unauthorized");
        return false;
    }
    printf("agents: client %s connected\n", info->socket_id);
    fflush(stdout);
    return true;
}

static void on_disconnect(void *userdata, const char *nsp, const char *socket_id,
                          const char *reason) {
    (void)userdata;
    (void)nsp;
    printf("agents: client %s left (%s)\n", socket_id, reason);
    fflush(stdout);
}

int main(int argc, char **argv) {
    swarmcast_config *config = NULL;
    const char *token = getenv("AGENTS_TOKEN");
    long port = 5000;
    long seconds = 0;
    long elapsed_ms = 0;
    uint16_t bound = 0;
    struct sigaction sa;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--agents") == 0) {
            agent_count = (int)strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = strtol(argv[i + 1], NULL, 10);
        }
    }
    if (port < 0 || port > 65535 || agent_count < 1 || agent_count > MAX_AGENTS || seconds < 0) {
        fprintf(stderr, "usage: agents [--port 0..65535] [--agents 1..%d] [--seconds N]\n",
                MAX_AGENTS);
        return 2;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (!report("config", swarmcast_config_new(&config))) {
        return 1;
    }
    swarmcast_config_set_port(config, (uint16_t)port);
    swarmcast_config_add_cors_origin(config, "*");
    swarmcast_config_add_subscribe_pattern(config, "state:agents");
    swarmcast_config_set_handler_threads(config, 2);
    i = report("server", swarmcast_server_new(config, &server));
    swarmcast_config_free(config);
    if (!i) {
        return 1;
    }
    /* Callbacks are registered before the start. `token` outlives the server. */
    report("on_connect", swarmcast_server_on_connect(server, NS, on_connect, (void *)token));
    report("on_disconnect", swarmcast_server_on_disconnect(server, NS, on_disconnect, NULL));
    report("on_event", swarmcast_server_on_event(server, NS, "command", on_command, NULL));
    /* Keyed state can be filled in before the start: the first subscriber sees every
     * agent at once. */
    for (i = 0; i < agent_count; i++) {
        agents[i].id = i;
        agents[i].seed = (unsigned)(i * 7919 + 1);
        set_status(&agents[i], "idle", -1);
    }
    if (!report("start", swarmcast_server_start(server))) {
        swarmcast_server_free(server);
        return 1;
    }
    swarmcast_server_local_port(server, &bound);
    printf("agents: %d agents, listening on http://127.0.0.1:%u (swarmcast %s)\n", agent_count,
           (unsigned)bound, swarmcast_version());
    fflush(stdout);

    for (i = 0; i < agent_count; i++) {
        if (pthread_create(&agents[i].thread, NULL, agent_main, &agents[i]) != 0) {
            fprintf(stderr, "agents: cannot start agent %d\n", i);
            stopping = 1;
            agent_count = i;
            break;
        }
    }
    while (!stopping && (seconds == 0 || elapsed_ms < seconds * 1000)) {
        sleep_ms(100);
        elapsed_ms += 100;
    }
    stopping = 1;
    for (i = 0; i < agent_count; i++) {
        pthread_join(agents[i].thread, NULL);
    }
    /* Disconnect callbacks run during the stop; none runs after it. */
    report("stop", swarmcast_server_stop(server));
    swarmcast_server_free(server);
    printf("agents: stopped\n");
    return 0;
}
