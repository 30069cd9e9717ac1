#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proc.h"

#include "core/clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void run_sh(const char *script, const char *const env[], const char *in, int timeout_ms,
		   struct proc_result *res)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	assert_int_equal(proc_run(argv, env, in, timeout_ms, res), 0);
}

static void test_exit_code_and_stdout(void **state)
{
	(void)state;
	struct proc_result res;
	run_sh("echo hello; exit 3", NULL, NULL, 5000, &res);
	assert_int_equal(res.exit_code, 3);
	assert_int_equal(res.term_signal, 0);
	assert_false(res.timed_out);
	assert_string_equal(res.out, "hello\n");
	assert_string_equal(res.err, "");
	proc_result_free(&res);

	run_sh("true", NULL, NULL, 5000, &res);
	assert_int_equal(res.exit_code, 0);
	proc_result_free(&res);
}

static void test_stderr_capture(void **state)
{
	(void)state;
	struct proc_result res;
	run_sh("echo to-out; echo to-err >&2; printf 'no newline' >&2", NULL, NULL, 5000, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out, "to-out\n");
	assert_string_equal(res.err, "to-err\nno newline");
	proc_result_free(&res);
}

/* Far more than a pipe buffer on both streams, stderr first: a reader that drains stdout
 * before stderr would deadlock here. */
static void test_large_output_both_streams(void **state)
{
	(void)state;
	struct proc_result res;
	run_sh("head -c 300000 /dev/zero | tr '\\000' b >&2; head -c 300000 /dev/zero | tr '\\000' a",
	       NULL, NULL, 10000, &res);
	assert_int_equal(res.exit_code, 0);
	assert_false(res.timed_out);
	assert_int_equal(strlen(res.out), 300000);
	assert_int_equal(strlen(res.err), 300000);
	assert_int_equal(strspn(res.out, "a"), 300000);
	assert_int_equal(strspn(res.err, "b"), 300000);
	proc_result_free(&res);
}

static void test_env_set_and_unset(void **state)
{
	(void)state;
	assert_int_equal(setenv("ILAGENT_TEST_KEEP", "kept", 1), 0);
	assert_int_equal(setenv("ILAGENT_TEST_GONE", "present", 1), 0);
	assert_int_equal(setenv("ILAGENT_TEST_OVER", "old", 1), 0);
	const char *env[] = { "ILAGENT_TEST_NEW=fresh value", "ILAGENT_TEST_GONE",
			      "ILAGENT_TEST_OVER=new", "ILAGENT_TEST_EMPTY=", NULL };
	struct proc_result res;
	run_sh("echo \"$ILAGENT_TEST_KEEP|$ILAGENT_TEST_NEW|${ILAGENT_TEST_GONE-unset}|"
	       "$ILAGENT_TEST_OVER|${ILAGENT_TEST_EMPTY-unset}\"",
	       env, NULL, 5000, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out, "kept|fresh value|unset|new|\n");
	proc_result_free(&res);

	/* Overrides apply to the child only. */
	assert_string_equal(getenv("ILAGENT_TEST_GONE"), "present");
	assert_string_equal(getenv("ILAGENT_TEST_OVER"), "old");
	assert_null(getenv("ILAGENT_TEST_NEW"));

	/* The over-ridden variable appears once in the child's environment. */
	run_sh("env | grep -c '^ILAGENT_TEST_OVER='", env, NULL, 5000, &res);
	assert_string_equal(res.out, "1\n");
	proc_result_free(&res);
	unsetenv("ILAGENT_TEST_KEEP");
	unsetenv("ILAGENT_TEST_GONE");
	unsetenv("ILAGENT_TEST_OVER");
}

static void test_stdin_data(void **state)
{
	(void)state;
	struct proc_result res;
	run_sh("cat", NULL, "line one\nline two\n", 5000, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out, "line one\nline two\n");
	proc_result_free(&res);

	/* More than a pipe buffer in, echoed back while still being written. */
	size_t big = 500000;
	char *data = malloc(big + 1);
	assert_non_null(data);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	data[big] = '\0';
	run_sh("cat", NULL, data, 10000, &res);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out, data);
	proc_result_free(&res);
	free(data);

	/* Without stdin_data the child reads EOF at once. */
	run_sh("cat; echo done", NULL, NULL, 5000, &res);
	assert_string_equal(res.out, "done\n");
	proc_result_free(&res);

	/* A child that ignores its input must not hang or kill the caller (EPIPE). */
	char *ignored = calloc(1, 300001);
	assert_non_null(ignored);
	memset(ignored, 'x', 300000);
	run_sh("exit 4", NULL, ignored, 5000, &res);
	assert_int_equal(res.exit_code, 4);
	proc_result_free(&res);
	free(ignored);
}

static void test_timeout_kills(void **state)
{
	(void)state;
	struct proc_result res;
	int64_t t0 = clock_mono_ms();
	run_sh("echo before; sleep 10; echo after", NULL, NULL, 300, &res);
	int64_t took = clock_mono_ms() - t0;
	assert_true(res.timed_out);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.term_signal, SIGKILL);
	assert_string_equal(res.out, "before\n");
	assert_true(took >= 300);
	/* The sleep grandchild holds the pipes too: it must die with the group. */
	assert_true(took < 1200);
	proc_result_free(&res);
}

static void test_killed_by_signal(void **state)
{
	(void)state;
	struct proc_result res;
	run_sh("kill -TERM $$", NULL, NULL, 5000, &res);
	assert_false(res.timed_out);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.term_signal, SIGTERM);
	proc_result_free(&res);
}

static void test_exec_failure(void **state)
{
	(void)state;
	struct proc_result res;
	const char *argv[] = { "/nonexistent/ilagent-no-such-program", NULL };
	assert_int_equal(proc_run(argv, NULL, NULL, 5000, &res), -1);
	proc_result_free(&res);
	assert_null(proc_bg_start(argv, NULL, NULL, NULL));
}

static void test_path_lookup(void **state)
{
	(void)state;
	struct proc_result res;
	const char *argv[] = { "sh", "-c", "echo via-path", NULL };
	assert_int_equal(proc_run(argv, NULL, NULL, 5000, &res), 0);
	assert_string_equal(res.out, "via-path\n");
	proc_result_free(&res);
}

static void test_run_ilagent_uses_env_bin(void **state)
{
	(void)state;
	char *saved = getenv("ILAGENT_BIN") ? strdup(getenv("ILAGENT_BIN")) : NULL;
	assert_int_equal(setenv("ILAGENT_BIN", "/bin/echo", 1), 0);
	assert_string_equal(test_ilagent_bin(), "/bin/echo");
	const char *args[] = { "event", "--x", NULL };
	struct proc_result res;
	assert_int_equal(proc_run_ilagent(args, NULL, 5000, &res), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out, "event --x\n");
	proc_result_free(&res);
	if (saved) {
		setenv("ILAGENT_BIN", saved, 1);
		free(saved);
	} else {
		unsetenv("ILAGENT_BIN");
		assert_string_equal(test_ilagent_bin(), "build/ilagent");
	}
}

static char *path_in(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	assert_non_null(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void test_background_signal_wait(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	assert_non_null(dir);
	char *out = path_in(dir, "out.log");
	char *err = path_in(dir, "err.log");
	const char *argv[] = { "/bin/sh", "-c",
			       "trap 'echo got-term; exit 7' TERM; echo \"started $BG_VAR\"; "
			       "echo on-err >&2; while :; do sleep 0.02; done",
			       NULL };
	const char *env[] = { "BG_VAR=yes", NULL };
	struct proc_bg *p = proc_bg_start(argv, env, out, err);
	assert_non_null(p);
	assert_true(proc_bg_pid(p) > 0);
	assert_true(test_wait_file_contains(out, "started yes\n", 5000));
	assert_true(test_wait_file_contains(err, "on-err\n", 5000));
	assert_false(test_wait_file_contains(out, "never printed", 50));

	int code = 1234;
	assert_false(proc_bg_wait(p, 100, &code));
	assert_int_equal(code, 1234);
	assert_int_equal(proc_bg_signal(p, SIGTERM), 0);
	assert_true(proc_bg_wait(p, 5000, &code));
	assert_int_equal(code, 7);
	assert_int_equal(proc_bg_term_signal(p), 0);
	assert_true(test_wait_file_contains(out, "got-term\n", 1000));
	/* Once reaped, the pid is no longer signalled; waiting again repeats the answer. */
	assert_int_equal(proc_bg_signal(p, SIGTERM), -1);
	code = 0;
	assert_true(proc_bg_wait(p, 0, &code));
	assert_int_equal(code, 7);
	proc_bg_destroy(p);

	test_rmtree(dir);
	free(err);
	free(out);
	free(dir);
}

static void test_background_killed_and_destroy(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/sleep", "30", NULL };
	struct proc_bg *p = proc_bg_start(argv, NULL, NULL, NULL);
	assert_non_null(p);
	assert_int_equal(proc_bg_signal(p, SIGKILL), 0);
	int code = 0;
	assert_true(proc_bg_wait(p, 5000, &code));
	assert_int_equal(code, -1);
	assert_int_equal(proc_bg_term_signal(p), SIGKILL);
	proc_bg_destroy(p);

	/* Destroy of a running process kills and reaps it promptly. */
	p = proc_bg_start(argv, NULL, NULL, NULL);
	assert_non_null(p);
	pid_t pid = proc_bg_pid(p);
	int64_t t0 = clock_mono_ms();
	proc_bg_destroy(p);
	assert_true(clock_mono_ms() - t0 < 2000);
	assert_int_equal(kill(pid, 0), -1);
	proc_bg_destroy(NULL);
}

static void test_tempdir_and_rmtree(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	assert_non_null(dir);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);

	char *sub = path_in(dir, "a");
	char *subsub = path_in(sub, "b");
	char *file = path_in(subsub, "f.txt");
	char *link = path_in(dir, "link");
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mkdir(subsub, 0700), 0);
	assert_int_equal(test_write_file(file, "x", 1), 0);
	/* A symlink to outside must be removed, not followed. */
	char *outside = test_mkdtemp();
	assert_non_null(outside);
	char *outside_file = path_in(outside, "keep.txt");
	assert_int_equal(test_write_file(outside_file, "k", 1), 0);
	assert_int_equal(symlink(outside, link), 0);

	test_rmtree(dir);
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(stat(outside_file, &st), 0);
	test_rmtree(outside);
	assert_int_equal(stat(outside, &st), -1);

	free(outside_file);
	free(outside);
	free(link);
	free(file);
	free(subsub);
	free(sub);
	free(dir);
}

static void test_read_write_file(void **state)
{
	(void)state;
	char *dir = test_mkdtemp();
	assert_non_null(dir);
	char *file = path_in(dir, "data.bin");
	const char data[] = "abc\0def";
	assert_int_equal(test_write_file(file, data, sizeof(data) - 1), 0);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t len = 0;
	char *back = test_read_file(file, &len);
	assert_non_null(back);
	assert_int_equal(len, 7);
	assert_memory_equal(back, data, 7);
	assert_int_equal(back[7], '\0');
	free(back);

	/* Rewriting truncates. */
	assert_int_equal(test_write_file(file, "z", 1), 0);
	back = test_read_file(file, NULL);
	assert_string_equal(back, "z");
	free(back);

	char *missing = path_in(dir, "missing");
	assert_null(test_read_file(missing, &len));
	assert_int_equal(test_write_file("/nonexistent-dir/x", "a", 1), -1);
	test_rmtree(dir);
	free(missing);
	free(file);
	free(dir);
}

static void test_free_port_is_bindable(void **state)
{
	(void)state;
	int port = test_free_port();
	assert_true(port > 0 && port < 65536);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_port = htons((uint16_t)port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code_and_stdout),
		cmocka_unit_test(test_stderr_capture),
		cmocka_unit_test(test_large_output_both_streams),
		cmocka_unit_test(test_env_set_and_unset),
		cmocka_unit_test(test_stdin_data),
		cmocka_unit_test(test_timeout_kills),
		cmocka_unit_test(test_killed_by_signal),
		cmocka_unit_test(test_exec_failure),
		cmocka_unit_test(test_path_lookup),
		cmocka_unit_test(test_run_ilagent_uses_env_bin),
		cmocka_unit_test(test_background_signal_wait),
		cmocka_unit_test(test_background_killed_and_destroy),
		cmocka_unit_test(test_tempdir_and_rmtree),
		cmocka_unit_test(test_read_write_file),
		cmocka_unit_test(test_free_port_is_bindable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
