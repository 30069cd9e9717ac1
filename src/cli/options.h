/* The option table of SPEC §4: every option of every subcommand, described once. Parsing,
 * value validation, "has no effect" warnings and --help are all driven by it.
 * Immutable data: any thread may read it. */
#ifndef ILAGENT_CLI_OPTIONS_H
#define ILAGENT_CLI_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Command-line levels; an option's scope is the set of levels where it is accepted. */
enum cli_level {
	LV_TOP = 1 << 0,
	LV_DAEMON = 1 << 1,
	LV_EVENT = 1 << 2,
	LV_HEARTBEAT = 1 << 3,
	LV_QUEUE = 1 << 4,
	LV_QSTATS = 1 << 5,
	LV_QLIST = 1 << 6,
	LV_QRETRY = 1 << 7,
	LV_QPURGE = 1 << 8,
};
#define LV_ALL 0x1FF
#define LV_QUEUE_ANY (LV_QUEUE | LV_QSTATS | LV_QLIST | LV_QRETRY | LV_QPURGE)

enum opt_type {
	OT_HELP,    /* -h/--help */
	OT_VERSION, /* -V/--version */
	OT_COUNT,   /* -v, counted */
	OT_FLAG,    /* bool, no value */
	OT_STRING,  /* char *, any value */
	OT_URL,     /* char *, http(s)://, one trailing '/' removed */
	OT_INT,     /* int or int64_t in [min, max] */
	OT_CHOICE,  /* char *, one of choices (exact case) */
	OT_ENUM,    /* int-sized enum: index into choices */
	OT_LIST,    /* repeatable key=value list (-X) */
};

/* What enables a daemon component; used for "has no effect without" warnings. */
enum opt_needs { NEEDS_NONE = 0, NEEDS_HTTP, NEEDS_MQTT, NEEDS_KAFKA };

enum opt_group { GROUP_GLOBAL, GROUP_COMMAND, GROUP_CONSUMER };

struct opt_def {
	char short_name;        /* 0 when none */
	const char *long_name;  /* without the leading "--" */
	unsigned scope;         /* enum cli_level bits */
	enum opt_type type;
	size_t offset;          /* field in struct config */
	size_t size;            /* field size (ints: 4 or 8) */
	int64_t min, max;       /* OT_INT range */
	const char *const *choices; /* OT_CHOICE / OT_ENUM, NULL-terminated */
	const char *parse_error;    /* OT_INT: text when not an integer (NULL: generic) */
	const char *range_error;    /* OT_INT: text when out of range (NULL: generic) */
	enum opt_needs needs;       /* daemon component this option configures */
	enum opt_group group;       /* section in --help */
	const char *value_name;     /* shown in --help, NULL for flags */
	const char *help;
};

extern const struct opt_def cli_options[];
extern const size_t cli_option_count;

/* Prints the help text for a level (its header, usage, commands and options) to out. */
void cli_print_help(FILE *out, unsigned level);

#endif
