/* Logging to stderr (SPEC §5): text or JSON lines, four levels, component names, masking of
 * registered secrets, rate-limited repeats, and the plain final failure line of §4.2.
 * Thread safe: any thread may log; log_setup() and log_add_secret() run at startup before
 * other threads exist. */
#ifndef ILAGENT_OPS_LOG_H
#define ILAGENT_OPS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

/* Optional context keys for JSON lines (NULL / 0 = absent), in SPEC order. */
struct log_ctx {
	const char *source;
	const char *kind;
	const char *item;
	int status;
	const char *topic;
};

/* Sets the level and format. Default before setup: warn, text. */
void log_setup(enum log_level level, bool json);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);

/* Every later log line has each occurrence of secret replaced by its masked form (§2).
 * Secrets shorter than 4 bytes are ignored (they would mask ordinary words). */
void log_add_secret(const char *secret);
/* Forgets all registered secrets (tests). */
void log_clear_secrets(void);

/* One line at level for component (e.g. "main", "store"). */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_msg_ctx(enum log_level level, const char *component, const struct log_ctx *ctx,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vmsg(enum log_level level, const char *component, const struct log_ctx *ctx,
	      const char *fmt, va_list ap);

/* Like log_msg, but at most one line per distinct message text per 10 s; the next line
 * emitted for that text carries a " (<n> similar messages suppressed)" suffix. */
void log_limited(enum log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(comp, ...) log_msg(LOG_LVL_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_LVL_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_LVL_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(LOG_LVL_DEBUG, comp, __VA_ARGS__)

/* The final failure line of a non-zero exit, always plain text regardless of the format:
 * "ilagent: error: <message>" (secrets masked). */
void log_fatal_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses "error", "warn", "info", "debug". Returns 0 or ILA_ERR_INVALID. */
int log_level_parse(const char *text, enum log_level *level);

#endif
