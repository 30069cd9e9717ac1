#include "cmd/cmd.h"
#include "ops/log.h"

int cmd_daemon_run(const struct config *cfg)
{
	(void)cfg;
	log_fatal_line("daemon is not available in this build");
	return 1;
}
