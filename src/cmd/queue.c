#include "cmd/cmd.h"
#include "ops/log.h"

int cmd_queue_run(const struct config *cfg)
{
	(void)cfg;
	log_fatal_line("queue is not available in this build");
	return 1;
}
