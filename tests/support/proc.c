#include "proc.h"

#include "core/clock.h"
#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Everything the child needs is prepared before fork(): the caller may have threads (a fake
 * server, curl), and after fork only async-signal-safe calls are allowed in the child. */
struct spawn_plan {
	char *path;  /* resolved program path */
	char **envp; /* complete environment for execve */
};

static void plan_free(struct spawn_plan *plan)
{
	free(plan->path);
	if (plan->envp) {
		for (char **e = plan->envp; *e; e++)
			free(*e);
		free(plan->envp);
	}
	memset(plan, 0, sizeof(*plan));
}

static size_t env_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool env_same_name(const char *entry, const char *name, size_t name_len)
{
	return env_name_len(entry) == name_len && strncmp(entry, name, name_len) == 0;
}

/* Drops every entry of envp named like override, then appends override if it sets a value. */
static int env_apply(char ***envp, size_t *count, const char *override)
{
	size_t name_len = env_name_len(override);
	size_t kept = 0;
	for (size_t i = 0; i < *count; i++) {
		if (env_same_name((*envp)[i], override, name_len))
			free((*envp)[i]);
		else
			(*envp)[kept++] = (*envp)[i];
	}
	*count = kept;
	(*envp)[kept] = NULL;
	if (!strchr(override, '='))
		return 0;
	char **grown = realloc(*envp, (kept + 2) * sizeof(char *));
	if (!grown)
		return -1;
	*envp = grown;
	grown[kept] = strdup(override);
	if (!grown[kept])
		return -1;
	grown[kept + 1] = NULL;
	*count = kept + 1;
	return 0;
}

static char **env_build(const char *const env[])
{
	size_t count = 0;
	while (environ && environ[count])
		count++;
	char **envp = calloc(count + 1, sizeof(char *));
	if (!envp)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		envp[i] = strdup(environ[i]);
		if (!envp[i])
			goto fail;
	}
	for (size_t i = 0; env && env[i]; i++) {
		if (env_apply(&envp, &count, env[i]) != 0)
			goto fail;
	}
	return envp;
fail:
	for (size_t i = 0; envp[i]; i++)
		free(envp[i]);
	free(envp);
	return NULL;
}

/* execvp semantics without calling execvp in the child. */
static char *path_resolve(const char *prog)
{
	if (strchr(prog, '/'))
		return strdup(prog);
	const char *path_env = getenv("PATH");
	char *dirs = strdup(path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
	if (!dirs)
		return NULL;
	char *found = NULL;
	char *save = NULL;
	for (char *dir = strtok_r(dirs, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		struct tbuf candidate;
		tbuf_init(&candidate);
		tbuf_printf(&candidate, "%s/%s", *dir ? dir : ".", prog);
		if (!candidate.oom && access(tbuf_cstr(&candidate), X_OK) == 0)
			found = tbuf_take(&candidate);
		else
			tbuf_free(&candidate);
	}
	free(dirs);
	/* Unresolvable names still go to execve so the failure is reported the usual way. */
	return found ? found : strdup(prog);
}

static int plan_make(struct spawn_plan *plan, const char *const argv[], const char *const env[])
{
	memset(plan, 0, sizeof(*plan));
	if (!argv || !argv[0])
		return -1;
	plan->path = path_resolve(argv[0]);
	plan->envp = env_build(env);
	if (!plan->path || !plan->envp) {
		plan_free(plan);
		return -1;
	}
	return 0;
}

/* Child side after fd setup: a fresh process group (so a timeout kill reaches anything it
 * started), default signal state (ignored signals would survive exec), then exec. On exec
 * failure the errno travels back through the close-on-exec report pipe. */
static void child_exec(const struct spawn_plan *plan, const char *const argv[], int report_fd)
{
	setpgid(0, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	execve(plan->path, (char *const *)argv, plan->envp);
	int e = errno;
	ssize_t ignored = write(report_fd, &e, sizeof(e));
	(void)ignored;
	_exit(127);
}

/* Returns true when the child reported an exec failure (it then exited with 127). */
static bool exec_failed(int report_rd)
{
	int e = 0;
	ssize_t n;
	do {
		n = read(report_rd, &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(e);
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int wait_pid_blocking(pid_t pid, int *status)
{
	pid_t r;
	do {
		r = waitpid(pid, status, 0);
	} while (r < 0 && errno == EINTR);
	return r == pid ? 0 : -1;
}

/* ---- foreground runs ---- */

struct run_io {
	int in_fd, out_fd, err_fd;
	const char *in_data;
	size_t in_len, in_off;
	struct tbuf out, err;
};

static void run_io_close(struct run_io *io)
{
	close_fd(&io->in_fd);
	close_fd(&io->out_fd);
	close_fd(&io->err_fd);
}

static void run_read(int *fd, struct tbuf *buf)
{
	char chunk[16384];
	ssize_t n = read(*fd, chunk, sizeof(chunk));
	if (n > 0)
		tbuf_append(buf, chunk, (size_t)n);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		close_fd(fd);
}

/* write() to a pipe whose reader is gone raises SIGPIPE, which would end the test process.
 * Block it around the write and swallow the one this write caused (the usual library
 * technique; the process-wide disposition stays untouched). */
static ssize_t write_nosigpipe(int fd, const void *data, size_t len)
{
	sigset_t pipe_set, old_set, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	ssize_t n = write(fd, data, len);
	int saved = errno;
	if (n < 0 && errno == EPIPE && !was_pending) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	errno = saved;
	return n;
}

static void run_write(struct run_io *io)
{
	ssize_t n = write_nosigpipe(io->in_fd, io->in_data + io->in_off, io->in_len - io->in_off);
	if (n > 0)
		io->in_off += (size_t)n;
	else if (n < 0 && errno != EINTR && errno != EAGAIN)
		close_fd(&io->in_fd); /* EPIPE: the child stopped reading */
	if (io->in_fd >= 0 && io->in_off == io->in_len)
		close_fd(&io->in_fd);
}

/* Services the pipes until both outputs hit EOF or the deadline (0 = none) passes.
 * Returns false on deadline. */
static bool run_pump(struct run_io *io, int64_t deadline)
{
	while (io->out_fd >= 0 || io->err_fd >= 0) {
		struct pollfd pfd[3];
		int n = 0;
		int i_out = -1, i_err = -1, i_in = -1;
		if (io->out_fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = io->out_fd, .events = POLLIN };
			i_out = n++;
		}
		if (io->err_fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = io->err_fd, .events = POLLIN };
			i_err = n++;
		}
		if (io->in_fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = io->in_fd, .events = POLLOUT };
			i_in = n++;
		}
		int wait_ms = -1;
		if (deadline > 0) {
			int64_t left = deadline - clock_mono_ms();
			if (left <= 0)
				return false;
			wait_ms = left > 1000 ? 1000 : (int)left;
		}
		int r = poll(pfd, (nfds_t)n, wait_ms);
		if (r < 0 && errno != EINTR)
			return false;
		if (r <= 0)
			continue;
		if (i_out >= 0 && pfd[i_out].revents)
			run_read(&io->out_fd, &io->out);
		if (i_err >= 0 && pfd[i_err].revents)
			run_read(&io->err_fd, &io->err);
		if (i_in >= 0 && pfd[i_in].revents)
			run_write(io);
	}
	return true;
}

static void result_set_status(struct proc_result *res, int status)
{
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
		res->term_signal = 0;
	} else {
		res->exit_code = -1;
		res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
}

static int pipes_open(int fds[4][2])
{
	for (int i = 0; i < 4; i++)
		fds[i][0] = fds[i][1] = -1;
	for (int i = 0; i < 4; i++) {
		if (pipe2(fds[i], O_CLOEXEC) != 0)
			return -1;
	}
	return 0;
}

static void pipes_close(int fds[4][2])
{
	for (int i = 0; i < 4; i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
}

enum { P_IN, P_OUT, P_ERR, P_REPORT };

int proc_run(const char *const argv[], const char *const env[], const char *stdin_data,
	     int timeout_ms, struct proc_result *res)
{
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	struct spawn_plan plan;
	if (plan_make(&plan, argv, env) != 0)
		return -1;
	int fds[4][2];
	if (pipes_open(fds) != 0) {
		pipes_close(fds);
		plan_free(&plan);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		pipes_close(fds);
		plan_free(&plan);
		return -1;
	}
	if (pid == 0) {
		/* dup2 clears close-on-exec on the targets; the originals close at exec. */
		dup2(fds[P_IN][0], STDIN_FILENO);
		dup2(fds[P_OUT][1], STDOUT_FILENO);
		dup2(fds[P_ERR][1], STDERR_FILENO);
		child_exec(&plan, argv, fds[P_REPORT][1]);
	}
	plan_free(&plan);
	struct run_io io = { .in_fd = fds[P_IN][1], .out_fd = fds[P_OUT][0],
			     .err_fd = fds[P_ERR][0], .in_data = stdin_data ? stdin_data : "" };
	io.in_len = strlen(io.in_data);
	close_fd(&fds[P_IN][0]);
	close_fd(&fds[P_OUT][1]);
	close_fd(&fds[P_ERR][1]);
	close_fd(&fds[P_REPORT][1]);
	bool failed = exec_failed(fds[P_REPORT][0]);
	close_fd(&fds[P_REPORT][0]);
	tbuf_init(&io.out);
	tbuf_init(&io.err);
	if (failed) {
		int status;
		run_io_close(&io);
		wait_pid_blocking(pid, &status);
		tbuf_free(&io.out);
		tbuf_free(&io.err);
		return -1;
	}
	if (io.in_len == 0)
		close_fd(&io.in_fd);
	else
		fcntl(io.in_fd, F_SETFL, O_NONBLOCK);

	int64_t deadline = timeout_ms > 0 ? clock_mono_ms() + timeout_ms : 0;
	if (!run_pump(&io, deadline)) {
		res->timed_out = true;
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		close_fd(&io.in_fd);
		/* Whatever was written before the kill is still in the pipes. */
		run_pump(&io, clock_mono_ms() + 1000);
	}
	run_io_close(&io);
	int status = 0;
	if (wait_pid_blocking(pid, &status) == 0)
		result_set_status(res, status);
	res->out = tbuf_take(&io.out);
	res->err = tbuf_take(&io.err);
	if (!res->out || !res->err) {
		proc_result_free(res);
		return -1;
	}
	return 0;
}

void proc_result_free(struct proc_result *res)
{
	if (!res)
		return;
	free(res->out);
	free(res->err);
	res->out = NULL;
	res->err = NULL;
}

int proc_run_ilagent(const char *const args[], const char *const env[], int timeout_ms,
		     struct proc_result *res)
{
	size_t n = 0;
	while (args && args[n])
		n++;
	const char **argv = calloc(n + 2, sizeof(char *));
	if (!argv) {
		memset(res, 0, sizeof(*res));
		res->exit_code = -1;
		return -1;
	}
	argv[0] = test_ilagent_bin();
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = args[i];
	int rc = proc_run(argv, env, NULL, timeout_ms, res);
	free(argv);
	return rc;
}

/* ---- background processes ---- */

struct proc_bg {
	pid_t pid;
	bool exited;
	int exit_code;
	int term_signal;
};

static int open_output(const char *path)
{
	return open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

struct proc_bg *proc_bg_start(const char *const argv[], const char *const env[],
			      const char *stdout_path, const char *stderr_path)
{
	struct spawn_plan plan;
	if (plan_make(&plan, argv, env) != 0)
		return NULL;
	struct proc_bg *p = calloc(1, sizeof(*p));
	int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out_fd = open_output(stdout_path);
	int err_fd = open_output(stderr_path);
	int report[2] = { -1, -1 };
	if (!p || in_fd < 0 || out_fd < 0 || err_fd < 0 || pipe2(report, O_CLOEXEC) != 0)
		goto fail;
	p->pid = fork();
	if (p->pid < 0)
		goto fail;
	if (p->pid == 0) {
		dup2(in_fd, STDIN_FILENO);
		dup2(out_fd, STDOUT_FILENO);
		dup2(err_fd, STDERR_FILENO);
		child_exec(&plan, argv, report[1]);
	}
	close_fd(&report[1]);
	bool failed = exec_failed(report[0]);
	close_fd(&report[0]);
	close_fd(&err_fd);
	close_fd(&out_fd);
	close_fd(&in_fd);
	plan_free(&plan);
	if (failed) {
		int status;
		wait_pid_blocking(p->pid, &status);
		free(p);
		return NULL;
	}
	return p;
fail:
	close_fd(&report[1]);
	close_fd(&report[0]);
	close_fd(&err_fd);
	close_fd(&out_fd);
	close_fd(&in_fd);
	free(p);
	plan_free(&plan);
	return NULL;
}

pid_t proc_bg_pid(const struct proc_bg *p)
{
	return p ? p->pid : -1;
}

static void bg_note_status(struct proc_bg *p, int status)
{
	p->exited = true;
	if (WIFEXITED(status)) {
		p->exit_code = WEXITSTATUS(status);
		p->term_signal = 0;
	} else {
		p->exit_code = -1;
		p->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
}

static void bg_poll(struct proc_bg *p)
{
	if (p->exited)
		return;
	int status;
	pid_t r;
	do {
		r = waitpid(p->pid, &status, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == p->pid)
		bg_note_status(p, status);
}

int proc_bg_signal(struct proc_bg *p, int sig)
{
	if (!p)
		return -1;
	bg_poll(p);
	/* A reaped pid may already belong to someone else. */
	if (p->exited)
		return -1;
	return kill(p->pid, sig) == 0 ? 0 : -1;
}

bool proc_bg_wait(struct proc_bg *p, int timeout_ms, int *exit_code)
{
	if (!p)
		return false;
	int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int nap_ms = 1;
	for (;;) {
		bg_poll(p);
		if (p->exited) {
			if (exit_code)
				*exit_code = p->exit_code;
			return true;
		}
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0)
			return false;
		int64_t sleep_ms = nap_ms < left ? nap_ms : left;
		struct timespec ts = { .tv_sec = sleep_ms / 1000,
				       .tv_nsec = (long)(sleep_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		if (nap_ms < 20)
			nap_ms *= 2;
	}
}

int proc_bg_term_signal(const struct proc_bg *p)
{
	return p && p->exited ? p->term_signal : 0;
}

void proc_bg_destroy(struct proc_bg *p)
{
	if (!p)
		return;
	bg_poll(p);
	if (!p->exited) {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		int status;
		if (wait_pid_blocking(p->pid, &status) == 0)
			bg_note_status(p, status);
	}
	free(p);
}

/* ---- files, directories, ports ---- */

const char *test_ilagent_bin(void)
{
	const char *bin = getenv("ILAGENT_BIN");
	return bin && *bin ? bin : "build/ilagent";
}

char *test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	struct tbuf path;
	tbuf_init(&path);
	tbuf_printf(&path, "%s/ilagent-test-XXXXXX", base);
	char *dir = tbuf_take(&path);
	if (dir && !mkdtemp(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

static int rmtree_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0; /* keep going: remove as much as possible */
}

void test_rmtree(const char *dir)
{
	if (!dir || !*dir)
		return;
	nftw(dir, rmtree_entry, 32, FTW_DEPTH | FTW_PHYS);
}

char *test_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct tbuf buf;
	tbuf_init(&buf);
	char chunk[16384];
	ssize_t n;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n > 0)
			tbuf_append(&buf, chunk, (size_t)n);
		else if (n == 0 || errno != EINTR)
			break;
	}
	close(fd);
	size_t got = buf.len;
	if (n < 0 || buf.oom) {
		tbuf_free(&buf);
		return NULL;
	}
	if (len)
		*len = got;
	return tbuf_take(&buf);
}

int test_write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd) == 0 ? 0 : -1;
}

bool test_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	for (;;) {
		char *text = test_read_file(path, NULL);
		bool found = text && strstr(text, needle);
		free(text);
		if (found)
			return true;
		if (clock_mono_ms() >= deadline)
			return false;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &alen) == 0)
		port = ntohs(addr.sin_port);
	close(fd);
	return port;
}
