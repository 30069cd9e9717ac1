/* `ilagent heartbeat` (SPEC §4.5): one ping, one attempt, no Authorization. */
#include "cmd/cmd.h"
#include "ilert/client.h"
#include "ilert/heartbeat.h"
#include "ops/log.h"

int cmd_heartbeat_run(const struct config *cfg)
{
	if (ilert_global_init()) {
		log_fatal_line("could not initialise the HTTP client");
		return 1;
	}
	log_add_secret(cfg->integration_key);
	struct ilert_client *client = ilert_client_create(cfg);
	if (!client) {
		log_fatal_line("could not create the HTTP client");
		ilert_global_cleanup();
		return 1;
	}

	struct ilert_result res;
	ilert_heartbeat_ping(client, cfg->integration_key, false, &res);
	int exit_code = 0;
	if (ilert_result_outcome(&res) == ILERT_OUTCOME_SUCCESS) {
		log_info("main", "Heartbeat ping successful");
	} else {
		if (res.status) {
			ilert_heartbeat_log_failure("main", &res);
			log_fatal_line("ilert did not accept the heartbeat: HTTP %ld", res.status);
		} else {
			log_fatal_line("could not reach ilert: %s", res.error);
		}
		exit_code = 1;
	}

	ilert_result_free(&res);
	ilert_client_destroy(client);
	ilert_global_cleanup();
	return exit_code;
}
