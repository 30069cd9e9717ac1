/* Entry points of the four subcommands (one file each under src/cmd/).
 * Each runs on the main thread with the validated config and returns the process exit code
 * (0 success, 1 runtime failure; usage errors never reach these). Each prints its own final
 * "ilagent: error: ..." line through log_fatal_line() before returning non-zero. */
#ifndef ILAGENT_CMD_CMD_H
#define ILAGENT_CMD_CMD_H

#include "cli/config.h"

int cmd_event_run(const struct config *cfg);
int cmd_heartbeat_run(const struct config *cfg);
int cmd_queue_run(const struct config *cfg);
int cmd_daemon_run(const struct config *cfg);

#endif
