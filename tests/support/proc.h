/* Test helpers that run processes: the built ilagent binary in the foreground with captured
 * output, or any program in the background (mosquitto, the daemon) to be signalled later.
 * Used only by tests; single-threaded callers. */
#ifndef ILAGENT_TEST_PROC_H
#define ILAGENT_TEST_PROC_H

#include <stdbool.h>
#include <sys/types.h>

struct proc_result {
	int exit_code;   /* exit status, or -1 when killed by a signal */
	int term_signal; /* the signal that ended it, 0 otherwise */
	bool timed_out;  /* killed with SIGKILL after timeout_ms */
	char *out;       /* everything written to stdout, NUL-terminated */
	char *err;       /* everything written to stderr, NUL-terminated */
};

/* Runs argv (argv[0] is the program path, NULL-terminated list). env holds extra entries
 * "NAME=value" applied on top of the current environment, or "NAME" alone to unset it
 * (NULL-terminated; NULL for none). stdin_data (may be NULL) is written to its stdin.
 * Waits at most timeout_ms (<= 0: no limit), then kills it and its process group with
 * SIGKILL. The child runs in its own process group with default signal dispositions.
 * Returns 0 or -1 when it could not start (including a failed exec). */
int proc_run(const char *const argv[], const char *const env[], const char *stdin_data,
	     int timeout_ms, struct proc_result *res);
void proc_result_free(struct proc_result *res);

/* Convenience: runs $ILAGENT_BIN with the given arguments (NULL-terminated). */
int proc_run_ilagent(const char *const args[], const char *const env[], int timeout_ms,
		     struct proc_result *res);

/* A background process; its stdout and stderr go to files (truncated first; paths may be
 * NULL for /dev/null), stdin is /dev/null. Same env rules as proc_run; NULL when it could
 * not start. */
struct proc_bg;
struct proc_bg *proc_bg_start(const char *const argv[], const char *const env[],
			      const char *stdout_path, const char *stderr_path);
pid_t proc_bg_pid(const struct proc_bg *p);
int proc_bg_signal(struct proc_bg *p, int sig);
/* Waits up to timeout_ms for exit; returns true and sets *exit_code (-1 on signal) when it
 * ended, false on timeout. */
bool proc_bg_wait(struct proc_bg *p, int timeout_ms, int *exit_code);
/* The signal that ended it once proc_bg_wait saw it exit, 0 otherwise. */
int proc_bg_term_signal(const struct proc_bg *p);
/* Kills (SIGKILL) if still running, reaps, frees. Accepts NULL. */
void proc_bg_destroy(struct proc_bg *p);

/* Path of the ilagent binary under test ($ILAGENT_BIN, else "build/ilagent"). */
const char *test_ilagent_bin(void);
/* A fresh private directory under $TMPDIR (or /tmp); caller frees the string. Removed by
 * test_rmtree(). */
char *test_mkdtemp(void);
void test_rmtree(const char *dir);
/* Reads a whole file into a heap string (NULL if unreadable); *len may be NULL. */
char *test_read_file(const char *path, size_t *len);
/* Writes data to path (mode 0600). Returns 0 or -1. */
int test_write_file(const char *path, const char *data, size_t len);
/* Polls path until its contents include needle (e.g. a startup line in a background
 * process's output file); false after timeout_ms. */
bool test_wait_file_contains(const char *path, const char *needle, int timeout_ms);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int test_free_port(void);

#endif
