// The smallest C++ use of the C header: a server whose "hello" event is answered
// through the ack, with the handles owned by std::unique_ptr.
//
//   ./hello [seconds]     (default 0: start, emit, stop)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "swarmcast.h"

namespace {

struct ConfigFree {
    void operator()(swarmcast_config *c) const { swarmcast_config_free(c); }
};
struct ServerFree {
    void operator()(swarmcast_server *s) const { swarmcast_server_free(s); }
};

bool ok(swarmcast_result rc, const char *what) {
    if (rc == SWARMCAST_RESULT_OK) return true;
    char msg[128];
    size_t n = 0;
    swarmcast_result_message(rc, msg, sizeof msg, &n);
    std::fprintf(stderr, "hello: %s: %s\n", what, msg);
    return false;
}

// extern "C" linkage is not required for the function pointer; it must not throw.
void on_hello(void *userdata, const swarmcast_event *event, swarmcast_ack *ack) noexcept {
    (void)userdata;
    if (ack == nullptr) return;
    std::string reply = std::string("{\"hello\":\"from C++\",\"you_sent\":") +
                        std::string(event->args_json, event->args_json_len) + "}";
    ok(swarmcast_ack_send(ack, reply.data(), reply.size()), "ack");
}

}  // namespace

int main(int argc, char **argv) {
    long seconds = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 0;
    swarmcast_config *raw_config = nullptr;
    if (!ok(swarmcast_config_new(&raw_config), "config")) return 1;
    std::unique_ptr<swarmcast_config, ConfigFree> config(raw_config);
    swarmcast_config_set_port(config.get(), 0);

    swarmcast_server *raw_server = nullptr;
    if (!ok(swarmcast_server_new(config.get(), &raw_server), "server")) return 1;
    std::unique_ptr<swarmcast_server, ServerFree> server(raw_server);
    config.reset();  // the server copied it

    if (!ok(swarmcast_server_on_event(server.get(), "/", "hello", on_hello, nullptr), "on_event") ||
        !ok(swarmcast_server_start(server.get()), "start")) {
        return 1;
    }
    uint16_t port = 0;
    swarmcast_server_local_port(server.get(), &port);
    std::printf("hello: listening on port %u, swarmcast %s (header %s)\n", unsigned(port),
                swarmcast_version(), SWARMCAST_VERSION);

    const char greeting[] = R"({"msg":"hi from C++"})";
    if (!ok(swarmcast_server_emit(server.get(), "/", "greeting", greeting, std::strlen(greeting)),
            "emit")) {
        return 1;
    }
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    return ok(swarmcast_server_stop(server.get()), "stop") ? 0 : 1;
}
