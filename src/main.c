/* ilagent: subcommand dispatch only. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cmd/cmd.h"
#include "ops/log.h"

int main(int argc, char **argv)
{
	struct config cfg;
	char *error = NULL;
	enum cli_status st = cli_parse(argc, argv, stdout, &cfg, &error);
	if (st != CLI_RUN) {
		if (st == CLI_USAGE)
			log_fatal_line("%s", error);
		free(error);
		config_free(&cfg);
		return st == CLI_DONE ? 0 : 2;
	}
	log_setup(cfg.log_level, cfg.log_format == LOG_FORMAT_JSON);
	cli_log_warnings(&cfg);

	int rc;
	switch (cfg.cmd) {
	case CMD_EVENT: rc = cmd_event_run(&cfg); break;
	case CMD_HEARTBEAT: rc = cmd_heartbeat_run(&cfg); break;
	case CMD_QUEUE: rc = cmd_queue_run(&cfg); break;
	case CMD_DAEMON: rc = cmd_daemon_run(&cfg); break;
	default: rc = 2; break;
	}
	config_free(&cfg);
	return rc;
}
