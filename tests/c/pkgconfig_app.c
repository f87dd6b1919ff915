/* Built by tests/c/run.sh against an install into a temporary prefix, with nothing but
 * `pkg-config --cflags --libs swarmcast` (and --static): the packaging test. */
#include <stdio.h>
#include <string.h>

#include <swarmcast.h>

int main(void) {
    swarmcast_config *config = NULL;
    swarmcast_server *server = NULL;
    if (strcmp(swarmcast_version(), SWARMCAST_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", SWARMCAST_VERSION, swarmcast_version());
        return 1;
    }
    if (swarmcast_config_new(&config) != SWARMCAST_RESULT_OK) return 1;
    swarmcast_config_set_port(config, 0);
    if (swarmcast_server_new(config, &server) != SWARMCAST_RESULT_OK) return 1;
    swarmcast_config_free(config);
    if (swarmcast_server_start(server) != SWARMCAST_RESULT_OK) return 1;
    if (swarmcast_server_stop_timeout(server, 5000) != SWARMCAST_RESULT_OK) return 1;
    swarmcast_server_free(server);
    printf("swarmcast %s ok\n", swarmcast_version());
    return 0;
}
