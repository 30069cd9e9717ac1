/* Command-line parsing and validation (SPEC §4): one option table drives parsing, value
 * checks, cross-option rules, warnings and --help. Reads the environment (§4.8).
 * Main thread only, before any other thread starts. */
#ifndef ILAGENT_CLI_CLI_H
#define ILAGENT_CLI_CLI_H

#include <stdio.h>

#include "cli/config.h"

enum cli_status {
	CLI_RUN = 0,  /* cfg is valid: run the subcommand */
	CLI_DONE = 1, /* --help or --version was printed to stdout: exit 0 */
	CLI_USAGE = 2 /* *error holds the message (without "ilagent: error: "): exit 2 */
};

/* Parses argv into cfg (which it initialises). On CLI_USAGE, *error is a heap string the
 * caller frees; cfg must still be released with config_free(). Help and version text go
 * to out. */
enum cli_status cli_parse(int argc, char **argv, FILE *out, struct config *cfg, char **error);

/* Logs the warnings collected by cli_parse (call after log_setup). */
void cli_log_warnings(const struct config *cfg);

#endif
